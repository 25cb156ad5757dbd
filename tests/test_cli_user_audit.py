"""What a demanding user of the command line found (a read-only audit of the CLI and
CSV imports, 2026-11-29): each test failed before its fix."""

from __future__ import annotations

import codecs
import contextlib
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from leadfunnel import Funnel, SqlRepository
from leadfunnel._cli import main


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def stored(db: str) -> list[tuple[str | None, str | None, list[str]]]:
    repository = SqlRepository(db)
    try:
        return [(p.first_name, p.phone, sorted(p.other_phones)) for p in Funnel(repository).leads()]
    finally:
        repository.close()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'crm.db'}"


def write(tmp_path: Path, text: str, name: str = "in.csv") -> str:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return str(tmp_path / name)


# --- the due table shows text, never markup --------------------------------------------


def test_the_due_table_shows_brackets_in_names_as_they_are(tmp_path: Path, db: str) -> None:
    text = (
        "first_name,last_name,email,company\n"
        "Ann,Lee [/x],ann@r.example.com,Foo\n"
        "Pat,Rivera [inactive],pat@r.example.com,Acme [uk]\n"
    )
    assert run("import", write(tmp_path, text), "--db", db)[0] == 0
    code, out, err = run("due", "--db", db)
    assert code == 0, err
    assert "Lee [/x]" in out  # a closing tag: rich raised MarkupError (a traceback, exit 1)
    assert "Rivera [inactive]" in out
    assert "Acme [uk]" in out


def test_a_limit_of_zero_is_refused_not_answered_with_nobody(tmp_path: Path, db: str) -> None:
    assert run("import", write(tmp_path, "email\nann@r.example.com\n"), "--db", db)[0] == 0
    for command in ("due", "list"):
        extra = ["raw"] if command == "list" else []
        code, _, err = run(command, *extra, "--limit", "0", "--db", db)
        assert code == 2, (command, err)  # was "Nothing is due." / "(nobody)" and 0
        assert "--limit" in err


# --- encodings a user names ----------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "idna", "punycode"])
def test_an_encoding_that_cannot_read_the_file_is_one_line_and_status_2(
    tmp_path: Path, db: str, encoding: str
) -> None:
    source = write(tmp_path, "email,first_name\na@b.example.com,Ann\n")
    code, _, err = run("import", source, "--encoding", encoding, "--db", db)
    assert code == 2, err  # a UnicodeError traceback, exit 1
    assert "Traceback" not in err
    assert err.count("\n") == 1
    assert not stored(db)


@pytest.mark.parametrize(
    ("encoding", "codec"),
    [("utf-16-le", "utf-16"), ("utf-16-be", "utf-16-be"), ("utf-32-le", "utf-32")],
)
def test_a_byte_order_mark_is_no_part_of_the_first_column_s_name(
    tmp_path: Path, db: str, encoding: str, codec: str
) -> None:
    data = "first_name\temail\nAnn\ta@u.example.com\n".encode(codec)
    if codec == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    (tmp_path / "u.csv").write_bytes(data)
    code, out, err = run("import", str(tmp_path / "u.csv"), "--encoding", encoding, "--db", db)
    assert code == 0, err
    assert "not imported" not in out  # "Columns not imported: \ufefffirst_name"
    assert stored(db) == [("Ann", None, [])]


# --- erase --file --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ("jürgen@x.example.com\n".encode("cp1252"), "not UTF-8 (byte 0xFC on line 1)"),
        ("jürgen@x.example.com\n".encode("utf-16"), 'UTF-16 (Notepad\'s "Unicode")'),
    ],
)
def test_an_erase_list_that_is_not_utf8_is_refused_in_one_line(
    tmp_path: Path, db: str, data: bytes, said: str
) -> None:
    assert run("import", write(tmp_path, "email\njürgen@x.example.com\n"), "--db", db)[0] == 0
    (tmp_path / "list.txt").write_bytes(data)
    code, _, err = run("erase", "--file", str(tmp_path / "list.txt"), "--db", db)
    assert code == 2, err  # a UnicodeDecodeError traceback, exit 1
    assert said in err
    assert "save it as UTF-8" in err
    assert stored(db) == [(None, None, [])]  # nobody erased: still as imported
    (lead,) = Funnel(SqlRepository(db)).leads()
    assert lead.email == "jürgen@x.example.com"
    assert lead.erased_at is None


# --- the mobile number ------------------------------------------------------------------


def test_a_mobile_beside_a_phone_is_one_of_the_person_s_other_phones(
    tmp_path: Path, db: str
) -> None:
    salesforce = (
        "FirstName,LastName,Email,Company,Phone,MobilePhone\n"
        "Pat,Rivera,pat@m.example.com,Acme,(512) 555-0134,(512) 555-0199\n"
        "Lee,Chan,lee@m.example.com,Acme,(512) 555-0150,+1 512 555 0150\n"  # the same
        "Ana,Ruiz,ana@m.example.com,Acme,,(512) 555-0160\n"  # the mobile is the phone
        "Bo,Berg,bo@m.example.com,Acme,(512) 555-0170,N/A\n"
    )
    hubspot = (
        "First Name,Last Name,Email,Phone Number,Mobile Phone Number\n"
        "Mia,Berg,mia@m.example.com,+1 512 555 0188,+1 512 555 0177\n"
    )
    assert run("import", write(tmp_path, salesforce, "sf.csv"), "--db", db)[0] == 0
    assert run("import", write(tmp_path, hubspot, "hs.csv"), "--db", db)[0] == 0
    assert stored(db) == [
        ("Pat", "+15125550134", ["+15125550199"]),
        ("Lee", "+15125550150", []),
        ("Ana", "+15125550160", []),
        ("Bo", "+15125550170", []),
        ("Mia", "+15125550188", ["+15125550177"]),
    ]
    # A later file giving Pat's mobile as the phone finds Pat: it was added again.
    again = "FirstName,LastName,Company,Phone\nPat,Rivera,Acme,(512) 555-0199\n"
    code, out, _ = run("import", write(tmp_path, again, "again.csv"), "--db", db)
    assert code == 0
    assert out.startswith("0 added, 1 duplicates"), out


def test_a_bad_mobile_beside_a_phone_rejects_its_row_naming_the_mobile_column(
    tmp_path: Path, db: str
) -> None:
    text = (
        "FirstName,Email,Phone,OtherPhone,MobilePhone\n"
        "Pat,pat@m.example.com,(512) 555-0134,(512) 555-0111,12\n"
        "Lee,lee@m.example.com,(512) 555-0150,12,(512) 555-0112\n"
    )
    rejects = tmp_path / "r.csv"
    code, out, _ = run("import", write(tmp_path, text), "--db", db, "--rejects", str(rejects))
    assert code == 0
    assert out.startswith("0 added, 0 duplicates, 0 avoided, 2 rejected"), out
    reasons = rejects.read_text(encoding="utf-8").splitlines()[1:]
    assert "MobilePhone: " in reasons[0]
    assert "'12'" in reasons[0]
    assert "OtherPhone: " in reasons[1]
    assert "'12'" in reasons[1]


# --- outputs over the database, and reasons that name the file's columns ---------------


@pytest.mark.parametrize("tail", ["", "-wal"])
def test_the_demo_refuses_a_chart_over_a_file_of_its_database(tmp_path: Path, tail: str) -> None:
    db = tmp_path / "d.db"
    code, _, err = run("demo", "--leads", "20", "--db", f"sqlite:///{db}", "--svg", f"{db}{tail}")
    assert code == 2, err  # wrote the chart over the WAL (the demo's funnel lost), exit 0
    assert "is a file of the database" in err
    assert Funnel(SqlRepository(f"sqlite:///{db}")).count("lead") == 0  # nothing stored


def test_a_future_creation_date_s_reason_names_the_file_s_column(tmp_path: Path, db: str) -> None:
    text = "FirstName,Email,CreatedDate\nC,c@x.example.com,2999-01-01T00:00:00Z\n"
    rejects = tmp_path / "r.csv"
    assert run("import", write(tmp_path, text), "--db", db, "--rejects", str(rejects))[0] == 0
    (reason,) = (line for line in rejects.read_text(encoding="utf-8").splitlines()[1:])
    assert "CreatedDate: 2999-01-01T00:00:00+00:00 is later than the import" in reason


def test_a_number_of_another_country_that_is_no_number_here_says_what_reads_it(
    tmp_path: Path, db: str
) -> None:
    text = "FirstName,Email,Phone,Country\nE,e@q.example.com,07911 123456,United Kingdom\n"
    rejects = tmp_path / "r.csv"
    assert run("import", write(tmp_path, text), "--db", db, "--rejects", str(rejects))[0] == 0
    (reason,) = rejects.read_text(encoding="utf-8").splitlines()[1:]
    # Was only "cannot be a phone number in region US": the hint came only for a number
    # that also reads in the default region.
    assert "+44" in reason
    assert "--phone-region GB" in reason
    code, out, _ = run("import", write(tmp_path, text), "--db", db, "--phone-region", "GB")
    assert code == 0
    assert out.startswith("1 added"), out


def test_a_pipe_is_refused_as_a_pipe_not_as_a_missing_file(tmp_path: Path, db: str) -> None:
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)

    def unblock() -> None:  # a reader opened the pipe (the check is gone): end its wait
        with contextlib.suppress(OSError):  # nobody reads it: as it should be
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(3, unblock)
    timer.start()
    try:
        code, _, err = run("import", str(fifo), "--db", db)
    finally:
        timer.cancel()
    assert code == 2
    assert "not a file but a pipe" in err  # was "no such file"


# --- from the docs audit: messages that said what is not so --------------------------


def test_a_new_lead_with_a_status_it_cannot_start_in_names_no_false_way_out() -> None:
    from leadfunnel import InvalidTransitionError, Lead

    funnel = Funnel()
    with pytest.raises(InvalidTransitionError) as caught:
        funnel.add(Lead(email="q@x.example.com", status="qualified"))
    # Was "triggers allowed from 'qualified': none", while disqualify, convert and avoid are.
    assert "triggers allowed" not in str(caught.value)
    assert "new leads start as suspect, farm_list, raw or avoid" in str(caught.value)
    assert caught.value.allowed == ()
    report = funnel.import_leads([{"email": "r@x.example.com"}], status="suspect")
    assert len(report.added) == 1
    with pytest.raises(InvalidTransitionError) as imported:
        funnel.import_leads([{"email": "s@x.example.com"}], status="qualified")
    assert "triggers allowed" not in str(imported.value)


def test_an_edit_giving_someone_else_s_e_mail_says_to_merge_not_to_stop_adding() -> None:
    from leadfunnel import DuplicateError, Lead

    funnel = Funnel()
    ann = funnel.add(Lead(email="ann@x.example.com"))
    bob = funnel.add(Lead(email="bob@x.example.com", phone="+1 512 555 0134"))
    with pytest.raises(DuplicateError) as caught:
        funnel.update(bob.model_copy(update={"email": "Ann@x.example.com"}))
    assert caught.value.existing_id == ann.id
    assert caught.value.key == "email:ann@x.example.com"
    message = str(caught.value)
    assert "adding again" not in message  # an add's advice, for an edit
    assert "funnel.merge" in message
    assert "ann@" not in message.lower()  # never the personal value (DESIGN 13)
    assert funnel.get_lead(bob.id).email == "bob@x.example.com"


def test_a_mobile_that_is_the_phone_written_another_way_is_not_kept_twice(
    tmp_path: Path, db: str
) -> None:
    text = "First Name,Email,Phone,Mobile\nAnn,ann@x.example.com,+44 7911 123456,07911 123456\n"
    code, out, _ = run("import", write(tmp_path, text), "--db", db, "--phone-region", "GB")
    assert code == 0
    assert out.startswith("1 added"), out
    assert stored(db) == [("Ann", "+447911123456", [])]  # was the phone twice


def test_another_phone_of_another_country_says_what_reads_it() -> None:
    from pydantic import ValidationError

    from leadfunnel import Lead

    with pytest.raises(ValidationError) as caught:
        Lead(email="e@x.example.com", country="GB", other_phones={"07911 123456"})
    assert "+44" in str(caught.value)
    assert "Funnel(phone_region='GB')" in str(caught.value)
    assert Lead(phone="+447911123456", other_phones={"+44 7911 123456"}).other_phones == set()
    # No region of its own (Antarctica): no --phone-region it would refuse.
    with pytest.raises(ValidationError) as antarctic:
        Lead(country="AQ", phone="07911 123456")
    assert "--phone-region" not in str(antarctic.value)


def test_times_in_a_daylight_saving_change_are_read_and_said_so(tmp_path: Path, db: str) -> None:
    text = (
        "FirstName,Email,CreatedDate\n"
        "A,a@x.example.com,2024-03-10 02:30\n"  # New York's clock skips 02:00-03:00
        "B,b@x.example.com,2024-11-03 01:30\n"  # ... and shows 01:00-02:00 twice
        "C,c@x.example.com,2024-05-01 10:00\n"
        "D,d@x.example.com,2024-11-03 01:30-04:00\n"  # an offset: no doubt
    )
    zone = ("--timezone", "America/New_York")
    code, out, _ = run("import", write(tmp_path, text), "--db", db, *zone)
    assert code == 0
    assert "2 times fell in a daylight-saving change of America/New_York" in out
    assert "1 that does not exist there (the clock skips them; first at row 1)" in out
    assert "1 that happens twice (first at row 2) as the first of the two" in out
    repository = SqlRepository(db)
    try:
        created = {p.first_name: p.created_at for p in Funnel(repository).leads()}
    finally:
        repository.close()
    assert created["A"] == datetime(2024, 3, 10, 7, 30, tzinfo=UTC)  # 03:30 EDT
    assert created["B"] == created["D"] == datetime(2024, 11, 3, 5, 30, tzinfo=UTC)
    quiet = write(tmp_path, "FirstName,Email,CreatedDate\nE,e@x.example.com,2024-03-10 02:30\n")
    assert "daylight" not in run("import", quiet, "--db", db)[1]  # UTC has no such change
