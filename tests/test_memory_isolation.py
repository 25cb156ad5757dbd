"""What a caller holds is its own, and one store has one set of models.

1. Nothing a caller passed to the funnel, or got back from it (a record, a result, an
   event), shares mutable state with the store: changing an application's ``list`` or
   ``dict`` field, or an event's ``data``, in place changes nothing stored, on every
   backend (the in-memory store copies what can change; SQL stores serialise).
2. ``Funnel(repo, lead_model=...)`` never retypes a store another funnel registered
   other classes on, and records the in-memory store held before a registration are
   read (and updated) as the registered classes, as the SQL stores read them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from conftest import person
from leadfunnel import (
    ConfigError,
    Contact,
    Event,
    Funnel,
    InMemoryRepository,
    Lead,
    Opportunity,
    Repository,
    Touch,
)
from leadfunnel.testing import ManualClock


class SystemsLead(Lead):
    """An application's lead with fields that can be changed in place."""

    systems: list[str] = Field(default_factory=list)
    meta: dict[str, int] = Field(default_factory=dict)


class SystemsContact(Contact):
    systems: list[str] = Field(default_factory=list)


class OtherLead(Lead):
    endpoints: int | None = None


class NeedsPlan(Lead):
    plan: str  # required: a lead stored without it cannot be read as one


def systems_funnel(repository: Repository, clock: ManualClock) -> Funnel:
    return Funnel(repository, lead_model=SystemsLead, contact_model=SystemsContact, clock=clock)


def stored(funnel: Funnel, lead: Lead) -> SystemsLead:
    """The stored lead, as the application's class."""
    found = funnel.get_lead(lead.id)
    assert isinstance(found, SystemsLead)
    return found


# --- 1. isolation -------------------------------------------------------------------


def test_changing_what_was_added_or_read_changes_nothing_stored(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = systems_funnel(repository, clock)
    given = SystemsLead(**person(1), systems=["x"], meta={"a": 1})
    added = funnel.add(given)
    given.systems.append("VIA_INPUT")
    added.systems.append("VIA_RESULT")
    read = stored(funnel, added)
    read.systems.append("INJECTED")
    read.meta["b"] = 2
    for listed in (funnel.leads(), funnel.leads(where={"meta": {"a": 1}})):
        assert isinstance(listed[0], SystemsLead)
        listed[0].systems.append("VIA_LIST")
    now = stored(funnel, added)
    assert (now.systems, now.meta) == (["x"], {"a": 1})
    assert now.version == 1  # and nothing was stored behind the version's back
    assert funnel.leads(where={"systems": ["x"]})[0].id == added.id


def test_an_update_keeps_what_it_stored_whatever_the_caller_does_next(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = systems_funnel(repository, clock)
    lead = funnel.add(SystemsLead(**person(1), systems=["x"]))
    edit = lead.model_copy(update={"systems": ["x", "y"]})
    saved = funnel.update(edit)
    edit.systems.append("AFTER")
    saved.systems.append("AFTER")
    assert stored(funnel, lead).systems == ["x", "y"]


def test_history_and_results_hand_out_event_data_of_their_own(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = systems_funnel(repository, clock)
    heard: list[Event] = []
    funnel.subscribe(heard.extend)
    lead = funnel.add(SystemsLead(**person(1)))
    captured = funnel.capture_result(SystemsLead(**person(1), phone="+1 512 555 0101"))
    assert captured.event.data == {"fields": ["phone"]}
    history = copy.deepcopy([e.data for e in funnel.history(lead)])
    feed = copy.deepcopy([e.data for e in funnel.events()])
    for event in (*funnel.history(lead), *funnel.events(), captured.event, *heard):
        event.data["x"] = "TAMPERED"
        for value in event.data.values():
            if isinstance(value, list):
                value.append("TAMPERED")
    assert [e.data for e in funnel.history(lead)] == history
    assert [e.data for e in funnel.events()] == feed
    assert funnel.history(lead)[-1].data == {"fields": ["phone"]}


def test_unmerge_restores_exactly_after_the_kept_record_was_changed_in_place(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = systems_funnel(repository, clock)
    a = funnel.add(SystemsLead(first_name="Pat", last_name="Lee", email="pat@acme.example.com"))
    b = funnel.add(
        SystemsLead(
            first_name="Pat", last_name="Lee", email="pat.lee@acme.example.com", systems=["z"]
        )
    )
    kept = funnel.merge(a, b)
    assert kept.systems == ["z"]  # an empty list field is filled, as a None one is
    kept.systems.append("EDITED")
    b.systems.append("EDITED")
    assert stored(funnel, a).systems == ["z"]
    funnel.unmerge(a)
    assert stored(funnel, b).systems == ["z"]
    assert stored(funnel, a).systems == []


def test_only_instances_that_can_change_are_copied() -> None:
    """leadfunnel's own records and touches hold only immutable values: the in-memory
    store hands them out as they are (no copy, no cost); an application's class with a
    list, dict, set or non-frozen model field, and every event, is copied."""
    from leadfunnel._memory import _copier

    for own in (Lead, Contact, Opportunity, Touch):
        assert _copier(own) is None, own

    class Tagged(Lead):
        codes: frozenset[str] = frozenset()
        pair: tuple[int, str] | None = None

    class Settings(BaseModel):
        model_config = ConfigDict(frozen=True)
        colour: str = "red"

    class Loose(BaseModel):
        colour: str = "red"

    class WithSettings(Lead):
        settings: Settings = Settings()

    class WithLoose(Lead):
        loose: Loose = Loose()

    class WithSet(Lead):
        langs: set[str] = set()

    class WithAny(Lead):
        blob: Any = None

    assert _copier(Tagged) is None
    assert _copier(WithSettings) is None
    for changing in (Event, SystemsLead, WithLoose, WithSet, WithAny):
        assert _copier(changing) is not None, changing

    repository = InMemoryRepository()
    plain = Funnel(repository).add(Lead(**person(1)))
    assert repository.get(plain.id) is repository.get(plain.id)
    apps = InMemoryRepository()
    mine = Funnel(apps, lead_model=SystemsLead).add(SystemsLead(**person(2)))
    first, second = apps.get(mine.id), apps.get(mine.id)
    assert first == second
    assert first is not second
    assert isinstance(first, SystemsLead)
    assert isinstance(second, SystemsLead)
    assert first.systems is not second.systems


def test_a_nested_model_changed_in_place_changes_nothing_stored(clock: ManualClock) -> None:
    class Loose(BaseModel):
        colour: str = "red"

    class WithLoose(Lead):
        loose: Loose = Field(default_factory=Loose)

    funnel = Funnel(InMemoryRepository(), lead_model=WithLoose, clock=clock)
    lead = funnel.add(WithLoose(**person(1)))
    lead.loose.colour = "blue"
    funnel.get_lead(lead.id).loose.colour = "green"
    assert funnel.get_lead(lead.id).loose.colour == "red"


def test_events_hash_consistently_with_equality(funnel: Funnel) -> None:
    lead = funnel.add(Lead(**person(1)))
    (event,) = funnel.history(lead)
    again = funnel.history(lead)[0]
    assert event == again
    assert hash(event) == hash(again)
    assert len({event, again, *funnel.events()}) == 1
    assert hash(funnel.capture_result(Lead(**person(1))).event) != hash(event)


# --- 2. one set of models per store -----------------------------------------------------


def test_a_second_funnel_cannot_retype_a_shared_store(
    repository: Repository, clock: ManualClock
) -> None:
    first = systems_funnel(repository, clock)
    with pytest.raises(ConfigError) as refused:
        Funnel(repository, lead_model=OtherLead, clock=clock)
    message = str(refused.value)
    assert "SystemsLead" in message
    assert "OtherLead" in message
    assert "lead_model=SystemsLead" in message  # what to do
    assert first.lead_model is SystemsLead
    assert first.contact_model is SystemsContact
    first.add(SystemsLead(**person(1), systems=["x"]))  # the first funnel still works
    # The same classes again, or none (adopting the store's), are fine.
    assert systems_funnel(repository, clock).lead_model is SystemsLead
    assert Funnel(repository, clock=clock).lead_model is SystemsLead
    with pytest.raises(ConfigError):
        Funnel(repository, lead_model=Lead, clock=clock)  # back to the base: a retyping
    # A kind still read as leadfunnel's own class takes the application's.
    assert Funnel(repository, opportunity_model=Opportunity, clock=clock).lead_model is SystemsLead


def test_records_held_before_a_registration_read_and_update_as_the_new_class(
    repository: Repository, clock: ManualClock
) -> None:
    plain = Funnel(repository, clock=clock)
    lead = plain.add(Lead(**person(1)))
    person_2 = plain.add(Lead(**person(2)))
    funnel = systems_funnel(repository, clock)
    read = funnel.get_lead(lead.id)
    assert type(read) is SystemsLead
    assert (read.systems, read.meta) == ([], {})
    assert {type(r) for r in funnel.leads()} == {SystemsLead}
    assert type(plain.get_lead(person_2.id)) is SystemsLead  # one store, one class
    saved = funnel.update(read.model_copy(update={"systems": ["x"]}))
    assert funnel.get_lead(lead.id) == saved
    funnel.qualify(lead, force=True)
    assert funnel.get_lead(lead.id).status.value == "qualified"


def test_a_registration_that_cannot_read_a_held_record_fails_and_changes_nothing(
    clock: ManualClock,
) -> None:
    repository = InMemoryRepository()
    lead = Funnel(repository, clock=clock).add(Lead(**person(1)))
    with pytest.raises(ConfigError) as refused:
        Funnel(repository, lead_model=NeedsPlan, clock=clock)
    message = str(refused.value)
    assert str(lead.id) in message
    assert "plan" in message
    assert "default" in message  # what to do
    assert repository.models["lead"] is Lead
    assert type(repository.get(lead.id)) is Lead


def test_records_a_rolled_back_transaction_puts_back_read_as_models_registered_in_it(
    clock: ManualClock,
) -> None:
    repository = InMemoryRepository()
    plain = Funnel(repository, clock=clock)
    lead = plain.add(Lead(**person(1)))

    def qualify_register_and_fail() -> None:
        with repository.transaction():
            plain.qualify(lead, force=True)  # the lead's next version, a Lead
            systems_funnel(repository, clock)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        qualify_register_and_fail()
    funnel = systems_funnel(repository, clock)
    back = stored(funnel, lead)
    assert back.status.value == "raw"
    funnel.update(back.model_copy(update={"systems": ["x"]}))
