"""The application API (DESIGN.md section 14): finding people, typed reads, pages,
counts, a rep's due list, and one error for every bad argument. Every backend."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest

from conftest import T0, person
from leadfunnel import (
    Contact,
    Funnel,
    InvalidArgumentError,
    Lead,
    LeadFunnelError,
    NotFoundError,
    Repository,
)
from leadfunnel.testing import ManualClock


def test_find_by_email_or_phone_normalised_as_add_does(funnel: Funnel) -> None:
    lead = funnel.add(Lead(**person(1, phone="+15125550101")))
    assert lead.email is not None
    assert funnel.find(email=f"  {lead.email.upper()} ") == lead
    assert funnel.find(phone="512.555.0101") == lead
    assert funnel.find(email="nobody@nowhere.example.com", phone="+15125550101") == lead
    assert funnel.find(email="nobody@nowhere.example.com") is None
    with pytest.raises(InvalidArgumentError, match="email"):
        funnel.find(email="not an e-mail")
    with pytest.raises(InvalidArgumentError, match="needs email= or phone="):
        funnel.find()


def test_find_sees_merged_away_keys_and_prefers_the_contact(funnel: Funnel) -> None:
    keep, other = funnel.add(Lead(**person(1))), funnel.add(Lead(**person(2)))
    funnel.merge(keep, other)
    found = funnel.find(email=other.email)
    assert found is not None
    assert found.id == keep.id
    funnel.qualify(keep, force=True)
    deal = funnel.set_appointment(keep)
    found = funnel.find(email=keep.email)
    assert isinstance(found, Contact)
    assert found.id == deal.contact_id


def test_typed_reads_say_what_an_id_is(funnel: Funnel) -> None:
    lead = funnel.add(Lead(**person(1)))
    contact = funnel.add(Contact(first_name="Sam", email="sam@client.example.com"))
    assert funnel.get_lead(str(lead.id)) == lead
    assert funnel.get_contact(contact.id) == contact
    with pytest.raises(NotFoundError, match=r"is a lead, not an opportunity"):
        funnel.get_opportunity(lead.id)
    with pytest.raises(NotFoundError, match=r"is a contact, not a lead"):
        funnel.get_lead(contact.id)


def test_similar_flags_a_new_lead_against_a_clients_contact(funnel: Funnel) -> None:
    client = funnel.add(Contact(first_name="Sam", email="sam@bluepeak.example.com", type="client"))
    lead = funnel.capture(Lead(first_name="Lee", email="lee@bluepeak.example.com"))
    assert [r.id for r in funnel.similar(lead)] == [client.id]
    assert [r.id for r in funnel.similar(client)] == [lead.id]
    # A converted lead is not a duplicate of the contact it became.
    funnel.qualify(lead, force=True)
    contact_id = funnel.set_appointment(lead).contact_id
    assert lead.id not in [r.id for r in funnel.similar(contact_id)]
    assert contact_id not in [r.id for r in funnel.similar(lead)]


def test_pages_follow_creation_order_whatever_the_order_stored(
    funnel: Funnel, clock: ManualClock
) -> None:
    made = [
        funnel.add(Lead(**person(n)), at=clock.now() + timedelta(minutes=m))
        for n, m in enumerate([9, 3, 3, 7, 0, 3, 5, 1])
    ]
    expected = [r.id for r in sorted(made, key=lambda r: (r.created_at, r.id))]
    seen, page = [], funnel.leads(limit=3)
    while page:
        seen += [r.id for r in page]
        page = funnel.leads(after=page[-1], limit=3)
    assert seen == expected
    assert [r.id for r in funnel.leads(after=expected[4])] == expected[5:]
    gone = funnel.get_lead(expected[4])
    funnel.merge(expected[0], gone)  # a page's last record may be merged away meanwhile
    assert [r.id for r in funnel.leads(after=gone)] == expected[5:]
    # By its id too (a web client carries only that): its merge log keeps its place.
    assert [r.id for r in funnel.leads(after=gone.id)] == expected[5:]
    # Another kind's record has no place among leads: said, not an empty page.
    contact = funnel.add(Contact(**person(20)))
    for after in (contact, contact.id):
        with pytest.raises(InvalidArgumentError, match="is a contact, not a lead"):
            funnel.leads(after=after)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="is a lead, not an opportunity"):
        funnel.opportunities(after=str(expected[5]))
    assert funnel.count("lead") == 7
    assert funnel.count("lead", status="raw", created_since=made[0].created_at) == 1


def test_a_reps_due_list_is_filtered_in_storage_and_limited(
    funnel: Funnel, clock: ManualClock
) -> None:
    for n, owner in enumerate(["ana", "ben", "ana", None, "ana"]):
        funnel.capture(Lead(**person(n, owner=owner)))
        clock.advance(minutes=5)
    later = clock.now() + timedelta(days=1)
    everything = funnel.due(at=later)
    anas = funnel.due(at=later, owner="ana")
    assert len(everything) == 5
    assert [i.subject_id for i in anas] == [i.subject_id for i in everything if i.owner == "ana"]
    assert funnel.due(at=later, owner="ana", limit=2) == anas[:2]
    assert funnel.due(at=later, limit=0) == []
    # Each call's owner is its own (a SQL store builds the statement once, for any owner).
    assert [i.owner for i in funnel.due(at=later, owner="ben")] == ["ben"]
    assert funnel.due(at=later, owner="ana") == anas
    assert funnel.due(at=later, owner="nobody") == []


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda f: f.leads(status="hot"), "suspect, farm_list, raw"),
        (lambda f: f.contacts(type="vip"), "prospect, client"),
        (lambda f: f.opportunities(stage="closing"), "appointment_set"),
        (lambda f: f.count("deal"), "lead, contact, opportunity"),
        (lambda f: f.count("lead", colour="red"), "filter by one of"),
        (lambda f: f.leads(created_since=datetime(2026, 1, 1)), "no timezone"),
        (lambda f: f.leads(limit=-1), "limit=-1"),
        # A feed's position from a query string is text: every store says so alike.
        (lambda f: f.events(after="1"), "after='1': give the position"),
        (lambda f: f.events(after=None), "after=None"),
        (lambda f: f.events(after=-1), "after=-1"),
        (lambda f: f.events(limit=-1), "limit=-1"),
        (lambda f: f.events(limit="2"), "limit='2'"),
        (lambda f: f.due(at=datetime(2026, 1, 1)), "no timezone"),
        (lambda f: f.report(by="colour"), "source, owner"),
        (lambda f: f.rep_list("hot_leads"), "not_sat"),
        (lambda f: f.touch(f.capture(Lead(**person(9))), "fax", "replied"), "call, email"),
        (lambda f: f.touch(f.capture(Lead(**person(9))), "call", "maybe"), "no_answer"),
        (
            lambda f: f.lose(f.set_appointment(f.add(Contact(first_name="C"))), reason="meh"),
            "cancelled, no_show",
        ),
    ],
)
def test_a_bad_argument_is_an_invalid_argument_error_listing_the_allowed(
    funnel: Funnel, call: Callable[[Funnel], object], says: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=says) as err:
        call(funnel)
    assert isinstance(err.value, (LeadFunnelError, ValueError))


def test_capture_result_tells_a_new_lead_from_a_known_person(funnel: Funnel) -> None:
    first = funnel.capture_result(Lead(**person(1)))
    assert first.new
    assert (first.event.name, first.event.source, first.event.dest) == ("capture", None, "raw")
    again = funnel.capture_result(Lead(**person(1, city="Austin")))
    assert not again.new
    assert again.record.id == first.record.id
    assert again.event.data["fields"] == ["city"]
    funnel.qualify(first.record, force=True)
    contact_id = funnel.set_appointment(first.record).contact_id
    known = funnel.capture_result(Lead(**person(1)))
    assert (known.new, known.record.id, known.record.kind) == (False, contact_id, "contact")
    with pytest.raises(NotFoundError, match="is a contact, not a lead"):
        funnel.qualify(known.record)


def _datetime_parameters() -> list[tuple[str, str]]:
    """Every (method, parameter) of the facade that takes a datetime."""
    found = []
    for name, method in inspect.getmembers(Funnel, inspect.isfunction):
        if not name.startswith("_"):
            for parameter in inspect.signature(method).parameters.values():
                if "datetime" in str(parameter.annotation):
                    found.append((name, parameter.name))
    return found


# Both adapter classes (the SQL one is the same code on every server): the check is the
# facade's and the adapters' argument check, which no server sees; on PostgreSQL and
# MariaDB too these 200 cases cost half a minute of a run.
@pytest.mark.parametrize("repository", ["memory", "sqlite"], indirect=True)
@pytest.mark.parametrize("given", ["2026-03-01T10:00:00+01:00", date(2026, 3, 1), 1772355600])
@pytest.mark.parametrize(("method", "parameter"), _datetime_parameters())
def test_a_datetime_argument_that_is_not_one_is_an_invalid_argument_error(
    funnel: Funnel, method: str, parameter: str, given: object
) -> None:
    """ISO text from a JSON body, a date or a timestamp is refused with the fix, never an
    AttributeError deep inside (a web handler would answer 500), and nothing is stored."""
    lead = funnel.add(Lead(**person(1)))
    other = funnel.add(Lead(**person(2)))
    deal = funnel.set_appointment(funnel.add(Contact(**person(3))))
    stand_ins: dict[str, object] = {
        "record": Lead(**person(4)),
        "lead": lead.id,
        "subject": lead.id,
        "keep": lead.id,
        "other": other.id,
        "opportunity": deal.id,
        "reason": "cancelled",
        "rows": [],
        "name": "never_booked",
        "channel": "call",
        "outcome": "no_answer",
        "since": T0,
        "until": T0,
        "appointment_at": T0 + timedelta(days=1),
    }
    signature = inspect.signature(getattr(Funnel, method))
    arguments = {
        name: stand_ins[name]
        for name, p in signature.parameters.items()
        if name != "self" and p.default is inspect.Parameter.empty
    }
    if method in ("capture", "capture_result"):
        arguments["lead"] = Lead(**person(5))
    arguments[parameter] = given
    before = funnel.events(limit=None)
    says = "pair of datetimes" if parameter == "previous" else f"{parameter}=.* is not a datetime"
    with pytest.raises(InvalidArgumentError, match=says):
        getattr(funnel, method)(**arguments)
    assert funnel.events(limit=None) == before


class _Tracked(Lead):
    plan: str | None = None


def test_an_update_of_a_plain_lead_where_a_subclass_is_stored_says_so(
    repository: Repository, clock: ManualClock
) -> None:
    """Saving a plain ``Lead`` would put the application's own fields back at their
    defaults: refused with what to do, not reported as a missing lead."""
    funnel = Funnel(repository, lead_model=_Tracked, clock=clock)
    stored = funnel.add(_Tracked(**person(1), plan="gold"))
    plain = Lead.model_validate(stored.model_dump(exclude={"plan"}))
    with pytest.raises(InvalidArgumentError, match="stores leads as _Tracked, not Lead"):
        funnel.update(plain.model_copy(update={"city": "Waco"}))
    assert funnel.get_lead(stored.id) == stored
    edited = funnel.update(stored.model_copy(update={"city": "Waco"}))
    assert (edited.city, edited.plan) == ("Waco", "gold")


@pytest.mark.parametrize("method", ["add", "capture", "update"])
def test_a_record_argument_that_is_not_a_record_is_an_invalid_argument_error(
    funnel: Funnel, method: str
) -> None:
    lead = funnel.add(Lead(**person(1)))
    with pytest.raises(InvalidArgumentError, match="give a Lead, Contact or Opportunity"):
        getattr(funnel, method)(lead.id)
    with pytest.raises(InvalidArgumentError, match="is not a record"):
        getattr(funnel, method)({"first_name": "Ann"})
