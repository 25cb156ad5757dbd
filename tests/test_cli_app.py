"""The commands an application's operators use: migrate, events, erase, export-person,
and read commands that refuse a database they would otherwise create."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from leadfunnel import Funnel, Lead, SqlRepository
from leadfunnel._cli import main


def run(*args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return done.exit_code, done.stdout, done.stderr


def test_read_commands_refuse_a_mistyped_database(tmp_path: Path) -> None:
    typo = tmp_path / "fnunel.db"
    for command in (["report"], ["due"], ["list", "not_sat"], ["events"]):
        code, _, err = run(*command, "--db", f"sqlite:///{typo}")
        assert code == 2, command
        assert "no database file" in err
        assert not typo.exists()
    code, out, _ = run("migrate", "--db", f"sqlite:///{typo}")
    assert code == 0
    assert "schema version" in out
    assert run("report", "--db", f"sqlite:///{typo}")[0] == 0


def test_events_print_json_lines_after_a_position(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'feed.db'}"
    funnel = Funnel(SqlRepository(db))
    lead = funnel.capture(Lead(first_name="Pat", email="pat@acme.example.com"))
    funnel.qualify(lead, force=True)
    code, out, _ = run("events", "--db", db)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(x["name"], x["subject_id"]) for x in lines] == [
        ("capture", str(lead.id)),
        ("qualify", str(lead.id)),
    ]
    code, out, _ = run("events", "--db", db, "--after", str(lines[0]["position"]))
    assert [json.loads(line)["name"] for line in out.splitlines()] == ["qualify"]


def test_erase_and_export_a_person_by_email_or_phone(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    funnel = Funnel(SqlRepository(db))
    zelda = funnel.capture(
        Lead(first_name="Zelda", email="zelda@privacy.example.com", phone="+15125550177")
    )
    funnel.touch(zelda, "call", "connected", note="spoke to Zelda")
    code, out, _ = run("export-person", "--db", db, "(512) 555-0177")
    assert code == 0
    exported = json.loads(out)
    assert exported["records"][0]["email"] == "zelda@privacy.example.com"
    assert exported["touches"][0]["note"] == "spoke to Zelda"

    code, out, _ = run("erase", "--db", db, "ZELDA@privacy.example.com")
    assert code == 0
    assert "erased ZELDA@privacy.example.com: 1 records (suppressed)" in out
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("crm.db"))
    assert b"zelda@privacy.example.com" not in blob
    assert b"Zelda" not in blob
    code, _, err = run("erase", "--db", db, "zelda@privacy.example.com")
    assert code == 2
    assert "not found: zelda@privacy.example.com" in err
    again = tmp_path / "again.csv"
    again.write_text("first_name,email\nZelda,zelda@privacy.example.com\n", encoding="utf-8")
    code, out, _ = run("import", str(again), "--db", db)
    assert code == 0
    assert "1 avoided" in out


def test_erase_of_a_persons_email_and_phone_erases_them_once(tmp_path: Path) -> None:
    """The e-mail and the phone of one person (as privacy.md shows the command) name
    them both: erased once, not "not found" for the second key."""
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    Funnel(SqlRepository(db)).capture(
        Lead(first_name="Zelda", email="zelda@privacy.example.com", phone="+15125550177")
    )
    code, out, err = run("erase", "--db", db, "zelda@privacy.example.com", "+15125550177")
    assert code == 0
    assert out.splitlines() == [
        "erased zelda@privacy.example.com, +15125550177: 1 records (suppressed)"
    ]
    assert "not found" not in err


def test_erase_reads_people_from_a_file_and_lists_who_was_not_found(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    funnel = Funnel(SqlRepository(db))
    for n in range(3):
        funnel.capture(Lead(first_name=f"P{n}", email=f"p{n}@requests.example.com"))
    requests = tmp_path / "requests.txt"
    requests.write_text("p0@requests.example.com\n\np1@requests.example.com\n", encoding="utf-8")
    code, out, err = run(
        "erase", "--db", db, "--file", str(requests), "ghost@nowhere.example.com", "--keep-nothing"
    )
    assert code == 0  # some were found: the others are listed, not an error
    assert out.count("records (nothing kept)") == 2
    assert "not found: ghost@nowhere.example.com" in err
    left = {lead.email for lead in Funnel(SqlRepository(db)).leads()}
    assert left == {None, "p2@requests.example.com"}
    code, _, err = run("erase", "--db", db)
    assert code == 2
    assert "name the people to erase" in err
