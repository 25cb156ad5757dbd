"""Fixtures shared by the project's own tests.

``repository`` is parametrised over every adapter available here; tests that take
``funnel`` therefore run once per backend. PostgreSQL and MariaDB join when
``LEADFUNNEL_TEST_POSTGRES_URL`` / ``LEADFUNNEL_TEST_MYSQL_URL`` are set, each
repository in an empty schema (database) of its own: a new one, or one an earlier test
gave back and :class:`SchemaPool` emptied. All are dropped when the session ends.
SQLite's is a copy of one new store's file (:func:`sqlite_template`), made once per
process.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings

from leadfunnel import Funnel, InMemoryRepository, Lead, Repository, SqlRepository
from leadfunnel._sql import _schema as schema
from leadfunnel.testing import ManualClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

SERVER_URLS = {
    "postgres": os.environ.get("LEADFUNNEL_TEST_POSTGRES_URL"),
    "mysql": os.environ.get("LEADFUNNEL_TEST_MYSQL_URL"),
}
REPOSITORY_KINDS = ["memory", "sqlite", *(kind for kind, url in SERVER_URLS.items() if url)]


def _share_pymysql_tls_context() -> None:
    """PyMySQL (1.2 on) offers TLS to the server on every connection it opens, with a
    TLS context of its own made from the system's certificate store each time: 55 ms
    of CPU per MariaDB connection, more than most tests that open one take. The
    context asked for without options is the same every time; the test processes share
    one. (What is sent and checked on the wire is unchanged.)"""
    try:
        from pymysql import connections  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - the mysql extra is not installed
        return
    make = getattr(connections.Connection, "_create_ssl_ctx", None)
    if make is None:  # pragma: no cover - a PyMySQL that makes none
        return
    shared: dict[str, Any] = {}

    def create(self: Any, sslp: Any) -> Any:
        if not isinstance(sslp, dict) or sslp:
            return make(self, sslp)  # options of the URL's own: as PyMySQL makes them
        if "context" not in shared:
            shared["context"] = make(self, sslp)
        return shared["context"]

    connections.Connection._create_ssl_ctx = create


_share_pymysql_tls_context()


def person(n: int, **fields: Any) -> dict[str, Any]:
    """A lead's fields: a US MSP owner who fits the usual test profile."""
    base: dict[str, Any] = {
        "first_name": f"Pat{n}",
        "last_name": "Rivera",
        "email": f"pat{n}@acme-it{n}.example.com",
        "company": f"Acme IT {n}",
        "title": "CEO",
        "industry": "IT Services",
        "employees": 25,
        "annual_revenue": 2_500_000,
        "country": "US",
        "region": "TX",
        "source": "webinar",
    }
    base.update(fields)
    return base


def value_refusal(funnel: Any, lead: Any, field: str, problem: str) -> str:
    """Adding ``lead`` is refused by ``StorageError(of_value=True)`` (which an import
    rejects alone) naming ``field`` of the lead and ``problem``, and nothing is stored;
    the message, for the caller to check it shows no value."""
    from leadfunnel import StorageError

    with pytest.raises(StorageError) as caught:
        funnel.add(lead)
    assert caught.value.of_value
    message = str(caught.value)
    assert f"field {field} of lead {lead.id}" in message
    assert problem in message
    assert "nothing of this change was stored" in message
    assert funnel.leads() == []
    return message


def run_leadfunnel(where: Any, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``python -m leadfunnel ARGUMENTS`` run in ``where``, its modules importable (an
    application's models, say), as a shell would run the command."""
    return subprocess.run(
        [sys.executable, "-m", "leadfunnel", *arguments],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
    )


def run_leadfunnel_into(stdout: Any, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``python -m leadfunnel ARGUMENTS`` writing to ``stdout`` (a file or descriptor:
    ``/dev/full``, a pipe whose reader is gone), its standard error captured."""
    return subprocess.run(
        [sys.executable, "-m", "leadfunnel", *arguments],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )


def runpytest_here(pytester: pytest.Pytester, *arguments: str) -> pytest.RunResult:
    """``pytest ARGUMENTS`` on ``pytester``'s directory in this process: a new process
    costs 1.5 s of start-up (pytest, its plugins, leadfunnel), more than the runs the
    toolkit's tests make. The leadfunnel plugin is then the one this process loaded,
    checked to be the source tree's (an editable install may have made a copy of it).
    What must start afresh (what a module imported before rewrites, the plugin as a
    user's own run loads it) runs in a process of its own."""
    plugin = importlib.import_module("leadfunnel_pytest")
    source = Path(__file__).resolve().parent.parent / "src"
    assert Path(str(plugin.__file__)).resolve().parent == source, plugin.__file__
    return pytester.runpytest_inprocess(*arguments)


def make_repository(kind: str, tmp_path: Any) -> Repository:
    if kind == "memory":
        return InMemoryRepository()
    if kind == "sqlite":
        return SqlRepository(new_sqlite_url(Path(tmp_path) / "funnel.db"))
    if kind in SERVER_URLS:
        return server_repository(kind)
    raise ValueError(kind)


_SQLITE_TEMPLATE: list[Path] = []


def sqlite_template() -> Path:
    """A SQLite file as a new :class:`SqlRepository` leaves it once closed: its tables
    made, its version, counters and secret stored, its log folded in (no ``-wal``
    file). A copy of it is a new store for each test (a fresh file costs 50 ms of
    CREATE statements, a copy 1 ms), as the server pools' emptied schemas are."""
    if not _SQLITE_TEMPLATE:
        path = Path(tempfile.mkdtemp(prefix="lf_template_")) / "funnel.db"
        SqlRepository(f"sqlite:///{path}").close()
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # one file is all
        _SQLITE_TEMPLATE.append(path)
    return _SQLITE_TEMPLATE[0]


def new_sqlite_url(path: Path) -> str:
    """The URL of a new SQLite store at ``path``: a copy of :func:`sqlite_template`."""
    shutil.copyfile(sqlite_template(), path)
    return f"sqlite:///{path}"


def server_repository(kind: str, *, new: bool = False) -> SqlRepository:
    """A repository in an empty PostgreSQL schema or MariaDB database of its own; with
    ``new``, one made for it, that no test has used (whose tables the server has no
    statistics of, say)."""
    return open_server(kind, schema_pool(kind).take(new=new))


def open_server(kind: str, name: str) -> SqlRepository:
    """A repository in the server schema (PostgreSQL) or database (MariaDB) ``name``."""
    url = SERVER_URLS[kind]
    assert url is not None
    if kind == "postgres":
        # Commits answer once written, without waiting for the disk to have the log (a
        # fifth of these tests' time): that they would survive a crash of the server
        # is no test's concern; what other connections see is the same.
        options = {"options": "-c synchronous_commit=off"}
        return SqlRepository(url, schema=name, connect_args=options)
    return SqlRepository(sa.make_url(url).set(database=name))


def release_repository(repository: Repository) -> None:
    """Close ``repository``; a server schema it was given goes back to its pool, emptied,
    for a later test (making one costs a quarter of a second on PostgreSQL and half a
    second on MariaDB: more than the whole run of most of the several hundred tests
    that take one)."""
    repository.close()
    if isinstance(repository, SqlRepository):
        for pool in _POOLS.values():
            pool.give_back(server_name(repository))  # taken back only by the pool it is from


def server_name(repository: SqlRepository) -> str:
    """The PostgreSQL schema or MariaDB database ``repository`` is in (for SQLite, its
    file)."""
    return str(repository.schema or repository.url.database)


class SchemaPool:
    """Empty leadfunnel schemas (PostgreSQL) or databases (MariaDB) for tests to use.

    ``take`` gives a schema no other test holds: a new one, or one given back and
    emptied. ``give_back`` empties a schema: every table's rows deleted and the rows a
    new schema starts with (its version, its counters) put back, in one transaction. A
    schema whose tables, columns or indexes a test changed is not reused (compared with
    those of a new schema); nor is one a connection still holds a lock on. ``close``
    drops every schema made.
    """

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.made: list[str] = []
        self._free: list[str] = []
        self._out: set[str] = set()  # taken and not given back
        self._engine: sa.Engine | None = None
        self._shape: list[tuple[Any, ...]] | None = None  # a new schema's structure
        self._rows: dict[str, list[dict[str, Any]]] = {}  # and the rows it starts with

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        return self._engine

    def take(self, *, new: bool = False) -> str:
        if self._free and not new:
            name = self._free.pop()
            self._out.add(name)
            return name
        name = f"lf_test_{uuid.uuid4().hex[:16]}"
        server = "SCHEMA" if self.kind == "postgres" else "DATABASE"
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE {server} {name}")
        self.made.append(name)  # dropped at the end even if opening it fails
        self._out.add(name)
        if self._shape is None:
            open_server(self.kind, name).close()  # made by leadfunnel, as a test would
            with self.engine.connect() as conn:
                self._shape = self._structure(conn, name)
                conn = conn.execution_options(schema_translate_map={None: name})
                self._rows = {
                    table.name: [dict(row._mapping) for row in conn.execute(sa.select(table))]
                    for table in schema.metadata.sorted_tables
                }
        return name

    def give_back(self, name: str) -> None:
        if name not in self._out:
            return  # not one of ours, or given back already
        self._out.remove(name)
        try:
            with self.engine.connect() as conn:
                structure = self._structure(conn, name)
            if not structure:  # never opened: as empty as it was made
                self._free.append(name)
                return
            if structure != self._shape:
                return  # changed by its test: dropped at the end, never reused
            with self.engine.connect() as conn:
                conn = conn.execution_options(
                    isolation_level="READ COMMITTED", schema_translate_map={None: name}
                )
                with conn.begin():
                    conn.exec_driver_sql(
                        "SET LOCAL lock_timeout = '2s'; SET LOCAL synchronous_commit = off"
                        if self.kind == "postgres"
                        else "SET SESSION innodb_lock_wait_timeout = 2"
                    )
                    for table in reversed(schema.metadata.sorted_tables):
                        conn.execute(sa.delete(table))
                    for table in schema.metadata.sorted_tables:
                        if self._rows[table.name]:
                            conn.execute(sa.insert(table), self._rows[table.name])
        except sa.exc.DBAPIError:
            return  # still locked by a connection its test left open: not reused
        self._free.append(name)

    def _structure(self, conn: sa.Connection, name: str) -> list[tuple[Any, ...]]:
        """The tables, columns and indexes of the schema ``name`` (PostgreSQL's from its
        catalogue: its information_schema views take 30 ms). On PostgreSQL, the schema's
        classes found by their index, then each one's columns by theirs: joins left to
        the planner scanned the whole of pg_class and pg_attribute (7 ms, not 1, once
        many schemas had come and gone)."""
        if self.kind == "postgres":
            queries = [
                "SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), "
                "a.attnotnull FROM pg_class c CROSS JOIN LATERAL (SELECT * FROM pg_attribute a "
                "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped OFFSET 0) a "
                "WHERE c.relnamespace = to_regnamespace(:name)",
                "SELECT c.relname, replace(pg_get_indexdef(c.oid), :name, '') FROM pg_class c "
                "WHERE c.relnamespace = to_regnamespace(:name) AND c.relkind IN ('i', 'I')",
            ]
        else:
            queries = [
                "SELECT table_name, column_name, data_type, is_nullable "
                "FROM information_schema.columns WHERE table_schema = :name",
                "SELECT table_name, index_name, column_name, seq_in_index, non_unique "
                "FROM information_schema.statistics WHERE table_schema = :name",
            ]
        found = [tuple(row) for q in queries for row in conn.execute(sa.text(q), {"name": name})]
        return sorted(found, key=repr)

    def close(self) -> None:
        if not self.made:
            return
        # One connection for all of them: an engine per schema cost seconds at the end.
        with self.engine.connect() as conn:
            for name in self.made:
                conn.exec_driver_sql(
                    f"DROP SCHEMA {name} CASCADE"
                    if self.kind == "postgres"
                    else f"DROP DATABASE {name}"
                )
        self.engine.dispose()
        self.made, self._free, self._out = [], [], set()


_POOLS: dict[str, SchemaPool] = {}


def schema_pool(kind: str) -> SchemaPool:
    url = SERVER_URLS[kind]
    assert url is not None, f"no URL for {kind}"
    if kind not in _POOLS:
        _POOLS[kind] = SchemaPool(kind, url)
    return _POOLS[kind]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the README's command): one worker more than the CPUs. A third of the
    tests wait on PostgreSQL and MariaDB, whose round trips leave a core idle: on two
    cores, three workers ran the suite in 267 s against 296 to 302 s with two."""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (a quarter of a minute and more each) run first: spread
    over the workers (``-n auto``) from the start instead of ending a run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def _drop_server_schemas() -> Iterator[None]:
    yield
    for pool in _POOLS.values():
        pool.close()
    for path in _SQLITE_TEMPLATE:
        shutil.rmtree(path.parent, ignore_errors=True)
    _SQLITE_TEMPLATE.clear()


@pytest.fixture(params=REPOSITORY_KINDS)
def repository(request: pytest.FixtureRequest) -> Iterator[Repository]:
    # A temporary folder only for the SQLite file (each one costs a scan of the
    # worker's thousands of earlier ones).
    folder = request.getfixturevalue("tmp_path") if request.param == "sqlite" else None
    repo = make_repository(request.param, folder)
    yield repo
    release_repository(repo)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def funnel(repository: Repository, clock: ManualClock) -> Funnel:
    return Funnel(repository, clock=clock)


def outputs_under_hash_seeds(*args: str) -> set[str]:
    """What ``python ARGS`` prints under three string-hash seeds: one output if nothing
    it prints depends on the order of a set (each seed orders sets its own way)."""
    outputs = set()
    for seed in ("1", "2", "3"):
        done = subprocess.run(
            [sys.executable, *args],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout)
    return outputs


@pytest.fixture
def no_local_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypothesis mixes into its draws constants found in the local modules the process
    has imported (5% of draws), so the same seed draws other examples in a test process
    that imported other test modules first: a survey of the strategies' shares (a fixed
    seed, ``derandomize``) then measured one thing alone and another in the full suite.
    Surveys see hypothesis' own constants only, the same in every process."""
    from hypothesis.internal.conjecture import providers
    from hypothesis.internal.constants_ast import Constants
    from hypothesis.internal.floats import float_to_int
    from sortedcontainers import SortedSet  # type: ignore[import-untyped]

    empty = Constants(
        integers=SortedSet(),
        floats=SortedSet(key=float_to_int),
        bytes=SortedSet(),
        strings=SortedSet(),
    )
    monkeypatch.setattr(providers, "_get_local_constants", lambda: empty)
    providers.CONSTANTS_CACHE.cache.clear()


@pytest.fixture
def ctrl_c_heard() -> Iterator[None]:
    """Ctrl-C reaches this test and the commands it starts, even when the tests run with
    it ignored (started as a background job: ``pytest &`` in a script), which a command
    keeps, as Python does."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals: main thread")
    before = signal.getsignal(signal.SIGINT)
    if before is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def survey(max_examples: int, *, derandomize: bool = True) -> settings:
    """Hypothesis settings for a survey of a strategy, not a search: only generated (no
    database replay, no shrinking), no deadline or health check, the same examples on
    every run (``derandomize``; or under the test's own ``@seed``)."""
    return settings(
        max_examples=max_examples,
        derandomize=derandomize,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


def write_csv(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "x.csv") -> Path:
    """``text`` written to ``tmp_path / name`` in ``encoding``, byte for byte."""
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def crm(tmp_path: Path) -> Path:
    """A SQLite file holding one lead, Ann (for the command line's tests)."""
    path = tmp_path / "crm.db"
    funnel = Funnel(SqlRepository(f"sqlite:///{path}"))
    funnel.add(Lead(first_name="Ann", email="ann@x.example.com"))
    funnel.repository.close()
    return path


def pages_lose_races(repository: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``repository`` refuse every commit of more than one event (a page of
    ``qualify_all``) with a ``ConcurrencyError``, as if somebody always won the race; a
    commit of one event goes through."""
    from leadfunnel import ConcurrencyError

    real = repository.commit

    def contended(changes: Any) -> Any:
        if len(changes.events) > 1:
            raise ConcurrencyError(changes.events[0].subject_id, 1, 2)
        return real(changes)

    monkeypatch.setattr(repository, "commit", contended)
