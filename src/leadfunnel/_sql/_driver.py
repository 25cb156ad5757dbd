"""The statements the bulk paths send straight to the driver, and how a row's values
are converted for it."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from . import _schema as s
from ._rows import dump_json

#: The dialect names of MySQL and MariaDB (SQLAlchemy names MariaDB either way).
_MYSQL = ("mysql", "mariadb")


class DriverStatements:
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
        self._by_column: dict[str, Mapping[str, tuple[int, Callable[[Any], Any] | None]]] = {}

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

    def columns(self, table: sa.Table) -> Mapping[str, tuple[int, Callable[[Any], Any] | None]]:
        """Each column of ``table`` that :meth:`prepare` converts, by name: where it sits
        in a converted row and what its value is converted with (None: as is), for a
        row of a few columns (see :meth:`update_sql`)."""
        found = self._by_column.get(table.name)
        if found is None:
            found = self._by_column[table.name] = MappingProxyType(
                {
                    column.name: (i, self._converter(column, bound=True))
                    for i, column in enumerate(_inserted_columns(table))
                }
            )
        return found

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

    def lock_sql(self, table: sa.Table, *, documents: bool) -> str:
        """The columns :meth:`prepare` converts, in its order, as the driver gives them,
        of the rows whose id matches ``{ids}``, locked (``FOR UPDATE``; SQLite has one
        writer already). JSON documents come as text (PostgreSQL's as well: psycopg
        would parse them with ``json``, at twice the cost), for the keys a writer's
        model does not declare, which an update keeps; without ``documents``, ``NULL``
        in their place."""
        quote = self._dialect.identifier_preparer.quote
        document = "CAST({} AS TEXT)" if self._dialect.name == "postgresql" else "{}"
        if not documents:
            document = "NULL"
        columns = ", ".join(
            document.format(quote(c.name)) if s.is_document(c) else quote(c.name)
            for c in _inserted_columns(table)
        )
        return f"SELECT {columns} FROM {self._name(table)} WHERE id {{ids}}{self._for_update}"

    def ids_sql(self, table: sa.Table) -> str:
        """The id and version of the rows whose id matches ``{ids}``, not locked."""
        quote = self._dialect.identifier_preparer.quote
        return f"SELECT id, {quote('version')} FROM {self._name(table)} WHERE id {{ids}}"

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

    def touch_counts_sql(self, *, locking: bool = False) -> str:
        """Each subject's number of touches, of those among ``{ids}`` with any;
        ``locking``: read as committed now, with shared locks (MySQL, whose plain reads
        see the transaction's snapshot)."""
        share = " LOCK IN SHARE MODE" if locking and self._dialect.name in _MYSQL else ""
        return (
            f"SELECT subject_id, COUNT(*) FROM {self._name(s.touches)} "
            f"WHERE subject_id {{ids}} GROUP BY subject_id{share}"
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
        return sql, row_converter(table.name, [c.name for c in columns], converters)

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
            return dump_json
        return None


def row_converter(
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
    one bit each in column order (generated, as :func:`row_converter`)."""
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


ANY_SUPPRESSED = sa.select(sa.literal(1)).select_from(s.suppressions).limit(1)
ANY_SUPPRESSED_LOCKED = ANY_SUPPRESSED.with_for_update(read=True)


def as_is(value: Any) -> Any:
    return value


def _uuid_bytes(value: UUID) -> bytes:
    return value.int.to_bytes(16, "big")  # what UUID.bytes does, without its property


def _uuid_blob(value: UUID) -> bytearray:
    """An id as a parameter of SQLite's ``executemany``. Python's ``sqlite3`` binds an
    ``int``, ``float``, ``str`` or ``bytearray`` at once, but looks every other value
    (``bytes``, ``bool``, ``None``) up among its adapters first, which cost about 0.3 us
    a value: a dozen a lead in an import, 5% of its time. The same 16 bytes are stored."""
    return bytearray(value.int.to_bytes(16, "big"))


def uuid_of(value: bytes) -> UUID:
    """An id as a driver other than psycopg gives it (16 bytes) made a UUID again."""
    return UUID(bytes=bytes(value))


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)
