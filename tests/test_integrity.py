"""Integrity on real data (DESIGN.md section 12): people without e-mail or phone, an avoid
list that no edit can undo, no change committed on a stale read, clean text, any date,
and no personal data in exception chains. Runs on every backend in ``conftest``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest

from conftest import person
from leadfunnel import (
    AvoidListedError,
    ChangeSet,
    ConcurrencyError,
    Contact,
    Event,
    Funnel,
    InvalidArgumentError,
    Lead,
    LeadFunnelError,
    LeadStatus,
    PolicyError,
    Repository,
    SqlRepository,
    StorageError,
)
from leadfunnel._sql import _schema as schema


def badge(n: int, **fields: Any) -> Lead:
    """A trade-show badge scan: a name and a company, no e-mail, no phone."""
    return Lead(**person(n, email=None, **fields))


def interfere(repository: Repository, meddle: Callable[[], object]) -> list[int]:
    """Make ``meddle`` (another writer's change) commit just before the next commit of
    ``repository``, once: the change being committed was decided before it."""
    real = repository.commit
    done: list[int] = []

    def commit(changes: ChangeSet) -> list[Event]:
        if not done:
            done.append(1)
            meddle()
        return real(changes)

    repository.commit = commit  # type: ignore[method-assign]
    return done


# --- people without e-mail or phone ---------------------------------------------------


def test_badge_scans_go_through_the_whole_funnel(funnel: Funnel) -> None:
    scan, twin = funnel.add(badge(1, status="suspect")), funnel.add(badge(1, status="suspect"))
    assert scan.id != twin.id
    funnel.farm(scan)
    funnel.respond(scan)
    funnel.qualify(scan, force=True)
    deal = funnel.set_appointment(scan)
    contact = funnel.get(deal.contact_id)
    assert isinstance(contact, Contact)
    assert (contact.email, contact.phone) == (None, None)
    funnel.update(funnel.get_lead(twin.id).model_copy(update={"notes": "met at the booth"}))
    funnel.avoid(twin)
    merged = funnel.merge(
        funnel.add(Contact(first_name="A", company="B")), funnel.add(Contact(first_name="A"))
    )
    assert merged.company == "B"
    report = funnel.import_leads([{"first_name": "C", "company": "D"}, {"first_name": "E"}])
    assert len(report.added) == 2
    assert funnel.report().steps["appointment_set"].count == 1


# --- the avoid list survives edits ----------------------------------------------------


def test_editing_an_avoided_persons_keys_keeps_the_old_ones_suppressed(funnel: Funnel) -> None:
    lead = funnel.add(Lead(**person(1, phone="+15125550101")))
    funnel.avoid(lead)
    edited = funnel.update(
        funnel.get_lead(lead.id).model_copy(update={"email": None, "phone": None})
    )
    assert (edited.email, edited.phone) == (None, None)
    assert lead.email is not None
    attempt: Callable[[], object]
    for attempt in (
        lambda: funnel.add(Lead(first_name="X", email=lead.email.upper())),
        lambda: funnel.capture(Lead(first_name="X", phone="(512) 555-0101")),
        lambda: funnel.add(Contact(first_name="X", phone="+15125550101")),
    ):
        with pytest.raises(AvoidListedError) as err:
            attempt()
        assert err.value.existing_id == lead.id
    report = funnel.import_leads([person(2, email=lead.email), person(3)])
    assert [len(report.avoided), len(report.added)] == [1, 1]


def test_a_merged_away_key_of_an_avoided_person_stays_suppressed(funnel: Funnel) -> None:
    keep = funnel.add(Lead(**person(1)))
    other = funnel.add(Lead(**person(2)))
    funnel.avoid(keep)
    funnel.avoid(other)
    merged = funnel.merge(keep, other)
    assert merged.other_emails == {other.email}
    funnel.update(merged.model_copy(update={"other_emails": frozenset()}))
    with pytest.raises(AvoidListedError):
        funnel.add(Lead(**person(9, email=other.email)))


def test_an_unavoided_persons_old_key_is_free_again(funnel: Funnel) -> None:
    # The suppression is for the avoid list only: anybody else may change address.
    lead = funnel.add(Lead(**person(1)))
    funnel.update(lead.model_copy(update={"email": "new@elsewhere.example.com"}))
    assert funnel.add(Lead(**person(2, email=lead.email))).email == lead.email


# --- no change committed on a stale read ----------------------------------------------


def test_a_touch_checked_before_an_avoid_is_never_stored_after_it(funnel: Funnel) -> None:
    lead = funnel.capture(Lead(**person(1)))
    other = Funnel(funnel.repository, clock=funnel.clock)
    raced = interfere(funnel.repository, lambda: other.avoid(lead.id))
    with pytest.raises(PolicyError, match="avoid list"):
        funnel.touch(lead, "call", "no_answer")
    assert raced == [1]
    assert funnel.touches(lead) == []
    assert [e.name for e in funnel.history(lead)] == ["capture", "avoid"]


def test_a_touch_checked_before_an_opt_out_is_refused(funnel: Funnel) -> None:
    lead = funnel.capture(Lead(**person(1)))
    other = Funnel(funnel.repository, clock=funnel.clock)
    interfere(funnel.repository, lambda: other.touch(lead.id, "sms", "opted_out"))
    with pytest.raises(PolicyError, match="opted out"):
        funnel.touch(lead, "sms", "no_answer")
    assert [t.outcome for t in funnel.touches(lead)] == ["opted_out"]


def test_a_capture_of_a_person_avoided_meanwhile_is_refused(funnel: Funnel) -> None:
    lead = funnel.capture(Lead(**person(1)))
    other = Funnel(funnel.repository, clock=funnel.clock)
    interfere(funnel.repository, lambda: other.avoid(lead.id))
    with pytest.raises(AvoidListedError):
        funnel.capture(Lead(**person(1)))
    assert [e.name for e in funnel.history(lead)] == ["capture", "avoid"]


def test_an_appointment_on_a_contact_avoided_meanwhile_is_refused(funnel: Funnel) -> None:
    contact = funnel.add(Contact(first_name="Sam", email="sam@client.example.com"))
    other = Funnel(funnel.repository, clock=funnel.clock)
    interfere(funnel.repository, lambda: other.avoid(contact.id))
    with pytest.raises(LeadFunnelError, match="avoid"):
        funnel.set_appointment(contact)
    assert funnel.opportunities() == []


def test_a_touch_checked_against_the_cadence_is_refused_after_another_filled_it(
    funnel: Funnel,
) -> None:
    """Two reps each log the lead's second cold call at once: only one is stored."""
    lead = funnel.capture(Lead(**person(1)))
    funnel.touch(lead, "call", "no_answer")  # 1 of the 2 touches of a cold lead
    other = Funnel(funnel.repository, clock=funnel.clock)
    raced = interfere(funnel.repository, lambda: other.touch(lead.id, "call", "no_answer"))
    with pytest.raises(PolicyError, match="on drip"):
        funnel.touch(lead, "call", "left_message")  # checked against 1 touch: stale
    assert raced == [1]
    assert [t.outcome for t in funnel.touches(lead)] == ["no_answer", "no_answer"]
    assert funnel.get(lead.id).version == lead.version  # a touch edits nothing


def test_a_store_refuses_a_commit_decided_on_touches_that_changed(
    repository: Repository,
) -> None:
    funnel = Funnel(repository)
    lead = funnel.capture(Lead(**person(1)))
    funnel.touch(lead, "email", "no_answer")
    with pytest.raises(ConcurrencyError, match=r"had 0 touches .* has 1 now") as err:
        repository.commit(ChangeSet(checks=[lead], touches_read={lead.id: 0}))
    assert (err.value.id, err.value.expected, err.value.found) == (lead.id, 0, 1)
    repository.commit(ChangeSet(checks=[lead], touches_read={lead.id: 1}))  # up to date


# --- clean text, any date -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "Pat\x00"),
        ("company", "Acme\x1b[2J"),
        ("title", "CE\nO"),
        ("notes", "call\x00back"),
        ("notes", "bell\x07"),
        ("city", "Aus\x85tin"),
        ("phone", "+1 512\x00 555 0101"),
    ],
)
def test_control_characters_are_refused_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(pydantic.ValidationError) as err:
        Lead(**person(1, **{field: value}))
    assert err.value.errors()[0]["loc"][0] == field
    assert "control character" in str(err.value)


def test_free_text_arguments_refuse_control_characters(funnel: Funnel) -> None:
    """What the facade copies into a record or an event unvalidated is checked first."""
    lead = funnel.capture(Lead(**person(1)))
    calls: dict[str, Callable[[], object]] = {
        "note": lambda: funnel.touch(lead, "call", "connected", note="x\x00y"),
        "actor": lambda: funnel.touch(lead, "call", "connected", actor="rep\x1b[31m"),
        "reason": lambda: funnel.qualify(lead, force=True, reason="r\x00"),
        "owner": lambda: funnel.set_appointment(lead, owner="o\x1b[31m"),
        "setter": lambda: funnel.set_appointment(lead, setter="s" * 201),
    }
    for field, call in calls.items():
        with pytest.raises(pydantic.ValidationError) as err:
            call()
        assert err.value.errors()[0]["loc"] == (field,), field
    assert funnel.touches(lead) == []
    assert [e.name for e in funnel.history(lead)] == ["capture"]
    deal = funnel.set_appointment(lead, owner="  Dana  ", force=True)
    assert deal.owner == funnel.get(deal.id).owner == "Dana"  # stripped, as a model is
    with pytest.raises(pydantic.ValidationError, match="control character"):
        funnel.lose(deal, reason="price", note="n\x00")
    # A blank is no value, as when the argument is left out: the owner stays.
    owned = funnel.capture(Lead(**person(2, owner="alice")))
    booked = funnel.set_appointment(owned, owner="  ", setter="", force=True)
    assert (booked.owner, booked.setter) == ("alice", None)
    assert funnel.get_contact(booked.contact_id).owner == "alice"
    touch = funnel.touch(booked.contact_id, "email", "no_answer", note=" ", actor="")
    assert touch.note is touch.actor is None
    assert funnel.history(booked.contact_id)[-1].actor is None
    assert funnel.lose(deal, reason="price", note="too\tdear\n").lost_note == "too\tdear"


def test_notes_keep_their_tabs_and_line_breaks(funnel: Funnel) -> None:
    lead = funnel.add(Lead(**person(1, notes="line one\r\n\tline two")))
    assert funnel.get_lead(lead.id).notes == "line one\r\n\tline two"
    touch = funnel.touch(lead, "call", "connected", note="a\nb")
    assert funnel.touches(lead)[0].note == touch.note == "a\nb"


def test_records_dated_at_either_end_of_the_calendar_never_break_due(funnel: Funnel) -> None:
    first = datetime(1, 1, 1, tzinfo=UTC)
    last = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    old = funnel.capture(Lead(**person(1)), at=first)
    funnel.capture(Lead(**person(2)), at=last)
    due = funnel.due(at=datetime(2026, 3, 2, tzinfo=UTC))
    assert [item.subject_id for item in due] == [old.id]
    assert funnel.due(at=last + timedelta(seconds=59))  # nothing overflows at the very end
    assert funnel.report().steps["raw"].count == 2


@pytest.mark.parametrize(
    "at",
    [
        datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1))),
    ],
)
def test_an_instant_outside_the_utc_calendar_is_refused(funnel: Funnel, at: datetime) -> None:
    """Year 1 (or 9999) on the wall clock, year 0 (or 10000) in UTC: no store keeps it."""
    with pytest.raises(InvalidArgumentError, match="outside 0001-01-01 to 9999-12-31 in UTC"):
        funnel.add(Lead(**person(1)), at=at)
    with pytest.raises(pydantic.ValidationError, match="outside 0001-01-01") as err:
        Lead(**person(1, created_at=at))
    assert err.value.errors()[0]["loc"] == ("created_at",)
    assert funnel.leads() == []


def test_months_of_the_first_year_are_named_alike_on_every_store(funnel: Funnel) -> None:
    funnel.capture(Lead(**person(1)), at=datetime(1, 1, 1, tzinfo=UTC))
    assert list(funnel.report(by="month").groups) == ["0001-01"]
    with pytest.raises(InvalidArgumentError, match="would start before 0001-01-01"):
        funnel.compare(since=datetime(1, 1, 1, tzinfo=UTC), until=datetime(1, 6, 1, tzinfo=UTC))


# --- one error tree, no personal data in it -------------------------------------------


def test_merging_a_record_into_itself_is_an_argument_error(funnel: Funnel) -> None:
    lead = funnel.add(Lead(**person(1)))
    with pytest.raises(InvalidArgumentError, match="into itself") as err:
        funnel.merge(lead, lead)
    assert isinstance(err.value, ValueError)
    with pytest.raises(InvalidArgumentError, match="one kind"):
        funnel.merge(lead, funnel.add(Contact(first_name="C")))


def _chain(error: BaseException | None) -> str:
    text = []
    while error is not None:
        text += [str(error), repr(error)]
        error = error.__cause__ or error.__context__
    return "\n".join(text)


def test_bad_arguments_are_argument_errors(funnel: Funnel) -> None:
    lead = funnel.capture(Lead(**person(1)))
    deal = funnel.set_appointment(lead, force=True)
    for amount in (-5, "abc", float("nan"), "1.234"):
        with pytest.raises(InvalidArgumentError, match="is not a valid amount"):
            funnel.win(deal, amount=amount)
    assert funnel.get_opportunity(deal.id).stage == "appointment_set"
    naive = datetime(2026, 1, 1)
    with pytest.raises(InvalidArgumentError, match="since=2026-01-01T00:00:00 has no"):
        funnel.report(since=naive)
    with pytest.raises(InvalidArgumentError, match="until=2026-01-01T00:00:00 has no"):
        funnel.report(until=naive)


def test_a_limit_of_zero_lists_nothing_on_every_store(funnel: Funnel) -> None:
    lead = funnel.capture(Lead(**person(1)))
    funnel.set_appointment(lead, force=True)
    assert funnel.leads(limit=0) == []
    assert funnel.contacts(limit=0) == []
    assert funnel.opportunities(limit=0) == []


def test_a_database_error_carries_no_personal_data(repository: Repository) -> None:
    if not isinstance(repository, SqlRepository):
        pytest.skip("a database adapter")
    funnel = Funnel(repository)
    with repository._engine.begin() as conn:
        schema.tags.drop(conn)  # every add of a tagged lead now fails
    secret = Lead(**person(1, first_name="Zelda", tags={"vip"}, phone="+15125550177"))
    with pytest.raises(StorageError) as err:
        funnel.add(secret)
    text = _chain(err.value)
    assert "lf_tags" in text  # the failure is explained...
    for value in (secret.email, secret.phone, "Zelda"):
        assert value is not None
        assert value not in text  # ...without the person's data


# --- commit order -----------------------------------------------------------------------


def test_history_ties_are_broken_by_commit_order(funnel: Funnel) -> None:
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    funnel.touch(lead, "call", "no_answer")
    history = funnel.history(lead)
    assert [e.name for e in history] == ["capture", "qualify", "touch"]
    positions = [e.position for e in history]
    assert positions == sorted(positions)
    assert history[-1].dest == funnel.get_lead(lead.id).status == LeadStatus.QUALIFIED
