"""Reading stored documents without repeating the write-time checks (``_documents``).

The reading validator must give the very record ``model_validate`` gives for anything a
store wrote, keep checking types and an application's own validators, and skip only
leadfunnel's own checks and normalisers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadfunnel import Contact, Event, Funnel, Lead, Opportunity, SqlRepository, StorageError
from leadfunnel._documents import reads_alike_as_json, stored_json_validator, stored_validator
from leadfunnel._models import updated
from leadfunnel._sql import _rows as sql
from leadfunnel.testing import contacts, leads


def _stored(record: pydantic.BaseModel) -> dict[str, Any]:
    """The document a store keeps (None fields left out), parsed back."""
    document: dict[str, Any] = json.loads(record.model_dump_json(exclude_none=True))
    return document


@settings(max_examples=150)
@given(st.one_of(leads(), contacts()))
def test_a_stored_person_reads_back_as_model_validate_reads_it(person: Lead | Contact) -> None:
    document = _stored(person)
    model = type(person)
    read = stored_validator(model)(document)
    assert type(read) is model
    assert read == model.model_validate(document) == person
    assert read.model_fields_set == model.model_validate(document).model_fields_set


@settings(max_examples=150)
@given(st.one_of(leads(), contacts()))
def test_a_stored_person_read_from_its_json_text_is_the_same_record(
    person: Lead | Contact,
) -> None:
    # SQL stores hand build_record the document's text, validated in JSON mode without
    # a dict of it: the very record the data path gives, and the fields it set.
    text = sql.document_of(person)
    model = type(person)
    read = stored_json_validator(model)(text)
    as_data = stored_validator(model)(json.loads(text))
    assert type(read) is model
    assert read == as_data == person
    assert read.model_fields_set == as_data.model_fields_set
    assert sql.build_record(model, text) == person


def test_a_document_the_json_reader_refuses_is_read_as_data_with_its_errors() -> None:
    # A key no field has: the JSON reader refuses it, the data path leaves it out and
    # notes the record (an update keeps the key), as it did for a parsed document.
    noted: list[dict[str, Any]] = []
    lead = Lead(last_name="Rivera")
    text = sql.with_keys(sql.document_of(lead), {"crm_score": 7})
    read = sql.build_record(Lead, text, lambda _, doc: noted.append(doc))
    assert read == lead
    assert len(noted) == 1
    assert noted[0]["crm_score"] == 7
    # A value that no longer fits: the error names the field, never the value.
    bad = sql.document_of(lead)[:-1] + ',"employees":-987654}'
    with pytest.raises(StorageError, match="employees") as caught:
        sql.build_record(Lead, bad)
    assert "987654" not in str(caught.value)


def test_a_stored_opportunity_reads_back_too() -> None:
    deal = Opportunity(
        contact_id=Lead().id, owner="ana", amount="1200.50", lost_note="tab\tand\nline"
    )
    assert stored_validator(Opportunity)(_stored(deal)) == deal


def test_the_write_time_checks_are_skipped_and_types_still_checked() -> None:
    read = stored_validator(Lead)
    # A control character, a phone that is no number, an un-normalised e-mail: each
    # refused on the way in, none re-examined on the way out.
    assert read({"first_name": "a\x07b"}).first_name == "a\x07b"
    assert read({"phone": "0123"}).phone == "0123"
    assert read({"email": "Ana@Example.COM"}).email == "Ana@Example.COM"
    with pytest.raises(pydantic.ValidationError):
        Lead.model_validate({"phone": "0123"})
    # What the model's types say is still checked.
    for bad in ({"employees": -1}, {"status": "nope"}, {"surprise": 1}, {"tags": [""]}):
        with pytest.raises(pydantic.ValidationError):
            read(bad)


class _Shouting(Lead):
    @pydantic.field_validator("company")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class _Checked(Lead):
    @pydantic.model_validator(mode="after")
    def _named(self) -> _Checked:
        if not self.last_name:
            raise ValueError("a last name is required")
        return self


def test_an_applications_own_validators_still_run() -> None:
    assert stored_validator(_Shouting)({"company": "acme"}).company == "ACME"
    # A model validator that runs after the fields: the whole model_validate.
    read = stored_validator(_Checked)
    assert read({"last_name": "Rivera", "phone": "+15122000000"}).last_name == "Rivera"
    with pytest.raises(pydantic.ValidationError, match="a last name is required"):
        read({"first_name": "Sam"})
    with pytest.raises(pydantic.ValidationError):
        read({"last_name": "Rivera", "phone": "0123"})  # model_validate in full


_TEXT = st.one_of(st.none(), st.text(max_size=40))


@settings(max_examples=200)
@given(source=_TEXT, dest=_TEXT, actor=_TEXT, reason=_TEXT)
def test_an_events_document_is_what_the_serializer_writes(
    source: str | None, dest: str | None, actor: str | None, reason: str | None
) -> None:
    """The common event's document is encoded without the serializer (a shortcut on
    every import row): byte for byte what ``model_dump_json`` writes for it."""
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    event = updated(
        Event(subject_id=uuid4(), subject="lead", name="x", at=at, created_at=at, updated_at=at),
        {"source": source, "dest": dest, "actor": actor, "reason": reason, "version": 1},
    )
    left_out = sql.LEAVE_OUT[sql.ALL_LEFT_OUT]
    assert sql.event_document(event) == event.model_dump_json(exclude=left_out, exclude_none=True)
    # With data (a qualification's result), still what the serializer writes.
    other = updated(event, {"data": {"k": reason, "n": None, "d": Decimal("1.50"), "at": at}})
    left_out = sql.LEAVE_OUT[(True, True, True, True, False)]
    assert sql.event_document(other) == other.model_dump_json(exclude=left_out, exclude_none=True)
    assert json.loads(sql.event_document(other))["data"]["k"] == reason


def test_an_event_made_by_a_use_case_is_what_model_construct_makes() -> None:
    """``event()`` builds its Event without pydantic's constructor: every field of the
    model, the same fields counted as set, and equal to the validated event."""
    from leadfunnel._changes import event

    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    lead = Lead(email="pat@example.com")
    made = event(lead, "qualify", "raw", "qualified", at, " rep ", None, {"k": 1})
    assert list(made.__dict__) == list(Event.model_fields)
    assert made.model_fields_set == set(Event.model_fields) - {"position"}
    fields = {name: getattr(made, name) for name in made.model_fields_set}
    assert made == Event.model_validate(fields)
    assert (made.actor, made.subject_id, made.position) == ("rep", lead.id, 0)


def test_placed_events_are_what_updating_their_position_makes() -> None:
    from leadfunnel._changes import event
    from leadfunnel._models import placed

    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    lead = Lead(email="pat@example.com")
    events = [event(lead, "import", None, "raw", at, None, None) for _ in range(3)]
    stored = placed(events, 41)
    assert stored == [updated(e, {"position": 41 + i}) for i, e in enumerate(events)]
    assert [e.position for e in stored] == [41, 42, 43]
    assert [e.position for e in events] == [0, 0, 0]  # the given events are left alone
    assert all("position" in e.model_fields_set for e in stored)


def test_a_triggers_record_is_checked_alike_whether_or_not_the_sql_adapter_is_loaded() -> None:
    """The port checks a record an application's class gets from a trigger with the
    validator a store reads documents with, chosen without looking at which modules
    happen to be imported: in a process without the SQL adapter too (an in-memory
    store), leadfunnel's own write-time checks are not run again."""
    import subprocess
    import sys

    code = """
import sys
from leadfunnel import Funnel, InMemoryRepository, Lead
from leadfunnel._changes import _stored_validator

class MyLead(Lead):
    endpoints: int | None = None

funnel = Funnel(InMemoryRepository(), lead_model=MyLead)
lead = funnel.add(MyLead(first_name="Ana", company="Acme", endpoints=40, status="suspect"))
assert type(funnel.farm(lead.id)) is MyLead
assert "leadfunnel._sql" not in sys.modules, "the SQL adapter was imported"
validate = _stored_validator(MyLead)
# leadfunnel's write-time check of a phone would refuse "0123": it is not run again.
print(type(validate({"phone": "0123"})).__name__, validate({"phone": "0123"}).phone)
"""
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["MyLead", "0123"]


@pytest.mark.parametrize("read", ["get", "get_many", "leads"])
def test_a_sqlite_store_reads_documents_from_their_text(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    # The drivers of SQLite and MariaDB give JSON text: it goes to pydantic's JSON mode
    # as it is, never parsed into a dict first (a quarter of reading a page of leads).
    repository = SqlRepository(f"sqlite:///{tmp_path / 'text.db'}")
    funnel = Funnel(repository)
    lead = funnel.add(Lead(first_name="Ana", email="ana@example.com", tags={"vip"}))
    given: list[Any] = []
    validator = sql._json_validator

    def spying(model: Any) -> Any:
        validate = validator(model)

        def validated(doc: Any) -> Any:
            given.append(doc)
            return validate(doc)

        return validated

    monkeypatch.setattr(sql, "_json_validator", spying)
    reads: dict[str, Callable[[], Any]] = {
        "get": lambda: repository.get(lead.id),
        "get_many": lambda: repository.get_many([lead.id])[lead.id],
        "leads": lambda: funnel.leads()[0],
    }
    found = reads[read]()
    assert found == lead
    assert len(given) == 1
    assert isinstance(given[0], str)
    repository.close()


class _Unions(Lead):
    ref: UUID | str | None = None
    day: date | str | None = None
    at: datetime | str | None = None


class _Strict(Lead):
    model_config = pydantic.ConfigDict(strict=True)


def test_a_model_with_unions_reads_its_text_as_data() -> None:
    # JSON mode takes a JSON string as an exact match for a UUID or a date in a union,
    # where python mode (the in-memory store, PostgreSQL, merge snapshots) keeps the
    # str: such a model is read from the parsed text, as every store reads it. A strict
    # model reads alike: documents are read lax, in either mode.
    lead = _Unions(ref=str(uuid4()), day="2024-01-02", at="2024-01-02T03:04:05Z")
    read = sql.build_record(_Unions, sql.document_of(lead))
    assert isinstance(read, _Unions)
    assert (type(read.ref), type(read.day), type(read.at)) == (str, str, str)
    assert read == lead
    assert not reads_alike_as_json(_Unions)
    assert reads_alike_as_json(_Strict)
    assert all(reads_alike_as_json(m) for m in (Lead, Contact, Opportunity, Event))


def test_unions_read_back_alike_from_memory_and_sqlite(tmp_path: Any) -> None:
    from leadfunnel import InMemoryRepository

    given = _Unions(first_name="Ana", ref=str(uuid4()), day="2024-01-02")
    found: list[_Unions] = []
    for repository in (InMemoryRepository(), SqlRepository(f"sqlite:///{tmp_path / 'u.db'}")):
        funnel = Funnel(repository, lead_model=_Unions)
        read = funnel.get(funnel.add(given).id)
        assert isinstance(read, _Unions)
        found.append(read)
        repository.close()
    memory, sqlite = found
    assert (sqlite.ref, sqlite.day, sqlite.at) == (memory.ref, memory.day, memory.at)
    assert (type(sqlite.ref), type(sqlite.day)) == (str, str)
