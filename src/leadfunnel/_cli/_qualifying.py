"""``leadfunnel qualify``: every raw lead against the profiles of a rules file."""

from __future__ import annotations

from datetime import datetime

import click

from .._csv_out import printable
from .._errors import ConfigError, LeadFunnelError
from . import when_interrupted
from ._common import (
    Interrupts,
    db_option,
    fail,
    guarded,
    lead_model_option,
    load_lead_model,
    open_funnel,
)

__all__ = ["qualify"]


@click.command()
@db_option
@click.option(
    "--rules",
    type=click.Path(dir_okay=False),
    required=True,
    help="TOML file with [[profiles]] (see docs/rules.md).",
)
@lead_model_option(
    "Your Lead subclass (e.g. mycrm.models:MyLead), for rules on its own fields "
    '({ rule = "field", field = "endpoints", min = 20 }); its module is imported before '
    "the rules are read, so the rules it registers with register_rule can be named."
)
@guarded
def qualify(db: str, rules: str, lead_model: str | None) -> None:
    """Qualify every raw lead against the profiles in a rules file.

    \b
    Example:
      leadfunnel qualify --rules profiles.toml
      leadfunnel qualify --rules profiles.toml --lead-model mycrm.models:MyLead
    """
    from .._qualification import QualificationEngine

    when_interrupted(
        "the pages of leads judged before were stored, each whole; qualify again to judge the rest"
    )
    # The model's module first: rules it registers (register_rule) are then nameable.
    model = load_lead_model(lead_model) if lead_model else None
    engine = QualificationEngine.from_toml(rules)
    with Interrupts() as interrupts:
        # Each page is dated by the clock when it is judged: a Ctrl-C that was dropped
        # (see Interrupts) stops the run there, with the pages before it stored.
        clock = _Checking(interrupts)
        try:
            funnel = open_funnel(db, engine=engine, lead_model=model, clock=clock)
        except ConfigError as exc:
            _advise_lead_model(exc)
            raise
        # A rule failing on one lead leaves that lead raw and the run goes on: the
        # others are judged and stored, and the failures are told at the end.
        failures: list[LeadFunnelError] = []

        def keep(error: LeadFunnelError) -> None:
            if len(failures) < _SHOWN:  # a rule failing on every lead: memory stays flat
                failures.append(error)

        counts = funnel.qualify_all(actor="cli", on_error=keep)
    skipped, failed = counts["skipped"], counts["failed"]
    click.echo(
        f"{counts['qualified']} qualified, {counts['unqualified']} disqualified, "
        f"{counts['waiting']} waiting for a call or more data"
        + (
            f", {skipped} skipped (erased, or moved meanwhile by another user or process)"
            if skipped
            else ""
        )
        + (f", {failed} left raw (a rule, or your lead class, refused them)" if failed else "")
    )
    if failed:
        for error in failures:
            click.echo(f"leadfunnel: {printable(str(error))}", err=True)
        more = f" (the first {len(failures)} above)" if failed > len(failures) else " (above)"
        fail(
            f"a rule or your lead class refused {failed} lead{'s' if failed != 1 else ''}"
            f"{more}, left as they were; the others were judged and stored: fix the rule "
            "(or the class) and run qualify again"
        )


def _advise_lead_model(error: ConfigError) -> None:
    """Raise ``error`` again with the command line's advice when it is a ``field`` rule's
    field the lead class lacks: the option to give (``--lead-model``), not the Python
    argument (``Funnel(..., lead_model=...)``) the library's message names."""
    from ..rules import _lacked_field_problem

    problem = _lacked_field_problem(error)
    if problem is not None:
        raise ConfigError(
            f"{problem}; fix the name, or give the lead model that has it: "
            "--lead-model MODULE:CLASS (your Lead subclass, e.g. mycrm.models:MyLead)"
        ) from None


#: How many of the failures of a run ``qualify`` shows.
_SHOWN = 5


class _Checking:
    """The system clock, checking for a dropped Ctrl-C each time it is read."""

    def __init__(self, interrupts: Interrupts) -> None:
        from .._clock import SystemClock

        self._clock = SystemClock()
        self._interrupts = interrupts

    def now(self) -> datetime:
        self._interrupts.check()
        return self._clock.now()
