"""``leadfunnel report``: --since/--until (dates or date-times, in --timezone), small
multiples for --by with SVG, and the labelled grouped CSV."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import person
from leadfunnel import Funnel, Lead, SqlRepository
from leadfunnel._cli import main
from leadfunnel.testing import ManualClock
from test_reports_charts import SVG, assert_readable, texts

# Sunday 1 March 2026, 23:30 UTC: in Chicago (UTC-6) it is still 17:30 that Sunday.
SUNDAY_NIGHT = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> str:
    """One lead on Sunday night (UTC), then one a day from Monday to Friday at 10:00."""
    url = f"sqlite:///{tmp_path / 'week.db'}"
    clock = ManualClock(SUNDAY_NIGHT)
    funnel = Funnel(SqlRepository(url), clock=clock)
    funnel.capture(Lead(**person(0, source="webinar")))
    for n in range(1, 6):
        clock.set(datetime(2026, 3, 1 + n, 10, tzinfo=UTC))
        lead = funnel.capture(Lead(**person(n, source="ads" if n % 2 else None)))
        if n <= 2:
            funnel.qualify(lead, force=True)
    funnel.repository.close()
    return url


def raw(db: str, *args: str) -> int:
    result = CliRunner().invoke(main, ["report", "--db", db, "--format", "json", *args])
    assert result.exit_code == 0, result.output
    count: int = json.loads(result.output)["steps"][0]["count"]
    return count


def test_dates_are_midnight_and_until_is_excluded(db: str) -> None:
    assert raw(db) == 6
    assert raw(db, "--since", "2026-03-02") == 5
    assert raw(db, "--until", "2026-03-02") == 1
    assert raw(db, "--since", "2026-03-02", "--until", "2026-03-04") == 2  # Mon and Tue
    assert raw(db, "--since", "2026-03-03T10:00") == 4  # included
    assert raw(db, "--until", "2026-03-03T10:00") == 2  # excluded


def test_dates_and_bare_times_are_read_in_the_timezone(db: str) -> None:
    # In Chicago, Sunday night's lead arrived on Sunday afternoon: Monday starts after it,
    # at 06:00 UTC.
    chicago = ["--timezone", "America/Chicago"]
    assert raw(db, "--since", "2026-03-02", *chicago) == 5
    assert raw(db, "--since", "2026-03-01", "--until", "2026-03-02", *chicago) == 1
    assert raw(db, "--until", "2026-03-02T04:00", *chicago) == 1  # 10:00 UTC, excluded
    assert raw(db, "--until", "2026-03-02T04:01", *chicago) == 2
    # An offset in the value wins over --timezone: 10:00 UTC on Tuesday.
    assert raw(db, "--since", "2026-03-03T05:00:00-05:00", *chicago) == 4


def test_the_table_names_the_period(db: str) -> None:
    result = CliRunner().invoke(
        main, ["report", "--db", db, "--since", "2026-03-02", "--until", "2026-03-09"]
    )
    assert result.output.startswith("Funnel report, 2026-03-02 to 2026-03-08\n")
    result = CliRunner().invoke(
        main,
        ["report", "--db", db, "--since", "2026-03-02T09:00", "--timezone", "America/Chicago"],
    )
    assert result.output.splitlines()[0].startswith("Funnel report, 2026-03-02 09:00 CST up to ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last week"], "--since: 'last week' is not a date or a date-time"),
        (["--until", "2026-02-30"], "--until: '2026-02-30' is not a date or a date-time"),
        (["--timezone", "Mars/Base"], "--timezone: 'Mars/Base' is not a time zone"),
        (["--since", "2026-03-05", "--until", "2026-03-05"], "the period is empty"),
    ],
)
def test_bad_periods_are_one_line_and_status_2(db: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["report", "--db", db, *args])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert message in result.output


def test_by_with_svg_draws_one_funnel_per_group(db: str, tmp_path: Path) -> None:
    target = tmp_path / "by-source.svg"
    result = CliRunner().invoke(
        main, ["report", "--db", db, "--by", "source", "--format", "svg", "-o", str(target)]
    )
    assert result.exit_code == 0, result.output
    svg = target.read_text(encoding="utf-8")
    assert_readable(svg)
    words = texts(svg)
    assert "Funnel report, by source" in words
    assert [w for w in words if w in ("ads", "webinar", "(none)")] == ["ads", "webinar", "(none)"]
    titles = {r.findtext(f"{SVG}title") for r in ET.fromstring(svg).iter(f"{SVG}rect")} - {None}
    assert {"ads, Raw leads: 3", "webinar, Raw leads: 1", "(none), Raw leads: 2"} <= titles


def test_too_many_groups_for_a_chart_is_one_line_and_status_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    funnel = Funnel(SqlRepository(url), clock=ManualClock(SUNDAY_NIGHT))
    for n in range(30):
        funnel.capture(Lead(**person(n, source=f"list-{n}")))
    funnel.repository.close()
    result = CliRunner().invoke(main, ["report", "--db", url, "--by", "source", "--format", "svg"])
    assert result.exit_code == 2
    assert "cannot draw the report by source: 30 groups are too many" in result.output
    assert result.output.count("\n") == 1


def test_the_grouped_csv_from_the_command_line_is_labelled(db: str) -> None:
    result = CliRunner().invoke(
        main, ["report", "--db", db, "--by", "source", "--format", "csv", "--since", "2026-03-02"]
    )
    rows: list[dict[str, Any]] = list(csv.DictReader(io.StringIO(result.output)))
    raw = {(r["scope"], r["group"]): int(r["count"]) for r in rows if r["step"] == "raw"}
    assert raw == {("all", ""): 5, ("source", "ads"): 3, ("source", "(none)"): 2}


def test_since_and_until_reach_every_format(db: str) -> None:
    period = ["--since", "2026-03-02", "--until", "2026-03-04"]
    json_out = CliRunner().invoke(main, ["report", "--db", db, "--format", "json", *period])
    data = json.loads(json_out.output)
    assert data["since"] == "2026-03-02T00:00:00+00:00"
    assert data["period"] == "2026-03-02 to 2026-03-03"
    csv_out = CliRunner().invoke(main, ["report", "--db", db, "--format", "csv", *period])
    assert csv_out.output.splitlines()[1] == "raw,2,,1.0000"
    svg_out = CliRunner().invoke(main, ["report", "--db", db, "--format", "svg", *period])
    assert "2026-03-02 to 2026-03-03" in texts(svg_out.output)
