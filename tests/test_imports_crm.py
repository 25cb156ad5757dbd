"""``leadfunnel import`` of files shaped like real Salesforce and HubSpot exports: the
examples of docs/cli.md as shown, report exports, locale numbers, dates and zones,
status maps, and files that must be refused whole."""

from __future__ import annotations

import csv
import shlex
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from leadfunnel import Funnel, SqlRepository
from leadfunnel._cli import main

DOCS = Path(__file__).resolve().parent.parent / "docs"


def console_examples(page: str) -> list[list[tuple[str, list[str]]]]:
    """The ```console blocks marked ``<!-- import-example -->``: (command, output lines)."""
    lines = page.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip() != "<!-- import-example -->":
            continue
        assert lines[i + 1] == "```console"
        session: list[tuple[str, list[str]]] = []
        for text in lines[i + 2 : lines.index("```", i + 2)]:
            if text.startswith("$ "):
                session.append((text[2:], []))
            else:
                session[-1][1].append(text)
        found.append(session)
    return found


def test_the_import_examples_of_the_cli_page_run_as_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = console_examples((DOCS / "cli.md").read_text(encoding="utf-8"))
    assert len(sessions) == 2
    runner = CliRunner()
    for n, session in enumerate(sessions):
        folder = tmp_path / str(n)
        folder.mkdir()
        monkeypatch.chdir(folder)
        db = f"sqlite:///{folder / 'docs.db'}"
        for command, output in session:
            program, *args = shlex.split(command)
            if program == "cat" and not Path(args[0]).exists():
                Path(args[0]).write_text("\n".join(output) + "\n", encoding="utf-8")
            elif program == "cat":
                assert Path(args[0]).read_text(encoding="utf-8").splitlines() == output, command
            else:
                assert program == "leadfunnel"
                result = runner.invoke(main, [*args, "--db", db], catch_exceptions=False)
                assert result.exit_code == 0, result.output
                assert result.output.splitlines() == output, command


def test_the_hubspot_example_carries_statuses_dates_and_zones_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    [_, session] = console_examples((DOCS / "cli.md").read_text(encoding="utf-8"))
    (_, rows), (imported, _) = session
    Path("hubspot-contacts.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'hs.db'}"
    CliRunner().invoke(main, [*shlex.split(imported)[1:], "--db", db], catch_exceptions=False)
    funnel = Funnel(SqlRepository(db))
    leads = {x.email: x for x in funnel.leads()}
    contacts = {x.email: x for x in funnel.contacts()}
    assert {e: x.status.value for e, x in leads.items()} == {
        "alex@northwind.example.com": "suspect",
        "mia@fjord.example.com": "qualified",
        "ken@sakura.example.com": "qualified",
        "ben@cole.example.com": "unqualified",
        "ida@lund.example.com": "raw",
    }
    assert {e: x.type.value for e, x in contacts.items()} == {
        "eva@danube.example.com": "prospect",
        "tom@rhein.example.com": "client",
        "zoe@moor.example.com": "client",
    }
    # --timezone Europe/Berlin: 14:22 there (winter time) is 13:22 UTC.
    alex = leads["alex@northwind.example.com"]
    assert alex.created_at == datetime(2024, 3, 5, 13, 22, tzinfo=UTC)
    assert funnel.history(alex)[0].at == alex.created_at == alex.status_at
    assert leads["ida@lund.example.com"].created_at == datetime(2024, 3, 15, 13, 30, tzinfo=UTC)
    assert leads["mia@fjord.example.com"].phone == "+4790000000"  # the mobile number
    assert "sweet-spot" in leads["mia@fjord.example.com"].tags
    assert contacts["tom@rhein.example.com"].opt_outs == {"email"}
    assert leads["ken@sakura.example.com"].owner == "Kai Rep"
    # Months tell the truth: the March leads, not "everything arrived today".
    march = funnel.report(
        since=datetime(2024, 3, 1, tzinfo=UTC), until=datetime(2024, 4, 1, tzinfo=UTC)
    )
    assert march.steps["raw"].count == 3  # Mia, Ben, Ida (Alex is a suspect)
    client_ids = {x.id for x in contacts.values() if x.type == "client"}
    assert not client_ids & {i.subject_id for i in funnel.due(at=datetime.now(UTC))}


SALESFORCE_REPORT = (
    '"Lead Owner","First Name","Last Name","Title","Company / Account","Email","Phone",'
    '"Mobile","Lead Source","Lead Status","Email Opt Out","Do Not Call","Create Date",'
    '"Annual Revenue","Converted","Street","Lead ID"\n'
    '"Dana Rep","Pat","Rivera","CEO","Acme IT","pat@acme-it.example.com","","(512) 555-0134",'
    '"Web","Working - Contacted","0","1","3/15/2024 2:30 PM","USD 2,500,000.00","0",'
    '"1 Main St","00Q5g00000LdB1A"\n'
    '"Dana Rep","Lee","Kim","CTO","Granite","lee@granite.example.com","(212) 555-0101","",'
    '"Purchased List","Closed - Not Converted","1","0","11/20/2023 9:00 AM","90,000.00","0",'
    '"","00Q5g00000LdB2A"\n'
    '"Dana Rep","Ana","Silva","Founder","Tidewater MSP","ana@tidewater.example.com","","",'
    '"Referral","Closed - Converted","0","0","9/5/2023 11:12 AM","4,000,000.00","1","",'
    '"00Q5g00000LdB3A"\n'
    "\n"
    '"Leads by Status"\n'
    '"Copyright (c) 2000-2024 salesforce.com, inc. All rights reserved."\n'
    '"Confidential Information - Do Not Distribute"\n'
    '"Generated By:  Dana Rep  3/20/2024 10:12 AM"\n'
    '"Acme IT Services"\n'
)


def import_file(
    tmp_path: Path, text: str, *args: str, name: str = "in.csv"
) -> tuple[int, str, str]:
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    result = CliRunner().invoke(main, ["import", str(source), "--db", db, *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_salesforce_report_export_is_imported_as_salesforce(tmp_path: Path) -> None:
    code, out, _ = import_file(tmp_path, SALESFORCE_REPORT)
    assert code == 0
    assert out.splitlines() == [
        "3 added (1 as contacts), 0 duplicates, 0 avoided, 0 rejected (salesforce format)",
        "Stored as leads: 1 raw, 1 unqualified; as contacts: 1 prospect",
        "Columns not imported: Street, Lead ID",
        "Dates were read month first (M/D/YYYY), as the file writes 3/15/2024 (row 1)",
        "The report's footer (5 lines) was left out.",
    ]
    funnel = Funnel(SqlRepository(f"sqlite:///{tmp_path / 'crm.db'}"))
    lee, pat = funnel.leads()  # oldest first
    assert (pat.company, pat.owner, pat.source) == ("Acme IT", "Dana Rep", "Web")
    assert pat.phone == "+15125550134"
    assert pat.opt_outs == {"call"}
    assert lee.opt_outs == {"email"}  # "Email Opt Out": a compliance flag, never dropped
    assert pat.annual_revenue == 2_500_000
    assert pat.created_at == datetime(2024, 3, 15, 14, 30, tzinfo=UTC)
    (ana,) = funnel.contacts()
    assert (ana.type, ana.created_at) == ("prospect", datetime(2023, 9, 5, 11, 12, tzinfo=UTC))


def test_a_semicolon_file_with_decimal_commas(tmp_path: Path) -> None:
    text = (
        "FirstName;LastName;Email;Company;AnnualRevenue;NumberOfEmployees\n"
        "Jonas;Weber;jonas@rhein.example.com;Rhein GmbH;2500000,00;1.200\n"
        "Lena;Vogel;lena@main.example.com;Main AG;EUR 1.800.000;40\n"
        "Karl;Brandt;karl@elbe.example.com;Elbe KG;1,500;12\n"
    )
    code, out, _ = import_file(tmp_path, text, "--rejects", str(tmp_path / "r.csv"))
    assert code == 0
    assert out.splitlines()[0] == "2 added, 0 duplicates, 0 avoided, 1 rejected (salesforce format)"
    funnel = Funnel(SqlRepository(f"sqlite:///{tmp_path / 'crm.db'}"))
    assert {(x.last_name, x.annual_revenue, x.employees) for x in funnel.leads()} == {
        ("Weber", Decimal(2_500_000), 1200),
        ("Vogel", Decimal(1_800_000), 40),
    }
    with (tmp_path / "r.csv").open(encoding="utf-8", newline="") as handle:
        # Written with the file's own separator: "1.200" reads back as it was.
        (_, (row, reason, *cells)) = list(csv.reader(handle, delimiter=";"))
    assert (row, cells[1]) == ("3", "Brandt")
    assert reason.startswith("AnnualRevenue: '1,500' is ambiguous: 1500 or 1.5?")
    fixed = (tmp_path / "r.csv").read_text(encoding="utf-8").replace("1,500", "1500")
    (tmp_path / "fixed.csv").write_text(fixed, encoding="utf-8")
    code, out, _ = import_file(tmp_path, fixed)
    assert out.splitlines()[0].startswith("1 added, 0 duplicates, 0 avoided, 0 rejected")
    karl = funnel.find(email="karl@elbe.example.com")
    assert karl is not None
    assert (karl.annual_revenue, karl.employees) == (Decimal(1500), 12)


def test_dates_read_day_first_and_in_a_zone(tmp_path: Path) -> None:
    text = (
        "First Name,Last Name,Email,Create Date\n"
        "Eva,Novak,eva@danube.example.com,03/04/2024 14:00\n"
    )
    code, out, _ = import_file(tmp_path, text, "--day-first", "--timezone", "Europe/Vienna")
    assert code == 0, out
    (eva,) = Funnel(SqlRepository(f"sqlite:///{tmp_path / 'crm.db'}")).leads()
    assert eva.created_at == datetime(2024, 4, 3, 12, tzinfo=UTC)  # summer time: UTC+2


def test_a_date_later_than_the_import_rejects_its_row(tmp_path: Path) -> None:
    soon = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    text = f"First Name,Email,Create Date\nA,a@x.example.com,{soon}\nB,b@x.example.com,2024-01-01\n"
    code, out, _ = import_file(tmp_path, text, "--rejects", str(tmp_path / "r.csv"))
    assert code == 0
    assert out.startswith("1 added, 0 duplicates, 0 avoided, 1 rejected")
    rejects = (tmp_path / "r.csv").read_text(encoding="utf-8")
    # The reason names the file's own column, as every other reason does.
    assert "Create Date: " in rejects
    assert "is later than the import" in rejects
    assert "created_at" not in rejects


def test_the_status_option_leaves_every_status_column_alone(tmp_path: Path) -> None:
    text = (
        "First Name,Email,Lifecycle Stage,Lead Status\n"
        "A,a@x.example.com,Customer,\n"
        "B,b@x.example.com,Nonsense,Whatever\n"
    )
    code, out, _ = import_file(tmp_path, text, "--status", "farm_list")
    assert code == 0
    assert out.splitlines()[:2] == [
        "2 added, 0 duplicates, 0 avoided, 0 rejected (hubspot format)",
        "Stored as leads: 2 farm_list",
    ]
    funnel = Funnel(SqlRepository(f"sqlite:///{tmp_path / 'crm.db'}"))
    assert funnel.contacts() == []


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        (
            "Email,First Name,Email\na@x.example.com,A,b@x.example.com\n",
            [],
            "the header names the column 'Email' twice (columns 1 and 3)",
        ),
        ("FirstName,Email,Status\nA,a@x.example.com,Open\n", ["--status-map", "bad.toml"], "'hot'"),
        (
            "FirstName,Email,Status\nA,a@x.example.com,Open\n",
            ["--status-map", "missing.toml"],
            "cannot read status map 'missing.toml': it does not exist",
        ),
        ("FirstName,Email\nA,a@x.example.com\n", ["--timezone", "Mars/Base"], "'Mars/Base'"),
    ],
)
def test_bad_files_and_options_are_refused_whole(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text('[Status]\n"Open" = "hot"\n', encoding="utf-8")
    code, out, err = import_file(tmp_path, text, *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("leadfunnel: error: ")
    assert message in err
    assert not (tmp_path / "crm.db").exists()  # nothing stored, not even a database


def test_a_stray_nul_byte_rejects_its_row_only(tmp_path: Path) -> None:
    rows = "".join(f"P{n},p{n}@x.example.com\n" for n in range(3000))
    text = "FirstName,Email\n" + rows + "Nul\x00l,nul@x.example.com\nLast,last@x.example.com\n"
    code, out, _ = import_file(tmp_path, text, "--rejects", str(tmp_path / "r.csv"))
    assert code == 0, out
    assert out.startswith("3001 added, 0 duplicates, 0 avoided, 1 rejected")
    assert "U+0000" in (tmp_path / "r.csv").read_text(encoding="utf-8")


def test_a_quote_left_open_rejects_the_rows_it_swallowed_and_the_rest_is_stored(
    tmp_path: Path,
) -> None:
    lines = ["Email,Description", "a@x.example.com,fine", 'b@x.example.com,"oops']
    lines += [f"c{n}@x.example.com,{'y' * 300}" for n in range(600)]
    rejects = tmp_path / "r.csv"
    code, out, err = import_file(
        tmp_path, "\n".join(lines) + "\n", "--format", "salesforce", "--rejects", str(rejects)
    )
    assert code == 0, err
    # Lines 3 to 413 fill the open cell up to the reader's limit (411 lines of about
    # 320 characters); the 190 rows after them are stored, as is the one before.
    assert out.splitlines()[0] == (
        "191 added, 0 duplicates, 0 avoided, 1 rejected (salesforce format)"
    )
    funnel = Funnel(SqlRepository(f"sqlite:///{tmp_path / 'crm.db'}"))
    assert len(funnel.leads()) == 191
    with rejects.open(encoding="utf-8", newline="") as handle:
        (_, (row, reason, *cells)) = list(csv.reader(handle))
    assert row == "2"
    assert reason.startswith("lines 3-413 of the file: a cell is longer than 131,072")
    assert cells == []


def test_unused_columns_and_odd_names_are_listed_without_control_characters(
    tmp_path: Path,
) -> None:
    text = "email,colour,\x1b]0;owned\x07notes\na@x.example.com,red,x\n"
    code, out, _ = import_file(tmp_path, text, "--format", "generic")
    assert code == 0
    assert out.splitlines()[-1] == "Columns not imported: colour, ]0;ownednotes"


def test_a_nul_byte_early_in_a_small_file_rejects_its_row_only(tmp_path: Path) -> None:
    text = "FirstName,Email\nNul\x00l,nul@x.example.com\nPat,pat@x.example.com\n"
    code, out, _ = import_file(tmp_path, text, "--rejects", str(tmp_path / "r.csv"))
    assert code == 0, out
    assert out.startswith("1 added, 0 duplicates, 0 avoided, 1 rejected")


def test_an_error_quoting_the_file_is_one_line_without_control_characters(
    tmp_path: Path,
) -> None:
    code, _, err = import_file(tmp_path, '"col\nour","size\x1b]0;x\x07"\nred,9\n')
    assert code == 2
    assert err == (
        f"leadfunnel: error: {tmp_path / 'in.csv'}: the header (col our, size]0;x) is not a "
        "Salesforce or HubSpot export, nor leadfunnel's own field names, so no --format "
        "reads it as it is. To import another CRM's file, name its columns with "
        "leadfunnel's field names (first_name, last_name, email, phone, company, title, "
        "opt_outs, status, ...) and import it with --format generic\n"
    )
