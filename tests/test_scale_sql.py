"""The SQL adapter's bulk paths, seen from the statements it sends (SQLite).

Speed is measured by ``benchmarks/bench_pipeline.py``; these tests pin down the shape
of the work that makes it: set-based statements whose number does not grow with a
page, updates that write only what changed, compact event documents, reads that do
not parse stored phones again, and a page read that is one range of an index.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from conftest import (
    REPOSITORY_KINDS,
    SERVER_URLS,
    T0,
    make_repository,
    person,
    server_repository,
)
from leadfunnel import (
    ChangeSet,
    Channel,
    ConcurrencyError,
    Contact,
    Funnel,
    Lead,
    LeadStatus,
    Opportunity,
    QualificationEngine,
    SqlRepository,
)
from leadfunnel.testing import ManualClock

ENGINE = QualificationEngine.from_dict(
    {"profiles": [{"name": "msp", "rules": [{"rule": "niche", "industries": ["IT Services"]}]}]}
)


class Statements:
    """Every statement sent to the database, with whether it was an executemany."""

    def __init__(self, engine: sa.Engine) -> None:
        self.seen: list[tuple[str, bool]] = []
        self.params: dict[str, Any] = {}  # the parameters each statement was last sent with
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(
        self, conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool
    ) -> None:
        self.seen.append((" ".join(sql.split()), many))
        self.params[" ".join(sql.split())] = params

    def clear(self) -> None:
        self.seen.clear()
        self.params.clear()

    def plan(self, db: sqlite3.Connection, sql: str) -> str:
        """SQLite's query plan of ``sql``, as it was sent."""
        rows = db.execute("EXPLAIN QUERY PLAN " + sql, self.params[sql])
        return " ".join(row[-1] for row in rows)

    def matching(self, pattern: str) -> list[str]:
        return [sql for sql, _ in self.seen if re.search(pattern, sql, re.IGNORECASE)]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'scale.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def statements(engine: sa.Engine) -> Statements:
    return Statements(engine)


@pytest.fixture
def funnel(engine: sa.Engine) -> Funnel:
    return Funnel(SqlRepository(engine), clock=ManualClock(T0), engine=ENGINE)


def _set_columns(update: str) -> set[str]:
    found = re.search(r"SET (.*) WHERE", update)
    assert found is not None, update
    return {part.split("=")[0].strip().strip('"') for part in found.group(1).split(",")}


def test_a_status_change_writes_its_columns_and_leaves_keys_and_tags_alone(
    funnel: Funnel, statements: Statements
) -> None:
    lead = funnel.capture(Lead(**person(1, phone="+1 512 555 0101", tags={"vip"})))
    funnel.clock.advance(hours=1)  # type: ignore[attr-defined]
    statements.clear()
    funnel.disqualify(lead, reason="no budget")
    assert statements.matching(r"(INSERT INTO|DELETE FROM|UPDATE) lf_(keys|tags)\b") == []
    (update,) = statements.matching(r"^UPDATE lf_leads")
    assert _set_columns(update) == {"version", "updated_at", "status", "status_at", "doc"}


def test_an_edit_swaps_only_the_key_and_the_tag_that_changed(
    funnel: Funnel, statements: Statements, engine: sa.Engine
) -> None:
    lead = funnel.capture(Lead(**person(1, phone="+1 512 555 0101", tags={"vip", "webinar"})))
    statements.clear()
    edited = lead.model_copy(
        update={"email": "pat@elsewhere.example.com", "tags": frozenset({"vip", "2026"})}
    )
    funnel.update(edited)
    (drop_key,) = statements.matching(r"^DELETE FROM lf_keys")
    (drop_tag,) = statements.matching(r"^DELETE FROM lf_tags")
    # One row each, found by key and by tag, not all of the record's rows.
    assert re.search(r'"?key"? = \?', drop_key)
    assert re.search(r'"?tag"? = \?', drop_tag)
    (update,) = statements.matching(r"^UPDATE lf_leads")
    assert {"company_key", "owner", "source", "status", "created_at"}.isdisjoint(
        _set_columns(update)
    )
    assert "email_domain" in _set_columns(update)
    with engine.connect() as conn:
        keys = conn.exec_driver_sql("SELECT key FROM lf_keys ORDER BY key").scalars().all()
        tags = conn.exec_driver_sql("SELECT tag FROM lf_tags ORDER BY tag").scalars().all()
    assert keys == ["email:pat@elsewhere.example.com", "phone:+15125550101"]
    assert tags == ["2026", "vip"]


def test_an_avoided_person_keeps_its_key_rows_flagged_avoided(
    funnel: Funnel, engine: sa.Engine
) -> None:
    lead = funnel.capture(Lead(**person(1, phone="+1 512 555 0101")))
    funnel.avoid(lead)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT key, avoided FROM lf_keys ORDER BY key").all()
    assert [(key, bool(avoided)) for key, avoided in rows] == [
        ("email:pat1@acme-it1.example.com", True),
        ("phone:+15125550101", True),
    ]


def test_qualify_all_sends_as_many_statements_for_a_page_of_60_as_of_20(
    engine: sa.Engine, statements: Statements
) -> None:
    funnel = Funnel(SqlRepository(engine), clock=ManualClock(T0), engine=ENGINE)
    counts = []
    for size in (20, 60):
        funnel.import_leads([person(n, email=f"p{size}-{n}@x.example.com") for n in range(size)])
        statements.clear()
        assert funnel.qualify_all(page_size=100)["qualified"] == size
        counts.append(len(statements.seen))
    assert counts[0] == counts[1]
    assert counts[0] <= 20  # a read, the commit's few set-based statements, a last read


def test_import_events_are_stored_compact_and_read_back_whole(
    funnel: Funnel, engine: sa.Engine
) -> None:
    report = funnel.import_leads([person(1)], actor="import")
    with engine.connect() as conn:
        (doc,) = conn.exec_driver_sql("SELECT doc FROM lf_events").scalars().all()
    assert json.loads(doc) == {"dest": "raw", "actor": "import"}
    (event,) = funnel.history(report.added[0])
    assert (event.id, event.subject_id, event.subject, event.name, event.at) == (
        event.id,
        report.added[0],
        "lead",
        "import",
        T0,
    )
    assert (event.created_at, event.updated_at, event.version, event.data) == (T0, T0, 1, {})
    assert event.position == 1


def test_an_event_document_written_whole_reads_the_same(funnel: Funnel, engine: sa.Engine) -> None:
    lead = funnel.capture(Lead(**person(1)))
    (before,) = funnel.history(lead)
    whole = before.model_dump_json(exclude={"position"})
    with engine.begin() as conn:  # as an older leadfunnel, or an erasure, wrote it
        conn.exec_driver_sql("UPDATE lf_events SET doc = ?", (whole,))
    assert funnel.history(lead) == [before]


def test_reading_a_stored_person_does_not_parse_its_phones_again(
    funnel: Funnel, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead = funnel.capture(Lead(**person(1, phone="+1 512 555 0101")))
    merged = lead.model_copy(update={"other_phones": frozenset({"+14155550123"})})
    funnel.update(merged)

    def refuse(value: str, region: str) -> str:
        raise AssertionError(f"{value} parsed again")

    monkeypatch.setattr("leadfunnel._models.normalise_phone", refuse)
    again = funnel.get(lead.id)
    assert isinstance(again, Lead)
    assert (again.phone, again.other_phones) == ("+15125550101", frozenset({"+14155550123"}))
    assert "phone" in again.model_fields_set
    assert "other_phones" in again.model_fields_set
    assert again == funnel.repository.get(lead.id)
    with pytest.raises(ValidationError, match="parsed again"):
        Lead(**person(2, phone="+1 512 555 0199"))  # new input is still checked


def test_a_page_of_leads_is_one_range_of_the_status_index(
    funnel: Funnel, engine: sa.Engine, statements: Statements, tmp_path: Path
) -> None:
    funnel.import_leads([person(n) for n in range(7)])
    statements.clear()
    batches = list(funnel.repository.lead_batches(status=LeadStatus.RAW, size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    db = sqlite3.connect(tmp_path / "scale.db")
    details = statements.plan(db, statements.matching(r"FROM lf_leads WHERE")[1])
    # Storage order: the rows a batch updates sit together in the table.
    assert "USING INDEX ix_lf_leads_status (status=? AND rowid>?)" in details
    assert "TEMP B-TREE" not in details  # no sort of every raw lead for each page


def test_a_page_of_contacts_of_a_type_or_deals_at_a_stage_is_one_range(
    funnel: Funnel, engine: sa.Engine, statements: Statements, tmp_path: Path
) -> None:
    funnel.import_leads([{**person(n), "type": "prospect"} for n in range(5)])  # contacts
    first = funnel.contacts(type="prospect", limit=2)
    statements.clear()
    second = funnel.contacts(type="prospect", after=first[-1], limit=2)
    assert len(first) == len(second) == 2
    db = sqlite3.connect(tmp_path / "scale.db")
    details = statements.plan(db, statements.matching(r"FROM lf_contacts WHERE")[0])
    assert "USING INDEX ix_lf_contacts_type_created (type=? AND (created_at,id)>(?,?))" in (details)
    assert "TEMP B-TREE" not in details
    deal = funnel.set_appointment(first[0])
    statements.clear()
    funnel.opportunities(stage="appointment_set", after=deal.id, limit=2)
    details = statements.plan(db, statements.matching(r"FROM lf_opportunities WHERE")[-1])
    assert "ix_lf_opportunities_stage_created" in details
    assert "TEMP B-TREE" not in details


@pytest.mark.skipif(not SERVER_URLS["postgres"], reason="set LEADFUNNEL_TEST_POSTGRES_URL")
def test_postgresql_analyses_the_leads_before_reading_them_in_batches() -> None:
    repository = server_repository("postgres", new=True)  # never analysed
    try:
        # 40 rows: under autovacuum's threshold (50), so nobody else analyses the table.
        Funnel(repository, clock=ManualClock(T0)).import_leads([person(n) for n in range(40)])
        schema = repository.schema

        def analysed() -> list[str]:
            with repository.engine.connect() as conn:
                found = conn.exec_driver_sql(
                    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = %s "
                    "AND last_analyze IS NOT NULL ORDER BY relname",
                    (schema,),
                )
                return list(found.scalars())

        assert analysed() == []  # fresh from a bulk load: the planner knows nothing yet
        batch = next(repository.lead_batches(status=LeadStatus.RAW, size=10))
        assert len(batch) == 10
        # So a batch walks the primary key instead of sorting every raw lead, and its
        # commit finds its keys and tags by index instead of reading both tables.
        assert analysed() == ["lf_keys", "lf_leads", "lf_tags"]
    finally:
        repository.close()


@pytest.mark.skipif(not SERVER_URLS["postgres"], reason="set LEADFUNNEL_TEST_POSTGRES_URL")
def test_postgresql_updates_many_rows_through_copy_and_one_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = make_repository("postgres", tmp_path)
    assert isinstance(repository, SqlRepository)
    try:
        copied: list[int] = []  # rows per update sent through COPY
        through_copy = repository._update_by_copy

        def counting(conn: Any, table: sa.Table, changed: tuple[int, ...], rows: list[Any]) -> int:
            copied.append(len(rows))
            return through_copy(conn, table, changed, rows)

        monkeypatch.setattr(repository, "_update_by_copy", counting)
        funnel = Funnel(repository, engine=ENGINE, clock=ManualClock(T0))
        rows = [{**person(n), "industry": "IT Services" if n % 2 else "Retail"} for n in range(40)]
        funnel.import_leads(rows)
        before = {lead.id: lead for lead in funnel.leads()}
        counts = funnel.qualify_all(page_size=40)
        assert counts["qualified"] == 20
        assert copied == [20]  # the 20 qualified leads change the same columns: one COPY
        after = {lead.id: lead for lead in funnel.leads()}
        for id, lead in after.items():
            was = before[id]
            if lead.status is LeadStatus.QUALIFIED:
                assert lead.version == was.version + 1
                assert lead.profile == "msp"
                assert lead.model_dump(
                    exclude={"status", "status_at", "version", "updated_at", "profile", "tags"}
                ) == was.model_dump(
                    exclude={"status", "status_at", "version", "updated_at", "profile", "tags"}
                )
            else:
                assert lead == was
        assert funnel.count("lead", status=LeadStatus.QUALIFIED) == 20
        # A change that loses a race on one of many rows still changes nothing.
        stale = list(after.values())
        funnel.update(stale[0].model_copy(update={"notes": "changed meanwhile"}))
        with pytest.raises(ConcurrencyError):
            repository.commit(
                ChangeSet(
                    updates=[
                        r.model_copy(update={"version": r.version + 1, "notes": "bulk"})
                        for r in stale
                    ]
                )
            )
        assert [r.notes for r in funnel.leads()].count("bulk") == 0
    finally:
        repository.close()


@pytest.mark.parametrize("backend", [k for k in REPOSITORY_KINDS if k != "memory"])
def test_a_commit_of_more_records_than_one_batch_of_ids(backend: str, tmp_path: Path) -> None:
    # 1,100 updates and 100 checks: the lock, the version check and the keys-and-tags
    # read each run in batches of 500 ids (one array on PostgreSQL).
    repository = make_repository(backend, tmp_path)
    try:
        funnel = Funnel(repository, clock=ManualClock(T0))
        funnel.import_leads([person(n) for n in range(1_200)])
        leads = funnel.leads()
        moved: list[Lead | Contact | Opportunity] = [
            lead.model_copy(
                update={"version": lead.version + 1, "tags": lead.tags | {"bulk"}, "email": None}
            )
            for lead in leads[:1_100]
        ]
        repository.commit(ChangeSet(updates=moved, checks=[*leads[1_100:]]))
        after = {lead.id: lead for lead in funnel.leads()}
        assert all(after[m.id] == m for m in moved)
        assert funnel.count("lead", tag="bulk") == 1_100
        # The e-mails the updates dropped are free again; the others are still held.
        assert funnel.find(email=leads[0].email) is None
        assert funnel.find(email=leads[1_150].email) == leads[1_150]
        # A stale record among many is refused, and nothing of the change is stored.
        stale: list[Lead | Contact | Opportunity] = [
            m.model_copy(update={"version": m.version + 1, "notes": "x"}) for m in moved
        ]
        stale[777] = moved[777].model_copy(update={"notes": "x"})  # still at the old version
        with pytest.raises(ConcurrencyError):
            repository.commit(ChangeSet(updates=stale))
        assert all(lead.notes is None for lead in funnel.leads())
        assert repository.touched([m.id for m in moved], channel=Channel.CALL) == set()
    finally:
        repository.close()


def test_an_import_leaves_out_the_columns_null_in_every_row_and_keeps_the_others(
    funnel: Funnel, engine: sa.Engine, statements: Statements
) -> None:
    """SQLite binds ``None`` slowly (its driver looks it up among its adapters): an
    insert leaves out the columns that are NULL in all of its rows. A column NULL in
    some rows only is sent, and each row reads back as it went in."""
    rows = [person(1, owner="Dana"), person(2), person(3, opt_outs=["email"])]
    report = funnel.import_leads(rows)
    (insert,) = statements.matching(r"^INSERT INTO lf_leads ")
    columns = re.search(r"\((.*?)\)", insert)
    assert columns is not None
    sent = {name.strip().strip('"') for name in columns.group(1).split(",")}
    assert {"owner", "opt_outs", "id", "status"} <= sent  # NULL in some rows only
    assert not {"erased_at", "contact_id", "profile"} & sent  # NULL in every row
    got = [funnel.get(id) for id in report.added]
    leads = [lead for lead in got if isinstance(lead, Lead)]
    assert len(leads) == 3
    assert [lead.owner for lead in leads] == ["Dana", None, None]
    assert [sorted(lead.opt_outs) for lead in leads] == [[], [], ["email"]]
    with engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT typeof(id), typeof(erased_at), typeof(owner) FROM lf_leads ORDER BY seq"
        ).all()
        flags = conn.exec_driver_sql("SELECT DISTINCT typeof(avoided) FROM lf_keys").all()
    # Ids are bound as bytearrays (the driver's fast path): still 16-byte blobs.
    assert stored == [("blob", "null", "text"), ("blob", "null", "null"), ("blob", "null", "null")]
    assert flags == [("integer",)]


def test_a_converted_row_keeps_every_column_in_order() -> None:
    """The generated row converter gives what converting each column one by one does."""
    from leadfunnel._sql._driver import row_converter

    convert = row_converter("t", ["a", "b", "c"], [None, str.upper, None])
    assert convert({"a": 1, "b": "x", "c": None}) == (1, "X", None)
    assert convert({"a": 1, "b": None, "c": 3}) == (1, None, 3)  # None is not converted
    with pytest.raises(KeyError):
        convert({"a": 1, "c": 3})


def test_a_sqlite_file_connection_caches_up_to_32_mib_of_pages(tmp_path: Path) -> None:
    """SQLite's default page cache (2 MiB) no longer holds the indexes a commit touches
    past a few hundred thousand people: each miss is a read from the system (a quarter
    of a 1M-row import's CPU). File connections ask for up to 32 MiB, filled as read."""
    from leadfunnel import SqlRepository

    for url, expected in ((f"sqlite:///{tmp_path / 'f.db'}", -32 * 1024), ("sqlite://", -2000)):
        repository = SqlRepository(url)
        with repository.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == expected, url
        repository.close()
