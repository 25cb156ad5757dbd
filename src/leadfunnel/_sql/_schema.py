"""The SQL schema of :class:`~leadfunnel.SqlRepository`, its column types and migrations.

Every record is one row: the fields that are filtered, grouped or joined on are columns
with indexes, and ``doc`` holds the whole model as JSON (JSONB on PostgreSQL), which is
what reads rebuild the model from. Tables are prefixed ``lf_`` so they can live in an
application's own database.

The schema's version is the single row of ``lf_schema``. :data:`MIGRATIONS` maps each
version to the function that upgrades a database from the version before it; opening a
database runs the missing ones in one transaction, and refuses a newer version. Every
step of a migration checks whether it is done already (a column, an index, a table, a
backfilled value), because MariaDB and MySQL commit each DDL statement on its own: an
upgrade interrupted after any statement finishes on the next open.

The MySQL, MariaDB and PostgreSQL column types and table options are brought in when
such a database is used: importing ``sqlalchemy.dialects.mysql`` and
``sqlalchemy.dialects.postgresql`` would cost every command on the other databases 2%
and 5.6% of ``leadfunnel report``'s instructions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from .._lifecycle import funnel_steps
from .._repository import TRAIT_KEY_LENGTH, trait_key

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TRAIT_COLUMNS",
    "Document",
    "is_document",
    "metadata",
    "start_counter",
    "trait_columns",
]

#: The version of the schema this code writes.
SCHEMA_VERSION = 9


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware datetime, stored as UTC; read back aware, in UTC (the same instant).

    PostgreSQL stores ``timestamptz``; MySQL/MariaDB ``DATETIME(6)`` in UTC; SQLite an
    integer, microseconds since 1970 UTC (8 bytes where ISO text takes 26, and every
    history, step and creation index holds one).
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import TIMESTAMP

            return dialect.type_descriptor(TIMESTAMP(timezone=True))
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects import mysql

            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"{value.isoformat()} has no timezone; pass an aware datetime "
                "(for example datetime(..., tzinfo=timezone.utc))"
            )
        utc = value.astimezone(UTC)
        if dialect.name == "postgresql":
            return utc
        if dialect.name == "sqlite":
            return to_sqlite_micros(utc)
        return utc.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, int):
            return EPOCH + timedelta(microseconds=value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


class Uuid(sa.TypeDecorator[UUID]):
    """A UUID: native on PostgreSQL, 16 bytes elsewhere (half the size of its hex text,
    which keeps the many id indexes small)."""

    impl = sa.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.Uuid(as_uuid=True))
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects import mysql

            return dialect.type_descriptor(mysql.BINARY(16))
        return dialect.type_descriptor(sa.LargeBinary(16))

    def process_bind_param(self, value: UUID | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return value.bytes

    def process_result_value(self, value: Any, dialect: Dialect) -> UUID | None:
        if value is None or isinstance(value, UUID):
            return value
        return UUID(bytes=bytes(value))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_sqlite_micros(value: datetime) -> int:
    """How SQLite stores an instant: microseconds since 1970-01-01 UTC."""
    return (value - EPOCH) // _MICROSECOND


class ExactText(sa.TypeDecorator[str]):
    """``VARCHAR(length)``; on MySQL and MariaDB in ``utf8mb4`` with the binary
    collation: their default collations fold case and accents and ignore trailing
    spaces, and keys and filters must compare exactly, as they do in Python."""

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length  # an __init__ argument: part of the statement cache key

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects import mysql

            exact = mysql.VARCHAR(self.length, charset="utf8mb4", collation="utf8mb4_bin")
            return dialect.type_descriptor(exact)
        return self.impl_instance


class Document(sa.TypeDecorator[Any]):
    """A model as JSON: ``JSONB`` on PostgreSQL, the dialect's JSON elsewhere. The
    PostgreSQL type is looked up only when PostgreSQL is used (importing its dialect
    costs every command about 20 ms)."""

    impl = sa.JSON
    cache_ok = True
    hashable = False  # as JSON: documents are not compared by hash

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        """As the driver gives it: JSON text on SQLite and MariaDB, which the readers
        validate in pydantic's JSON mode without a dict of it (``build_record``; the
        others parse it with ``doc_as_dict``); PostgreSQL's driver gives the object."""
        if dialect.name in ("sqlite", "mysql", "mariadb"):
            return None
        return super().result_processor(dialect, coltype)


def is_document(column: sa.Column[Any]) -> bool:
    """Whether ``column`` holds a JSON document."""
    return isinstance(column.type, Document)


Doc = Document()
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Id = Uuid()
At = UtcDateTime()

metadata = sa.MetaData()

#: The options every table is created with on MySQL (not given to ``sa.Table``, which
#: would import the MySQL dialect to check them: see :func:`_mysql_options`).
_MYSQL_OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def _stored_columns() -> list[sa.Column[Any]]:
    return [
        # Insertion order: lists come back in the order records were stored.
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", Id, nullable=False, unique=True),
        sa.Column("version", sa.Integer, nullable=False),
        # Version 3: indexed with the id, in the index below (list order, keyset pages).
        sa.Column("created_at", At, nullable=False),
        sa.Column("updated_at", At, nullable=False),
    ]


def _people_indexes(table: str) -> list[sa.Index]:
    """The people's owner and source, each with the list order (``created_at``, ``id``):
    a page of ``leads(owner=...)`` or ``contacts(source=...)`` is one range of its index
    (version 7; a single-column index left SQLite sorting every match for each page)."""
    return [
        sa.Index(f"ix_{table}_{column}_created", column, "created_at", "id")
        for column in ("owner", "source")
    ]


def _person_columns() -> list[sa.Column[Any]]:
    return [
        # Version 3: when the person was erased; erased people are left out of the
        # follow-ups, rep lists and duplicate searches.
        sa.Column("erased_at", At),
        # Version 7: indexed with the list order, in the indexes ``_people_indexes``
        # declares (a page of leads(owner=...) was a sort of every lead of that owner).
        sa.Column("owner", ExactText(200)),
        sa.Column("source", ExactText(200)),
        # The traits people_like() matches on, case-folded in Python at write time and
        # cut to these lengths (``trait_key``: folding "ß" makes "ss", and a valid
        # 200-character company could be longer once folded).
        sa.Column("email_domain", ExactText(TRAIT_KEY_LENGTH["email_domain"]), index=True),
        sa.Column("company_key", ExactText(TRAIT_KEY_LENGTH["company"]), index=True),
        sa.Column("last_name_key", ExactText(TRAIT_KEY_LENGTH["last_name"]), index=True),
        sa.Column("opt_outs", ExactText(100)),
    ]


schema_table = sa.Table(
    "lf_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
)

leads = sa.Table(
    "lf_leads",
    metadata,
    *_stored_columns(),
    sa.Index("ix_lf_leads_created", "created_at", "id"),
    # The leads at a status in storage order (SQLite's rowid, InnoDB's primary key follow
    # the status in this index): a batch of qualify_all is one range of it, and the rows
    # and index entries it updates sit together. Not (status, created_at, id), as the
    # contacts' type and the deals' stage are: imported leads keep their CRM's creation
    # dates, and moving a batch of them through such an index writes a page of it per
    # lead (measured at 100k leads: qualify_all's system time doubled, its CPU grew 6%;
    # reading the batches in that order too, 35%). A page of leads(status=...) sorts
    # the leads at that status instead.
    sa.Column("status", ExactText(20), nullable=False, index=True),
    sa.Column("status_at", At),
    sa.Column("profile", ExactText(200)),
    sa.Column("contact_id", Id),
    *_person_columns(),
    sa.Column("doc", Doc, nullable=False),
    *_people_indexes("lf_leads"),
)

contacts = sa.Table(
    "lf_contacts",
    metadata,
    *_stored_columns(),
    sa.Index("ix_lf_contacts_created", "created_at", "id"),
    sa.Column("type", ExactText(20), nullable=False),
    sa.Index("ix_lf_contacts_type_created", "type", "created_at", "id"),
    sa.Column("lead_id", Id, index=True),
    *_person_columns(),
    sa.Column("doc", Doc, nullable=False),
    *_people_indexes("lf_contacts"),
)

opportunities = sa.Table(
    "lf_opportunities",
    metadata,
    *_stored_columns(),
    sa.Index("ix_lf_opportunities_created", "created_at", "id"),
    sa.Column("stage", ExactText(20), nullable=False),
    sa.Index("ix_lf_opportunities_stage_created", "stage", "created_at", "id"),
    sa.Column("owner", ExactText(200), index=True),
    sa.Column("setter", ExactText(200), index=True),
    sa.Column("contact_id", Id, nullable=False, index=True),
    sa.Column("lead_id", Id, index=True),
    # Version 2: what the rep lists filter on (appointments set but not sat, ...).
    sa.Column("appointment_at", At),
    sa.Column("lost_reason", ExactText(20)),
    sa.Column("doc", Doc, nullable=False),
    # Version 4: when the deal was won or lost (a contact's follow-up runs from its last
    # deal's close, which a later edit of the closed deal must not move).
    sa.Column("closed_at", At),
)

RECORD_TABLES = {"lead": leads, "contact": contacts, "opportunity": opportunities}

touches = sa.Table(
    "lf_touches",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", Id, nullable=False, unique=True),
    sa.Column("subject_id", Id, nullable=False),
    sa.Column("at", At, nullable=False),
    sa.Column("channel", ExactText(20), nullable=False),
    sa.Column("outcome", ExactText(20), nullable=False),
    sa.Column("doc", Doc, nullable=False),
    sa.Index("ix_lf_touches_subject", "subject_id", "at", "seq"),
    sa.Index("ix_lf_touches_outcome", "outcome", "subject_id"),
)

events = sa.Table(
    "lf_events",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", Id, nullable=False, unique=True),
    sa.Column("subject_id", Id, nullable=False),
    sa.Column("subject", ExactText(20), nullable=False),
    sa.Column("name", ExactText(50), nullable=False),
    sa.Column("at", At, nullable=False),
    sa.Column("doc", Doc, nullable=False),
    # Version 3: the commit-order position (see ``counters``), unique across the store;
    # history is ordered by (at, position).
    sa.Column("position", sa.BigInteger),
    sa.Index("ux_lf_events_position", "position", unique=True),
    sa.Index("ix_lf_events_history", "subject_id", "at", "position"),
)

#: One row per funnel step an event reached (``funnel_steps`` at commit time), so that
#: reports are one ``GROUP BY`` with ``COUNT(DISTINCT subject_id)``.
steps = sa.Table(
    "lf_steps",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("event_id", Id, sa.ForeignKey("lf_events.id"), nullable=False, index=True),
    sa.Column("subject_id", Id, nullable=False),
    sa.Column("step", ExactText(20), nullable=False),
    sa.Column("at", At, nullable=False, index=True),
    sa.Column("month", ExactText(7), nullable=False),
    # Version 2: each subject's first arrival at a step (time in stage, the rep lists)
    # and the per-step distinct counts read this index alone, in order.
    sa.Index("ix_lf_steps_step_subject", "step", "subject_id", "at"),
)

#: The identity keys (``email:...``, ``phone:...``) each person holds. The primary key
#: is what stops two processes from both storing the same person.
keys = sa.Table(
    "lf_keys",
    metadata,
    sa.Column("key", ExactText(320), primary_key=True),
    sa.Column("record_id", Id, nullable=False, index=True),
    sa.Column("avoided", sa.Boolean, nullable=False),
    sqlite_with_rowid=False,  # the key index is the table: half the pages
)

tags = sa.Table(
    "lf_tags",
    metadata,
    sa.Column("record_id", Id, primary_key=True),
    sa.Column("tag", ExactText(100), primary_key=True),
    # Version 9: the person's ``created_at`` (which never changes), so that a page of
    # leads(tag=...) or contacts(tag=...) is one range of the index below, in list
    # order; with (tag, record_id) each page sorted every person holding the tag.
    sa.Column("created_at", At),
    sa.Index("ix_lf_tags_tag_created", "tag", "created_at", "record_id"),
    sqlite_with_rowid=False,
)

#: Version 3: named counters. ``event_position`` is the position of the last event
#: committed; a writing transaction reads it with a row lock and moves it on, so event
#: positions are handed out in commit order (a sequence hands them out at insert, and a
#: reader could see N + 1 before N commits).
counters = sa.Table(
    "lf_counters",
    metadata,
    sa.Column("name", ExactText(50), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

#: Version 3: people who must never be added again, by keyed hash of an identity key.
suppressions = sa.Table(
    "lf_suppressions",
    metadata,
    sa.Column("digest", ExactText(64), primary_key=True),
    sa.Column("record_id", Id, nullable=False, index=True),
    sqlite_with_rowid=False,
)

#: Version 3: secrets the store makes for itself (the suppression hash key when the
#: application configures none).
secrets = sa.Table(
    "lf_secrets",
    metadata,
    sa.Column("name", ExactText(50), primary_key=True),
    sa.Column("value", ExactText(200), nullable=False),
)

EVENT_POSITION = "event_position"

#: The indexes a bulk load into a small SQLite store builds once, at its end, instead of
#: entry by entry (see ``SqlRepository.loading``): none is unique, no write looks
#: anything up by them, and their keys arrive in no order (a CRM's creation dates,
#: owners, sources, e-mail domains, names), so each row's entries land on pages all
#: over each index. Past a few hundred thousand people those pages no longer fit in the
#: page cache, and the load spends its time writing and reading them back.
DEFERRABLE: dict[str, tuple[str, ...]] = {
    "lf_leads": (
        "ix_lf_leads_created",
        "ix_lf_leads_owner_created",
        "ix_lf_leads_source_created",
        "ix_lf_leads_email_domain",
        "ix_lf_leads_company_key",
        "ix_lf_leads_last_name_key",
    ),
    "lf_contacts": (
        "ix_lf_contacts_created",
        "ix_lf_contacts_type_created",
        "ix_lf_contacts_owner_created",
        "ix_lf_contacts_source_created",
        "ix_lf_contacts_email_domain",
        "ix_lf_contacts_company_key",
        "ix_lf_contacts_last_name_key",
    ),
    "lf_tags": ("ix_lf_tags_tag_created",),
    "lf_steps": ("ix_lf_steps_at",),
}
#: ... as the schema declares them.
DEFERRED_INDEXES: tuple[sa.Index, ...] = tuple(
    index
    for table, names in DEFERRABLE.items()
    for index in sorted(metadata.tables[table].indexes, key=lambda index: str(index.name))
    if index.name in names
)

merges = sa.Table(
    "lf_merges",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", Id, nullable=False, unique=True),
    sa.Column("keep_id", Id, nullable=False, index=True),
    # Version 3: the merged-away record's id (an erasure finds its snapshots by it).
    sa.Column("other_id", Id, index=True),
    sa.Column("doc", Doc, nullable=False),
)


def _mysql_options(table: sa.Table, connection: Connection, **kw: Any) -> None:
    """Before a table is created on MySQL or MariaDB: the ``mysql_...`` options, as if
    ``sa.Table`` had been given them (a ``mariadb://`` URL's compiler reads none)."""
    if connection.dialect.name in ("mysql", "mariadb"):
        table.dialect_kwargs.update(_MYSQL_OPTIONS)


for _table in metadata.tables.values():
    sa.event.listen(_table, "before_create", _mysql_options)


def _add_column(conn: Connection, table: sa.Table, name: str) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for a column of ``table`` as declared above, unless
    an interrupted upgrade added it already."""
    schema_name = (conn.get_execution_options().get("schema_translate_map") or {}).get(None)
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name, schema=schema_name)}
    if name in present:
        return
    column = table.c[name]
    preparer = conn.dialect.identifier_preparer
    schema = (conn.get_execution_options().get("schema_translate_map") or {}).get(None)
    where = preparer.quote(table.name)
    if schema is not None:
        where = f"{preparer.quote_schema(schema)}.{where}"
    kind = column.type.compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE {where} ADD COLUMN {preparer.quote(name)} {kind}"))


def _indexes(conn: Connection, table: sa.Table) -> set[str]:
    schema_name = (conn.get_execution_options().get("schema_translate_map") or {}).get(None)
    found = sa.inspect(conn).get_indexes(table.name, schema=schema_name)
    return {str(i["name"]) for i in found}


def _create_index(conn: Connection, table: sa.Table, name: str) -> None:
    """Create the index ``name`` of ``table`` as declared above, unless it exists."""
    if name not in _indexes(conn, table):
        next(i for i in table.indexes if i.name == name).create(conn)


def _to_v2(conn: Connection) -> None:
    """Version 2: ``appointment_at`` and ``lost_reason`` columns on opportunities (filled
    from each row's document) and the ``(step, subject_id, at)`` index on steps."""
    for name in ("appointment_at", "lost_reason"):
        _add_column(conn, opportunities, name)
    _create_index(conn, steps, "ix_lf_steps_step_subject")
    _fill_deal_columns(conn, {"appointment_at": _instant, "lost_reason": _same})


def _fill_deal_columns(conn: Connection, columns: dict[str, Callable[[Any], Any]]) -> None:
    """Fill ``columns`` of every opportunity from its document, each value read by its
    function, 1,000 rows at a time."""
    deals = opportunities
    for rows in _pages(conn, sa.select(deals.c.seq, deals.c.doc), deals.c.seq):
        updates = [
            {"key": seq, **{name: read(_doc(doc).get(name)) for name, read in columns.items()}}
            for seq, doc in rows
        ]
        conn.execute(
            sa.update(deals)
            .where(deals.c.seq == sa.bindparam("key"))
            .values({name: sa.bindparam(name) for name in columns}),
            updates,
        )


def _pages(conn: Connection, query: sa.Select[Any], seq: Any) -> Iterator[Sequence[Any]]:
    """The rows of ``query``, whose first column is ``seq``, 1,000 at a time in its
    order: a migration's memory stays flat on a large store, and each page may change
    the rows it read before the next is asked for."""
    after = -1
    while rows := conn.execute(query.where(seq > after).order_by(seq).limit(1000)).all():
        yield rows
        after = rows[-1][0]


def _windows(conn: Connection, seq: Any, size: int = 1_000) -> Iterator[tuple[int, int]]:
    """Ranges ``(low, high]`` of ``seq`` (a table's ascending key), ``size`` apart, up
    to its largest value: a migration reads a large table one window at a time, each a
    range of the key (a page found by ``ORDER BY ... LIMIT`` on a filtered join would
    make the database join and sort every row ahead of it, page after page)."""
    last = conn.execute(sa.select(sa.func.max(seq))).scalar()
    low = 0
    while last is not None and low < last:
        yield low, low + size
        low += size


def _doc(doc: Any) -> dict[str, Any]:
    """A stored document as a dict (the drivers give JSON text, or the object parsed)."""
    data: dict[str, Any] = json.loads(doc) if isinstance(doc, (str, bytes)) else doc
    return data


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _same(value: Any) -> Any:
    return value


def _to_v3(conn: Connection) -> None:
    """Version 3: the events' commit-order ``position`` (existing events take their
    insertion order), its counter, the suppression list, the store's secrets, and the
    ``(created_at, id)`` index of each record table (list order and keyset pages), and
    the contacts' ``(type, created_at, id)`` and deals' ``(stage, created_at, id)``
    indexes in place of those columns' own (the leads keep their status index)."""
    for table in (counters, suppressions, secrets):
        table.create(conn, checkfirst=True)
    _add_column(conn, events, "position")
    conn.execute(sa.update(events).where(events.c.position.is_(None)).values(position=events.c.seq))
    _create_index(conn, events, "ux_lf_events_position")
    _create_index(conn, events, "ix_lf_events_history")
    if "ix_lf_events_subject" in _indexes(conn, events):
        # The version 2 history index, on a stand-in table: never on ``events`` itself.
        cols: list[sa.Column[Any]] = [sa.Column(n) for n in ("subject_id", "at", "seq")]
        old = sa.Table(events.name, sa.MetaData(), *cols)
        sa.Index("ix_lf_events_subject", *old.c).drop(conn)
    for table in (leads, contacts):
        _add_column(conn, table, "erased_at")
    _add_column(conn, merges, "other_id")
    _create_index(conn, merges, "ix_lf_merges_other_id")
    for seq, doc in conn.execute(
        sa.select(merges.c.seq, merges.c.doc).where(merges.c.other_id.is_(None))
    ).all():
        other = UUID(_doc(doc)["other"]["doc"]["id"])
        conn.execute(sa.update(merges).where(merges.c.seq == seq).values(other_id=other))
    for table in RECORD_TABLES.values():
        _create_index(conn, table, f"ix_{table.name}_created")
        _drop_index(conn, table, "created_at")  # the version 2 index it replaces
    for table, state in ((contacts, "type"), (opportunities, "stage")):
        _create_index(conn, table, f"ix_{table.name}_{state}_created")
        _drop_index(conn, table, state)
    start_counter(conn)


def _drop_index(conn: Connection, table: sa.Table, column: str) -> None:
    """Drop a version 2 index ``ix_<table>_<column>``, unless it is gone already."""
    if f"ix_{table.name}_{column}" in _indexes(conn, table):
        stand_in = sa.Table(table.name, sa.MetaData(), sa.Column(column))
        sa.Index(f"ix_{table.name}_{column}", stand_in.c[column]).drop(conn)


def start_counter(conn: Connection) -> None:
    """The ``event_position`` counter, at the last position stored, unless it exists."""
    found = conn.execute(
        sa.select(counters.c.value).where(counters.c.name == EVENT_POSITION)
    ).first()
    if found is None:
        last = conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.position), 0)))
        conn.execute(sa.insert(counters).values(name=EVENT_POSITION, value=int(last.scalar_one())))


def _to_v4(conn: Connection) -> None:
    """Version 4: the opportunities' ``closed_at`` column, filled from each row's
    document."""
    _add_column(conn, opportunities, "closed_at")
    _fill_deal_columns(conn, {"closed_at": _instant})


def _to_v5(conn: Connection) -> None:
    """Version 5: the ``unqualified`` milestone only of leads disqualified from raw or
    qualified (``funnel_steps``): the rows of a suspect's or farm-list lead's
    disqualification, which ``funnel_steps`` now gives no step, are removed, so that the
    unqualified share counts raw leads only. Deleting what is left to delete: a run cut
    off half way is finished by the next."""
    st, ev = steps, events
    query = (
        sa.select(st.c.seq, ev.c.subject, ev.c.doc)
        .select_from(st.join(ev, ev.c.id == st.c.event_id))
        .where(st.c.step == "unqualified")
    )
    for low, high in _windows(conn, st.c.seq):
        rows = conn.execute(query.where(st.c.seq > low, st.c.seq <= high)).all()
        stale = [seq for seq, subject, doc in rows if not _reaches_unqualified(subject, doc)]
        if stale:
            conn.execute(sa.delete(st).where(st.c.seq.in_(stale)))


def _reaches_unqualified(subject: str, doc: Any) -> bool:
    data = _doc(doc)
    return "unqualified" in funnel_steps(subject, data.get("source"), data.get("dest"))


def _to_v6(conn: Connection) -> None:
    """Version 6: the people's trait keys (``trait_key``) as duplicate searches now read
    names: a company's and a last name's accents, spaces and punctuation aside, and
    decomposed text as composed. Every key is also cut to its column's length (SQLite,
    which checks no length, kept longer ones whole before they were cut). Only the rows
    whose keys change are written; a run cut off half way leaves the rest to the next."""
    for table in (leads, contacts):
        c = table.c
        query = sa.select(c.seq, c.doc, *(c[name] for name in TRAIT_COLUMNS))
        for rows in _pages(conn, query, c.seq):
            changed = []
            for seq, doc, *stored in rows:
                data = _doc(doc)
                keys = trait_columns(data.get("email"), data.get("company"), data.get("last_name"))
                if tuple(keys.values()) != tuple(stored):
                    changed.append({"key": seq, **keys})
            if changed:
                conn.execute(
                    sa.update(table)
                    .where(c.seq == sa.bindparam("key"))
                    .values({name: sa.bindparam(name) for name in TRAIT_COLUMNS}),
                    changed,
                )


def _to_v7(conn: Connection) -> None:
    """Version 7: the people's owner and source indexes hold the list order too
    (``(owner, created_at, id)``, ``(source, created_at, id)``), in place of the
    single-column ones, so a filtered page reads one range instead of sorting every
    match. Each index is made unless it exists and dropped unless it is gone: a run cut
    off half way is finished by the next."""
    for table in (leads, contacts):
        for column in ("owner", "source"):
            _create_index(conn, table, f"ix_{table.name}_{column}_created")
            _drop_index(conn, table, column)


def _to_v8(conn: Connection) -> None:
    """Version 8: a lead that became qualified other than from raw (stored or imported
    as qualified, or qualified again from unqualified) reaches ``raw`` too, at the same
    moment (``funnel_steps``): a qualified lead is always one of the raw leads. Each such
    event's missing ``raw`` row is added; adding only what is still missing, a run cut
    off half way is finished by the next."""
    st, ev = steps, events
    query = (
        sa.select(st.c.seq, st.c.event_id, st.c.subject_id, st.c.at, st.c.month, ev.c.doc)
        .select_from(st.join(ev, ev.c.id == st.c.event_id))
        .where(st.c.step == "qualified", ev.c.subject == "lead")
    )
    # The raw rows added have larger keys than the windows read so far, and are no
    # "qualified" rows: nothing is read twice.
    for low, high in _windows(conn, st.c.seq):
        rows = conn.execute(query.where(st.c.seq > low, st.c.seq <= high)).all()
        wanted = {
            event_id: {"event_id": event_id, "subject_id": subject_id, "step": "raw",
                       "at": at, "month": month}
            for _, event_id, subject_id, at, month, doc in rows
            if _reaches_raw(doc)
        }  # fmt: skip
        if not wanted:
            continue
        held = conn.execute(
            sa.select(st.c.event_id).where(st.c.step == "raw", st.c.event_id.in_(list(wanted)))
        )
        for (event_id,) in held:
            wanted.pop(event_id, None)
        if wanted:
            conn.execute(sa.insert(st), list(wanted.values()))


def _reaches_raw(doc: Any) -> bool:
    data = _doc(doc)
    return "raw" in funnel_steps("lead", data.get("source"), data.get("dest"))


#: The person columns ``people_like`` looks people up by (see :func:`trait_columns`).
TRAIT_COLUMNS = ("email_domain", "company_key", "last_name_key")


def trait_columns(
    email: str | None, company: str | None, last_name: str | None
) -> dict[str, str | None]:
    """A person's :data:`TRAIT_COLUMNS`: the keys (``trait_key``) of its e-mail's domain,
    its company and its last name, as a row stores them."""
    return {
        "email_domain": trait_key(email.rpartition("@")[2], "email_domain") if email else None,
        "company_key": trait_key(company, "company"),
        "last_name_key": trait_key(last_name, "last_name"),
    }


def _to_v9(conn: Connection) -> None:
    """Version 9: each tag row holds its person's ``created_at``, and the tags' index is
    ``(tag, created_at, record_id)``, so a page of people with a tag reads one range of
    it instead of sorting every person with the tag. The column is added unless it
    exists, filled where it is still empty, the index made unless it exists and the old
    one dropped unless it is gone: a run cut off half way is finished by the next."""
    _add_column(conn, tags, "created_at")
    for people in (leads, contacts):
        born = sa.select(people.c.created_at).where(people.c.id == tags.c.record_id)
        conn.execute(
            sa.update(tags)
            .where(tags.c.created_at.is_(None), sa.exists(born))
            .values(created_at=born.scalar_subquery())
        )
    _create_index(conn, tags, "ix_lf_tags_tag_created")
    _drop_index(conn, tags, "tag")


#: ``MIGRATIONS[n]`` upgrades a database at version ``n - 1`` to version ``n``, inside
#: the transaction that opens it.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _to_v2,
    3: _to_v3,
    4: _to_v4,
    5: _to_v5,
    6: _to_v6,
    7: _to_v7,
    8: _to_v8,
    9: _to_v9,
}
