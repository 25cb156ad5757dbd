"""The commands about the database itself: ``migrate`` its schema, read its ``events``
feed."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import click

from .._csv_out import printable
from . import when_interrupted
from ._common import (
    db_option,
    guarded,
    json_line,
    open_funnel,
    schema_version_before,
    without_password,
)

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
    before = schema_version_before(db)
    funnel = open_funnel(db)
    version = funnel.repository.schema_version
    where = printable(without_password(db))
    if before is None:
        click.echo(f"{where}: created the leadfunnel tables, schema version {version}")
    elif before < version:
        click.echo(f"{where}: upgraded the leadfunnel schema from version {before} to {version}")
    else:
        click.echo(f"{where}: leadfunnel schema version {version}, up to date")


_PAGE = 1000


class _Seconds(click.FloatRange):
    """A positive number of seconds, at most a day; ``nan`` refused (a range lets it
    through, and ``time.sleep`` does not)."""

    def __init__(self) -> None:
        super().__init__(min=0, max=86400, min_open=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value!r} is not a number of seconds.", param, ctx)
        return seconds


@click.command()
@db_option
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="POSITION",
    help="Print the events after this position (the last one you handled; 0 for the "
    "start of the feed).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Print at most N events, then stop (with --follow too). Default: no limit, the "
    "whole feed.",
)
@click.option(
    "--follow",
    is_flag=True,
    help="At the end of the feed, wait for new events and print them as they commit, "
    "until interrupted (or --limit is reached).",
)
@click.option(
    "--interval",
    type=_Seconds(),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="With --follow, seconds to wait before looking again once the feed is caught up.",
)
@guarded
def events(db: str, after: int, limit: int | None, follow: bool, interval: float) -> None:
    """Print the event feed as JSON lines, in commit order: every event after --after.

    Each line is one event with its ``position``; keep the last one you handled and
    start from it next time (--after) to miss nothing. The feed is read page by page,
    so a long one is printed whole without being held in memory.

    \b
    Examples:
      leadfunnel events > feed.jsonl
      leadfunnel events --after 1234 --limit 100
      leadfunnel events --after 1234 --follow | my-indexer
    """
    funnel = open_funnel(db, migrate="check")
    last = after  # a position beyond the feed reads nothing (every store answers [])
    left = limit
    try:
        while left is None or left > 0:
            wanted = _PAGE if left is None else min(_PAGE, left)
            page = funnel.events(after=last, limit=wanted)
            for event in page:
                click.echo(json_line(event.model_dump_json()))
                last = event.position
            if left is not None:
                left -= len(page)
            if len(page) < wanted:  # caught up with the feed
                if not follow:
                    return
                # A pipe's reader (my-indexer) sees each event when it commits, not when
                # a buffer fills.
                sys.stdout.flush()
                time.sleep(interval)
    except KeyboardInterrupt:  # Ctrl-C, the way to stop --follow: status 130
        when_interrupted(f"stopped after position {last} (go on with --after {last})")
        raise
