"""Findings of an audit of the SQL adapter, each checked on every store in ``conftest``
(memory, SQLite, and PostgreSQL and MariaDB when their URLs are set)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel, Field

from conftest import SERVER_URLS, T0, person
from leadfunnel import (
    ConcurrencyError,
    ConfigError,
    Contact,
    DuplicateError,
    Funnel,
    InMemoryRepository,
    Lead,
    LeadFunnelError,
    LeadStatus,
    Opportunity,
    Personal,
    QualificationEngine,
    Repository,
    SqlRepository,
)
from leadfunnel._sql import SCHEMA_VERSION
from leadfunnel.testing import ManualClock


class AppLead(Lead):
    endpoints: int | None = None
    vertical: str | None = Field(default=None, alias="Vertical Market")
    linkedin: Annotated[str | None, Personal] = None


class AppContact(Contact):
    endpoints: int | None = None


class AppDeal(Opportunity):
    po_number: str | None = None


def app_funnel(repository: Repository, clock: ManualClock) -> Funnel:
    return Funnel(
        repository,
        lead_model=AppLead,
        contact_model=AppContact,
        opportunity_model=AppDeal,
        clock=clock,
    )


@contextmanager
def plain_funnel(repository: Repository, clock: ManualClock) -> Iterator[Funnel]:
    """A funnel on the same store opened without the application's models (another
    process, the command line without ``--lead-model``). Memory has one set of models
    per store: the same repository, whose records are the objects stored."""
    if isinstance(repository, InMemoryRepository):
        yield Funnel(repository, clock=clock)
        return
    assert isinstance(repository, SqlRepository)
    other = SqlRepository(repository.url, schema=repository.schema)
    try:
        yield Funnel(other, clock=clock)
    finally:
        other.close()


@dataclass
class Store:
    """An empty database (SQLite file, PostgreSQL schema, MariaDB database) to open."""

    kind: str
    url: str | sa.URL
    schema: str | None

    def open(self, **options: Any) -> SqlRepository:
        return SqlRepository(self.url, schema=self.schema, **options)

    def run(self, *statements: str) -> None:
        """Run SQL in the store, ``{schema}`` standing for where its tables are (with
        its dot, or nothing)."""
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    prefix = f"{self.schema}." if self.schema else ""
                    conn.exec_driver_sql(statement.format(schema=prefix))
        finally:
            engine.dispose()

    def tables(self) -> set[str]:
        engine = sa.create_engine(self.url)
        try:
            return set(sa.inspect(engine).get_table_names(schema=self.schema))
        finally:
            engine.dispose()


@pytest.fixture(params=["sqlite", *(kind for kind, url in SERVER_URLS.items() if url)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    kind = request.param
    if kind == "sqlite":
        yield Store(kind, f"sqlite:///{tmp_path / 'store.db'}", None)
        return
    url = SERVER_URLS[kind]
    assert url is not None
    name = f"lf_audit_{uuid.uuid4().hex[:16]}"
    server = "SCHEMA" if kind == "postgres" else "DATABASE"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE {server} {name}")
    try:
        if kind == "postgres":
            yield Store(kind, url, name)
        else:
            yield Store(kind, sa.make_url(url).set(database=name), None)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP {server} {name}{' CASCADE' if kind == 'postgres' else ''}")
        admin.dispose()


# --- 1. a funnel without the application's models keeps its fields ---------------------


def test_a_funnel_without_the_models_keeps_the_custom_fields_it_writes_over(
    repository: Repository, clock: ManualClock
) -> None:
    app = app_funnel(repository, clock)
    lead = app.add(
        AppLead(**person(1), endpoints=40, vertical="health", linkedin="in/pat", notes="n")
    )
    with plain_funnel(repository, clock) as plain:
        plain.qualify(lead.id, force=True)
        plain.update(plain.get_lead(lead.id).model_copy(update={"notes": "called"}))
        plain.disqualify(lead.id)
    stored = app.get_lead(lead.id)
    assert isinstance(stored, AppLead)
    assert (stored.endpoints, stored.vertical, stored.linkedin) == (40, "health", "in/pat")
    assert (stored.status, stored.notes) == (LeadStatus.UNQUALIFIED, "called")
    # The application's own model still decides the fields it declares: None clears.
    cleared = app.update(stored.model_copy(update={"endpoints": None}))
    assert app.get_lead(lead.id) == cleared
    assert cleared.endpoints is None
    with plain_funnel(repository, clock) as plain:
        plain.update(plain.get_lead(lead.id).model_copy(update={"notes": "again"}))
    again = app.get_lead(lead.id)
    assert isinstance(again, AppLead)
    assert (again.endpoints, again.vertical, again.notes) == (None, "health", "again")


def test_an_export_without_the_models_holds_the_custom_fields_stored(
    repository: Repository, clock: ManualClock
) -> None:
    """An access request answered by a funnel without the application's classes (the
    command line without --lead-model) exports everything stored: the application's
    fields too, as stored."""
    app = app_funnel(repository, clock)
    lead = app.add(AppLead(**person(1), endpoints=40, vertical="health", linkedin="in/pat"))
    deal = app.set_appointment(lead, force=True)
    with plain_funnel(repository, clock) as plain:
        exported = plain.export_person(lead.id)
    records = {r["id"]: r for r in exported["records"]}
    assert records[str(lead.id)]["endpoints"] == 40
    assert records[str(lead.id)]["linkedin"] == "in/pat"
    assert records[str(lead.id)]["vertical"] == "health"
    assert set(records) == {str(lead.id), str(deal.contact_id), str(deal.id)}
    assert exported == json.loads(json.dumps(exported))  # JSON-ready
    # As the application's own export, but for its fields left empty (not stored).
    for typed, plain_record in zip(
        app.export_person(lead.id)["records"], exported["records"], strict=True
    ):
        assert {k: v for k, v in typed.items() if v is not None} == {
            k: v for k, v in plain_record.items() if v is not None
        }


def test_an_export_without_the_models_holds_the_merged_away_persons_fields(
    repository: Repository, clock: ManualClock
) -> None:
    """The merge log's copy of a merged-away record is the only place its own fields
    are kept: an access request answered without the application's classes exports
    them too."""
    app = app_funnel(repository, clock)
    keep = app.add(AppLead(**person(1), endpoints=40))
    other = app.add(AppLead(**person(2), endpoints=7, linkedin="in/sam"))
    app.merge(keep, other)
    with plain_funnel(repository, clock) as plain:
        exported = plain.export_person(keep.id)
    (merge,) = exported["merges"]
    assert (merge["merged_away"]["endpoints"], merge["merged_away"]["linkedin"]) == (7, "in/sam")
    assert merge["keep"]["endpoints"] == 40
    # A field set on a keeper after the merge is not its snapshot's from before (a
    # snapshot without fields of the application's holds none of the row's since).
    with plain_funnel(repository, clock) as plain:
        plain_keep = plain.add(Lead(**person(3)))
        plain.merge(plain_keep, plain.add(Lead(**person(4))))
    app.update(app.get_lead(plain_keep.id).model_copy(update={"vertical": "set since"}))
    with plain_funnel(repository, clock) as plain:
        (merge,) = plain.export_person(plain_keep.id)["merges"]
    assert merge["keep"].get("vertical") is None
    assert exported == json.loads(json.dumps(exported))


def test_bulk_qualify_without_the_models_keeps_the_custom_fields(
    repository: Repository, clock: ManualClock
) -> None:
    app = app_funnel(repository, clock)
    # More than 16 moved leads: PostgreSQL's bulk update goes through COPY.
    report = app.import_leads([AppLead(**person(n), endpoints=n) for n in range(20)])
    assert len(report.added) == 20
    engine = QualificationEngine.from_dict(
        {"profiles": [{"name": "any", "rules": [{"rule": "geography", "countries": ["US"]}]}]}
    )
    with plain_funnel(repository, clock) as plain:
        plain.engine = engine
        assert plain.qualify_all()["qualified"] == 20
    for n, id in enumerate(report.added):
        stored = app.get_lead(id)
        assert isinstance(stored, AppLead)
        assert (stored.status, stored.endpoints) == (LeadStatus.QUALIFIED, n)


def test_merges_and_unmerges_without_the_models_keep_both_records_fields(
    repository: Repository, clock: ManualClock
) -> None:
    app = app_funnel(repository, clock)
    keep = app.add(AppLead(**person(1), endpoints=40))
    other = app.add(AppLead(**person(2), vertical="retail", linkedin="in/two"))
    with plain_funnel(repository, clock) as plain:
        plain.merge(keep.id, other.id)
    merged = app.get_lead(keep.id)
    assert isinstance(merged, AppLead)
    assert merged.endpoints == 40
    clock.advance(minutes=1)
    with plain_funnel(repository, clock) as plain:
        plain.unmerge(keep.id)
    back, again = app.get_lead(keep.id), app.get_lead(other.id)
    assert isinstance(back, AppLead)
    assert isinstance(again, AppLead)
    assert (back.endpoints, back.vertical) == (40, None)
    assert (again.vertical, again.linkedin, again.endpoints) == ("retail", "in/two", None)
    # ... and after a merge by such a funnel, the application's unmerge restores them.
    with plain_funnel(repository, clock) as plain:
        plain.merge(keep.id, other.id)
    app.unmerge(keep.id)
    restored, kept = app.get_lead(other.id), app.get_lead(keep.id)
    assert isinstance(restored, AppLead)
    assert isinstance(kept, AppLead)
    assert (restored.vertical, restored.linkedin, kept.endpoints) == ("retail", "in/two", 40)


def test_an_erasure_without_the_models_removes_the_fields_it_cannot_judge(
    repository: Repository, clock: ManualClock
) -> None:
    """It cannot tell a personal field from another: privacy first."""
    app = app_funnel(repository, clock)
    lead = app.add(AppLead(**person(1), endpoints=40, linkedin="in/pat"))
    with plain_funnel(repository, clock) as plain:
        plain.erase(lead.id)
    stored = app.get_lead(lead.id)
    assert isinstance(stored, AppLead)
    assert stored.erased_at is not None
    if not isinstance(repository, InMemoryRepository):  # memory's records are AppLeads
        assert (stored.linkedin, stored.endpoints) == (None, None)
    assert stored.linkedin is None


def test_a_model_that_ignores_unknown_keys_keeps_them_too(
    repository: Repository, clock: ManualClock
) -> None:
    class Ignoring(Lead):
        model_config = {**Lead.model_config, "extra": "ignore"}

    app = app_funnel(repository, clock)
    lead = app.add(AppLead(**person(1), endpoints=40))
    if isinstance(repository, SqlRepository):
        with plain_funnel(repository, clock) as plain:
            plain.repository.use_models(lead=Ignoring)
            plain.qualify(lead.id, force=True)
    stored = app.get_lead(lead.id)
    assert isinstance(stored, AppLead)
    assert stored.endpoints == 40


# --- 2. a custom field named like an internal column is filtered as the field ----------


class ColumnNamedLead(Lead):
    email_domain: str | None = None
    company_key: str | None = None
    last_name_key: str | None = None
    seq: int | None = None


def test_a_custom_field_named_like_an_internal_column_filters_on_the_field(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=ColumnNamedLead, clock=clock)
    lead = funnel.add(
        ColumnNamedLead(
            email="pat@mail.example.com",
            company="Mail Co",
            last_name="Rivera",
            email_domain="acme.example.com",
            company_key="ACME-1",
            last_name_key="R7",
            seq=7,
        )
    )
    for name, value in [
        ("email_domain", "acme.example.com"),
        ("company_key", "ACME-1"),
        ("last_name_key", "R7"),
        ("seq", 7),
    ]:
        assert [x.id for x in funnel.leads(where={name: value})] == [lead.id], name
        assert funnel.count("lead", where={name: value}) == 1, name
    # ... and never on the column leadfunnel fills for its own look-ups.
    assert funnel.count("lead", where={"email_domain": "mail.example.com"}) == 0
    assert funnel.count("lead", where={"company_key": "mail co"}) == 0
    assert funnel.count("lead", where={"last_name_key": "rivera"}) == 0
    assert funnel.count("lead", where={"email_domain": None}) == 0


# --- 3. a nested value is compared as its document holds it -----------------------------


class Address(BaseModel):
    street: str
    zip: str | None = None


class NestedLead(Lead):
    addr: Address | None = None
    places: list[Address] | None = None
    labels: dict[str, str | None] | None = None


def test_a_nested_model_with_an_empty_field_is_found_by_where(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=NestedLead, clock=clock)
    lead = funnel.add(
        NestedLead(
            email="b@a.example.com",
            addr=Address(street="2 Main"),
            places=[Address(street="1 High"), Address(street="3 Low", zip="7")],
            labels={"a": None, "b": "x"},
        )
    )
    funnel.add(NestedLead(email="c@a.example.com", addr=Address(street="2 Main", zip="9")))
    assert [x.id for x in funnel.leads(where={"addr": {"street": "2 Main"}})] == [lead.id]
    assert funnel.count("lead", where={"addr": Address(street="2 Main", zip=None)}) == 1
    assert funnel.count("lead", where={"addr": {"street": "2 Main", "zip": "9"}}) == 1
    places = [{"street": "1 High"}, {"street": "3 Low", "zip": "7"}]
    assert funnel.count("lead", where={"places": places}) == 1
    # A dict keeps its None values (as the document does).
    assert funnel.count("lead", where={"labels": {"a": None, "b": "x"}}) == 1


# --- 4. auto does not stamp a database whose lf_ tables are not leadfunnel's ---------


def test_auto_refuses_foreign_tables_named_like_leadfunnels(store: Store) -> None:
    store.run("CREATE TABLE {schema}lf_leads (id INTEGER, name VARCHAR(50))")
    with pytest.raises(ConfigError) as err:
        store.open()
    message = str(err.value)
    assert "lf_leads" in message
    assert "doc" in message  # a missing column, named
    assert "another database" in message
    assert store.tables() == {"lf_leads"}  # nothing created, nothing stamped
    with pytest.raises(ConfigError, match="lf_leads"):
        store.open()  # still refused: not stamped the first time


def test_auto_finishes_tables_another_opener_left_half_made(store: Store) -> None:
    """Tables with leadfunnel's columns (another process creating them a moment ago,
    or MariaDB stopped after some of its CREATE TABLEs) are not foreign."""
    first = store.open()
    first.close()
    store.run("DROP TABLE {schema}lf_schema", "DROP TABLE {schema}lf_merges")
    again = store.open()
    try:
        assert again.schema_version == SCHEMA_VERSION
        Funnel(again).add(Lead(email="half@made.example.com"))
    finally:
        again.close()


# --- 5. migrate="never" reads the version ----------------------------------------------


def test_never_refuses_a_newer_schema_and_touches_nothing(store: Store) -> None:
    store.open().close()
    store.run("UPDATE {schema}lf_schema SET version = 99")
    with pytest.raises(ConfigError, match=r"version 99, newer .*upgrade leadfunnel"):
        Funnel(store.open(migrate="never")).add(Lead(email="new@er.example.com"))
    engine = sa.create_engine(store.url)
    try:
        with engine.connect() as conn:
            prefix = f"{store.schema}." if store.schema else ""
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {prefix}lf_leads").scalar() == 0
            assert conn.exec_driver_sql(f"SELECT version FROM {prefix}lf_schema").scalar() == 99
    finally:
        engine.dispose()


def test_never_refuses_a_database_without_leadfunnel_tables(store: Store) -> None:
    store.run("CREATE TABLE {schema}app_notes (id INTEGER)")  # (SQLite: the file exists)
    with pytest.raises(ConfigError, match=r"no leadfunnel tables .*leadfunnel migrate") as err:
        store.open(migrate="never")
    assert "Retry" not in str(err.value)
    assert "lf_schema" not in store.tables()


def test_never_on_an_older_schema_says_to_upgrade_it(store: Store) -> None:
    """``never`` leaves the schema alone: an older one opens, and what needs the newer
    schema says to upgrade it (``leadfunnel migrate``), not to retry."""
    funnel = Funnel(store.open(), clock=ManualClock(T0))
    deal = funnel.set_appointment(funnel.add(Contact(**person(1))))
    funnel.repository.close()
    store.run(
        "ALTER TABLE {schema}lf_opportunities DROP COLUMN closed_at",
        "UPDATE {schema}lf_schema SET version = 3",
    )
    old = store.open(migrate="never")
    try:
        assert old.schema_version == 3
        funnel = Funnel(old, clock=ManualClock(T0))
        assert funnel.get_opportunity(deal.id) == deal  # reads still work
        with pytest.raises(ConfigError) as err:
            funnel.lose(deal.id, reason="price")
        message = str(err.value)
        assert "version 3" in message
        assert "leadfunnel migrate" in message
        assert "Retry" not in message
        assert funnel.get_opportunity(deal.id) == deal  # nothing of it stored
    finally:
        old.close()
    upgraded = store.open()  # auto upgrades it
    try:
        assert Funnel(upgraded).lose(deal.id, reason="price").stage == "lost"
    finally:
        upgraded.close()


# --- 6. the application's own SQL in a transaction raises its own errors ---------------


class Picky(sa.types.TypeDecorator[str]):
    """An application's column type that refuses some values (a ValueError)."""

    impl = sa.String(20)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        if value == "bad":
            raise ValueError("the application refuses 'bad'")
        return value


def test_the_applications_own_sql_errors_in_a_transaction_are_not_translated(
    repository: Repository, clock: ManualClock
) -> None:
    if not isinstance(repository, SqlRepository):
        pytest.skip("the in-memory store runs no SQL")
    notes = sa.Table(
        "app_notes",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("text", sa.String(5)),
        sa.Column("kind", Picky()),
    )
    with repository.engine.begin() as conn:
        notes.create(conn)
    funnel = Funnel(repository, clock=clock)
    try:
        statements: list[Any] = [
            sa.text("SELECT * FROM app_no_such_table"),  # the database refuses it
            sa.insert(notes).values(id=1, text="far too long"),  # too long (not SQLite)
            sa.insert(notes).values(id=1, kind="bad"),  # the application's own type
        ]

        def failure(n: int, statement: Any) -> BaseException | None:
            try:
                with funnel.transaction():
                    funnel.add(Lead(**person(n)))
                    repository.connection.execute(statement)
            except Exception as error:
                return error
            return None

        stored: list[Any] = []
        for n, statement in enumerate(statements):
            error = failure(n, statement)
            if error is None:
                assert (repository.dialect, n) == ("sqlite", 1)  # SQLite checks no length
                stored = [x.id for x in funnel.leads()]
                continue
            assert isinstance(error, sa.exc.StatementError), repr(error)
            assert not isinstance(error, LeadFunnelError)
            if n == 2:
                assert isinstance(error.orig, ValueError)  # its cause kept
            assert [x.id for x in funnel.leads()] == stored  # the block rolled back
        # An integrity error of the application's stays the application's.
        with repository.engine.begin() as conn:
            conn.execute(sa.insert(notes).values(id=7, text="a"))
        error = failure(9, sa.insert(notes).values(id=7, text="b"))
        assert isinstance(error, sa.exc.IntegrityError)
        assert [x.id for x in funnel.leads()] == stored
        # leadfunnel's own failures in the block are still leadfunnel's.
        kept = funnel.add(Lead(**person(10)))
        with pytest.raises(DuplicateError), funnel.transaction():
            funnel.add(Lead(**person(10)))
        assert [x.id for x in funnel.leads()] == [*stored, kept.id]
    finally:
        with repository.engine.begin() as conn:
            notes.drop(conn)


# --- 7. schema errors: ConfigError itself, naming the schema, saying what to do -------


def test_schema_errors_are_config_errors_naming_the_schema(store: Store) -> None:
    place = store.schema or sa.make_url(store.url).database
    assert place is not None
    if store.kind == "sqlite":
        store.run("CREATE TABLE {schema}app_notes (id INTEGER)")
    with pytest.raises(ConfigError) as err:
        store.open(migrate="check")
    assert type(err.value) is ConfigError
    assert repr(err.value).startswith("ConfigError(")
    assert "no leadfunnel tables" in str(err.value)
    assert place in str(err.value)
    store.open().close()
    store.run("UPDATE {schema}lf_schema SET version = 3")
    with pytest.raises(ConfigError) as err:
        store.open(migrate="check")
    assert type(err.value) is ConfigError
    assert place in str(err.value)
    assert "leadfunnel migrate" in str(err.value)
    store.run("DELETE FROM {schema}lf_schema")
    with pytest.raises(ConfigError) as err:
        store.open(migrate="never")
    assert type(err.value) is ConfigError
    assert "no schema version" in str(err.value)
    assert place in str(err.value)


# --- 8. a stale snapshot inside a transaction says to run the block again ---------------


def test_a_change_refused_inside_a_transaction_says_what_can_work(
    repository: Repository, clock: ManualClock
) -> None:
    """MariaDB's blocks read what was committed at their first read (REPEATABLE READ):
    a record another connection changed since cannot be re-read inside the block, so
    the error says to run the whole block again; where a re-read does see the change,
    it says to re-read."""
    if not isinstance(repository, SqlRepository) or repository.dialect == "sqlite":
        pytest.skip("needs a server: SQLite lets one connection write at a time")
    funnel = Funnel(repository, clock=clock)
    lead = funnel.add(Lead(**person(1)))
    with plain_funnel(repository, clock) as other:
        with funnel.transaction():
            funnel.get_lead(lead.id)  # MariaDB: the block's snapshot is taken here
            other.update(other.get_lead(lead.id).model_copy(update={"notes": "theirs"}))
            if repository.dialect == "postgresql":  # each statement sees the latest
                assert funnel.qualify(lead.id, force=True).status == LeadStatus.QUALIFIED
            else:
                with pytest.raises(ConcurrencyError) as err:
                    funnel.qualify(lead.id, force=True)
                message = str(err.value)
                assert "run the whole block again" in message
                assert "funnel.get()" not in message
                assert getattr(err.value, "retryable", True) is False
        # Read before the block: re-reading inside it sees the change, and works.
        mine = funnel.get_lead(lead.id)
        other.update(other.get_lead(lead.id).model_copy(update={"notes": "again"}))
        with funnel.transaction():
            with pytest.raises(ConcurrencyError, match=r"funnel\.get\(\)"):
                funnel.update(mine.model_copy(update={"title": "COO"}))
            fresh = funnel.get_lead(lead.id)
            funnel.update(fresh.model_copy(update={"title": "COO"}))
    assert funnel.get_lead(lead.id).title == "COO"
