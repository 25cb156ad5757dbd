"""The third audit of the command line: a password is never shown (one holding a raw
"@", one in the query string, the demo's messages), an output never overwrites the
database (a ``file:`` URI, a hard link), a Ctrl-C that a C extension wraps is still an
interrupt, a full standard output is one line, and ``-o -`` is standard output."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import run_leadfunnel_into
from leadfunnel import Funnel, SqlRepository
from leadfunnel._cli import main

SECRET = "S3cretPW"


def invoke(*args: str) -> Result:
    with warnings.catch_warnings():
        # SQLAlchemy warns that pysqlite ignores a ?password=: the URL is still shown.
        warnings.simplefilter("ignore")
        return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --- 1. passwords ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres:p@ssw0rd@127.0.0.1:5432/test",
        "mysql+pymysql://root:p@ssw0rd@127.0.0.1:3306/test",
        "postgresql+psycopg://postgres:a/b@ssw0rd@127.0.0.1:5432/test",
        # A raw "@" in the user name too (an e-mail as the user): the password still
        # starts at the first ":".
        "postgresql+psycopg://ana@corp.example:s3cr@ssw0rd@127.0.0.1:5432/test",
        "mysql+pymysql://ana@corp:s3cr@ssw0rd@127.0.0.1:3306/test",
    ],
)
@pytest.mark.parametrize(
    "command", [["report"], ["migrate"], ["demo", "--svg", ""], ["due"], ["events"]]
)
def test_a_raw_at_sign_in_a_password_is_refused_before_connecting(
    url: str, command: list[str]
) -> None:
    result = invoke(*command, "--db", url)
    assert result.exit_code == 2
    assert "ssw0rd" not in result.output
    assert "write it as %40" in result.output
    assert "@127.0.0.1" in result.output  # the host it meant is named
    assert len(result.output.strip().splitlines()) == 1


def test_the_demo_never_shows_a_password(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}?password={SECRET}"
    made = invoke("demo", "--leads", "3", "--svg", "", "--db", url)
    assert made.exit_code == 0, made.output
    assert "Building a sample funnel in" in made.output
    again = invoke("demo", "--leads", "3", "--svg", "", "--db", url)
    assert again.exit_code == 2
    assert "already holds leads" in again.output
    for result in (made, again):
        assert SECRET not in result.output
        assert "password=***" in result.output


@pytest.mark.parametrize("name", ["password", "PASSWORD", "passwd", "pwd", "sslpassword"])
def test_migrate_never_shows_a_password_in_the_query(tmp_path: Path, name: str) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}?{name}={SECRET}&x=1"
    result = invoke("migrate", "--db", url)
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert f"{name}=***" in result.output
    assert "created the leadfunnel tables" in result.output


@pytest.mark.skipif(
    not os.environ.get("LEADFUNNEL_TEST_POSTGRES_URL"), reason="no PostgreSQL server"
)
def test_a_failed_report_never_shows_a_password_in_the_query() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/no_such_db_cli3?password=" + SECRET
    result = invoke("report", "--db", url)
    assert result.exit_code == 2
    assert SECRET not in result.output
    assert "password=***" in result.output


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg:/u:{SECRET}@h/db",
        f"postgresql+psycopg//u:{SECRET}@h/db",
    ],
)
def test_a_malformed_url_never_shows_its_password(url: str) -> None:
    result = invoke("report", "--db", url)
    assert result.exit_code == 2
    assert SECRET not in result.output


def test_the_repository_never_shows_a_password_in_the_query(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        repository = SqlRepository(f"sqlite:///{tmp_path / 'x.db'}?passwd={SECRET}")
    try:
        assert SECRET not in repr(repository)
        assert SECRET not in repository._where
    finally:
        repository.close()


# --- 2. an output over the database ---------------------------------------------------


def test_an_output_over_a_sqlite_uri_database_is_refused(
    crm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(crm.parent)
    before = crm.read_bytes()
    for url in (
        "sqlite:///file:crm.db?uri=true",
        "sqlite:///file:crm.db?mode=ro&uri=true",
        f"sqlite:///file:{crm.as_posix()}?uri=true",
    ):
        for target in ("crm.db", str(crm)):
            result = invoke("report", "--db", url, "-o", target)
            assert result.exit_code == 2, (url, result.output)
            assert "is a file of the database this command uses" in result.output
    assert crm.read_bytes() == before
    assert invoke("report", "--db", "sqlite:///file:crm.db?uri=true", "-o", "r.txt").exit_code == 0


def test_an_output_into_a_hard_link_to_the_database_is_refused(crm: Path) -> None:
    hard = crm.with_name("hard.db")
    os.link(crm, hard)
    before = crm.read_bytes()
    for command in (["report"], ["list", "never_booked"], ["due"]):
        result = invoke(*command, "--db", f"sqlite:///{crm}", "-o", str(hard))
        assert result.exit_code == 2, command
        assert "is a file of the database this command uses" in result.output
    source = crm.with_name("leads.csv")
    source.write_text("first_name,email\nBo,bo@x.example.com\nBad,nope\n", encoding="utf-8")
    result = invoke("import", str(source), "--db", f"sqlite:///{crm}", "--rejects", str(hard))
    assert result.exit_code == 2
    assert "is a file of the database this command uses" in result.output
    assert crm.read_bytes() == before


def test_a_demo_svg_into_a_hard_link_to_the_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    assert invoke("migrate", "--db", f"sqlite:///{db}").exit_code == 0
    hard = tmp_path / "chart.svg"
    os.link(db, hard)
    result = invoke("demo", "--leads", "3", "--db", f"sqlite:///{db}", "--svg", str(hard))
    assert result.exit_code == 2
    assert "--svg" in result.output
    assert "is a file of the database this command uses" in result.output
    assert db.read_bytes()[:16] == b"SQLite format 3\x00"


# --- 3. a Ctrl-C that a C extension wraps ---------------------------------------------


def _wrapped_interrupt() -> None:
    """A Ctrl-C landing in pydantic-core: the KeyboardInterrupt the signal raises comes
    out wrapped in pydantic-core's own error."""
    import signal

    from pydantic_core import PydanticSerializationError

    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        raise PydanticSerializationError("Error calling function: KeyboardInterrupt") from None
    raise AssertionError("SIGINT did not interrupt")  # pragma: no cover


def test_an_interrupt_wrapped_in_a_command_is_an_interrupt(
    crm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def report(*args: object, **kwargs: object) -> None:
        _wrapped_interrupt()

    monkeypatch.setattr(Funnel, "report", report)
    result = invoke("report", "--db", f"sqlite:///{crm}")
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines() == ["leadfunnel: interrupted"]


def test_an_interrupt_wrapped_while_opening_never_blames_the_url(
    crm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import leadfunnel._sql

    def opening(*args: object, **kwargs: object) -> None:
        _wrapped_interrupt()

    monkeypatch.setattr(leadfunnel._sql, "SqlRepository", opening)
    result = invoke("report", "--db", f"sqlite:///{crm}")
    assert result.exit_code == 130, result.output
    assert "URL" not in result.output
    assert result.output.strip().splitlines() == ["leadfunnel: interrupted"]


def test_a_library_error_after_an_interrupt_is_the_interrupt(
    crm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from leadfunnel import StorageError

    def report(*args: object, **kwargs: object) -> None:
        # Dropped, as in a finaliser: the next error is the interrupt's.
        with contextlib.suppress(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        raise StorageError("the connection was closed")

    monkeypatch.setattr(Funnel, "report", report)
    result = invoke("report", "--db", f"sqlite:///{crm}")
    assert result.exit_code == 130, result.output
    assert "connection" not in result.output


def test_errors_without_an_interrupt_stay_errors(crm: Path) -> None:
    result = invoke("report", "--db", f"sqlite:///{crm.with_name('none.db')}")
    assert result.exit_code == 2
    assert invoke("report", "--db", f"sqlite:///{crm}").exit_code == 0


# --- 4. a full standard output ----------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["--version"], ["report", "--help"]])
def test_help_and_version_into_a_full_output_are_one_line(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = run_leadfunnel_into(full, *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "leadfunnel: error: standard output: No space left on device"
    ]


# --- 5. -o - ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["report"], ["list", "never_booked"], ["due"]])
def test_output_dash_is_standard_output(
    crm: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.chdir(crm.parent)
    plain = invoke(*command, "--db", f"sqlite:///{crm}")
    dashed = invoke(*command, "--db", f"sqlite:///{crm}", "-o", "-")
    assert dashed.exit_code == 0, dashed.output
    assert dashed.output == plain.output
    assert not (crm.parent / "-").exists()


def test_the_guard_puts_back_the_ctrl_c_handler_unless_the_command_set_its_own() -> None:
    """Every command records Ctrl-C while it runs and puts the handler back after it;
    but a handler the command set itself stays: an interrupted import ignores further
    presses while it shuts down (SIG_IGN), and putting Python's default back let a
    second press kill it (status -2 instead of 130)."""
    import signal

    from leadfunnel._cli._common import guarded

    before = signal.getsignal(signal.SIGINT)

    @guarded
    def plain() -> None:
        assert signal.getsignal(signal.SIGINT) is not before  # the guard's own

    @guarded
    def shutting_down() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    try:
        plain()
        assert signal.getsignal(signal.SIGINT) is before
        shutting_down()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # An "@" in a query parameter ends no password, and hides nothing.
        (
            "postgresql+psycopg://ana@db.example.com:5432/crm?application_name=ana@laptop",
            "postgresql+psycopg://ana@db.example.com:5432/crm?application_name=ana@laptop",
        ),
        ("postgresql://u:pw@h:5432/db?x=a@b", "postgresql://u:***@b"),  # (more, never less)
        (
            "postgresql+psycopg://ana@corp.example:s3@x@db/crm",
            "postgresql+psycopg://ana@corp.example:***@db/crm",
        ),
        ("postgresql://u:p?ss@host/db", "postgresql://u:***@host/db"),
        ("u:SECRET@h/db", "u:***@h/db"),  # no scheme at all
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
    ],
)
def test_a_url_is_shown_without_its_password_and_only_that(url: str, shown: str) -> None:
    from leadfunnel._sql._engine import without_secrets

    assert without_secrets(url) == shown
