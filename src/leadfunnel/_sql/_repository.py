"""``SqlRepository``: the storage port on SQLAlchemy 2 Core (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import functools
import itertools
import math
import operator
import os
import secrets
import sqlite3
import threading
import time
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, NoReturn, TypeVar, cast
from uuid import UUID

import pydantic
import pydantic_core
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.functions import FunctionElement

from .._clock import require_aware
from .._enums import Channel, ContactType, LeadStatus, Outcome, Stage
from .._errors import (
    AvoidListedError,
    ConcurrencyError,
    ConfigError,
    DuplicateError,
    InvalidArgumentError,
    LeadFunnelError,
    NotFoundError,
    StorageError,
)
from .._lifecycle import TIMED_STEPS, funnel_steps
from .._models import (
    Contact,
    Event,
    Lead,
    Opportunity,
    Record,
    SubjectKind,
    Touch,
    holds_keys,
    identity_keys,
    is_avoided,
    placed,
)
from .._periods import month_of
from .._repository import (
    DO_NOT_CALL,
    NO_VALUE,
    TRAIT_KEY_LENGTH,
    ChangeSet,
    Cursor,
    FollowUpCandidate,
    FollowUpStats,
    GroupBy,
    MergeLog,
    RepListKind,
    RepListRow,
    Repository,
    StageTime,
    StepCount,
    check_grouping,
    check_rep_list,
    json_value,
    missing_value,
    read_changed,
    refuse_suppressed,
    text_filter,
    trait_key,
    where_values,
)
from . import _schema as s
from ._documents import stored_aliases, stored_validator

__all__ = ["SqlRepository"]

_T = TypeVar("_T")
_RESETS = (Outcome.REPLIED.value, Outcome.INTERESTED.value)
_OPEN_STAGES = tuple(st.value for st in Stage if st not in (Stage.WON, Stage.LOST))
_BATCH = 500  # ids per IN (...) list
_COPY_FROM = 16  # rows from which PostgreSQL inserts go through COPY
_SQLITE_BUSY_SECONDS = 30.0
_MIGRATE = ("auto", "check", "never")
_DRIVERS = {
    "postgresql": "leadfunnel[postgres] (psycopg)",
    "mysql": "leadfunnel[mysql] (PyMySQL)",
    "mariadb": "leadfunnel[mysql] (PyMySQL)",
}


def _dumps(value: Any) -> str:
    # Documents arrive already serialised by pydantic (model_dump_json is several times
    # faster than json.dumps of model_dump); anything else is encoded here.
    if isinstance(value, str):
        return value
    return pydantic_core.to_json(value).decode()


def _loads(value: Any) -> Any:
    return pydantic_core.from_json(value)


def _batches(items: Sequence[_T], size: int = _BATCH) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlRepository(Repository):
    """The funnel's records in a SQL database, through SQLAlchemy 2 Core.

    ``url`` is a SQLAlchemy URL (or an :class:`~sqlalchemy.engine.Engine`):
    ``sqlite:///funnel.db`` (the embedded default), ``postgresql+psycopg://user@host/db``
    (extra ``leadfunnel[postgres]``) or ``mysql+pymysql://user@host/db`` (MariaDB or
    MySQL, extra ``leadfunnel[mysql]``). ``schema`` puts the tables in that schema (a
    PostgreSQL schema, a MySQL database), which must exist. The tables are created on
    first use and upgraded when an older version of leadfunnel wrote them; a database
    written by a newer version is refused with :class:`~leadfunnel.ConfigError`.

    Every :meth:`commit` is one transaction; versions are checked by the ``UPDATE``
    itself, and identity keys by a unique index, so concurrent writers in other threads
    or processes are caught too. Safe to share between threads.
    """

    def __init__(
        self,
        url: str | sa.URL | Engine,
        *,
        schema: str | None = None,
        migrate: Literal["auto", "check", "never"] = "auto",
        **engine_options: Any,
    ) -> None:
        if migrate not in _MIGRATE:
            raise InvalidArgumentError(
                f"migrate={migrate!r}; use one of: {', '.join(_MIGRATE)} "
                "(auto creates or upgrades the tables, check refuses a database without "
                "the current schema, never leaves the schema alone)"
            )
        self.migrate = migrate
        if migrate == "check":
            _refuse_a_missing_sqlite_file(url)
        self._engine = _make_engine(url, engine_options)
        self.url = self._engine.url
        self.dialect = self._engine.dialect.name
        if schema is not None:
            self._engine = self._engine.execution_options(schema_translate_map={None: schema})
        self.schema = schema
        # A private in-memory SQLite database is one connection: serialise its users.
        memory = self.dialect == "sqlite" and isinstance(self._engine.pool, StaticPool)
        self._serial: AbstractContextManager[Any] = threading.RLock() if memory else nullcontext()
        self._writer = self._engine.execution_options(leadfunnel_write=True)
        self._local = threading.local()
        self._driver = _DriverStatements(self._engine.dialect, schema)
        # Ids as the driver sends and returns them (16 bytes on SQLite and MariaDB).
        self._raw_id = self._driver.converter(s.leads.c.id) or _same
        # ... and as a statement's parameter only (the driver's fastest form).
        self._bound_id = self._driver.converter(s.leads.c.id, bound=True) or _same
        self._id_of: Callable[[Any], UUID] = _same if self.dialect == "postgresql" else _uuid_of
        # The list and count statements, built once per shape (see _statement).
        self._lists: dict[tuple[Any, ...], sa.Select[Any]] = {}
        try:
            if migrate != "never":
                with self._serial:
                    self._open_schema()
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"SqlRepository({self.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self._engine.dispose()

    # --- schema -----------------------------------------------------------------------

    def _open_schema(self) -> None:
        attempts = 6
        for attempt in range(attempts):
            try:
                self._open_schema_once()
                return
            except ConfigError as exc:
                # Two processes creating the tables at once: one wins, the other fails
                # or (MySQL commits each CREATE at once) finds them half made; a second
                # look a moment later finds them complete.
                retry = isinstance(exc, _Unversioned) or (
                    self._reached and isinstance(exc.__cause__, sa_exc.DBAPIError)
                )
                if attempt == attempts - 1 or not retry:
                    raise
                time.sleep(0.05 * 2**attempt)

    def _open_schema_once(self) -> None:
        where = self.url.render_as_string(hide_password=True)
        self._reached = False  # a failure before connecting is not worth a retry
        try:
            with self._writer.begin() as conn:
                self._reached = True
                if not sa.inspect(conn).has_table(s.schema_table.name, schema=self.schema):
                    if self.migrate == "check":
                        raise _Missing(
                            f"there are no leadfunnel tables at {where}; check the URL, "
                            "or create them with `leadfunnel migrate` (or "
                            "SqlRepository(url, migrate='auto'))"
                        )
                    # The version table last: once it exists, so do all the others.
                    others = [t for t in s.metadata.sorted_tables if t is not s.schema_table]
                    s.metadata.create_all(conn, tables=others)
                    s.start_counter(conn)
                    s.schema_table.create(conn, checkfirst=True)
                    conn.execute(sa.insert(s.schema_table).values(id=1, version=s.SCHEMA_VERSION))
                    return
                found = conn.execute(sa.select(s.schema_table.c.version)).scalar_one_or_none()
                if found is None:
                    raise _Unversioned(
                        f"the leadfunnel tables at {where} have no schema version; "
                        "they were not written by leadfunnel: use another database or schema"
                    )
                if found > s.SCHEMA_VERSION:
                    raise ConfigError(
                        f"the database at {where} has leadfunnel schema version {found}, "
                        f"newer than this leadfunnel understands ({s.SCHEMA_VERSION}); "
                        "upgrade leadfunnel (pip install -U leadfunnel) to open it"
                    )
                if found < s.SCHEMA_VERSION and self.migrate == "check":
                    raise _Missing(
                        f"the database at {where} has leadfunnel schema version {found}, "
                        f"older than this leadfunnel's ({s.SCHEMA_VERSION}); upgrade it with "
                        "`leadfunnel migrate` (or SqlRepository(url, migrate='auto'))"
                    )
                for version in range(found + 1, s.SCHEMA_VERSION + 1):
                    s.MIGRATIONS[version](conn)
                if found < s.SCHEMA_VERSION:
                    conn.execute(sa.update(s.schema_table).values(version=s.SCHEMA_VERSION))
        except sa_exc.DBAPIError as exc:
            problem = _first_line(exc.orig)
            if "database is locked" in problem:  # SQLite: another connection writes
                advice = (
                    "another process is writing to it (SQLite lets one write at a time, "
                    "and it held the file longer than the timeout): let it finish, or stop "
                    "it, and try again"
                )
            else:
                advice = (
                    "check the URL, that the server is running and that the user may create tables"
                )
            raise ConfigError(f"cannot open the database at {where}: {problem}; {advice}") from exc

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        with self._read() as conn:
            return int(conn.execute(sa.select(s.schema_table.c.version)).scalar_one())

    # --- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        current = self._current()
        if current is not None:  # inside a transaction: read what it wrote
            self._refuse_lost()
            with _translated():
                yield current
            return
        with self._serial, _translated(), self._engine.connect() as conn:
            yield conn

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine: for the application's own tables and queries beside
        leadfunnel's (see :attr:`connection` to share a transaction)."""
        return self._engine

    @property
    def connection(self) -> Connection:
        """The SQLAlchemy connection of this thread's open :meth:`transaction`: run the
        application's own SQL on it, and it commits or rolls back with the funnel's
        changes, as one database transaction. Outside a transaction, an
        :class:`~leadfunnel.InvalidArgumentError`."""
        current = self._current()
        if current is None:
            raise InvalidArgumentError(
                "no transaction is open in this thread: use the connection inside "
                "`with funnel.transaction():`"
            )
        return current

    @contextmanager
    def _noting_loss(self) -> Iterator[None]:
        """Inside a transaction: remember a deadlock that lost the whole of it.

        PostgreSQL undoes only the failed statement, so a savepoint rolls back what
        failed and the block goes on (a use case retries). MySQL and MariaDB roll the
        whole transaction back on a deadlock, savepoints and all: every commit of the
        block is gone, so the block itself lost the race. Each later use of the
        transaction then raises :class:`~leadfunnel.ConcurrencyError`, until the block
        ends and rolls back (retry the whole block)."""
        try:
            yield
        except ConcurrencyError as exc:
            if _whole_transaction_lost(exc):
                self._local.lost = exc
                self._refuse_lost()
            raise

    def _refuse_lost(self) -> None:
        lost: ConcurrencyError | None = getattr(self._local, "lost", None)
        if lost is not None:
            error = ConcurrencyError(
                lost.id,
                lost.expected,
                lost.found,
                message="the database rolled this transaction back (a deadlock with "
                "another writer), with every change made in it: nothing of the "
                "`with funnel.transaction():` block is stored. Run the whole block again",
            )
            # Retrying one change inside the block cannot help: the block must go.
            setattr(error, "retryable", False)  # noqa: B010 - read by ``retrying``
            raise error from lost

    def _current(self) -> Connection | None:
        """This thread's open transaction's connection, if it is in one."""
        conn: Connection | None = getattr(self._local, "conn", None)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        current = self._current()
        if current is not None:
            self._refuse_lost()
            with self._noting_loss(), _translated(), current.begin_nested():
                yield
            return
        with self._serial, _translated(), self._writer.begin() as conn:
            self._local.conn, self._local.lost = conn, None
            try:
                yield
                # The block went on after the database rolled it all back (a caller
                # caught the ConcurrencyError): commit none of it.
                self._refuse_lost()
            finally:
                self._local.conn = self._local.lost = None

    @contextmanager
    def _writing(self, changes: ChangeSet | None = None) -> Iterator[Connection]:
        """A connection in a transaction of its own, or a savepoint in this thread's
        open transaction (a failed commit then undoes only itself)."""
        current = self._current()
        if current is not None:
            self._refuse_lost()
            with self._noting_loss(), _translated(changes), current.begin_nested():
                yield current
            return
        with self._serial, _translated(changes), self._writer.begin() as conn:
            yield conn

    # --- writes -----------------------------------------------------------------------

    def _commit(self, changes: ChangeSet) -> list[Event]:
        try:
            with self._writing(changes) as conn:
                first = self._apply(conn, changes)
        except sa_exc.IntegrityError as exc:
            self._explain(changes, exc)
        return placed(changes.events, first)

    def _apply(self, conn: Connection, changes: ChangeSet) -> int:
        """Apply ``changes`` in ``conn``'s transaction; return the first event position."""
        first = 0
        released: list[UUID] = []
        for record in changes.deletes:
            where = {"where_id": record.id, "where_version": record.version}
            if conn.execute(_DELETE[record.kind], where).rowcount != 1:
                self._refuse_version(conn, record, record.version)
            released.append(record.id)
        stored = self._lock(conn, changes)
        if changes.touches_read:
            self._check_touches(conn, changes.touches_read)
        if changes.events_read or changes.deals_read:
            self._check_counts(conn, changes)
        held = self._update(conn, changes.updates, stored, changes.read)
        for batch in _batches(released):
            conn.execute(_RELEASE_KEYS, {"ids": list(batch)})
            conn.execute(_RELEASE_TAGS, {"ids": list(batch)})
        self._claim_keys(conn, changes, held)
        for kind, table in s.RECORD_TABLES.items():
            rows = [_record_row(r) for r in changes.inserts if r.kind == kind]
            if rows:
                self._insert(conn, table, rows)
        tag_rows = [
            {"record_id": r.id, "tag": tag}
            for r in changes.records()
            if isinstance(r, (Lead, Contact))
            for tag in r.tags
            if tag not in held.get(r.id, _NOTHING_HELD).tags
        ]
        if tag_rows:
            self._insert(conn, s.tags, tag_rows)
        if changes.touches:
            self._insert(conn, s.touches, [_touch_row(t) for t in changes.touches])
        if changes.events or changes.suppress or changes.unsuppressed:
            # The counter row's lock orders every commit that stores suppressions or
            # must not store a suppressed key: suppressions are written and looked up
            # only once it is held, so a commit after an avoid sees its suppressions.
            first = self._take_positions(conn, len(changes.events))
        if changes.unsuppressed and self._any_suppressed(conn):
            refuse_suppressed(changes, lambda digests: self._suppressions(conn, digests))
        if changes.suppress:
            self._suppress(conn, changes)
        if changes.events:
            self._insert(
                conn,
                s.events,
                [_event_row(e, first + i) for i, e in enumerate(changes.events)],
            )
            step_rows = [
                {
                    "event_id": e.id,
                    "subject_id": e.subject_id,
                    "step": step,
                    "at": e.at,
                    "month": month_of(e.at),
                }
                for e in changes.events
                for step in funnel_steps(e.subject, e.source, e.dest)
            ]
            if step_rows:
                self._insert(conn, s.steps, step_rows)
        for move in changes.moves:
            if not self._exists(conn, move.to_subject_id):
                raise NotFoundError(move.to_subject_id)
            to = move.to_subject_id
            for batch in _batches(move.touch_ids):
                conn.execute(
                    sa.update(s.touches).where(s.touches.c.id.in_(batch)).values(subject_id=to)
                )
            for batch in _batches(move.event_ids):
                conn.execute(
                    sa.update(s.events).where(s.events.c.id.in_(batch)).values(subject_id=to)
                )
                conn.execute(
                    sa.update(s.steps).where(s.steps.c.event_id.in_(batch)).values(subject_id=to)
                )
        for item in changes.rewrites:
            table = s.touches if isinstance(item, Touch) else s.events
            # The document only: subject (moved by merges) and position stay the row's.
            found = conn.execute(
                sa.update(table).where(table.c.id == item.id).values(doc=_document(item))
            ).rowcount
            if found != 1:
                raise NotFoundError(item.id, "touch" if isinstance(item, Touch) else "event")
        for log in changes.rewrite_merges:
            found = conn.execute(
                sa.update(s.merges).where(s.merges.c.id == log.id).values(doc=_merge_doc(log))
            ).rowcount
            if found != 1:
                raise NotFoundError(log.id, "merge log")
        if changes.remove_merge is not None:
            conn.execute(sa.delete(s.merges).where(s.merges.c.id == changes.remove_merge))
        if changes.add_merge is not None:
            log = changes.add_merge
            conn.execute(
                sa.insert(s.merges).values(
                    id=log.id, keep_id=log.keep_id, other_id=log.other.id, doc=_merge_doc(log)
                )
            )
        return first

    def _check_touches(self, conn: Connection, read: dict[UUID, int]) -> None:
        """Refuse the change if a subject has other touches than it was decided on.

        Counted once the subjects' rows are locked (they are in ``checks`` or
        ``updates``), so no other commit adds one before this one ends, and seen as
        committed: PostgreSQL's statements each see what is committed, SQLite has one
        writer, and on MySQL the count is this transaction's first plain read, which
        takes its snapshot now. (A locking count would lock the gaps of the touches'
        index, and deadlock with other subjects' touches being inserted.) Inside a
        ``transaction()`` block on MySQL the block's first read took the snapshot:
        there a touch another process logs meanwhile may go unseen."""
        for subject_id, expected in read.items():
            found = conn.execute(_TOUCH_COUNT, {"subject_id": subject_id}).scalar_one()
            if found != expected:
                raise ConcurrencyError.of_touches(subject_id, expected, found)

    def _check_counts(self, conn: Connection, changes: ChangeSet) -> None:
        """Refuse the change if a subject has other events, or a person other deals,
        than it was decided on: counted as :meth:`_check_touches` counts touches, once
        the rows the change writes (the subjects among them) are locked."""
        for subject_id, expected in changes.events_read.items():
            found = conn.execute(_EVENT_COUNT, {"subject_id": subject_id}).scalar_one()
            if found != expected:
                raise read_changed("events", subject_id, expected, found)
        for record_id, expected in changes.deals_read.items():
            found = conn.execute(_DEAL_COUNT, {"record_id": record_id}).scalar_one()
            if found != expected:
                raise read_changed("deals", record_id, expected, found)

    def _any_suppressed(self, conn: Connection) -> bool:
        """Whether any suppression is stored, read as committed now (a locking read on
        MySQL, whose plain reads see the transaction's snapshot)."""
        query = _ANY_SUPPRESSED_LOCKED if self._locking_reads else _ANY_SUPPRESSED
        return conn.execute(query).first() is not None

    def _suppressions(self, conn: Connection, digests: Iterable[str]) -> dict[str, UUID]:
        """The stored suppressions among ``digests`` (their record ids), read as
        committed now (see :meth:`_any_suppressed`), 500 at a time."""
        t = s.suppressions
        found: dict[str, UUID] = {}
        for batch in _batches(list(digests)):
            query = sa.select(t.c.digest, t.c.record_id).where(t.c.digest.in_(batch))
            if self._locking_reads:
                query = query.with_for_update(read=True)
            found.update((digest, holder) for digest, holder in conn.execute(query))
        return found

    @property
    def _locking_reads(self) -> bool:
        return self.dialect in ("mysql", "mariadb")

    def _take_positions(self, conn: Connection, count: int) -> int:
        """Reserve ``count`` event positions; return the first.

        The counter row is read with a lock that this transaction holds until it
        commits, so the next writer waits and takes the positions after these: positions
        become visible in the order they were handed out, which a reader of the feed
        relies on. (A plain read would see a stale snapshot under MySQL's REPEATABLE
        READ; ``FOR UPDATE`` reads the latest committed value. SQLite has one writer at
        a time already.)
        """
        if self._engine.dialect.update_returning:
            # PostgreSQL, SQLite: one round trip; the UPDATE takes the row lock (and, on
            # PostgreSQL, re-reads the row committed by the writer it waited for).
            last = conn.execute(_MOVE_POSITION_RETURNING, {"count": count}).scalar_one()
            return int(last) - count + 1
        last = conn.execute(_POSITION_FOR_UPDATE).scalar_one()
        conn.execute(_MOVE_POSITION, {"value": last + count})
        return int(last) + 1

    def _suppress(self, conn: Connection, changes: ChangeSet) -> None:
        wanted = {item.digest: item.record_id for item in changes.suppress}
        present = self._suppressions(conn, wanted)
        rows = [{"digest": d, "record_id": r} for d, r in wanted.items() if d not in present]
        self._insert(conn, s.suppressions, rows)

    def _insert(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            # An executemany of no rows is an error on every driver (a person with
            # neither e-mail nor phone claims no key): no statement at all.
            return
        sql, convert = self._driver.prepare(table)
        if self.dialect == "sqlite":
            conn.exec_driver_sql(*self._driver.without_nulls(table, sql, list(map(convert, rows))))
        elif self.dialect != "postgresql":
            conn.exec_driver_sql(sql, [convert(row) for row in rows])
        elif len(rows) >= _COPY_FROM:
            self._copy(conn, table, [convert(row) for row in rows])
        else:
            # One statement of a few rows: psycopg runs an executemany in a pipeline,
            # which logs "error ignored terminating <psycopg.Pipeline ...>" on top of
            # the error itself whenever a row is refused (another writer's key, in a
            # race the caller retries or reports).
            values = [value for row in rows for value in convert(row)]
            conn.exec_driver_sql(self._driver.multi_row_sql(table, len(rows)), tuple(values))

    def _copy(self, conn: Connection, table: sa.Table, rows: list[tuple[Any, ...]]) -> None:
        """Bulk rows through PostgreSQL's ``COPY``, in the commit's transaction."""
        sql = self._driver.copy_sql(table)
        with self._raw_cursor(conn, sql) as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)

    def _update_by_copy(
        self, conn: Connection, table: sa.Table, changed: tuple[int, ...], rows: list[Any]
    ) -> int:
        """Many rows' ``changed`` columns at once on PostgreSQL: the new values go through
        ``COPY`` into a temporary table, then one ``UPDATE ... FROM`` it (where an
        ``executemany`` of ``UPDATE`` costs the client several times as much a row).
        Returns how many rows it updated."""
        create, copy, update, drop = self._driver.copy_update(table, changed)
        with self._raw_cursor(conn, update) as cursor:
            cursor.execute(create)
            with cursor.copy(copy) as writer:
                for row in rows:
                    writer.write_row(row)
            cursor.execute(update)
            done: int = cursor.rowcount
            cursor.execute(drop)
        return done

    @contextmanager
    def _raw_cursor(self, conn: Connection, sql: str) -> Iterator[Any]:
        """A cursor of the driver's own connection, in ``conn``'s transaction (for what
        Core cannot send, such as ``COPY``); a driver error becomes what Core would have
        raised for ``sql`` (``IntegrityError``...)."""
        raw = conn.connection.driver_connection
        assert raw is not None
        dbapi = self._engine.dialect.loaded_dbapi
        try:
            with raw.cursor() as cursor:
                yield cursor
        except dbapi.Error as exc:
            raise sa_exc.DBAPIError.instance(
                sql, None, exc, dbapi.Error, dialect=self._engine.dialect
            ) from exc

    def _refuse_version(self, conn: Connection, record: Record, expected: int) -> None:
        table = s.RECORD_TABLES[record.kind]
        found = conn.execute(sa.select(table.c.version).where(table.c.id == record.id)).scalar()
        if found is None:
            raise NotFoundError(record.id, record.kind)
        raise ConcurrencyError(record.id, expected, found)

    def _lock(self, conn: Connection, changes: ChangeSet) -> dict[Any, tuple[Any, ...]]:
        """Lock the rows of the records ``changes`` updates or checks until the
        transaction ends (SQLite has one writer at a time already), after checking that
        each is at the version the change was decided on; return the updated records'
        rows, as the driver gives them, by the driver's form of the id (see
        :meth:`_update`). A check reads only the version."""
        self._locked(conn, changes.checks, updating=False)
        return self._locked(conn, changes.updates, updating=True)

    def _by_ids(self, conn: Connection, sql: str, ids: Sequence[UUID], *more: Any) -> list[Any]:
        """The rows of ``sql``, a statement for the driver (see :meth:`_DriverStatements.by_ids`)
        whose ``{ids}`` each match ``ids`` and whose other parameters are ``more``, run
        for 500 ids at a time. Sent straight to the driver: a list of ids as SQLAlchemy's
        expanding parameters cost about 1 us an id on SQLite, 3 on PostgreSQL."""
        return self._matching(conn, sql, list(map(self._bound_id, ids)), more)

    def _matching(
        self, conn: Connection, sql: str, values: list[Any], more: tuple[Any, ...] = ()
    ) -> list[Any]:
        """:meth:`_by_ids` for ``values`` already in the driver's form."""
        found: list[Any] = []
        for batch in _batches(values):
            statement, params = self._driver.by_ids(sql, list(batch), more)
            found.extend(conn.exec_driver_sql(statement, params).fetchall())
        return found

    def _locked(
        self, conn: Connection, records: list[Record], *, updating: bool
    ) -> dict[Any, tuple[Any, ...]]:
        rows: dict[Any, tuple[Any, ...]] = {}
        versions: dict[Any, int] = {}
        for kind, table in s.RECORD_TABLES.items():
            ids = [r.id for r in records if r.kind == kind]
            if not ids:
                continue
            if updating:  # the whole row, to compare with the new one
                sql = self._driver.lock_sql(table)
                id_at = self._driver.position(table, "id")
                version_at = self._driver.position(table, "version")
            else:
                sql, id_at, version_at = self._driver.version_sql(table), 0, 1
            for row in self._by_ids(conn, sql, ids):
                rows[row[id_at]] = row
                versions[row[id_at]] = row[version_at]
        for record in records:
            # An update carries the version it makes: one more than the stored one.
            expected = record.version - 1 if updating else record.version
            found = versions.get(self._raw_id(record.id))
            if found is None:
                raise NotFoundError(record.id, record.kind)
            if found != expected:
                raise ConcurrencyError(record.id, expected, found)
        return rows

    def _update(
        self,
        conn: Connection,
        updates: list[Record],
        stored: dict[Any, tuple[Any, ...]],
        read: dict[UUID, Record],
    ) -> dict[UUID, _Held]:
        """Write ``updates`` over their ``stored`` rows: only the columns that changed,
        grouped into one ``executemany`` per set of columns; identity keys and tags only
        where they changed (keys dropped, or their avoided flag moved; tags removed).
        Returns the keys and tags each updated person keeps, which are not written again.
        The keys and tags a person holds are those of its record in ``read``, when that
        is the version the update follows (a commit keeps a person's key and tag rows
        in step with its document), else read from the store.

        New values are converted once, to what the driver is given (and gives back), and
        compared with the stored row as the driver read it."""
        if not updates:
            return {}
        groups: dict[tuple[str, tuple[int, ...]], list[tuple[Any, ...]]] = {}
        for record in updates:
            table = s.RECORD_TABLES[record.kind]
            _, convert = self._driver.prepare(table)
            documents = self._driver.documents(table)
            new = convert(_record_row(record))
            id_at = self._driver.position(table, "id")
            # Looked up as the driver reads it (the row holds a bytearray on SQLite).
            old = stored[self._raw_id(record.id)]
            changed = tuple(i for i, value in enumerate(new) if i in documents or value != old[i])
            values = (*(new[i] for i in changed), new[id_at], record.version - 1)
            groups.setdefault((record.kind, changed), []).append(values)
        for (kind, changed), rows in groups.items():
            table = s.RECORD_TABLES[kind]
            if self.dialect == "postgresql" and len(rows) >= _COPY_FROM:
                done = self._update_by_copy(conn, table, changed, rows)
            else:
                sql = self._driver.update_sql(table, changed)
                done = conn.exec_driver_sql(sql, rows).rowcount
            if done != len(rows):  # the rows are locked: only a broken store gets here
                raise StorageError(
                    f"the database updated {done} of {len(rows)} records; nothing of this "
                    "change was stored. Retry"
                )
        people = [r for r in updates if isinstance(r, (Lead, Contact))]
        held: dict[UUID, _Held] = {}
        unread: list[UUID] = []
        for r in people:
            before = read.get(r.id)
            if type(before) is type(r) and before.version == r.version - 1:
                held[r.id] = _held_by(before)
            else:
                held[r.id] = _Held({}, set())
                unread.append(r.id)
        by_raw = {self._raw_id(id): id for id in unread}
        for rid, key, avoided, tag in self._by_ids(conn, self._driver.held_sql(), unread):
            id = by_raw[rid]
            if key is not None:
                held[id].keys[key] = bool(avoided)
            else:
                held[id].tags.add(tag)
        dropped_keys: list[dict[str, Any]] = []
        reflagged: list[dict[str, Any]] = []
        dropped_tags: list[dict[str, Any]] = []
        for record in people:
            mine = held[record.id]
            keys = identity_keys(record) if holds_keys(record) else ()
            avoided = is_avoided(record)
            for key in [k for k in mine.keys if k not in keys]:
                dropped_keys.append({"key": key, "record_id": record.id})
                del mine.keys[key]
            if any(flag != avoided for flag in mine.keys.values()):
                reflagged.append({"rid": record.id, "flag": avoided})
            gone = mine.tags - record.tags
            dropped_tags.extend({"record_id": record.id, "tag": tag} for tag in gone)
            mine.tags.difference_update(gone)
        if dropped_keys:
            conn.execute(_DROP_KEY, dropped_keys)
        if reflagged:
            conn.execute(_FLAG_KEYS, reflagged)
        if dropped_tags:
            conn.execute(_DROP_TAG, dropped_tags)
        return held

    def _claim_keys(
        self, conn: Connection, changes: ChangeSet, held: dict[UUID, _Held] | None = None
    ) -> None:
        claimants = _claimants(changes)
        if not claimants:
            return
        # The unique key column is the real check (it also stops other processes); here
        # only clashes inside the change set are looked for, in the pass that makes the
        # rows, and when there is one, the stored holders are read so that the error is
        # the one the contract names.
        held = held or {}
        rows: list[dict[str, Any]] = []
        claimed: dict[str, UUID] = {}
        clashed = False
        for r in claimants:
            avoided = is_avoided(r)
            kept = held.get(r.id, _NOTHING_HELD).keys
            for key in identity_keys(r):
                if claimed.setdefault(key, r.id) != r.id:
                    clashed = True
                if key not in kept:
                    rows.append({"key": key, "record_id": r.id, "avoided": avoided})
        if clashed:
            stored: dict[str, tuple[UUID, bool]] = {}
            for batch in _batches(list(claimed)):
                query = sa.select(s.keys.c.key, s.keys.c.record_id, s.keys.c.avoided).where(
                    s.keys.c.key.in_(batch)
                )
                stored.update(
                    (key, (holder, avoided)) for key, holder, avoided in conn.execute(query)
                )
            clash = _first_clash(claimants, changes, stored)
            if clash is not None:
                raise clash
        self._insert(conn, s.keys, rows)

    def _explain(self, changes: ChangeSet, exc: sa_exc.IntegrityError) -> NoReturn:
        """Turn a unique-index violation into the error the contract names.

        Called after the transaction rolled back: an inserted id that is stored already
        (``ConcurrencyError``), or an identity key held by another record, possibly
        stored by another writer a moment ago (``DuplicateError``/``AvoidListedError``).
        """
        inserted = {r.id: r for r in changes.inserts}
        for id, record in self.get_many(inserted).items():
            raise ConcurrencyError(id, 0, record.version) from exc
        claimants = _claimants(changes)
        holders = self.find_keys({key for r in claimants for key in identity_keys(r)})
        records = self.get_many(set(holders.values()))
        stored = {
            key: (holder, holder in records and is_avoided(records[holder]))
            for key, holder in holders.items()
        }
        clash = _first_clash(claimants, changes, stored)
        if clash is not None:
            raise clash from exc
        raise StorageError(
            f"the database refused the change: {_first_line(exc.orig)}; "
            "another writer may have stored the same records; re-read them and retry",
            of_value=True,  # a constraint or trigger of the database's own refused it
        ) from exc

    def _record(self, kind: str, doc: Any) -> Record:
        # Validated without the write-time checks every stored value passed already
        # (phones parsed to E.164, e-mails normalised, control characters refused):
        # they were a third of reading a lead, and parsing a phone again alone cost
        # more than validating the rest of the record.
        return _build(self._models[kind], _as_dict(doc))

    def _exists(self, conn: Connection, id: UUID) -> bool:
        return conn.execute(_EXISTS, {"id": id}).first() is not None

    # --- reads ------------------------------------------------------------------------

    def get(self, id: UUID) -> Record:
        with self._read() as conn:
            row = conn.execute(_GET, {"id": id}).first()
        if row is None:
            raise NotFoundError(id)
        return self._record(row.kind, row.doc)

    def get_many(self, ids: Iterable[UUID]) -> dict[UUID, Record]:
        wanted = list(dict.fromkeys(ids))
        found: dict[UUID, Record] = {}
        if not wanted:
            return found
        with self._read() as conn:
            for kind, table in s.RECORD_TABLES.items():
                for batch in _batches(wanted):
                    query = sa.select(table.c.doc).where(table.c.id.in_(batch))
                    for (doc,) in conn.execute(query):
                        record = self._record(kind, doc)
                        found[record.id] = record
        return found

    def find_keys(self, keys: Iterable[str]) -> dict[str, UUID]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, UUID] = {}
        if not wanted:
            return found
        with self._read() as conn:
            rows = self._matching(conn, self._driver.holders_sql(), wanted)
        as_id = self._id_of
        return {key: as_id(holder) for key, holder in rows}

    def _select(
        self, kind: SubjectKind, query: sa.Select[Any], params: dict[str, Any] | None = None
    ) -> list[Any]:
        """The records of ``kind`` whose documents ``query`` selects."""
        with self._read() as conn:
            return [self._record(kind, doc) for (doc,) in conn.execute(query, params or {})]

    def _after(self, table: sa.Table) -> Any:
        """Rows after the parameters ``after_at`` and ``after_id`` in ``(created_at,
        id)`` order: a keyset page, which the ``(created_at, id)`` index answers as fast
        at the end as at the start."""
        at = sa.bindparam("after_at", type_=s.At)
        id = sa.bindparam("after_id", type_=s.Id)
        if self.dialect in ("mysql", "mariadb"):
            # MariaDB's optimiser reads this form off the index; row values it may not.
            return sa.or_(
                table.c.created_at > at, sa.and_(table.c.created_at == at, table.c.id > id)
            )
        return sa.tuple_(table.c.created_at, table.c.id) > sa.tuple_(at, id)

    def _field_equals(self, t: sa.Table, model: type[Record], name: str, value: Any) -> Any:
        """``field == value`` in SQL, by value as in Python (see ``Repository.leads``): on
        its column where it has one, else on the record's JSON document (see
        :class:`_DocField`), with the path written literally so that an expression index
        on it (see the docs) can serve the query."""
        stored = None if value is None else json_value(model, name, value)
        if name in t.c and name not in ("doc", "seq") and not isinstance(stored, (dict, list)):
            column = t.c[name]
            if value is None:
                return column.is_(None)
            # Ids and instants as their column types bind them; the rest as stored.
            return column == (value if isinstance(value, (UUID, datetime)) else stored)
        field = _DocField(self.dialect, t.c.doc, name)
        missing = missing_value(model, name)  # what a document without the field reads as
        if value is None:
            # A document leaves a field out at None only where None is its default.
            return field.null_or_absent() if missing is None else field.null()
        equal = field.equals(value, stored)
        if _equal_values(missing, value):
            return sa.or_(equal, field.absent())
        return equal

    def _count(self, kind: SubjectKind, filters: dict[str, Any]) -> int:
        query, params = self._statement(kind, filters, None, None, listing=False)
        with self._read() as conn:
            return int(conn.execute(query, params).scalar_one())

    def _list(
        self, kind: SubjectKind, filters: dict[str, Any], after: Cursor | None, limit: int | None
    ) -> list[Any]:
        return self._select(kind, *self._statement(kind, filters, after, limit, listing=True))

    def _statement(
        self,
        kind: SubjectKind,
        filters: dict[str, Any],
        after: Cursor | None,
        limit: int | None,
        *,
        listing: bool,
    ) -> tuple[sa.Select[Any], dict[str, Any]]:
        """The list (or count) statement of the port's list filters, and its parameters.

        The filters, the cursor and the limit are parameters, so a statement is made
        once per shape (which filters, a cursor or not, a limit or not) and kept:
        building one costs more than running it on a small table. A ``where=`` filter's
        SQL depends on its values' types (see ``_field_equals``): a statement with one
        is made for its call."""
        names = tuple(sorted(n for n, v in filters.items() if v is not None and n != "where"))
        wanted = filters.get("where")
        key = (kind, names, after is not None, limit is not None, listing)
        query = self._lists.get(key) if wanted is None else None
        if query is None:
            t = s.RECORD_TABLES[kind]  # the port checked the filters' names
            where = [self._filter_condition(t, name) for name in names]
            if wanted is not None:
                model = self._models[kind]
                for field, value in where_values(model, wanted).items():
                    where.append(self._field_equals(t, model, field, value))
            if after is not None:
                where.append(self._after(t))
            if listing:
                query = sa.select(t.c.doc).where(*where).order_by(t.c.created_at, t.c.id)
                if limit is not None:
                    query = query.limit(sa.bindparam("limit", type_=sa.Integer))
            else:
                query = sa.select(sa.func.count()).select_from(t).where(*where)
            if wanted is None:
                self._lists[key] = query
        params = {f"f_{name}": _filter_value(name, filters[name]) for name in names}
        if after is not None:
            params["after_at"] = require_aware(after[0], "after")
            params["after_id"] = after[1]
        if limit is not None:
            params["limit"] = limit
        return query, params

    @staticmethod
    def _filter_condition(t: sa.Table, name: str) -> Any:
        """The condition of the list filter ``name`` (not ``where``), on the parameter
        ``f_<name>`` (its value as :func:`_filter_value` makes it)."""
        value: sa.BindParameter[Any] = sa.bindparam(f"f_{name}")
        if name == "tag":
            return t.c.id.in_(sa.select(s.tags.c.record_id).where(s.tags.c.tag == value))
        if name == "created_since":
            return t.c.created_at >= value
        if name == "created_until":
            return t.c.created_at < value
        return t.c[name] == value

    def people_like(
        self,
        *,
        email_domain: str | None = None,
        company: str | None = None,
        last_name: str | None = None,
        kind: SubjectKind = "lead",
        limit: int = 200,
    ) -> list[Lead | Contact]:
        if kind not in ("lead", "contact"):
            return []
        t = s.RECORD_TABLES[kind]
        traits: list[Any] = []
        for column, trait, value in (
            (t.c.email_domain, "email_domain", email_domain),
            (t.c.company_key, "company", company),
            (t.c.last_name_key, "last_name", last_name),
        ):
            key = trait_key(value, trait)
            if key is None:
                continue
            traits.append(column == key)
            length = TRAIT_KEY_LENGTH[trait]
            if self.dialect == "sqlite" and len(key) == length:
                # SQLite kept a longer key whole before keys were cut (it checks no
                # length): such a row matches by its first characters.
                traits.append(
                    sa.and_(
                        sa.func.length(column) > length,
                        sa.func.substr(column, 1, length) == key,
                    )
                )
        if not traits:
            return []
        query = (
            sa.select(t.c.doc)
            .where(sa.or_(*traits), t.c.erased_at.is_(None))
            .order_by(t.c.created_at, t.c.id)
            .limit(limit)
        )
        return self._select(kind, query)

    def history(self, subject_id: UUID) -> list[Event]:
        t = s.events
        query = (
            sa.select(*_EVENT_READ)
            .where(t.c.subject_id == subject_id)
            .order_by(t.c.at, t.c.position)
        )
        with self._read() as conn:
            return [_event(row) for row in conn.execute(query)]

    def events(self, *, after: int = 0, limit: int | None = None) -> list[Event]:
        t = s.events
        query = sa.select(*_EVENT_READ).where(t.c.position > after).order_by(t.c.position)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_event(row) for row in conn.execute(query)]

    def suppressed(self, digests: Iterable[str]) -> dict[str, UUID]:
        wanted = list(dict.fromkeys(digests))
        found: dict[str, UUID] = {}
        with self._read() as conn:
            for batch in _batches(wanted):
                t = s.suppressions
                query = sa.select(t.c.digest, t.c.record_id).where(t.c.digest.in_(batch))
                found.update((digest, holder) for digest, holder in conn.execute(query))
        return found

    def any_suppressed(self) -> bool:
        with self._read() as conn:
            return conn.execute(_ANY_SUPPRESSED).first() is not None

    def suppression_secret(self) -> bytes:
        t = s.secrets
        query = sa.select(t.c.value).where(t.c.name == "suppression")
        with self._read() as conn:
            found = conn.execute(query).scalar()
        if found is None:
            try:
                with self._writing() as conn:
                    conn.execute(
                        sa.insert(t).values(name="suppression", value=secrets.token_hex(32))
                    )
            except sa_exc.IntegrityError:
                pass  # another process made it first: use theirs
            with self._read() as conn:
                found = conn.execute(query).scalar_one()
        return bytes.fromhex(found)

    def touches(self, subject_id: UUID) -> list[Touch]:
        t = s.touches
        query = (
            sa.select(t.c.subject_id, t.c.doc)
            .where(t.c.subject_id == subject_id)
            .order_by(t.c.at, t.c.seq)
        )
        with self._read() as conn:
            return [_moved(Touch, doc, subject) for subject, doc in conn.execute(query)]

    def lead_batches(self, *, status: LeadStatus, size: int) -> Iterator[list[Lead]]:
        # Storage order: the status index holds each row's ``seq`` after the status
        # (SQLite's rowid, InnoDB's primary key), so a batch is one range of it, as
        # cheap at the end as at the start. PostgreSQL walks the primary key and skips
        # other statuses, if it knows how common the status is: bulk work tends to
        # follow a bulk load, before autovacuum has analysed the tables, and without
        # statistics the planner sorts every lead at the status for each batch (90 ms a
        # batch at 100k leads) and reads all of lf_keys and lf_tags to find a batch's
        # keys and tags when the batch is stored (15 ms a batch): quadratic in all.
        if self.dialect == "postgresql":
            tables = ", ".join(self._driver.name(t) for t in (s.leads, s.keys, s.tags))
            with self._writing() as conn:
                conn.exec_driver_sql(f"ANALYZE {tables}")
        after = 0
        while True:
            # Straight to the driver: the documents come as the driver reads them, and
            # are parsed once, by the validation (SQLAlchemy's rows, and its JSON
            # type's own parse, cost about a microsecond a lead).
            params = (LeadStatus(status).value, after, size)
            with self._read() as conn:
                rows = conn.exec_driver_sql(self._driver.batch_sql(s.leads), params).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [self._record("lead", doc) for _, doc in rows]  # type: ignore[misc]

    def touched(self, subject_ids: Iterable[UUID], *, channel: Channel) -> set[UUID]:
        wanted = list(dict.fromkeys(subject_ids))
        by_raw = {self._raw_id(id): id for id in wanted}
        sql = self._driver.touched_sql()
        with self._read() as conn:
            rows = self._by_ids(conn, sql, wanted, Channel(channel).value)
        return {by_raw[subject] for (subject,) in rows}

    def merges_of(self, ids: Collection[UUID]) -> list[MergeLog]:
        t = s.merges
        wanted = list(ids)
        found: dict[UUID, tuple[int, MergeLog]] = {}
        with self._read() as conn:
            for batch in _batches(wanted):
                query = sa.select(t.c.seq, t.c.doc).where(
                    sa.or_(t.c.keep_id.in_(batch), t.c.other_id.in_(batch))
                )
                for seq, doc in conn.execute(query):
                    log = _merge_log(doc, self._record)
                    found[log.id] = (seq, log)
        return [log for _, log in sorted(found.values(), key=lambda pair: pair[0])]

    def compact(self) -> None:
        """SQLite: ``VACUUM`` (rewrites the file without free pages) and a WAL checkpoint
        that truncates the log. PostgreSQL and MariaDB: nothing (their own vacuum and
        purge reclaim dead rows; see the docs on erasure).

        The checkpoint cannot finish while another connection reads an older snapshot
        of the database (a web worker in the middle of a read): it is tried again for
        :data:`COMPACT_WAIT` seconds (beyond the connection's busy timeout), then
        :class:`~leadfunnel.StorageError` says so: the erased bytes may still be in the
        log until ``compact()`` runs again once that read has ended."""
        if self.dialect != "sqlite":
            return
        with self._serial, _translated():
            # A plain driver connection in autocommit mode: VACUUM refuses to run inside
            # a transaction, and SQLAlchemy would begin one.
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                _checkpoint(cursor)
                cursor.execute("VACUUM")
                _checkpoint(cursor)
                cursor.close()
            finally:
                raw.close()

    def last_merge(self, keep_id: UUID) -> MergeLog | None:
        t = s.merges
        query = sa.select(t.c.doc).where(t.c.keep_id == keep_id).order_by(t.c.seq.desc()).limit(1)
        with self._read() as conn:
            doc = conn.execute(query).scalar()
        return None if doc is None else _merge_log(doc, self._record)

    # --- scaling queries --------------------------------------------------------------

    def follow_up_candidates(
        self, *, lead_limit: int, contact_limit: int, owner: str | None = None
    ) -> Iterator[FollowUpCandidate]:
        queries = _follow_up_candidate_queries(owner is not None)
        # The owner as each kind's field stores it (trimmed).
        owners = {
            kind: text_filter(self._models[kind], "owner", owner) for kind in ("lead", "contact")
        }
        rows: list[FollowUpCandidate] = []
        with self._read() as conn:
            for subject, query in zip(("lead", "contact"), queries, strict=True):
                if owners[subject] is NO_VALUE:
                    continue  # an owner no record can have
                params = {
                    "lead_limit": lead_limit,
                    "contact_limit": contact_limit,
                    "owner": owners[subject],
                }
                for id, state, owner, anchor, reset_at, count, last_at, opt_outs in conn.execute(
                    query, params
                ):
                    rows.append(
                        FollowUpCandidate(
                            subject_id=id,
                            subject=subject,  # type: ignore[arg-type]
                            state=state,
                            owner=owner,
                            anchor_at=anchor if reset_at is None else max(anchor, reset_at),
                            touches=int(count),
                            last_touch_at=last_at if count else None,
                            opt_outs=_opt_outs(opt_outs),
                        )
                    )
        return iter(rows)

    def qualified_follow_up(
        self, *, since: datetime | None, until: datetime | None
    ) -> FollowUpStats:
        query = _follow_up_query(since is not None, until is not None)
        with self._read() as conn:
            leads, never, touches = conn.execute(query, _period(since, until)).one()
        return FollowUpStats(int(leads), int(never), int(touches))

    def step_counts(
        self,
        *,
        since: datetime | None,
        until: datetime | None,
        by: GroupBy | None = None,
        steps: Collection[str] | None = None,
    ) -> list[StepCount]:
        check_grouping(by, "a report")
        query = _step_counts_query(
            by, since is not None, until is not None, None if steps is None else frozenset(steps)
        )
        with self._read() as conn:
            rows = conn.execute(query, _period(since, until))
            return [StepCount(step, grp, int(n)) for step, grp, n in rows]

    def stage_times(
        self,
        *,
        since: datetime | None,
        until: datetime | None,
        by: GroupBy | None = None,
    ) -> list[StageTime]:
        check_grouping(by, "time in stage")
        query = _stage_times_query(by, since is not None, until is not None)
        nexts = dict(itertools.pairwise(TIMED_STEPS))
        with self._read() as conn:
            rows = [
                StageTime(stage, nexts[stage], float(m), int(n), grp)
                for stage, grp, m, n in conn.execute(query, _period(since, until))
            ]
        order = {step: i for i, step in enumerate(TIMED_STEPS)}
        return sorted(rows, key=lambda r: (order[r.step], r.group is None, r.group or ""))

    def rep_list(
        self,
        kind: RepListKind,
        *,
        now: datetime,
        source: str | None = None,
        owner: str | None = None,
        entered_since: datetime | None = None,
        entered_until: datetime | None = None,
        limit: int | None = None,
    ) -> list[RepListRow]:
        check_rep_list(kind)
        now = require_aware(now, "now")
        deals_listed = kind != "never_booked"
        source = text_filter(self._models["contact" if deals_listed else "lead"], "source", source)
        owner = text_filter(self._models["opportunity" if deals_listed else "lead"], "owner", owner)
        if source is NO_VALUE or owner is NO_VALUE:
            return []  # a filter no record can match
        table: sa.Table
        if kind == "never_booked":
            table = leads = s.leads
            entered: Any = sa.func.coalesce(leads.c.status_at, leads.c.created_at)
            query = sa.select(leads.c.doc, entered).where(
                leads.c.status == LeadStatus.QUALIFIED.value, leads.c.erased_at.is_(None)
            )
            if source is not None:
                query = query.where(leads.c.source == source)
            if owner is not None:
                query = query.where(leads.c.owner == owner)
        else:  # not_sat or not_bought
            table = deals = s.opportunities
            st, contacts = s.steps, s.contacts
            sat = (
                sa.select(st.c.subject_id, sa.func.min(st.c.at).label("at"))
                .where(st.c.step == "appointment_sat")
                .group_by(st.c.subject_id)
                .subquery("sat")
            )
            may_call = sa.or_(
                deals.c.stage != Stage.LOST.value,
                deals.c.lost_reason.is_(None),
                deals.c.lost_reason.not_in([reason.value for reason in DO_NOT_CALL]),
            )
            if kind == "not_bought":
                entered = sat.c.at
                where: list[Any] = [
                    sat.c.subject_id.is_not(None),
                    deals.c.stage != Stage.WON.value,
                ]
            else:
                entered = sa.func.coalesce(deals.c.appointment_at, deals.c.created_at)
                where = [
                    sat.c.subject_id.is_(None),
                    deals.c.stage.in_((Stage.APPOINTMENT_SET.value, Stage.LOST.value)),
                    entered < now,
                ]
            if source is not None:
                where.append(contacts.c.source == source)
            if owner is not None:
                where.append(deals.c.owner == owner)
            query = (
                sa.select(deals.c.doc, entered)
                .select_from(
                    deals.join(contacts, contacts.c.id == deals.c.contact_id).outerjoin(
                        sat, sat.c.subject_id == deals.c.id
                    )
                )
                .where(may_call, contacts.c.erased_at.is_(None), *where)
            )
        if entered_since is not None:
            query = query.where(entered >= require_aware(entered_since, "entered_since"))
        if entered_until is not None:
            query = query.where(entered < require_aware(entered_until, "entered_until"))
        query = query.order_by(entered.desc(), table.c.seq.desc())
        if limit is not None:
            query = query.limit(limit)
        record_kind = "lead" if kind == "never_booked" else "opportunity"
        with self._read() as conn:
            return [
                RepListRow(self._record(record_kind, doc), at)  # type: ignore[arg-type]
                for doc, at in conn.execute(query)
            ]


_STEP_TYPE = s.steps.c.step.type
_GROUP_TYPE = s.leads.c.source.type


def _stretch_group(by: GroupBy | None, end: Any, following: str) -> tuple[Any, Any]:
    """The group of a time-in-stage stretch ending at ``following``, and the FROM clause
    that computes it: the group :meth:`SqlRepository.step_counts` gives that arrival."""
    if by is None:
        return sa.cast(sa.null(), _GROUP_TYPE), end
    if by == "month":
        return end.c.month, end
    lead = s.leads.alias(f"lead_{following}")
    if following in ("qualified", "appointment_set") and by in ("source", "profile"):
        return lead.c[by], end.outerjoin(lead, lead.c.id == end.c.subject_id)
    if following == "qualified":  # a lead's arrival: its owner; no setter yet
        if by == "setter":
            return sa.cast(sa.null(), _GROUP_TYPE), end
        return lead.c.owner, end.outerjoin(lead, lead.c.id == end.c.subject_id)
    deal = s.opportunities.alias(f"deal_{following}")
    deal_id = end.c.deal_id if following == "appointment_set" else end.c.subject_id
    joined = end.outerjoin(deal, deal.c.id == deal_id)
    if by in ("owner", "setter"):
        return deal.c[by], joined
    contact = s.contacts.alias(f"contact_{following}")
    joined = joined.outerjoin(contact, contact.c.id == deal.c.contact_id).outerjoin(
        lead, lead.c.id == sa.func.coalesce(deal.c.lead_id, contact.c.lead_id)
    )
    return lead.c[by], joined


def _filter_value(name: str, value: Any) -> Any:
    """A list filter's value (not ``where``'s) as its column holds it."""
    if name in ("created_since", "created_until"):
        return require_aware(value, name)
    if name in ("status", "type", "stage"):
        return str(getattr(value, "value", value))
    return value


# The statements of the follow-up candidates and of the report, built once per shape
# (building one costs more than running it on a small database): limits, owner and the
# period's bounds are parameters, the bounds bound by ``_period``.
_SINCE = sa.bindparam("since", type_=s.steps.c.at.type)
_UNTIL = sa.bindparam("until", type_=s.steps.c.at.type)


def _in_period(at: Any, since: bool, until: bool) -> list[Any]:
    """``at`` within the period of the parameters ``since`` (included) and ``until``
    (excluded), where the period has those bounds."""
    return [*([at >= _SINCE] if since else []), *([at < _UNTIL] if until else [])]


def _period(since: datetime | None, until: datetime | None) -> dict[str, datetime]:
    """The parameters of a report statement for the period ``[since, until)``."""
    bounds = {}
    if since is not None:
        bounds["since"] = require_aware(since, "since")
    if until is not None:
        bounds["until"] = require_aware(until, "until")
    return bounds


@functools.cache
def _follow_up_candidate_queries(by_owner: bool) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The leads and the contacts that may be due a follow-up, with their touches since
    the last reset (see ``SqlRepository.follow_up_candidates``); the limits and the
    owner are parameters."""
    t = s.touches
    # Each subject's last resetting touch, by (at, seq), as two GROUP BYs: databases
    # index those on the fly, where a window function left SQLite rescanning it for
    # every touch and every lead (quadratic: 6 s for 5k leads).
    reset_at = (
        sa.select(t.c.subject_id, sa.func.max(t.c.at).label("at"))
        .where(t.c.outcome.in_(_RESETS))
        .group_by(t.c.subject_id)
        .subquery("reset_at")
    )
    r = t.alias("r")
    reset = (
        sa.select(r.c.subject_id, r.c.at, sa.func.max(r.c.seq).label("seq"))
        .select_from(
            r.join(
                reset_at,
                sa.and_(reset_at.c.subject_id == r.c.subject_id, reset_at.c.at == r.c.at),
            )
        )
        .where(r.c.outcome.in_(_RESETS))
        .group_by(r.c.subject_id, r.c.at)
        .subquery("reset")
    )
    counted = (
        sa.select(
            t.c.subject_id,
            sa.func.count().label("n"),
            sa.func.max(t.c.at).label("last_at"),
        )
        .select_from(t.outerjoin(reset, reset.c.subject_id == t.c.subject_id))
        .where(
            sa.or_(
                reset.c.subject_id.is_(None),
                t.c.at > reset.c.at,
                sa.and_(t.c.at == reset.c.at, t.c.seq > reset.c.seq),
            )
        )
        .group_by(t.c.subject_id)
        .subquery("counted")
    )
    n = sa.func.coalesce(counted.c.n, 0)
    ld, ct, op = s.leads, s.contacts, s.opportunities

    def candidates(t: sa.Table, state: Any, anchor: Any, limit: str, *where: Any) -> Any:
        """``t``'s people in a cadence: id, state, owner, anchor, last reset, touches
        since it, last touch and opt-outs."""
        return (
            sa.select(
                t.c.id, state, t.c.owner, anchor, reset.c.at, n, counted.c.last_at, t.c.opt_outs
            )
            .select_from(
                t.outerjoin(counted, counted.c.subject_id == t.c.id).outerjoin(
                    reset, reset.c.subject_id == t.c.id
                )
            )
            .where(
                *where,
                t.c.erased_at.is_(None),
                n < sa.bindparam(limit, type_=sa.Integer),
                *([t.c.owner == sa.bindparam("owner")] if by_owner else []),
            )
        )

    lead_query = candidates(
        ld,
        ld.c.status,
        sa.func.coalesce(ld.c.status_at, ld.c.created_at),
        "lead_limit",
        ld.c.status.in_((LeadStatus.RAW.value, LeadStatus.QUALIFIED.value)),
    )
    busy = sa.exists().where(op.c.contact_id == ct.c.id, op.c.stage.in_(_OPEN_STAGES))
    # A contact re-enters the cadence when its last deal closes (all are closed here):
    # its closed_at, which an edit of the closed deal since (its owner changed, a merge
    # moving it to this contact) does not move, as its updated_at would.
    last_deal = (
        sa.select(sa.func.max(sa.func.coalesce(op.c.closed_at, op.c.updated_at)))
        .where(op.c.contact_id == ct.c.id)
        .scalar_subquery()
    )
    contact_query = candidates(
        ct,
        ct.c.type,
        sa.case((last_deal > ct.c.created_at, last_deal), else_=ct.c.created_at),
        "contact_limit",
        ct.c.type == ContactType.PROSPECT.value,
        ~busy,
    )
    return lead_query, contact_query


@functools.cache
def _follow_up_query(since: bool, until: bool) -> sa.Select[Any]:
    st, t, lead = s.steps, s.touches, s.leads
    where = [st.c.step == "qualified", *_in_period(st.c.at, since, until)]
    qualified = sa.select(st.c.subject_id).where(*where).distinct().subquery()
    # A converted lead is followed up on the contact it became: its touches count too,
    # and the booking itself is a follow-up.
    per_lead = (
        sa.select(
            qualified.c.subject_id,
            lead.c.contact_id,
            sa.func.count(t.c.id).label("n"),
        )
        .select_from(
            qualified.outerjoin(lead, lead.c.id == qualified.c.subject_id).outerjoin(
                t,
                sa.or_(
                    t.c.subject_id == qualified.c.subject_id,
                    t.c.subject_id == lead.c.contact_id,
                ),
            )
        )
        .group_by(qualified.c.subject_id, lead.c.contact_id)
        .subquery()
    )
    never = sa.and_(per_lead.c.n == 0, per_lead.c.contact_id.is_(None))
    return sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(sa.case((never, 1), else_=0)), 0),
        sa.func.coalesce(sa.func.sum(per_lead.c.n), 0),
    ).select_from(per_lead)


@functools.cache
def _step_counts_query(
    by: GroupBy | None, since: bool, until: bool, steps: frozenset[str] | None
) -> sa.Select[Any]:
    st = s.steps
    where = _in_period(st.c.at, since, until)
    if steps is not None:
        where.append(st.c.step.in_(sorted(steps)))
    count = sa.func.count(sa.distinct(st.c.subject_id))
    if by is None:
        return sa.select(st.c.step, sa.null(), count).where(*where).group_by(st.c.step)
    if by == "month":
        return sa.select(st.c.step, st.c.month, count).where(*where).group_by(st.c.step, st.c.month)
    # source, owner, setter or profile
    lead = s.leads.alias("lead")
    deal = s.opportunities.alias("deal")
    contact = s.contacts.alias("contact")
    deal_lead = s.leads.alias("deal_lead")
    # Join only what the grouping reads: the deal for a setter, lead and deal for an
    # owner, and the deal's lead (through its contact) for source and profile.
    joined: Any = st.outerjoin(deal, deal.c.id == st.c.subject_id)
    group: Any
    if by == "setter":
        group = deal.c.setter
    else:
        joined = joined.outerjoin(lead, lead.c.id == st.c.subject_id)
        if by == "owner":
            group = sa.func.coalesce(lead.c.owner, deal.c.owner)
        else:
            joined = joined.outerjoin(contact, contact.c.id == deal.c.contact_id).outerjoin(
                deal_lead,
                deal_lead.c.id == sa.func.coalesce(deal.c.lead_id, contact.c.lead_id),
            )
            # A contact with no lead (a customer imported as one) has a source of its
            # own: its deals count there rather than under none.
            group = sa.case(
                (lead.c.id.is_not(None), lead.c[by]),
                (deal_lead.c.id.is_not(None), deal_lead.c[by]),
                else_=contact.c.source if by == "source" else sa.null(),
            )
    group = group.label("grp")
    return (
        sa.select(st.c.step, group, count)
        .select_from(joined)
        .where(*where)
        .group_by(st.c.step, group)
    )


@functools.cache
def _stage_times_query(by: GroupBy | None, since: bool, until: bool) -> sa.Select[Any]:
    st, deals = s.steps, s.opportunities
    month = [sa.func.min(st.c.month).label("month")] if by == "month" else []
    # Per stretch, each subject's first arrival at the later step (few rows: an index
    # range of that step), then its first arrival at the earlier one by an index seek
    # on (step, subject_id, at). Raw leads that went no further are never read.
    pairs = []
    for step, following in itertools.pairwise(TIMED_STEPS):
        ends: Any
        if following == "appointment_set" and by in ("owner", "setter"):
            # Two subjects: a lead, and the earliest booked of its opportunities,
            # whose owner or setter the stretch is grouped by.
            booked = (
                sa.select(st.c.subject_id, sa.func.min(st.c.at).label("at"))
                .where(st.c.step == following)
                .group_by(st.c.subject_id)
                .subquery("booked")
            )
            first = (
                sa.func.row_number()
                .over(partition_by=deals.c.lead_id, order_by=(booked.c.at, deals.c.seq))
                .label("rn")
            )
            ranked_deals = (
                sa.select(
                    deals.c.lead_id.label("subject_id"),
                    deals.c.id.label("deal_id"),
                    booked.c.at,
                    first,
                )
                .select_from(booked.join(deals, deals.c.id == booked.c.subject_id))
                .where(deals.c.lead_id.is_not(None))
                .subquery("ranked_deals")
            )
            ends = sa.select(
                ranked_deals.c.subject_id, ranked_deals.c.deal_id, ranked_deals.c.at
            ).where(ranked_deals.c.rn == 1)
        elif following == "appointment_set":
            # Two subjects: a lead, and the earliest booked of its opportunities.
            ends = (
                sa.select(
                    deals.c.lead_id.label("subject_id"),
                    sa.func.min(st.c.at).label("at"),
                    *month,
                )
                .select_from(st.join(deals, deals.c.id == st.c.subject_id))
                .where(st.c.step == following, deals.c.lead_id.is_not(None))
                .group_by(deals.c.lead_id)
            )
        else:
            ends = (
                sa.select(st.c.subject_id, sa.func.min(st.c.at).label("at"), *month)
                .where(st.c.step == following)
                .group_by(st.c.subject_id)
            )
        end = ends.subquery(f"end_{following}")
        earlier = st.alias(f"start_{step}")
        start = (
            sa.select(sa.func.min(earlier.c.at))
            .where(earlier.c.step == step, earlier.c.subject_id == end.c.subject_id)
            .scalar_subquery()
        )
        group, joined = _stretch_group(by, end, following)
        pairs.append(
            sa.select(
                sa.cast(sa.literal(step), _STEP_TYPE).label("stage"),
                group.label("grp"),
                _SecondsBetween(start, end.c.at).label("seconds"),
            )
            .select_from(joined)
            .where(*_in_period(end.c.at, since, until))
        )
    found = sa.union_all(*pairs).subquery("found")
    durations = (
        sa.select(found.c.stage, found.c.grp, found.c.seconds)
        .where(found.c.seconds.is_not(None))  # no arrival at the earlier step
        .subquery("durations")
    )
    part = (durations.c.stage, durations.c.grp)
    ranked = sa.select(
        durations.c.stage,
        durations.c.grp,
        durations.c.seconds,
        sa.func.row_number().over(partition_by=part, order_by=durations.c.seconds).label("rn"),
        sa.func.count().over(partition_by=part).label("n"),
    ).subquery("ranked")
    # The middle row, or the middle two: 2 * rn in [n, n + 2].
    return (
        sa.select(
            ranked.c.stage,
            ranked.c.grp,
            sa.func.avg(ranked.c.seconds),
            sa.func.max(ranked.c.n),
        )
        .where(ranked.c.rn * 2 >= ranked.c.n, ranked.c.rn * 2 <= ranked.c.n + 2)
        .group_by(ranked.c.stage, ranked.c.grp)
    )


# The per-call lookups by id, built once: building a statement costs more than running it.
_GET = sa.union_all(
    *(
        sa.select(sa.literal(kind).label("kind"), t.c.doc).where(t.c.id == sa.bindparam("id"))
        for kind, t in s.RECORD_TABLES.items()
    )
)
_EXISTS = sa.union_all(
    *(sa.select(t.c.seq).where(t.c.id == sa.bindparam("id")) for t in s.RECORD_TABLES.values())
)
# A commit's per-record statements, also built once (updates are written by
# ``_DriverStatements.update_sql``, with the columns that changed).
_DELETE = {
    kind: sa.delete(t).where(
        t.c.id == sa.bindparam("where_id"), t.c.version == sa.bindparam("where_version")
    )
    for kind, t in s.RECORD_TABLES.items()
}
_POSITION_FOR_UPDATE = (
    sa.select(s.counters.c.value).where(s.counters.c.name == s.EVENT_POSITION).with_for_update()
)
_MOVE_POSITION = (
    sa.update(s.counters)
    .where(s.counters.c.name == s.EVENT_POSITION)
    .values(value=sa.bindparam("value"))
)
_MOVE_POSITION_RETURNING = (
    sa.update(s.counters)
    .where(s.counters.c.name == s.EVENT_POSITION)
    .values(value=s.counters.c.value + sa.bindparam("count"))
    .returning(s.counters.c.value)
)
_EVENT_COUNT = (
    sa.select(sa.func.count())
    .select_from(s.events)
    .where(s.events.c.subject_id == sa.bindparam("subject_id"))
)
# Two counts, each through its own index (an OR may scan the table on some servers).
_DEAL_COUNT = sa.select(
    sa.select(sa.func.count())
    .select_from(s.opportunities)
    .where(s.opportunities.c.contact_id == sa.bindparam("record_id"))
    .scalar_subquery()
    + sa.select(sa.func.count())
    .select_from(s.opportunities)
    .where(s.opportunities.c.lead_id == sa.bindparam("record_id"))
    .scalar_subquery()
)
_TOUCH_COUNT = (
    sa.select(sa.func.count())
    .select_from(s.touches)
    .where(s.touches.c.subject_id == sa.bindparam("subject_id"))
)
_RELEASE_KEYS = sa.delete(s.keys).where(s.keys.c.record_id.in_(sa.bindparam("ids", expanding=True)))
_RELEASE_TAGS = sa.delete(s.tags).where(s.tags.c.record_id.in_(sa.bindparam("ids", expanding=True)))
_DROP_KEY = sa.delete(s.keys).where(
    s.keys.c.key == sa.bindparam("key"), s.keys.c.record_id == sa.bindparam("record_id")
)
_FLAG_KEYS = (
    sa.update(s.keys)
    .where(s.keys.c.record_id == sa.bindparam("rid"))
    .values(avoided=sa.bindparam("flag"))
)
_DROP_TAG = sa.delete(s.tags).where(
    s.tags.c.record_id == sa.bindparam("record_id"), s.tags.c.tag == sa.bindparam("tag")
)


class _Held(typing.NamedTuple):
    """What an updated person holds in the store: identity keys (with the avoided flag
    each carries) and tags."""

    keys: dict[str, bool]
    tags: set[str]


_NOTHING_HELD = _Held({}, set())  # never changed: only read


def _held_by(person: Lead | Contact) -> _Held:
    """The identity keys (with their avoided flag) and tags a commit stored for
    ``person``."""
    avoided = is_avoided(person)
    keys = identity_keys(person) if holds_keys(person) else ()
    return _Held(dict.fromkeys(keys, avoided), set(person.tags))


class _SecondsBetween(FunctionElement[float]):
    """Seconds from the first instant to the second, computed by the database."""

    type = sa.Float()
    name = "seconds_between"
    inherit_cache = True


@compiles(_SecondsBetween)
def _seconds_sqlite(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    # SQLite keeps instants as integer microseconds since 1970 (schema.UtcDateTime).
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(({end}) - ({start})) / 1000000.0"


@compiles(_SecondsBetween, "postgresql")
def _seconds_postgresql(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end}) - ({start}))"


@compiles(_SecondsBetween, "mysql")
@compiles(_SecondsBetween, "mariadb")
def _seconds_mysql(element: _SecondsBetween, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"TIMESTAMPDIFF(MICROSECOND, {start}, {end}) / 1000000.0"


def _equal_values(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # values that cannot be compared (an application's type) differ
        return False


class _DocField:
    """One field of the records' JSON documents, in the dialect's SQL: ``json_extract``
    on SQLite, ``->>`` on PostgreSQL, ``JSON_EXTRACT`` on MariaDB.

    :meth:`equals` compares by value, as Python compares the validated value with a
    record's (``Repository.leads``), from what the document holds (the field's JSON:
    a ``Decimal`` as its text, a datetime as ISO 8601 text with its offset, a set as
    an array in no particular order). Numbers, booleans and texts compare as before,
    so the expression indexes the docs show still serve them.
    """

    def __init__(self, dialect: str, doc: sa.Column[Any], name: str) -> None:
        self.dialect = dialect
        self.doc = doc
        self.key: Any = sa.literal_column("'" + name.replace("'", "''") + "'")
        self.path: Any = sa.literal_column("'$." + name + "'")

    def _node(self) -> Any:
        """PostgreSQL: the field as JSONB; elsewhere, as the dialect extracts it."""
        if self.dialect == "postgresql":
            return self.doc.op("->")(self.key)
        return sa.func.json_extract(self.doc, self.path)

    def text(self) -> Any:
        """The field as SQL text (a JSON string unquoted); NULL when absent or null."""
        if self.dialect == "postgresql":
            return self.doc.op("->>", return_type=sa.Text())(self.key)
        if self.dialect == "sqlite":
            return sa.func.json_extract(self.doc, self.path)
        return sa.func.json_unquote(self._node())

    def absent(self) -> Any:
        """The document lacks the field (a field added to the model after it was stored)."""
        if self.dialect == "sqlite":
            return sa.func.json_type(self.doc, self.path).is_(None)
        return self._node().is_(None)

    def null(self) -> Any:
        """The document holds the field as JSON ``null``."""
        if self.dialect == "postgresql":
            return sa.func.jsonb_typeof(self._node()) == "null"
        if self.dialect == "sqlite":
            return sa.func.json_type(self.doc, self.path) == "null"
        return sa.func.json_type(self._node()) == "NULL"

    def null_or_absent(self) -> Any:
        if self.dialect in ("postgresql", "sqlite"):
            return self.text().is_(None)
        return sa.func.coalesce(sa.func.json_type(self._node()), "NULL") == "NULL"

    def equals(self, value: Any, stored: Any) -> Any:
        """The field equals ``value``, whose JSON is ``stored`` (not ``None``)."""
        if isinstance(stored, bool):
            return self._boolean(stored)
        if isinstance(value, Decimal) and isinstance(stored, str):
            return self._decimal(value)
        if isinstance(value, datetime) and isinstance(stored, str) and _in_utc(value):
            # An instant, in whatever offset it was stored (a naive datetime is no
            # instant: it compares as its text, and only with naive ones).
            return self._instant(value)
        if isinstance(value, (set, frozenset)) and isinstance(stored, list) and _scalars(stored):
            return self._set(stored)
        if isinstance(stored, (int, float)):
            return self._number(stored)
        if isinstance(stored, (dict, list)):
            return self._json(stored)
        return self.text() == stored

    def _boolean(self, stored: bool) -> Any:
        if self.dialect == "postgresql":
            return sa.cast(self.text(), sa.Boolean) == stored
        if self.dialect == "sqlite":
            return self.text() == int(stored)
        return self.text() == ("true" if stored else "false")

    def _number(self, stored: float) -> Any:
        if self.dialect == "postgresql":
            kind: Any = sa.BigInteger if isinstance(stored, int) else sa.Float
            return sa.cast(self.text(), kind) == stored
        return self._node() == stored  # json_extract gives SQLite a number, MariaDB JSON

    def _decimal(self, value: Decimal) -> Any:
        # The stored text ("10.50", "1E+2") as a number: exact on PostgreSQL (numeric)
        # and SQLite (lf_decimal, a function of leadfunnel's connections: see
        # _sqlite_decimal); on MariaDB to DECIMAL(65, 30)'s 30 decimal places.
        if self.dialect == "postgresql":
            return sa.cast(self.text(), sa.Numeric()) == value
        if self.dialect == "sqlite":
            exact = sa.func.lf_decimal(self.text()) == _decimal_key(value)
            near = float(value)
            if not math.isfinite(near):
                return exact
            # SQLite's own (inexact) number first: a Python call only for the rows near.
            margin = abs(near) * 1e-9
            return sa.and_(
                sa.cast(self.text(), sa.Float).between(near - margin, near + margin), exact
            )
        return sa.cast(self.text(), sa.Numeric(65, 30)) == value

    def _instant(self, value: datetime) -> Any:
        exact = _DocInstant(self.text()) == value
        if self.dialect == "postgresql":
            return exact
        if self.dialect == "sqlite":
            # SQLite's julianday() (to the millisecond) first: lf_instant, a Python
            # call, only for the rows within a second of the instant.
            day = (value - s.EPOCH) / timedelta(days=1) + _JULIAN_EPOCH
            near = sa.func.julianday(self.text()).between(day - _SECOND, day + _SECOND)
            return sa.and_(near, exact)
        # MariaDB: the local date first (an offset moves it a day at most), a plain
        # text comparison, so that the long conversion runs for the rows near only.
        utc = value.astimezone(UTC)
        first, last = (
            (utc + timedelta(days=n) if _in_range(utc, n) else utc).date().isoformat()
            for n in (-1, 1)
        )
        return sa.and_(sa.func.left(self.text(), 10).between(first, last), exact)

    def _set(self, stored: list[Any]) -> Any:
        # Sets are stored as arrays in the order they were iterated when written: equal
        # as sets when of the same length and each holds all of the other's items.
        if self.dialect == "postgresql":
            items = sa.cast(_dumps(stored), self.doc.type)
            node = self._node()
            return sa.and_(node.op("@>")(items), node.op("<@")(items))
        if self.dialect == "sqlite":
            length = sa.func.json_array_length(self.doc, self.path)
            if not stored:
                return length == 0
            each = sa.func.json_each(self.doc, self.path).table_valued("value")
            inside = (
                sa.select(sa.func.count()).select_from(each).where(each.c.value.in_(stored))
            ).scalar_subquery()
            return sa.and_(length == len(stored), inside == len(stored))
        node = self._node()
        return sa.and_(
            sa.func.json_length(node) == len(stored),
            sa.func.json_contains(node, _dumps(stored)) == 1,
        )

    def _json(self, stored: Any) -> Any:
        if self.dialect == "postgresql":
            return self._node() == sa.cast(_dumps(stored), self.doc.type)
        if self.dialect == "sqlite":
            return self.text() == _dumps(stored)
        return self._node() == sa.func.json_extract(_dumps(stored), "$")


#: The Julian day of 1970-01-01T00:00Z, and one second in days (see _DocField.equals).
_JULIAN_EPOCH = 2440587.5
_SECOND = 1 / 86400


def _in_utc(value: datetime) -> bool:
    """Whether ``value`` is aware and its instant has a UTC datetime (not before year 1
    nor after 9999, where ``At`` parameters could not be bound)."""
    if value.utcoffset() is None:
        return False
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True


def _in_range(when: datetime, days: int) -> bool:
    """Whether ``when`` moved by ``days`` is still a datetime (years 1 to 9999)."""
    try:
        when + timedelta(days=days)
    except OverflowError:
        return False
    return True


def _scalars(items: list[Any]) -> bool:
    return all(isinstance(i, (str, int, float)) and not isinstance(i, bool) for i in items)


class _DocInstant(FunctionElement[datetime]):
    """The instant an ISO 8601 text names, when it has an offset (``Z`` or ``+hh:mm``,
    as pydantic writes an aware datetime; NULL for a naive one), in the type of
    ``At`` columns so that it compares with a parameter bound as they bind it: an
    integer of microseconds on SQLite (see :func:`_sqlite_instant`), a ``timestamptz``
    on PostgreSQL, a UTC ``DATETIME(6)`` on MariaDB. Exact to the microsecond."""

    type = s.At
    name = "doc_instant"
    inherit_cache = True


@compiles(_DocInstant)
def _doc_instant_sqlite(element: _DocInstant, compiler: Any, **kw: Any) -> str:
    (text,) = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"lf_instant({text})"


@compiles(_DocInstant, "postgresql")
def _doc_instant_postgresql(element: _DocInstant, compiler: Any, **kw: Any) -> str:
    # Not indexable: a text's cast to timestamptz is only STABLE (it reads TimeZone for
    # a text without offset, which the CASE leaves out).
    (text,) = (compiler.process(clause, **kw) for clause in element.clauses)
    offset = "'(Z|[+-][0-9][0-9]:[0-9][0-9](:[0-9][0-9])?)$'"
    return f"CASE WHEN {text} ~ {offset} THEN CAST({text} AS TIMESTAMPTZ) END"


@compiles(_DocInstant, "mysql")
@compiles(_DocInstant, "mariadb")
def _doc_instant_mysql(element: _DocInstant, compiler: Any, **kw: Any) -> str:
    # MariaDB reads no offset: the local time less the offset's minutes, in UTC.
    (t,) = (compiler.process(clause, **kw) for clause in element.clauses)
    sign = f"SUBSTRING({t}, -6, 1)"

    def local(cut: int) -> str:
        return f"CAST(REPLACE(LEFT({t}, CHAR_LENGTH({t}) - {cut}), 'T', ' ') AS DATETIME(6))"

    minutes = (
        f"(CASE WHEN {sign} = '-' THEN 1 ELSE -1 END) * "
        f"(CAST(SUBSTRING({t}, -5, 2) AS SIGNED) * 60 + CAST(SUBSTRING({t}, -2) AS SIGNED))"
    )
    return (
        f"CASE WHEN RIGHT({t}, 1) = 'Z' THEN {local(1)} "
        f"WHEN {sign} IN ('+', '-') THEN TIMESTAMPADD(MINUTE, {minutes}, {local(6)}) END"
    )


def _decimal_key(value: Decimal) -> str | None:
    """A finite ``Decimal``'s number as one text whatever its form ("10.50", "10.5",
    "1.05E+1": "105e-1"; every zero "0"), exactly (no rounding context); ``None``
    for NaN and the infinities, which equal nothing here."""
    if not value.is_finite():
        return None
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    kept = "".join(map(str, digits)).lstrip("0")
    if not kept:
        return "0"
    stripped = kept.rstrip("0")
    exponent += len(kept) - len(stripped)
    return f"{'-' if sign else ''}{stripped}e{exponent}"


def _sqlite_decimal(value: Any) -> str | None:
    """SQLite's ``lf_decimal(x)``: :func:`_decimal_key` of a stored number's text (or
    JSON number); ``None`` for anything else. Never raises (SQLite would fail the
    query)."""
    try:
        if isinstance(value, str):
            return _decimal_key(Decimal(value))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _decimal_key(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        pass
    return None


def _sqlite_instant(value: Any) -> int | None:
    """SQLite's ``lf_instant(x)``: the instant an ISO 8601 text with an offset names, in
    microseconds since 1970 UTC (as SQLite stores ``At`` columns); ``None`` for a text
    without offset (a naive datetime) or anything else. Never raises."""
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    if instant.utcoffset() is None:
        return None
    return s.to_sqlite_micros(instant)


class _Missing(ConfigError):
    """The schema is absent or old and ``migrate="check"`` forbids touching it."""


class _Unversioned(ConfigError):
    """leadfunnel's version table is there but empty."""


# --- identity keys --------------------------------------------------------------------


def _claimants(changes: ChangeSet) -> list[Lead | Contact]:
    return [r for r in changes.records() if isinstance(r, (Lead, Contact)) and holds_keys(r)]


def _first_clash(
    claimants: list[Lead | Contact],
    changes: ChangeSet,
    stored: dict[str, tuple[UUID, bool]],
) -> DuplicateError | None:
    """The error for the first key claimed twice, as the port's rules order them.

    ``stored`` maps keys to their stored holder and whether it is avoided; keys of the
    records this change set deletes or updates are released first.
    """
    released = {r.id for r in changes.deletes} | {r.id for r in changes.updates}
    pending = {r.id: r for r in changes.records()}
    claims = {key: held for key, held in stored.items() if held[0] not in released}
    for record in claimants:
        for key in identity_keys(record):
            held = claims.get(key)
            if held is not None and held[0] != record.id:
                holder = pending.get(held[0])
                avoided = is_avoided(holder) if holder is not None else held[1]
                return AvoidListedError(held[0], key) if avoided else DuplicateError(held[0], key)
            claims[key] = (record.id, is_avoided(record))
    return None


# --- statements for the driver ----------------------------------------------------------


class _DriverStatements:
    """The statements of the bulk paths, sent straight to the driver: ``INSERT`` for its
    ``executemany`` (for PostgreSQL, the same rows through ``COPY``), ``UPDATE`` of the
    changed columns, and the reads of a batch of ids (locks, versions, held keys and
    tags, touches, a batch of leads).

    Core's ``execute(insert(t), rows)`` re-processes every bound value of every row
    through its type objects, and an expanding ``IN`` of 500 ids costs 1 to 3 us an id,
    which is more than the database's own work on bulk paths. The values here are
    converted once, by a per-column function chosen for the dialect, to exactly what
    those types would have sent.
    """

    def __init__(self, dialect: sa.Dialect, schema: str | None) -> None:
        self._dialect = dialect
        self._schema = schema
        self._prepared: dict[str, tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]] = {}
        self._updates: dict[tuple[str, tuple[int, ...]], str] = {}
        self._documents: dict[str, frozenset[int]] = {}
        self._positions: dict[tuple[str, str], int] = {}
        self._multi_row: dict[tuple[str, int], str] = {}
        self._nulls: dict[str, Callable[[tuple[Any, ...]], int]] = {}
        self._sparse: dict[tuple[str, int], tuple[str, Callable[[tuple[Any, ...]], Any]]] = {}

    def prepare(self, table: sa.Table) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
        """The SQL and the row converter for inserting into ``table``."""
        found = self._prepared.get(table.name)
        if found is None:
            found = self._prepared[table.name] = self._compile(table)
        return found

    def without_nulls(
        self, table: sa.Table, sql: str, rows: list[tuple[Any, ...]]
    ) -> tuple[str, list[tuple[Any, ...]]]:
        """:meth:`prepare`'s ``sql`` and converted ``rows``, less the columns that are
        ``NULL`` in every row (left to their default, ``NULL``). For SQLite: its driver
        looks every ``None`` up among its adapters before binding it (about 0.3 us a
        value), and an import's leads share most of theirs (no owner, profile, contact,
        erasure, opt-outs yet)."""
        nulls = self._nulls.get(table.name)
        if nulls is None:
            nulls = self._nulls[table.name] = _null_mask(table.name, _inserted_columns(table))
        common = functools.reduce(operator.and_, map(nulls, rows))
        if not common:
            return sql, rows
        found = self._sparse.get((table.name, common))
        if found is None:
            columns = _inserted_columns(table)
            nullable = _nullable(columns)
            dropped = {i for bit, i in enumerate(nullable) if common >> bit & 1}
            kept = [i for i in range(len(columns)) if i not in dropped]
            quote = self._dialect.identifier_preparer.quote
            names = ", ".join(quote(columns[i].name) for i in kept)
            found = self._sparse[(table.name, common)] = (
                f"INSERT INTO {self._name(table)} ({names}) VALUES ({', '.join('?' * len(kept))})",
                operator.itemgetter(*kept),
            )
        sparse_sql, pick = found
        return sparse_sql, list(map(pick, rows))

    def update_sql(self, table: sa.Table, changed: tuple[int, ...]) -> str:
        """``UPDATE table SET <columns> WHERE id = ? AND version = ?``, for the columns at
        positions ``changed`` of the converted row of :meth:`prepare`."""
        key = (table.name, changed)
        sql = self._updates.get(key)
        if sql is None:
            dialect = self._dialect
            quote = dialect.identifier_preparer.quote
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            columns = _inserted_columns(table)
            sets = []
            for i in changed:
                column = columns[i]
                json = dialect.name == "postgresql" and s.is_document(column)
                sets.append(f"{quote(column.name)} = {f'CAST({mark} AS JSONB)' if json else mark}")
            sql = self._updates[key] = (
                f"UPDATE {self._name(table)} SET {', '.join(sets)} "
                f"WHERE {quote('id')} = {mark} AND {quote('version')} = {mark}"
            )
        return sql

    def documents(self, table: sa.Table) -> frozenset[int]:
        """Where the JSON documents sit in a converted row of :meth:`prepare`."""
        found = self._documents.get(table.name)
        if found is None:
            columns = _inserted_columns(table)
            found = frozenset(i for i, c in enumerate(columns) if s.is_document(c))
            self._documents[table.name] = found
        return found

    def batch_sql(self, table: sa.Table) -> str:
        """``SELECT seq, doc FROM table WHERE status = ? AND seq > ? ORDER BY seq
        LIMIT ?``, for the driver (three positional parameters)."""
        quote = self._dialect.identifier_preparer.quote
        mark = self._mark
        seq, doc, status = (quote(name) for name in ("seq", "doc", "status"))
        return (
            f"SELECT {seq}, {doc} FROM {self._name(table)} WHERE {status} = {mark} "
            f"AND {seq} > {mark} ORDER BY {seq} LIMIT {mark}"
        )

    def copy_update(self, table: sa.Table, changed: tuple[int, ...]) -> tuple[str, str, str, str]:
        """PostgreSQL: the statements that update the columns at positions ``changed`` of
        :meth:`prepare`'s rows through a temporary table: create it (those columns, then
        the id and the expected version), fill it with ``COPY``, ``UPDATE table ... FROM``
        it (matched on id and version), drop it."""
        quote = self._dialect.identifier_preparer.quote
        columns = [quote(_inserted_columns(table)[i].name) for i in changed]
        listed = ", ".join(columns)
        temporary = f"lf_update_{table.name}"
        create = (
            f"CREATE TEMPORARY TABLE {temporary} ON COMMIT DROP AS SELECT {listed}, "
            f"id AS where_id, version AS where_version FROM {self._name(table)} WITH NO DATA"
        )
        copy = f"COPY {temporary} ({listed}, where_id, where_version) FROM STDIN"
        sets = ", ".join(f"{c} = u.{c}" for c in columns)
        update = (
            f"UPDATE {self._name(table)} AS t SET {sets} FROM {temporary} AS u "
            "WHERE t.id = u.where_id AND t.version = u.where_version"
        )
        return create, copy, update, f"DROP TABLE {temporary}"

    def by_ids(
        self, sql: str, ids: list[Any], more: tuple[Any, ...]
    ) -> tuple[str, tuple[Any, ...]]:
        """``sql`` with each ``{ids}`` made a match on ``ids`` (in the driver's form), and
        its parameters: ``= ANY(%s)``, one array, on PostgreSQL; else ``IN (?, ...)``."""
        count = sql.count("{ids}")
        if self._dialect.name == "postgresql":
            return sql.replace("{ids}", "= ANY(%s)"), (*[ids] * count, *more)
        marks = ", ".join([self._mark] * len(ids))
        return sql.replace("{ids}", f"IN ({marks})"), (*ids * count, *more)

    def lock_sql(self, table: sa.Table) -> str:
        """The columns :meth:`prepare` converts, in its order, as the driver gives them,
        of the rows whose id matches ``{ids}``, locked (``FOR UPDATE``; SQLite has one
        writer already); JSON documents are not read (``NULL`` in their place: they are
        rewritten whole)."""
        quote = self._dialect.identifier_preparer.quote
        columns = ", ".join(
            "NULL" if s.is_document(c) else quote(c.name) for c in _inserted_columns(table)
        )
        return f"SELECT {columns} FROM {self._name(table)} WHERE id {{ids}}{self._for_update}"

    def version_sql(self, table: sa.Table) -> str:
        """The id and version of the rows whose id matches ``{ids}``, locked."""
        quote = self._dialect.identifier_preparer.quote
        return (
            f"SELECT id, {quote('version')} FROM {self._name(table)} "
            f"WHERE id {{ids}}{self._for_update}"
        )

    def held_sql(self) -> str:
        """The identity keys (with their avoided flag) and the tags of the people whose
        id matches ``{ids}``: ``(record_id, key, avoided, NULL)`` and
        ``(record_id, NULL, NULL, tag)`` rows."""
        quote = self._dialect.identifier_preparer.quote
        return (
            f"SELECT record_id, {quote('key')}, avoided, NULL FROM {self._name(s.keys)} "
            "WHERE record_id {ids} UNION ALL "
            f"SELECT record_id, NULL, NULL, tag FROM {self._name(s.tags)} "
            "WHERE record_id {ids}"
        )

    def holders_sql(self) -> str:
        """The identity keys among ``{ids}`` (here: keys, not ids), each with the id of
        the record holding it, as the driver gives it."""
        key = self._dialect.identifier_preparer.quote("key")
        return f"SELECT {key}, record_id FROM {self._name(s.keys)} WHERE {key} {{ids}}"

    def touched_sql(self) -> str:
        """The subjects among ``{ids}`` with a touch on a channel (one parameter): the
        ``(subject_id, at, seq)`` index finds each subject's touches."""
        return (
            f"SELECT DISTINCT subject_id FROM {self._name(s.touches)} "
            f"WHERE subject_id {{ids}} AND channel = {self._mark}"
        )

    @property
    def _mark(self) -> str:
        return "?" if self._dialect.paramstyle == "qmark" else "%s"

    @property
    def _for_update(self) -> str:
        return "" if self._dialect.name == "sqlite" else " FOR UPDATE"

    def position(self, table: sa.Table, name: str) -> int:
        """Where the column ``name`` sits in a converted row of :meth:`prepare`."""
        key = (table.name, name)
        found = self._positions.get(key)
        if found is None:
            names = [c.name for c in _inserted_columns(table)]
            found = self._positions[key] = names.index(name)
        return found

    def converter(
        self, column: sa.Column[Any], *, bound: bool = False
    ) -> Callable[[Any], Any] | None:
        """What a value of ``column`` is converted with for the driver (None: as is);
        ``bound``: for a statement's parameter only (see :meth:`_converter`)."""
        return self._converter(column, bound=bound)

    def multi_row_sql(self, table: sa.Table, count: int) -> str:
        """:meth:`prepare`'s ``INSERT`` of ``count`` rows in one statement, their values
        one after the other in its parameters."""
        found = self._multi_row.get((table.name, count))
        if found is None:
            head, _, row = self.prepare(table)[0].partition(" VALUES ")
            found = self._multi_row[(table.name, count)] = (
                f"{head} VALUES {', '.join([row] * count)}"
            )
        return found

    def copy_sql(self, table: sa.Table) -> str:
        """``COPY ... FROM STDIN`` for the columns :meth:`prepare` converts (PostgreSQL)."""
        return f"COPY {self._name(table)} ({', '.join(self._quoted(table))}) FROM STDIN"

    def name(self, table: sa.Table) -> str:
        """The table's name as SQL, quoted, in its schema."""
        return self._name(table)

    def _name(self, table: sa.Table) -> str:
        preparer = self._dialect.identifier_preparer
        name = preparer.quote(table.name)
        if self._schema is not None:
            name = f"{preparer.quote_schema(self._schema)}.{name}"
        return name

    def _quoted(self, table: sa.Table) -> list[str]:
        quote = self._dialect.identifier_preparer.quote
        return [quote(c.name) for c in _inserted_columns(table)]

    def _compile(self, table: sa.Table) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
        dialect = self._dialect
        columns = _inserted_columns(table)
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        marks = []
        for column in columns:
            if dialect.name == "postgresql" and s.is_document(column):
                marks.append(f"CAST({mark} AS JSONB)")
            else:
                marks.append(mark)
        sql = (
            f"INSERT INTO {self._name(table)} ({', '.join(self._quoted(table))}) "
            f"VALUES ({', '.join(marks)})"
        )
        converters = [self._converter(c, bound=True) for c in columns]
        return sql, _row_converter(table.name, [c.name for c in columns], converters)

    def _converter(
        self, column: sa.Column[Any], *, bound: bool = False
    ) -> Callable[[Any], Any] | None:
        """How a value of ``column`` is given to the driver. ``bound``: only as a
        parameter of a statement (an insert's or update's row), never a dict key or a
        set member, which lets SQLite take its ids and flags in the form it binds
        fastest (see :func:`_uuid_blob`)."""
        kind = self._dialect.name
        if isinstance(column.type, s.Uuid):
            if kind == "postgresql":
                return None
            return _uuid_blob if bound and kind == "sqlite" else _uuid_bytes
        if bound and kind == "sqlite" and isinstance(column.type, sa.Boolean):
            return int
        if isinstance(column.type, s.UtcDateTime):
            if kind == "sqlite":
                return _sqlite_micros
            if kind == "postgresql":
                return None
            return _naive_utc
        if s.is_document(column):
            return _dumps
        return None


def _row_converter(
    table: str, names: list[str], converters: list[Callable[[Any], Any] | None]
) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function making a row (a dict by column name) the tuple the driver inserts:
    each column's value in order, converted where ``converters`` has a function (a value
    of None stays None). Generated once per table, as ``dataclasses`` generates its
    methods, so that a bulk insert pays one subscript a column and one call a converted
    value, not a loop over the columns of every row. The names are the schema's own and
    enter the code as literals (``repr``)."""
    namespace: dict[str, Any] = {}
    values = []
    for i, (name, convert) in enumerate(zip(names, converters, strict=True)):
        if convert is None:
            values.append(f"row[{name!r}]")
        else:
            namespace[f"_f{i}"] = convert
            values.append(f"(None if (_v{i} := row[{name!r}]) is None else _f{i}(_v{i}))")
    source = f"def convert(row):\n    return ({', '.join(values)},)\n"
    exec(compile(source, f"<leadfunnel row of {table}>", "exec"), namespace)
    function: Callable[[dict[str, Any]], tuple[Any, ...]] = namespace["convert"]
    return function


def _nullable(columns: list[sa.Column[Any]]) -> list[int]:
    """Where the columns are whose ``NULL`` an insert may leave out: nullable, and with
    no default that would stand in for it."""
    return [
        i
        for i, c in enumerate(columns)
        if c.nullable and not c.primary_key and c.default is None and c.server_default is None
    ]


def _null_mask(table: str, columns: list[sa.Column[Any]]) -> Callable[[tuple[Any, ...]], int]:
    """A function of a converted row giving which of its nullable columns are ``None``,
    one bit each in column order (generated, as :func:`_row_converter`)."""
    nullable = _nullable(columns)
    bits = " | ".join(f"((row[{i}] is None) << {bit})" for bit, i in enumerate(nullable))
    namespace: dict[str, Any] = {}
    source = f"def nulls(row):\n    return {bits or '0'}\n"
    exec(compile(source, f"<leadfunnel nulls of {table}>", "exec"), namespace)
    function: Callable[[tuple[Any, ...]], int] = namespace["nulls"]
    return function


def _inserted_columns(table: sa.Table) -> list[sa.Column[Any]]:
    # Autoincremented keys (``seq``) are left to the database.
    return [c for c in table.columns if not (c.primary_key and c.autoincrement is True)]


# Bulk rows share a few instants (an import stamps every row with one): convert once.
_sqlite_micros = functools.lru_cache(maxsize=1024)(s.to_sqlite_micros)


_ANY_SUPPRESSED = sa.select(sa.literal(1)).select_from(s.suppressions).limit(1)
_ANY_SUPPRESSED_LOCKED = _ANY_SUPPRESSED.with_for_update(read=True)


_ZERO = timedelta(0)


def _same(value: Any) -> Any:
    return value


def _uuid_bytes(value: UUID) -> bytes:
    return value.int.to_bytes(16, "big")  # what UUID.bytes does, without its property


def _uuid_blob(value: UUID) -> bytearray:
    """An id as a parameter of SQLite's ``executemany``. Python's ``sqlite3`` binds an
    ``int``, ``float``, ``str`` or ``bytearray`` at once, but looks every other value
    (``bytes``, ``bool``, ``None``) up among its adapters first, which cost about 0.3 us
    a value: a dozen a lead in an import, 5% of its time. The same 16 bytes are stored."""
    return bytearray(value.int.to_bytes(16, "big"))


def _uuid_of(value: bytes) -> UUID:
    """An id as a driver other than psycopg gives it (16 bytes) made a UUID again."""
    return UUID(bytes=bytes(value))


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


# --- engine ---------------------------------------------------------------------------


def _refuse_a_missing_sqlite_file(url: str | sa.URL | Engine) -> None:
    """Connecting to SQLite creates the file: a typo in a URL must not."""
    if isinstance(url, Engine):
        return
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        return  # _make_engine explains
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if parsed.database.startswith("file:") or os.path.exists(parsed.database):
        return
    raise ConfigError(
        f"there is no database file at {parsed.database}; check the URL, or create it "
        "with `leadfunnel migrate` (or SqlRepository(url, migrate='auto'))"
    )


def _make_engine(url: str | sa.URL | Engine, options: dict[str, Any]) -> Engine:
    if isinstance(url, Engine):
        engine = url
    else:
        try:
            parsed = sa.make_url(url)
        except sa_exc.ArgumentError as exc:
            raise ConfigError(
                f"{url!r} is not a database URL; write e.g. sqlite:///funnel.db, "
                "postgresql+psycopg://user@host/db or mysql+pymysql://user@host/db"
            ) from exc
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            options.setdefault("connect_args", {}).setdefault("timeout", _SQLITE_BUSY_SECONDS)
            if parsed.database in (None, "", ":memory:"):
                options.setdefault("poolclass", StaticPool)
                options["connect_args"].setdefault("check_same_thread", False)
        elif backend not in ("postgresql", "mysql", "mariadb"):
            raise ConfigError(
                f"leadfunnel stores in SQLite, PostgreSQL or MariaDB/MySQL, not {backend!r}; "
                "write e.g. sqlite:///funnel.db"
            )
        if backend in ("postgresql", "mysql", "mariadb"):
            options.setdefault("pool_pre_ping", True)
        # A failed statement's text would carry its parameters (names, e-mails, phones)
        # into every logged exception chain: keep personal data out of error messages.
        options.setdefault("hide_parameters", True)
        options.setdefault("json_serializer", _dumps)
        options.setdefault("json_deserializer", _loads)
        try:
            engine = sa.create_engine(parsed, **options)
        except (sa_exc.NoSuchModuleError, ImportError) as exc:
            extra = _DRIVERS.get(backend, "the database driver")
            raise ConfigError(
                f"cannot use {parsed.drivername!r}: {exc}; install {extra}, "
                "or use a URL like sqlite:///funnel.db"
            ) from exc
        except (sa_exc.ArgumentError, TypeError) as exc:
            raise ConfigError(f"bad database options for {parsed.drivername!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    """The documented recipe for the sqlite3 driver's legacy transaction mode.

    The driver begins transactions itself, late and without SELECTs; turn that off and
    let SQLAlchemy's ``begin`` emit ``BEGIN`` (``BEGIN IMMEDIATE`` for a write, so that
    writers queue on the busy timeout instead of failing when they upgrade their lock).
    """
    memory = isinstance(engine.pool, StaticPool)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # What where= filters compare Decimal and datetime fields by (see _DocField).
        dbapi_connection.create_function("lf_decimal", 1, _sqlite_decimal, deterministic=True)
        dbapi_connection.create_function("lf_instant", 1, _sqlite_instant, deterministic=True)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory:
                _set_wal(cursor)
                # Checkpoint every ~40 MB of log rather than 4 MB: a page that several
                # commits touch is written back once (bulk imports: about 12% faster).
                cursor.execute("PRAGMA wal_autocheckpoint = 10000")
                # WAL + NORMAL: a committed transaction survives a crash of the process;
                # only a power loss can lose the last few.
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("leadfunnel_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _set_wal(cursor: Any) -> None:
    """Put the database in WAL mode (it stays so), waiting out other connections.

    Switching needs a moment alone with the file, and SQLite answers "locked" at once
    instead of waiting, when several connections open a new database together.
    """
    for attempt in range(100):
        (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            if attempt == 99:
                raise
            time.sleep(0.01 * min(attempt + 1, 10))


@contextmanager
def _translated(changes: ChangeSet | None = None) -> Iterator[None]:
    """Let our own errors and integrity errors through; turn driver errors into ours.

    A deadlock or serialisation failure while committing ``changes`` is a lost race,
    reported as :class:`~leadfunnel.ConcurrencyError` so that callers retry as they do
    for a stale version.
    """
    try:
        yield
    except (LeadFunnelError, sa_exc.IntegrityError):
        raise
    except sa_exc.DBAPIError as exc:
        under = _error_under(exc)
        if under is not None:
            # A savepoint that could not roll back after our own error (MySQL lost it
            # with the transaction, on a deadlock): that error is what happened.
            raise under from exc
        if changes is not None and _lost_race(exc):
            records = [*changes.updates, *changes.deletes, *changes.inserts, *changes.checks]
            first = next(iter(records), None)
            if first is not None:
                raise ConcurrencyError(first.id, first.version, None) from exc
            # A change of touches, events or suppressions alone: name its subject.
            subjects = [t.subject_id for t in changes.touches]
            subjects += [e.subject_id for e in changes.events]
            subject = subjects[0] if subjects else None
            raise ConcurrencyError(
                subject or UUID(int=0),
                0,
                message="this change lost a race with another writer (a deadlock); "
                "nothing of it was stored: read again and retry",
            ) from exc
        if isinstance(exc, sa_exc.DataError):
            # A value the database refuses (too long for its column, out of range, not
            # a number): retrying the same change fails the same way.
            raise StorageError(
                f"the database refused a value: {_first_line(exc.orig)}; nothing of this "
                "change was stored. This is no connection or locking problem, and retrying "
                "will not help: the database will not take the value (one that "
                "leadfunnel's models accept should always store: please report it)",
                of_value=True,
            ) from exc
        raise StorageError(
            f"the database failed: {_first_line(exc.orig)}; nothing of this change was "
            "stored. Retry, or check that the database is reachable and not locked"
        ) from exc
    except sa_exc.StatementError as exc:
        if isinstance(exc.orig, ValueError):
            raise ValueError(str(exc.orig)) from None
        raise StorageError(f"the database failed: {exc}") from exc


#: How long ``compact()`` tries again a WAL checkpoint that another reader blocks.
COMPACT_WAIT = 10.0


def _checkpoint(cursor: Any) -> None:
    """Copy SQLite's write-ahead log into the database and truncate it, or raise
    :class:`~leadfunnel.StorageError` if readers keep it busy for :data:`COMPACT_WAIT`
    seconds (``PRAGMA wal_checkpoint`` answers "busy" rather than fail, and the log,
    with whatever it holds, stays as it was)."""
    deadline = time.monotonic() + COMPACT_WAIT
    pause = 0.05
    while True:
        row = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if row is None or not row[0]:
            return
        if time.monotonic() >= deadline:
            raise StorageError(
                "compact() could not finish: another connection is reading the "
                "database (an open read transaction, in this or another process), so "
                "SQLite cannot clear its write-ahead log, and erased data may still be "
                "in the -wal file. Nothing is lost; let those reads end (close idle "
                "connections: web workers, a SQLite browser) and run "
                "repository.compact() again"
            )
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


# PostgreSQL SQLSTATEs and MySQL error numbers of a transaction that lost a race.
_PG_RACES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_MYSQL_RACES = frozenset({1205, 1213})  # lock wait timeout, deadlock


_MYSQL_DEADLOCK = 1213  # rolls the whole transaction back, savepoints and all


def _lost_race(exc: sa_exc.DBAPIError) -> bool:
    """Whether ``exc``, or the error it replaced (MySQL's "SAVEPOINT ... does not exist"
    when the savepoint's rollback follows a deadlock that ended the transaction), is a
    deadlock or serialisation failure."""
    return any(_raced(error) for error in _chain(exc))


def _raced(error: BaseException) -> bool:
    orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    if getattr(orig, "sqlstate", None) in _PG_RACES:
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return len(args) > 0 and args[0] in _MYSQL_RACES


def _whole_transaction_lost(exc: BaseException) -> bool:
    """Whether ``exc`` came of a MySQL deadlock, which ended the whole transaction."""
    for error in _chain(exc):
        orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
        args: tuple[Any, ...] = getattr(orig, "args", ())
        if args[:1] == (_MYSQL_DEADLOCK,):  # PostgreSQL errors have text there
            return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then the errors it was raised from or while handling, and theirs."""
    seen: set[int] = set()
    waiting: list[BaseException] = [exc]
    while waiting:
        error = waiting.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        waiting.extend(e for e in (error.__cause__, error.__context__) if e is not None)


def _error_under(exc: sa_exc.DBAPIError) -> LeadFunnelError | None:
    """Our own error that ``exc`` was raised while handling, if any."""
    return next((e for e in _chain(exc) if isinstance(e, LeadFunnelError)), None)


def _first_line(error: BaseException | None) -> str:
    text = str(error) if error is not None else "unknown error"
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


# --- rows and documents ---------------------------------------------------------------


def _person_row(record: Lead | Contact) -> dict[str, Any]:
    """The columns of a lead's or contact's row (kind apart), in one dict literal: a
    bulk import makes one a row."""
    email = record.email
    opt_outs = record.opt_outs
    return {
        "id": record.id,
        "version": record.version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "doc": _document(record),
        "erased_at": record.erased_at,
        "owner": record.owner,
        "source": record.source,
        "email_domain": trait_key(email.rpartition("@")[2], "email_domain") if email else None,
        "company_key": trait_key(record.company, "company"),
        "last_name_key": trait_key(record.last_name, "last_name"),
        "opt_outs": ",".join(sorted(c.value for c in opt_outs)) if opt_outs else None,
    }


def _record_row(record: Record) -> dict[str, Any]:
    if isinstance(record, Lead):
        row = _person_row(record)
        row["status"] = record.status.value
        row["status_at"] = record.status_at
        row["profile"] = record.profile
        row["contact_id"] = record.contact_id
        return row
    if isinstance(record, Contact):
        row = _person_row(record)
        row["type"] = record.type.value
        row["lead_id"] = record.lead_id
        return row
    return {
        "id": record.id,
        "version": record.version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "doc": _document(record),
        "stage": record.stage.value,
        "owner": record.owner,
        "setter": record.setter,
        "contact_id": record.contact_id,
        "lead_id": record.lead_id,
        "appointment_at": record.appointment_at,
        "lost_reason": None if record.lost_reason is None else record.lost_reason.value,
        "closed_at": record.closed_at,
    }


def _touch_row(touch: Touch) -> dict[str, Any]:
    return {
        "id": touch.id,
        "subject_id": touch.subject_id,
        "at": touch.at,
        "channel": Channel(touch.channel).value,
        "outcome": Outcome(touch.outcome).value,
        "doc": _document(touch),
    }


def _event_row(event: Event, position: int) -> dict[str, Any]:
    return {
        "id": event.id,
        "subject_id": event.subject_id,
        "subject": event.subject,
        "name": event.name,
        "at": event.at,
        "doc": _event_document(event),
        "position": position,
    }


# An event's row holds these in columns: its document leaves them out (read back from
# the columns, see ``_event``), and so the times and version almost every event has.
_EVENT_COLUMNS = frozenset({"id", "subject_id", "subject", "name", "position"})
# What an event's document leaves out, by (at in UTC, created_at is at, updated_at is at,
# version 1, no data): the sets are made once, not per event.
_LEFT_OUT_WHEN = ("at", "created_at", "updated_at", "version", "data")
_LEAVE_OUT: dict[tuple[bool, ...], set[str]] = {
    flags: set(_EVENT_COLUMNS).union(
        name for name, out in zip(_LEFT_OUT_WHEN, flags, strict=True) if out
    )
    for flags in itertools.product((False, True), repeat=5)
}
_EVENT_READ = tuple(
    s.events.c[name] for name in ("id", "subject_id", "subject", "name", "at", "position", "doc")
)


def _event_document(event: Event) -> str:
    """The event's document, without what its columns hold: ``at`` when it is in UTC
    (the column keeps the instant in UTC), ``created_at`` and ``updated_at`` when they
    are ``at`` exactly, a version of 1 and empty data. An import's event shrinks from
    about 260 bytes to 30."""
    values = event.__dict__
    at = values["at"]
    if (
        at.tzinfo is UTC
        and values["created_at"] is at
        and values["updated_at"] is at
        and values["version"] == 1
        and not values["data"]
        and type(event) is Event
    ):
        # The event a use case made (``event()`` dates it once): the texts alone, whose
        # few combinations in a run (an import's are all alike) are encoded once.
        return _texts_document(*[values[name] for name in _TEXT_FIELDS])
    at = event.at
    offset = at.utcoffset()
    utc = offset == _ZERO
    dated = event.created_at
    changed = event.updated_at
    flags = (
        utc,
        dated == at and dated.utcoffset() == offset,
        changed == at and changed.utcoffset() == offset,
        event.version == 1,
        not event.data,
    )
    if flags == _ALL_LEFT_OUT and type(event) is Event:
        # The common event (an import's, a trigger's): what is left is a few texts or
        # None, encoded at once rather than through the serializer's exclusions.
        values = event.__dict__
        return pydantic_core.to_json(
            {name: values[name] for name in _TEXT_FIELDS if values[name] is not None}
        ).decode()
    return event.model_dump_json(exclude=_LEAVE_OUT[flags], exclude_none=_skip_none(Event))


_ALL_LEFT_OUT = (True,) * len(_LEFT_OUT_WHEN)
#: What an event's document holds when everything else is left out: its texts (source,
#: dest, actor, reason), each ``str`` or ``None``.
#: (``tests/test_stored_documents.py`` checks that this gives what the serializer does.)
_TEXT_FIELDS = tuple(name for name in Event.model_fields if name not in _LEAVE_OUT[_ALL_LEFT_OUT])


@functools.lru_cache(maxsize=1024)
def _texts_document(*texts: str | None) -> str:
    """The document of an event that holds only its ``_TEXT_FIELDS`` (``texts``)."""
    return pydantic_core.to_json(
        {name: text for name, text in zip(_TEXT_FIELDS, texts, strict=True) if text is not None}
    ).decode()


def _none_is_default(model: type[pydantic.BaseModel]) -> bool:
    return all(
        field.default is None and field.default_factory is None
        for field in model.model_fields.values()
        if _accepts_none(field.annotation)
    )


def _accepts_none(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


# Leaving out None fields shrinks documents by a quarter; it is safe only where a
# missing field reads back as None, i.e. every field that accepts None defaults to it.
_skip_none = functools.cache(_none_is_default)  # per model class: subclasses too


def _document(model: pydantic.BaseModel) -> str:
    # By field name, even for a model that dumps by alias (``serialize_by_alias``): the
    # stored validator reads names, and where= filters look fields up by name.
    return model.model_dump_json(by_alias=False, exclude_none=_skip_none(type(model)))


def _as_dict(doc: Any) -> dict[str, Any]:
    return doc if isinstance(doc, dict) else _loads(doc)


#: The validator of a stored document, per model class (see :func:`stored_validator`).
_VALIDATORS: dict[type[Record], Callable[[Any], Record]] = {}


def _validator(model: type[Record]) -> Callable[[Any], Record]:
    found = _VALIDATORS.get(model)
    if found is None:
        found = _VALIDATORS[model] = stored_validator(model)
    return found


def _build(model: type[Record], data: dict[str, Any]) -> Record:
    """``data``, a stored document, as ``model``. Fields are stored and read by name; a
    key that is a field's alias (a document written by alias) is read as that field.
    Keys that are no field's (a field the application removed from its model) are left
    out; a value that no longer validates, or a field held twice with two values, is an
    error naming the record and the field, never dropped."""
    validate = _validator(model)
    try:
        return validate(data)
    except pydantic.ValidationError as exc:
        problems = exc.errors(include_url=False)
    unknown = {str(p["loc"][0]) for p in problems if p["type"] == "extra_forbidden"}
    if unknown and len(unknown) == len(problems):
        data = _by_name(model, data, unknown)
        try:
            return validate(data)
        except pydantic.ValidationError as exc:
            problems = exc.errors(include_url=False)  # a value read by its alias
    bad = next(p for p in problems if p["type"] != "extra_forbidden")
    where = ".".join(str(part) for part in bad["loc"])
    raise StorageError(
        f"the stored {model.kind} {data.get('id')} has {where}={bad['input']!r}, which "
        f"{model.__name__} does not accept ({bad['msg']}); change the model back or "
        "correct the stored value"
    ) from None


def _by_name(model: type[Record], data: dict[str, Any], unknown: set[str]) -> dict[str, Any]:
    """``data`` without its ``unknown`` keys: each that is an alias of a field of
    ``model`` (see :func:`stored_aliases`) put under the field's name, the others (no
    field's) left out."""
    aliases = stored_aliases(model)
    placed = {key: value for key, value in data.items() if key not in unknown}
    came_as: dict[str, str] = {name: name for name in placed}
    for key in sorted(unknown):
        name = aliases.get(key)
        if name is None:
            continue
        if name in placed and placed[name] != data[key]:
            raise StorageError(
                f"the stored {model.kind} {data.get('id')} holds its field {name} twice, "
                f"as {came_as[name]}={placed[name]!r} and as {key}={data[key]!r}; "
                "correct the stored document so that it holds one"
            )
        placed[name] = data[key]
        came_as.setdefault(name, key)
    return placed


_M = TypeVar("_M", Event, Touch)


def _moved(model: type[_M], doc: Any, subject_id: UUID) -> _M:
    data = _as_dict(doc)
    data["subject_id"] = subject_id  # a merge re-points rows without rewriting documents
    return model.model_validate(data)


def _event(row: Any) -> Event:
    """An event from its row (:data:`_EVENT_READ`): the document, completed from the
    columns (see :func:`_event_document`; a document written whole reads the same)."""
    data = _as_dict(row.doc)
    data["subject_id"] = row.subject_id  # a merge re-points rows, not documents
    data["position"] = row.position  # given at commit, after the document was written
    data.setdefault("id", row.id)
    data.setdefault("subject", row.subject)
    data.setdefault("name", row.name)
    at = data.setdefault("at", row.at)
    data.setdefault("created_at", at)
    data.setdefault("updated_at", at)
    data.setdefault("version", 1)
    return Event.model_validate(data)


def _opt_outs(value: str | None) -> frozenset[Channel]:
    return frozenset(Channel(v) for v in value.split(",")) if value else frozenset()


def _merge_doc(log: MergeLog) -> str:
    def person(record: Lead | Contact) -> dict[str, Any]:
        return {"kind": record.kind, "doc": record.model_dump(mode="json", by_alias=False)}

    return _dumps(
        {
            "id": str(log.id),
            "keep_id": str(log.keep_id),
            "at": log.at.isoformat(),
            "keep_before": person(log.keep_before),
            "other": person(log.other),
            "keep_version": log.keep_version,
            "touch_ids": [str(i) for i in log.touch_ids],
            "event_ids": [str(i) for i in log.event_ids],
            "opportunities_before": [
                o.model_dump(mode="json", by_alias=False) for o in log.opportunities_before
            ],
        }
    )


def _merge_log(doc: Any, record_of: Callable[[str, Any], Record]) -> MergeLog:
    data = _as_dict(doc)

    def person(part: dict[str, Any]) -> Lead | Contact:
        record = record_of(part["kind"], part["doc"])
        assert isinstance(record, (Lead, Contact))
        return record

    return MergeLog(
        id=UUID(data["id"]),
        keep_id=UUID(data["keep_id"]),
        at=datetime.fromisoformat(data["at"]),
        keep_before=person(data["keep_before"]),
        other=person(data["other"]),
        keep_version=int(data["keep_version"]),
        touch_ids=tuple(UUID(i) for i in data["touch_ids"]),
        event_ids=tuple(UUID(i) for i in data["event_ids"]),
        opportunities_before=tuple(
            cast(Opportunity, record_of("opportunity", o)) for o in data["opportunities_before"]
        ),
    )
