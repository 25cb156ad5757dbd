"""Reading lead lists: format detection, encodings, dialects, numbers, dates, statuses,
odd rows."""

from __future__ import annotations

import codecs
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import write_csv as write
from leadfunnel import ConfigError, Lead, LeadFunnelError
from leadfunnel._csv import CsvError, StatusMap, open_csv, read_datetime, read_number

SALESFORCE_HEADER = "FirstName,LastName,Email,Company,Title,AnnualRevenue,HasOptedOutOfEmail"
HUBSPOT_HEADER = "First Name,Last Name,Email,Company Name,Annual Revenue"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (SALESFORCE_HEADER, "salesforce"),
        ("Email,Company,Title", "salesforce"),
        ("LeadSource,Email", "salesforce"),
        (HUBSPOT_HEADER, "hubspot"),
        ("Email,Company Name", "hubspot"),
        ("Email,Lifecycle Stage", "hubspot"),
        ("first_name,last_name,email,company", "generic"),
        ("email,colour", "generic"),
    ],
)
def test_the_format_is_recognised_by_the_header(tmp_path: Path, header: str, expected: str) -> None:
    assert open_csv(write(tmp_path, header + "\n")).format == expected


def test_an_explicit_format_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "email,company\npat@acme.example.com,Acme\n")
    assert open_csv(path, "generic").format == "generic"
    with pytest.raises(CsvError, match="no column of a hubspot export"):
        open_csv(write(tmp_path, "colour,size\nred,9\n", name="y.csv"), "hubspot")


def test_a_header_matching_no_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match=r"\(colour, size\) is not a Salesforce or HubSpot") as info:
        open_csv(write(tmp_path, "colour,size\nred,9\n"))
    assert isinstance(info.value, LeadFunnelError)
    assert "--format" in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "the file is empty"),
        (b"  \n\n", "the file is empty"),
        (b"PK\x03\x04\x00\x00binary", "binary data"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "leads.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CsvError, match=message):
        open_csv(path)


def test_an_unknown_format_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="unknown format 'xml'; choose one of: auto"):
        open_csv(write(tmp_path, "email\n"), "xml")


def test_utf8_with_a_byte_order_mark(tmp_path: Path) -> None:
    text = SALESFORCE_HEADER + "\nJosé,Müller,jose@x.example.com,Acme,CEO,100,0\n"
    path = write(tmp_path, text, "utf-8-sig")
    assert path.read_bytes().startswith(codecs.BOM_UTF8)
    source = open_csv(path)
    assert source.encoding == "utf-8-sig"
    assert source.header[0] == "FirstName"  # the mark is not part of the first column
    (row,) = source.rows()
    assert row.fields["first_name"] == "José"
    assert row.fields["last_name"] == "Müller"
    assert row.cells[0] == "José"


def test_windows_1252_bytes_from_excel(tmp_path: Path) -> None:
    text = HUBSPOT_HEADER + "\nRenée,Ødegård,renee@x.example.com,Café — Bar,€1.200.000\n"
    path = write(tmp_path, text, "cp1252")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    source = open_csv(path)
    assert source.encoding == "cp1252"
    (fields,) = [row.fields for row in source.rows()]
    assert (fields["first_name"], fields["last_name"]) == ("Renée", "Ødegård")
    assert fields["company"] == "Café — Bar"
    assert fields["annual_revenue"] == "1200000"


def test_a_bad_byte_deep_in_the_file_is_found_before_any_row(tmp_path: Path) -> None:
    # Valid UTF-8 for the first 64 KiB sample, then Windows-1252: the whole file decodes
    # as cp1252, so the reader must not pick UTF-8 from the sample alone.
    rows = "".join(f"Pat,Rivera,p{n}@x.example.com,Acme,CEO,1,0\n" for n in range(3000))
    path = tmp_path / "late.csv"
    path.write_bytes(
        (SALESFORCE_HEADER + "\n" + rows).encode() + "Zoë,A,z@x.example.com\n".encode("cp1252")
    )
    source = open_csv(path)
    assert source.encoding == "cp1252"
    assert sum(1 for _ in source.rows()) == 3001


def test_a_utf8_file_with_a_stray_byte_is_refused_not_read_as_windows_1252(
    tmp_path: Path,
) -> None:
    """Read as Windows-1252 (the only other reading that decodes), every "é" of a UTF-8
    file would be stored as "Ã©" without a word: the file is refused, naming the line."""
    path = tmp_path / "damaged.csv"
    path.write_bytes(
        "email,first_name,company\njose@x.example.com,José,Müller GmbH\n".encode()
        + b"late@x.example.com,Bad\xff,X\n"
    )
    with pytest.raises(CsvError, match=r"line 3 holds a byte \(0xFF\) that is not UTF-8"):
        open_csv(path)


def test_two_columns_of_one_field_that_disagree_reject_their_row(tmp_path: Path) -> None:
    """A Salesforce export's API name and its report label for one field ("Company" and
    "Company / Account"): the same value in both (any case) is read, two values reject
    the row naming both, instead of the second one being dropped without a word."""
    path = tmp_path / "both.csv"
    path.write_text(
        "FirstName,LastName,Email,Company,Company / Account\n"
        "Ann,Bee,ann@x.example.com,Acme,Globex\n"
        "Bo,Cee,bo@x.example.com,Acme,ACME\n"
        "Cy,Dee,cy@x.example.com,,Initech\n",
        encoding="utf-8",
    )
    first, second, third = open_csv(path).rows()
    assert first.error is not None
    assert "Company ('Acme') and Company / Account ('Globex') disagree" in first.error
    assert (second.error, second.fields["company"]) == (None, "Acme")
    assert (third.error, third.fields["company"]) == (None, "Initech")


def test_utf16_tab_separated_as_excel_saves_unicode_text(tmp_path: Path) -> None:
    text = "FirstName\tLastName\tEmail\nJosé\tMüller\tjose@x.example.com\n"
    path = tmp_path / "unicode.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    source = open_csv(path)
    assert (source.encoding, source.delimiter, source.format) == ("utf-16", "\t", "salesforce")
    (row,) = source.rows()
    assert row.fields == {
        "first_name": "José",
        "last_name": "Müller",
        "email": "jose@x.example.com",
    }


def test_utf16_that_does_not_decode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + "email\n".encode("utf-16-le") + b"\x00\xd8")
    with pytest.raises(CsvError, match="cannot decode the file as utf-16; save it as UTF-8"):
        open_csv(path)


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_dialects(tmp_path: Path, delimiter: str) -> None:
    text = (
        delimiter.join(["first_name", "email", "annual_revenue", "tags"])
        + "\n"
        + delimiter.join(["Pat", "pat@x.example.com", '"2,500,000"', '"a,b"'])
        + "\n"
    )
    source = open_csv(write(tmp_path, text))
    assert source.delimiter == delimiter
    (row,) = source.rows()
    fields = row.fields
    assert fields["first_name"] == "Pat"
    assert fields["email"] == "pat@x.example.com"
    assert fields["annual_revenue"] == "2500000"
    assert fields["tags"] == ["a", "b"]


@pytest.mark.parametrize(
    ("written", "number"),
    [
        ('"$2,500,000"', "2500000"),
        ('"$2,500,000.00"', "2500000"),
        ("1 200", "1200"),
        ("25.0", "25"),
        ("£900", "900"),
        ("€1\u00a0000", "1000"),
    ],
)
def test_numbers_written_for_people(tmp_path: Path, written: str, number: str) -> None:
    line = f"Pat,R,p@x.example.com,A,CEO,{written},0,{written}"
    text = f"{SALESFORCE_HEADER},NumberOfEmployees\n{line}\n"
    (row,) = open_csv(write(tmp_path, text)).rows()
    assert row.error is None
    assert row.fields["annual_revenue"] == number
    assert row.fields["employees"] == number


def test_blank_lines_are_skipped_and_still_counted(tmp_path: Path) -> None:
    text = "email,first_name\na@x.example.com,A\n\n,\n  ,  \nb@x.example.com,B\n"
    rows = list(open_csv(write(tmp_path, text)).rows())
    assert [(row.number, row.fields["first_name"]) for row in rows] == [(1, "A"), (5, "B")]


def test_a_quoted_newline_stays_in_its_cell(tmp_path: Path) -> None:
    text = 'email,notes\na@x.example.com,"line one\nline two"\nb@x.example.com,short\n'
    rows = list(open_csv(write(tmp_path, text)).rows())
    assert [row.number for row in rows] == [1, 2]
    assert rows[0].fields["notes"] == "line one\nline two"


def test_rows_with_extra_cells_carry_an_error(tmp_path: Path) -> None:
    text = (
        "email,first_name\n"
        "a@x.example.com,A,surplus\n"
        "b@x.example.com,B,,  \n"  # empty extra cells are harmless
        "c@x.example.com\n"  # a short row: the missing cells are empty
    )
    a, b, c = open_csv(write(tmp_path, text)).rows()
    assert (a.number, b.number, c.number) == (1, 2, 3)
    assert a.error == "row 1 has 3 cells but the header has 2"
    assert a.cells == ("a@x.example.com", "A", "surplus")  # every cell, for the rejects
    assert b.error is None
    assert c.fields == {"email": "c@x.example.com"}
    assert c.cells == ("c@x.example.com", "")


def test_salesforce_columns_and_flags(tmp_path: Path) -> None:
    text = (
        "FirstName,LastName,Email,MobilePhone,Rating,HasOptedOutOfEmail,DoNotCall,Country\n"
        "Pat,R,p@x.example.com,+1 512 555 0134,Hot,true,yes,US\n"
        "Sam,N,s@x.example.com,,Cold,0,false,\n"
    )
    pat, sam = (row.fields for row in open_csv(write(tmp_path, text)).rows())
    assert pat["phone"] == "+1 512 555 0134"
    assert pat["interest"] == "high"
    assert pat["opt_outs"] == ["email", "call"]
    assert pat["country"] == "US"
    assert "opt_outs" not in sam
    assert "interest" not in sam
    assert "country" not in sam  # empty cells are left out, not set to ""


def test_hubspot_unsubscribed_becomes_an_email_opt_out(tmp_path: Path) -> None:
    text = HUBSPOT_HEADER + ",Unsubscribed from all email\nA,B,a@x.example.com,C,1,TRUE\n"
    (row,) = open_csv(write(tmp_path, text)).rows()
    assert row.fields["opt_outs"] == ["email"]
    assert row.fields["company"] == "C"


def test_generic_ignores_unknown_and_internal_columns(tmp_path: Path) -> None:
    text = "email,id,version,colour,needs\na@x.example.com,99,3,red,crm; backup\n"
    source = open_csv(write(tmp_path, text))
    (row,) = source.rows()
    assert row.fields == {"email": "a@x.example.com", "needs": ["crm", "backup"]}
    assert source.unused_columns() == ["id", "version", "colour"]


def test_generic_set_columns_list_their_items(tmp_path: Path) -> None:
    text = 'email,other_emails,tags\na@x.example.com,"b@x.example.com; c@x.example.com",vip\n'
    (row,) = open_csv(write(tmp_path, text)).rows()
    fields = row.fields
    assert fields["other_emails"] == ["b@x.example.com", "c@x.example.com"]
    assert fields["tags"] == ["vip"]
    lead = Lead(**fields)
    assert lead.other_emails == {"b@x.example.com", "c@x.example.com"}


def test_rows_stream_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "email\n" + "".join(f"p{n}@x.example.com\n" for n in range(5)))
    rows = open_csv(path).rows()
    first = next(rows)
    assert first.fields == {"email": "p0@x.example.com"}
    assert sum(1 for _ in rows) == 4


# --- part two: exports as Salesforce and HubSpot write them ---------------------------

# A Salesforce Lead report, "Export details" as CSV: the labels the screen shows, dates
# as the user's locale writes them, and the footer Salesforce adds under the rows.
SALESFORCE_REPORT = (
    '"Lead Owner","First Name","Last Name","Title","Company / Account","Email","Phone",'
    '"Mobile","Lead Source","Lead Status","Rating","Email Opt Out","Do Not Call",'
    '"Create Date","Annual Revenue","No. of Employees","State/Province","Country","Website"\n'
    '"Dana Rep","Pat","Rivera","CEO","Acme IT","pat@acme-it.example.com","",'
    '"(512) 555-0134","Web","Working - Contacted","Hot","0","1","3/15/2024 2:30 PM",'
    '"2,500,000.00","25","TX","United States","acme-it.example.com"\n'
    '"Dana Rep","Sam","Nguyen","Owner","Bluepeak","sam@bluepeak.example.com",'
    '"(415) 555-0199","","Trade Show","Closed - Not Converted","","1","0","1/5/2024 9:05 AM",'
    '"","","CA","United States",""\n'
    "\n"
    '"Leads"\n'
    '"Copyright (c) 2000-2024 salesforce.com, inc. All rights reserved."\n'
    '"Confidential Information - Do Not Distribute"\n'
    '"Generated By:  Dana Rep  3/20/2024 10:12 AM"\n'
    '"Acme IT Services"\n'
)
HUBSPOT_EXPORT = (
    "Record ID,First Name,Last Name,Email,Phone Number,Mobile Phone Number,Company Name,"
    "Lifecycle Stage,Lead Status,Create Date,Contact owner,Marketing contact status\n"
    "1051,Alex,Smith,alex@northwind.example.com,,+44 7700 900123,Northwind,"
    "Marketing Qualified Lead,Open,2024-03-05 14:22,Jo Rep,Marketing contact\n"
    "1052,Kim,Lee,kim@fjord.example.com,+47 22 33 44 55,+47 900 00 000,Fjord,"
    "customer,,2023-11-30 08:00,Jo Rep,Non-marketing contact\n"
)


def test_a_salesforce_report_export_is_read_by_its_labels(tmp_path: Path) -> None:
    source = open_csv(write(tmp_path, SALESFORCE_REPORT))
    assert source.format == "salesforce"
    pat, sam = source.rows()
    assert pat.fields == {
        "first_name": "Pat",
        "last_name": "Rivera",
        "title": "CEO",
        "company": "Acme IT",
        "email": "pat@acme-it.example.com",
        "phone": "(512) 555-0134",  # "Mobile", as "Phone" is empty
        "source": "Web",
        "owner": "Dana Rep",
        "annual_revenue": "2500000",
        "employees": "25",
        "region": "TX",
        "country": "United States",
        "interest": "high",
        "opt_outs": ["call"],
        "created_at": datetime(2024, 3, 15, 14, 30, tzinfo=UTC),
        "status": "raw",
    }
    assert sam.fields["phone"] == "(415) 555-0199"
    assert sam.fields["opt_outs"] == ["email"]
    assert sam.fields["status"] == "unqualified"
    assert sam.fields["created_at"] == datetime(2024, 1, 5, 9, 5, tzinfo=UTC)
    assert source.footer_lines == 5  # not five more leads named "Leads", "Copyright"...
    assert source.unused_columns() == ["Website"]


def test_a_row_that_looks_like_a_footer_but_is_not_stays(tmp_path: Path) -> None:
    text = "First Name,Last Name,Company / Account\nPat,,\n\nSam,Nguyen,Bluepeak\nLee,,\n"
    rows = list(open_csv(write(tmp_path, text)).rows())
    assert [row.fields["first_name"] for row in rows] == ["Pat", "Sam", "Lee"]


def test_a_hubspot_export_uses_the_mobile_number_when_the_phone_is_empty(
    tmp_path: Path,
) -> None:
    source = open_csv(write(tmp_path, HUBSPOT_EXPORT))
    assert source.format == "hubspot"
    alex, kim = source.rows()
    assert alex.fields["phone"] == "+44 7700 900123"
    assert kim.fields["phone"] == "+47 22 33 44 55"
    assert alex.fields["status"] == "qualified"  # "Open" lead status: the stage decides
    assert alex.fields["created_at"] == datetime(2024, 3, 5, 14, 22, tzinfo=UTC)
    assert alex.fields["owner"] == "Jo Rep"
    assert kim.fields["type"] == "client"  # HubSpot's internal value, any case
    assert "status" not in kim.fields
    assert source.unused_columns() == ["Record ID", "Marketing contact status"]


@pytest.mark.parametrize(
    ("columns", "values", "expected"),
    [
        (("Status", "IsConverted"), ("Open - Not Contacted", "false"), {"status": "raw"}),
        (("Status", "IsConverted"), ("Working - Contacted", "false"), {"status": "raw"}),
        (
            ("Status", "IsConverted"),
            ("Closed - Not Converted", "false"),
            {"status": "unqualified"},
        ),
        (("Status", "IsConverted"), ("Closed - Converted", "true"), {"type": "prospect"}),
        (("Status", "IsConverted"), ("Working - Contacted", "true"), {"type": "prospect"}),
        (("Status", "IsConverted"), ("", ""), {}),
        (("Lifecycle Stage", "Lead Status"), ("Subscriber", ""), {"status": "suspect"}),
        (("Lifecycle Stage", "Lead Status"), ("Lead", "New"), {"status": "raw"}),
        (("Lifecycle Stage", "Lead Status"), ("Sales Qualified Lead", ""), {"status": "qualified"}),
        (("Lifecycle Stage", "Lead Status"), ("Opportunity", ""), {"type": "prospect"}),
        (("Lifecycle Stage", "Lead Status"), ("Evangelist", ""), {"type": "client"}),
        (("Lifecycle Stage", "Lead Status"), ("Other", ""), {"status": "raw"}),
        (("Lifecycle Stage", "Lead Status"), ("Lead", "Unqualified"), {"status": "unqualified"}),
        (("Lifecycle Stage", "Lead Status"), ("Customer", "Unqualified"), {"type": "client"}),
        (("Lifecycle Stage", "Lead Status"), ("", "UNQUALIFIED"), {"status": "unqualified"}),
    ],
)
def test_crm_statuses_carry_over(
    tmp_path: Path, columns: tuple[str, str], values: tuple[str, str], expected: dict[str, str]
) -> None:
    name = "FirstName" if "Status" in columns else "First Name"
    text = f"{name},Email,{','.join(columns)}\nPat,p@x.example.com,{','.join(values)}\n"
    (row,) = open_csv(write(tmp_path, text)).rows()
    assert row.error is None
    got = {k: v for k, v in row.fields.items() if k in ("status", "type")}
    assert got == expected


def test_a_status_value_nobody_mapped_rejects_its_row(tmp_path: Path) -> None:
    text = (
        "FirstName,Email,Status,Rating\n"
        "Pat,p@x.example.com,Open - Nurturing,Hot\n"
        "Sam,s@x.example.com,open - nurturing,\n"
        "Lee,l@x.example.com,Working - Contacted,\n"
    )
    source = open_csv(write(tmp_path, text))
    pat, sam, lee = source.rows()
    assert pat.error == (
        "Status 'Open - Nurturing': no status is known for this value; say what it means "
        "with --status-map FILE.toml, or give every row one with --status"
    )
    assert sam.error is not None
    assert lee.error is None
    assert source.unmapped == {("Status", "Open - Nurturing"): 1, ("Status", "open - nurturing"): 1}


def test_a_status_map_adds_meanings_and_overrides_the_built_in_ones(tmp_path: Path) -> None:
    toml = tmp_path / "statuses.toml"
    toml.write_text(
        "[Status]\n"
        '"Open - Nurturing" = "farm_list"\n'
        '"Closed - Won" = "client"\n'
        '"Closed - Junk" = "contact:avoid"\n'
        '"Working - Contacted" = "lead:qualified"\n'
        '"Parked" = ""\n',
        encoding="utf-8",
    )
    text = (
        "FirstName,Email,Status\n"
        "A,a@x.example.com,open - nurturing\n"
        "B,b@x.example.com,Closed - Won\n"
        "C,c@x.example.com,Closed - Junk\n"
        "D,d@x.example.com,Working - Contacted\n"
        "E,e@x.example.com,Parked\n"
        "F,f@x.example.com,Closed - Not Converted\n"
    )
    rows = open_csv(write(tmp_path, text), statuses=StatusMap.from_toml(toml)).rows()
    got = [{k: v for k, v in r.fields.items() if k in ("status", "type")} for r in rows]
    assert got == [
        {"status": "farm_list"},
        {"type": "client"},
        {"type": "avoid"},
        {"status": "qualified"},
        {},
        {"status": "unqualified"},  # the built-in meaning still holds
    ]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[Stauts]\n"Open" = "raw"\n', "[Stauts] is not a status column; use one of: "),
        ('Status = "raw"\n', "'Status' must be a table of values"),
        ('[Status]\n"Open" = "converted"\n', "'converted' is not something a row can become"),
        ('[Status]\n"Open" = "hot"\n', "use a lead status (suspect, farm_list, raw"),
        ('[Status]\n"Open" = 3\n', "give a string, not 3"),
        (
            '[Status]\n"Open - Nurturing" = "farm_list"\n"open nurturing" = "unqualified"\n',
            "and 'Open - Nurturing' are the same value",
        ),
        ("[Status\n", "is not valid TOML"),
    ],
)
def test_a_bad_status_map_is_refused(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "statuses.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        StatusMap.from_toml(path)


def test_a_status_map_with_no_table_for_this_files_status_columns_is_refused(
    tmp_path: Path,
) -> None:
    """A [status] table (the generic column) for a Salesforce file, whose column is
    Status, was read for nothing: every row of that status was then rejected with the
    advice to write the status map just written. A map may serve several exports: one
    table for this file's columns is enough."""
    text = "FirstName,Email,Status\nA,a@x.example.com,Open - Nurturing\n"
    path = write(tmp_path, text)
    wrong = StatusMap({"status": {"Open - Nurturing": "farm_list"}})
    with pytest.raises(CsvError, match=r"tables \(\[status\]\) name no status column of this"):
        open_csv(path, statuses=wrong)
    shared = StatusMap(
        {"Status": {"Open - Nurturing": "farm_list"}, "Lifecycle Stage": {"Trial": "raw"}}
    )
    (row,) = open_csv(path, statuses=shared).rows()
    assert row.fields["status"] == "farm_list"


def test_a_status_map_that_is_not_utf8_or_missing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "statuses.toml"
    path.write_bytes('[Status]\n"Geöffnet" = "raw"\n'.encode("cp1252"))
    with pytest.raises(ConfigError, match="cannot be read: it is not UTF-8"):
        StatusMap.from_toml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        StatusMap.from_toml(tmp_path / "missing.toml")


def test_statuses_can_be_left_alone(tmp_path: Path) -> None:
    text = "First Name,Email,Lifecycle Stage\nA,a@x.example.com,Customer\nB,b@x.example.com,Bogus\n"
    source = open_csv(write(tmp_path, text), read_statuses=False)
    assert [r.fields for r in source.rows()] == [
        {"first_name": "A", "email": "a@x.example.com"},
        {"first_name": "B", "email": "b@x.example.com"},
    ]
    assert source.unused_columns() == []  # read, on purpose not kept


def test_a_contact_row_leaves_lead_only_fields_out(tmp_path: Path) -> None:
    text = "FirstName,Email,Rating,IsConverted\nPat,p@x.example.com,Hot,true\n"
    (row,) = open_csv(write(tmp_path, text)).rows()
    assert row.fields == {"first_name": "Pat", "email": "p@x.example.com", "type": "prospect"}


def test_a_column_named_twice_is_refused(tmp_path: Path) -> None:
    text = "email,first_name,email\na@x.example.com,A,b@x.example.com\n"
    with pytest.raises(CsvError, match=r"names the column 'email' twice \(columns 1 and 3\)"):
        open_csv(write(tmp_path, text))
    # Columns without a name are no clash: Excel leaves them after the last one.
    source = open_csv(write(tmp_path, "email,,\na@x.example.com,,kept?\n", name="y.csv"))
    (row,) = source.rows()
    assert row.fields == {"email": "a@x.example.com"}
    assert source.unused_columns() == ["(column 3, no name)"]


def test_a_header_mixing_salesforce_and_hubspot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="mixes Salesforce and HubSpot columns; pass --format"):
        open_csv(write(tmp_path, "LeadSource,Lifecycle Stage\nWeb,Lead\n"))


@pytest.mark.parametrize(
    ("written", "whole", "expected"),
    [
        ("2500000,00", False, "2500000"),
        ("1.800.000", False, "1800000"),
        ("EUR 4.000.000", False, "4000000"),
        ("2.500.000,00 €", False, "2500000"),
        ("USD 1,234.56", False, "1234.56"),
        ("1,5", False, "1.5"),
        ("1'200'000", False, "1200000"),
        ("1.200", True, "1200"),  # a count has no fraction: the dot groups thousands
        ("1,200", True, "1200"),
        ("0.500", False, "0.5"),
        ("N/A", True, None),
        ("-", False, None),
    ],
)
def test_numbers_as_locales_write_them(written: str, whole: bool, expected: str | None) -> None:
    assert read_number(written, whole=whole) == expected


@pytest.mark.parametrize(
    ("written", "thousands", "expected"),
    [
        ("$204,433", ",", "204433"),  # a comma-separated file writes 204,433.00
        ("1.200", ".", "1200"),  # a semicolon-separated one 1.200,00
        ("1.200", ",", None),
        ("1,200", ".", None),
        ("1,200", None, None),  # tab or pipe: no convention to go by
    ],
)
def test_one_separator_before_three_digits_follows_the_file_s_convention(
    written: str, thousands: str | None, expected: str | None
) -> None:
    if expected is None:
        with pytest.raises(ValueError, match=re.escape("is ambiguous: 1200 or 1.2?")):
            read_number(written, thousands=thousands)
    else:
        assert read_number(written, thousands=thousands) == expected


@pytest.mark.parametrize(
    ("written", "whole", "message"),
    [
        ("1.200", False, "'1.200' is ambiguous: 1200 or 1.2? Write it without a thousands"),
        ("1,200", False, "'1,200' is ambiguous: 1200 or 1.2?"),
        ("2.5E+06", False, "scientific notation, which spreadsheets round"),
        ("12,34,567", False, "its separators do not split thousands"),
        ("1.234,5.6", False, "its dots and commas do not add up"),
        ("2.5", True, "'2.5' is not a whole number"),
        ("about 3M", False, "'about 3M' is not a number"),
        ("(500)", False, "'(500)' is not a number"),
    ],
)
def test_numbers_that_cannot_be_read_for_sure_are_refused(
    written: str, whole: bool, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        read_number(written, whole=whole)


def test_an_ambiguous_amount_rejects_its_row_and_stores_no_amount(tmp_path: Path) -> None:
    text = (
        "FirstName;Email;AnnualRevenue;NumberOfEmployees\n"
        "Pat;p@x.example.com;2500000,00;1.200\n"
        "Sam;s@x.example.com;1,500;12\n"
        "Lee;l@x.example.com;1.500;12\n"
    )
    pat, sam, lee = open_csv(write(tmp_path, text)).rows()
    assert (pat.error, pat.fields["annual_revenue"], pat.fields["employees"]) == (
        None,
        "2500000",
        "1200",
    )
    assert sam.error is not None
    assert sam.error.startswith("AnnualRevenue: '1,500' is ambiguous: 1500 or 1.5?")
    assert "annual_revenue" not in sam.fields
    assert (lee.error, lee.fields["annual_revenue"]) == (None, "1500")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2024-02-10T08:15:00.000Z", datetime(2024, 2, 10, 8, 15, tzinfo=UTC)),
        ("2024-03-05 14:22", datetime(2024, 3, 5, 14, 22, tzinfo=UTC)),
        ("2024-03-05", datetime(2024, 3, 5, tzinfo=UTC)),
        ("2024-03-05T14:22:00+02:00", datetime(2024, 3, 5, 12, 22, tzinfo=UTC)),
        ("3/15/2024 2:30 PM", datetime(2024, 3, 15, 14, 30, tzinfo=UTC)),
        ("3/15/2024, 2:30 PM", datetime(2024, 3, 15, 14, 30, tzinfo=UTC)),
        ("12/1/2024 12:05 AM", datetime(2024, 12, 1, 0, 5, tzinfo=UTC)),
        ("3/15/2024 14:30:05", datetime(2024, 3, 15, 14, 30, 5, tzinfo=UTC)),
        ("3/4/2024", datetime(2024, 3, 4, tzinfo=UTC)),
        ("15.03.2024 14:30", datetime(2024, 3, 15, 14, 30, tzinfo=UTC)),
    ],
)
def test_dates_as_crm_exports_write_them(written: str, expected: datetime) -> None:
    assert read_datetime(written) == expected


def test_a_date_without_a_zone_is_in_the_zone_given() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert read_datetime("2024-07-01 14:00", timezone=paris) == datetime(2024, 7, 1, 12, tzinfo=UTC)
    assert read_datetime("1/15/2024 2:00 PM", timezone=paris) == datetime(
        2024, 1, 15, 13, tzinfo=UTC
    )
    assert read_datetime("2024-07-01T14:00Z", timezone=paris) == datetime(
        2024, 7, 1, 14, tzinfo=UTC
    )  # a zone written in the value wins
    assert read_datetime("3/4/2024", day_first=True) == datetime(2024, 4, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("written", "day_first", "message"),
    [
        ("15/03/2024", False, "looks like day/month/year: read the file with --day-first"),
        ("3/15/2024", True, "looks like month/day/year: read the file without --day-first"),
        ("2/30/2024", False, "'2/30/2024' is not a date (day is out of range for month)"),
        ("3/15/2024 13:30 PM", False, "the hour of an AM/PM time is 1 to 12"),
        ("yesterday", False, "'yesterday' is not a date and time leadfunnel reads"),
    ],
)
def test_dates_are_never_guessed(written: str, day_first: bool, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        read_datetime(written, day_first=day_first)


def test_a_bad_date_rejects_its_row(tmp_path: Path) -> None:
    text = "First Name,Email,Create Date\nA,a@x.example.com,15/03/2024\n"
    (row,) = open_csv(write(tmp_path, text), day_first=False).rows()
    assert row.error is not None
    assert row.error.startswith("Create Date: '15/03/2024' is not a date")
    (row,) = open_csv(write(tmp_path, text, name="y.csv"), day_first=True).rows()
    assert row.fields["created_at"] == datetime(2024, 3, 15, tzinfo=UTC)


def test_an_overlong_cell_rejects_its_rows_and_the_rest_is_read(tmp_path: Path) -> None:
    # A quote left open swallows lines until the cell passes the CSV reader's limit.
    lines = ["email,notes", "a@x.example.com,fine", 'b@x.example.com,"an open quote']
    lines += [f"c{n}@x.example.com,{'y' * 200}" for n in range(1000)]
    lines += ['q@x.example.com,"' + "w" * 140_000 + '"', "last@x.example.com,ok"]
    rows = list(open_csv(write(tmp_path, "\n".join(lines) + "\n")).rows())
    bad = [(row.number, row.error) for row in rows if row.error]
    limit = (
        "a cell is longer than 131,072 characters (no field holds that much: notes hold "
        "32,000), as when a quote is left open; close the quote, or shorten the cell, and "
        "import these lines again"
    )
    # A cell over the limit whose quote closes (before a line break) is one row's.
    whole = (
        "line 1004 of the file: its 'notes' cell holds 140,000 characters, more than the "
        "131,072 a cell may hold (no field holds that much: notes hold 32,000); shorten the "
        "cell and import this row again"
    )
    assert bad == [(2, f"lines 3-600 of the file: {limit}"), (406, whole)]
    assert rows[0].fields == {"email": "a@x.example.com", "notes": "fine"}
    assert rows[2].fields["email"] == "c597@x.example.com"  # line 601, read again
    assert rows[-1].number == 407
    assert rows[-1].fields == {"email": "last@x.example.com", "notes": "ok"}


def test_cells_leadfunnel_neutralised_are_read_back_as_they_were(tmp_path: Path) -> None:
    text = "email,'=first_name,company\na@x.example.com,'=1+2,'+cmd\n"
    source = open_csv(write(tmp_path, text), "generic")
    (row,) = source.rows()
    assert source.header == ("email", "=first_name", "company")
    assert row.fields["company"] == "+cmd"
    assert row.cells == ("a@x.example.com", "=1+2", "+cmd")
