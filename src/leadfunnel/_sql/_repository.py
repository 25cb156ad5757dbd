"""``SqlRepository``: the storage port on SQLAlchemy 2 Core (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import threading
import time
import typing
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NoReturn, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from .._clock import require_aware
from .._enums import Channel, ContactType, LeadStatus, Stage
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
    RECORD_TYPES,
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
    shares_key_sources,
)
from .._periods import month_of
from .._repository import (
    DO_NOT_CALL,
    NO_VALUE,
    ChangeSet,
    Cursor,
    FollowUpCandidate,
    FollowUpStats,
    GroupBy,
    MergeLog,
    RepListKind,
    RepListRow,
    RepRowsAdapter,
    StageTime,
    StepCount,
    came_due,
    check_grouping,
    check_rep_list,
    json_value,
    keyset_pages,
    missed_appointment,
    missing_value,
    read_changed,
    refuse_suppressed,
    text_filter,
    trait_key,
    where_values,
)
from . import _loader_lock as loader_lock
from . import _schema as s
from ._driver import ANY_SUPPRESSED, ANY_SUPPRESSED_LOCKED, DriverStatements, as_is, uuid_of
from ._engine import (
    checkpoint_wal,
    first_line,
    lacks_schema,
    make_engine,
    refuse_a_missing_sqlite_file,
    translated,
    use_wal,
    whole_transaction_lost,
    without_secrets,
)
from ._queries import (
    DocField,
    equal_values,
    filter_value,
    follow_up_candidate_queries,
    follow_up_query,
    period_params,
    stage_times_query,
    step_counts_query,
    won_conditions,
)
from ._rows import (
    EVENT_READ,
    build_record,
    changed_row,
    doc_as_dict,
    document_of,
    document_value,
    event_from_row,
    event_row,
    merge_doc,
    merge_log_from,
    moved_to,
    opt_outs_of,
    reads_every_key,
    record_row,
    touch_row,
    undeclared,
    with_keys,
)

__all__ = ["SqlRepository"]

_T = TypeVar("_T")
_log = logging.getLogger("leadfunnel")
_BATCH = 500  # ids per IN (...) list
_COPY_FROM = 16  # rows from which PostgreSQL inserts go through COPY
_MIGRATE = ("auto", "check", "never")
#: A load into a SQLite store holding fewer people than this builds the indexes of
#: ``schema.DEFERRABLE`` at its end (see SqlRepository.loading): then building them
#: over the whole store costs about what the load saves, or much less.
_DEFER_BELOW = 10_000
#: ... once the load has stored this many records: below it the indexes fit in the page
#: cache, and building them again at the end costs about what the load saves.
_DEFER_AFTER = 100_000


def _batches(items: Sequence[_T], size: int = _BATCH) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlRepository(RepRowsAdapter):
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
        if migrate != "auto":
            refuse_a_missing_sqlite_file(url)
        self._engine = make_engine(url, engine_options)
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
        self._driver = DriverStatements(self._engine.dialect, schema)
        # Ids as the driver sends and returns them (16 bytes on SQLite and MariaDB).
        self._raw_id = self._driver.converter(s.leads.c.id) or as_is
        # ... and as a statement's parameter only (the driver's fastest form).
        self._bound_id = self._driver.converter(s.leads.c.id, bound=True) or as_is
        self._id_of: Callable[[Any], UUID] = as_is if self.dialect == "postgresql" else uuid_of
        # The records read from documents holding keys their model does not declare,
        # by ``id()``, while they live (see _whole_reads).
        self._partial_reads: weakref.WeakValueDictionary[int, Record] = (
            weakref.WeakValueDictionary()
        )
        # ... and the keys each of them left out, with their values.
        self._partial_extras: dict[int, dict[str, Any]] = {}
        # The records read from merge logs' snapshots, while they live.
        self._snapshots: weakref.WeakValueDictionary[int, Record] = weakref.WeakValueDictionary()
        # The list and count statements, built once per shape (see _statement).
        self._lists: dict[tuple[Any, ...], sa.Select[Any]] = {}
        # The schema version found when opened with migrate="never" (which may be older).
        self._found_version = s.SCHEMA_VERSION
        # The loading() blocks open, across threads, and what the outermost one put
        # off (see loading).
        self._loads = 0
        self._loads_lock = threading.Lock()
        self._load: _Load | None = None
        # Held while the put-off indexes are dropped or built: a block's end waits for a
        # drop under way; and whether a build failed and is still to be done.
        self._defer_lock = threading.Lock()
        self._pending_build = False
        # The file whose lock a loader of this SQLite store holds (see _loader_lock).
        self._loader_file = (
            loader_lock.lock_path(self._engine.url) if self.dialect == "sqlite" else None
        )
        try:
            with self._serial:
                if migrate == "never":
                    self._read_version()  # nothing written, the journal mode included
                else:
                    self._open_schema()
                    use_wal(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        url = without_secrets(self.url)
        return f"SqlRepository({url!r}{'' if self.schema is None else f', schema={self.schema!r}'})"

    @property
    def _where(self) -> str:
        """The database, as errors name it: its URL (password and secret query
        parameters hidden) and schema."""
        url = without_secrets(self.url)
        return url if self.schema is None else f"{url} (schema {self.schema})"

    def close(self) -> None:
        self._engine.dispose()

    # --- schema -----------------------------------------------------------------------

    def _open_schema(self) -> None:
        attempts = 6
        for attempt in range(attempts):
            try:
                # From the third look on, an empty version table beside complete tables
                # is an opening that stopped just before its last statement: finish it.
                self._open_schema_once(finish=attempt >= 2)
                return
            except ConfigError as exc:
                # Two processes creating the tables at once: one wins, the other fails
                # or (MySQL commits each CREATE at once) finds them half made; a second
                # look a moment later finds them complete.
                retry = isinstance(exc, _Unversioned) or (
                    self._reached and isinstance(exc.__cause__, sa_exc.DBAPIError)
                )
                if attempt == attempts - 1 or not retry:
                    raise _plain(exc) from exc.__cause__
                time.sleep(0.05 * 2**attempt)

    def _open_schema_once(self, *, finish: bool = False) -> None:
        where = self._where
        self._reached = False  # a failure before connecting is not worth a retry
        # A check writes nothing: a plain (deferred) transaction, which on SQLite never
        # waits for a writer (BEGIN IMMEDIATE queued behind a long import).
        opener = self._writer if self.migrate == "auto" else self._engine
        try:
            with opener.begin() as conn:
                self._reached = True
                inspector = sa.inspect(conn)
                if not inspector.has_table(s.schema_table.name, schema=self.schema):
                    if self.migrate == "check":
                        raise ConfigError(
                            f"there are no leadfunnel tables at {where}; check the URL, "
                            "or create them with `leadfunnel migrate` (or "
                            "SqlRepository(url, migrate='auto'))"
                        )
                    self._refuse_foreign_tables(inspector, where)
                    # The version table last: once it exists, so do all the others.
                    others = [t for t in s.metadata.sorted_tables if t is not s.schema_table]
                    s.metadata.create_all(conn, tables=others)
                    s.start_counter(conn)
                    # The store's own suppression secret, made with the store: made on
                    # first use instead, inside an application's transaction() block
                    # that rolls back, it would be gone while this process hashes with it.
                    # (Unless an opening that stopped before the version table made it.)
                    _keep_secret(conn)
                    s.schema_table.create(conn, checkfirst=True)
                    conn.execute(sa.insert(s.schema_table).values(id=1, version=s.SCHEMA_VERSION))
                    return
                try:
                    found = self._version_in(conn, where)
                except _Unversioned:
                    if not finish or self.migrate != "auto":
                        raise
                    self._finish_creation(conn, inspector, where)
                    return
                if found < s.SCHEMA_VERSION and self.migrate == "check":
                    raise ConfigError(
                        f"the database at {where} has leadfunnel schema version {found}, "
                        f"older than this leadfunnel's ({s.SCHEMA_VERSION}); upgrade it with "
                        "`leadfunnel migrate` (or SqlRepository(url, migrate='auto'))"
                    )
                for version in range(found + 1, s.SCHEMA_VERSION + 1):
                    s.MIGRATIONS[version](conn)
                if found < s.SCHEMA_VERSION:
                    conn.execute(sa.update(s.schema_table).values(version=s.SCHEMA_VERSION))
                if (
                    self.migrate == "auto"
                    and self.dialect == "sqlite"
                    and self.schema is None
                    and _missing_indexes(conn)
                    # (while a load that put them off runs, they are its to build)
                    and not loader_lock.running(self._loader_file)
                ):
                    # Indexes a loading() block put off: its process stopped inside it.
                    _build_missing_indexes(conn)
                if self.migrate == "auto":
                    # The suppression secret with the store, not on first use: version 3
                    # made its table empty, and a secret first made inside an application's
                    # transaction() that rolls back would be gone while this process hashes
                    # with it (after a restart, every add refused). One query when it exists.
                    _keep_secret(conn)
        except sa_exc.DBAPIError as exc:
            problem = first_line(exc.orig)
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

    def _finish_creation(self, conn: Connection, inspector: Any, where: str) -> None:
        """Record this version in the empty version table of tables that are all
        leadfunnel's, as this version makes them: what an opening cut off just before
        its last statement leaves (MariaDB commits each ``CREATE`` on its own; SQLite
        and PostgreSQL undo the whole opening instead). Anything else stays refused."""
        tables = s.metadata.sorted_tables
        columns_of = self._columns_of(inspector, tables)
        unlike = [
            table.name
            for table in tables
            if columns_of.get(table.name) != {column.name for column in table.columns}
        ]
        if unlike:
            raise _Unversioned(
                f"the leadfunnel tables at {where} have no schema version, and "
                f"{', '.join(unlike)} are missing or not as this leadfunnel makes them: "
                "they were not written by this version of leadfunnel; use another "
                "database or schema"
            )
        s.start_counter(conn)
        _keep_secret(conn)
        conn.execute(sa.insert(s.schema_table).values(id=1, version=s.SCHEMA_VERSION))

    def _version_in(self, conn: Connection, where: str) -> int:
        """The schema version recorded in ``conn``'s database, refused if newer than this
        leadfunnel's, or if the version table holds none."""
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
        return int(found)

    def _read_version(self) -> None:
        """``migrate="never"``: read the schema version (one query, nothing written) and
        refuse a database without leadfunnel's tables or at a newer version. An older
        one is opened as it is: what needs the newer schema says to upgrade it (see
        :meth:`_lacking`)."""
        where = self._where
        try:
            with self._engine.connect() as conn:
                self._found_version = self._version_in(conn, where)
        except _Unversioned as exc:
            raise _plain(exc) from None
        except sa_exc.DBAPIError as exc:
            if lacks_schema(exc):
                raise ConfigError(
                    f"there are no leadfunnel tables at {where}; check the URL, or create "
                    "them with `leadfunnel migrate` (or SqlRepository(url, migrate='auto'))"
                ) from exc
            raise ConfigError(
                f"cannot open the database at {where}: {first_line(exc.orig)}; check the "
                "URL and that the server is running"
            ) from exc

    def _lacking(self, problem: str) -> LeadFunnelError:
        """The error of a statement that names a table or column the database lacks: a
        :class:`~leadfunnel.ConfigError` saying to upgrade a database opened with
        ``migrate="never"`` at an older version; else (the tables were made at this
        version) a :class:`~leadfunnel.StorageError`: they were changed since."""
        where = self._where
        found = self._found_version
        if found < s.SCHEMA_VERSION:
            return ConfigError(
                f"the database at {where} has leadfunnel schema version {found}, older "
                f"than this leadfunnel's ({s.SCHEMA_VERSION}), and was opened with "
                f"migrate='never' ({problem}); upgrade it with `leadfunnel migrate` (or open "
                "it with SqlRepository(url, migrate='auto')). Nothing was changed"
            )
        return StorageError(
            f"the database at {where} lacks a table or column of leadfunnel's schema "
            f"({problem}), which was made at this leadfunnel's version: something dropped "
            "or changed leadfunnel's tables since. Retrying will not help: restore them "
            "(from a backup), or move leadfunnel to a new database. Nothing was changed"
        )

    def _translated(
        self, changes: ChangeSet | None = None, *, reading: bool = False
    ) -> AbstractContextManager[None]:
        """:func:`translated`, with this store's error for a missing table or column."""
        return translated(changes, lacking=self._lacking, reading=reading)

    def _columns_of(self, inspector: Any, tables: list[sa.Table]) -> dict[str, set[str]]:
        """The names of the columns the database has for each of ``tables`` (those it
        has): one query for them all (reflecting them one at a time costs a round of
        catalogue queries each: seconds on MariaDB)."""
        reflected = inspector.get_multi_columns(
            schema=self.schema, filter_names=[table.name for table in tables]
        )
        return {name: {c["name"] for c in cols} for (_, name), cols in reflected.items()}

    def _refuse_foreign_tables(self, inspector: Any, where: str) -> None:
        """Refuse a database without leadfunnel's version table that has tables named
        like leadfunnel's without their columns (an application's own ``lf_leads``):
        creating the others and recording a version would leave a store whose every
        read fails. Tables with leadfunnel's columns are those of an opening that
        stopped before it made the version table (or is making it now), and are kept."""
        found = set(inspector.get_table_names(schema=self.schema))
        ours = [table for table in s.metadata.sorted_tables if table.name in found]
        if not ours:
            return
        columns_of = self._columns_of(inspector, ours)
        foreign = []
        for table in ours:
            columns = columns_of.get(table.name, set())
            missing = [c.name for c in table.columns if c.name not in columns]
            if missing:
                foreign.append(f"{table.name} (it has no {', '.join(missing)})")
        if foreign:
            raise ConfigError(
                f"the database at {where} has tables named like leadfunnel's that "
                f"leadfunnel did not make: {'; '.join(foreign)}. Give leadfunnel another "
                "database, or another schema (SqlRepository(url, schema=...)), or drop or "
                "rename those tables; nothing was created"
            )

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
            with self._translated(reading=True):
                yield current
            return
        with self._serial, self._translated(reading=True), self._engine.connect() as conn:
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
            if whole_transaction_lost(exc):
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
                # Retrying one change inside the block cannot help: the block must go.
                retryable=False,
            )
            raise error from lost

    def _current(self) -> Connection | None:
        """This thread's open transaction's connection, if it is in one."""
        conn: Connection | None = getattr(self._local, "conn", None)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """This thread's transaction (a savepoint inside one). Only its beginning and end
        are translated here: leadfunnel's own statements in the block are where they run
        (:meth:`_writing`, :meth:`_read`), and the application's own SQL on
        :attr:`connection` raises its errors as they are (and rolls the block back)."""
        current = self._current()
        if current is not None:
            self._refuse_lost()
            with self._noting_loss():
                with self._translated():
                    savepoint = current.begin_nested()
                with self._ending(savepoint):
                    yield
            return
        with self._serial:
            with self._translated():
                conn = self._writer.connect()
            try:
                with self._translated():
                    transaction = conn.begin()
                self._local.conn, self._local.lost = conn, None
                try:
                    with self._ending(transaction):
                        yield
                        # The block went on after the database rolled it all back (a
                        # caller caught the ConcurrencyError): commit none of it.
                        self._refuse_lost()
                finally:
                    self._local.conn = self._local.lost = None
            finally:
                conn.close()

    @contextmanager
    def loading(self) -> Iterator[None]:
        """See :meth:`Repository.loading`. On SQLite, a block that has stored 100,000
        records into a store that held fewer than 10,000 people when it began drops the
        indexes whose keys a load writes in no order (creation dates, owners, sources,
        e-mail domains, names: ``schema.DEFERRABLE``), and builds them once, by a sort,
        when it ends: past about that many people those indexes no longer fit in the
        page cache, and entry by entry each row makes SQLite write and read back a page
        of each (a 1M-row import: 13% less CPU, most of it the kernel's). None of them
        is unique or read by a write. Not inside a :meth:`transaction` block, and not
        unless the store manages its own schema (``migrate="auto"``).

        The load's records are stored by then: if building the indexes fails (another
        process holds the file longer than the busy timeout), that is logged, not
        raised, and this repository's next commit outside a block tries again. Should
        the process stop inside the block, the next opening of the store builds them
        (an opening while the loading process lives leaves them to it)."""
        with self._loads_lock:
            outer = self._loads == 0
            self._loads += 1
        load = None
        try:
            if outer and self._may_defer() and self._holds_few():
                load = self._load = _Load()
            yield
        finally:
            with self._loads_lock:
                self._loads -= 1
                if load is not None:
                    self._load = None  # no drop starts from here on
            if load is not None and load.pid == os.getpid():  # (not a forked child's)
                # After a drop under way (another thread's commit) has finished.
                with self._defer_lock:
                    if load.deferred:
                        # (also when another load had them put off: built if it has
                        # ended, left to it if not)
                        self._pending_build = True
                try:
                    self._build_pending(load.lock)
                finally:
                    if load.lock is not None:
                        load.lock.release()  # the indexes are anybody's to build now

    def _may_defer(self) -> bool:
        return (
            self.dialect == "sqlite"
            and self.schema is None  # (an attached database's indexes are not looked at)
            and self.migrate == "auto"
            and self._current() is None
        )

    def _holds_few(self) -> bool:
        """Whether the store holds fewer than ``_DEFER_BELOW`` people."""
        limit = int(_DEFER_BELOW)
        held = " + ".join(
            f"(SELECT count(*) FROM (SELECT 1 FROM {self._driver.name(t)} LIMIT {limit}))"
            for t in (s.leads, s.contacts)
        )
        with self._read() as conn:
            found: int = conn.exec_driver_sql(f"SELECT {held}").scalar_one()
        return found < limit

    def _loaded(self, changes: ChangeSet) -> None:
        """Before a commit inside a loading() block: once the block has stored
        ``_DEFER_AFTER`` records, drop the deferrable indexes (in a transaction of
        their own, so that a commit refused after it leaves them dropped as noted),
        holding the loader's lock (see :mod:`._loader_lock`) until the block ends; if
        another load holds it, nothing is dropped."""
        load = self._load
        if load is None or load.deferred or self._current() is not None:
            return
        with self._loads_lock:
            if self._load is not load or load.deferred:
                return
            load.stored += len(changes.inserts)
            if load.stored < _DEFER_AFTER:
                return
            load.deferred = True
        with self._defer_lock:
            if self._load is not load:
                return  # the block ended meanwhile: nothing to put off any more
            lock = loader_lock.take(self._loader_file)
            if lock is False:
                load.declined = True  # another load is under way: leave them to it
                return
            load.lock = lock
            with self._writing() as conn:
                for index in s.DEFERRED_INDEXES:
                    conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index.name}")

    def _build_pending(self, lock: loader_lock.LoaderLock | None = None) -> None:
        """Build the indexes a loading() block put off, if they are still to be built
        and no other load is under way (``lock``: the block's own, held); a failure is
        logged (after the lock is let go) and left for the next try: this repository's
        next commit outside a block, or the next opening of the store."""
        failed: LeadFunnelError | None = None
        with self._defer_lock:
            if not self._pending_build:
                return
            if lock is None and loader_lock.running(self._loader_file):
                return  # another process's load: it builds them when it ends
            try:
                with self._writing() as conn:
                    _build_missing_indexes(conn)
            except LeadFunnelError as exc:
                failed = exc
            else:
                self._pending_build = False
        if failed is not None:
            _log.warning(
                "leadfunnel: the indexes a bulk load put off could not be built yet "
                "(%s); the load's records are stored, and the indexes are built on "
                "the next try",
                str(failed).partition(";")[0],
            )

    @contextmanager
    def _ending(self, transaction: sa.engine.Transaction) -> Iterator[None]:
        """Commit ``transaction`` when the block ends, or roll it back if it raises: its
        error goes on as it is, even if the rollback fails too (MySQL ends the whole
        transaction on a deadlock, savepoints and all: the block's error says what
        happened; the connection is closed after)."""
        try:
            yield
        except BaseException:
            if transaction.is_active:
                with suppress(sa_exc.DBAPIError):
                    transaction.rollback()
            raise
        with self._translated():
            transaction.commit()

    @contextmanager
    def _writing(self, changes: ChangeSet | None = None) -> Iterator[Connection]:
        """A connection in a transaction of its own, or a savepoint in this thread's
        open transaction (a failed commit then undoes only itself)."""
        current = self._current()
        if current is not None:
            self._refuse_lost()
            with self._noting_loss(), self._translated(changes), current.begin_nested():
                yield current
            return
        with self._serial, self._translated(changes), self._writer.begin() as conn:
            yield conn

    # --- writes -----------------------------------------------------------------------

    def _commit(self, changes: ChangeSet) -> list[Event]:
        if self._load is not None:
            self._loaded(changes)
        elif self._pending_build and self._loads == 0 and self._current() is None:
            self._build_pending()
        try:
            with self._writing(changes) as conn:
                first = self._apply(conn, changes)
        except sa_exc.IntegrityError as exc:
            refusal = exc
        else:
            return placed(changes.events, first)
        # Explained outside the handler, so that a DuplicateError does not carry the
        # driver's error (which names the key) as its context.
        self._explain(changes, refusal)

    def _apply(self, conn: Connection, changes: ChangeSet) -> int:
        """Apply ``changes`` in ``conn``'s transaction; return the first event position."""
        first = 0
        released: list[UUID] = []
        adding = changes.add_merge
        # A merge's snapshot of the record it removes keeps what that record's document
        # holds beyond its model (the application's fields, merged by a funnel not
        # given its classes), for unmerge to put back.
        other_more = (
            None if adding is None else self._undeclared_of(conn, adding.other, merging=True)
        )
        for record in changes.deletes:
            where = {"where_id": record.id, "where_version": record.version}
            if conn.execute(_DELETE[record.kind], where).rowcount != 1:
                self._refuse_version(conn, record, record.version)
            released.append(record.id)
        stored = self._lock(conn, changes)
        # Inside a transaction() block on MySQL the block's first read took the snapshot
        # a plain count sees: an erasure or a merge (which read events or deals) counts
        # with a locking read there, as committed now, so that a touch, capture or
        # booking another process committed meanwhile fails it rather than stay
        # unscrubbed or point at a deleted record (see _check_touches).
        locking = (
            self._locking_reads
            and bool(changes.events_read or changes.deals_read)
            and self._current() is not None
        )
        if changes.touches_read:
            self._check_touches(conn, changes.touches_read, locking=locking)
        if changes.events_read or changes.deals_read:
            self._check_counts(conn, changes, locking=locking)
        restored = self._unmerged(conn, changes)
        held = self._update(conn, changes.updates, stored, changes.read, restored)
        for batch in _batches(released):
            conn.execute(_RELEASE_KEYS, {"ids": list(batch)})
            conn.execute(_RELEASE_TAGS, {"ids": list(batch)})
        self._claim_keys(conn, changes, held)
        self._refuse_taken_ids(conn, changes.inserts)
        for kind, table in s.RECORD_TABLES.items():
            rows = [record_row(r) for r in changes.inserts if r.kind == kind]
            for row in rows:
                if row["id"] in restored:
                    row["doc"] = with_keys(row["doc"], restored[row["id"]])
            if rows:
                self._insert(conn, table, rows)
        tag_rows = [
            {"record_id": r.id, "tag": tag, "created_at": r.created_at}
            for r in changes.records()
            if isinstance(r, (Lead, Contact))
            for tag in r.tags
            if tag not in held.get(r.id, _NOTHING_HELD).tags
        ]
        if tag_rows:
            self._insert(conn, s.tags, tag_rows)
        if changes.touches:
            self._insert(conn, s.touches, [touch_row(t) for t in changes.touches])
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
                [event_row(e, first + i) for i, e in enumerate(changes.events)],
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
        if changes.rewrites:
            self._rewrite(conn, changes.rewrites)
        for log in changes.rewrite_merges:
            found = conn.execute(
                sa.update(s.merges).where(s.merges.c.id == log.id).values(doc=merge_doc(log))
            ).rowcount
            if found != 1:
                raise NotFoundError(log.id, "merge log")
        if changes.remove_merge is not None:
            conn.execute(sa.delete(s.merges).where(s.merges.c.id == changes.remove_merge))
        if adding is not None:
            keep = adding.keep_before
            # The record merged into, as its row was (locked, as an update).
            locked = stored.get(self._raw_id(keep.id))
            kept_doc = None if locked is None else locked[self._document_at(keep.kind)]
            keep_more = None if kept_doc is None else undeclared(type(keep), kept_doc)
            conn.execute(
                sa.insert(s.merges).values(
                    id=adding.id,
                    keep_id=adding.keep_id,
                    other_id=adding.other.id,
                    doc=merge_doc(adding, keep_more, other_more),
                )
            )
        return first

    def _rewrite(self, conn: Connection, items: list[Touch | Event]) -> None:
        """Write the documents of ``items`` over the stored touches and events of the same
        ids, one ``executemany`` per table (an erasure scrubs a long history in a few
        statements); :class:`~leadfunnel.NotFoundError` for an id no row holds. The
        document only: the subject (moved by merges) and the position stay the row's."""
        for kind, table in (("touch", s.touches), ("event", s.events)):
            touch = kind == "touch"
            mine = [item for item in items if isinstance(item, Touch) is touch]
            if not mine:
                continue
            rows = [{"item_id": item.id, "item_doc": document_of(item)} for item in mine]
            if conn.execute(_REWRITE[kind], rows).rowcount == len(rows):
                continue
            # Not every driver sums an executemany's rowcount: look for the missing ids.
            ids = list(dict.fromkeys(item.id for item in mine))
            found: set[UUID] = set()
            for batch in _batches(ids):
                found.update(
                    conn.execute(sa.select(table.c.id).where(table.c.id.in_(batch))).scalars()
                )
            for id in ids:
                if id not in found:
                    raise NotFoundError(id, kind)

    def _document_at(self, kind: str) -> int:
        """Where the document sits in a row of :meth:`_lock` of ``kind``'s table."""
        return self._driver.position(s.RECORD_TABLES[kind], "doc")

    def _undeclared_of(
        self, conn: Connection, record: Record, *, merging: bool = False
    ) -> dict[str, Any] | None:
        """The keys of ``record``'s stored document that its model does not declare.

        ``merging``: the first read of a merge, which removes ``record``; on MySQL and
        MariaDB a locking one then, which takes no snapshot. A plain read would take the
        transaction's snapshot before the merge locks the record it removes, and the
        counts that follow (see :meth:`_check_counts`) would read that snapshot, missing
        a touch, capture or booking another connection was committing meanwhile: left
        pointing at the removed record. Any other read locks nothing."""
        table = s.RECORD_TABLES[record.kind]
        query = sa.select(table.c.doc).where(table.c.id == record.id)
        if merging and self._locking_reads:
            query = query.with_for_update()
        doc = conn.execute(query).scalar()
        return None if doc is None else undeclared(type(record), doc)

    def _unmerged(self, conn: Connection, changes: ChangeSet) -> dict[UUID, dict[str, Any] | None]:
        """For an unmerge: the two records it puts back as they were (the one merged
        away, inserted again, and the one kept, updated), each with the keys its snapshot
        in the merge log holds that the record's model does not declare (see
        :meth:`_apply`; ``None`` for none). Those, not the ones its row holds now, are
        the record's: a funnel without the application's classes puts back the fields
        a merge by one with them filled. Empty for any other change."""
        if changes.remove_merge is None:
            return {}
        t = s.merges
        doc = conn.execute(sa.select(t.c.doc).where(t.c.id == changes.remove_merge)).scalar()
        if doc is None:
            return {}
        log = doc_as_dict(doc)
        found: dict[UUID, dict[str, Any] | None] = {}
        for side, records in (("other", changes.inserts), ("keep_before", changes.updates)):
            snapshot = doc_as_dict(log[side]["doc"])
            for record in records:
                if str(record.id) == snapshot.get("id"):
                    found[record.id] = undeclared(type(record), snapshot)
        return found

    def _erasing(self, updates: list[Record], stored: dict[Any, tuple[Any, ...]]) -> bool:
        """Whether ``updates`` erase someone: a person stored without ``erased_at``
        given one."""
        for record in updates:
            if isinstance(record, (Lead, Contact)) and record.erased_at is not None:
                at = self._driver.position(s.RECORD_TABLES[record.kind], "erased_at")
                if stored[self._raw_id(record.id)][at] is None:
                    return True
        return False

    def _check_touches(
        self, conn: Connection, read: dict[UUID, int], *, locking: bool = False
    ) -> None:
        """Refuse the change if a subject has other touches than it was decided on.

        Counted once the subjects' rows are locked (they are in ``checks`` or
        ``updates``), so no other commit adds one before this one ends, and seen as
        committed: PostgreSQL's statements each see what is committed, SQLite has one
        writer, and on MySQL the count is this transaction's first plain read, which
        takes its snapshot now. (A locking count would lock the gaps of the touches'
        index, and deadlock with other subjects' touches being inserted.) Inside a
        ``transaction()`` block on MySQL the block's first read took the snapshot:
        there a touch another process logs meanwhile may go unseen, unless ``locking``
        (an erasure's or a merge's check: a locking count, as committed now; a
        conflicting writer may then make the block fail with ``ConcurrencyError``)."""
        counts = self._touch_counts(conn, list(read), locking=locking)  # 500 subjects a query
        for subject_id, expected in read.items():
            if counts[subject_id] != expected:
                raise ConcurrencyError.of_touches(subject_id, expected, counts[subject_id])

    def _check_counts(self, conn: Connection, changes: ChangeSet, *, locking: bool = False) -> None:
        """Refuse the change if a subject has other events, or a person other deals,
        than it was decided on: counted as :meth:`_check_touches` counts touches, once
        the rows the change writes (the subjects among them) are locked."""
        events = _EVENT_COUNT_LOCKED if locking else _EVENT_COUNT
        for subject_id, expected in changes.events_read.items():
            found = conn.execute(events, {"subject_id": subject_id}).scalar_one()
            if found != expected:
                raise read_changed("events", subject_id, expected, found)
        for record_id, expected in changes.deals_read.items():
            if locking:  # each count its own statement: MySQL locks no subquery's rows
                found = sum(
                    conn.execute(query, {"record_id": record_id}).scalar_one()
                    for query in _DEAL_COUNTS_LOCKED
                )
            else:
                found = conn.execute(_DEAL_COUNT, {"record_id": record_id}).scalar_one()
            if found != expected:
                raise read_changed("deals", record_id, expected, found)

    def _any_suppressed(self, conn: Connection) -> bool:
        """Whether any suppression is stored, read as committed now (a locking read on
        MySQL, whose plain reads see the transaction's snapshot)."""
        query = ANY_SUPPRESSED_LOCKED if self._locking_reads else ANY_SUPPRESSED
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
        query = sa.select(table.c.version).where(table.c.id == record.id)
        if self._locking_reads:
            query = query.with_for_update(read=True)  # as stored, not as a snapshot has it
        found = conn.execute(query).scalar()
        if found is None:
            raise NotFoundError(record.id, record.kind)
        raise self._stale(conn, record, expected, found)

    def _lock(self, conn: Connection, changes: ChangeSet) -> dict[Any, tuple[Any, ...]]:
        """Lock the rows of the records ``changes`` updates or checks until the
        transaction ends (SQLite has one writer at a time already), after checking that
        each is at the version the change was decided on; return the updated records'
        rows, as the driver gives them, by the driver's form of the id (see
        :meth:`_update`), their documents left out (``None``) where :meth:`_whole_reads`
        knows them to hold only what the writer's model declares. A check reads only
        the version."""
        self._locked(conn, changes.checks, updating=False)
        return self._locked(conn, changes.updates, updating=True, whole=self._whole_reads(changes))

    def _whole_reads(self, changes: ChangeSet) -> set[UUID]:
        """The updated records whose stored document holds no key their model does not
        declare: those read (``changes.read``, at the version the update follows) as
        the same class, whose document this store read whole (see :meth:`_record`). A
        bulk qualify's page, read a moment ago, is not read again."""
        whole: set[UUID] = set()
        partial = self._partial_reads
        for record in changes.updates:
            before = changes.read.get(record.id)
            if (
                before is not None
                and type(before) is type(record)
                and before.version == record.version - 1
                and reads_every_key(type(record))
                and partial.get(id(before)) is not before
            ):
                whole.add(record.id)
        return whole

    def _by_ids(self, conn: Connection, sql: str, ids: Sequence[UUID], *more: Any) -> list[Any]:
        """The rows of ``sql``, a statement for the driver (see :meth:`DriverStatements.by_ids`)
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
        self,
        conn: Connection,
        records: list[Record],
        *,
        updating: bool,
        whole: Collection[UUID] = (),
    ) -> dict[Any, tuple[Any, ...]]:
        rows: dict[Any, tuple[Any, ...]] = {}
        versions: dict[Any, int] = {}
        for kind, table in s.RECORD_TABLES.items():
            ids = [r.id for r in records if r.kind == kind]
            if not ids:
                continue
            if updating:  # the whole row, to compare with the new one
                documents = any(id not in whole for id in ids)
                sql = self._driver.lock_sql(table, documents=documents)
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
                raise self._stale(conn, record, expected, found)
        return rows

    def _stale(
        self, conn: Connection, record: Record, expected: int, found: int
    ) -> ConcurrencyError:
        """The error of a change decided on ``record`` at version ``expected``, stored at
        ``found`` (as a locking read sees it).

        Inside a ``transaction()`` block on MySQL and MariaDB (REPEATABLE READ), plain
        reads see what was committed when the block first read: if that is still the
        older version, re-reading the record inside the block cannot help (the facade's
        own retries would not either: the error is not ``retryable``), and the error
        says to run the whole block again."""
        if self._locking_reads and self._current() is not None:
            table = s.RECORD_TABLES[record.kind]
            seen = conn.execute(sa.select(table.c.version).where(table.c.id == record.id)).scalar()
            if seen != found:
                return ConcurrencyError(
                    record.id,
                    expected,
                    found,
                    message=f"{record.kind} {record.id} was changed by another connection "
                    f"(you had version {expected}, the store has version {found}) after "
                    "this `with funnel.transaction():` block first read: on MySQL and "
                    "MariaDB the block reads what was committed then, so reading the "
                    "record again inside it gives the same version. Leave the block (it "
                    "rolls back) and run the whole block again",
                    retryable=False,
                )
        return ConcurrencyError(record.id, expected, found)

    def _update(
        self,
        conn: Connection,
        updates: list[Record],
        stored: dict[Any, tuple[Any, ...]],
        read: dict[UUID, Record],
        restored: dict[UUID, dict[str, Any] | None],
    ) -> dict[UUID, _Held]:
        """Write ``updates`` over their ``stored`` rows: only the columns that changed,
        grouped into one ``executemany`` per set of columns; identity keys and tags only
        where they changed (keys dropped, or their avoided flag moved; tags removed).
        Returns the keys and tags each updated person keeps, which are not written again.
        The keys and tags a person holds are those of its record in ``read``, when that
        is the version the update follows (a commit keeps a person's key and tag rows
        in step with its document), else read from the store.

        New values are converted once, to what the driver is given (and gives back), and
        compared with the stored row as the driver read it.

        ``restored`` gives, for a record an unmerge puts back, the undeclared keys its
        document is to hold (see :meth:`_unmerged`), in place of those its row holds."""
        if not updates:
            return {}
        groups: dict[tuple[str, tuple[int, ...]], list[tuple[Any, ...]]] = {}
        moved: dict[UUID, tuple[int, ...]] = {}
        # An erasure keeps only what its models declare: it cannot tell whether a field
        # it does not know holds personal data.
        keep_undeclared = not self._erasing(updates, stored)
        for record in updates:
            table = s.RECORD_TABLES[record.kind]
            # Looked up as the driver reads it (the row holds a bytearray on SQLite).
            old = stored[self._raw_id(record.id)]
            at = self._document_at(record.kind)
            before = read.get(record.id)
            if (
                old[at] is None
                and before is not None
                and before.version == record.version - 1
                and record.id not in restored
            ):
                # Read whole by this store at the version this update follows (see
                # _lock): what changed is told from the two records, and only that is
                # converted (a bulk qualify's move: five columns of sixteen).
                partial = changed_row(before, record)
                if partial is not None:
                    changed, values = self._changed_values(table, record, partial)
                    moved[record.id] = changed
                    groups.setdefault((record.kind, changed), []).append(values)
                    continue
            _, convert = self._driver.prepare(table)
            documents = self._driver.documents(table)
            new = convert(record_row(record))
            id_at = self._driver.position(table, "id")
            if keep_undeclared and record.id in restored:
                # Put back as the merge log's snapshot has it (whatever the merge filled
                # goes, what it lacks stays out), whether the row was read whole or not.
                more = restored[record.id]
                if more is not None:
                    new = (*new[:at], with_keys(new[at], more), *new[at + 1 :])
            elif keep_undeclared and old[at] is not None:
                # Fields the writer's model lacks (the application's own, written by a
                # funnel given its classes) stay as stored; those it declares are
                # written as it says, None included.
                more = undeclared(type(record), old[at])
                if more is not None:
                    new = (*new[:at], with_keys(new[at], more), *new[at + 1 :])
            changed = tuple(i for i, value in enumerate(new) if i in documents or value != old[i])
            moved[record.id] = changed
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
        # The tag rows hold their person's created_at (the list order of a page by tag):
        # kept in step where a change through the port moved it (the facade refuses to).
        born = [
            {"rid": r.id, "at": r.created_at}
            for r in people
            if self._driver.position(s.RECORD_TABLES[r.kind], "created_at") in moved[r.id]
        ]
        if born:
            conn.execute(_TAGS_BORN, born)
        held: dict[UUID, _Held] = {}
        unread: list[UUID] = []
        for r in people:
            before = read.get(r.id)
            if type(before) is type(r) and before.version == r.version - 1:
                held[r.id] = _held_by(before, r)
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
            if not mine.kept:
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

    def _changed_values(
        self, table: sa.Table, record: Record, row: dict[str, Any]
    ) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        """For :meth:`_update`: where the columns of ``row`` (some of ``record``'s row,
        see :func:`changed_row`) sit in a converted row, in order, and the parameters of
        their ``UPDATE``: their values converted for the driver, then the id and the
        version the update follows."""
        columns = self._driver.columns(table)
        placed = sorted((columns[name][0], name) for name in row)
        values: list[Any] = []
        for _, name in placed:
            value, convert = row[name], columns[name][1]
            values.append(value if convert is None or value is None else convert(value))
        convert_id = columns["id"][1]
        bound_id = record.id if convert_id is None else convert_id(record.id)
        return tuple(at for at, _ in placed), (*values, bound_id, record.version - 1)

    def _refuse_taken_ids(self, conn: Connection, inserts: list[Record]) -> None:
        """Refuse a new record whose id a record of another kind holds: ids are unique
        per table in the schema, and across kinds only here (an id read back, a key's
        holder, a tag's person must each mean one record). Its own table's unique id
        refuses the rest (see :meth:`_explain`)."""
        for kind, table in s.RECORD_TABLES.items():
            others = [r.id for r in inserts if r.kind != kind]
            if not others:
                continue
            found = self._by_ids(conn, self._driver.ids_sql(table), others)
            if found:
                id, version = found[0]
                raise ConcurrencyError.of_insert(self._id_of(id), kind, version)

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
            mine = held.get(r.id, _NOTHING_HELD)
            if mine.kept:
                # Its keys are stored as they are. A record of this change set that
                # claims one of them is refused by the key column (see _explain).
                continue
            avoided = is_avoided(r)
            kept = mine.keys
            for key in identity_keys(r):
                if claimed.setdefault(key, r.id) != r.id:
                    clashed = True
                if key not in kept:
                    rows.append({"key": key, "record_id": r.id, "avoided": avoided})
        if clashed:
            clash = _first_clash(claimants, changes, self._key_holders(conn, claimed))
            if clash is not None:
                raise clash
        self._insert(conn, s.keys, rows)

    @staticmethod
    def _key_holders(
        conn: Connection, keys: Iterable[str], *, locking: bool = False
    ) -> dict[str, tuple[UUID, bool]]:
        """The stored holder of each of ``keys`` that has one, and whether that holder
        is avoided (``locking``: a locking read, as committed now on MySQL)."""
        t = s.keys
        found: dict[str, tuple[UUID, bool]] = {}
        for batch in _batches(list(keys)):
            query = sa.select(t.c.key, t.c.record_id, t.c.avoided).where(t.c.key.in_(batch))
            if locking:
                query = query.with_for_update(read=True)
            found.update(
                (key, (holder, bool(avoided))) for key, holder, avoided in conn.execute(query)
            )
        return found

    def _explain(self, changes: ChangeSet, exc: sa_exc.IntegrityError) -> NoReturn:
        """Turn a unique-index violation into the error the contract names.

        Called after the transaction rolled back: an inserted id that is stored already
        (``ConcurrencyError``), or an identity key held by another record, possibly
        stored by another writer a moment ago (``DuplicateError``/``AvoidListedError``).
        """
        inserted = {r.id: r for r in changes.inserts}
        for id, record in self.get_many(inserted).items():
            # Not chained: the driver's error names the key it tripped on first (an
            # e-mail, on PostgreSQL and MariaDB), personal data (DESIGN 13).
            raise ConcurrencyError.of_insert(id, record.kind, record.version) from None
        claimants = _claimants(changes)
        # As committed now: inside a transaction() block on MySQL a plain read sees the
        # block's snapshot, which misses the person another writer stored since (whose
        # key refused this commit), so there it is a locking read.
        locking = self._locking_reads and self._current() is not None
        with self._read() as conn:
            keys = {key for r in claimants for key in identity_keys(r)}
            stored = self._key_holders(conn, keys, locking=locking)
        clash = _first_clash(claimants, changes, stored)
        if clash is not None:
            # Not chained: the driver's message names the key (PostgreSQL's "Key
            # (key)=(email:...) already exists", MariaDB's "Duplicate entry '...'"),
            # which is personal data (DESIGN 13); the error says all it meant.
            raise clash from None
        # Not chained: the driver's error names the value (PostgreSQL's detail, MariaDB's
        # "Duplicate entry '...'"); its first line says what refused, a value hidden.
        raise StorageError(
            f"the database refused the change: {_refusal(exc)}; another writer may have "
            "stored the same records; re-read them and retry",
            of_value=True,  # a constraint or trigger of the database's own refused it
        ) from None

    def _record(self, kind: str, doc: Any) -> Record:
        # Validated without the write-time checks every stored value passed already
        # (phones parsed to E.164, e-mails normalised, control characters refused):
        # they were a third of reading a lead, and parsing a phone again alone cost
        # more than validating the rest of the record. A document with keys the model
        # does not declare is noted: an update decided on the record keeps them.
        return build_record(self._models[kind], doc, self._note_partial)

    def _snapshot(self, kind: str, doc: Any) -> Record:
        """A record of a merge log's snapshot: noted as one, so that
        :meth:`stored_extras` answers for it from the snapshot alone, never from the
        row that has its id now (the keeper as it is since, not as it was)."""
        record = self._record(kind, doc)
        self._snapshots[id(record)] = record
        return record

    def _note_partial(self, record: Record, doc: dict[str, Any]) -> None:
        key = id(record)
        self._partial_reads[key] = record
        # What the record left out, while it lives (see stored_extras).
        extra = undeclared(type(record), doc)
        if extra:
            self._partial_extras[key] = extra
            weakref.finalize(record, self._partial_extras.pop, key, None)

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
        at the end as at the start (of the tags: their ``(created_at, record_id)``)."""
        at = sa.bindparam("after_at", type_=s.At)
        id = sa.bindparam("after_id", type_=s.Id)
        created, key = table.c.created_at, table.c["record_id" if table is s.tags else "id"]
        if self.dialect in ("mysql", "mariadb"):
            # MariaDB's optimiser reads this form off the index; row values it may not.
            return sa.or_(created > at, sa.and_(created == at, key > id))
        return sa.tuple_(created, key) > sa.tuple_(at, id)

    def _field_equals(self, t: sa.Table, model: type[Record], name: str, value: Any) -> Any:
        """``field == value`` in SQL, by value as in Python (see ``Repository.leads``): on
        its column where it has one, else on the record's JSON document (see
        :class:`DocField`), with the path written literally so that an expression index
        on it (see the docs) can serve the query. Only a field of leadfunnel's own model
        has a column: an application's field named like one of the other columns
        (``email_domain``, ``company_key``: what ``similar`` looks people up by) is in
        the document."""
        try:
            stored = None if value is None else json_value(model, name, value)
        except ValueError:  # no JSON form (bytes that are no text): no record holds it
            return sa.false()
        if (
            name in RECORD_TYPES[model.kind].model_fields
            and name in t.c
            and not isinstance(stored, (dict, list))
        ):
            column = t.c[name]
            if value is None:
                return column.is_(None)
            if (
                type(stored) is int
                and isinstance(column.type, sa.Integer)
                and not -(2**31) <= stored < 2**31
            ):
                return sa.false()  # no row holds it (a version): not bound, which fails
            # Ids and instants as their column types bind them; the rest as stored.
            return column == (value if isinstance(value, (UUID, datetime)) else stored)
        if isinstance(stored, (dict, list)):
            # As the document holds it: a nested model's None fields left out there.
            stored = document_value(model, name, value)
        field = DocField(self.dialect, t.c.doc, name)
        missing = missing_value(model, name)  # what a document without the field reads as
        if value is None:
            # A document leaves a field out at None only where None is its default.
            return field.null_or_absent() if missing is None else field.null()
        equal = field.equals(value, stored)
        if equal_values(missing, value):
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
            # A page of people with a tag walks the tags' (tag, created_at, record_id)
            # index from the cursor on, in list order (version 9), and joins each row
            # to its person; as a plain filter, SQLite sorted every person with the tag.
            by_tag = listing and "tag" in names
            order = s.tags if by_tag else t
            where = [
                self._filter_condition(t, name) for name in names if not (by_tag and name == "tag")
            ]
            if wanted is not None:
                model = self._models[kind]
                for field, value in where_values(model, wanted).items():
                    where.append(self._field_equals(t, model, field, value))
            if after is not None:
                where.append(self._after(order))
            if by_tag:
                tagged = s.tags.join(
                    t, sa.and_(t.c.id == s.tags.c.record_id, s.tags.c.tag == sa.bindparam("f_tag"))
                )
                query = (
                    sa.select(t.c.doc)
                    .select_from(tagged)
                    .where(*where)
                    .order_by(s.tags.c.created_at, s.tags.c.record_id)
                )
                if limit is not None:
                    query = query.limit(sa.bindparam("limit", type_=sa.Integer))
            elif listing:
                query = sa.select(t.c.doc).where(*where).order_by(t.c.created_at, t.c.id)
                if limit is not None:
                    query = query.limit(sa.bindparam("limit", type_=sa.Integer))
            else:
                query = sa.select(sa.func.count()).select_from(t).where(*where)
            if wanted is None:
                self._lists[key] = query
        params = {f"f_{name}": filter_value(name, filters[name]) for name in names}
        if after is not None:
            params |= _cursor_params(after)
        if limit is not None:
            params["limit"] = _rows_at_most(limit)
        return query, params

    @staticmethod
    def _filter_condition(t: sa.Table, name: str) -> Any:
        """The condition of the list filter ``name`` (not ``where``), on the parameter
        ``f_<name>`` (its value as :func:`filter_value` makes it)."""
        value: sa.BindParameter[Any] = sa.bindparam(f"f_{name}")
        if name == "tag":
            return t.c.id.in_(sa.select(s.tags.c.record_id).where(s.tags.c.tag == value))
        if name == "created_since":
            return t.c.created_at >= value
        if name == "created_until":
            return t.c.created_at < value
        return t.c[name] == value

    def oldest_created_at(self, kind: SubjectKind) -> datetime | None:
        with self._read() as conn:
            found: datetime | None = conn.execute(_OLDEST[kind]).scalar()
        return found

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
        if self._found_version < 6:
            # Opened with migrate="never" at an older version: its keys are folded as
            # they were then, and would silently miss people.
            raise self._lacking("the people's trait keys are those of an older version")
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
        if not traits:
            return []
        query = (
            sa.select(t.c.doc)
            .where(sa.or_(*traits), t.c.erased_at.is_(None))
            .order_by(t.c.created_at, t.c.id)
            .limit(_rows_at_most(limit))
        )
        return self._select(kind, query)

    def history(self, subject_id: UUID) -> list[Event]:
        t = s.events
        query = (
            sa.select(*EVENT_READ)
            .where(t.c.subject_id == subject_id)
            .order_by(t.c.at, t.c.position)
        )
        with self._read() as conn:
            return [event_from_row(row) for row in conn.execute(query)]

    def events(self, *, after: int = 0, limit: int | None = None) -> list[Event]:
        t = s.events
        # Positions are BIGINTs: an ``after`` beyond them (a corrupted stored position)
        # reads nothing, as on the in-memory store, instead of failing in the driver.
        after = min(after, 2**63 - 1)
        query = sa.select(*EVENT_READ).where(t.c.position > after).order_by(t.c.position)
        if limit is not None:
            query = query.limit(_rows_at_most(limit))
        with self._read() as conn:
            return [event_from_row(row) for row in conn.execute(query)]

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
            return conn.execute(ANY_SUPPRESSED).first() is not None

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

    def last_position(self) -> int:
        # Writers move the counter in the transaction that stores their events: as
        # committed, it is the last position committed.
        query = sa.select(s.counters.c.value).where(s.counters.c.name == s.EVENT_POSITION)
        with self._read() as conn:
            found = conn.execute(query).scalar()
        return int(found or 0)

    def suppression_fingerprint(self) -> str | None:
        t = s.secrets
        query = sa.select(t.c.value).where(t.c.name == "suppression_fingerprint")
        with self._read() as conn:
            found: str | None = conn.execute(query).scalar()
        return found

    def keep_suppression_fingerprint(self, fingerprint: str) -> str:
        found = self.suppression_fingerprint()
        if found is None:
            try:
                with self._writing() as conn:
                    conn.execute(
                        sa.insert(s.secrets).values(
                            name="suppression_fingerprint", value=fingerprint
                        )
                    )
            except sa_exc.IntegrityError:
                pass  # another process kept one first: theirs is compared
            found = self.suppression_fingerprint()
        assert found is not None
        return found

    def touches(self, subject_id: UUID) -> list[Touch]:
        t = s.touches
        query = (
            sa.select(t.c.subject_id, t.c.doc)
            .where(t.c.subject_id == subject_id)
            .order_by(t.c.at, t.c.seq)
        )
        with self._read() as conn:
            return [moved_to(Touch, doc, subject) for subject, doc in conn.execute(query)]

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

    def won_batches(
        self, *, since: datetime | None, until: datetime | None, size: int
    ) -> Iterator[list[Opportunity]]:
        # Filtered on the closed_at column: a report of one month builds the month's
        # won deals, not every deal ever won (whose index entries it still walks: the
        # (stage, created_at, id) index, in its order, so no page sorts; no index of
        # closed_at is kept).
        bounded = (since is not None, until is not None)
        params: dict[str, Any] = period_params(since, until) | {"size": size}

        def page(after: Cursor | None) -> list[Opportunity]:
            query = self._won_page(*bounded, after is not None)
            if after is not None:
                return self._select("opportunity", query, params | _cursor_params(after))
            return self._select("opportunity", query, params)

        yield from keyset_pages(page, f"{type(self).__name__}.won_batches")

    def _won_page(self, since: bool, until: bool, after: bool) -> sa.Select[Any]:
        """A page of :meth:`won_batches`, in list order, made once per shape."""
        key = ("won", since, until, after)
        query = self._lists.get(key)
        if query is None:
            deals = s.opportunities
            query = (
                sa.select(deals.c.doc)
                .where(*won_conditions(since, until))
                .order_by(deals.c.created_at, deals.c.id)
                .limit(sa.bindparam("size", type_=sa.Integer))
            )
            if after:
                query = query.where(self._after(deals))
            self._lists[key] = query
        return query

    def touched(self, subject_ids: Iterable[UUID], *, channel: Channel) -> set[UUID]:
        wanted = list(dict.fromkeys(subject_ids))
        by_raw = {self._raw_id(id): id for id in wanted}
        sql = self._driver.touched_sql()
        with self._read() as conn:
            rows = self._by_ids(conn, sql, wanted, Channel(channel).value)
        return {by_raw[subject] for (subject,) in rows}

    def stored_extras(self, records: Iterable[Record]) -> dict[UUID, dict[str, Any]]:
        """What the documents of ``records`` hold beyond their models: known at once
        for a record this store read (a merge log's snapshots included, whose records
        are stored nowhere else), else read from the record's row."""
        found: dict[UUID, dict[str, Any]] = {}
        unknown = []
        for record in records:
            key = id(record)
            if self._partial_reads.get(key) is record:
                found[record.id] = dict(self._partial_extras.get(key, {}))
            elif self._snapshots.get(key) is not record:
                unknown.append(record)  # (a snapshot read whole holds nothing more)
        if unknown:
            with self._read() as conn:
                for record in unknown:
                    extra = self._undeclared_of(conn, record)
                    if extra:
                        found[record.id] = extra
        return {id: extra for id, extra in found.items() if extra}

    def touch_counts(self, subject_ids: Iterable[UUID]) -> dict[UUID, int]:
        wanted = list(dict.fromkeys(subject_ids))
        with self._read() as conn:
            return self._touch_counts(conn, wanted)

    def _touch_counts(
        self, conn: Connection, wanted: list[UUID], *, locking: bool = False
    ) -> dict[UUID, int]:
        """:meth:`touch_counts` in ``conn``: one query per 500 subjects (``locking``: a
        locking read, MySQL's only, as committed now)."""
        by_raw = {self._raw_id(id): id for id in wanted}
        counts = dict.fromkeys(wanted, 0)
        sql = self._driver.touch_counts_sql(locking=locking)
        for subject, count in self._by_ids(conn, sql, wanted):
            counts[by_raw[subject]] = int(count)
        return counts

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
                    log = merge_log_from(doc, self._snapshot)
                    found[log.id] = (seq, log)
        return [log for _, log in sorted(found.values(), key=lambda pair: pair[0])]

    def compact(self) -> None:
        """SQLite: ``VACUUM`` (rewrites the file without free pages) and a WAL checkpoint
        that truncates the log. PostgreSQL and MariaDB: nothing (their own vacuum and
        purge reclaim dead rows; see the docs on erasure).

        The checkpoint cannot finish while another connection reads an older snapshot
        of the database (a web worker in the middle of a read): it is tried again for
        ten more seconds (beyond the connection's busy timeout), then
        :class:`~leadfunnel.StorageError` says so: the erased bytes may still be in the
        log until ``compact()`` runs again once that read has ended."""
        if self.dialect != "sqlite":
            return
        with self._serial, self._translated():
            # A plain driver connection in autocommit mode: VACUUM refuses to run inside
            # a transaction, and SQLAlchemy would begin one.
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                checkpoint_wal(cursor)
                cursor.execute("VACUUM")
                checkpoint_wal(cursor)
                cursor.close()
            finally:
                raw.close()

    def last_merge(self, keep_id: UUID) -> MergeLog | None:
        t = s.merges
        query = sa.select(t.c.doc).where(t.c.keep_id == keep_id).order_by(t.c.seq.desc()).limit(1)
        with self._read() as conn:
            doc = conn.execute(query).scalar()
        return None if doc is None else merge_log_from(doc, self._snapshot)

    # --- scaling queries --------------------------------------------------------------

    def follow_up_candidates(
        self, *, lead_limit: int, contact_limit: int, owner: str | None = None
    ) -> Iterator[FollowUpCandidate]:
        queries = follow_up_candidate_queries(owner is not None)
        # The owner as each kind's field stores it (trimmed).
        owners = {
            kind: text_filter(self._models[kind], "owner", owner) for kind in ("lead", "contact")
        }
        # Made one at a time as the rows come: on SQLite, due(limit=50) of a million
        # holds 50 (psycopg's and PyMySQL's cursors hold a query's rows, as tuples, until
        # it is read). Both queries run in one read (one connection).
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
                    yield FollowUpCandidate(
                        subject_id=id,
                        subject=subject,  # type: ignore[arg-type]
                        state=state,
                        owner=owner,
                        anchor_at=anchor if reset_at is None else max(anchor, reset_at),
                        touches=int(count),
                        last_touch_at=last_at if count else None,
                        opt_outs=opt_outs_of(opt_outs),
                    )

    def qualified_follow_up(
        self, *, since: datetime | None, until: datetime | None
    ) -> FollowUpStats:
        query = follow_up_query(since is not None, until is not None)
        with self._read() as conn:
            leads, never, touches = conn.execute(query, period_params(since, until)).one()
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
        query = step_counts_query(
            by, since is not None, until is not None, None if steps is None else frozenset(steps)
        )
        with self._read() as conn:
            rows = conn.execute(query, period_params(since, until))
            return [StepCount(step, grp, int(n)) for step, grp, n in rows]

    def stage_times(
        self,
        *,
        since: datetime | None,
        until: datetime | None,
        by: GroupBy | None = None,
    ) -> list[StageTime]:
        check_grouping(by, "time in stage")
        query = stage_times_query(by, since is not None, until is not None)
        nexts = dict(itertools.pairwise(TIMED_STEPS))
        with self._read() as conn:
            rows = [
                StageTime(stage, nexts[stage], float(m), int(n), grp)
                for stage, grp, m, n in conn.execute(query, period_params(since, until))
            ]
        order = {step: i for i, step in enumerate(TIMED_STEPS)}
        return sorted(rows, key=lambda r: (order[r.step], r.group is None, r.group or ""))

    def _rep_rows(
        self,
        kind: RepListKind,
        *,
        now: datetime,
        source: str | None = None,
        owner: str | None = None,
        entered_since: datetime | None = None,
        entered_until: datetime | None = None,
        limit: int | None = None,
        report: bool,
    ) -> list[RepListRow]:
        """:meth:`rep_list`; with ``report``, :meth:`no_shows`' rows (erased people's
        deals and those lost as ``avoid`` or ``unqualified`` kept in)."""
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
                .where(*where)
            )
            if not report:  # nobody calls these back; a report still counts them
                may_call = sa.or_(
                    deals.c.stage != Stage.LOST.value,
                    deals.c.lost_reason.is_(None),
                    deals.c.lost_reason.not_in([reason.value for reason in DO_NOT_CALL]),
                )
                query = query.where(
                    may_call,
                    contacts.c.erased_at.is_(None),
                    contacts.c.type != ContactType.AVOID.value,  # avoided since
                )
        if entered_since is not None:
            query = query.where(entered >= require_aware(entered_since, "entered_since"))
        if entered_until is not None:
            query = query.where(entered < require_aware(entered_until, "entered_until"))
        query = query.order_by(entered.desc(), table.c.seq.desc())
        if limit is not None:
            query = query.limit(_rows_at_most(limit))
        record_kind = "lead" if kind == "never_booked" else "opportunity"
        with self._read() as conn:
            return [
                RepListRow(self._record(record_kind, doc), at)  # type: ignore[arg-type]
                for doc, at in conn.execute(query)
            ]

    def _missed_appointments(
        self,
        *,
        now: datetime,
        entered_since: datetime | None,
        entered_until: datetime | None,
    ) -> list[RepListRow]:
        now = require_aware(now, "now")
        query = _RESCHEDULES if entered_since is None else _RESCHEDULES_AFTER
        # A time missed at or after entered_since was moved after it: the events before
        # are not read (each deal's history index, from that instant on).
        params = {} if entered_since is None else {"since": entered_since}
        rows: list[tuple[datetime, int, Any]] = []
        with self._read() as conn:
            for row in conn.execute(query, params):
                due = missed_appointment(event_from_row(row))
                if due is None or not came_due(due, now, entered_since, entered_until):
                    continue
                rows.append((due, row.position, row.deal_doc))
        rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
        return [
            RepListRow(self._record("opportunity", doc), due)  # type: ignore[arg-type]
            for due, _, doc in rows
        ]


def _cursor_params(after: Cursor) -> dict[str, Any]:
    """The parameters of a page after ``after`` (see ``SqlRepository._after``)."""
    return {"after_at": require_aware(after[0], "after"), "after_id": after[1]}


# The per-call lookups by id, built once: building a statement costs more than running it.
_GET = sa.union_all(
    *(
        sa.select(sa.literal(kind).label("kind"), t.c.doc).where(t.c.id == sa.bindparam("id"))
        for kind, t in s.RECORD_TABLES.items()
    )
)
# A report's missed appointments: the deals' reschedule events (each deal's history
# index, driven by the deals: the events of leads and contacts, most of them, are never
# read), with the deal each moved.
_RESCHEDULES = (
    sa.select(*EVENT_READ, s.opportunities.c.doc.label("deal_doc"))
    .select_from(s.events.join(s.opportunities, s.opportunities.c.id == s.events.c.subject_id))
    .where(
        s.events.c.subject_id.in_(sa.select(s.opportunities.c.id)),
        s.events.c.name == "reschedule",
    )
)
_RESCHEDULES_AFTER = _RESCHEDULES.where(
    s.events.c.at > sa.bindparam("since", type_=s.events.c.at.type)
)
_EXISTS = sa.union_all(
    *(sa.select(t.c.seq).where(t.c.id == sa.bindparam("id")) for t in s.RECORD_TABLES.values())
)
# A commit's per-record statements, also built once (updates are written by
# ``DriverStatements.update_sql``, with the columns that changed).
_DELETE = {
    kind: sa.delete(t).where(
        t.c.id == sa.bindparam("where_id"), t.c.version == sa.bindparam("where_version")
    )
    for kind, t in s.RECORD_TABLES.items()
}
# An erasure's rewritten touches and events: the document of the row with this id.
_REWRITE = {
    kind: sa.update(t).where(t.c.id == sa.bindparam("item_id")).values(doc=sa.bindparam("item_doc"))
    for kind, t in (("touch", s.touches), ("event", s.events))
}
_SECRET = sa.select(s.secrets.c.name).where(s.secrets.c.name == "suppression")
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
_EVENT_COUNT_LOCKED = _EVENT_COUNT.with_for_update(read=True)
_DEAL_COUNTS_LOCKED = tuple(
    sa.select(sa.func.count())
    .select_from(s.opportunities)
    .where(column == sa.bindparam("record_id"))
    .with_for_update(read=True)
    for column in (s.opportunities.c.contact_id, s.opportunities.c.lead_id)
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
#: The most rows a read asks the database for: a larger limit (Python's ints have no
#: bound) is the same as this one, as no list of more rows fits in memory, but beyond
#: it PostgreSQL's int4 parameter and SQLite's int64 refused it.
_MOST_ROWS = 2**31 - 1


def _rows_at_most(limit: int) -> int:
    return min(limit, _MOST_ROWS)


#: The creation time of each kind's oldest record, read off its (created_at, id) index.
_OLDEST = {
    kind: sa.select(t.c.created_at).order_by(t.c.created_at, t.c.id).limit(1)
    for kind, t in s.RECORD_TABLES.items()
}

_TAGS_BORN = (
    sa.update(s.tags)
    .where(s.tags.c.record_id == sa.bindparam("rid"))
    .values(created_at=sa.bindparam("at", type_=s.At))
)
_DROP_TAG = sa.delete(s.tags).where(
    s.tags.c.record_id == sa.bindparam("record_id"), s.tags.c.tag == sa.bindparam("tag")
)


class _Held(typing.NamedTuple):
    """What an updated person holds in the store: identity keys (with the avoided flag
    each carries) and tags. ``kept``: the update keeps the keys as they are (``keys``
    is then left empty: nothing of them is dropped, flagged or claimed again)."""

    keys: dict[str, bool]
    tags: set[str]
    kept: bool = False


_NOTHING_HELD = _Held({}, set())  # never changed: only read


@dataclass
class _Load:
    """An outermost loading() block into a small store: the records stored so far (the
    commit that passes ``_DEFER_AFTER`` drops the deferrable indexes first), and the
    loader's lock once it has (see :mod:`._loader_lock`)."""

    stored: int = 0
    deferred: bool = False
    declined: bool = False  # another process was loading: nothing put off
    lock: loader_lock.LoaderLock | None = None
    pid: int = field(default_factory=os.getpid)  # the process whose block it is


def _missing_indexes(conn: Connection) -> bool:
    """Whether a SQLite store lacks any of ``schema.DEFERRED_INDEXES`` (put off by a
    :meth:`SqlRepository.loading` block)."""
    listed = ", ".join(f"'{index.name}'" for index in s.DEFERRED_INDEXES)
    # sqlite_master: the name every SQLite version knows.
    (found,) = conn.exec_driver_sql(
        f"SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ({listed})"
    ).one()
    return int(found) < len(s.DEFERRED_INDEXES)


def _build_missing_indexes(conn: Connection) -> None:
    """Build those of ``schema.DEFERRED_INDEXES`` a SQLite store lacks."""
    for index in s.DEFERRED_INDEXES:
        conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _held_by(person: Lead | Contact, update: Lead | Contact) -> _Held:
    """The identity keys (with their avoided flag) and tags a commit stored for
    ``person``, which ``update`` follows: where the update shares the fields its keys
    come from (a new version shares what it kept) and keeps the avoided flag, only its
    tags (a bulk qualify's move makes no key of either version)."""
    avoided = is_avoided(person)
    if shares_key_sources(person, update) and is_avoided(update) is avoided:
        return _Held({}, set(person.tags), kept=True)
    keys = identity_keys(person) if holds_keys(person) else ()
    return _Held(dict.fromkeys(keys, avoided), set(person.tags))


_DUPLICATE_ENTRY = re.compile(r"Duplicate entry '.*' for key", re.DOTALL)


def _refusal(exc: sa_exc.DBAPIError) -> str:
    """The first line of the driver's refusal (a trigger's or check constraint's own
    words, a unique index's name), with MariaDB's duplicate value hidden: personal
    data, as the e-mail it names is (DESIGN 13)."""
    return _DUPLICATE_ENTRY.sub("Duplicate entry (value hidden) for key", first_line(exc.orig))


def _keep_secret(conn: Connection) -> None:
    """Make the store's suppression secret, unless an earlier opening made it."""
    if conn.execute(_SECRET).first() is None:
        conn.execute(sa.insert(s.secrets).values(name="suppression", value=secrets.token_hex(32)))


class _Unversioned(ConfigError):
    """leadfunnel's version table is there but empty: another process is making the
    tables (tried again a moment later), or they are not leadfunnel's. Raised as a
    plain :class:`~leadfunnel.ConfigError` (see :func:`_plain`)."""


def _plain(error: ConfigError) -> ConfigError:
    """``error`` as a :class:`~leadfunnel.ConfigError` itself, for the caller."""
    return error if type(error) is ConfigError else ConfigError(str(error))


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
