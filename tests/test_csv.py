"""Reading lead lists: format detection, encodings, dialects, numbers, odd rows."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from leadfunnel import Lead, LeadFunnelError
from leadfunnel._csv import CsvError, open_csv

SALESFORCE_HEADER = "FirstName,LastName,Email,Company,Title,AnnualRevenue,HasOptedOutOfEmail"
HUBSPOT_HEADER = "First Name,Last Name,Email,Company Name,Annual Revenue"


def write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "x.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


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
    ((fields, cells),) = source.rows()
    assert fields["first_name"] == "José"
    assert fields["last_name"] == "Müller"
    assert cells["FirstName"] == "José"


def test_windows_1252_bytes_from_excel(tmp_path: Path) -> None:
    text = HUBSPOT_HEADER + "\nRenée,Ødegård,renee@x.example.com,Café — Bar,€1.200\n"
    path = write(tmp_path, text, "cp1252")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    source = open_csv(path)
    assert source.encoding == "cp1252"
    ((fields, _),) = source.rows()
    assert (fields["first_name"], fields["last_name"]) == ("Renée", "Ødegård")
    assert fields["company"] == "Café — Bar"


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


def test_utf16_tab_separated_as_excel_saves_unicode_text(tmp_path: Path) -> None:
    text = "FirstName\tLastName\tEmail\nJosé\tMüller\tjose@x.example.com\n"
    path = tmp_path / "unicode.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    source = open_csv(path)
    assert (source.encoding, source.delimiter, source.format) == ("utf-16", "\t", "salesforce")
    ((fields, _),) = source.rows()
    assert fields == {"first_name": "José", "last_name": "Müller", "email": "jose@x.example.com"}


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
    ((fields, _),) = source.rows()
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
    row = f"Pat,R,p@x.example.com,A,CEO,{written},0,{written}"
    text = f"{SALESFORCE_HEADER},NumberOfEmployees\n{row}\n"
    ((fields, _),) = open_csv(write(tmp_path, text)).rows()
    assert fields["annual_revenue"] == number
    assert fields["employees"] == number


def test_blank_lines_are_skipped_and_still_counted(tmp_path: Path) -> None:
    text = "email,first_name\na@x.example.com,A\n\n,\n  ,  \nb@x.example.com,B\n"
    numbered = list(open_csv(write(tmp_path, text)).numbered_rows())
    assert [(n, f["first_name"]) for n, f, _ in numbered] == [(1, "A"), (5, "B")]


def test_a_quoted_newline_stays_in_its_cell(tmp_path: Path) -> None:
    text = 'email,notes\na@x.example.com,"line one\nline two"\nb@x.example.com,short\n'
    numbered = list(open_csv(write(tmp_path, text)).numbered_rows())
    assert [n for n, _, _ in numbered] == [1, 2]
    assert numbered[0][1]["notes"] == "line one\nline two"


def test_rows_with_extra_cells_carry_an_error(tmp_path: Path) -> None:
    text = (
        "email,first_name\n"
        "a@x.example.com,A,surplus\n"
        "b@x.example.com,B,,  \n"  # empty extra cells are harmless
        "c@x.example.com\n"  # a short row: the missing cells are empty
    )
    rows = list(open_csv(write(tmp_path, text)).numbered_rows())
    (one, a, a_cells), (two, b, _), (three, c, _) = rows
    assert (one, two, three) == (1, 2, 3)
    assert a["__error__"] == "row 1 has 3 cells but the header has 2"
    assert a_cells["first_name"] == "A"
    assert "__error__" not in b
    assert c == {"email": "c@x.example.com"}


def test_salesforce_columns_and_flags(tmp_path: Path) -> None:
    text = (
        "FirstName,LastName,Email,MobilePhone,Rating,HasOptedOutOfEmail,DoNotCall,Country\n"
        "Pat,R,p@x.example.com,+1 512 555 0134,Hot,true,yes,US\n"
        "Sam,N,s@x.example.com,,Cold,0,false,\n"
    )
    (pat, _), (sam, _) = open_csv(write(tmp_path, text)).rows()
    assert pat["phone"] == "+1 512 555 0134"
    assert pat["interest"] == "high"
    assert pat["opt_outs"] == ["email", "call"]
    assert pat["country"] == "US"
    assert "opt_outs" not in sam
    assert "interest" not in sam
    assert "country" not in sam  # empty cells are left out, not set to ""


def test_hubspot_unsubscribed_becomes_an_email_opt_out(tmp_path: Path) -> None:
    text = HUBSPOT_HEADER + ",Unsubscribed from all email\nA,B,a@x.example.com,C,1,TRUE\n"
    ((fields, _),) = open_csv(write(tmp_path, text)).rows()
    assert fields["opt_outs"] == ["email"]
    assert fields["company"] == "C"


def test_generic_ignores_unknown_and_internal_columns(tmp_path: Path) -> None:
    text = "email,id,version,colour,needs\na@x.example.com,99,3,red,crm; backup\n"
    ((fields, _),) = open_csv(write(tmp_path, text)).rows()
    assert fields == {"email": "a@x.example.com", "needs": ["crm", "backup"]}


def test_generic_set_columns_list_their_items(tmp_path: Path) -> None:
    text = 'email,other_emails,tags\na@x.example.com,"b@x.example.com; c@x.example.com",vip\n'
    ((fields, _),) = open_csv(write(tmp_path, text)).rows()
    assert fields["other_emails"] == ["b@x.example.com", "c@x.example.com"]
    assert fields["tags"] == ["vip"]
    lead = Lead(**fields)
    assert lead.other_emails == {"b@x.example.com", "c@x.example.com"}


def test_rows_stream_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "email\n" + "".join(f"p{n}@x.example.com\n" for n in range(5)))
    rows = open_csv(path).rows()
    first = next(rows)
    assert first[0] == {"email": "p0@x.example.com"}
    assert sum(1 for _ in rows) == 4
