"""The commands that show the funnel before it holds your data: ``demo`` builds a sample
one, ``diagram`` draws the lifecycles."""

from __future__ import annotations

from pathlib import Path

import click

from .._csv_out import printable
from . import when_interrupted
from ._common import (
    Interrupts,
    db_option,
    fail,
    guarded,
    open_funnel,
    refuse_output_over_database,
    without_password,
)

__all__ = ["demo", "diagram"]


@click.command()
@db_option
@click.option("--seed", default=7, show_default=True, help="Random seed: same seed, same funnel.")
@click.option("--leads", default=400, show_default=True, help="How many people arrive.")
@click.option(
    "--svg",
    type=click.Path(dir_okay=False, writable=True),
    default="leadfunnel-demo.svg",
    show_default=True,
    help="Where to write the funnel chart ('' for none).",
)
@guarded
def demo(db: str, seed: int, leads: int, svg: str) -> None:
    """Build a realistic sample funnel in the database and print its report.

    \b
    Example:
      leadfunnel demo --db sqlite:///demo.db --seed 42
    """
    from .._demo import DEMO_DAYS, SLACKER, build_demo

    if leads < 1:
        fail("--leads must be at least 1")
    if svg and not Path(svg).resolve().parent.is_dir():
        # Checked before anything is stored: a demo stopped half-way would block a rerun.
        fail(f"--svg {svg}: the folder {Path(svg).parent} does not exist; create it first")
    funnel = open_funnel(db)
    if svg:
        refuse_output_over_database(svg, "--svg")
    where = without_password(db)  # never shown with its password
    existing = funnel.leads(limit=1)
    if existing:
        fail(
            f"{where} already holds leads; run the demo on a new database, "
            "e.g. --db sqlite:///demo.db"
        )
    click.echo(
        f"Building a sample funnel in {printable(where)}: {leads} people arriving over the "
        f"{DEMO_DAYS} days up to now ...",
        err=True,
    )
    # One transaction: a demo interrupted (Ctrl-C) or failing half way leaves the
    # database as it was, so it can simply be run again.
    nothing = "nothing was stored (the demo is one transaction); run it again"
    stored = "the sample funnel is stored; only its printout was cut short (see leadfunnel report)"
    when_interrupted(nothing)
    try:
        with Interrupts() as interrupts, funnel.repository.transaction():
            summary = build_demo(funnel, seed=seed, leads=leads, tick=interrupts.check)
    except KeyboardInterrupt:
        # The store says, not where the press landed: it may be just after the commit.
        when_interrupted(stored if funnel.leads(limit=1) else nothing)
        raise
    when_interrupted(stored)
    report = funnel.report()
    click.echo(printable(str(report)), nl=False)
    click.echo(
        f"\nWho is who: {summary.people} people arrived from {summary.start:%Y-%m-%d} to "
        f"{summary.end:%Y-%m-%d}.\n"
        f"  {summary.leads} became raw leads (the report's raw count): {summary.inquiries} "
        f"inquiries and {summary.responded} bought-list suspects who responded.\n"
        f"  {summary.unresponsive} bought-list suspects have not responded: people, not "
        "leads, so not in the report.\n"
        f"  Of the leads, {summary.qualified} qualified, {summary.unqualified} unqualified, "
        f"{summary.waiting} still raw (waiting for a call or data).\n"
        f"  {summary.appointments} appointments set: {summary.won} won, {summary.lost} lost, "
        f"{summary.open} still open.\n"
        f"  {summary.follow_ups} follow-up touches logged; {SLACKER} lets about half of "
        "theirs slip (leadfunnel due shows them overdue)."
    )
    sizes = {kind: len(funnel.rep_list(kind)) for kind in ("not_sat", "not_bought", "never_booked")}
    click.echo(
        f"To call back: {sizes['not_sat']} appointments set but not sat, "
        f"{sizes['not_bought']} sat but didn't buy, {sizes['never_booked']} sweet-spot "
        "leads never booked (leadfunnel list not_sat|not_bought|never_booked)."
    )
    if svg:
        Path(svg).write_text(report.to_svg(), encoding="utf-8")
        click.echo(f"Funnel chart written to {svg}")


@click.command()
@click.argument("lifecycle", type=click.Choice(["lead", "opportunity"]))
@guarded
def diagram(lifecycle: str) -> None:
    """Print a lifecycle as a Mermaid state diagram.

    \b
    Example:
      leadfunnel diagram opportunity > opportunity.mmd
    """
    from .._lifecycle import diagram as draw

    click.echo(draw(lifecycle), nl=False)  # type: ignore[arg-type]
