"""Funnel reports: stage-to-stage conversion counted from history.

``funnel.report(since, until, by)`` asks the repository how many distinct subjects
reached each funnel step within the period (``since <= at < until``), then derives the
rates, the seed material's health checks, and what it takes to reach a goal. On the SQL
adapter the counting and grouping run in the database; this module only does
arithmetic on a handful of numbers, so a report costs the same however long the
history is. The money figures (won revenue, open pipeline) read the won and the open
deals, far fewer than the leads.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Context, Decimal, localcontext
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ._clock import require_aware
from ._csv_out import csv_text
from ._enums import Stage
from ._errors import InvalidArgumentError
from ._lifecycle import FUNNEL_STEPS
from ._models import Contact, Lead, Opportunity
from ._periods import month_of, period_label
from ._repository import (
    GroupBy,
    RepListRow,
    Repository,
    StageTime,
    StepCount,
    check_grouping,
)
from ._results import Serialised

if TYPE_CHECKING:
    from ._charts import Callout, Tile

__all__ = [
    "NO_GROUP",
    "FunnelReport",
    "HealthCheck",
    "Step",
    "TimeInStage",
    "attention",
    "build_report",
    "cents",
    "check_value",
    "format_money",
    "fraction",
    "group_label",
    "money_context",
    "percent",
    "report_tiles",
]

#: How the group of subjects without a value (no source, no owner...) is labelled in
#: tables, CSV and charts.
NO_GROUP = "(none)"

_LABELS = {
    "raw": "Raw leads",
    "qualified": "Qualified leads",
    "appointment_set": "Appointments set",
    "appointment_sat": "Appointments sat",
    "proposing": "Proposing",
    "contract_sent": "Contracts sent",
    "won": "Won",
}


@dataclass(frozen=True, slots=True)
class Step:
    """One funnel step: how many reached it, and the conversion into it.

    ``rate`` is ``count`` over the previous step's count (``None`` for ``raw`` and where
    the previous step is 0); ``overall`` is ``count`` over ``raw`` (``None`` where raw
    is 0). A contact with several deals can make a rate exceed 1.
    """

    name: str
    count: int
    rate: float | None
    overall: float | None

    @property
    def label(self) -> str:
        """A human name for the step."""
        return _LABELS.get(self.name, self.name)


@dataclass(frozen=True, slots=True)
class TimeInStage:
    """How long it takes to get from ``step`` to ``next``: the median, in days, over the
    ``count`` subjects that reached ``next`` within the report's period.

    Each subject is timed from its first arrival at ``step`` to its first at ``next``;
    ``qualified`` to ``appointment_set`` runs from the lead qualifying to its first
    appointment being set. A step that was skipped (a forced conversion skips
    ``qualified``) counts as reached when the move that skipped it was made.
    """

    step: str
    next: str
    median_days: float
    count: int

    @property
    def label(self) -> str:
        """A human name for the stretch, such as ``"Raw leads -> Qualified leads"``."""
        return f"{_LABELS.get(self.step, self.step)} -> {_LABELS.get(self.next, self.next)}"

    @classmethod
    def from_stage_time(cls, row: StageTime) -> TimeInStage:
        """From the repository's figure (seconds) to days."""
        return cls(row.step, row.next, row.median_seconds / 86_400, row.count)

    def to_dict(self) -> dict[str, Any]:
        """The figure as plain data."""
        return {
            "step": self.step,
            "next": self.next,
            "median_days": self.median_days,
            "count": self.count,
        }


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One of the seed benchmarks: a measured value against what a healthy funnel shows.

    ``ok`` is ``None`` when there is nothing to measure yet (no data in the period).
    """

    name: str
    label: str
    value: float | None
    expected: str
    ok: bool | None

    def to_dict(self) -> dict[str, Any]:
        """The check as plain data."""
        return {
            "name": self.name,
            "label": self.label,
            "value": self.value,
            "expected": self.expected,
            "ok": self.ok,
        }


def _ratio(top: int | float, bottom: int | float) -> float | None:
    return None if not bottom else top / bottom


def format_money(amount: Decimal) -> str:
    """``1234567.5`` as ``1,234,567.50``; whole amounts without cents (``1,234,567``);
    an amount with more places than cents (an application's ``amount`` may have them)
    with all of them, exactly (``12.3505``)."""
    if amount == amount.to_integral_value():
        return f"{int(amount):,}"
    return f"{cents(amount):,f}"


def cents(amount: Decimal) -> Decimal:
    """``amount`` written the same by every adapter, exactly: to the cent (``65000.00``),
    or with as many places as it has beyond them, trailing zeros left out (``12.3505``;
    an application's ``amount`` may hold more places than leadfunnel's)."""
    sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):  # NaN or infinity: no model lets one through
        return amount
    while exponent < -2 and digits and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    if exponent < -2:
        return Decimal((sign, digits, exponent))
    with localcontext(Context(prec=len(digits) + max(exponent, 0) + 3)):
        return amount.quantize(Decimal("0.01"))


def group_label(key: str | None) -> str:
    """A group key as shown to a reader: ``None`` (no value) is :data:`NO_GROUP`."""
    return NO_GROUP if key is None else key


def _key_order(key: str | None) -> tuple[bool, str]:
    """Group keys by name, no value last."""
    return key is None, key or ""


def _json_key(key: str | None) -> str:
    """A group or setter key in the report's JSON: ``""`` for no value (which no name
    is: a blank one is none)."""
    return "" if key is None else key


def _steps(counts: Mapping[str, int]) -> dict[str, Step]:
    steps: dict[str, Step] = {}
    raw = counts.get("raw", 0)
    previous: int | None = None
    for name in FUNNEL_STEPS:
        count = counts.get(name, 0)
        rate = None if previous is None else _ratio(count, previous)
        steps[name] = Step(name, count, rate, _ratio(count, raw))
        previous = count
    return steps


def _backward(before: Step, step: Step, target: Fraction) -> Fraction | None:
    """How many of ``before`` give ``target`` of ``step`` at its rate, exactly: the rate
    read from the counts it is the ratio of; ``None`` where the rate is unknown or zero
    (no number is known to be enough)."""
    rate = step.rate
    if not rate:
        return None
    if step.count > 0 and before.count > 0:
        return target * before.count / step.count
    # A step made by hand, its rate apart from its counts: the rate as it is.
    if not math.isfinite(rate) or rate < 0:
        return None
    return target / Fraction(rate)


def _check(
    name: str, label: str, value: float | None, expected: str, good: bool | None
) -> HealthCheck:
    return HealthCheck(name, label, value, expected, None if value is None else good)


@dataclass(frozen=True)
class FunnelReport(Serialised):
    """Counts and conversion per funnel step over a period, with health checks.

    ``steps`` maps each step of :data:`FUNNEL_STEPS` (in order) to a :class:`Step`;
    ``groups`` maps each group key (with ``by=``) to a report of its own; ``checks``
    holds the seed material's health checks; ``setters`` each setter's appointments-sat
    rate (a setter whose appointments don't stick stands out); ``time_in_stage`` the
    median days from each of :data:`~leadfunnel.TIMED_STEPS` to the next, keyed by the
    step left (a stretch nobody completed in the period is absent).

    Money: ``won_revenue`` sums the amounts of the ``won_deals`` deals won in the
    period (a group's, those of its deals); ``pipeline_value`` sums the amounts of the
    ``open_deals`` deals open when the report was made (``as_of``), of which
    ``unpriced_deals`` have no amount yet. ``first_at`` is when the oldest lead was
    created, or the oldest contact or deal if one is older (a customer imported with
    its past deals): where an open period starts, named by ``first_what``.

    ``not_sat`` counts the appointments due in the period (their time within it, and
    before ``as_of``) that never sat: the appointments-sat check is the appointments
    sat in the period against those sat and those not sat, so an appointment booked
    for next week is not a no-show this week. ``None`` (a report made by hand) checks
    the appointments sat against those set instead.
    """

    steps: Mapping[str, Step]
    since: datetime | None = None
    until: datetime | None = None
    by: str | None = None
    groups: Mapping[str | None, FunnelReport] = field(default_factory=dict)
    unqualified: int = 0
    qualified_leads: int = 0
    never_followed_up: int = 0
    touches_on_qualified: int = 0
    setters: Mapping[str | None, float | None] = field(default_factory=dict)
    time_in_stage: Mapping[str, TimeInStage] = field(default_factory=dict)
    as_of: datetime | None = None
    first_at: datetime | None = None
    first_what: str = "first lead"
    won_revenue: Decimal = Decimal(0)
    won_deals: int = 0
    pipeline_value: Decimal = Decimal(0)
    open_deals: int = 0
    unpriced_deals: int = 0
    not_sat: int | None = None

    # --- derived numbers ----------------------------------------------------------------

    def __getitem__(self, step: str) -> Step:
        return self.steps[step]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps.values())

    @property
    def conversion(self) -> float | None:
        """The overall conversion, raw leads to won deals (``None`` without raw leads)."""
        return self.steps["won"].overall

    @property
    def period(self) -> str:
        """The period in words: ``2026-03-02 to 2026-03-08`` (both days included), or
        moments with their zone; an open start is the first lead's day (or an older
        contact's or deal's), an open end the day the report was made."""
        return period_label(
            self.since,
            self.until,
            first=self.first_at,
            as_of=self.as_of,
            first_what=self.first_what,
        )

    @property
    def checks(self) -> dict[str, HealthCheck]:
        """The seed benchmarks, each with its expectation and a flag."""
        s = self.steps
        sat_count = s["appointment_sat"].count
        due = s["appointment_set"].count if self.not_sat is None else sat_count + self.not_sat
        sat = _ratio(sat_count, due)
        close = _ratio(s["won"].count, s["contract_sent"].count)
        unqualified = _ratio(self.unqualified, s["raw"].count)
        never = _ratio(self.never_followed_up, self.qualified_leads)
        touches = _ratio(self.touches_on_qualified, self.qualified_leads)
        checks = [
            _check(
                "appointments_sat",
                "Appointments sat / due",
                sat,
                ">= 90%",
                sat is not None and sat >= 0.9,
            ),
            _check(
                "close_rate",
                "Won / contracts sent",
                close,
                ">= 90%",
                close is not None and close >= 0.9,
            ),
            _check(
                "unqualified_share",
                "Unqualified share of raw leads",
                unqualified,
                "<= 50% is normal",
                unqualified is not None and unqualified <= 0.5,
            ),
            _check(
                "never_followed_up",
                "Qualified leads never followed up",
                never,
                "0%; a well-known study found 71% never are",
                never == 0,
            ),
            _check(
                "touches_per_qualified",
                "Average touches per qualified lead",
                touches,
                ">= 2 (the study's average: 1.3)",
                touches is not None and touches >= 2,
            ),
        ]
        return {c.name: c for c in checks}

    @property
    def failing_checks(self) -> list[HealthCheck]:
        """The health checks that measured something and found it off (``ok`` False)."""
        return [check for check in self.checks.values() if check.ok is False]

    @property
    def weak_setters(self) -> list[str | None]:
        """Setters whose appointments-sat rate is under 90%, worst first."""
        weak = [
            (rate, name) for name, rate in self.setters.items() if rate is not None and rate < 0.9
        ]
        # Worst first; equal rates by name (None, no setter, last), so that every store
        # lists them alike, whatever order its groups came in.
        return [
            name
            for _, name in sorted(weak, key=lambda pair: (pair[0], pair[1] is None, pair[1] or ""))
        ]

    def required_for(self, wins: int) -> dict[str, int | None]:
        """How many of each step a goal of ``wins`` needs at the current rates.

        Works backward from ``won`` through each step's rate, rounding up; a step whose
        rate is unknown or zero makes every earlier step ``None`` (no number of them
        is known to be enough), unless nothing is needed: no wins need none of anything.
        """
        if isinstance(wins, bool) or not isinstance(wins, int) or wins < 0:
            raise InvalidArgumentError(f"wins={wins!r}: give a whole number, 0 or more")
        needed: dict[str, int | None] = {}
        # Exact fractions of the counts: floats round (49 raw to 1 won, a million wins:
        # 49,000,001 raw) and overflow on a goal past 1e308.
        target: Fraction | None = Fraction(wins)
        for index in range(len(FUNNEL_STEPS) - 1, -1, -1):
            name = FUNNEL_STEPS[index]
            needed[name] = None if target is None else math.ceil(target)
            if target and index > 0:
                target = _backward(self.steps[FUNNEL_STEPS[index - 1]], self.steps[name], target)
        return {name: needed[name] for name in FUNNEL_STEPS}

    # --- output -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (amounts as decimal strings, exact)."""
        data: dict[str, Any] = {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "period": self.period,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "by": self.by,
            "steps": [
                {"step": s.name, "count": s.count, "rate": s.rate, "overall": s.overall}
                for s in self.steps.values()
            ],
            "conversion": self.conversion,
            "won_revenue": str(cents(self.won_revenue)),
            "won_deals": self.won_deals,
            "pipeline": {
                "value": str(cents(self.pipeline_value)),
                "open_deals": self.open_deals,
                "unpriced_deals": self.unpriced_deals,
            },
            "checks": [c.to_dict() for c in self.checks.values()],
            "failing_checks": [c.name for c in self.failing_checks],
            # No setter is "" here, as the groups' key of no value is: JSON keys are
            # text, and "None" was a name a setter could have.
            "setters": {_json_key(k): v for k, v in self.setters.items()},
            "weak_setters": [_json_key(name) for name in self.weak_setters],
            "time_in_stage": [t.to_dict() for t in self.time_in_stage.values()],
        }
        if self.by is not None or self.groups:  # by= without data: no group, still the key
            data["groups"] = {_json_key(key): group.to_dict() for key, group in self.groups.items()}
        return data

    def to_csv(self, *, groups: bool = False) -> str:
        """A header row and one row per step (``step,count,rate,overall``).

        With ``groups=True`` (and a report made with ``by=``), two columns come first:
        ``scope`` (``all`` for the whole funnel's rows, else what the report is grouped
        by, such as ``source``) and ``group`` (the group's key; empty for the whole
        funnel, ``(none)`` for the subjects without a value), then every group's steps
        follow the totals. Cells a spreadsheet would run as a formula are neutralised
        (a single quote in front).
        """

        def cell(value: float | None) -> str:
            return "" if value is None else fraction(value)

        if not groups:
            return csv_text(
                ["step", "count", "rate", "overall"],
                ([s.name, s.count, cell(s.rate), cell(s.overall)] for s in self.steps.values()),
            )
        scope = self.by or "group"
        sections: list[tuple[str, str, FunnelReport]] = [("all", "", self)]
        sections += [(scope, group_label(k), g) for k, g in self.groups.items()]
        return csv_text(
            ["scope", "group", "step", "count", "rate", "overall"],
            (
                [where, key, s.name, s.count, cell(s.rate), cell(s.overall)]
                for where, key, report in sections
                for s in report.steps.values()
            ),
        )

    def __str__(self) -> str:
        return self.to_table()

    def to_table(self) -> str:
        """An aligned text table of the steps, the money, the health checks and any
        groups."""
        lines = [self.title, ""]
        lines += _table(self)
        lines += ["", *_money_lines(self)]
        lines += ["", "Health checks"]
        for check in self.checks.values():
            flag = {True: "ok", False: "CHECK", None: "-"}[check.ok]
            lines.append(
                f"  {check.label:<36} {check_value(check):>6}  {flag:<5}  expect {check.expected}"
            )
        weak = self.weak_setters
        if weak:
            lines.append(
                "  Setters whose appointments don't stick: "
                + ", ".join(f"{group_label(n)} ({_setter_rate(self.setters[n])} sat)" for n in weak)
            )
        if self.time_in_stage:
            lines += ["", "Time in stage (median days)"]
            for stretch in self.time_in_stage.values():
                lines.append(
                    f"  {stretch.label:<36} {stretch.median_days:>6.1f}  "
                    f"over {stretch.count} {'subject' if stretch.count == 1 else 'subjects'}"
                )
        for key, group in self.groups.items():
            lines += ["", f"{self.by} = {group_label(key)}"]
            lines += _table(group)
            lines.append(
                f"  raw to won {percent(group.conversion)}, "
                f"won revenue {format_money(group.won_revenue)} "
                f"({group.won_deals} {'deal' if group.won_deals == 1 else 'deals'})"
            )
            if group.time_in_stage:
                lines.append(
                    "  median days: "
                    + ", ".join(
                        f"{t.step} -> {t.next} {t.median_days:.1f}"
                        for t in group.time_in_stage.values()
                    )
                )
        return "\n".join(lines) + "\n"

    @property
    def title(self) -> str:
        """``Funnel report, 2026-03-02 to 2026-03-08`` (``, by source`` with ``by=``)."""
        return f"Funnel report, {self.period}" + (f", by {self.by}" if self.by else "")

    def to_svg(self, *, width: int | None = None) -> str:
        """The report as a self-contained SVG chart.

        Without groups: the period, the overall conversion (raw to won), won revenue and
        open pipeline, one bar per step (widths to scale) and a call-out for failing
        health checks and weak setters. With groups (``by=``): one small funnel per
        group, all drawn to the same scale, under the same header; more groups than
        fit (over 24) raise :class:`~leadfunnel.InvalidArgumentError`, since a chart
        that small would mislead: use the CSV. Every text meets WCAG AA contrast
        (4.5:1) against what it is drawn on.
        """
        from ._charts import Bar, Panel, funnel_chart, small_multiples

        made = f"made {self.as_of.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if self.as_of else ""
        tiles = report_tiles(self)
        if not self.groups:
            note = (
                "Leads (raw, qualified) and deals (later steps) reaching each step in the period."
            )
            return funnel_chart(
                title="Funnel report",
                period=self.period,
                note=f"{note} {made[:1].upper()}{made[1:]}." if made else note,
                tiles=tiles,
                bars=[
                    Bar(
                        s.label,
                        _SHORT[s.name],
                        s.count,
                        "" if s.rate is None else f"{percent(s.rate)} of previous",
                    )
                    for s in self.steps.values()
                ],
                callout=attention(self),
                **({"width": width} if width else {}),
            )
        most = max(s.count for g in self.groups.values() for s in g.steps.values())
        try:
            return small_multiples(
                title=f"Funnel report, by {self.by}",
                period=self.period,
                note=f"One funnel per {self.by}, all drawn to one scale (a full bar is "
                f"{most:,}); the tiles and the call-out are the whole funnel's"
                + (f"; {made}." if made else "."),
                tiles=tiles,
                panels=[
                    Panel(
                        group_label(key),
                        f"raw to won {percent(group.conversion)}, "
                        f"won {format_money(group.won_revenue)}",
                        [Bar(s.label, _SHORT[s.name], s.count) for s in group.steps.values()],
                    )
                    for key, group in self.groups.items()
                ],
                callout=attention(self),
                width=width,
            )
        except ValueError as exc:
            raise InvalidArgumentError(f"cannot draw the report by {self.by}: {exc}") from None


_SHORT = {
    "raw": "Raw",
    "qualified": "Qualified",
    "appointment_set": "Appt set",
    "appointment_sat": "Appt sat",
    "proposing": "Proposing",
    "contract_sent": "Contract",
    "won": "Won",
}


def report_tiles(report: FunnelReport) -> list[Tile]:
    """The headline figures a chart shows: conversion, won revenue, open pipeline."""
    from ._charts import Tile

    won, raw = report.steps["won"].count, report.steps["raw"].count
    unpriced = f", {report.unpriced_deals} unpriced" if report.unpriced_deals else ""
    return [
        Tile("Raw leads to won", percent(report.conversion), f"{won:,} won of {raw:,} raw leads"),
        Tile(
            "Won revenue",
            format_money(report.won_revenue),
            f"{report.won_deals:,} {'deal' if report.won_deals == 1 else 'deals'} won",
        ),
        Tile(
            "Open pipeline (now)",
            format_money(report.pipeline_value),
            f"{report.open_deals:,} open {'deal' if report.open_deals == 1 else 'deals'}"
            + unpriced,
        ),
    ]


def attention(report: FunnelReport) -> Callout:
    """The call-out of a chart: failing health checks and weak setters, or the
    all-clear."""
    from ._charts import Callout

    lines = [
        f"{check.label}: {check_value(check)} (expect {check.expected})"
        for check in report.failing_checks
    ]
    weak = report.weak_setters
    if weak:
        lines.append(
            "Setters whose appointments don't stick: "
            + ", ".join(f"{group_label(n)} ({_setter_rate(report.setters[n])} sat)" for n in weak)
        )
    if lines:
        return Callout("Needs attention", lines, "alert")
    if all(check.ok is None for check in report.checks.values()):
        return Callout("Health checks: nothing to measure in this period yet", [], "muted")
    return Callout("Health checks: all pass", [], "ok")


def percent(value: float | None, digits: int = 1, *, none: str = "n/a") -> str:
    """A rate as shown: ``47.5%``, ``1,200.0%``; one that is not zero never reads as
    zero (1 of 5,000: ``<0.1%``), nor one short of all as all (``>99.9%``)."""
    if value is None:
        return none
    text = f"{value:,.{digits}%}"
    if value > 0 and text == f"{0:.{digits}%}":
        return f"<{10**-digits:.{digits}f}%"
    if value < 1 and text == f"{1:.{digits}%}":
        return f">{100 - 10**-digits:.{digits}f}%"
    return text


def fraction(value: float, places: int = 4) -> str:
    """A fraction to ``places`` places (``0.4750``), more where that would show one
    that is not zero as zero, or one short of 1 as 1 (``0.00002``, ``0.99998``)."""
    text = f"{value:.{places}f}"
    while places < 12 and ((value and float(text) == 0) or (value < 1 and float(text) == 1)):
        places += 1
        text = f"{value:.{places}f}"
    return text


#: Each health check's bar, as :attr:`FunnelReport.checks` judges it: a value failing it
#: is never shown as one that would pass (``89.6%``, not ``90%``, against ">= 90%").
#: True: at least the bar; False: at most.
_BARS = {
    "appointments_sat": (0.9, True),
    "close_rate": (0.9, True),
    "unqualified_share": (0.5, False),
    "touches_per_qualified": (2.0, True),
}


def _against(value: float, bar: float, at_least: bool, digits: int, *, rate: bool = True) -> str:
    """``value``, which fails ``bar``, shown with up to two more digits than ``digits``
    where fewer would round it onto the bar; ``<90%`` (``>50%``) if even those would."""
    places = 2 if rate else 0
    for more in range(3):
        shown = round(value, digits + more + places)
        if (shown < bar) if at_least else (shown > bar):
            return percent(value, digits + more) if rate else f"{value:.{digits + more}f}"
    limit = percent(bar, digits) if rate else f"{bar:.{digits}f}"
    return ("<" if at_least else ">") + limit


def _setter_rate(rate: float | None) -> str:
    """A weak setter's appointments-sat rate (under 90%): ``50%``, ``89.6%``."""
    return "n/a" if rate is None else _against(rate, 0.9, True, 0)


def check_value(check: HealthCheck) -> str:
    """A health check's measured value as shown (``55%``, ``1.9``, ``n/a``); a failing
    value never as one that passes (``89.6%``), a share that is not zero never as
    ``0%`` (``<1%``)."""
    if check.value is None:
        return "n/a"
    rate = check.name != "touches_per_qualified"
    bar = _BARS.get(check.name)
    if check.ok is False and bar is not None:
        return _against(check.value, *bar, 0 if rate else 1, rate=rate)
    return percent(check.value, 0) if rate else f"{check.value:.1f}"


def _money_lines(report: FunnelReport) -> list[str]:
    won = report.steps["won"].count
    raw = report.steps["raw"].count
    deals = "deal" if report.won_deals == 1 else "deals"
    unpriced = f", {report.unpriced_deals} without an amount yet" if report.unpriced_deals else ""
    # More won than arrived: deals won in the period from leads that came before it.
    earlier = "; deals from earlier leads count too" if won > raw else ""
    return [
        f"  Raw leads to won: {percent(report.conversion)} ({won} of {raw}{earlier})",
        f"  Won revenue: {format_money(report.won_revenue)} ({report.won_deals} {deals})",
        f"  Open pipeline now: {format_money(report.pipeline_value)} "
        f"({report.open_deals} open {'deal' if report.open_deals == 1 else 'deals'}{unpriced})",
    ]


def _table(report: FunnelReport) -> list[str]:
    rows = [
        (s.name, str(s.count), percent(s.rate, none="-"), percent(s.overall, none="-"))
        for s in report.steps.values()
    ]
    # Columns as wide as their widest cell (a count of 10 million, a rate of 1,200.0%).
    count, rate, overall = (
        max(width, *(len(row[i]) for row in rows)) for i, width in ((1, 7), (2, 8), (3, 8))
    )
    header = f"  {'step':<18} {'count':>{count}} {'rate':>{rate}} {'overall':>{overall}}"
    lines = [header, "  " + "-" * (len(header) - 2)]
    for name, n, r, o in rows:
        lines.append(f"  {name:<18} {n:>{count}} {r:>{rate}} {o:>{overall}}")
    return lines


def _counts(rows: list[StepCount]) -> dict[str | None, dict[str, int]]:
    grouped: dict[str | None, dict[str, int]] = {}
    for row in rows:
        grouped.setdefault(row.group, {})[row.step] = row.count
    return grouped


_OPEN_STAGES = (Stage.APPOINTMENT_SET, Stage.APPOINTMENT_SAT, Stage.PROPOSING, Stage.CONTRACT_SENT)
_PAGE = 1000


def _deals(repository: Repository, stage: Stage) -> Iterator[list[Opportunity]]:
    """The deals at ``stage``, a page at a time (keyset paging: flat memory)."""
    after = None
    while True:
        page = repository.opportunities(stage=stage, after=after, limit=_PAGE)
        if page:
            yield page
        if len(page) < _PAGE:
            return
        after = (page[-1].created_at, page[-1].id)


def _group_keys(
    repository: Repository, deals: list[Opportunity], by: GroupBy | None
) -> list[str | None]:
    """Each deal's group, as :meth:`Repository.step_counts` groups its won step."""
    if by is None:
        return [None] * len(deals)
    if by == "owner":
        return [deal.owner for deal in deals]
    if by == "setter":
        return [deal.setter for deal in deals]
    if by == "month":
        return [month_of(deal.closed_at) if deal.closed_at else None for deal in deals]
    # The deal's lead, or its contact's (a deal booked on a contact), as step_counts
    # finds it; a contact with no lead at all counts under its own source.
    found = repository.get_many({deal.contact_id for deal in deals})
    contacts = [found.get(deal.contact_id) for deal in deals]
    lead_ids = [
        deal.lead_id
        if deal.lead_id is not None
        else contact.lead_id
        if isinstance(contact, Contact)
        else None
        for deal, contact in zip(deals, contacts, strict=True)
    ]
    leads = repository.get_many({i for i in lead_ids if i is not None})
    keys: list[str | None] = []
    for contact, lead_id in zip(contacts, lead_ids, strict=True):
        lead = leads.get(lead_id) if lead_id is not None else None
        if isinstance(lead, Lead):
            keys.append(getattr(lead, by, None))
        elif by == "source" and isinstance(contact, Contact):
            keys.append(contact.source)
        else:
            keys.append(None)
    return keys


@dataclass
class _Money:
    """Won revenue (overall and per group) and the open pipeline."""

    won: Decimal = Decimal(0)
    won_deals: int = 0
    won_by_group: dict[str | None, Decimal] = field(default_factory=dict)
    won_deals_by_group: dict[str | None, int] = field(default_factory=dict)
    pipeline: Decimal = Decimal(0)
    open_deals: int = 0
    unpriced: int = 0


def _money(
    repository: Repository,
    since: datetime | None,
    until: datetime | None,
    by: GroupBy | None,
) -> _Money:
    money = _Money()
    with money_context():  # sums exact, whatever the amounts
        _add_money(repository, since, until, by, money)
    return money


def money_context() -> AbstractContextManager[Context]:
    """A decimal context in which sums and differences of amounts are exact: 200 digits,
    more than any amount a store keeps (PostgreSQL's and MariaDB's numeric columns hold
    at most 65; the default context's 28 rounded larger application amounts)."""
    return localcontext(Context(prec=200))


def _add_money(
    repository: Repository,
    since: datetime | None,
    until: datetime | None,
    by: GroupBy | None,
    money: _Money,
) -> None:
    for won in repository.won_batches(since=since, until=until, size=_PAGE):
        for deal, key in zip(won, _group_keys(repository, won, by), strict=True):
            amount = deal.amount or Decimal(0)
            money.won += amount
            money.won_deals += 1
            money.won_by_group[key] = money.won_by_group.get(key, Decimal(0)) + amount
            money.won_deals_by_group[key] = money.won_deals_by_group.get(key, 0) + 1
    for stage in _OPEN_STAGES:
        for page in _deals(repository, stage):
            for deal in page:
                money.open_deals += 1
                if deal.amount is None:
                    money.unpriced += 1
                else:
                    money.pipeline += deal.amount


def _first_at(repository: Repository) -> tuple[datetime | None, str]:
    """When the data starts, and what it starts with: the oldest lead, unless a
    contact or deal is older."""
    oldest = [
        (at, kind != "lead")
        for kind in ("lead", "contact", "opportunity")
        if (at := repository.oldest_created_at(kind)) is not None
    ]
    if not oldest:
        return None, "first lead"
    at, not_a_lead = min(oldest)
    return at, "first record" if not_a_lead else "first lead"


def build_report(
    repository: Repository,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by: GroupBy | None = None,
    now: datetime | None = None,
) -> FunnelReport:
    """The body of ``Funnel.report``: see there. ``now`` (default: the system's UTC
    time) is when the report is made: the end of an open period, and the moment the
    open pipeline is taken at."""
    check_grouping(by, "a report")
    for name, bound in (("since", since), ("until", until), ("now", now)):
        if bound is not None:
            require_aware(bound, name)
    if since is not None and until is not None and until < since:
        raise InvalidArgumentError(
            f"until ({until.isoformat()}) is before since ({since.isoformat()}); a report "
            "counts since <= at < until: swap them"
        )
    as_of = now if now is not None else datetime.now(UTC)
    totals = _counts(repository.step_counts(since=since, until=until)).get(None, {})
    followed = repository.qualified_follow_up(since=since, until=until)
    times = {
        row.step: TimeInStage.from_stage_time(row)
        for row in repository.stage_times(since=since, until=until)
    }
    group_times: dict[str | None, dict[str, TimeInStage]] = {}
    if by is not None:
        for row in repository.stage_times(since=since, until=until, by=by):
            group_times.setdefault(row.group, {})[row.step] = TimeInStage.from_stage_time(row)
    # Each setter's appointments-sat rate needs two steps of the per-setter counts (all
    # of them only for by="setter"): the index on step keeps that to the deals' rows.
    setter_steps = None if by == "setter" else ("appointment_set", "appointment_sat")
    setter_counts = _counts(
        repository.step_counts(since=since, until=until, by="setter", steps=setter_steps)
    )
    # The appointments that came due in the period and never sat: with those sat in the
    # period, what the appointments-sat rate is counted against (an appointment booked
    # for after the report is nobody's no-show yet).
    # Erased people's included: an erasure leaves history, and so this rate, as it was.
    no_shows = [
        row
        for row in repository.no_shows(now=as_of, entered_since=since, entered_until=until)
        if isinstance(row.record, Opportunity)
    ]
    setter_no_shows = Counter(_deal(row).setter for row in no_shows)
    setters = {
        key: _ratio(sat, sat + setter_no_shows[key])
        # In one order on every run (setters by name, no setter last), not a set's.
        for key in sorted({*setter_counts, *setter_no_shows}, key=_key_order)
        if (sat := setter_counts.get(key, {}).get("appointment_sat", 0)) + setter_no_shows[key]
    }
    group_no_shows: Counter[str | None] = Counter()
    if by == "month":
        group_no_shows.update(month_of(row.since) for row in no_shows)
    elif by is not None:
        # A page of deals at a time: a group by source reads each deal's contact and
        # lead, which for every no-show at once held them all (a scale audit: +64 MB at
        # 200k leads, growing with them).
        for start in range(0, len(no_shows), _PAGE):
            page = [_deal(row) for row in no_shows[start : start + _PAGE]]
            group_no_shows.update(_group_keys(repository, page, by))
    money = _money(repository, since, until, by)
    first_at, first_what = _first_at(repository) if since is None else (None, "first lead")
    groups: dict[str | None, FunnelReport] = {}
    if by is not None:
        by_group = (
            setter_counts
            if by == "setter"
            else _counts(repository.step_counts(since=since, until=until, by=by))
        )
        for key in sorted({*by_group, *group_no_shows}, key=_key_order):
            counts = by_group.get(key, {})
            groups[key] = FunnelReport(
                steps=_steps(counts),
                since=since,
                until=until,
                unqualified=counts.get("unqualified", 0),
                time_in_stage=group_times.get(key, {}),
                as_of=as_of,
                first_at=first_at,
                first_what=first_what,
                won_revenue=money.won_by_group.get(key, Decimal(0)),
                won_deals=money.won_deals_by_group.get(key, 0),
                not_sat=group_no_shows[key],
            )
    return FunnelReport(
        steps=_steps(totals),
        since=since,
        until=until,
        by=by,
        groups=groups,
        unqualified=totals.get("unqualified", 0),
        qualified_leads=followed.qualified,
        never_followed_up=followed.never_touched,
        touches_on_qualified=followed.touches,
        setters=setters,
        time_in_stage=times,
        as_of=as_of,
        first_at=first_at,
        first_what=first_what,
        won_revenue=money.won,
        won_deals=money.won_deals,
        pipeline_value=money.pipeline,
        open_deals=money.open_deals,
        unpriced_deals=money.unpriced,
        not_sat=len(no_shows),
    )


def _deal(row: RepListRow) -> Opportunity:
    assert isinstance(row.record, Opportunity)  # the not_sat list holds deals
    return row.record
