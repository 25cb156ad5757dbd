"""SqlRepository beyond the port contract: durability, concurrency, time zones, schema
versions, error translation and URLs.

Server backends run when ``LEADFUNNEL_TEST_POSTGRES_URL`` / ``LEADFUNNEL_TEST_MYSQL_URL``
are set; each test gets its own schema or database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from conftest import T0, person
from leadfunnel import (
    Channel,
    ConcurrencyError,
    ConfigError,
    Contact,
    DuplicateError,
    Funnel,
    InvalidArgumentError,
    Lead,
    LeadFunnelError,
    LeadStatus,
    SqlRepository,
    StorageError,
)
from leadfunnel._repository import ChangeSet
from leadfunnel._sql import SCHEMA_VERSION
from leadfunnel._sql import _schema as schema
from leadfunnel.testing import ManualClock

POSTGRES_URL = os.environ.get("LEADFUNNEL_TEST_POSTGRES_URL")
MYSQL_URL = os.environ.get("LEADFUNNEL_TEST_MYSQL_URL")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """A URL (and schema) of an empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'funnel.db'}", None
        return
    server = POSTGRES_URL if request.param == "postgres" else MYSQL_URL
    if not server:
        pytest.skip(f"set the {request.param} test URL to run this backend")
    name = f"lf_test_{uuid4().hex[:16]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    kind = "SCHEMA" if request.param == "postgres" else "DATABASE"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE {kind} {name}")
    try:
        if request.param == "postgres":
            yield server, name
        else:
            yield sa.make_url(server).set(database=name).render_as_string(False), None
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP {kind} {name}{' CASCADE' if kind == 'SCHEMA' else ''}")
        admin.dispose()


def open_repository(where: tuple[str, str | None]) -> SqlRepository:
    return SqlRepository(where[0], schema=where[1])


# --- durability ---------------------------------------------------------------------


def test_reopen_keeps_everything(url: tuple[str, str | None]) -> None:
    clock = ManualClock(T0)
    first = Funnel(open_repository(url), clock=clock)
    lead = first.add(Lead(**person(1, phone="+1 512 555 0134", tags={"vip"})))
    clock.advance(hours=1)
    first.touch(lead, Channel.CALL, "no_answer")
    clock.advance(hours=1)
    first.qualify(lead, force=True, reason="referral")
    opp = first.set_appointment(lead, owner="rep", setter="sue")
    opp = first.sit(opp)
    other = first.add(Lead(**person(2)))
    first.repository.close()

    again = Funnel(open_repository(url), clock=clock)
    try:
        assert again.get_lead(lead.id).status == LeadStatus.CONVERTED
        assert again.get(opp.id) == opp
        assert again.get(other.id) == other
        assert [e.name for e in again.history(lead.id)] == ["add", "touch", "qualify", "convert"]
        assert [t.channel for t in again.touches(lead.id)] == [Channel.CALL]
        assert [r.id for r in again.leads(tag="vip")] == [lead.id]
        contact = again.get(opp.contact_id)
        with pytest.raises(DuplicateError) as err:
            again.add(Lead(**person(3, email=lead.email)))
        assert err.value.existing_id == contact.id
        counts = {name: step.count for name, step in _steps(again).items()}
        assert counts["appointment_sat"] == 1
        assert counts["raw"] == 2
    finally:
        again.repository.close()


def _steps(funnel: Funnel) -> dict[str, Any]:
    rows = funnel.repository.step_counts(since=None, until=None)
    return {row.step: row for row in rows}


# --- concurrency --------------------------------------------------------------------


def test_a_stale_write_from_another_repository_is_refused(url: tuple[str, str | None]) -> None:
    a, b = open_repository(url), open_repository(url)
    try:
        one, two = Funnel(a), Funnel(b)
        lead = one.add(Lead(**person(1)))
        mine, theirs = one.get_lead(lead.id), two.get_lead(lead.id)
        two.update(theirs.model_copy(update={"notes": "theirs"}))
        with pytest.raises(ConcurrencyError) as err:
            one.update(mine.model_copy(update={"notes": "mine"}))
        assert err.value.found == 2
        assert one.get_lead(lead.id).notes == "theirs"
    finally:
        a.close()
        b.close()


def test_two_repositories_racing_for_one_person(url: tuple[str, str | None]) -> None:
    repositories = [open_repository(url) for _ in range(4)]
    start = threading.Barrier(len(repositories))
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def add(repository: SqlRepository, n: int) -> None:
        funnel = Funnel(repository)
        try:
            start.wait()
            funnel.add(Lead(**person(n, email="race@example.com")))
            outcomes.append("added")
        except DuplicateError:
            outcomes.append("duplicate")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(r, n)) for n, r in enumerate(repositories)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert sorted(outcomes) == ["added"] + ["duplicate"] * 3
        assert len(repositories[0].leads()) == 1
    finally:
        for repository in repositories:
            repository.close()


_IMPORTER = textwrap.dedent(
    """
    import sys
    from leadfunnel import Funnel, SqlRepository
    funnel = Funnel(SqlRepository(sys.argv[1]))
    rows = [{"email": f"p{n}@shared.example.com", "last_name": "Same"} for n in range(300)]
    report = funnel.import_leads(rows, chunk_size=50)
    print(len(report.added), len(report.duplicates))
    """
)


def test_two_processes_importing_the_same_people_store_each_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    SqlRepository(url).close()
    processes = [
        subprocess.Popen([sys.executable, "-c", _IMPORTER, url], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [tuple(map(int, p.communicate(timeout=120)[0].split())) for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert sum(added for added, _ in results) == 300
    assert sum(duplicates for _, duplicates in results) == 300
    repository = SqlRepository(url)
    try:
        assert len(repository.leads()) == 300
    finally:
        repository.close()


def test_threads_sharing_one_funnel_on_sqlite_lose_nothing(tmp_path: Path) -> None:
    repository = SqlRepository(f"sqlite:///{tmp_path / 'threads.db'}")
    funnel = Funnel(repository, clock=ManualClock(T0))
    shared = funnel.add(Lead(**person(0)))
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(worker: int) -> None:
        try:
            start.wait()
            for n in range(10):
                lead = funnel.add(Lead(**person(1000 * (worker + 1) + n)))
                funnel.touch(lead, Channel.CALL, "no_answer")
                funnel.update(funnel.get(lead.id).model_copy(update={"notes": f"w{worker}"}))
                funnel.touch(shared, Channel.EMAIL, "no_answer")
            funnel.qualify(shared, force=True) if worker == 0 else None
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        leads = funnel.leads()
        assert len(leads) == 41
        assert sorted(lead.notes or "" for lead in leads) == [""] + [
            f"w{w}" for w in range(4) for _ in range(10)
        ]
        assert len(funnel.touches(shared)) == 40
        assert all(len(funnel.touches(lead)) == 1 for lead in leads if lead.id != shared.id)
        assert funnel.get_lead(shared.id).status == LeadStatus.QUALIFIED
    finally:
        repository.close()


# --- time zones ---------------------------------------------------------------------

ZONES = [
    UTC,
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=-3, minutes=-30)),
    timezone(timedelta(hours=14)),
]


def test_aware_datetimes_round_trip_exactly(url: tuple[str, str | None]) -> None:
    repository = open_repository(url)
    try:
        funnel = Funnel(repository)
        for n, zone in enumerate(ZONES):
            at = datetime(2026, 3, 29, 1, 59, 59, 999_999, tzinfo=zone)
            lead = funnel.add(Lead(**person(n)), at=at)
            stored = funnel.get(lead.id)
            assert stored.created_at == at
            assert stored.created_at.utcoffset() is not None
            (event,) = funnel.history(lead)
            assert event.at == at
            # A bound one microsecond either side finds it or not.
            assert lead.id in {r.id for r in funnel.leads(created_since=at)}
            assert lead.id not in {
                r.id for r in funnel.leads(created_since=at + timedelta(microseconds=1))
            }
            assert lead.id in {
                r.id for r in funnel.leads(created_until=at + timedelta(microseconds=1))
            }
        candidates = list(repository.follow_up_candidates(lead_limit=2, contact_limit=8))
        assert len(candidates) == len(ZONES)
        for candidate in candidates:
            assert candidate.anchor_at.utcoffset() == timedelta(0)
    finally:
        repository.close()


def test_naive_datetimes_are_refused(tmp_path: Path) -> None:
    repository = SqlRepository(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(ValueError, match="no timezone"):
            repository.leads(created_since=datetime(2026, 1, 1))
        with pytest.raises(ValueError, match="no timezone"):
            repository.step_counts(since=datetime(2026, 1, 1), until=None)
    finally:
        repository.close()


def test_instants_are_stored_in_utc(tmp_path: Path) -> None:
    path = tmp_path / "utc.db"
    repository = SqlRepository(f"sqlite:///{path}")
    at = datetime(2026, 3, 2, 14, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    Funnel(repository).add(Lead(**person(1)), at=at)
    repository.close()
    with sqlite3.connect(path) as raw:
        (micros,) = raw.execute("SELECT created_at FROM lf_leads").fetchone()
        (month,) = raw.execute("SELECT month FROM lf_steps").fetchone()
    assert datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros) == at
    assert micros % 1_000_000 == 0
    assert month == "2026-03"


# --- schema versions ----------------------------------------------------------------


def test_the_schema_version_is_recorded(url: tuple[str, str | None]) -> None:
    repository = open_repository(url)
    try:
        assert repository.schema_version == SCHEMA_VERSION
    finally:
        repository.close()


def _set_version(repository: SqlRepository, version: int) -> None:
    with repository._engine.begin() as conn:
        conn.execute(sa.update(schema.schema_table).values(version=version))


def test_a_newer_schema_is_refused_with_a_clear_error(url: tuple[str, str | None]) -> None:
    repository = open_repository(url)
    _set_version(repository, SCHEMA_VERSION + 1)
    repository.close()
    with pytest.raises(ConfigError, match=r"newer than this leadfunnel understands") as err:
        open_repository(url)
    assert f"version {SCHEMA_VERSION + 1}" in str(err.value)
    assert "upgrade leadfunnel" in str(err.value)


def test_an_older_schema_is_upgraded_in_order(
    url: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = open_repository(url)
    lead = Funnel(repository).add(Lead(**person(1)))
    repository.close()
    ran: list[int] = []

    def migration(version: int) -> Any:
        def upgrade(conn: sa.Connection) -> None:
            assert conn.execute(sa.select(schema.schema_table.c.version)).scalar() == (
                SCHEMA_VERSION
            )
            ran.append(version)

        return upgrade

    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 2)
    monkeypatch.setitem(schema.MIGRATIONS, SCHEMA_VERSION + 1, migration(SCHEMA_VERSION + 1))
    monkeypatch.setitem(schema.MIGRATIONS, SCHEMA_VERSION + 2, migration(SCHEMA_VERSION + 2))
    upgraded = open_repository(url)
    try:
        assert ran == [SCHEMA_VERSION + 1, SCHEMA_VERSION + 2]
        assert upgraded.schema_version == SCHEMA_VERSION + 2
        assert upgraded.get(lead.id) == lead
    finally:
        upgraded.close()
    again = open_repository(url)
    again.close()
    assert len(ran) == 2  # nothing runs twice


def test_a_version_1_database_is_upgraded_to_version_2(url: tuple[str, str | None]) -> None:
    """Version 2 added the opportunities' appointment_at and lost_reason columns (filled
    from each row's document) and the steps' (step, subject_id, at) index."""
    repository = open_repository(url)
    clock = ManualClock(T0)
    funnel = Funnel(repository, clock=clock)
    lead = funnel.capture(Lead(**person(1)))
    no_show = funnel.set_appointment(lead, appointment_at=T0 + timedelta(days=1), force=True)
    lost = funnel.lose(
        funnel.set_appointment(no_show.contact_id, appointment_at=T0 + timedelta(days=2)),
        reason="no_show",
    )
    # Take the database back to version 1.
    deals = _table_name(repository, url, schema.opportunities)
    index = next(i for i in schema.steps.indexes if i.name == "ix_lf_steps_step_subject")
    with repository._engine.begin() as conn:
        index.drop(conn)
        for column in ("appointment_at", "lost_reason", "closed_at"):
            conn.exec_driver_sql(f"ALTER TABLE {deals} DROP COLUMN {column}")
        conn.execute(sa.update(schema.schema_table).values(version=1))
    repository.close()

    upgraded = open_repository(url)
    try:
        assert upgraded.schema_version == SCHEMA_VERSION
        inspector = sa.inspect(upgraded._engine)
        names = {c["name"] for c in inspector.get_columns("lf_opportunities", schema=url[1])}
        assert {"appointment_at", "lost_reason"} <= names
        indexes = {i["name"] for i in inspector.get_indexes("lf_steps", schema=url[1])}
        assert "ix_lf_steps_step_subject" in indexes
        later = Funnel(upgraded, clock=ManualClock(T0 + timedelta(days=5)))
        pulled = later.rep_list("not_sat")
        assert [(i.id, i.since, i.lost_reason) for i in pulled] == [
            (lost.id, T0 + timedelta(days=2), "no_show"),
            (no_show.id, T0 + timedelta(days=1), None),
        ]
    finally:
        upgraded.close()


def test_a_version_3_database_is_upgraded_to_version_4(url: tuple[str, str | None]) -> None:
    """Version 4 added the opportunities' closed_at column, filled from each document:
    a prospect's follow-up runs from it, not from a later edit of the closed deal."""
    repository = open_repository(url)
    clock = ManualClock(T0)
    funnel = Funnel(repository, clock=clock)
    deal = funnel.set_appointment(funnel.add(Contact(**person(1))))
    clock.advance(days=2)
    funnel.lose(deal, reason="price")
    clock.advance(days=5)
    funnel.update(funnel.get_opportunity(deal.id).model_copy(update={"owner": "newrep"}))
    deals = _table_name(repository, url, schema.opportunities)
    with repository._engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {deals} DROP COLUMN closed_at")
        conn.execute(sa.update(schema.schema_table).values(version=3))
    repository.close()

    upgraded = open_repository(url)
    try:
        assert upgraded.schema_version == SCHEMA_VERSION
        later = Funnel(upgraded, clock=clock)
        (item,) = later.due(at=clock.now())
        assert (item.subject_id, item.due_at) == (deal.contact_id, T0 + timedelta(days=3))
    finally:
        upgraded.close()


def test_a_failed_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    SqlRepository(url).close()

    def broken(conn: sa.Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE lf_half_done (x INTEGER)")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(schema.MIGRATIONS, SCHEMA_VERSION + 1, broken)
    with pytest.raises(RuntimeError, match="migration bug"):
        SqlRepository(url)
    monkeypatch.undo()
    repository = SqlRepository(url)
    try:
        assert repository.schema_version == SCHEMA_VERSION
        assert not sa.inspect(repository._engine).has_table("lf_half_done")
    finally:
        repository.close()


def test_foreign_tables_without_a_version_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE lf_schema (id INTEGER PRIMARY KEY, version INTEGER)")
    with pytest.raises(ConfigError, match="no schema version"):
        SqlRepository(f"sqlite:///{path}")


# --- errors -------------------------------------------------------------------------


def test_a_locked_database_raises_storage_error_not_a_driver_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    repository = SqlRepository(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="database is locked") as err:
            Funnel(repository).add(Lead(**person(1)))
        assert isinstance(err.value, LeadFunnelError)
        assert isinstance(err.value.__cause__, sa.exc.OperationalError)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert repository.leads() == []
    repository.close()


def test_a_broken_database_raises_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    repository = SqlRepository(f"sqlite:///{path}")
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TABLE lf_steps")
        raw.execute("DROP TABLE lf_events")
    try:
        with pytest.raises(StorageError, match="no such table"):
            repository.history(uuid4())
        with pytest.raises(StorageError):
            Funnel(repository).add(Lead(**person(1)))
        assert repository.leads() == []  # the failed add left nothing
    finally:
        repository.close()


def test_a_race_lost_at_the_unique_key_is_a_duplicate_error(tmp_path: Path) -> None:
    """The key index, not only the pre-check, refuses a person stored meanwhile."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    a, b = SqlRepository(url), SqlRepository(url)
    try:
        winner = Funnel(a).add(Lead(**person(1)))
        late = Lead(**person(2, email=winner.email)).model_copy(
            update={"version": 1, "status_at": T0}
        )
        with pytest.raises(DuplicateError) as err:
            b.commit(ChangeSet(inserts=[late]))
        assert err.value.existing_id == winner.id
    finally:
        a.close()
        b.close()


def test_a_race_lost_at_the_unique_key_logs_nothing_of_the_drivers(
    url: tuple[str, str | None], caplog: pytest.LogCaptureFixture
) -> None:
    """A form submitted several times at once: one capture adds the person, the others
    find them, and nothing is logged. On PostgreSQL an insert of a few rows went through
    psycopg's pipelined executemany, which logged "error ignored terminating
    <psycopg.Pipeline ...>" whenever a key insert lost the race (in about one round of
    ten here), on top of the DuplicateError the capture handles."""
    repository = open_repository(url)
    funnel = Funnel(repository)
    try:
        with caplog.at_level(logging.DEBUG):
            for round in range(10):
                start = threading.Barrier(4)
                captured: list[UUID] = []

                def capture(
                    n: int, round: int = round, start: Any = start, into: Any = captured
                ) -> None:
                    start.wait()
                    fields = person(round, first_name=f"T{n}", phone=f"+1512555{round:04d}")
                    into.append(funnel.capture(Lead(**fields)).id)

                threads = [threading.Thread(target=capture, args=(n,)) for n in range(4)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                assert len(captured) == 4
                assert len(set(captured)) == 1
        assert funnel.count("lead") == 10
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    finally:
        repository.close()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("not a url", "is not a database URL"),
        ("oracle://scott@localhost/xe", "SQLite, PostgreSQL or MariaDB"),
        ("postgresql+nosuchdriver://u@localhost/db", "install leadfunnel"),
        ("sqlite:////nonexistent-dir/sub/funnel.db", "cannot open the database"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot open the database"),
    ],
)
def test_a_bad_url_raises_config_error(bad: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SqlRepository(bad)


def test_the_password_is_never_shown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        SqlRepository("postgresql+psycopg://user:s3cret@127.0.0.1:1/none")
    assert "s3cret" not in str(err.value)
    repository = SqlRepository(f"sqlite:///{tmp_path / 'r.db'}")
    assert "r.db" in repr(repository)
    repository.close()


def test_an_engine_can_be_passed_in(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'e.db'}")
    repository = SqlRepository(engine)
    try:
        lead = Funnel(repository).add(Lead(**person(1)))
        assert repository.get(lead.id) == lead
    finally:
        repository.close()


def test_a_private_memory_database_works_across_threads() -> None:
    repository = SqlRepository("sqlite://")
    funnel = Funnel(repository)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(10):
                funnel.add(Lead(**person(100 * worker + n)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(funnel.leads()) == 30
    repository.close()


def test_import_stores_in_chunks_and_reports_every_row(tmp_path: Path) -> None:
    repository = SqlRepository(f"sqlite:///{tmp_path / 'i.db'}")
    funnel = Funnel(repository)
    avoided = funnel.add(Lead(**person(0, status=LeadStatus.AVOID)))
    rows: list[dict[str, Any]] = [person(n) for n in range(1, 2501)]
    rows[10] = person(10_000, email="broken")
    rows[20] = person(20_000, email=rows[5]["email"])
    rows[2400] = person(30_000, email=avoided.email)
    report = funnel.import_leads(rows, chunk_size=1000)
    try:
        assert len(report.added) == 2497
        assert [i.row for i in report.rejected] == [11]
        assert [i.row for i in report.duplicates] == [21]
        assert [(i.row, i.existing_id) for i in report.avoided] == [(2401, avoided.id)]
        assert len(repository.leads(status=LeadStatus.RAW)) == 2497
        steps = {row.step: row.count for row in repository.step_counts(since=None, until=None)}
        assert steps == {"raw": 2497}
    finally:
        repository.close()


def test_several_processes_may_create_the_tables_at_once(url: tuple[str, str | None]) -> None:
    opened: list[SqlRepository] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def open_one() -> None:
        try:
            start.wait()
            opened.append(open_repository(url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert {r.schema_version for r in opened} == {SCHEMA_VERSION}
    finally:
        for repository in opened:
            repository.close()


class _DriverError(Exception):
    sqlstate: str | None = None


@pytest.mark.parametrize(
    ("orig", "expected"),
    [
        (type("PgDeadlock", (_DriverError,), {"sqlstate": "40P01"})("deadlock detected"), "race"),
        (type("PgSerial", (_DriverError,), {"sqlstate": "40001"})("could not serialize"), "race"),
        (_DriverError(1213, "Deadlock found when trying to get lock"), "race"),
        (_DriverError(1205, "Lock wait timeout exceeded"), "race"),
        (_DriverError("disk I/O error"), "storage"),
    ],
)
def test_lost_races_and_other_driver_errors_are_translated(orig: Exception, expected: str) -> None:
    from leadfunnel._sql._engine import translated

    lead = Lead(**person(1)).model_copy(update={"version": 2})
    error = sa.exc.OperationalError("UPDATE lf_leads ...", {}, orig)
    with pytest.raises(LeadFunnelError) as caught, translated(ChangeSet(updates=[lead])):
        raise error
    if expected == "race":
        assert isinstance(caught.value, ConcurrencyError)
        assert caught.value.id == lead.id
    else:
        assert isinstance(caught.value, StorageError)
        assert "disk I/O error" in str(caught.value)
    assert caught.value.__cause__ is error


def test_two_importers_racing_store_each_person_once(url: tuple[str, str | None]) -> None:
    """Chunks big enough for bulk paths (COPY on PostgreSQL) lose races cleanly too."""
    repositories = [open_repository(url) for _ in range(2)]
    rows = [{"email": f"p{n}@shared.example.com", "last_name": "Same"} for n in range(400)]
    start = threading.Barrier(2)
    reports: list[Any] = []
    errors: list[BaseException] = []

    def run(repository: SqlRepository) -> None:
        try:
            start.wait()
            reports.append(Funnel(repository).import_leads(rows, chunk_size=100))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in repositories]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert sum(len(r.added) for r in reports) == 400
        assert sum(len(r.duplicates) for r in reports) == 400
        assert len(repositories[0].leads()) == 400
        assert len(repositories[0].find_keys(f"email:{row['email']}" for row in rows)) == 400
    finally:
        for repository in repositories:
            repository.close()


def _table_name(repository: SqlRepository, where: tuple[str, str | None], table: sa.Table) -> str:
    """``table``'s name as SQL for ``repository``'s database, quoted, in its schema."""
    preparer = repository._engine.dialect.identifier_preparer
    quoted = preparer.quote(table.name)
    return quoted if where[1] is None else f"{preparer.quote_schema(where[1])}.{quoted}"


def _back_to_version_1(repository: SqlRepository, where: tuple[str, str | None]) -> None:
    """Undo what versions 2 to 4 and 9 added, as a database written by leadfunnel 0.1
    had it."""

    def name(table: sa.Table) -> str:
        return _table_name(repository, where, table)

    with repository._engine.begin() as conn:
        for table, index in [
            (schema.steps, "ix_lf_steps_step_subject"),
            (schema.events, "ux_lf_events_position"),
            (schema.events, "ix_lf_events_history"),
            *((t, f"ix_{t.name}_created") for t in schema.RECORD_TABLES.values()),
            (schema.tags, "ix_lf_tags_tag_created"),
        ]:
            next(i for i in table.indexes if i.name == index).drop(conn)
        tags = sa.Table(schema.tags.name, sa.MetaData(), sa.Column("tag"), sa.Column("record_id"))
        sa.Index("ix_lf_tags_tag", tags.c.tag, tags.c.record_id).create(conn)
        for table in schema.RECORD_TABLES.values():
            stand_in = sa.Table(table.name, sa.MetaData(), sa.Column("created_at"))
            sa.Index(f"ix_{table.name}_created_at", stand_in.c.created_at).create(conn)
        next(i for i in schema.merges.indexes if i.name == "ix_lf_merges_other_id").drop(conn)
        for table, column in [
            (schema.opportunities, "appointment_at"),
            (schema.opportunities, "lost_reason"),
            (schema.opportunities, "closed_at"),
            (schema.events, "position"),
            (schema.leads, "erased_at"),
            (schema.contacts, "erased_at"),
            (schema.merges, "other_id"),
            (schema.tags, "created_at"),
        ]:
            conn.exec_driver_sql(f"ALTER TABLE {name(table)} DROP COLUMN {column}")
        old = sa.Table(
            schema.events.name, sa.MetaData(), *(sa.Column(c) for c in ("subject_id", "at", "seq"))
        )
        sa.Index("ix_lf_events_subject", *old.c).create(conn)
        for table in (schema.counters, schema.suppressions, schema.secrets):
            table.drop(conn)
        conn.execute(sa.update(schema.schema_table).values(version=1))


class _Interrupted(Exception):
    pass


_CHANGES = frozenset({"ALTER", "CREATE", "DROP", "INSERT", "UPDATE", "DELETE"})


def test_version_8_counts_leads_qualified_other_than_from_raw_as_raw(
    url: tuple[str, str | None],
) -> None:
    """Before version 8 a lead qualified after being disqualified from a farm list
    reached ``qualified`` but never ``raw``: the report showed more qualified leads
    than raw ones. The upgrade adds the missing raw rows (once: a second run adds
    nothing)."""
    repository = open_repository(url)
    funnel = Funnel(repository, clock=ManualClock(T0))
    stored, farmed = (funnel.add(Lead(**person(n), status="farm_list")) for n in (1, 2))
    for lead in (stored, farmed):
        funnel.disqualify(lead)
        funnel.qualify(lead, force=True)
    funnel.capture(Lead(**person(3)))
    assert funnel.report().steps["raw"].count == 3
    with repository._engine.begin() as conn:  # what version 7 stored
        conn.execute(
            sa.delete(schema.steps).where(
                schema.steps.c.step == "raw",
                schema.steps.c.subject_id.in_([stored.id, farmed.id]),
            )
        )
        conn.execute(sa.update(schema.schema_table).values(version=7))
    assert funnel.report().steps["raw"].count == 1
    repository.close()
    for _ in range(2):  # the second opening finds nothing left to add
        upgraded = open_repository(url)
        try:
            assert upgraded.schema_version == SCHEMA_VERSION
            report = Funnel(upgraded).report()
            assert (report.steps["raw"].count, report.steps["qualified"].count) == (3, 2)
            with upgraded._engine.connect() as conn:
                rows = conn.execute(
                    sa.select(sa.func.count()).where(schema.steps.c.step == "raw")
                ).scalar_one()
            assert rows == 3
        finally:
            upgraded.close()


@pytest.mark.slow  # scheduled first: see conftest
def test_version_5_drops_the_unqualified_milestone_of_leads_never_raw(
    url: tuple[str, str | None],
) -> None:
    """Before version 5 a farm-list lead disqualified reached the ``unqualified``
    milestone, which the unqualified share of raw leads counted (200% with two such
    leads and one raw): the upgrade removes those rows and keeps the raw lead's."""
    repository = open_repository(url)
    funnel = Funnel(repository, clock=ManualClock(T0))
    farmed = funnel.add(Lead(**person(1), status="farm_list"))
    funnel.disqualify(farmed)
    raw = funnel.capture(Lead(**person(2)))
    funnel.disqualify(raw)
    assert funnel.report().checks["unqualified_share"].value == 1.0
    (disqualified,) = (e for e in funnel.history(farmed) if e.name == "disqualify")
    with repository._engine.begin() as conn:  # what version 4 stored
        conn.execute(
            sa.insert(schema.steps).values(
                event_id=disqualified.id,
                subject_id=farmed.id,
                step="unqualified",
                at=disqualified.at,
                month=disqualified.at.strftime("%Y-%m"),
            )
        )
        conn.execute(sa.update(schema.schema_table).values(version=4))
    assert funnel.report().checks["unqualified_share"].value == 2.0
    repository.close()
    upgraded = open_repository(url)
    try:
        assert upgraded.schema_version == SCHEMA_VERSION
        assert Funnel(upgraded).report().checks["unqualified_share"].value == 1.0
    finally:
        upgraded.close()


def test_an_upgrade_interrupted_after_any_statement_finishes_on_the_next_open(
    url: tuple[str, str | None],
) -> None:
    """MariaDB commits each DDL statement on its own: an upgrade cut off half way must
    finish on the next open, whichever statement it was cut off after."""
    version_1 = _Version1(url)
    changes = _upgrade_cut_before(version_1, None)  # not cut: counts the upgrade's changes
    assert changes > 8  # so it really is cut at many places below
    if url[0].startswith("mysql"):
        stops: Iterable[int] = range(1, changes + 1)
    else:
        # PostgreSQL and SQLite upgrade in one transaction, which a cut anywhere undoes
        # whole: the first, middle and last cuts stand for the others.
        stops = sorted({1, 2, changes // 2, changes - 1, changes})
    for stop in stops:
        assert _upgrade_cut_before(version_1, stop) == stop - 1


class _Version1:
    """A version 1 database with some history at ``url``, as leadfunnel 0.1 left it,
    put back before each upgrade (``restore``).

    Made afresh each time on PostgreSQL. SQLite's file and MariaDB's tables (their
    ``SHOW CREATE TABLE`` and rows: new tables, as MariaDB counts every column ever
    added to a table against its row size) are kept once made and put back as they
    were, checked equal: the same database, without remaking it from a new one (60
    DDL statements) for each of the 27 cuts."""

    def __init__(self, url: tuple[str, str | None]) -> None:
        self.url = url
        self.kind = "mysql" if url[0].startswith("mysql") else url[0].split(":")[0]
        self.lead: Lead | Contact
        self.deal: Any
        self.tagged: list[Lead | Contact] = []
        self.before: list[tuple[str, UUID]] = []
        self._file: bytes | None = None  # SQLite's
        self._tables: dict[str, tuple[str, list[tuple[Any, ...]]]] | None = None  # MariaDB's

    def restore(self) -> None:
        if self._file is not None:
            path = Path(sa.make_url(self.url[0]).database or "")
            for log in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                log.unlink(missing_ok=True)
            path.write_bytes(self._file)
            return
        if self._tables is not None:
            engine = sa.create_engine(self.url[0], hide_parameters=True)
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")
                    if found := list(_mariadb_tables(conn)):
                        conn.exec_driver_sql(f"DROP TABLE {', '.join(found)}")
                    for name, (create, rows) in self._tables.items():
                        conn.exec_driver_sql(create)
                        if rows:
                            marks = ", ".join(["%s"] * len(rows[0]))
                            conn.exec_driver_sql(f"INSERT INTO `{name}` VALUES ({marks})", rows)
                    assert _mariadb_tables(conn) == self._tables  # put back as it was
            finally:
                engine.dispose()
            return
        self._make()
        if self.kind == "sqlite":
            path = Path(sa.make_url(self.url[0]).database or "")
            assert not path.with_name(path.name + "-wal").exists()  # all in the file
            self._file = path.read_bytes()
        elif self.kind == "mysql":
            engine = sa.create_engine(self.url[0], hide_parameters=True)
            try:
                with engine.connect() as conn:
                    self._tables = _mariadb_tables(conn)
            finally:
                engine.dispose()

    def _make(self) -> None:
        url = self.url
        repository = open_repository(url)
        with repository._engine.begin() as conn:
            schema.metadata.drop_all(conn)
        repository.close()
        repository = open_repository(url)
        funnel = Funnel(repository, clock=ManualClock(T0))
        self.lead = funnel.capture(Lead(**person(1, tags={"vip"})))
        self.tagged = [funnel.capture(Lead(**person(n, tags={"vip"}))) for n in (2, 3)]
        funnel.qualify(self.lead, force=True)
        self.deal = funnel.set_appointment(self.lead, appointment_at=T0 + timedelta(days=1))
        self.before = [(e.name, e.subject_id) for e in funnel.history(self.lead)]
        _back_to_version_1(repository, url)
        repository.close()


def _mariadb_tables(conn: sa.Connection) -> dict[str, tuple[str, list[tuple[Any, ...]]]]:
    """Each table of ``conn``'s MariaDB database: its ``SHOW CREATE TABLE`` and rows."""
    names = conn.exec_driver_sql("SHOW TABLES").scalars().all()
    return {
        name: (
            conn.exec_driver_sql(f"SHOW CREATE TABLE `{name}`").one()[1],
            [tuple(row) for row in conn.exec_driver_sql(f"SELECT * FROM `{name}`")],
        )
        for name in names
    }


def _upgrade_cut_before(version_1: _Version1, stop: int | None) -> int:
    """Upgrade a version 1 database with some history, cut off before its ``stop``-th
    statement that changes something (never, for None); check that the next open
    finishes the upgrade and loses nothing. How many changes ran before the cut."""
    url = version_1.url
    version_1.restore()
    lead, deal, before = version_1.lead, version_1.deal, version_1.before

    ran = _open_cut_before(url, stop)

    upgraded = open_repository(url)
    try:
        assert upgraded.schema_version == SCHEMA_VERSION
        again = Funnel(upgraded, clock=ManualClock(T0 + timedelta(days=5)))
        assert [(e.name, e.subject_id) for e in again.history(lead)] == before
        assert [i.id for i in again.rep_list("not_sat")] == [deal.id]
        # Version 9: the tag rows hold their person's created_at; a page by tag is in
        # list order.
        vip = sorted([lead, *version_1.tagged], key=lambda r: (r.created_at, r.id))
        assert [r.id for r in again.leads(tag="vip")] == [r.id for r in vip]
        assert [r.id for r in again.leads(tag="vip", after=vip[0].id, limit=1)] == [vip[1].id]
        later = again.touch(deal.contact_id, "call", "connected")
        positions = [e.position or 0 for e in again.events()]
        assert positions == sorted(set(positions))
        assert again.events()[-1].data["touch_id"] == str(later.id)
    finally:
        upgraded.close()
    return ran


def _open_cut_before(url: tuple[str, str | None], stop: int | None) -> int:
    """Open the database (creating or upgrading its tables), cut off before the
    ``stop``-th statement that changes something (never, for None); how many changes
    ran before the cut."""
    engine = sa.create_engine(url[0], hide_parameters=True)
    ran = [0]

    def cut(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # Cut before a statement that changes something: a cut before a read is the
        # same as one before the next change.
        if statement.lstrip().split(" ", 1)[0].upper() in _CHANGES:
            if ran[0] + 1 == stop:
                raise _Interrupted
            ran[0] += 1

    sa.event.listen(engine, "before_cursor_execute", cut)
    with contextlib.suppress(_Interrupted):
        SqlRepository(engine, schema=url[1]).close()
    engine.dispose()
    return ran[0]


def test_a_first_opening_cut_off_at_its_end_finishes_on_the_next_open(
    url: tuple[str, str | None],
) -> None:
    """MariaDB commits each CREATE on its own: an opening cut off after it made the
    version table, before the row that records the version, left tables that no later
    opening accepted. The next opening that may migrate now finishes it; one that may
    not says so; and tables that are not all leadfunnel's stay refused."""
    changes = _open_cut_before(url, None)
    repository = open_repository(url)
    with repository._engine.begin() as conn:
        schema.metadata.drop_all(conn)
    repository.close()
    assert _open_cut_before(url, changes) == changes - 1  # the version row's INSERT
    if url[0].startswith("mysql"):
        with pytest.raises(ConfigError, match="no schema version"):
            SqlRepository(url[0], schema=url[1], migrate="check")
    finished = open_repository(url)
    try:
        assert finished.schema_version == SCHEMA_VERSION
        funnel = Funnel(finished, clock=ManualClock(T0))
        lead = funnel.capture(Lead(**person(1)))
        assert [e.position for e in funnel.history(lead)] == [1]
        funnel.avoid(lead)  # the suppression secret is there
    finally:
        finished.close()

    # The same cut, where a table is not as this leadfunnel makes it: still refused.
    repository = open_repository(url)
    with repository._engine.begin() as conn:
        schema.metadata.drop_all(conn)
    repository.close()
    _open_cut_before(url, changes)
    if url[0].startswith("mysql"):
        with sa.create_engine(url[0]).begin() as conn:
            conn.exec_driver_sql("ALTER TABLE lf_tags ADD COLUMN note TEXT")
        with pytest.raises(ConfigError, match="lf_tags are missing or not as"):
            open_repository(url)


_WRITER = """
import sys
from leadfunnel import Funnel, Lead, SqlRepository
url, schema, worker = sys.argv[1], sys.argv[2] or None, int(sys.argv[3])
funnel = Funnel(SqlRepository(url, schema=schema))
print("ready", flush=True)
sys.stdin.readline()  # all the writers start together
for n in range(25):
    lead = funnel.capture(Lead(first_name="W", email=f"w{worker}.{n}@writers.example.com"))
    funnel.touch(lead, "call", "no_answer")
"""


@pytest.mark.slow  # scheduled first: see conftest
def test_a_reader_never_misses_an_event_committed_by_other_processes(
    url: tuple[str, str | None],
) -> None:
    """Writers in other processes commit out of start order; the reader in this one
    keeps its last position and asks again, and sees every event exactly once. (The
    writers start writing together, once all have started: the reader asks without
    pause from then on, not through the second the three take to start.)"""
    repository = open_repository(url)
    writers: list[subprocess.Popen[str]] = []
    try:
        writers.extend(
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, url[0], url[1] or "", str(w)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in range(3)
        )
        for w in writers:
            assert w.stdout is not None
            ready = w.stdout.readline()
            assert ready == "ready\n", ready + (w.stderr.read() if w.stderr else "")
        for w in writers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.close()
        seen: list[Any] = []
        last = 0
        while True:
            finished = all(w.poll() is not None for w in writers)
            batch = repository.events(after=last, limit=40)
            seen.extend(batch)
            if batch:
                last = batch[-1].position or 0
            elif finished:
                break
        for w in writers:
            assert w.wait() == 0, w.stderr.read() if w.stderr else ""
        stored = repository.events(after=0, limit=None)
        assert len(stored) == 3 * 25 * 2
        assert [e.id for e in seen] == [e.id for e in stored]
    finally:
        for w in writers:
            if w.poll() is None:  # a failure above: none is left waiting to start
                w.kill()
            w.wait()
        repository.close()


def test_the_applications_own_sql_commits_or_rolls_back_with_the_funnel(
    url: tuple[str, str | None],
) -> None:
    repository = open_repository(url)
    other = open_repository(url)  # another connection pool, as another process would be
    notes = sa.Table("app_notes", sa.MetaData(), sa.Column("text", sa.String(100)))
    try:
        with repository._engine.begin() as conn:
            notes.create(conn)
        funnel = Funnel(repository)

        def note_and_add(n: int, fail: bool) -> None:
            with funnel.transaction():
                repository.connection.execute(sa.insert(notes).values(text=f"note {n}"))
                funnel.add(Lead(**person(n)))
                # Nothing is visible outside the transaction before it commits.
                assert Funnel(other).leads() == []
                if fail:
                    raise RuntimeError("the request failed")

        with pytest.raises(RuntimeError):
            note_and_add(1, fail=True)
        note_and_add(2, fail=False)
        with repository._engine.connect() as conn:
            assert conn.execute(sa.select(notes.c.text)).scalars().all() == ["note 2"]
        assert [lead.email for lead in Funnel(other).leads()] == [person(2)["email"]]
        with pytest.raises(InvalidArgumentError, match="no transaction is open"):
            _ = repository.connection
    finally:
        with repository._engine.begin() as conn:
            notes.drop(conn)
        other.close()
        repository.close()


def test_check_refuses_a_database_without_the_current_schema(
    url: tuple[str, str | None], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"no leadfunnel tables|no database file"):
        SqlRepository(url[0], schema=url[1], migrate="check")
    open_repository(url).close()  # auto (the default) creates them
    checked = SqlRepository(url[0], schema=url[1], migrate="check")
    checked.close()
    repository = open_repository(url)
    _set_version(repository, 2)
    repository.close()
    with pytest.raises(ConfigError, match=r"version 2, older .*leadfunnel migrate"):
        SqlRepository(url[0], schema=url[1], migrate="check")
    untouched = SqlRepository(url[0], schema=url[1], migrate="never")
    assert untouched.schema_version == 2  # never: read, not upgraded
    untouched.close()


def test_check_never_creates_a_sqlite_file(tmp_path: Path) -> None:
    typo = tmp_path / "funnle.db"
    with pytest.raises(ConfigError, match="no database file"):
        SqlRepository(f"sqlite:///{typo}", migrate="check")
    assert not typo.exists()
    with pytest.raises(InvalidArgumentError, match="auto, check, never"):
        SqlRepository(f"sqlite:///{typo}", migrate="sometimes")  # type: ignore[arg-type]


def test_a_sqlite_file_another_process_holds_says_so(tmp_path: Path) -> None:
    """ "database is locked" is another writer holding the file, not a wrong URL or a
    server that is down: the error says to let it finish."""
    path = tmp_path / "held.db"
    SqlRepository(f"sqlite:///{path}").close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
        with pytest.raises(ConfigError, match="another process is writing to it") as err:
            SqlRepository(engine, migrate="auto")
        assert "check the URL" not in str(err.value)
        engine.dispose()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
