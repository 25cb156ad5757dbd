"""The commands about the database itself: ``migrate`` its schema, read its ``events``
feed."""

from __future__ import annotations

import time

import click

from .._csv_out import printable
from ._common import db_option, guarded, open_funnel

__all__ = ["events", "migrate"]


@click.command()
@db_option
@guarded
def migrate(db: str) -> None:
    """Create the leadfunnel tables, or upgrade them to this version's schema.

    Opening a database does this on its own; run it from a deployment step to upgrade
    before the application starts (the read commands refuse an old schema).

    \b
    Example:
      leadfunnel migrate --db postgresql+psycopg://app@db/crm
    """
    funnel = open_funnel(db)
    version = funnel.repository.schema_version
    click.echo(f"{printable(db)}: leadfunnel schema version {version}, up to date")


@click.command()
@db_option
@click.option("--after", default=0, show_default=True, help="Print events after this position.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--follow", is_flag=True, help="Keep printing new events as they commit.")
@click.option(
    "--interval", default=1.0, show_default=True, help="Seconds between looks, with --follow."
)
@guarded
def events(db: str, after: int, limit: int, follow: bool, interval: float) -> None:
    """Print the event feed as JSON lines, in commit order.

    Each line is one event with its ``position``; keep the last one you handled and
    start from it next time (--after) to miss nothing.

    \b
    Examples:
      leadfunnel events --after 0 --limit 100
      leadfunnel events --after 1234 --follow | my-indexer
    """
    funnel = open_funnel(db, migrate="check")
    last = after
    while True:
        batch = funnel.events(after=last, limit=limit)
        for event in batch:
            click.echo(event.model_dump_json())
            last = event.position
        if not follow:
            return
        if not batch:
            time.sleep(interval)
