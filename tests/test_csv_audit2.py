"""CSV imports as a second audit found them: dates at the ends of time, stray NUL bytes,
custom fields read by the file's own number and date rules, real CRM exports' extra
columns, a status map saved with a byte-order mark, and reasons naming the file's
columns."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from leadfunnel import Funnel, SqlRepository
from leadfunnel._cli import main
from leadfunnel._csv import read_datetime

OUTSIDE = "is outside 0001-01-01 to 9999-12-31 in UTC"


def write(tmp_path: Path, data: str | bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def run_import(tmp_path: Path, data: str | bytes, *args: str) -> tuple[int, str, list[list[str]]]:
    """``leadfunnel import`` of ``data``: its exit code, its output, and the rejects
    file's rows (header first)."""
    source = write(tmp_path, data)
    rejects = tmp_path / "rejects.csv"
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    result = CliRunner().invoke(
        main, ["import", str(source), "--db", db, "--rejects", str(rejects), *args]
    )
    rows: list[list[str]] = []
    if rejects.exists():
        with rejects.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
    return result.exit_code, result.output, rows


def stored(tmp_path: Path) -> Funnel:
    return Funnel(SqlRepository(f"sqlite:///{tmp_path / 'crm.db'}"))


# --- 1. a date at the ends of time rejects its row, never the import ---------------------


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("0001-01-01", "Europe/Paris"),
        ("0001-01-01T00:00:00+01:00", "UTC"),
        ("12/31/9999 11:00 PM", "America/Los_Angeles"),
        ("9999-12-31T23:30:00-01:00", "UTC"),
    ],
)
def test_read_datetime_says_a_moment_outside_the_range_is_outside(text: str, zone: str) -> None:
    with pytest.raises(ValueError, match=OUTSIDE) as info:
        read_datetime(text, timezone=ZoneInfo(zone))
    assert repr(text) in str(info.value)
    zoned = "T" in text  # a time written with its zone is read in no other
    assert ("read in" in str(info.value)) is not zoned


def test_the_first_and_last_moments_of_the_range_are_read() -> None:
    assert read_datetime("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)
    assert read_datetime("9999-12-31 23:59") == datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    west = read_datetime("0001-01-01", timezone=ZoneInfo("America/New_York"))
    assert west.year == 1


@pytest.mark.parametrize(
    ("header", "cell", "zone"),
    [
        ("Email,Create Date", "0001-01-01", "Europe/Paris"),
        ("email,created_at", "0001-01-01T00:00:00+01:00", "UTC"),
        ("Email,First Name,Create Date", "12/31/9999 11:00 PM", "America/Los_Angeles"),
    ],
)
def test_a_date_out_of_range_rejects_its_row_and_the_rest_is_imported(
    tmp_path: Path, header: str, cell: str, zone: str
) -> None:
    extra = ",Al" if "First Name" in header else ""
    late = ",Bo" if "First Name" in header else ""
    text = f"{header}\nz@x.example.com{extra},{cell}\nb@x.example.com{late},2024-03-05\n"
    code, output, rejects = run_import(tmp_path, text, "--timezone", zone)
    assert code == 0, output
    assert output.startswith("1 added, 0 duplicates, 0 avoided, 1 rejected")
    [_, (row, reason, *_)] = rejects
    assert row == "1"
    assert OUTSIDE in reason
    assert repr(cell) in reason
    assert [x.email for x in stored(tmp_path).leads()] == ["b@x.example.com"]
