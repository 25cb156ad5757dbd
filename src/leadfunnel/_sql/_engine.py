"""Making and tuning the engine (SQLite's write-ahead log, busy timeouts, checkpoints),
and turning the driver's errors into leadfunnel's."""

from __future__ import annotations

import os
import re
import sqlite3
import time
import weakref
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from .._errors import ConcurrencyError, ConfigError, LeadFunnelError, StorageError
from .._repository import ChangeSet
from ._queries import sqlite_decimal, sqlite_instant, sqlite_json
from ._rows import dump_json, load_json

_SQLITE_BUSY_SECONDS = 30.0
_DRIVERS = {
    "postgresql": "leadfunnel[postgres] (psycopg)",
    "mysql": "leadfunnel[mysql] (PyMySQL)",
    "mariadb": "leadfunnel[mysql] (PyMySQL)",
}


# The query parameters that carry a secret (``?password=...``, ``sslpassword``, ``passwd``,
# ``pwd``, ``secret``, ``token``): never shown.
_SECRET_PARAMETER = re.compile(r"([?&][^=&#]*(?:pass|pwd|secret|token)[^=&#]*=)[^&#]*", re.I)


#: How long a PostgreSQL connection may take to open, unless the URL says
#: (``?connect_timeout=N``).
_CONNECT_SECONDS = 10

#: The most a SQLite file connection's page cache holds, in KiB (see ``PRAGMA cache_size``).
_CACHE_KIB = 32 * 1024


def without_secrets(url: str | sa.URL) -> str:
    """``url`` as errors and messages show it: its password hidden (everything between
    the user name's ":" and the last "@", however malformed the rest is: a user name
    may hold "@", a password "/" and "@"), and so are the query parameters that carry a
    secret."""
    if isinstance(url, sa.URL):
        url = url.render_as_string(hide_password=True)
    # After the scheme ("postgresql+psycopg://", or a mistyped "postgresql:/"; from the
    # start when it is missing), a ":" before the first "@" starts a password, which
    # ends at the last "@" (a password may hold "/", "?" and "@"). A user name holds no
    # raw ":" but may hold a raw "@" (an e-mail): with no ":" before the first "@", the
    # first ":" before the last "@" ahead of the query starts one (an "@" in a query
    # parameter, application_name=ana@laptop, ends no password).
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*:/+", url)
    start = scheme.end() if scheme else 0
    first_at, last_at = url.find("@", start), url.rfind("@")
    colon = url.find(":", start, first_at) if first_at >= 0 else -1
    if colon < 0 and first_at >= 0:
        query = url.find("?", start)
        last_at = url.rfind("@", start, len(url) if query < 0 else query)
        colon = url.find(":", start, last_at) if last_at > first_at else -1
    if colon >= 0:
        url = f"{url[: colon + 1]}***{url[last_at:]}"
    return _SECRET_PARAMETER.sub(r"\1***", url)


def refuse_a_non_url(url: object) -> None:
    """A database is named by a URL, a string (or SQLAlchemy's ``URL``, or an ``Engine``):
    anything else (a ``Path``, a number) is refused with the form to write, rather than
    left to SQLAlchemy's ``TypeError``. A path is not taken for a SQLite file's URL: the
    caller says so, and how to make one."""
    if isinstance(url, (str, sa.URL, Engine)):
        return
    kind = type(url).__name__
    if isinstance(url, os.PathLike):
        path = os.fspath(url)
        shown = path.decode(errors="replace") if isinstance(path, bytes) else path
        raise ConfigError(
            f"SqlRepository(url) takes a database URL as a str, not {kind}: a path is "
            f'not a URL; for a SQLite file write SqlRepository(f"sqlite:///{{path}}"), here '
            f"SqlRepository({'sqlite:///' + shown!r}) (an absolute path gives four "
            "slashes: sqlite:////abs/path/x.db)"
        )
    raise ConfigError(
        f"SqlRepository(url) takes a database URL as a str, not {kind}; write e.g. "
        'SqlRepository("sqlite:///funnel.db"), SqlRepository("sqlite:////abs/path/x.db"), '
        'SqlRepository(f"sqlite:///{path}") or '
        'SqlRepository("postgresql+psycopg://user@host/db")'
    )


def refuse_a_missing_sqlite_file(url: str | sa.URL | Engine) -> None:
    """Connecting to SQLite creates the file: a typo in a URL must not. Nor does a look
    at an empty file (connecting would write a database's first pages into it)."""
    refuse_a_non_url(url)
    if isinstance(url, Engine):
        return
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        return  # make_engine explains
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if parsed.database.startswith("file:"):
        return
    if os.path.isfile(parsed.database) and os.path.getsize(parsed.database) == 0:
        raise ConfigError(
            f"the file {parsed.database} is empty: there are no leadfunnel tables in it; "
            "check the URL, or create them with `leadfunnel migrate` (or "
            "SqlRepository(url, migrate='auto'))"
        )
    if os.path.exists(parsed.database):
        return
    raise ConfigError(
        f"there is no database file at {parsed.database}; check the URL, or create it "
        "with `leadfunnel migrate` (or SqlRepository(url, migrate='auto'))"
    )


def make_engine(url: str | sa.URL | Engine, options: dict[str, Any]) -> Engine:
    refuse_a_non_url(url)
    given = isinstance(url, Engine)
    if isinstance(url, Engine):
        engine = url
    else:
        try:
            parsed = sa.make_url(url)
        except sa_exc.ArgumentError as exc:
            raise ConfigError(
                f"{without_secrets(url)!r} is not a database URL; write e.g. sqlite:///funnel.db, "
                "postgresql+psycopg://user@host/db or mysql+pymysql://user@host/db"
            ) from exc
        if parsed.host and "@" in parsed.host:
            # A raw "@" in the password: SQLAlchemy takes the password up to the first
            # one, and the rest for the host, which the driver would print (with the
            # rest of the password) in its error. Refused before the driver sees it.
            raise ConfigError(
                f"the database URL {without_secrets(url)!r} has an '@' in its user name or "
                "password: write it as %40 there (user:p%40ss@host), so that the host "
                "is what follows the last '@'"
            )
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
        if backend == "postgresql" and "connect_timeout" not in parsed.query:
            # libpq waits for ever on a server that accepts the connection and never
            # answers (a hung server, a wrong port): a command run by cron would hang.
            options.setdefault("connect_args", {}).setdefault("connect_timeout", _CONNECT_SECONDS)
        # A failed statement's text would carry its parameters (names, e-mails, phones)
        # into every logged exception chain: keep personal data out of error messages.
        options.setdefault("hide_parameters", True)
        options.setdefault("json_serializer", dump_json)
        options.setdefault("json_deserializer", load_json)
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
        if backend == "postgresql":
            sa.event.listen(engine, "connect", _utc_session)
    # Once per engine: an engine given again keeps its tuning, and one made with
    # execution_options() shares its parent's pool and events.
    base: Engine = getattr(engine, "_proxied", engine)
    if base.dialect.name == "sqlite" and base not in _TUNED:
        setup = _tune_sqlite(base)
        _TUNED.add(base)
        if given:
            # The connections the application's engine opened before lack leadfunnel's
            # functions and settings. A database in memory lives in its connection:
            # that one is set up as it is; a file's are closed, to be made again.
            if _in_memory(base):
                with base.connect() as conn:
                    setup(conn.connection.driver_connection, None)
            else:
                base.dispose()
    return engine


#: The codes of a statement the user may not run: PostgreSQL's SQLSTATE
#: insufficient_privilege; MySQL's and MariaDB's table, column and command denials.
_DENIED_SQLSTATES = frozenset({"42501"})
_DENIED_MYSQL = frozenset({1142, 1143, 1044, 1227})


def _denied(exc: sa_exc.DBAPIError) -> bool:
    """Whether the database refused the statement for the user's lack of rights (a
    read-only user writing): no retry can help."""
    return _coded(exc.orig, _DENIED_SQLSTATES, _DENIED_MYSQL)


def _coded(
    orig: object, sqlstates: Collection[str] = (), mysql_codes: Collection[int] = ()
) -> bool:
    """Whether the driver's error ``orig`` is one of ``sqlstates`` (psycopg's) or of
    ``mysql_codes`` (PyMySQL's: the first of its ``args``; PostgreSQL's errors have
    text there)."""
    if getattr(orig, "sqlstate", None) in sqlstates:
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] in mysql_codes


def _utc_session(dbapi_connection: Any, _record: Any) -> None:
    """Each new PostgreSQL connection's session in UTC. The server renders a
    ``timestamptz`` in the session's zone, which a server's configuration, a role or
    ``PGTZ`` may set to a local one: there, an instant late on 9999-12-31 UTC is past
    the calendar's end (and one early on 0001-01-01 before its start west of UTC), and
    every read of it fails. Committed: a setting made in a transaction is undone with
    it, and the pool rolls back a connection it takes back."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET TIME ZONE 'UTC'")
    finally:
        cursor.close()
    dbapi_connection.commit()


def _in_memory(engine: Engine) -> bool:
    """Whether ``engine``'s SQLite database lives in memory (in its connections)."""
    database = engine.url.database or ""
    return (
        database in ("", ":memory:")
        or "mode=memory" in database
        or "mode=memory" in str(engine.url.query.get("mode", ""))
        or isinstance(engine.pool, (StaticPool, SingletonThreadPool))
    )


#: The SQLite engines :func:`_tune_sqlite` tuned (an application's engine may be given
#: to several repositories, or to one opened again).
_TUNED: weakref.WeakSet[Engine] = weakref.WeakSet()


def _tune_sqlite(engine: Engine) -> Callable[[Any, Any], None]:
    """The documented recipe for the sqlite3 driver's legacy transaction mode.

    The driver begins transactions itself, late and without SELECTs; turn that off and
    let SQLAlchemy's ``begin`` emit ``BEGIN`` (``BEGIN IMMEDIATE`` for a write, so that
    writers queue on the busy timeout instead of failing when they upgrade their lock).
    Returns the set-up each new connection gets.
    """
    memory = isinstance(engine.pool, StaticPool)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # What where= filters compare Decimal, datetime, dict and list fields by (see
        # DocField).
        dbapi_connection.create_function("lf_decimal", 1, sqlite_decimal, deterministic=True)
        dbapi_connection.create_function("lf_instant", 1, sqlite_instant, deterministic=True)
        dbapi_connection.create_function("lf_json", 1, sqlite_json, deterministic=True)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory:
                # Checkpoint every ~40 MB of log rather than 4 MB: a page that several
                # commits touch is written back once (bulk imports: about 12% faster).
                cursor.execute("PRAGMA wal_autocheckpoint = 10000")
                # A page cache of up to 32 MiB a connection (SQLite's default: 2 MiB),
                # filled only as pages are read: past a few hundred thousand people the
                # indexes a commit touches no longer fit in 2 MiB, and each miss is a
                # read from the system (a 1M-row import: 24% of its CPU in the kernel;
                # 11% less CPU with this cache, for 33 MB more at its peak).
                cursor.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
                # WAL + NORMAL: a committed transaction survives a crash of the process;
                # only a power loss can lose the last few. (The file is put in WAL mode
                # once its schema is known to be leadfunnel's, see use_wal: a file
                # opened to be checked or refused is not changed. Until then, FULL.)
                (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
                if str(mode).lower() == "wal":
                    cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("leadfunnel_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return _connect


def use_wal(engine: Engine) -> None:
    """Put the SQLite file of ``engine`` in WAL mode (it stays so: readers never wait
    for the writer), unless it is in it, or cannot be written (a read-only file or
    ``mode=ro`` URI, opened to be read as it is). Called once the file is known to hold
    leadfunnel's tables; connections opened before in another mode are made again."""
    if engine.dialect.name != "sqlite" or isinstance(engine.pool, StaticPool):
        return
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            switched = _set_wal(cursor)
        finally:
            cursor.close()
    if switched:
        engine.dispose()  # the pooled connections: synchronous = NORMAL, now it is WAL


def _set_wal(cursor: Any) -> bool:
    """Put the database in WAL mode (it stays so), waiting out other connections;
    whether the mode changed meanwhile (not when the file was in WAL mode already, or
    cannot be written: a read-only file or ``mode=ro`` URI keeps the mode it has).

    Switching needs a moment alone with the file, and SQLite answers "locked" at once
    instead of waiting, when several connections open a new database together.
    """
    for attempt in range(100):
        (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() == "wal":
            return attempt > 0  # another connection switched it while this one waited
        try:
            (mode,) = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc).replace(" ", "").lower():
                return False  # read as it is
            if attempt == 99:
                raise
            time.sleep(0.01 * min(attempt + 1, 10))
            continue
        return str(mode).lower() == "wal"  # else SQLite kept its mode: it could not write
    return False  # (the last attempt raises)


@contextmanager
def translated(
    changes: ChangeSet | None = None,
    *,
    lacking: Callable[[str], LeadFunnelError] | None = None,
    reading: bool = False,
) -> Iterator[None]:
    """Let our own errors and integrity errors through; turn driver errors into ours.
    ``reading``: the statements only read (a value the database cannot give back is
    then no value refused, and nothing was to be stored).

    A deadlock or serialisation failure while committing ``changes`` is a lost race,
    reported as :class:`~leadfunnel.ConcurrencyError` so that callers retry as they do
    for a stale version. A table or column missing (a database at an older schema,
    opened with ``migrate="never"``, or tables dropped behind leadfunnel's back) is
    the error ``lacking`` makes of the driver's message: retrying cannot help.
    """
    try:
        yield
    except LeadFunnelError:
        raise
    except sa_exc.IntegrityError as exc:
        scrubbed(exc)
        raise  # explained by the caller (see SqlRepository._explain)
    except sa_exc.DBAPIError as exc:
        scrubbed(exc)
        under = _error_under(exc)
        if under is not None:
            # A savepoint that could not roll back after our own error (MySQL lost it
            # with the transaction, on a deadlock): that error is what happened.
            raise under from exc
        if lacks_schema(exc):
            raise (lacking or _lacking)(first_line(exc.orig)) from exc
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
        if reading and isinstance(exc, sa_exc.DataError):
            raise StorageError(
                f"the database could not give a stored value back: {first_line(exc.orig)}. "
                "Nothing was changed. Check that value, or the session settings of an "
                "engine you gave (a session time zone other than UTC cannot show instants "
                "at the calendar's ends; see docs/storage.md)"
            ) from exc
        if isinstance(exc, sa_exc.DataError) or _refused_by_check(exc):
            # A value the database refuses (too long for its column, out of range, not
            # a number, a document MariaDB's JSON check refuses): retrying the same
            # change fails the same way.
            raise StorageError(
                f"the database refused a value: {first_line(exc.orig)}; nothing of this "
                "change was stored. This is no connection or locking problem, and retrying "
                "will not help: the database will not take the value (one that "
                "leadfunnel's models accept should always store: please report it)",
                of_value=True,
            ) from exc
        if _denied(exc):
            raise StorageError(
                f"the database refused this user: {first_line(exc.orig)}; nothing of "
                "this change was stored. Retrying will not help: grant the user the "
                "rights it lacks, or open the store as a user that has them"
            ) from exc
        raise StorageError(
            f"the database failed: {first_line(exc.orig)}; nothing of this change was "
            "stored. Retry, or check that the database is reachable and not locked"
        ) from exc
    except sa_exc.StatementError as exc:
        scrubbed(exc)
        if isinstance(exc.orig, ValueError):
            raise ValueError(str(exc.orig)) from None
        raise StorageError(f"the database failed: {exc}") from exc
    except sa_exc.TimeoutError as exc:
        # The pool's: every connection it may open is in use (a thread holding one
        # in a long transaction() block, say) for longer than its pool_timeout.
        raise StorageError(
            f"no connection to the database was free in time ({first_line(exc)}); "
            "nothing of this change was stored. Retry, or give the engine a larger pool "
            "(pool_size, max_overflow) or a longer pool_timeout, or keep transaction() "
            "blocks short: each holds a connection until it ends"
        ) from exc


def scrubbed(exc: sa_exc.StatementError) -> sa_exc.StatementError:
    """``exc`` without the statement's parameters, which may be personal data:
    ``hide_parameters`` keeps them out of its message, and this out of its ``params``
    attribute, which error trackers and debuggers read (DESIGN 13)."""
    exc.params = None
    return exc


def _lacking(problem: str) -> LeadFunnelError:
    return StorageError(
        f"the database lacks a table or column of leadfunnel's schema ({problem}); "
        "retrying will not help: if it was opened with migrate='never', upgrade it with "
        "`leadfunnel migrate`, else something dropped or changed leadfunnel's tables "
        "after they were made. Nothing was changed"
    )


# PostgreSQL SQLSTATEs and MySQL error numbers of a table or column that is not there.
_PG_MISSING = frozenset({"42P01", "42703"})  # undefined_table, undefined_column
_MYSQL_MISSING = frozenset({1146, 1054})  # no such table, unknown column
_SQLITE_MISSING = ("no such table", "no such column")


def lacks_schema(exc: sa_exc.DBAPIError) -> bool:
    """Whether ``exc`` says that a table or column its statement names does not exist."""
    orig = exc.orig
    if _coded(orig, _PG_MISSING, _MYSQL_MISSING):
        return True
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig)
        return text.startswith(_SQLITE_MISSING) or " has no column named " in text
    return False


#: How long ``compact()`` tries again a WAL checkpoint that another reader blocks.
COMPACT_WAIT = 10.0


def checkpoint_wal(cursor: Any) -> None:
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
#: MariaDB's ER_CONSTRAINT_FAILED: a CHECK refused the row. leadfunnel's only checks are
#: MariaDB's own JSON_VALID on its JSON columns, which refuses a document nested more
#: than 32 levels deep (a value, not the server, is at fault).
_MARIADB_CHECK_FAILED = 4025


def _refused_by_check(exc: sa_exc.DBAPIError) -> bool:
    return _coded(exc.orig, mysql_codes=(_MARIADB_CHECK_FAILED,))


def _lost_race(exc: sa_exc.DBAPIError) -> bool:
    """Whether ``exc``, or the error it replaced (MySQL's "SAVEPOINT ... does not exist"
    when the savepoint's rollback follows a deadlock that ended the transaction), is a
    deadlock or serialisation failure."""
    return any(_raced(error) for error in _chain(exc))


def _raced(error: BaseException) -> bool:
    orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    return _coded(orig, _PG_RACES, _MYSQL_RACES)


def whole_transaction_lost(exc: BaseException) -> bool:
    """Whether ``exc`` came of a MySQL deadlock, which ended the whole transaction."""
    for error in _chain(exc):
        orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
        if _coded(orig, mysql_codes=(_MYSQL_DEADLOCK,)):
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


def first_line(error: BaseException | None) -> str:
    text = str(error) if error is not None else "unknown error"
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
