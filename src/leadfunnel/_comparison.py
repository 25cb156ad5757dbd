"""Two periods side by side: this month against the last, this week against the one
before, with the change at every step.

``funnel.compare(since, until)`` makes a :class:`FunnelComparison` of two
:class:`~leadfunnel.FunnelReport` objects, the period asked for and the one before it
(:func:`~leadfunnel._periods.previous_period`: the same calendar months before, or the
same length before); ``FunnelComparison(current, previous)`` compares any two reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from ._clock import require_aware
from ._csv_out import csv_text
from ._errors import InvalidArgumentError
from ._periods import previous_period
from ._reports import (
    FunnelReport,
    attention,
    build_report,
    cents,
    format_money,
    fraction,
    money_context,
    percent,
)
from ._repository import Repository
from ._results import Serialised

__all__ = ["FunnelComparison", "StepChange", "compare_periods"]


def _signed(value: int | Decimal) -> str:
    text = format_money(abs(value)) if isinstance(value, Decimal) else f"{abs(value):,}"
    return ("+" if value > 0 else "-" if value < 0 else "") + text


def _pct(value: float | None) -> str:
    """A rate as the report shows it (``<0.1%`` for 1 of 5,000, never ``0.0%``)."""
    return percent(value, none="-")


def _signed_pct(value: float | None) -> str:
    """A relative change: ``+20.0%``, ``+1,234,400.0%``."""
    return "-" if value is None else f"{value:+,.1%}"


def _number(value: float | None) -> float | Decimal | str:
    """A fraction for the CSV, to four places as the report's CSV writes it (``0.475``),
    more where four would show one that is not zero as zero (``0.00002``, not ``0.0``,
    nor ``2e-05``); a number, not text: a negative change is not a formula to
    neutralise."""
    if value is None:
        return ""
    text = fraction(value)
    number = float(text)
    return Decimal(text) if number and abs(number) < 1e-4 else number


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f} pts"


def _relative(now: int | Decimal, before: int | Decimal) -> float | None:
    return None if not before else float((now - before) / before)


def _tone(change: int | Decimal | float | None) -> Literal["up", "down", "same"]:
    if change is None or change == 0:
        return "same"
    return "up" if change > 0 else "down"


@dataclass(frozen=True, slots=True)
class StepChange:
    """One funnel step in two periods: the counts, the conversion into the step (its
    ``rate``), and how they moved.

    ``change`` is ``current - previous``; ``change_pct`` that change over ``previous``
    (``None`` when ``previous`` is 0); ``rate_change`` the difference of the rates, as
    a fraction (``0.05`` is five percentage points; ``None`` where a rate is unknown).
    """

    name: str
    label: str
    current: int
    previous: int
    current_rate: float | None
    previous_rate: float | None

    @property
    def change(self) -> int:
        """How many more (or fewer, negative) reached the step this period."""
        return self.current - self.previous

    @property
    def change_pct(self) -> float | None:
        """The change relative to the previous period (``None`` from zero)."""
        return _relative(self.current, self.previous)

    @property
    def rate_change(self) -> float | None:
        """The change of the step's conversion rate, in fractions of 1."""
        if self.current_rate is None or self.previous_rate is None:
            return None
        return self.current_rate - self.previous_rate

    def describe(self) -> str:
        """The change in words for a chart: ``+20 (+20.0%)``, ``+3 (new)``, ``no change``."""
        if self.change == 0:
            return "no change"
        relative = "new" if self.change_pct is None else _signed_pct(self.change_pct)
        return f"{_signed(self.change)} ({relative})"

    def to_dict(self) -> dict[str, Any]:
        """The step's figures as plain data."""
        return {
            "step": self.name,
            "current": self.current,
            "previous": self.previous,
            "change": self.change,
            "change_pct": self.change_pct,
            "current_rate": self.current_rate,
            "previous_rate": self.previous_rate,
            "rate_change": self.rate_change,
        }


@dataclass(frozen=True)
class FunnelComparison(Serialised):
    """A report of the period asked for (``current``) against one of the period before
    (``previous``): the change per step, in the overall conversion and in won revenue.

    ``str()`` is a text table; ``to_json()``, ``to_csv()`` (one row per measure) and
    ``to_svg()`` (paired bars, the changes in green or red) give the rest.
    """

    current: FunnelReport
    previous: FunnelReport

    @property
    def steps(self) -> dict[str, StepChange]:
        """Each funnel step's :class:`StepChange`, in funnel order."""
        return {
            name: StepChange(
                name,
                step.label,
                step.count,
                self.previous.steps[name].count,
                step.rate,
                self.previous.steps[name].rate,
            )
            for name, step in self.current.steps.items()
        }

    @property
    def conversion_change(self) -> float | None:
        """The change of the overall conversion (raw leads to won), as a fraction."""
        now, before = self.current.conversion, self.previous.conversion
        return None if now is None or before is None else now - before

    @property
    def revenue_change(self) -> Decimal:
        """Won revenue this period minus the previous period's (exactly)."""
        with money_context():
            return self.current.won_revenue - self.previous.won_revenue

    @property
    def revenue_change_pct(self) -> float | None:
        """The change of won revenue relative to the previous period (``None`` from 0)."""
        return _relative(self.current.won_revenue, self.previous.won_revenue)

    @property
    def title(self) -> str:
        """``Funnel comparison: <this period> vs <previous period>``."""
        return f"Funnel comparison: {self.current.period} vs {self.previous.period}"

    # --- output -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The comparison as plain JSON-ready data; ``reports`` holds both whole reports."""

        def period(report: FunnelReport) -> dict[str, Any]:
            return {
                "since": report.since.isoformat() if report.since else None,
                "until": report.until.isoformat() if report.until else None,
                "period": report.period,
            }

        return {
            "current": period(self.current),
            "previous": period(self.previous),
            "steps": [change.to_dict() for change in self.steps.values()],
            "conversion": {
                "current": self.current.conversion,
                "previous": self.previous.conversion,
                "change": self.conversion_change,
            },
            "won_revenue": {
                "current": str(cents(self.current.won_revenue)),
                "previous": str(cents(self.previous.won_revenue)),
                "change": str(cents(self.revenue_change)),
                "change_pct": self.revenue_change_pct,
            },
            "won_deals": {
                "current": self.current.won_deals,
                "previous": self.previous.won_deals,
                "change": self.current.won_deals - self.previous.won_deals,
            },
            "reports": {"current": self.current.to_dict(), "previous": self.previous.to_dict()},
        }

    def to_csv(self) -> str:
        """One row per measure: the seven steps, then ``raw_to_won`` (the conversion,
        as fractions), ``won_revenue`` and ``won_deals``. Columns: ``measure, current,
        previous, change, change_pct, current_rate, previous_rate, rate_change``
        (fractions rounded to four places, more where four would show one that is not
        zero as zero; empty where unknown)."""

        cell = _number

        rows: list[list[Any]] = [
            [
                c.name,
                c.current,
                c.previous,
                c.change,
                cell(c.change_pct),
                cell(c.current_rate),
                cell(c.previous_rate),
                cell(c.rate_change),
            ]
            for c in self.steps.values()
        ]
        rows.append(
            [
                "raw_to_won",
                cell(self.current.conversion),
                cell(self.previous.conversion),
                cell(self.conversion_change),
                "",
                "",
                "",
                "",
            ]
        )
        rows.append(
            [
                "won_revenue",
                cents(self.current.won_revenue),
                cents(self.previous.won_revenue),
                cents(self.revenue_change),
                cell(self.revenue_change_pct),
                "",
                "",
                "",
            ]
        )
        won_deals = self.current.won_deals - self.previous.won_deals
        rows.append(
            [
                "won_deals",
                self.current.won_deals,
                self.previous.won_deals,
                won_deals,
                cell(_relative(self.current.won_deals, self.previous.won_deals)),
                "",
                "",
                "",
            ]
        )
        header = [
            "measure",
            "current",
            "previous",
            "change",
            "change_pct",
            "current_rate",
            "previous_rate",
            "rate_change",
        ]
        return csv_text(header, rows)

    def __str__(self) -> str:
        return self.to_table()

    def to_table(self) -> str:
        """An aligned text table: both periods' counts and rates per step, the changes,
        then the conversion and won revenue, and what needs attention this period."""
        lines = [
            "Funnel comparison",
            f"  this period:     {self.current.period}",
            f"  previous period: {self.previous.period}",
            "",
        ]
        titles = ("this", "previous", "change", "change %", "rate", "was", "rate change")
        rows = [
            (
                str(c.current),
                str(c.previous),
                _signed(c.change) or "0",
                _signed_pct(c.change_pct),
                _pct(c.current_rate),
                _pct(c.previous_rate),
                _points(c.rate_change),
            )
            for c in self.steps.values()
        ]
        # Each column as wide as its widest cell (+1,234,400.0% included): rows stay aligned.
        widths = [
            max(least, *(len(row[i]) for row in rows))
            for i, least in enumerate((7, 9, 8, 9, 7, 7, 12))
        ]

        def line(first: str, cells: tuple[str, ...]) -> str:
            return f"  {first:<16} " + " ".join(
                f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True)
            )

        header = line("step", titles)
        lines += [header, "  " + "-" * (len(header) - 2)]
        lines += [line(c, row) for c, row in zip(self.steps, rows, strict=True)]
        revenue = f"{_signed(self.revenue_change) or '0'}" + (
            f", {_signed_pct(self.revenue_change_pct)}"
            if self.revenue_change_pct is not None
            else ""
        )
        lines += [
            "",
            f"  Raw leads to won: {_pct(self.current.conversion)}, "
            f"was {_pct(self.previous.conversion)} ({_points(self.conversion_change)})",
            f"  Won revenue: {format_money(self.current.won_revenue)}, "
            f"was {format_money(self.previous.won_revenue)} ({revenue})",
            f"  Won deals: {self.current.won_deals}, was {self.previous.won_deals}",
        ]
        callout = attention(self.current)
        if callout.lines:
            lines += ["", "Needs attention this period"]
            lines += [f"  {line}" for line in callout.lines]
        return "\n".join(lines) + "\n"

    def to_svg(self, *, width: int = 760) -> str:
        """The comparison as a self-contained SVG chart: headline tiles with their
        change, then per step this period's bar over the previous one's (one scale),
        the change in green (up) or red (down), and what needs attention this period.
        Every text meets WCAG AA contrast."""
        from ._charts import Pair, Tile, comparison_chart

        raw = self.steps["raw"]
        revenue_note = f"was {format_money(self.previous.won_revenue)}" + (
            f", {_signed_pct(self.revenue_change_pct)}"
            if self.revenue_change_pct is not None
            else ""
        )
        callout = attention(self.current)
        if callout.lines:
            callout = type(callout)("Needs attention this period", callout.lines, callout.tone)
        return comparison_chart(
            title="Funnel comparison",
            period=f"{self.current.period} vs {self.previous.period}",
            note="Leads (raw, qualified) and deals (the later steps) that reached each step "
            "in each period; the change is this period's count against the previous one's.",
            tiles=[
                Tile(
                    "Raw leads to won",
                    "n/a" if self.current.conversion is None else _pct(self.current.conversion),
                    "no raw leads before"
                    if self.previous.conversion is None
                    else f"was {_pct(self.previous.conversion)}"
                    + (
                        ""
                        if self.conversion_change is None
                        else f", {_points(self.conversion_change)}"
                    ),
                ),
                Tile("Won revenue", format_money(self.current.won_revenue), revenue_note),
                Tile("Raw leads", f"{raw.current:,}", f"was {raw.previous:,}, {raw.describe()}"),
            ],
            pairs=[
                Pair(c.label, c.current, c.previous, c.describe(), _tone(c.change))
                for c in self.steps.values()
            ],
            legend=(
                f"This period: {self.current.period}",
                f"Previous period: {self.previous.period}",
            ),
            callout=callout,
            width=width,
        )


def compare_periods(
    repository: Repository,
    since: datetime,
    until: datetime,
    *,
    previous: tuple[datetime, datetime] | None = None,
    now: datetime | None = None,
) -> FunnelComparison:
    """The body of ``Funnel.compare``: the report of ``since <= at < until`` against
    that of ``previous`` (default: :func:`~leadfunnel._periods.previous_period`)."""
    for name, bound in (("since", since), ("until", until)):
        if bound is None:
            raise InvalidArgumentError(
                f"{name} is None: a comparison needs both bounds, since= and until="
            )
        require_aware(bound, name)
    if previous is not None and (
        not isinstance(previous, tuple)
        or len(previous) != 2
        or not all(isinstance(bound, datetime) for bound in previous)
    ):  # every argument's type first, then what the values mean
        raise InvalidArgumentError(
            f"previous must be a (since, until) pair of datetimes, not {previous!r}"
        )
    if until <= since:  # also with previous= given: nothing asked for to compare
        raise InvalidArgumentError(
            f"the period is empty: until ({until.isoformat()}) is not after "
            f"since ({since.isoformat()})"
        )
    if previous is None:
        try:
            previous = previous_period(since, until)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
    else:
        for name, bound in zip(("previous since", "previous until"), previous, strict=True):
            require_aware(bound, name)
        if previous[1] <= previous[0]:  # refused as an empty period asked for is
            raise InvalidArgumentError(
                f"the previous period is empty: its until ({previous[1].isoformat()}) is "
                f"not after its since ({previous[0].isoformat()})"
            )
    current = build_report(repository, since=since, until=until, now=now)
    before = build_report(repository, since=previous[0], until=previous[1], now=now)
    return FunnelComparison(current, before)
