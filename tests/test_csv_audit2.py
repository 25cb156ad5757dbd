"""CSV imports as a second audit found them: dates at the ends of time, stray NUL bytes,
custom fields read by the file's own number and date rules, real CRM exports' extra
columns, a status map saved with a byte-order mark, and reasons naming the file's
columns."""

from __future__ import annotations

import codecs
import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from pydantic import AwareDatetime, Field, NaiveDatetime

from leadfunnel import Funnel, InMemoryRepository, Lead, LeadStatus, SqlRepository, _csv
from leadfunnel._cli import main
from leadfunnel._csv import CsvError, CsvRow, StatusMap, open_csv, read_datetime
from leadfunnel._errors import ConfigError
from leadfunnel._toml import read_toml

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
            # Written with the file's own separator.
            separator = ";" if handle.readline().startswith("row;") else ","
            handle.seek(0)
            rows = list(csv.reader(handle, delimiter=separator))
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


# --- 3. custom fields are read by the file's own number and date rules -------------------


class AuditLead(Lead):
    mrr: Decimal | None = None
    endpoints: int | None = None
    ratio: Annotated[float, Field(ge=0)] | None = None
    renewal: date | None = None
    last_seen: datetime | None = None
    seen_at: AwareDatetime | None = Field(default=None, alias="Seen At")
    local_time: NaiveDatetime | None = None
    plan: str | None = None
    vip: bool = False


def custom_rows(tmp_path: Path, text: str, **options: Any) -> list[CsvRow]:
    return list(open_csv(write(tmp_path, text), lead_model=AuditLead, **options).rows())


def test_a_semicolon_file_reads_custom_amounts_as_it_reads_its_own(tmp_path: Path) -> None:
    text = (
        "email;mrr;annual_revenue;endpoints;ratio\n"
        "a@x.example.com;1.200;1.200;1.200;1.200\n"
        "b@x.example.com;2.500,50;2.500,50;2.500;0,5\n"
        "c@x.example.com;1,5;1,5;1,5;1,5\n"
    )
    a, b, c = custom_rows(tmp_path, text)
    assert a.error is None
    assert a.fields["mrr"] == a.fields["annual_revenue"] == "1200"
    assert a.fields["endpoints"] == a.fields["ratio"] == "1200"
    assert b.error is None
    assert b.fields["mrr"] == b.fields["annual_revenue"] == "2500.5"
    assert (b.fields["endpoints"], b.fields["ratio"]) == ("2500", "0.5")
    assert c.error == "endpoints: '1,5' is not a whole number"
    assert c.fields["mrr"] == c.fields["annual_revenue"] == "1.5"


def test_a_comma_file_reads_custom_amounts_as_it_reads_its_own(tmp_path: Path) -> None:
    text = (
        "email,mrr,annual_revenue,endpoints\n"
        'a@x.example.com,"1,200","1,200","1,200"\n'
        'b@x.example.com,"$2,500.50","$2,500.50",12\n'
        "c@x.example.com,1.200,1.200,1.200\n"
        "d@x.example.com,N/A,,\n"
    )
    a, b, c, d = custom_rows(tmp_path, text)
    assert (a.error, a.fields["mrr"], a.fields["annual_revenue"]) == (None, "1200", "1200")
    assert a.fields["endpoints"] == "1200"
    assert (b.error, b.fields["mrr"], b.fields["annual_revenue"]) == (None, "2500.5", "2500.5")
    # 1200 or 1.2? Refused alike; a count has no fraction, so 1.200 endpoints is 1200.
    assert c.error is not None
    assert "annual_revenue: '1.200' is ambiguous" in c.error
    assert "mrr: '1.200' is ambiguous" in c.error
    assert "endpoints" not in c.error
    assert d.error is None
    assert "mrr" not in d.fields


@pytest.mark.parametrize("value", ["1e3", "2.5E+06", "lots", "1.2.3"])
def test_a_custom_number_that_cannot_be_read_rejects_its_row(tmp_path: Path, value: str) -> None:
    (row,) = custom_rows(tmp_path, f"email,mrr\na@x.example.com,{value}\n")
    assert row.error is not None
    assert row.error.startswith(f"mrr: {value!r} is ")


def test_custom_dates_are_read_as_the_creation_date_is(tmp_path: Path) -> None:
    text = (
        "Email,Create Date,renewal,last_seen,Seen At,plan,vip\n"
        "a@x.example.com,3/4/2024,3/4/2027,3/4/2027 2:30 PM,2027-03-04T10:00:00Z,007,true\n"
        "b@x.example.com,,2027-12-31,,,Pro 1.200,\n"
    )
    a, b = custom_rows(tmp_path, text, timezone=ZoneInfo("Europe/Paris"))
    assert a.error is None
    assert a.fields["created_at"] == datetime(2024, 3, 3, 23, tzinfo=UTC)
    assert a.fields["renewal"] == date(2027, 3, 4)  # the date written, in no zone
    assert a.fields["last_seen"] == datetime(2027, 3, 4, 13, 30, tzinfo=UTC)  # 14:30 Paris
    assert a.fields["seen_at"] == datetime(2027, 3, 4, 10, tzinfo=UTC)
    assert (a.fields["plan"], a.fields["vip"]) == ("007", "true")  # as written
    assert b.error is None
    assert (b.fields["renewal"], b.fields["plan"]) == (date(2027, 12, 31), "Pro 1.200")


def test_a_custom_time_without_a_zone_is_kept_as_written(tmp_path: Path) -> None:
    text = (
        "email,local_time,renewal\n"
        "a@x.example.com,3/4/2027 2:30 PM,3/4/2027 12:00 AM\n"
        "b@x.example.com,2027-03-04T14:30:00+01:00,\n"
    )
    a, b = custom_rows(tmp_path, text, timezone=ZoneInfo("Europe/Paris"))
    assert a.error is None
    assert a.fields["local_time"] == datetime(2027, 3, 4, 14, 30)
    assert a.fields["renewal"] == date(2027, 3, 4)
    assert b.error is not None
    assert b.error.startswith("local_time: '2027-03-04T14:30:00+01:00' carries a time zone")
    assert b.error.endswith("write it without its offset (2027-03-04 14:30:00?)")


def test_a_custom_date_decides_and_obeys_the_file_s_day_month_order(tmp_path: Path) -> None:
    text = "email,renewal\na@x.example.com,3/4/2027\nb@x.example.com,31/12/2027\n"
    source = open_csv(write(tmp_path, text), lead_model=AuditLead)
    a, b = source.rows()
    assert (a.fields["renewal"], b.fields["renewal"]) == (date(2027, 4, 3), date(2027, 12, 31))
    assert source.notes() == [
        "Dates were read day first (D/M/YYYY), as the file writes 31/12/2027 (row 2)"
    ]
    (row,) = custom_rows(tmp_path, "email,renewal\na@x.example.com,12/31/2027\n", day_first=True)
    assert row.error is not None
    assert row.error.startswith("renewal: '12/31/2027' is not a date")
    assert "read the file without --day-first" in row.error


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("3/4/2027 2:30 PM", "renewal: '3/4/2027 2:30 PM' holds a time, and this column"),
        ("next week", "renewal: 'next week' is not a date and time leadfunnel reads"),
        ("2/30/2027", "renewal: '2/30/2027' is not a date (day is out of range"),
    ],
)
def test_a_custom_date_that_cannot_be_read_rejects_its_row(
    tmp_path: Path, value: str, reason: str
) -> None:
    (row,) = custom_rows(tmp_path, f"email,renewal\na@x.example.com,{value}\n")
    assert row.error is not None
    assert row.error.startswith(reason)


@pytest.mark.parametrize(
    ("annotation", "kind"),
    [
        (int, "whole"),
        (Optional[Annotated[int, Field(ge=0)]], "whole"),  # noqa: UP045
        (Decimal | None, "amount"),
        (int | Decimal, "amount"),
        (float, "amount"),
        (datetime | None, "datetime"),
        (AwareDatetime, "datetime"),
        (NaiveDatetime | None, "naive"),
        (date, "date"),
        (bool, None),
        (str | None, None),
        (int | str, None),
        (list[int], None),
        (list[str], "items"),
        (frozenset[str] | None, "items"),
        (LeadStatus, None),
    ],
)
def test_which_custom_fields_are_numbers_and_dates(annotation: object, kind: str | None) -> None:
    assert _csv._kind(annotation) == kind


def test_the_command_line_stores_custom_amounts_as_the_file_writes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "audit2_models.py").write_text(
        "from decimal import Decimal\nfrom leadfunnel import Lead\n\n\n"
        "class MyLead(Lead):\n    mrr: Decimal | None = None\n"
        "    endpoints: int | None = None\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    text = (
        "email;mrr;annual_revenue;endpoints\n"
        "a@x.example.com;1.200;1.200;3\n"
        "b@x.example.com;1e3;5;4\n"
    )
    code, output, rejects = run_import(tmp_path, text, "--lead-model", "audit2_models:MyLead")
    assert code == 0, output
    assert output.startswith("1 added, 0 duplicates, 0 avoided, 1 rejected")
    assert rejects[1][0] == "2"
    assert rejects[1][1].startswith("mrr: '1e3' is in scientific notation")
    from audit2_models import MyLead  # type: ignore[import-not-found]

    (lead,) = Funnel(SqlRepository(f"sqlite:///{tmp_path / 'crm.db'}"), lead_model=MyLead).leads()
    mine: Any = lead  # a MyLead: its own fields are not Lead's
    assert mine.mrr == lead.annual_revenue == Decimal(1200)
    assert mine.endpoints == 3


class AliasedLead(Lead):
    seats: int | None = Field(default=None, alias="Seats")
    renewal: date | None = Field(default=None, alias="Renewal Date")


def test_a_custom_number_or_date_given_by_two_columns_that_disagree_rejects_its_row(
    tmp_path: Path,
) -> None:
    text = (
        "email,seats,Seats,renewal,Renewal Date\n"
        "a@x.example.com,12,,,2027-03-04\n"
        "b@x.example.com,12,13,2027-03-04,2027-03-04\n"
        "c@x.example.com,,,2027-03-04,2027-03-05\n"
    )
    a, b, c = open_csv(write(tmp_path, text), lead_model=AliasedLead).rows()
    assert a.error is None
    assert (a.fields["seats"], a.fields["renewal"]) == ("12", date(2027, 3, 4))
    assert b.error == (
        "seats ('12') and Seats ('13') disagree about seats: give one value, or leave one "
        "of the columns empty"
    )
    assert c.error is not None
    assert c.error.startswith("renewal ('2027-03-04') and Renewal Date ('2027-03-05') disagree")


# --- 4. real CRM exports' extra columns: listed, mapped, or refused with advice that helps --


def test_a_salesforce_lead_export_s_fax_opt_out_is_listed_not_refused(tmp_path: Path) -> None:
    text = (
        "Id,FirstName,LastName,Email,Phone,HasOptedOutOfEmail,DoNotCall,HasOptedOutOfFax\n"
        "00Q1,Pat,Rivera,pat@x.example.com,+1 512 555 0134,true,false,true\n"
    )
    code, output, _ = run_import(tmp_path, text)
    assert code == 0, output
    assert output.startswith("1 added, 0 duplicates, 0 avoided, 0 rejected (salesforce")
    assert "Columns not imported: Id, HasOptedOutOfFax\n" in output
    (pat,) = stored(tmp_path).leads()
    assert pat.opt_outs == {"email"}


def test_a_salesforce_report_s_fax_opt_out_is_listed_not_refused(tmp_path: Path) -> None:
    text = (
        "Lead Owner,First Name,Last Name,Email,Email Opt Out,Do Not Call,Fax Opt Out,Fax\n"
        "Jo Rep,Pat,Rivera,pat@x.example.com,0,1,1,+1 512 555 0199\n"
    )
    source = open_csv(write(tmp_path, text))
    (row,) = source.rows()
    assert row.fields["opt_outs"] == ["call"]
    assert source.unused_columns() == ["Fax Opt Out", "Fax"]


def test_a_hubspot_subscription_opt_out_is_listed_and_no_opt_out_of_all_email(
    tmp_path: Path,
) -> None:
    text = (
        "First Name,Email,Lifecycle Stage,Unsubscribed from all email,"
        "Opted out of email: Marketing Information,Opted out of email: One to One\n"
        "Mia,mia@x.example.com,Lead,false,true,false\n"
    )
    source = open_csv(write(tmp_path, text))
    (row,) = source.rows()
    assert row.error is None
    assert "opt_outs" not in row.fields
    assert source.unused_columns() == [
        "Opted out of email: Marketing Information",
        "Opted out of email: One to One",
    ]


@pytest.mark.parametrize(
    ("header", "column"),
    [
        (
            "Lead Owner,Company,First Name,Last Name,Email,Phone,Lead Status,Email Opt Out",
            "Secondary Email",
        ),
        ("First Name,Last Name,Email,Lifecycle Stage", "Additional email addresses"),
        ("FirstName,LastName,Email,Status", "Other Email"),
        ("FirstName,LastName,Email,Status", "Email 2"),
    ],
)
def test_a_secondary_email_column_fills_the_other_emails(
    tmp_path: Path, header: str, column: str
) -> None:
    cells = {"Email": "main@x.example.com", column: "second@x.example.com; third@x.example.com"}
    names = [*header.split(","), column]
    line = ",".join(f'"{cells.get(name, "")}"' for name in names)
    (row,) = open_csv(write(tmp_path, f"{','.join(names)}\n{line}\n")).rows()
    assert row.error is None
    assert row.fields["email"] == "main@x.example.com"
    assert row.fields["other_emails"] == ["second@x.example.com", "third@x.example.com"]


def test_a_zoho_lead_export_is_imported_with_its_secondary_email(tmp_path: Path) -> None:
    text = (
        "Lead Owner,Company,First Name,Last Name,Email,Secondary Email,Phone,Lead Status,"
        "Email Opt Out\n"
        "Jo Rep,Acme,Ana,Silva,ana@acme.example.com,ana.silva@home.example.com,,"
        "Open - Not Contacted,false\n"
        "Jo Rep,Beta,Bo,Berg,,ana.silva@home.example.com,,Open - Not Contacted,false\n"
    )
    code, output, rejects = run_import(tmp_path, text)
    assert code == 0, output
    # Bo's only address is Ana's other one: the same person, by the dedupe keys.
    assert output.startswith("1 added, 1 duplicates, 0 avoided, 0 rejected (salesforce")
    assert rejects[1:] == []
    (ana,) = stored(tmp_path).leads()
    assert ana.other_emails == {"ana.silva@home.example.com"}


@pytest.mark.parametrize(
    ("header", "offered", "held"),
    [
        # The file's Email is read: another e-mail is what such a column can be.
        ("FirstName,Email,Work Email", "(another e-mail: Other Email)", None),
        ("First Name,Email,Lifecycle Stage,Work Email", "(another e-mail: Other Email)", None),
        ("FirstName,Email,Phone,Business Phone", "(another phone: Other Phone)", None),
        ("FirstName,Email,Phone,Other Phone,Work Phone", None, "Phone, Other Phone are read"),
        (
            "FirstName,Email,HasOptedOutOfEmail,DoNotCall,Email Opt-out",
            None,
            "HasOptedOutOfEmail, DoNotCall are read",
        ),
        (
            "First Name,Email,Lifecycle Stage,Unsubscribed from all email,Opted out of email",
            None,
            "Unsubscribed from all email is read",
        ),
        ("FirstName,Email,HasOptedOutOfEmail,Do Not Phone", "(opt-out: DoNotCall)", None),
        ("email,status,lead status", None, "status is read"),
        # Still a generic file (a second address is no sign of a CRM), offered its field.
        ("email,first_name,Email 2", "(another e-mail: other_emails)", None),
    ],
)
def test_a_refusal_never_offers_a_name_the_header_holds(
    tmp_path: Path, header: str, offered: str | None, held: str | None
) -> None:
    with pytest.raises(CsvError, match="these columns would not be imported") as info:
        open_csv(write(tmp_path, header + "\n"))
    message = str(info.value)
    if offered is None:
        assert "Rename each" not in message
        assert message.count("Delete the columns you do not want") == 1
    else:
        assert "Rename each to a name a " in message
        assert offered in message
    if held is not None:
        assert f"(the file's {held})" in message
    names = set(header.split(","))
    offers = message.partition(" uses (")[2].partition(")")[0]
    for offer in offers.split("; ") if offers else ():
        assert not names & set(offer.partition(": ")[2].split(", ")), offer


def test_a_generic_file_s_refusal_says_how_rows_become_contacts(tmp_path: Path) -> None:
    with pytest.raises(CsvError) as info:
        open_csv(write(tmp_path, "email,status,type\n"))
    message = str(info.value)
    assert "'type' (a status column?)" in message
    assert "--format generic" not in message  # it is read so already
    assert 'maps its status to a contact type ([status] then customer = "client")' in message


# --- 5. a status map saved with Notepad's byte-order mark --------------------------------


def test_a_status_map_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "statuses.toml"
    path.write_bytes(codecs.BOM_UTF8 + b'[Status]\n"Open - Nurturing" = "farm_list"\n')
    text = "FirstName,Email,Status\nPat,pat@x.example.com,Open - Nurturing\n"
    (row,) = open_csv(write(tmp_path, text), statuses=StatusMap.from_toml(path)).rows()
    assert row.fields["status"] == "farm_list"
    code, output, _ = run_import(tmp_path, text, "--status-map", str(path))
    assert code == 0, output
    assert output.startswith("1 added")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(
            '[Status]\n"Ge\u00f6ffnet" = "raw"\n'.encode("cp1252"),
            "it is not UTF-8 (byte 0xF6 on line 2)",
            id="cp1252",
        ),
        pytest.param(
            '[Status]\n"Open" = "raw"\n'.encode("utf-16"),
            'it is UTF-16 (Notepad\'s "Unicode")',
            id="utf-16",
        ),
    ],
)
def test_a_toml_file_in_another_encoding_says_which_and_what_to_do(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    path = tmp_path / "rules.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        read_toml(path, "rules file")
    assert str(info.value) == (
        f"rules file {str(path)!r} cannot be read: {reason}; save it as UTF-8 and try again"
    )


# --- 6. a generic row "converted": what works is said -----------------------------------


def test_a_generic_converted_row_says_how_to_import_it_and_that_works(tmp_path: Path) -> None:
    text = "email,first_name,status\na@x.example.com,A,converted\nb@x.example.com,B,raw\n"
    code, output, rejects = run_import(tmp_path, text)
    assert code == 0, output
    assert output.startswith("1 added, 0 duplicates, 0 avoided, 1 rejected")
    reason = rejects[1][1]
    assert reason.startswith("status 'converted': a converted lead is a contact")
    assert "--status-map FILE.toml" in reason
    assert 'converted = "prospect"' in reason
    assert "give the row a type" not in reason  # a generic file has no type column
    # What it says works: the rejected row, imported again with such a map.
    statuses = tmp_path / "statuses.toml"
    statuses.write_text('[status]\nconverted = "prospect"\n', encoding="utf-8")
    again = write(tmp_path, "email,first_name,status\na@x.example.com,A,Converted\n", "again.csv")
    result = CliRunner().invoke(
        main,
        ["import", str(again), "--db", f"sqlite:///{tmp_path / 'crm.db'}", "--status-map",
         str(statuses)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("1 added (1 as contacts)")
    (contact,) = stored(tmp_path).contacts()
    assert (contact.email, contact.type.value) == ("a@x.example.com", "prospect")


# --- 7. reasons name the file's columns, as the file spells them --------------------------


def rejected_reasons(tmp_path: Path, text: str) -> list[str]:
    """What ``leadfunnel import`` does with the file's rows (their fields imported, each
    rejection explained by the source), for the rows the import rejects."""
    source = open_csv(write(tmp_path, text))
    rows = list(source.rows())
    assert all(row.error is None for row in rows)
    report = Funnel(InMemoryRepository()).import_leads([row.fields for row in rows])
    return [source.explain(rows[issue.row - 1], issue.reason) for issue in report.rejected]


def test_a_reason_names_the_salesforce_column_not_the_field(tmp_path: Path) -> None:
    long = "x" * 32_001
    text = (
        "FirstName,Email,Phone,MobilePhone,Description,AnnualRevenue,Status\n"
        f"Pat,pat@x.example.com,,,{long},-5,Open - Not Contacted\n"
        "Sam,sam@x.example.com,,555-0134,,,Open - Not Contacted\n"
        "Al\x00,al@x.example.com,,,,,Open - Not Contacted\n"
    )
    pat, sam, al = rejected_reasons(tmp_path, text)
    assert pat == (
        "AnnualRevenue: Input should be greater than or equal to 0; "
        "Description: String should have at most 32000 characters"
    )
    # The phone came from the mobile column; the message's own "; " is left alone.
    assert sam.startswith("MobilePhone: Value error, '555-0134'")
    assert sam.count("; ") >= 1
    assert "; phone:" not in sam
    assert al.startswith("FirstName: Value error, contains the control character U+0000")


def test_a_reason_names_hubspot_and_zoho_columns(tmp_path: Path) -> None:
    text = (
        "First Name,Email,Secondary Email,Lifecycle Stage\n"
        "M\x00a,mia@x.example.com,not-an-address,Customer\n"
    )
    (reason,) = rejected_reasons(tmp_path, text)
    assert reason.startswith("First Name: Value error, contains the control character")
    assert "; Secondary Email: Value error, 'not-an-address' is not a valid e-mail" in reason


def test_a_generic_file_s_reasons_already_name_its_columns(tmp_path: Path) -> None:
    text = "email,annual_revenue,notes\na@x.example.com,-5,\n"
    (reason,) = rejected_reasons(tmp_path, text)
    assert reason == "annual_revenue: Input should be greater than or equal to 0"


def test_explain_leaves_reasons_that_name_no_field_of_the_file_alone(tmp_path: Path) -> None:
    source = open_csv(write(tmp_path, "FirstName,Email\nPat,pat@x.example.com\n"))
    (row,) = source.rows()
    for reason in (
        "the database refused the row: disk I/O error",
        "the store refused this row: id 1 is already stored",
        "title: too long; company: too long",  # fields this file does not fill
    ):
        assert source.explain(row, reason) == reason
    assert source.explain(row, "first_name: bad; email: bad") == "FirstName: bad; Email: bad"


def test_excel_text_wrappers_are_read_as_the_text_they_keep(tmp_path: Path) -> None:
    # ="02134": how a spreadsheet export keeps a postal code's leading zero.
    export = tmp_path / "wrapped.csv"
    export.write_text(
        'email,first_name,company,postal_code\na@x.com,Ann,="Acme",="02134"\n'
        'b@x.com,Bob,="say ""hi""",="x"\n',
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'w.db'}"
    done = CliRunner().invoke(main, ["import", str(export), "--db", db], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    funnel = Funnel(SqlRepository(db))
    ann = funnel.find(email="a@x.com")
    assert ann is not None
    assert (ann.company, ann.postal_code) == ("Acme", "02134")
    bob = funnel.find(email="b@x.com")
    assert bob is not None
    assert bob.postal_code == "x"
    assert bob.company == 'say "hi"'  # a quote inside is doubled, as in a formula
    odd = tmp_path / "odd.csv"
    odd.write_text('email,company\nc@x.com,="a"b"\n', encoding="utf-8")
    CliRunner().invoke(main, ["import", str(odd), "--db", db], catch_exceptions=False)
    carl = funnel.find(email="c@x.com")
    assert carl is not None
    assert carl.company == '="a"b"'  # no wrapper a spreadsheet writes: kept as written


@pytest.mark.parametrize(
    ("header", "format_"),
    [("Email,First Name,Phone Number,Mobile Phone Number", "hubspot"),
     ("email,first_name,phone,other_phones", "generic")],
)  # fmt: skip
def test_a_placeholder_e_mail_or_phone_is_no_value_and_the_mobile_stands_in(
    tmp_path: Path, header: str, format_: str
) -> None:
    export = tmp_path / "na.csv"
    export.write_text(
        f"{header}\nN/A,Ann,n/a,+1 512 555 0134\nb@x.com,Bob,-,\nnull,Cy,,\n",
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'na.db'}"
    done = CliRunner().invoke(main, ["import", str(export), "--db", db], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert done.output.startswith(f"3 added, 0 duplicates, 0 avoided, 0 rejected ({format_}")
    people = {lead.first_name: lead for lead in Funnel(SqlRepository(db)).leads()}
    assert (people["Bob"].email, people["Bob"].phone) == ("b@x.com", None)
    assert (people["Cy"].email, people["Cy"].phone) == (None, None)
    ann = people["Ann"]
    assert ann.email is None
    if format_ == "hubspot":  # the mobile number stands in for an empty phone
        assert ann.phone == "+15125550134"
    else:
        assert ann.phone is None
        assert ann.other_phones == {"+15125550134"}
