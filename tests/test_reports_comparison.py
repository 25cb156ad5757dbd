"""Two periods side by side: Funnel.compare and ``leadfunnel report --compare``, in
table, JSON, CSV and SVG."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import person
from leadfunnel import (
    Funnel,
    FunnelComparison,
    InvalidArgumentError,
    Lead,
    SqlRepository,
    StepChange,
)
from leadfunnel._cli import main
from leadfunnel.testing import ManualClock
from test_reports_charts import SVG, assert_readable, texts

FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)


def won(funnel: Funnel, n: int, amount: int) -> None:
    lead = funnel.capture(Lead(**person(n)))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead, setter="sue")
    deal = funnel.send_contract(funnel.propose(funnel.sit(deal)))
    funnel.win(deal, amount=amount)


def two_months(funnel: Funnel, clock: ManualClock) -> None:
    """February: 4 raw leads, 1 won for 10,000. March: 5 raw leads, 2 won for 30,000."""
    clock.set(FEB + timedelta(days=3, hours=9))
    won(funnel, 1, 10_000)
    for n in (2, 3, 4):
        funnel.capture(Lead(**person(n)))
    clock.set(MAR + timedelta(days=3, hours=9))
    won(funnel, 11, 10_000)
    won(funnel, 12, 20_000)
    for n in (13, 14, 15):
        funnel.capture(Lead(**person(n)))


@pytest.fixture
def compared() -> FunnelComparison:
    clock = ManualClock(FEB)
    funnel = Funnel(clock=clock)
    two_months(funnel, clock)
    comparison: FunnelComparison = funnel.compare(MAR, APR)
    return comparison


def test_this_month_against_the_last(compared: FunnelComparison) -> None:
    assert (compared.current.since, compared.previous.since) == (MAR, FEB)
    assert compared.previous.until == MAR
    raw = compared.steps["raw"]
    assert isinstance(raw, StepChange)
    assert (raw.current, raw.previous, raw.change) == (5, 4, 1)
    assert raw.change_pct == pytest.approx(0.25)
    assert raw.rate_change is None
    assert raw.describe() == "+1 (+25.0%)"
    qualified = compared.steps["qualified"]
    assert (qualified.current_rate, qualified.previous_rate) == (0.4, 0.25)
    assert qualified.rate_change == pytest.approx(0.15)
    assert compared.steps["won"].describe() == "+1 (+100.0%)"
    assert compared.conversion_change == pytest.approx(2 / 5 - 1 / 4)
    assert compared.revenue_change == Decimal(20_000)
    assert compared.revenue_change_pct == pytest.approx(2.0)
    assert compared.title == (
        "Funnel comparison: 2026-03-01 to 2026-03-31 vs 2026-02-01 to 2026-02-28"
    )


def test_a_step_nobody_reached_before_is_new_and_a_fall_is_negative() -> None:
    clock = ManualClock(FEB)
    funnel = Funnel(clock=clock)
    two_months(funnel, clock)
    reverse = funnel.compare(FEB, MAR, previous=(MAR, APR))
    assert reverse.steps["raw"].describe() == "-1 (-20.0%)"
    quiet = funnel.compare(APR, APR + timedelta(days=30), previous=(FEB - timedelta(days=9), FEB))
    assert quiet.steps["won"].describe() == "no change"
    assert quiet.steps["won"].change_pct is None
    growth = funnel.compare(FEB, MAR, previous=(FEB - timedelta(days=28), FEB))
    assert growth.steps["raw"].describe() == "+4 (new)"


def test_the_table(compared: FunnelComparison) -> None:
    text = str(compared)
    assert text.startswith(
        "Funnel comparison\n"
        "  this period:     2026-03-01 to 2026-03-31\n"
        "  previous period: 2026-02-01 to 2026-02-28\n"
    )
    lines = text.splitlines()
    raw = next(line for line in lines if line.strip().startswith("raw "))
    assert raw.split() == ["raw", "5", "4", "+1", "+25.0%", "-", "-", "-"]
    qualified = next(line for line in lines if line.strip().startswith("qualified "))
    assert qualified.split()[-2:] == ["+15.0", "pts"]
    assert "  Won revenue: 30,000, was 10,000 (+20,000, +200.0%)" in lines
    assert "  Raw leads to won: 40.0%, was 25.0% (+15.0 pts)" in lines
    assert "Needs attention this period" in lines


def test_json(compared: FunnelComparison) -> None:
    data = json.loads(compared.to_json())
    assert data["current"] == {
        "since": "2026-03-01T00:00:00+00:00",
        "until": "2026-04-01T00:00:00+00:00",
        "period": "2026-03-01 to 2026-03-31",
    }
    assert data["steps"][0] == {
        "step": "raw",
        "current": 5,
        "previous": 4,
        "change": 1,
        "change_pct": 0.25,
        "current_rate": None,
        "previous_rate": None,
        "rate_change": None,
    }
    assert data["won_revenue"] == {
        "current": "30000.00",
        "previous": "10000.00",
        "change": "20000.00",
        "change_pct": 2.0,
    }
    assert data["won_deals"] == {"current": 2, "previous": 1, "change": 1}
    assert data["reports"]["previous"]["steps"][0]["count"] == 4


def test_csv_keeps_negative_changes_as_numbers() -> None:
    clock = ManualClock(FEB)
    funnel = Funnel(clock=clock)
    two_months(funnel, clock)
    text = funnel.compare(FEB, MAR, previous=(MAR, APR)).to_csv()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["measure"] for row in rows] == [
        "raw",
        "qualified",
        "appointment_set",
        "appointment_sat",
        "proposing",
        "contract_sent",
        "won",
        "raw_to_won",
        "won_revenue",
        "won_deals",
    ]
    raw = rows[0]
    assert (raw["current"], raw["previous"], raw["change"], raw["change_pct"]) == (
        "4",
        "5",
        "-1",
        "-0.2",
    )
    assert rows[8]["change"] == "-20000.00"  # no quote: a number is not a formula
    assert float(rows[7]["change"]) == pytest.approx(-0.15)
    assert "'" not in text


def test_svg(compared: FunnelComparison) -> None:
    svg = compared.to_svg()
    assert_readable(svg)
    words = texts(svg)
    assert "2026-03-01 to 2026-03-31 vs 2026-02-01 to 2026-02-28" in words
    assert "This period: 2026-03-01 to 2026-03-31" in words
    assert words[words.index("Won revenue") + 1 : words.index("Won revenue") + 3] == [
        "30,000",
        "was 10,000, +200.0%",
    ]
    assert "+1 (+25.0%)" in words
    changes = {t.text: t.get("fill") for t in ET.fromstring(svg).iter(f"{SVG}text")}
    assert changes["+1 (+25.0%)"] == "#1e6b3f"  # up: green
    reverse_svg = compared.__class__(compared.previous, compared.current).to_svg()
    down = {t.text: t.get("fill") for t in ET.fromstring(reverse_svg).iter(f"{SVG}text")}
    assert down["-1 (-20.0%)"] == "#b42318"  # down: red
    assert_readable(reverse_svg)


def test_bad_periods_are_refused() -> None:
    funnel = Funnel(clock=ManualClock(FEB))
    with pytest.raises(InvalidArgumentError, match="the period is empty"):
        funnel.compare(MAR, FEB)
    with pytest.raises(InvalidArgumentError, match="a comparison needs both bounds"):
        funnel.compare(None, MAR)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="previous must be a"):
        funnel.compare(FEB, MAR, previous=(FEB,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no timezone"):
        funnel.compare(FEB.replace(tzinfo=None), MAR.replace(tzinfo=None))


# --- the command line -----------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    clock = ManualClock(FEB)
    funnel = Funnel(SqlRepository(url), clock=clock)
    two_months(funnel, clock)
    funnel.repository.close()
    return url


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_cli_compares_in_every_format(db: str, tmp_path: Path) -> None:
    period = ["--db", db, "--since", "2026-03-01", "--until", "2026-04-01", "--compare"]
    table = run("report", *period)
    assert table.exit_code == 0, table.output
    assert "previous period: 2026-02-01 to 2026-02-28" in table.output
    data = json.loads(run("report", *period, "--format", "json").output)
    assert data["steps"][0]["change"] == 1
    rows = list(csv.reader(io.StringIO(run("report", *period, "--format", "csv").output)))
    assert rows[1][:4] == ["raw", "5", "4", "1"]
    target = tmp_path / "compare.svg"
    written = run("report", *period, "--format", "svg", "-o", str(target))
    assert written.output == f"Comparison written to {target}\n"
    assert_readable(target.read_text(encoding="utf-8"))


def test_the_cli_takes_an_explicit_previous_period(db: str) -> None:
    result = run(
        "report",
        "--db",
        db,
        "--since",
        "2026-02-01",
        "--until",
        "2026-03-01",
        "--previous-since",
        "2026-03-01",
        "--previous-until",
        "2026-04-01",
        "--format",
        "json",
    )
    data = json.loads(result.output)
    assert data["previous"]["period"] == "2026-03-01 to 2026-03-31"
    assert data["steps"][0]["change"] == -1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--compare"], "--compare needs --since and --until"),
        (["--since", "2026-03-01", "--compare"], "--compare needs --since and --until"),
        (
            ["--since", "2026-03-01", "--until", "2026-04-01", "--compare", "--by", "source"],
            "--compare takes no --by",
        ),
        (
            ["--since", "2026-03-01", "--until", "2026-04-01", "--previous-since", "2026-02-01"],
            "give both --previous-since and --previous-until",
        ),
        (
            [
                "--since",
                "2026-03-01",
                "--until",
                "2026-04-01",
                "--previous-since",
                "x",
                "--compare",
            ],
            "--previous-since: 'x' is not a date or a date-time",
        ),
    ],
)
def test_the_cli_refuses_a_comparison_it_cannot_make(
    db: str, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["report", "--db", db, *args])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert message in result.output
