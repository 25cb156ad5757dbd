"""Imports of real CRM exports as an audit found them: a quoted cell over the CSV
reader's size limit, a status map beside Salesforce's IsConverted flag, the day/month
order of a rejects file imported again, two columns of one number or date field, a
header naming a field twice in two cases, and the line a damaged UTF-8 file is refused
at. (The avoid lists it found: test_import_audit_avoid.py.)"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from leadfunnel import Funnel, SqlRepository
from leadfunnel._cli import main
from leadfunnel._csv import open_csv

_WIDE = "y" * 99  # a line of a long note
_STATUS = "Open - Not Contacted"


def _write(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def _import(tmp_path: Path, path: Path, *args: str) -> tuple[int, str, list[list[str]]]:
    """``leadfunnel import`` of ``path`` into ``tmp_path``'s database: its exit code,
    its output, and the rejects file's rows (header first)."""
    rejects = tmp_path / f"{path.stem}-rejects.csv"
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    result = CliRunner().invoke(
        main, ["import", str(path), "--db", db, "--rejects", str(rejects), *args]
    )
    rows: list[list[str]] = []
    if rejects.exists():
        with rejects.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
    return result.exit_code, result.output, rows


def _stored(tmp_path: Path) -> Funnel:
    return Funnel(SqlRepository(f"sqlite:///{tmp_path / 'crm.db'}"))


# --- 1. a quoted cell over the size limit is one row's, skipped whole ----------------------


def _huge(line: str) -> str:
    """A Salesforce export whose second row's Description holds 2,000 lines of ``line``
    (about 200,000 characters: more than the CSV reader's 131,072)."""
    note = "\n".join([line] * 2000)
    return (
        "FirstName,LastName,Email,Company,Description,Status\n"
        f"A,A,a@h.example.com,A,short,{_STATUS}\n"
        f'B,B,b@h.example.com,B,"{note}",{_STATUS}\n'
        "C,C,c@h.example.com,C,short,Weird\n"
        f"D,D,d@h.example.com,D,short,{_STATUS}\n"
    )


@pytest.mark.parametrize("line", [_WIDE, "z, w" * 25], ids=["plain", "commas"])
def test_a_cell_over_the_limit_rejects_its_row_alone_and_the_rows_after_keep_their_numbers(
    tmp_path: Path, line: str
) -> None:
    code, out, rejects = _import(tmp_path, _write(tmp_path, _huge(line)))
    assert code == 0, out
    assert out.splitlines()[0] == "2 added, 0 duplicates, 0 avoided, 2 rejected (salesforce format)"
    length = len("\n".join([line] * 2000))
    assert rejects[1] == [
        "2",
        f"lines 3-2002 of the file: its 'Description' cell holds {length:,} characters, more "
        "than the 131,072 a cell may hold (no field holds that much: notes hold 32,000); "
        "shorten the cell and import this row again",
    ]
    assert rejects[2][:2] == ["3", rejects[2][1]]  # row C: its own number
    assert rejects[2][1].startswith("Status 'Weird': no status is known")
    assert len(rejects) == 3
    emails = sorted(lead.email or "" for lead in _stored(tmp_path).leads())
    assert emails == ["a@h.example.com", "d@h.example.com"]


def test_a_row_over_the_limit_is_followed_through_its_other_quoted_cells(tmp_path: Path) -> None:
    # Doubled quotes in the long cell, and a cell of several lines after it, with a
    # comma and a quote of its own: the row ends after that one.
    note = "\n".join(['he said ""stop"", twice'] * 6000)
    text = (
        "email,notes,company\n"
        f'a@x.example.com,"{note}","Acme,\nInc ""East"""\n'
        "b@x.example.com,fine,Beta\n"
    )
    bad, good = open_csv(_write(tmp_path, text)).rows()
    assert bad.number == 1
    assert bad.error is not None
    assert bad.error.startswith("lines 2-6002 of the file: its 'notes' cell holds 131,999")
    assert (good.number, good.error, good.fields) == (
        2,
        None,
        {"email": "b@x.example.com", "notes": "fine", "company": "Beta"},
    )


def test_the_date_order_is_decided_by_rows_not_by_the_lines_of_a_long_cell(
    tmp_path: Path,
) -> None:
    # Read again as rows, the cell's lines would say day first (13/01/2024).
    note = "\n".join(["x,x@x.example.com,13/01/2024"] * 6000)
    text = (
        "notes,email,created_at\n"
        f'"{note}",a@x.example.com,2024-01-01\n'
        "n,b@x.example.com,1/13/2024\n"
        "n,c@x.example.com,3/4/2024\n"
    )
    source = open_csv(_write(tmp_path, text))
    bad, b, c = source.rows()
    assert bad.error is not None
    assert bad.error.startswith("lines 2-6001 of the file")
    assert (b.number, c.number) == (2, 3)
    assert c.fields["created_at"] == datetime(2024, 3, 4, tzinfo=UTC)
    assert source.notes() == [
        "Dates were read month first (M/D/YYYY), as the file writes 1/13/2024 (row 2)"
    ]


# --- 3. a status map entry wins over IsConverted ---------------------------------------


@pytest.mark.parametrize(
    ("goal", "stored"),
    [
        ('"client"', "Stored as contacts: 1 client"),
        ('"raw"', "Stored as leads: 1 raw"),
        ('""', "Stored as contacts: 1 prospect"),  # no opinion: the flag decides
    ],
)
def test_a_status_map_entry_for_a_converted_row_s_status_wins_over_is_converted(
    tmp_path: Path, goal: str, stored: str
) -> None:
    text = "FirstName,LastName,Email,Company,Status,IsConverted\n"
    text += "Di,Fu,di@conv.com,Delta,Closed - Converted,true\n"
    statuses = tmp_path / "map.toml"
    statuses.write_text(f'[Status]\n"Closed - Converted" = {goal}\n', encoding="utf-8")
    code, out, _ = _import(tmp_path, _write(tmp_path, text), "--status-map", str(statuses))
    assert code == 0, out
    assert out.splitlines()[1] == stored


def test_a_report_s_converted_flag_gives_way_to_its_lead_status_entry(tmp_path: Path) -> None:
    text = (
        "First Name,Last Name,Email,Company / Account,Lead Status,Converted\n"
        "Di,Fu,di@conv.com,Delta,Closed - Won,1\n"
        "Al,Bo,al@conv.com,Delta,Closed - Converted,1\n"
    )
    statuses = tmp_path / "map.toml"
    statuses.write_text('["Lead Status"]\n"Closed - Won" = "client"\n', encoding="utf-8")
    code, out, _ = _import(tmp_path, _write(tmp_path, text), "--status-map", str(statuses))
    assert code == 0, out
    assert out.splitlines()[1] == "Stored as contacts: 1 prospect, 1 client"


@pytest.mark.parametrize("table", ["IsConverted", "Converted"])
def test_a_status_map_table_for_the_converted_flag_is_refused_saying_what_works(
    tmp_path: Path, table: str
) -> None:
    text = (
        "FirstName,Email,Company,Status,IsConverted\nDi,di@conv.com,Delta,Closed - Converted,true\n"
    )
    statuses = tmp_path / "map.toml"
    statuses.write_text(f'[{table}]\ntrue = "client"\n', encoding="utf-8")
    code, out, _ = _import(tmp_path, _write(tmp_path, text), "--status-map", str(statuses))
    assert code == 2
    assert f"[{table}] is Salesforce's flag of a converted lead, not a status column" in out
    assert '[Status] then "Closed - Converted" = "client"' in out


# --- 4. a rejects file keeps the day/month order its first import read ------------------


_UK = (
    "Lead Owner,First Name,Last Name,Company / Account,Email,Lead Status,Create Date,"
    "Annual Revenue\n"
    "Jo,Ann,Lee,Acme,ann@uk.com,Open - Not Contacted,15/03/2024,100\n"
    "Jo,Bob,Ray,Beta,bob@uk.com,Open - Not Contacted,05/03/2024 2:30 PM,1.200\n"
)


def test_a_rejects_file_imported_again_reads_its_dates_in_the_order_first_read(
    tmp_path: Path,
) -> None:
    code, out, rejects = _import(tmp_path, _write(tmp_path, _UK, "uk.csv"))
    assert code == 0, out
    assert "Dates were read day first (D/M/YYYY), as the file writes 15/03/2024 (row 1)" in out
    (_, row) = rejects
    assert (row[0], row[8]) == ("2", "2024-03-05 14:30")
    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([rejects[0], [*row[:-1], "1200"]])
    code, out, _ = _import(tmp_path, fixed)
    assert code == 0, out
    assert out.splitlines()[0] == "1 added, 0 duplicates, 0 avoided, 0 rejected (salesforce format)"
    bob = next(lead for lead in _stored(tmp_path).leads() if lead.first_name == "Bob")
    assert bob.created_at == datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
    assert bob.annual_revenue == Decimal(1200)


def test_a_rejects_file_whose_dates_do_not_tell_their_order_is_refused(tmp_path: Path) -> None:
    # As a spreadsheet saves it again: the ISO date written back in its own format.
    text = (
        "row,reason,First Name,Last Name,Email,Create Date\n2,fixed,Bob,Ray,bob@uk.com,05/03/2024\n"
    )
    path = _write(tmp_path, text)
    code, out, _ = _import(tmp_path, path)
    assert code == 2
    assert "a rejects file (its first columns are row and reason) whose dates could be read " in out
    assert "('05/03/2024', row 1)" in out
    assert "--day-first or --month-first" in out
    assert not (tmp_path / "crm.db").exists()
    code, out, _ = _import(tmp_path, path, "--day-first")
    assert code == 0, out
    (bob,) = _stored(tmp_path).leads()
    assert bob.created_at == datetime(2024, 3, 5, tzinfo=UTC)


# --- 5. two columns of one number or date field must agree --------------------------------


def test_two_columns_of_a_number_or_date_field_that_disagree_reject_their_row(
    tmp_path: Path,
) -> None:
    header = (
        "FirstName,Email,Status,AnnualRevenue,Annual Revenue,NumberOfEmployees,"
        "No. of Employees,CreatedDate,Create Date\n"
    )
    text = header + (
        f"A,a@tw.com,{_STATUS},100,2500000,10,10,2024-01-01T00:00:00Z,\n"
        f"B,b@tw.com,{_STATUS},,,10,5000,,\n"
        f"C,c@tw.com,{_STATUS},,,,,2024-01-01T00:00:00Z,6/30/2023\n"
        f'D,d@tw.com,{_STATUS},"2,500,000",2500000,N/A,12,2024-03-15T14:30:00Z,3/15/2024\n'
    )
    code, out, rejects = _import(tmp_path, _write(tmp_path, text))
    assert code == 0, out
    assert out.splitlines()[0] == "1 added, 0 duplicates, 0 avoided, 3 rejected (salesforce format)"
    disagree = "disagree about {}: give one value, or leave one of the columns empty"
    assert [(r[0], r[1]) for r in rejects[1:]] == [
        (
            "1",
            "AnnualRevenue ('100') and Annual Revenue ('2500000') "
            + disagree.format("annual_revenue"),
        ),
        (
            "2",
            "NumberOfEmployees ('10') and No. of Employees ('5000') "
            + disagree.format("employees"),
        ),
        (
            "3",
            "CreatedDate ('2024-01-01T00:00:00Z') and Create Date ('6/30/2023') "
            + disagree.format("created_at"),
        ),
    ]
    (d,) = _stored(tmp_path).leads()
    # The same amount however written, a count after a placeholder, a day and its time.
    assert (d.annual_revenue, d.employees) == (Decimal(2_500_000), 12)
    assert d.created_at == datetime(2024, 3, 15, 14, 30, tzinfo=UTC)


# --- 6. a header naming one field twice in two cases is refused ---------------------------


@pytest.mark.parametrize(
    ("header", "first", "second"),
    [
        ("FirstName,LastName,Email,FIRSTNAME", "'FirstName' (column 1)", "'FIRSTNAME' (column 4)"),
        ("first_name,email,company,Email", "'email' (column 2)", "'Email' (column 4)"),
    ],
)
def test_a_header_naming_a_field_twice_in_two_cases_is_refused_naming_both(
    tmp_path: Path, header: str, first: str, second: str
) -> None:
    text = f"{header}\nA,a@b.example.com,B,Z\n"
    code, out, _ = _import(tmp_path, _write(tmp_path, text))
    assert code == 2
    assert f"the header names one column twice, as {first} and {second}: " in out
    assert not (tmp_path / "crm.db").exists()


# --- 7. the line a damaged UTF-8 file is refused at; the date note of a tab file ---------


@pytest.mark.parametrize("newline", ["\r", "\n", "\r\n"], ids=["cr", "lf", "crlf"])
def test_a_damaged_utf8_file_is_refused_naming_its_line_whatever_its_line_ends(
    tmp_path: Path, newline: str
) -> None:
    lines = ["FirstName,LastName,Email,Company,Status", "Ann,Lee,a@m.com,Acme,Open - Not Contacted"]
    lines += ["Bob,Ray,b@m.com,Caf\u00e9,Open - Not Contacted"]
    data = newline.join(lines).encode("utf-8") + newline.encode()
    data += b"Cy,Do,c@m.com,Caf\xe9,Open - Not Contacted" + newline.encode()
    path = tmp_path / "mixed.csv"
    path.write_bytes(data)
    code, out, _ = _import(tmp_path, path)
    assert code == 2
    assert "line 4 holds a byte (0xE9) that is not UTF-8" in out


def test_the_note_on_a_tab_file_s_date_order_does_not_call_it_comma_separated(
    tmp_path: Path,
) -> None:
    text = "First Name\tLast Name\tEmail\tCreate Date\nA\tB\ta@b.example.com\t05/03/2024\n"
    code, out, _ = _import(tmp_path, _write(tmp_path, text))
    assert code == 0, out
    note = next(line for line in out.splitlines() if line.startswith("Dates such as"))
    assert "commas" not in note
    assert "month first (M/D/YYYY), the order of a file whose cells tabs separate" in note
