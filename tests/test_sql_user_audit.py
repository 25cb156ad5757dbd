"""What an application's view of transactions, concurrency and reopening found in the
stores (a read-only audit, 2026-11-29; mostly the SQL adapter): each test failed before
its fix."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.pool import StaticPool

from conftest import person
from leadfunnel import (
    AvoidListedError,
    ConcurrencyError,
    ConfigError,
    Contact,
    DuplicateError,
    Funnel,
    InMemoryRepository,
    Lead,
    SqlRepository,
    Stage,
)
from leadfunnel._sql import _schema as schema
from test_sql import _back_to_version_1, open_repository, url

__all__ = ["url"]  # the fixture, from test_sql

NOTE = "Kim Jones said call her at 512 555 0100"


class Seated(Lead):
    seats: dict[str, int] = Field(default_factory=dict)


@pytest.fixture
def two(url: tuple[str, str | None]) -> Iterator[tuple[Funnel, Funnel]]:
    """Two funnels on one server database, each its own connections: the application
    (``mine``) and another worker (``theirs``)."""
    if url[0].startswith("sqlite"):
        # SQLite's block holds the only write lock: no other writer commits inside it.
        pytest.skip("needs a server: another writer commits inside the block")
    app, worker = open_repository(url), open_repository(url)
    try:
        yield Funnel(app), Funnel(worker)
    finally:
        app.close()
        worker.close()


# --- the suppression secret of an upgraded store -------------------------------------


def test_an_upgraded_store_keeps_its_secret_through_a_rolled_back_first_use(
    url: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEADFUNNEL_SUPPRESSION_SECRET", raising=False)
    made = open_repository(url)
    _back_to_version_1(made, url)  # leadfunnel 0.1 had no secrets table
    made.close()
    upgraded = open_repository(url)
    with upgraded._engine.connect() as conn:  # made with the upgrade, not on first use
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.secrets)).scalar() == 1
    funnel = Funnel(upgraded)
    try:
        with funnel.transaction():
            funnel.add(Lead(**person(1)))  # the first use of the secret, rolled back
            raise RuntimeError("the request failed")
    except RuntimeError:
        pass
    kim = funnel.add(Lead(**person(2)))
    funnel.erase(kim)
    upgraded.close()

    again = Funnel(open_repository(url))
    try:
        with pytest.raises(AvoidListedError):
            again.add(Lead(**person(2)))  # still avoided after the restart
        # Was a ConfigError ("written under another secret") for everyone.
        assert again.add(Lead(**person(3))).version == 1
    finally:
        again.repository.close()


# --- MariaDB: a block's snapshot ---------------------------------------------------------


def in_a_block(funnel: Funnel, meanwhile: Callable[[], Any], then: Callable[[], Any]) -> bool:
    """Run ``then`` in a block whose first read comes before another writer's
    ``meanwhile``; on a refusal (the block undone whole) run ``then`` again outside any
    block, as an application retries. Whether the block was refused."""
    try:
        with funnel.transaction():
            funnel.count("lead")  # the block's first read: MariaDB's snapshot
            meanwhile()
            then()
    except ConcurrencyError:
        then()
        return True
    return False


def test_an_erasure_in_a_block_never_leaves_what_another_writer_logged_meanwhile(
    two: tuple[Funnel, Funnel],
) -> None:
    mine, theirs = two
    kim = mine.add(Lead(**person(1)))
    touch = lambda: theirs.touch(kim, "call", "no_answer", note=NOTE)  # noqa: E731
    in_a_block(mine, touch, lambda: mine.erase(kim))
    # Was stored on MariaDB, leaving the touch's note unscrubbed.
    assert [t.note for t in theirs.touches(kim.id)] == [None]

    sam = mine.add(Contact(first_name="Sam", email="sam@x.example.com"))
    booked: list[Any] = []
    in_a_block(mine, lambda: booked.append(theirs.set_appointment(sam)), lambda: mine.erase(sam))
    # Was left open on MariaDB: a deal of an erased contact, booked meanwhile.
    assert mine.get_opportunity(booked[0].id).stage is Stage.LOST


def test_a_merge_in_a_block_never_leaves_a_touch_on_the_record_it_removes(
    two: tuple[Funnel, Funnel],
) -> None:
    mine, theirs = two
    a, b = mine.add(Lead(**person(1))), mine.add(Lead(**person(2)))
    touched: list[Any] = []
    in_a_block(
        mine,
        lambda: touched.append(theirs.touch(b, "call", "no_answer")),
        lambda: mine.merge(a, b),
    )
    # Was left on MariaDB pointing at the merged-away record.
    assert touched[0].id in [t.id for t in mine.touches(a.id)]


def adding_in_a_block(mine: Funnel, theirs: Funnel, n: int, **fields: Any) -> tuple[Lead, Any]:
    """What ``mine.add`` raises in a block after ``theirs`` stored person ``n``."""
    with mine.transaction():
        mine.count("lead")
        winner = theirs.add(Lead(**person(n)))
        try:
            mine.add(Lead(**person(n, **fields)))
        except DuplicateError as exc:
            return winner, exc
    raise AssertionError("stored twice")


def test_a_key_another_writer_stored_meanwhile_is_a_duplicate_in_a_block(
    two: tuple[Funnel, Funnel],
) -> None:
    mine, theirs = two
    winner, refusal = adding_in_a_block(mine, theirs, 1)  # was StorageError on MariaDB
    assert refusal.existing_id == winner.id
    assert not isinstance(refusal, AvoidListedError)
    with mine.transaction():
        mine.count("lead")
        other = theirs.add(Lead(**person(2)))
        report = mine.import_leads([person(2)])
    assert [issue.existing_id for issue in report.duplicates] == [other.id]
    assert report.rejected == []  # was rejected: "the store refused this row"


# --- SQLite: an application's engine, checks that change nothing, readers never wait --


def test_an_applications_engine_used_before_and_opened_again_works(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:  # the application's own table first: a pooled connection
        conn.exec_driver_sql("CREATE TABLE app_notes (text VARCHAR(200))")
    first = SqlRepository(engine)
    funnel = Funnel(first, lead_model=Seated)
    funnel.add(Seated(email="a@x.example.com", seats={"x": 1}))
    # The pooled connection lacked leadfunnel's functions: "no such function: lf_json".
    assert [lead.email for lead in funnel.leads(where={"seats": {"x": 1}})] == ["a@x.example.com"]
    first.close()
    again = SqlRepository(engine)  # was "cannot start a transaction within a transaction"
    try:
        assert Funnel(again, lead_model=Seated).count("lead") == 1
    finally:
        again.close()


def journal_mode(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


@pytest.mark.parametrize("migrate", ["check", "never"])
def test_a_file_refused_or_read_as_it_is_is_not_changed(
    tmp_path: Path, migrate: Literal["check", "never"]
) -> None:
    foreign = tmp_path / "theirs.db"
    with closing(sqlite3.connect(foreign)) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(ConfigError):
        SqlRepository(f"sqlite:///{foreign}", migrate=migrate)
    assert journal_mode(foreign) == "delete"  # was switched to WAL before the refusal


def test_a_read_only_file_opens_to_be_read(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    made = SqlRepository(f"sqlite:///{path}")
    Funnel(made).add(Lead(**person(1)))
    made.close()
    with closing(sqlite3.connect(path)) as conn:  # a copy handed over in rollback mode
        conn.execute("PRAGMA journal_mode = DELETE")
    modes: tuple[Literal["check", "never"], ...] = ("check", "never")
    for migrate in modes:
        read_only = SqlRepository(f"sqlite:///file:{path}?mode=ro&uri=true", migrate=migrate)
        try:  # was "attempt to write a readonly database"
            assert Funnel(read_only).count("lead") == 1
        finally:
            read_only.close()
    assert journal_mode(path) == "delete"


def test_opening_to_check_never_waits_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    url = f"sqlite:///{path}"
    Funnel(SqlRepository(url)).add(Lead(**person(1)))
    writer = Funnel(SqlRepository(url))
    with writer.transaction():
        writer.add(Lead(**person(2)))  # holds SQLite's write lock until the block ends
        # Was BEGIN IMMEDIATE: queued behind the writer, then "database is locked".
        checked = SqlRepository(url, migrate="check", connect_args={"timeout": 0.2})
        try:
            assert Funnel(checked).count("lead") == 1  # what is committed, at once
        finally:
            checked.close()
    writer.repository.close()


# --- the in-memory store: the secret's first use by threads, one inside a block -------


class _SlowSecret(InMemoryRepository):
    """Asked for its secret, waits until ``go`` is set before taking its lock: the other
    thread enters its transaction() block in that moment."""

    def __init__(self) -> None:
        super().__init__()
        self.asked, self.go = threading.Event(), threading.Event()

    def suppression_secret(self) -> bytes:
        self.asked.set()
        self.go.wait(5)
        return super().suppression_secret()


def test_the_secret_s_first_use_never_deadlocks_a_thread_inside_a_block() -> None:
    """A thread inside ``transaction()`` holds the in-memory store's lock; another one
    that first hashed a key held the suppressor's lock while it asked the store for its
    secret. Each waited for the other's lock, for ever."""
    store = _SlowSecret()
    first = Funnel(store)
    store.go.set()
    first.avoid(first.add(Lead(**person(9))))  # suppressions stored: adds hash keys
    store.asked.clear()
    store.go.clear()
    funnel = Funnel(store)  # its own suppressor: the secret not resolved yet
    failures: list[BaseException] = []

    def hashing() -> None:  # asks for the secret, then waits for the block's lock
        try:
            funnel.add(Lead(**person(2)))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    def block() -> None:
        store.asked.wait(5)
        try:
            with funnel.transaction():
                store.go.set()
                time.sleep(0.1)  # the other thread now waits for the store's lock
                funnel.add(Lead(**person(1)))  # the first use of the secret here too
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=t, daemon=True) for t in (hashing, block)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads), "deadlocked"
    assert failures == []
    assert funnel.count("lead") == 3


@pytest.mark.parametrize("pool", ["static", "per-thread"])
def test_an_applications_engine_in_memory_keeps_its_data(pool: str) -> None:
    options: dict[str, Any] = {}
    if pool == "static":
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = sa.create_engine("sqlite://", **options)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE app_users (name TEXT)")
        conn.exec_driver_sql("INSERT INTO app_users VALUES ('kept')")
    funnel = Funnel(SqlRepository(engine), lead_model=Seated)
    funnel.add(Seated(email="a@x.example.com", seats={"x": 1}))
    with engine.connect() as conn:  # closing its connection wiped the database
        assert conn.exec_driver_sql("SELECT name FROM app_users").all() == [("kept",)]
    # The live connection got leadfunnel's functions: where= on a dict uses lf_json.
    assert [lead.email for lead in funnel.leads(where={"seats": {"x": 1}})] == ["a@x.example.com"]


def test_an_engine_and_its_execution_options_are_tuned_once(tmp_path: Path) -> None:
    for n in (0, 1):  # the parent engine first, then the one with options first
        engine = sa.create_engine(f"sqlite:///{tmp_path / f'app{n}.db'}")
        pair = (engine, engine.execution_options(logging_token="app"))
        repositories = [SqlRepository(given) for given in (pair if n == 0 else pair[::-1])]
        try:  # both open at once: was "cannot start a transaction within a transaction"
            for k, repository in enumerate(repositories):
                Funnel(repository).add(Lead(**person(k)))
        finally:
            for repository in repositories:
                repository.close()


def test_a_server_that_never_answers_is_a_clear_error_not_a_hang(monkeypatch: Any) -> None:
    """libpq waits for ever on a server that accepts connections and never answers (a
    hung server, a wrong port): a command run by cron would hang. Opening gives up
    after the connection timeout (10 s, unless the URL says), with a clear error."""
    import contextlib
    import socket

    monkeypatch.setattr("leadfunnel._sql._engine._CONNECT_SECONDS", 1)
    pytest.importorskip("psycopg")
    with closing(socket.socket()) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        accepted: list[Any] = []

        def accept() -> None:
            with contextlib.suppress(OSError):  # the listener closed at the test's end
                for _ in range(8):
                    accepted.append(silent.accept())

        threading.Thread(target=accept, daemon=True).start()
        outcome: list[BaseException] = []

        def open_it() -> None:
            try:
                SqlRepository(f"postgresql+psycopg://u@127.0.0.1:{port}/x")
            except BaseException as exc:  # examined below
                outcome.append(exc)

        opener = threading.Thread(target=open_it, daemon=True)
        opener.start()
        opener.join(timeout=60)
        assert not opener.is_alive(), "opening still waits for a server that never answers"
        (error,) = outcome
        assert isinstance(error, ConfigError)
        assert "timeout" in str(error)
        for connection, _ in accepted:
            connection.close()
