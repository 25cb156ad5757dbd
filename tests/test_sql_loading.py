"""``Repository.loading()``: a large bulk load into a small SQLite store builds some
indexes once, at its end. Nothing a reader sees changes but speed, and no way out of the
block (an error, a stopped process) leaves the store without them.

The thresholds (a store of fewer than 10,000 people, a load past 100,000 records) are
made small here: ``few``."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from conftest import person
from leadfunnel import Funnel, InMemoryRepository, Lead, SqlRepository
from leadfunnel._cli import main
from leadfunnel._sql import _repository as sql_repository
from leadfunnel._sql import _schema as schema

DEFERRABLE = {name for names in schema.DEFERRABLE.values() for name in names}
POSTGRES_URL = os.environ.get("LEADFUNNEL_TEST_POSTGRES_URL")


def _indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_schema WHERE type='index'")}


@pytest.fixture
def few(monkeypatch: pytest.MonkeyPatch) -> None:
    """Indexes put off once a block has stored 10 records into a store of fewer than
    20 people."""
    monkeypatch.setattr(sql_repository, "_DEFER_BELOW", 20)
    monkeypatch.setattr(sql_repository, "_DEFER_AFTER", 10)


class _Store(NamedTuple):
    path: Path
    repository: SqlRepository
    all_indexes: set[str]  # as a new store has them


@pytest.fixture
def store(tmp_path: Path) -> Iterator[_Store]:
    """A new SQLite store in a file."""
    path = tmp_path / "funnel.db"
    repository = SqlRepository(f"sqlite:///{path}")
    yield _Store(path, repository, _indexes(path))
    repository.close()


def _rows(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        person(i, owner=f"rep{i % 3}", source=f"src{i % 2}", tags=["t"]) for i in range(start, n)
    ]


def test_a_large_load_into_an_empty_store_builds_the_indexes_at_its_end(
    store: _Store, few: None
) -> None:
    path, repository, all_indexes = store
    assert all_indexes >= DEFERRABLE
    funnel = Funnel(repository)
    with repository.loading():
        funnel.import_leads(_rows(9), chunk_size=3)
        assert _indexes(path) == all_indexes  # 9 stored: kept so far
        report = funnel.import_leads(_rows(30, 9), chunk_size=3)
        assert _indexes(path) == all_indexes - DEFERRABLE
        # Reads by the put-off indexes answer as ever, only slower.
        assert [lead.email for lead in funnel.leads(owner="rep1")] == [
            f"pat{i}@acme-it{i}.example.com" for i in range(1, 30, 3)
        ]
        assert len(funnel.leads(tag="t")) == 30
        alike = [p.id for p in funnel.similar(funnel.leads()[4])]
    assert len(report.added) == 21
    assert _indexes(path) == all_indexes
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert len(funnel.leads(source="src0")) == 15
    assert alike  # one last name: the same people as with the indexes
    assert [p.id for p in funnel.similar(funnel.leads()[4])] == alike


def test_a_small_load_keeps_the_indexes(store: _Store) -> None:
    path, repository, all_indexes = store
    with repository.loading():
        Funnel(repository).import_leads(_rows(30), chunk_size=5)
        assert _indexes(path) == all_indexes


def test_a_store_already_holding_people_keeps_its_indexes(tmp_path: Path, few: None) -> None:
    path = tmp_path / "funnel.db"
    repository = SqlRepository(f"sqlite:///{path}")
    funnel = Funnel(repository)
    funnel.import_leads(_rows(20))
    all_indexes = _indexes(path)
    with repository.loading():
        funnel.import_leads(_rows(50, 20), chunk_size=5)
        assert _indexes(path) == all_indexes
    repository.close()


def test_an_error_in_the_block_still_builds_them(store: _Store, few: None) -> None:
    path, repository, all_indexes = store
    inside: list[set[str]] = []

    def load() -> None:
        with repository.loading():
            Funnel(repository).import_leads(_rows(30), chunk_size=5)
            inside.append(_indexes(path))
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        load()
    assert inside == [all_indexes - DEFERRABLE]
    assert _indexes(path) == all_indexes


def test_blocks_nest_and_the_outermost_one_counts(store: _Store, few: None) -> None:
    path, repository, all_indexes = store
    with repository.loading():
        with repository.loading():
            Funnel(repository).import_leads(_rows(30), chunk_size=5)
        assert _indexes(path) == all_indexes - DEFERRABLE
    assert _indexes(path) == all_indexes


def test_nothing_is_put_off_inside_a_transaction_or_without_schema_upkeep(
    store: _Store, few: None
) -> None:
    path, repository, all_indexes = store
    with repository.transaction(), repository.loading():
        Funnel(repository).import_leads(_rows(15), chunk_size=5)
        assert _indexes(path) == all_indexes
    modes: tuple[Literal["check", "never"], ...] = ("check", "never")
    for n, migrate in enumerate(modes):
        other = SqlRepository(f"sqlite:///{path}", migrate=migrate)
        funnel = Funnel(other)
        with other.loading():
            funnel.import_leads(_rows(16 + n * 2, 15 + n * 2), chunk_size=1)
            assert _indexes(path) == all_indexes
        other.close()


def _loader_script(path: Path, then: str) -> str:
    """A script that loads 4 leads into ``path`` with the indexes put off after 2, and
    inside the block then runs ``then`` (Python, at the block's indentation)."""
    inside = textwrap.indent(textwrap.dedent(then).strip(), "    ")
    return (
        textwrap.dedent(
            f"""
            import os, time
            from leadfunnel import Funnel, SqlRepository
            from leadfunnel._sql import _repository
            _repository._DEFER_AFTER = 2
            repository = SqlRepository({f"sqlite:///{path}"!r})
            rows = [{{"email": f"a{{n}}@b.example.com"}} for n in range(4)]
            with repository.loading():
                Funnel(repository).import_leads(rows, chunk_size=2)
            """
        )
        + inside
        + "\n"
    )


def test_a_process_stopped_inside_the_block_leaves_them_to_the_next_opening(
    tmp_path: Path,
) -> None:
    path = tmp_path / "funnel.db"
    script = _loader_script(path, "os._exit(3)  # no clean-up of any kind")
    done = subprocess.run([sys.executable, "-c", script], check=False)
    assert done.returncode == 3
    assert not _indexes(path) & DEFERRABLE
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM lf_leads").fetchone() == (4,)
    repository = SqlRepository(f"sqlite:///{path}")
    assert _indexes(path) >= DEFERRABLE
    assert len(Funnel(repository).leads()) == 4
    repository.close()


def test_the_command_line_import_loads(tmp_path: Path, few: None) -> None:
    """``leadfunnel import`` is such a block: past the threshold its rows are stored
    without those indexes, which are all there when it ends."""
    export = tmp_path / "leads.csv"
    export.write_text(
        "First Name,Last Name,Email,Company\n"
        + "".join(f"Pat{i},Lee{i},p{i}@x{i}.example.com,Co {i}\n" for i in range(50)),
        encoding="utf-8",
    )
    path = tmp_path / "funnel.db"
    dropped: list[bool] = []
    built = sql_repository._build_missing_indexes

    def spy(conn: object) -> None:
        dropped.append(not _indexes(path) & DEFERRABLE)
        built(conn)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sql_repository, "_build_missing_indexes", spy)
        result = CliRunner().invoke(main, ["import", str(export), "--db", f"sqlite:///{path}"])
    assert result.exit_code == 0, result.output
    assert "50 added" in result.output
    assert dropped[-1]  # built at the end, having been put off
    assert _indexes(path) >= DEFERRABLE
    with sqlite3.connect(path) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM lf_leads WHERE company_key = 'co1'"
        ).fetchall()
    assert "ix_lf_leads_company_key" in str(plan)


def test_other_stores_load_as_ever() -> None:
    """The port's default does nothing (and the in-memory store keeps it)."""
    repository = InMemoryRepository()
    with repository.loading():
        Funnel(repository).add(Lead(**person(1)))
    assert len(Funnel(repository).leads()) == 1


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="set the postgres test URL to run this backend")
def test_postgresql_keeps_its_indexes() -> None:
    from uuid import uuid4

    import sqlalchemy as sa

    assert POSTGRES_URL is not None
    name = f"lf_test_{uuid4().hex[:16]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    try:
        repository = SqlRepository(POSTGRES_URL, schema=name)
        query = f"SELECT count(*) FROM pg_indexes WHERE schemaname = '{name}'"
        with admin.connect() as conn:
            before = conn.exec_driver_sql(query).scalar_one()
            with repository.loading():
                Funnel(repository).add(Lead(**person(1)))
                assert conn.exec_driver_sql(query).scalar_one() == before
        repository.close()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()


def test_import_leads_loads(store: _Store, few: None) -> None:
    """``Funnel.import_leads`` is such a block too."""
    path, repository, all_indexes = store
    seen: list[set[str]] = []
    report = Funnel(repository).import_leads(
        _rows(30), chunk_size=5, on_progress=lambda _: seen.append(_indexes(path))
    )
    assert len(report.added) == 30
    assert seen[0] == all_indexes  # 5 stored
    assert seen[-1] == all_indexes - DEFERRABLE
    assert _indexes(path) == all_indexes


@pytest.mark.parametrize("where", ["file", "memory"])
def test_the_contracts_loading_block_holds_with_the_indexes_put_off_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The port contract's check of ``loading()``, with the indexes dropped before its
    first commit (a file, and a private ``sqlite://`` database)."""
    from leadfunnel.testing import RepositoryContract

    monkeypatch.setattr(sql_repository, "_DEFER_AFTER", 1)
    drops: list[int] = []
    loaded = sql_repository.SqlRepository._loaded

    def spy(self: SqlRepository, changes: object) -> None:
        was = self._load is not None and self._load.deferred
        loaded(self, changes)  # type: ignore[arg-type]
        drops.append(int(not was and self._load is not None and self._load.deferred))

    monkeypatch.setattr(sql_repository.SqlRepository, "_loaded", spy)
    url = f"sqlite:///{tmp_path / 'funnel.db'}" if where == "file" else "sqlite://"
    repository = SqlRepository(url)

    class Contract(RepositoryContract):  # not collected: only its one check is run
        def create_repository(self) -> SqlRepository:
            return repository

    Contract().test_a_loading_block_stores_and_refuses_as_outside_it(repository)
    assert sum(drops) == 1
    repository.close()


def _a_build_left_pending(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> _Store:
    """A store into which 30 leads were loaded (indexes put off), whose build at the
    block's end failed: another connection held the file past the busy timeout, and
    has let it go since. The caller closes the repository."""
    path = tmp_path / "funnel.db"
    repository = SqlRepository(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    all_indexes = _indexes(path)
    blocker = sqlite3.connect(path, isolation_level=None)

    def block(report: object) -> None:
        if len(getattr(report, "added", ())) == 30:
            blocker.execute("BEGIN IMMEDIATE")  # the last chunk is stored

    with caplog.at_level("WARNING", logger="leadfunnel"):
        report = Funnel(repository).import_leads(_rows(30), chunk_size=5, on_progress=block)
    assert len(report.added) == 30
    blocker.execute("COMMIT")
    blocker.close()
    return _Store(path, repository, all_indexes)


def test_a_build_that_cannot_run_yet_fails_nothing_and_is_done_later(
    tmp_path: Path, few: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The load's records are stored when the block ends: another process holding the
    file past the busy timeout then delays the indexes, which are logged as pending
    and built by the repository's next commit, not the load refused."""
    path, repository, all_indexes = _a_build_left_pending(tmp_path, caplog)
    assert "could not be built yet" in caplog.text
    assert _indexes(path) == all_indexes - DEFERRABLE
    funnel = Funnel(repository)
    funnel.add(Lead(**person(99)))
    assert _indexes(path) == all_indexes
    assert len(funnel.leads()) == 31
    repository.close()


def test_an_opening_while_the_load_runs_leaves_the_indexes_to_it(tmp_path: Path, few: None) -> None:
    """Another repository (a web application starting, another command) opened in the
    middle of the load does not build the indexes under it; the load's end does."""
    path = tmp_path / "funnel.db"
    repository = SqlRepository(f"sqlite:///{path}")
    all_indexes = _indexes(path)
    seen: list[set[str]] = []

    def open_another(_: object) -> None:
        SqlRepository(f"sqlite:///{path}").close()
        seen.append(_indexes(path))

    Funnel(repository).import_leads(_rows(30), chunk_size=5, on_progress=open_another)
    assert seen[-1] == all_indexes - DEFERRABLE
    assert _indexes(path) == all_indexes
    assert not path.with_name(path.name + "-lfload").exists()  # the loader's lock, let go
    repository.close()


def test_a_pending_build_waits_while_another_load_holds_the_store(
    tmp_path: Path, few: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A build left pending is not done under another process's load (whose lock is
    held: here by the test), and is done once that load is over; an opening builds it
    too, as any opening does when no load is under way."""
    import fcntl

    path, repository, all_indexes = _a_build_left_pending(tmp_path, caplog)
    funnel = Funnel(repository)
    other_load = open(f"{path}-lfload", "w")  # noqa: SIM115 - held across the checks
    try:
        fcntl.flock(other_load, fcntl.LOCK_EX | fcntl.LOCK_NB)
        funnel.add(Lead(**person(98)))
        SqlRepository(f"sqlite:///{path}").close()
        assert _indexes(path) == all_indexes - DEFERRABLE  # left to that load
    finally:
        other_load.close()
    SqlRepository(f"sqlite:///{path}").close()  # no load now: the opening builds them
    assert _indexes(path) == all_indexes
    funnel.add(Lead(**person(99)))  # and the pending build finds nothing left to do
    assert len(funnel.leads()) == 32
    repository.close()


def test_the_lock_file_is_named_for_the_database_file_however_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadfunnel._sql._loader_lock import lock_path

    monkeypatch.chdir(tmp_path)
    expected = str(tmp_path / "f.db") + "-lfload"
    for url in (
        f"sqlite:///{tmp_path}/f.db",
        f"sqlite+pysqlite:///{tmp_path}/f.db?timeout=5",
        "sqlite:///f.db",  # relative: made absolute once, so a later chdir changes nothing
        f"sqlite:///file:{tmp_path}/f.db?mode=rwc&uri=true",
        f"sqlite:///file:{str(tmp_path).replace('/', '%2F')}%2Ff.db?uri=true",
    ):
        assert lock_path(sa.make_url(url)) == expected, url
    for url in ("sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"):
        assert lock_path(sa.make_url(url)) is None, url


def test_the_lock_is_held_once_and_a_forked_child_does_not_keep_it(tmp_path: Path) -> None:
    from leadfunnel._sql import _loader_lock as loader_lock

    path = str(tmp_path / "f.db-lfload")
    assert not loader_lock.running(path)
    assert not os.path.exists(path)  # asking makes no file
    lock = loader_lock.take(path)
    assert isinstance(lock, loader_lock.LoaderLock)
    assert loader_lock.take(path) is False  # another holder, in this process too
    assert loader_lock.running(path)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os._exit(0 if loader_lock.running(path) else 1)  # its copy was closed: the parent's
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lock.release()
    assert not loader_lock.running(path)
    assert not os.path.exists(path)


def test_a_fork_of_a_loader_that_then_dies_lets_the_store_be_mended(tmp_path: Path) -> None:
    """A worker the loader forked inside the block must not hold the lock once the
    loader is gone (the next opening builds the indexes)."""
    path = tmp_path / "funnel.db"
    script = _loader_script(
        path,
        """
        worker = os.fork()
        if worker == 0:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)  # (the test waits for the parent's output only)
            os.dup2(devnull, 2)
            time.sleep(60)  # a worker, outliving its parent
            os._exit(0)
        print(worker, flush=True)
        os._exit(3)
        """,
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, timeout=60, capture_output=True, text=True
    )
    worker = int(done.stdout)
    try:
        assert done.returncode == 3
        assert not _indexes(path) & DEFERRABLE
        os.kill(worker, 0)  # still there
        repository = SqlRepository(f"sqlite:///{path}")
        assert _indexes(path) >= DEFERRABLE  # the worker holds no lock
        repository.close()
    finally:
        os.kill(worker, signal.SIGKILL)


def test_a_forked_child_leaving_the_block_leaves_the_parents_load_alone(
    tmp_path: Path, few: None
) -> None:
    """The block's end in a child made by fork (which inherits the block) builds,
    removes and closes nothing: the lock and the indexes are the parent's."""
    from leadfunnel._sql import _loader_lock as loader_lock

    path = tmp_path / "funnel.db"
    lock_file = f"{path}-lfload"
    repository = SqlRepository(f"sqlite:///{path}")
    all_indexes = _indexes(path)
    parent = os.getpid()
    with repository.loading():
        Funnel(repository).import_leads(_rows(30), chunk_size=5)
        child = os.fork()
        if child:
            _, status = os.waitpid(child, 0)  # the child has left the block
            assert os.waitstatus_to_exitcode(status) == 0
            assert loader_lock.running(lock_file)
            assert _indexes(path) == all_indexes - DEFERRABLE
    if os.getpid() != parent:  # pragma: no cover - the child, out of the block
        os._exit(0 if loader_lock.running(lock_file) else 1)
    assert _indexes(path) == all_indexes
    assert not os.path.exists(lock_file)
    repository.close()
