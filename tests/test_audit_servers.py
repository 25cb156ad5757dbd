"""Defects found by an audit of the SQL adapter on PostgreSQL and MariaDB (2026-11-30)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from conftest import SERVER_URLS, release_repository, server_repository
from leadfunnel import ConfigError, Funnel, Lead, SqlRepository, StorageError

needs_postgres = pytest.mark.skipif(
    not SERVER_URLS.get("postgres"), reason="needs LEADFUNNEL_TEST_POSTGRES_URL"
)


@needs_postgres
def test_far_instants_read_back_whatever_the_servers_time_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL renders an instant in the session's zone, which the server's
    configuration, a role or ``PGTZ`` may set to a local one: an instant late on
    9999-12-31 UTC was then past the calendar's end, and ``history``, ``events``,
    ``report`` and ``due`` failed for the whole store (DESIGN 12: never a crash)."""
    monkeypatch.setenv("PGTZ", "Europe/Berlin")
    repository = server_repository("postgres")
    try:
        funnel = Funnel(repository)
        late = funnel.add(
            Lead(email="late@acme.example.com"), at=datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
        )
        funnel.add(Lead(email="early@acme.example.com"), at=datetime(1, 1, 1, 0, 30, tzinfo=UTC))
        assert [e.at for e in funnel.history(late)] == [datetime(9999, 12, 31, 23, 30, tzinfo=UTC)]
        assert len(funnel.events()) == 2
        assert funnel.report().steps["raw"].count == 2
        funnel.due()
    finally:
        release_repository(repository)


class CodedLead(Lead):
    code: Any = None


def test_a_where_filter_on_text_keeps_its_trailing_spaces(funnel: Funnel) -> None:
    """MariaDB compares text as PAD SPACE: ``where={"code": "ABC"}`` found "ABC  " too,
    and "ABC " found both (custom-fields.md: texts compare as they are, on every
    store)."""
    funnel.repository.use_models(lead=CodedLead)
    funnel.add(CodedLead(email="a@acme.example.com", code="ABC"))
    funnel.add(CodedLead(email="b@acme.example.com", code="ABC  "))
    assert funnel.count("lead", where={"code": "ABC"}) == 1
    assert funnel.count("lead", where={"code": "ABC "}) == 0
    assert [lead.email for lead in funnel.leads(where={"code": "ABC  "})] == ["b@acme.example.com"]


def test_an_appointment_in_an_offset_with_seconds_keeps_its_instant(funnel: Funnel) -> None:
    """New York's offset before 1883 is -04:56:02: a document's JSON keeps whole
    minutes, so the SQL stores read the appointment back two seconds off (and its
    column, which the rep lists read, disagreed with the document). It is given in UTC."""
    new_york = ZoneInfo("America/New_York")
    when = datetime(1880, 6, 1, 9, 0, 0, tzinfo=new_york)
    assert when.utcoffset() == -timedelta(hours=4, minutes=56, seconds=2)
    lead = funnel.capture(Lead(email="pat@acme.example.com"))
    deal = funnel.set_appointment(lead, force=True, appointment_at=when)
    assert deal.appointment_at == when
    assert funnel.get_opportunity(deal.id).appointment_at == when
    later = datetime(1880, 6, 2, 9, 0, 0, tzinfo=new_york)
    funnel.reschedule(deal, appointment_at=later)
    assert funnel.get_opportunity(deal.id).appointment_at == later


@pytest.mark.parametrize("kind", [k for k, url in SERVER_URLS.items() if url])
def test_a_user_without_rights_to_write_is_told_so(kind: str) -> None:
    """A read-only user's write said "Retry, or check that the database is reachable
    and not locked": no retry helps a user the database refuses."""
    url = sa.make_url(SERVER_URLS[kind] or "")
    name = f"lf_ro_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        if kind == "postgres":
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE ROLE {name} LOGIN")
                conn.exec_driver_sql(f"CREATE SCHEMA {name}")
            SqlRepository(url, schema=name).close()  # its tables, made by the owner
            with admin.connect() as conn:
                conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {name} TO {name}")
                conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA {name} TO {name}")
            reader = SqlRepository(url.set(username=name, password=None), schema=name)
        else:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
                conn.exec_driver_sql(f"CREATE USER {name}")
            SqlRepository(url.set(database=name)).close()
            with admin.connect() as conn:
                conn.exec_driver_sql(f"GRANT SELECT ON {name}.* TO {name}")
            reader = SqlRepository(url.set(database=name, username=name, password=None))
        try:
            funnel = Funnel(reader)
            assert funnel.leads() == []
            with pytest.raises(StorageError, match="refused this user") as refused:
                funnel.add(Lead(email="pat@acme.example.com"))
            assert "Retrying will not help" in str(refused.value)
            assert not refused.value.of_value
        finally:
            reader.close()
    finally:
        with admin.connect() as conn:
            if kind == "postgres":
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {name}")
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
                conn.exec_driver_sql(f"DROP USER IF EXISTS {name}")
        admin.dispose()


class WideOwnerLead(Lead):
    owner: str | None = None  # leadfunnel's takes at most 200 characters


class LongerNotesLead(Lead):
    notes: str | None = None  # kept in the document alone: any length stores


def test_a_model_widening_a_filtered_field_is_refused_when_registered(funnel: Funnel) -> None:
    """``owner: str | None`` took 250 characters on memory and SQLite, which PostgreSQL
    and MariaDB refused when stored ("please report it")."""
    with pytest.raises(ConfigError, match=r"WideOwnerLead\.owner \(leadfunnel's takes at most 200"):
        funnel.repository.use_models(lead=WideOwnerLead)
    funnel.repository.use_models(lead=LongerNotesLead)
    lead = funnel.add(LongerNotesLead(email="pat@acme.example.com", notes="n" * 40_000))
    assert funnel.get_lead(lead.id).notes == "n" * 40_000


@needs_postgres
def test_a_value_the_database_cannot_give_back_is_a_read_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through an engine of the application's whose sessions are in a local zone, an
    instant at the calendar's end cannot be shown: the error said "the database refused
    a value ... nothing of this change was stored" on a read."""
    monkeypatch.setenv("PGTZ", "Pacific/Kiritimati")
    repository = server_repository("postgres")
    try:
        funnel = Funnel(repository)
        funnel.add(Lead(email="late@acme.example.com"), at=datetime(9999, 12, 31, 23, tzinfo=UTC))
        given = sa.create_engine(repository.engine.url)  # the application's: its zone
        try:
            other = Funnel(SqlRepository(given, schema=repository.schema))
            with pytest.raises(StorageError, match="could not give a stored value back") as failed:
                other.report()
            assert "Nothing was changed" in str(failed.value)
            assert "refused a value" not in str(failed.value)
            assert not failed.value.of_value
        finally:
            given.dispose()
    finally:
        release_repository(repository)
