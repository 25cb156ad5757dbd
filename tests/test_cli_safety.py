"""The command line never destroys what it was given, nor shows a password (an audit of
every command): an output aimed at the database, rejects aimed at the file imported, a
malformed URL, an empty file given to a read command, the migrate step's report, an
application module that fails as it is imported."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from leadfunnel._cli import main


def invoke(*args: str, cwd: Path | None = None) -> Result:
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(main, list(args), catch_exceptions=False)
    with runner.isolated_filesystem(temp_dir=cwd):
        return runner.invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("tail", ["", "-wal", "-shm"])
def test_an_output_aimed_at_the_database_is_refused(crm: Path, tail: str) -> None:
    before = crm.read_bytes()
    target = f"{crm}{tail}"
    for command in (["report"], ["list", "never_booked"], ["due"]):
        result = invoke(*command, "--db", f"sqlite:///{crm}", "-o", target)
        assert result.exit_code == 2, command
        assert "is a file of the database this command uses" in result.output
    assert crm.read_bytes() == before
    assert invoke("report", "--db", f"sqlite:///{crm}").exit_code == 0


def test_rejects_aimed_at_the_file_imported_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    text = "first_name,email\nAnn,ann@x.example.com\nBad,not-an-email\n"
    source.write_text(text, encoding="utf-8")
    db = tmp_path / "new.db"
    link = tmp_path / "same-file.csv"
    link.hardlink_to(source)  # another name of the same file
    for rejects in (source, link):
        result = invoke("import", str(source), "--db", f"sqlite:///{db}", "--rejects", str(rejects))
        assert result.exit_code == 2
        assert "is the file being imported" in result.output
        assert source.read_text(encoding="utf-8") == text
        assert not db.exists()  # refused before the database was made


def test_rejects_aimed_at_the_database_are_refused(tmp_path: Path, crm: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text("first_name,email\nBo,bo@x.example.com\n", encoding="utf-8")
    before = crm.read_bytes()
    result = invoke("import", str(source), "--db", f"sqlite:///{crm}", "--rejects", str(crm))
    assert result.exit_code == 2
    assert crm.read_bytes() == before


def test_rejects_in_a_missing_folder_are_refused_before_the_database_is_made(
    tmp_path: Path,
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text("first_name,email\nAnn,ann@x.example.com\n", encoding="utf-8")
    db = tmp_path / "new.db"
    rejects = tmp_path / "nodir" / "rej.csv"
    result = invoke("import", str(source), "--db", f"sqlite:///{db}", "--rejects", str(rejects))
    assert result.exit_code == 2
    assert "the folder" in result.output
    assert "does not exist" in result.output
    assert not db.exists()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://app:S3cretPW@db.example:abc/crm",
        "mysql+pymysql://app:S3cretPW@127.0.0.1:3306/crm?connect_timeout=abc",
        "postgresql+psycopg://app:S3cretPW@[::1/crm",
        "postgresql+psycopg://app:S3cret/PW@db.example:abc/crm",
        "postgresql+psycopg://app:S3cretPW@x@db.example:abc/crm",
    ],
)
def test_a_malformed_url_never_shows_its_password(url: str) -> None:
    result = invoke("report", "--db", url)
    assert result.exit_code == 2
    assert "S3cret" not in result.output
    assert "PW@" not in result.output
    assert "app:***@" in result.output
    assert "check the URL's form" in result.output


def test_a_read_command_leaves_an_empty_file_empty(tmp_path: Path) -> None:
    empty = tmp_path / "crm.db"
    empty.touch()
    for command in (["report"], ["due"], ["events"], ["list", "not_sat"]):
        result = invoke(*command, "--db", f"sqlite:///{empty}")
        assert result.exit_code == 2, command
        assert "is empty" in result.output
        assert empty.stat().st_size == 0


def test_migrate_says_what_it_did(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    url = f"sqlite:///{path}"
    assert "created the leadfunnel tables, schema version" in invoke("migrate", "--db", url).output
    assert "up to date" in invoke("migrate", "--db", url).output
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE lf_schema SET version = 5")
    assert (
        "upgraded the leadfunnel schema from version 5 to" in invoke("migrate", "--db", url).output
    )


def test_migrate_shows_no_password() -> None:
    result = invoke("migrate", "--db", "postgresql+psycopg://app:S3cretPW@127.0.0.1:1/nowhere")
    assert "S3cretPW" not in result.output


def test_a_lead_model_failing_as_it_is_imported_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_models.py").write_text(
        "raise RuntimeError('settings missing')\n", encoding="utf-8"
    )
    (tmp_path / "typo_models.py").write_text("class L(:\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "leads.csv"
    source.write_text("first_name,email\nAnn,ann@x.example.com\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    for spec, said in (
        ("broken_models:L", "RuntimeError: settings missing"),
        ("typo_models:L", "SyntaxError"),
    ):
        result = invoke("import", str(source), "--db", db, "--lead-model", spec)
        assert result.exit_code == 2, result.output
        assert said in result.output
        assert "Traceback" not in result.output
