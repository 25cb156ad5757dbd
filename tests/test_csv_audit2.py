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
from leadfunnel._csv import CsvError, open_csv, read_datetime

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


# --- 2. stray NUL bytes are their rows' problem, even in a small file --------------------


def test_a_few_stray_nuls_in_a_small_file_reject_their_rows_only(tmp_path: Path) -> None:
    data = (
        b"Email,First Name\na@x.example.com,A\x00nn\nb@x.example.com,B\x00ob\nc@x.example.com,Cy\n"
    )
    code, output, rejects = run_import(tmp_path, data)
    assert code == 0, output
    assert output.startswith("1 added, 0 duplicates, 0 avoided, 2 rejected")
    assert [row[0] for row in rejects[1:]] == ["1", "2"]
    assert all("U+0000" in row[1] for row in rejects[1:])
    assert [x.email for x in stored(tmp_path).leads()] == ["c@x.example.com"]


def test_nuls_in_every_row_of_a_small_file_still_reject_rows_not_the_file(
    tmp_path: Path,
) -> None:
    rows = "".join(f"p{n}@x.example.com,P\x00{n}\n" for n in range(8))
    path = write(tmp_path, "Email,First Name\n" + rows)
    assert all(row.fields["first_name"].startswith("P\x00") for row in open_csv(path).rows())


TEXT = "Email,First Name\na@x.example.com,Ann\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, "binary data", id="xlsx"),
        pytest.param(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "binary data", id="xls"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "binary data", id="pdf"),
        pytest.param(b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "binary data", id="gzip"),
        pytest.param(b"SQLite format 3\x00\x10\x00\x01\x01", "binary data", id="sqlite"),
        pytest.param(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x02\x00>\x00", "the header", id="elf"),
        pytest.param(bytes(range(256)) * 8, "binary data", id="bytes"),
        pytest.param(
            b"Email,Phone\n" + bytes(range(256)) * 8, "control bytes", id="text-then-bytes"
        ),
        pytest.param(TEXT.encode("utf-16-le"), "--encoding utf-16-le", id="utf-16-le"),
        pytest.param(TEXT.encode("utf-16-be"), "--encoding utf-16-be", id="utf-16-be"),
    ],
)
def test_binary_files_and_utf16_without_its_mark_are_still_refused(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(CsvError, match="this is not a CSV text file") as info:
        open_csv(write(tmp_path, data))
    assert message in str(info.value)


def test_utf16_without_its_mark_is_read_with_the_encoding_it_names(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT.encode("utf-16-le"))
    (row,) = open_csv(path, encoding="utf-16-le").rows()
    assert row.fields == {"email": "a@x.example.com", "first_name": "Ann"}
