"""How a command ends: it closes its database itself (a SQLite file in WAL mode is left
without its -wal and -shm files), so that the console command can skip the collector's
walk at exit (``run`` freezes the objects instead)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from leadfunnel._cli import main


def leadfunnel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadfunnel", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def companions(db: Path) -> list[str]:
    """The SQLite files beside ``db`` an open connection keeps: -wal, -shm, -journal."""
    return sorted(path.name for path in db.parent.glob(db.name + "-*"))


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo database, made once (by the command, in a process of its own) and checked
    to have been left closed."""
    folder = tmp_path_factory.mktemp("demo")
    db = folder / "crm.db"
    made = leadfunnel("demo", "--leads", "30", "--db", f"sqlite:///{db}", cwd=folder)
    assert made.returncode == 0, made.stderr
    assert db.exists()
    assert not companions(db)  # the demo closed its database too
    return db


@pytest.fixture
def crm(demo_db: Path, tmp_path: Path) -> Path:
    db = tmp_path / "crm.db"
    shutil.copyfile(demo_db, db)
    return db


@pytest.mark.parametrize("command", [["report"], ["due"], ["list", "never_booked"], ["migrate"]])
def test_a_command_leaves_its_sqlite_file_closed(crm: Path, command: list[str]) -> None:
    ran = leadfunnel(*command, "--db", f"sqlite:///{crm}", cwd=crm.parent)
    assert ran.returncode == 0, ran.stderr
    assert not companions(crm)


def test_a_failing_command_closes_its_database_too(crm: Path) -> None:
    ran = leadfunnel("erase", "nobody@example.com", "--db", f"sqlite:///{crm}", cwd=crm.parent)
    assert ran.returncode == 2, ran.stderr
    assert "nobody@example.com" in ran.stdout + ran.stderr
    assert not companions(crm)


def test_the_console_command_freezes_the_collector_at_exit() -> None:
    code = (
        "import gc, sys\n"
        "from leadfunnel._cli import run\n"
        "sys.argv = ['leadfunnel', '--version']\n"
        "try:\n"
        "    run()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print(gc.get_freeze_count())\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert int(ran.stdout.split()[-1]) > 10_000


def test_main_leaves_the_collector_alone(tmp_path: Path) -> None:
    import gc

    before = gc.get_freeze_count()
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert gc.get_freeze_count() == before
