"""Report presentation audit: period labels keep their zone on a one-day period and never
read backwards; chart notes, changes and counts never overlap what is beside them;
grouped charts keep distinct names distinct; a rate that is not zero never shows as
zero (nor one short of all as all), in the table, the CSV and the charts alike."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import person
from leadfunnel import (
    Funnel,
    FunnelComparison,
    FunnelReport,
    InvalidArgumentError,
    Lead,
    SqlRepository,
    Step,
)
from leadfunnel._charts import text_width
from leadfunnel._cli import main
from leadfunnel._lifecycle import FUNNEL_STEPS
from leadfunnel._periods import period_label
from leadfunnel._reports import build_report
from leadfunnel.testing import ManualClock

SVG = "{http://www.w3.org/2000/svg}"
CHICAGO = ZoneInfo("America/Chicago")
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def report_of(counts: dict[str, int], **fields: object) -> FunnelReport:
    """A report made by hand from step counts (as :func:`build_report` derives them)."""
    steps: dict[str, Step] = {}
    previous: int | None = None
    raw = counts.get("raw", 0)
    for name in FUNNEL_STEPS:
        count = counts.get(name, 0)
        rate = None if not previous else count / previous
        steps[name] = Step(name, count, rate, count / raw if raw else None)
        previous = count
    return FunnelReport(steps=steps, **fields)  # type: ignore[arg-type]


# --- 1. period labels ---------------------------------------------------------------------


def test_a_one_day_period_names_its_zone_as_a_longer_one_does() -> None:
    day = datetime(2026, 11, 10, tzinfo=CHICAGO)
    assert period_label(day, day + timedelta(days=1)) == "2026-11-10 (CST)"
    assert period_label(day, day + timedelta(days=2)) == "2026-11-10 to 2026-11-11 (CST)"
    utc_day = datetime(2026, 11, 10, tzinfo=UTC)
    assert period_label(utc_day, utc_day + timedelta(days=1)) == "2026-11-10"
    # The day summer time ends starts in CDT and ends in CST.
    fall = datetime(2026, 11, 1, tzinfo=CHICAGO)
    assert period_label(fall, datetime(2026, 11, 2, tzinfo=CHICAGO)) == "2026-11-01 (CDT/CST)"
    funnel = Funnel()
    assert funnel.report(since=day, until=day + timedelta(days=1)).period == "2026-11-10 (CST)"


def test_the_command_line_names_the_zone_of_a_one_day_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'day.db'}"
    funnel = Funnel(SqlRepository(url), clock=ManualClock(T0))
    funnel.capture(Lead(**person(1)))
    funnel.repository.close()
    result = CliRunner().invoke(
        main,
        [
            "report",
            "--db",
            url,
            "--since",
            "2026-11-10",
            "--until",
            "2026-11-11",
            "--timezone",
            "America/Chicago",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Funnel report, 2026-11-10 (CST)\n")


def test_an_open_end_beyond_the_data_says_so_instead_of_reading_backwards(
    tmp_path: Path,
) -> None:
    clock = ManualClock(datetime(2026, 8, 31, 10, tzinfo=UTC))
    funnel = Funnel(clock=clock)
    funnel.capture(Lead(**person(1)))
    clock.set(datetime(2026, 11, 29, 10, tzinfo=UTC))
    now = clock.now()
    before = build_report(funnel.repository, until=datetime(2026, 1, 1, tzinfo=UTC), now=now)
    assert before.period == "up to 2025-12-31, before the first lead (2026-08-31)"
    after = build_report(funnel.repository, since=datetime(2027, 1, 1, tzinfo=UTC), now=now)
    assert after.period == "from 2027-01-01, after today (2026-11-29)"
    assert str(after).startswith("Funnel report, from 2027-01-01, after today (2026-11-29)\n")
    moment = build_report(funnel.repository, since=datetime(2027, 1, 1, 9, tzinfo=UTC), now=now)
    assert moment.period == "from 2027-01-01 09:00 UTC, after now (2026-11-29 10:00 UTC)"
    # The first lead's day and today on the period's clock: 03:00 UTC is the day before
    # in Chicago.
    chicago = build_report(
        funnel.repository,
        since=datetime(2026, 11, 20, tzinfo=CHICAGO),
        now=datetime(2026, 11, 30, 3, tzinfo=UTC),
    )
    assert chicago.period == "2026-11-20 to 2026-11-29 (today, CST)"
    # The command line, on the real clock: a start far ahead, an end long before.
    url = f"sqlite:///{tmp_path / 'open.db'}"
    stored = Funnel(SqlRepository(url), clock=ManualClock(datetime(2026, 8, 31, 10, tzinfo=UTC)))
    stored.capture(Lead(**person(2)))
    stored.repository.close()
    for args, title in (
        (["--until", "2026-01-01"], "up to 2025-12-31, before the first lead (2026-08-31)"),
        (["--since", "2999-01-01"], "from 2999-01-01, after today ("),
    ):
        result = CliRunner().invoke(main, ["report", "--db", url, *args])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Funnel report, {title}"), result.output


def test_an_empty_period_is_named_empty_and_a_comparison_refuses_one() -> None:
    """``report(since=d, until=d)`` stays a valid, empty, half-open period (it counts
    nothing) but is no longer labelled backwards; ``compare`` refuses an empty period,
    the one asked for or the previous one given, as the command line does."""
    funnel = Funnel(clock=ManualClock(T0))
    day = datetime(2026, 3, 2, tzinfo=UTC)
    empty = funnel.report(since=day, until=day)
    assert empty.steps["raw"].count == 0
    assert empty.period == "an empty period at 2026-03-02 00:00 UTC"
    assert json.loads(empty.to_json())["period"] == empty.period
    week = (day, day + timedelta(days=7))
    with pytest.raises(InvalidArgumentError, match="the period is empty"):
        funnel.compare(day, day, previous=week)
    with pytest.raises(InvalidArgumentError, match="the previous period is empty"):
        funnel.compare(*week, previous=(day, day))
    with pytest.raises(InvalidArgumentError, match="the previous period is empty"):
        funnel.compare(*week, previous=(week[1], week[0]))


def test_the_command_line_refuses_an_empty_previous_period(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'previous.db'}"
    Funnel(SqlRepository(url)).repository.close()
    result = CliRunner().invoke(
        main,
        [
            "report",
            "--db",
            url,
            "--since",
            "2026-03-09",
            "--until",
            "2026-03-16",
            "--previous-since",
            "2026-03-02",
            "--previous-until",
            "2026-03-02",
        ],
    )
    assert result.exit_code == 2
    assert "the previous period is empty" in result.output


# --- 2. charts: nothing drawn over anything else ------------------------------------------


def _boxes(svg: str) -> tuple[list[tuple[str, float, float, float, float]], list[ET.Element]]:
    """Every text's box (text, left, right, top, bottom), from its anchor, size and
    estimated width; and every bar (a rect with a title)."""
    root = ET.fromstring(svg)
    boxes = []
    for element in root.iter(f"{SVG}text"):
        text = element.text or ""
        x, y = float(element.get("x", 0)), float(element.get("y", 0))
        size = float(element.get("font-size", 13))
        width = text_width(text, size, bold=element.get("font-weight") == "bold")
        left = {"start": x, "middle": x - width / 2, "end": x - width}[
            element.get("text-anchor", "start")
        ]
        boxes.append((text, left, left + width, y - size * 0.75, y + size * 0.2))
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    return boxes, bars


def assert_nothing_overlaps(svg: str) -> None:
    """No two texts overlap, and a text that touches a bar lies wholly inside it (a
    count in its bar), never half over it (a note running into the widest bar)."""
    boxes, bars = _boxes(svg)
    for i, (text, left, right, top, bottom) in enumerate(boxes):
        for other, o_left, o_right, o_top, o_bottom in boxes[i + 1 :]:
            apart = right <= o_left or o_right <= left or bottom <= o_top or o_bottom <= top
            assert apart, f"{text!r} overlaps {other!r}"
        for bar in bars:
            b_left, b_top = float(bar.get("x", 0)), float(bar.get("y", 0))
            b_right = b_left + float(bar.get("width", 0))
            b_bottom = b_top + float(bar.get("height", 0))
            apart = right <= b_left or b_right <= left or bottom <= b_top or b_bottom <= top
            inside = b_left <= left and right <= b_right
            assert apart or inside, f"{text!r} is drawn over the edge of {bar.findtext('*')!r}"


def test_a_note_over_1000_percent_is_not_drawn_over_the_widest_bar() -> None:
    funnel = Funnel(clock=ManualClock(T0))
    lead = funnel.capture(Lead(email="multi@x.example.com"))
    funnel.qualify(lead, force=True)
    funnel.set_appointment(lead)
    contact = funnel.get_lead(lead.id).contact_id
    assert contact is not None
    for _ in range(11):
        funnel.set_appointment(contact)
    svg = build_report(funnel.repository, now=T0).to_svg()
    assert "1,200.0% of previous" in [t[0] for t in _boxes(svg)[0]]
    assert_nothing_overlaps(svg)


def test_a_huge_change_does_not_run_into_the_count_beside_it() -> None:
    before = report_of({"raw": 1, "qualified": 1})
    now = report_of({"raw": 12_345, "qualified": 3})
    comparison = FunnelComparison(now, before)
    svg = comparison.to_svg()
    drawn = [t[0] for t in _boxes(svg)[0]]
    assert "+12,344 (+1,234,400.0%)" in drawn
    assert "12,345" in drawn
    assert_nothing_overlaps(svg)
    # The table keeps its columns aligned on that row: every row as long as the header.
    lines = str(comparison).splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("step"))
    rows = lines[header + 2 : header + 2 + len(FUNNEL_STEPS)]
    assert "+1,234,400.0%" in rows[0]
    assert {len(row) for row in rows} == {len(lines[header])}


def test_the_report_table_keeps_its_columns_for_large_counts_and_rates() -> None:
    table = str(report_of({"raw": 123_456_789, "qualified": 20, "appointment_set": 2_400}))
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("step"))
    rows = lines[header + 2 : header + 2 + len(FUNNEL_STEPS)]
    assert "123456789" in rows[0]
    assert "12,000.0%" in rows[2]
    assert {len(row) for row in rows} == {len(lines[header])}


def test_panels_of_names_that_differ_only_at_the_end_are_told_apart() -> None:
    funnel = Funnel(clock=ManualClock(T0))
    sources = [
        "Spring Trade Show 2026 (UK), hall 3 - Birmingham",
        "Spring Trade Show 2026 (UK), hall 3 - London",
        "web",
    ]
    for n, source in enumerate(sources):
        funnel.capture(Lead(**person(n, source=source)))
    svg = build_report(funnel.repository, by="source", now=T0).to_svg()
    root = ET.fromstring(svg)
    titles = [
        t.text or ""
        for t in root.iter(f"{SVG}text")
        if t.get("font-size") == "14" and t.get("font-weight") == "bold"
    ]
    assert len(set(titles)) == len(titles) == 3, titles
    assert [title.rsplit(" ", 1)[-1] for title in titles] == ["Birmingham", "London", "web"]
    assert_nothing_overlaps(svg)


_NAMES = st.lists(
    st.tuples(
        st.sampled_from(["", "Spring Trade Show 2026 (UK), hall ", "x" * 60, "展示会 " * 8]),
        st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40),
        st.sampled_from(["", " - Birmingham", " - London", " Europe, Middle East, Africa"]),
    ).map("".join),
    min_size=1,
    max_size=24,
    unique=True,
)


@settings(max_examples=150, deadline=None)
@given(names=_NAMES, width=st.sampled_from([140.0, 270.0]))
def test_distinct_names_get_distinct_titles_that_fit(names: list[str], width: float) -> None:
    from leadfunnel._charts import _clean, distinct_titles

    shown = distinct_titles(names, width, 14)
    assert len({_clean(title) for title in shown}) == len(names)
    for name, title in zip(names, shown, strict=True):
        assert title == name or text_width(title, 14, bold=True) <= width + 1e-9


# --- 3. rates that are not zero never read as zero ----------------------------------------


def test_one_of_five_thousand_is_under_a_tenth_of_a_percent_not_zero() -> None:
    report = report_of({"raw": 5_000, "qualified": 1, "won": 0}, as_of=T0)
    table = str(report)
    qualified = next(line for line in table.splitlines() if line.lstrip().startswith("qualified"))
    assert qualified.split()[2:] == ["<0.1%", "<0.1%"]
    drawn = [t[0] for t in _boxes(report.to_svg())[0]]
    # Qualified: 1 of 5,000; appointments set: truly none of the one qualified.
    notes = [text for text in drawn if text.endswith("of previous")]
    assert notes[:2] == ["<0.1% of previous", "0.0% of previous"]
    tile = report_of({"raw": 5_000, "qualified": 1, "won": 1}).to_svg()
    assert "<0.1%" in [t[0] for t in _boxes(tile)[0]]  # raw leads to won
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert rows[1]["rate"] == "0.0002"
    tiny = report_of({"raw": 50_000, "qualified": 1})
    assert list(csv.DictReader(io.StringIO(tiny.to_csv())))[1]["rate"] == "0.00002"
    assert json.loads(tiny.to_json())["steps"][1]["rate"] == 1 / 50_000  # exact
    # A zero stays a zero.
    assert "0.0%" in str(report_of({"raw": 5_000, "qualified": 0}))


def test_one_short_of_all_is_not_shown_as_all() -> None:
    report = report_of({"raw": 5_000, "qualified": 4_999, "appointment_set": 4_999})
    qualified = next(
        line for line in str(report).splitlines() if line.lstrip().startswith("qualified")
    )
    assert qualified.split()[2:] == [">99.9%", ">99.9%"]
    appointment = next(
        line for line in str(report).splitlines() if line.lstrip().startswith("appointment_set")
    )
    assert appointment.split()[2] == "100.0%"  # all of them: exactly 100%
    assert list(csv.DictReader(io.StringIO(report.to_csv())))[1]["rate"] == "0.9998"
    many = report_of({"raw": 50_000, "qualified": 49_999})
    assert list(csv.DictReader(io.StringIO(many.to_csv())))[1]["rate"] == "0.99998"


def test_the_comparison_shows_small_rates_as_the_report_does() -> None:
    comparison = FunnelComparison(
        report_of({"raw": 50_000, "qualified": 1}), report_of({"raw": 2, "qualified": 1})
    )
    qualified = next(
        line for line in str(comparison).splitlines() if line.lstrip().startswith("qualified")
    )
    assert "<0.1%" in qualified.split()
    rows = {row["measure"]: row for row in csv.DictReader(io.StringIO(comparison.to_csv()))}
    assert rows["qualified"]["current_rate"] == "0.00002"
    assert rows["qualified"]["rate_change"] == "-0.5"  # fine rounding: not zero
    assert rows["raw"]["change_pct"] == "24999.0"  # a number as before, not text


def test_a_failing_health_check_never_shows_the_value_it_fails_against() -> None:
    report = report_of(
        {"raw": 1_000, "qualified": 1_000, "appointment_set": 1_000, "appointment_sat": 896},
        qualified_leads=5_000,
        never_followed_up=1,
        touches_on_qualified=9_800,
        setters={"sue": 0.896},
    )
    checks = report.checks
    assert checks["appointments_sat"].ok is False
    assert checks["never_followed_up"].ok is False
    table = str(report)
    for label, shown in (
        ("Appointments sat / due", "89.6%"),
        ("Qualified leads never followed up", "<1%"),
        ("Average touches per qualified lead", "1.96"),
    ):
        line = next(line for line in table.splitlines() if line.lstrip().startswith(label))
        assert line[len(label) + 2 :].split()[:2] == [shown, "CHECK"], line
    assert "sue (89.6% sat)" in table
    callout = " ".join(t[0] for t in _boxes(report.to_svg())[0])
    assert "89.6% (expect >= 90%)" in callout
    assert "<1% (expect 0%" in callout
    # A value that passes, or that fails plainly, reads as before.
    plain = report_of({"raw": 100, "qualified": 100, "appointment_set": 100, "appointment_sat": 80})
    line = next(line for line in str(plain).splitlines() if "Appointments sat / due" in line)
    assert line.split()[4:6] == ["80%", "CHECK"]
