"""Reading messy CRM exports as an audit found them: opt-out values in every language, a
quote left open, a report footer that is not one, rows wider than the header, fields
the funnel keeps itself, Excel's ``sep=`` line, Mac Roman text, day/month dates, and
files whose columns leadfunnel would not read."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import write_csv as write
from leadfunnel import _csv
from leadfunnel._csv import CsvError, open_csv

# --- opt-outs: every yes is a yes, and an unknown value is never a no -------------------

YES = ["WAHR", "VRAI", "VERO", "WAAR", "Ja", "Oui", "Sí", "1.0", "-1", "on", "✓", "X", "true"]
OPTED_OUT = ["Opted Out", "Unsubscribed", "Do Not Allow", "do_not_allow", "opt-out"]
NO = ["FALSCH", "FAUX", "FALSO", "ONWAAR", "Nein", "Non", "0.0", "off", "false", "0", ""]


@pytest.mark.parametrize("value", YES + OPTED_OUT)
def test_opt_out_values_in_every_language_are_opt_outs(tmp_path: Path, value: str) -> None:
    text = (
        "Lead Owner,Company,First Name,Last Name,Email,Lead Status,Email Opt Out,Do Not Call\n"
        f'Jo Rep,Co,P,Test,p@x.example.com,Working - Contacted,"{value}","{value}"\n'
    )
    (row,) = open_csv(write(tmp_path, text)).rows()
    assert row.error is None
    assert row.fields["opt_outs"] == ["email", "call"]


@pytest.mark.parametrize("value", [*NO, "Allow", "Subscribed"])
def test_no_values_in_every_language_are_no_opt_out(tmp_path: Path, value: str) -> None:
    text = f'FirstName,Email,HasOptedOutOfEmail,DoNotCall\nP,p@x.example.com,"{value}",{value}\n'
    (row,) = open_csv(write(tmp_path, text)).rows()
    assert row.error is None
    assert "opt_outs" not in row.fields


@pytest.mark.parametrize("value", ["maybe", "2", "Opt in later", "?"])
def test_an_opt_out_value_that_says_neither_rejects_its_row(tmp_path: Path, value: str) -> None:
    text = f"First Name,Email,Unsubscribed from all email\nP,p@x.example.com,{value}\n"
    (row,) = open_csv(write(tmp_path, text)).rows()
    assert row.error is not None
    assert row.error.startswith(
        f"Unsubscribed from all email: {value!r} does not say opted out or not"
    )
    assert "Do Not Allow" in row.error
    assert "FALSCH" in row.error


def test_the_hubspot_german_excel_export_keeps_its_opt_outs(tmp_path: Path) -> None:
    # WAHR (German Excel's TRUE), VRAI, Ja: all opted out; FALSCH: not.
    text = (
        "Record ID;First Name;Email;Lifecycle Stage;Unsubscribed from all email\r\n"
        "1051;Jürgen;juergen@weiss.example.de;Lead;WAHR\r\n"
        "1052;François;f.lefevre@example.fr;Lead;FALSCH\r\n"
        "1053;Zoë;zoe@bronte.example.co.uk;Lead;VRAI\r\n"
        "1054;Ana;ana@nunez.example.es;Lead;Ja\r\n"
    )
    rows = list(open_csv(write(tmp_path, text, "cp1252")).rows())
    assert [row.fields.get("opt_outs") for row in rows] == [["email"], None, ["email"], ["email"]]


def test_read_flag_reads_converted_columns_without_opt_out_wording() -> None:
    assert _csv.read_flag("VERDADERO") is True
    assert _csv.read_flag("Sí") is True
    assert _csv.read_flag("fałsz") is False
    with pytest.raises(ValueError, match="does not say yes or no"):
        _csv.read_flag("Unsubscribed")  # an opt-out's wording, not a yes of any column


def test_an_unknown_converted_value_rejects_its_row(tmp_path: Path) -> None:
    text = "FirstName,Email,IsConverted\nP,p@x.example.com,perhaps\nQ,q@x.example.com,WAHR\n"
    p, q = open_csv(write(tmp_path, text)).rows()
    assert p.error is not None
    assert p.error.startswith("IsConverted: 'perhaps'")
    assert q.fields["type"] == "prospect"


# --- fields the funnel keeps itself ------------------------------------------------------


def test_a_generic_file_cannot_set_the_fields_the_funnel_keeps(tmp_path: Path) -> None:
    text = (
        "first_name,email,erased_at,profile,lead_id,contact_id,status_at,updated_at,opt_outs\n"
        "Eve,eve@x.example.com,2024-01-01T00:00:00+00:00,sweet-spot,L1,C1,"
        "2024-01-01,2024-01-01,\n"
    )
    source = open_csv(write(tmp_path, text))
    assert source.format == "generic"
    (row,) = source.rows()
    assert row.fields == {"first_name": "Eve", "email": "eve@x.example.com"}
    assert source.unused_columns() == [
        "erased_at",
        "profile",
        "lead_id",
        "contact_id",
        "status_at",
        "updated_at",
    ]


# --- a quote left open ----------------------------------------------------------------------

UNCLOSED_MID = (
    "FirstName,LastName,Email,Company,Status,HasOptedOutOfEmail,Description\r\n"
    "Zoe,Bronte,zoe@bronte.example.co.uk,Bronte Ltd,Open - Not Contacted,0,"
    '"Said: call me in June - quote left open\r\n'
    "Ana,Nunez,ana@nunez.example.es,Nunez SL,Open - Not Contacted,0,fine\r\n"
    "Tom,Weber,tom@rhein.example.de,Rhein GmbH,Open - Not Contacted,1,fine\r\n"
    'Kim,Lee,kim@lee.example.com,Lee Co,Open - Not Contacted,0,"normal ""quoted"" note"\r\n'
    "Max,Roth,max@roth.example.de,Roth AG,Open - Not Contacted,1,fine\r\n"
)


def test_a_quote_left_open_mid_file_rejects_its_row_naming_the_lines(tmp_path: Path) -> None:
    zoe, max_ = open_csv(write(tmp_path, UNCLOSED_MID)).rows()
    assert zoe.error == (
        "line 2: a quote opened in this row was left open: lines 3-5, which look like rows "
        "of their own, went into its 'Description' cell; close the quote (or remove it) and "
        "import this row and those lines again"
    )
    assert zoe.cells[0] == "Zoe"
    assert "Tom,Weber,tom@rhein.example.de" in zoe.cells[6]  # kept, for the rejects file
    assert (max_.number, max_.error, max_.fields["email"]) == (2, None, "max@roth.example.de")


def test_a_quote_open_to_the_end_of_the_file_rejects_its_row(tmp_path: Path) -> None:
    text = (
        "FirstName;LastName;Email;Company;Description\r\n"
        "René;Lefèvre;rene@lefevre.example.fr;Lefèvre SA;fine\r\n"
        'Zoë;Brontë;zoe@bronte.example.co.uk;Brontë Ltd;"Said: ""call me"" \u2013 unclosed\r\n'
        "Ana;Núñez;ana@nunez.example.es;Núñez SL;fine\r\n"
        "Tom;Weber;tom@rhein.example.de;Rhein GmbH;fine\r\n"
    )
    rene, zoe = open_csv(write(tmp_path, text, "cp1252")).rows()
    assert rene.error is None
    assert zoe.error == (
        "line 3: a quote opened in this row is never closed (it runs to the end of the "
        "file), so lines 4-5 went into its 'Description' cell; close the quote (or remove "
        "it) and import this row and those lines again"
    )


def test_a_quote_open_at_the_end_swallowing_no_row_is_still_found(tmp_path: Path) -> None:
    text = 'email,notes\na@x.example.com,fine\nb@x.example.com,"a note\nwith two lines\n'
    a, b = open_csv(write(tmp_path, text)).rows()
    assert a.error is None
    assert b.error is not None
    assert b.error.startswith("line 3: a quote opened in this row is never closed")


def test_notes_of_several_lines_still_import_whole(tmp_path: Path) -> None:
    text = (
        "FirstName,LastName,Email,Company,Description\r\n"
        'Ann,Ames,ann@x.example.com,Acme,"Met at CeBIT.\r\nWants backup, storage, '
        'support.\r\n""Call after Easter"""\r\n'
        'Bob,Bell,bob@x.example.com,Bell,"last row, two lines\nend"\r\n'
    )
    ann, bob = open_csv(write(tmp_path, text)).rows()
    assert (ann.error, bob.error) == (None, None)
    assert ann.fields["notes"] == (
        'Met at CeBIT.\r\nWants backup, storage, support.\r\n"Call after Easter"'
    )
    assert bob.fields["notes"] == "last row, two lines\nend"


# --- a Salesforce report's footer, and rows that only look like it ---------------------------


def test_rows_with_only_an_email_are_never_a_footer(tmp_path: Path) -> None:
    text = (
        "Email,First Name,Company\r\n"
        "ann@acme.example.com,Ann,Acme\r\n"
        "carl@initech.example.com,,\r\n"
        "benioff.fan@salesforce.com,,\r\n"
        "dora@globex.example.com,,\r\n"
    )
    source = open_csv(write(tmp_path, text), "salesforce")
    emails = [row.fields["email"] for row in source.rows()]
    assert emails == [
        "ann@acme.example.com",
        "carl@initech.example.com",
        "benioff.fan@salesforce.com",
        "dora@globex.example.com",
    ]
    assert source.footer_lines == 0


def test_only_the_report_footer_is_left_out(tmp_path: Path) -> None:
    text = (
        "First Name,Email,Lead Source\n"
        "Pat,pat@x.example.com,Web\n"
        "carl@initech.example.com,,\n"  # first column only, not a footer line
        "\n"
        "Leads\n"
        '"Copyright (c) 2000-2024 salesforce.com, inc. All rights reserved."\n'
        '"Confidential Information - Do Not Distribute"\n'
        '"Generated By:  Dana Rep  3/20/2024 10:12 AM"\n'
        '"Acme IT Services"\n'
    )
    source = open_csv(write(tmp_path, text))
    names = [row.fields["first_name"] for row in source.rows()]
    assert names == ["Pat", "carl@initech.example.com"]
    assert source.footer_lines == 5


# --- rows wider than the header ---------------------------------------------------------------


def test_a_row_wider_than_the_header_keeps_every_cell_and_counts_no_status(
    tmp_path: Path,
) -> None:
    text = (
        "First Name,Last Name,Email,Company Name,Lifecycle Stage,Unsubscribed from all email\n"
        "Pat,Rivera,pat@acme.example.com,Acme, Inc.,Lead,true\n"
        "Sam,Nguyen,sam@bluepeak.example.com,Bluepeak,Lead,false\n"
    )
    source = open_csv(write(tmp_path, text))
    pat, sam = source.rows()
    assert pat.cells == ("Pat", "Rivera", "pat@acme.example.com", "Acme", " Inc.", "Lead", "true")
    assert pat.error is not None
    assert pat.error.startswith("row 1 has 7 cells")
    assert not source.unmapped  # "Inc." is no Lifecycle Stage
    assert sam.error is None
    # Fixed (the cell quoted) and read again, the opt-out is there.
    with (tmp_path / "fixed.csv").open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(source.header)
        out.writerow(["Pat", "Rivera", "pat@acme.example.com", "Acme, Inc.", "Lead", "true"])
    (again,) = open_csv(tmp_path / "fixed.csv").rows()
    assert again.fields["opt_outs"] == ["email"]


# --- day and month: decided once for the whole file ------------------------------------------

UK_DATES = (
    "Record ID,First Name,Last Name,Email,Lifecycle Stage,Create Date\n"
    "2001,Olivia,Hughes,olivia@hughes.example.co.uk,Lead,05/03/2024 14:22\n"
    "2002,Harry,Patel,harry@patel.example.co.uk,Lead,15/03/2024 09:05\n"
    "2003,Amelia,Jones,amelia@jones.example.co.uk,Lead,01/12/2024 10:00\n"
    "2004,George,Evans,george@evans.example.co.uk,Lead,3/14/2024 16:40\n"
)


def test_the_order_of_day_and_month_is_decided_for_the_whole_file(tmp_path: Path) -> None:
    source = open_csv(write(tmp_path, UK_DATES))
    olivia, harry, amelia, george = source.rows()
    assert olivia.fields["created_at"] == datetime(2024, 3, 5, 14, 22, tzinfo=UTC)
    assert harry.fields["created_at"] == datetime(2024, 3, 15, 9, 5, tzinfo=UTC)
    assert amelia.fields["created_at"] == datetime(2024, 12, 1, 10, tzinfo=UTC)
    # A row contradicting the file's order is rejected alone, saying so.
    assert george.error == (
        "Create Date: '3/14/2024 16:40' is not a date (month must be in 1..12); dates were "
        "read day first (D/M/YYYY), as the file writes 15/03/2024 (row 2), which this "
        "date contradicts: fix it and import the row again"
    )
    assert source.day_first is True
    assert source.notes() == [
        "Dates were read day first (D/M/YYYY), as the file writes 15/03/2024 (row 2)"
    ]


def test_month_first_is_decided_the_same_way(tmp_path: Path) -> None:
    text = (
        "First Name,Email,Create Date\nA,a@x.example.com,05/03/2024\nB,b@x.example.com,3/15/2024\n"
    )
    source = open_csv(write(tmp_path, text))
    a, b = source.rows()
    assert a.fields["created_at"] == datetime(2024, 5, 3, tzinfo=UTC)
    assert b.fields["created_at"] == datetime(2024, 3, 15, tzinfo=UTC)
    assert source.notes() == [
        "Dates were read month first (M/D/YYYY), as the file writes 3/15/2024 (row 2)"
    ]


def test_with_no_date_to_tell_the_default_is_said(tmp_path: Path) -> None:
    text = "First Name,Email,Create Date\nA,a@x.example.com,05/03/2024\n"
    source = open_csv(write(tmp_path, text))
    (a,) = source.rows()
    assert a.fields["created_at"] == datetime(2024, 5, 3, tzinfo=UTC)
    (note,) = source.notes()
    assert note.startswith("Dates such as 05/03/2024 were read month first (M/D/YYYY), as ")
    assert "importing the file again changes nothing" in note
    assert note.endswith("give such a file --day-first the first time")


def test_with_no_date_to_tell_a_semicolon_file_is_read_day_first(tmp_path: Path) -> None:
    """Spreadsheets write semicolon-separated files where a comma is the decimal mark:
    in Europe, which writes the day first."""
    text = (
        "First Name;Email;Create Date\nA;a@x.example.com;05/03/2024\nB;b@x.example.com;01/12/2023\n"
    )
    source = open_csv(write(tmp_path, text))
    a, b = source.rows()
    assert a.fields["created_at"] == datetime(2024, 3, 5, tzinfo=UTC)
    assert b.fields["created_at"] == datetime(2023, 12, 1, tzinfo=UTC)
    (note,) = source.notes()
    assert note.startswith("Dates such as 05/03/2024 were read day first (D/M/YYYY), as ")
    assert note.endswith("give such a file --month-first the first time")
    # A date that tells, or the option, still decides.
    told = open_csv(write(tmp_path, text + "C;c@x.example.com;3/15/2024\n"))
    assert [r.fields["created_at"].month for r in told.rows()] == [5, 1, 3]
    given = open_csv(write(tmp_path, text), day_first=False)
    assert [r.fields["created_at"].month for r in given.rows()] == [5, 1]


def test_an_order_given_is_kept_and_iso_dates_need_no_decision(tmp_path: Path) -> None:
    source = open_csv(write(tmp_path, UK_DATES), day_first=False)
    rows = list(source.rows())
    assert [row.error is None for row in rows] == [True, False, True, True]
    assert source.notes() == []
    text = "First Name,Email,Create Date\nA,a@x.example.com,2024-03-05\n"
    iso = open_csv(write(tmp_path, text, name="iso.csv"))
    list(iso.rows())
    assert (iso.day_first, iso.notes()) == (None, [])


# --- Excel's "sep=" line --------------------------------------------------------------------


def test_excel_s_sep_line_names_the_separator_and_the_header_follows(tmp_path: Path) -> None:
    text = (
        "sep=;\r\n"
        "FirstName;LastName;Email;AnnualRevenue;CreatedDate\r\n"
        "René;Lefèvre;rene@lefevre.example.fr;1.234.567,89 €;31.12.2024\r\n"
    )
    source = open_csv(write(tmp_path, text, "cp1252"))
    assert (source.delimiter, source.header[0], source.format) == (";", "FirstName", "salesforce")
    (rene,) = source.rows()
    assert rene.number == 1
    assert rene.fields["annual_revenue"] == "1234567.89"
    assert rene.fields["last_name"] == "Lefèvre"


# --- Mac Roman ---------------------------------------------------------------------------------

MAC = (
    "First Name,Last Name,Email,Company Name,Lifecycle Stage\r"
    "Jürgen,Müller,juergen@mueller.example.de,Müller & Söhne GmbH,Lead\r"
    "Renée,Dubois,renee@dubois.example.fr,Café Dubois,Lead\r"
)


def test_mac_roman_text_is_refused_rather_than_read_as_windows_1252(tmp_path: Path) -> None:
    path = write(tmp_path, MAC, "mac_roman")
    with pytest.raises(CsvError) as info:
        open_csv(path)
    assert str(info.value) == (
        f"{path}: line 2 reads 'JŸrgen', which looks like Mac Roman text (what Excel for "
        "Mac saves as plain CSV), where it reads 'Jürgen'; import it with --encoding "
        "mac_roman (or --encoding cp1252 if 'JŸrgen' is right), or save it from Excel as "
        '"CSV UTF-8" and import that'
    )
    jurgen, renee = open_csv(path, encoding="mac_roman").rows()
    assert (jurgen.fields["last_name"], renee.fields["company"]) == ("Müller", "Café Dubois")


DOS = "First Name,Last Name,Company\nJosé,Peña,Gödel Köln\nRenée,García,Café\n"


def test_dos_text_is_refused_rather_than_read_as_windows_1252(tmp_path: Path) -> None:
    # Excel's "CSV (MS-DOS)" writes code page 437: read as Windows-1252, "José" is
    # "Jos\u201a" and "Peña" is "Pe\u00a4a".
    path = write(tmp_path, DOS, "cp437")
    with pytest.raises(CsvError) as info:
        open_csv(path)
    assert str(info.value) == (
        f"{path}: line 2 reads 'Jos\u201a', which looks like DOS text (what Excel saves as "
        "\"CSV (MS-DOS)\"), where it reads 'José'; import it with --encoding cp437 (or "
        "--encoding cp1252 if 'Jos\u201a' is right), or save it from Excel as \"CSV UTF-8\" "
        "and import that"
    )
    jose, renee = open_csv(path, encoding="cp437").rows()
    assert (jose.fields["last_name"], jose.fields["company"]) == ("Peña", "Gödel Köln")
    assert renee.fields["last_name"] == "García"


def test_a_sign_both_readings_make_a_letter_of_names_both(tmp_path: Path) -> None:
    # "na\u2039ve": Mac Roman reads "naãve", DOS "naïve"; only the caller knows.
    path = write(tmp_path, "First Name,Last Name\nAnna,Na\u00efve\n", "cp437")
    with pytest.raises(CsvError, match="--encoding mac_roman or --encoding cp437") as info:
        open_csv(path)
    assert "'Naïve'" in str(info.value)
    assert "'Naãve'" in str(info.value)


def test_dos_text_windows_1252_cannot_decode_names_the_dos_code_page(tmp_path: Path) -> None:
    # "ü" is byte 0x81 in code page 437, which Windows-1252 does not define.
    with pytest.raises(CsvError, match=re.escape('cp437 for its "CSV (MS-DOS)"')):
        open_csv(write(tmp_path, "First Name\nJürgen\n", "cp437"))


def test_windows_1252_quotes_and_signs_between_words_are_no_dos_text(tmp_path: Path) -> None:
    text = (
        "First Name,Description\n"
        "Lena,sagte \u201eja\u201c; Preis 5\u00a4 \u2022 Liste\n"
        "Max,Brand\u2122 \u201aeins\u2018\n"
    )
    lena, max_ = open_csv(write(tmp_path, text, "cp1252")).rows()
    assert lena.fields["first_name"] == "Lena"
    assert max_.fields["first_name"] == "Max"


def test_windows_1252_with_its_own_letters_is_still_read(tmp_path: Path) -> None:
    text = (
        "First Name,Email,Company Name\n"
        "Šimon,s@x.example.cz,Œuvre & Fils\n"
        "Zoë,z@x.example.com,Straße 5\n"
    )
    simon, zoe = open_csv(write(tmp_path, text, "cp1252")).rows()
    assert (simon.fields["first_name"], zoe.fields["first_name"]) == ("Šimon", "Zoë")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("klingon", "unknown encoding 'klingon'; give one Python knows, such as utf-8"),
        ("base64", "unknown encoding 'base64'"),
        ("utf-8", "the file does not decode as utf-8: it was saved in another encoding"),
    ],
)
def test_a_bad_encoding_given_is_refused(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(CsvError, match=re.escape(message)):
        open_csv(write(tmp_path, MAC, "mac_roman"), encoding=name)


def test_an_encoding_given_keeps_the_utf8_byte_order_mark_out(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffemail,first_name\na@x.example.com,Zoë\n")
    assert open_csv(path, encoding="UTF8").header == ("email", "first_name")


# --- files leadfunnel would read only in part ---------------------------------------------


def test_an_unknown_header_says_what_would_work(tmp_path: Path) -> None:
    text = "Person - Name,Person - Email - Work,Person - Phone - Work\nDana,d@x.example.com,1\n"
    with pytest.raises(CsvError) as info:
        open_csv(write(tmp_path, text))
    message = str(info.value)
    assert "(Person - Name, Person - Email - Work, Person - Phone - Work)" in message
    assert "import it with --format generic, e.g. rename 'Person - Email - Work' to email" in (
        message
    )
    assert "pass --format" not in message


def test_a_header_under_notes_is_pointed_at(tmp_path: Path) -> None:
    text = (
        "Notes:\n"
        '"When exporting your connection data, some e-mail addresses are missing."\n'
        "\n"
        "First Name,Last Name,URL,Email Address,Company,Position,Connected On\n"
        "Sara,Cohen,https://www.linkedin.com/in/saracohen,,Initech,VP Sales,12 Mar 2024\n"
    )
    with pytest.raises(CsvError, match=r"line 4 \(First Name, Last Name, URL, Email Address"):
        open_csv(write(tmp_path, text))


@pytest.mark.parametrize(
    ("header", "unread"),
    [
        (
            "First Name,Last Name,URL,Email Address,Company,Position,Connected On",
            "'Email Address' (an e-mail column?)",
        ),
        (
            "Name,First Name,Last Name,Title,Company,Contact Type,Work Email,Work Phone,"
            "Mobile Phone,City,State,Postal Code,Country",
            "'Contact Type' (a status column?); 'Work Email' (an e-mail column?); "
            "'Work Phone' (a phone column?)",
        ),
        (
            "Name,First Name,Last Name,Company Name,Business Phone,Mobile Phone,Email,"
            "Lead Source,Do not allow Emails,Do not allow Phone Calls",
            "'Business Phone' (a phone column?); 'Do not allow Emails' (an opt-out column?); "
            "'Do not allow Phone Calls' (an opt-out column?)",
        ),
        (
            "Lead Owner,Company,First Name,Last Name,Email,Phone,Lead Status,Email Opt-out,"
            "Secondary Email",
            "'Email Opt-out' (an opt-out column?)",  # a secondary e-mail fills other_emails
        ),
    ],
)
def test_a_crm_file_whose_people_columns_would_not_be_read_is_refused(
    tmp_path: Path, header: str, unread: str
) -> None:
    with pytest.raises(CsvError) as info:
        open_csv(write(tmp_path, header + "\n"))
    message = str(info.value)
    assert f"these columns would not be imported: {unread}; people would be stored" in message
    assert "Rename each to a name a" in message
    assert "--format generic" in message


def test_a_status_column_left_unread_on_purpose_is_no_reason_to_refuse(tmp_path: Path) -> None:
    path = write(tmp_path, "FirstName,Email,Status Reason\nA,a@x.example.com,New\n")
    with pytest.raises(CsvError, match="'Status Reason' \\(a status column\\?\\)"):
        open_csv(path)
    assert open_csv(path, read_statuses=False).unused_columns() == ["Status Reason"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Email,Company,Position", "salesforce"),  # one plain word alone tells nothing...
        ("Email,Company,Company Name", "hubspot"),  # ...against a HubSpot title
        ("Email,First Name,Company,Phone Number", "hubspot"),
    ],
)
def test_one_plain_word_does_not_decide_the_format(
    tmp_path: Path, header: str, expected: str
) -> None:
    assert open_csv(write(tmp_path, header + "\n")).format == expected


def test_many_rows_holding_only_their_first_cell_stream(tmp_path: Path) -> None:
    emails = [f"p{n}@x.example.com" for n in range(20)]
    text = "Email,First Name,Company\n" + "".join(f"{e},,\n" for e in emails)
    rows = open_csv(write(tmp_path, text), "salesforce").rows()
    assert next(rows).fields["email"] == emails[0]  # read before the file's end
    assert [row.fields["email"] for row in rows] == emails[1:]
