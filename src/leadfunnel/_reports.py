"""Funnel reports: stage-to-stage conversion counted from history.

``funnel.report(since, until, by)`` asks the repository how many distinct subjects
reached each funnel step within the period (``since <= at < until``), then derives the
rates, the seed material's health checks, and what it takes to reach a goal. On the SQL
adapter the counting and grouping run in the database; this module only does
arithmetic on a handful of numbers, so a report costs the same however long the
history is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from ._csv_out import csv_text
from ._lifecycle import FUNNEL_STEPS
from ._repository import GroupBy, Repository, StageTime, StepCount, check_grouping

__all__ = ["FunnelReport", "HealthCheck", "Step", "TimeInStage", "build_report"]

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


def _check(
    name: str, label: str, value: float | None, expected: str, good: bool | None
) -> HealthCheck:
    return HealthCheck(name, label, value, expected, None if value is None else good)


@dataclass(frozen=True)
class FunnelReport:
    """Counts and conversion per funnel step over a period, with health checks.

    ``steps`` maps each step of :data:`FUNNEL_STEPS` (in order) to a :class:`Step`;
    ``groups`` maps each group key (with ``by=``) to a report of its own; ``checks``
    holds the seed material's health checks; ``setters`` each setter's appointments-sat
    rate (a setter whose appointments don't stick stands out); ``time_in_stage`` the
    median days from each of :data:`~leadfunnel.TIMED_STEPS` to the next, keyed by the
    step left (a stretch nobody completed in the period is absent).
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

    # --- derived numbers ----------------------------------------------------------------

    def __getitem__(self, step: str) -> Step:
        return self.steps[step]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps.values())

    @property
    def checks(self) -> dict[str, HealthCheck]:
        """The seed benchmarks, each with its expectation and a flag."""
        s = self.steps
        sat = _ratio(s["appointment_sat"].count, s["appointment_set"].count)
        close = _ratio(s["won"].count, s["contract_sent"].count)
        unqualified = _ratio(self.unqualified, s["raw"].count)
        never = _ratio(self.never_followed_up, self.qualified_leads)
        touches = _ratio(self.touches_on_qualified, self.qualified_leads)
        checks = [
            _check(
                "appointments_sat",
                "Appointments sat / set",
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
                "0% (a well-known study found 71% never are)",
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
    def weak_setters(self) -> list[str | None]:
        """Setters whose appointments-sat rate is under 90%, worst first."""
        weak = [
            (rate, name) for name, rate in self.setters.items() if rate is not None and rate < 0.9
        ]
        return [name for _, name in sorted(weak, key=lambda pair: pair[0])]

    def required_for(self, wins: int) -> dict[str, int | None]:
        """How many of each step a goal of ``wins`` needs at the current rates.

        Works backward from ``won`` through each step's rate, rounding up; a step whose
        rate is unknown or zero makes it and every earlier step ``None``.
        """
        if isinstance(wins, bool) or not isinstance(wins, int) or wins < 0:
            raise ValueError(f"wins must be a whole number >= 0, not {wins!r}")
        needed: dict[str, int | None] = {}
        target: float | None = float(wins)
        for name in reversed(FUNNEL_STEPS):
            needed[name] = None if target is None else math.ceil(target - 1e-9)
            rate = self.steps[name].rate
            if target is not None and name != FUNNEL_STEPS[0]:
                target = None if not rate else target / rate
        return {name: needed[name] for name in FUNNEL_STEPS}

    # --- output -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        data: dict[str, Any] = {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "by": self.by,
            "steps": [
                {"step": s.name, "count": s.count, "rate": s.rate, "overall": s.overall}
                for s in self.steps.values()
            ],
            "checks": [c.to_dict() for c in self.checks.values()],
            "setters": {str(k): v for k, v in self.setters.items()},
            "time_in_stage": [t.to_dict() for t in self.time_in_stage.values()],
        }
        if self.groups:
            data["groups"] = {
                ("" if key is None else key): group.to_dict() for key, group in self.groups.items()
            }
        return data

    def to_json(self, *, indent: int | None = 2) -> str:
        """The report as JSON."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self, *, groups: bool = False) -> str:
        """A header row and one row per step (``step,count,rate,overall``).

        With ``groups=True`` (and a report made with ``by=``), a ``group`` column comes
        first and every group's steps follow the totals (whose group is empty). A group
        name that a spreadsheet would run as a formula is prefixed with a single quote.
        """

        def cell(value: float | None) -> str:
            return "" if value is None else f"{value:.4f}"

        if not groups:
            return csv_text(
                ["step", "count", "rate", "overall"],
                ([s.name, s.count, cell(s.rate), cell(s.overall)] for s in self.steps.values()),
            )
        sections: list[tuple[str, FunnelReport]] = [("", self)]
        sections += [("" if k is None else str(k), g) for k, g in self.groups.items()]
        return csv_text(
            ["group", "step", "count", "rate", "overall"],
            (
                [key, s.name, s.count, cell(s.rate), cell(s.overall)]
                for key, report in sections
                for s in report.steps.values()
            ),
        )

    def __str__(self) -> str:
        return self.to_table()

    def to_table(self) -> str:
        """An aligned text table of the steps, the health checks and any groups."""
        lines = [self._title(), ""]
        lines += _table(self)
        lines += ["", "Health checks"]
        for check in self.checks.values():
            value = (
                "n/a"
                if check.value is None
                else (
                    f"{check.value:.1f}"
                    if check.name == "touches_per_qualified"
                    else f"{check.value:.0%}"
                )
            )
            flag = {True: "ok", False: "CHECK", None: "-"}[check.ok]
            lines.append(f"  {check.label:<36} {value:>6}  {flag:<5}  expect {check.expected}")
        weak = self.weak_setters
        if weak:
            lines.append(
                "  Setters whose appointments don't stick: "
                + ", ".join(f"{name or '(none)'} ({self.setters[name]:.0%} sat)" for name in weak)
            )
        if self.time_in_stage:
            lines += ["", "Time in stage (median days)"]
            for stretch in self.time_in_stage.values():
                lines.append(
                    f"  {stretch.label:<36} {stretch.median_days:>6.1f}  "
                    f"over {stretch.count} {'subject' if stretch.count == 1 else 'subjects'}"
                )
        for key, group in self.groups.items():
            lines += ["", f"{self.by} = {key if key is not None else '(none)'}"]
            lines += _table(group)
            if group.time_in_stage:
                lines.append(
                    "  median days: "
                    + ", ".join(
                        f"{t.step} -> {t.next} {t.median_days:.1f}"
                        for t in group.time_in_stage.values()
                    )
                )
        return "\n".join(lines) + "\n"

    def _title(self) -> str:
        period = (
            f"{self.since.date() if self.since else 'the start'} to "
            f"{self.until.date() if self.until else 'now'}"
        )
        return f"Funnel report, {period}" + (f", by {self.by}" if self.by else "")

    def to_svg(self, *, width: int = 640) -> str:
        """The funnel as a self-contained SVG chart: one bar per step, widths to scale."""
        row, top, label_width = 46, 56, 170
        bar_space = width - label_width - 150
        height = top + row * len(self.steps) + 24
        most = max((s.count for s in self.steps.values()), default=0) or 1
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" '
            'role="img" aria-label="Sales funnel">',
            f"<title>{escape(self._title())}</title>",
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
            f'<text x="16" y="30" font-size="18" font-weight="bold" fill="#1f2933">'
            f"{escape(self._title())}</text>",
        ]
        shades = ["#0b3c5d", "#1d5c84", "#2f7caa", "#4a97c4", "#6cb0d6", "#93c7e4", "#2e8b57"]
        centre = label_width + bar_space / 2
        for index, step in enumerate(self.steps.values()):
            y = top + index * row
            bar = max(2.0, bar_space * step.count / most)
            x = centre - bar / 2
            rate = "" if step.rate is None else f"{step.rate:.0%} of previous"
            parts.append(
                f'<text x="16" y="{y + 24}" font-size="13" fill="#1f2933">'
                f"{escape(step.label)}</text>"
            )
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 6}" width="{bar:.1f}" height="{row - 14}" rx="4" '
                f'fill="{shades[index % len(shades)]}"><title>{escape(step.label)}: '
                f"{step.count}</title></rect>"
            )
            parts.append(
                f'<text x="{centre:.1f}" y="{y + 24}" font-size="13" text-anchor="middle" '
                f'fill="#ffffff" font-weight="bold">{step.count}</text>'
                if bar > 40
                else f'<text x="{x + bar + 6:.1f}" y="{y + 24}" font-size="13" '
                f'fill="#1f2933" font-weight="bold">{step.count}</text>'
            )
            parts.append(
                f'<text x="{width - 16}" y="{y + 24}" font-size="12" text-anchor="end" '
                f'fill="#52606d">{escape(rate)}</text>'
            )
        parts.append("</svg>")
        return "\n".join(parts) + "\n"


def _table(report: FunnelReport) -> list[str]:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    header = f"  {'step':<18} {'count':>7} {'rate':>8} {'overall':>8}"
    lines = [header, "  " + "-" * (len(header) - 2)]
    for s in report.steps.values():
        lines.append(f"  {s.name:<18} {s.count:>7} {pct(s.rate):>8} {pct(s.overall):>8}")
    return lines


def _counts(rows: list[StepCount]) -> dict[str | None, dict[str, int]]:
    grouped: dict[str | None, dict[str, int]] = {}
    for row in rows:
        grouped.setdefault(row.group, {})[row.step] = row.count
    return grouped


def build_report(
    repository: Repository,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by: GroupBy | None = None,
) -> FunnelReport:
    """The body of ``Funnel.report``: see there."""
    check_grouping(by, "a report")
    for name, bound in (("since", since), ("until", until)):
        if bound is not None and (bound.tzinfo is None or bound.utcoffset() is None):
            raise ValueError(f"{name}={bound.isoformat()} has no timezone; pass an aware datetime")
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
    setters = {
        key: _ratio(c.get("appointment_sat", 0), c.get("appointment_set", 0))
        for key, c in setter_counts.items()
        if c.get("appointment_set")
    }
    groups: dict[str | None, FunnelReport] = {}
    if by is not None:
        by_group = (
            setter_counts
            if by == "setter"
            else _counts(repository.step_counts(since=since, until=until, by=by))
        )
        for key in sorted(by_group, key=lambda k: (k is None, k or "")):
            counts = by_group[key]
            groups[key] = FunnelReport(
                steps=_steps(counts),
                since=since,
                until=until,
                unqualified=counts.get("unqualified", 0),
                time_in_stage=group_times.get(key, {}),
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
    )
