"""``leadfunnel qualify``: every raw lead against the profiles of a rules file."""

from __future__ import annotations

import click

from ._common import db_option, guarded, open_funnel

__all__ = ["qualify"]


@click.command()
@db_option
@click.option(
    "--rules",
    type=click.Path(dir_okay=False),
    required=True,
    help="TOML file with [[profiles]] (see docs/rules.md).",
)
@guarded
def qualify(db: str, rules: str) -> None:
    """Qualify every raw lead against the profiles in a rules file.

    \b
    Example:
      leadfunnel qualify --rules profiles.toml
    """
    from .._qualification import QualificationEngine

    engine = QualificationEngine.from_toml(rules)
    funnel = open_funnel(db, engine=engine)
    counts = funnel.qualify_all(actor="cli")
    click.echo(
        f"{counts['qualified']} qualified, {counts['unqualified']} disqualified, "
        f"{counts['waiting']} waiting for a call or more data"
    )
