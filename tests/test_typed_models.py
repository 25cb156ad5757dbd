"""Type checkers see the application's classes (docs/custom-fields.md): ``Funnel`` is
generic in its record classes, inferred from ``Funnel(..., lead_model=MyLead)``.

``assert_type`` is checked by ``mypy --strict tests`` (CI) and does nothing at run
time; each test also runs, asserting the classes the records really are, on every
backend in ``conftest``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type

from hypothesis import given, settings
from hypothesis.strategies import SearchStrategy

from conftest import person
from leadfunnel import Contact, Funnel, InMemoryRepository, Lead, Opportunity, Repository
from leadfunnel.testing import ManualClock, contacts, leads


class MyLead(Lead):
    endpoints: int | None = None


class MyContact(Contact):
    endpoints: int | None = None


class MyDeal(Opportunity):
    po_number: str | None = None


def custom(repository: Repository, clock: ManualClock) -> Funnel[MyLead, MyContact, MyDeal]:
    return Funnel(
        repository,
        lead_model=MyLead,
        contact_model=MyContact,
        opportunity_model=MyDeal,
        clock=clock,
    )


def leads_of(funnel: Funnel) -> list[Lead]:
    """Takes any funnel: a ``Funnel[MyLead, ...]`` is a ``Funnel`` (covariant)."""
    return list(funnel.leads())


def test_the_funnels_classes_are_inferred_from_its_models(repository: Repository) -> None:
    assert_type(Funnel(), Funnel[Lead, Contact, Opportunity])
    assert_type(Funnel(repository), Funnel)  # the defaults: Lead, Contact, Opportunity
    assert_type(Funnel(repository, lead_model=None), Funnel[Lead, Contact, Opportunity])
    some_leads = Funnel(repository, lead_model=MyLead)
    assert_type(some_leads, Funnel[MyLead, Contact, Opportunity])
    some_deals = Funnel(repository, opportunity_model=MyDeal)
    assert_type(some_deals, Funnel[Lead, Contact, MyDeal])
    every = Funnel(repository, lead_model=MyLead, contact_model=MyContact, opportunity_model=MyDeal)
    assert_type(every, Funnel[MyLead, MyContact, MyDeal])
    assert_type(every.lead_model, type[MyLead])
    assert_type(every.contact_model, type[MyContact])
    assert_type(every.opportunity_model, type[MyDeal])
    assert (every.lead_model, every.contact_model, every.opportunity_model) == (
        MyLead,
        MyContact,
        MyDeal,
    )
    # A class that names its records' classes still makes a funnel at run time.
    explicit = Funnel[MyLead, Contact, Opportunity](InMemoryRepository(), lead_model=MyLead)
    assert_type(explicit, Funnel[MyLead, Contact, Opportunity])
    assert isinstance(explicit, Funnel)
    assert explicit.lead_model is MyLead


def test_reads_and_lead_triggers_return_the_registered_classes(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = custom(repository, clock)
    added = funnel.add(MyLead(**person(1), status="suspect", endpoints=40))
    assert_type(added, MyLead)
    lead = funnel.get_lead(added.id)
    assert_type(lead, MyLead)
    assert type(lead) is MyLead
    assert lead.endpoints == 40
    listed = funnel.leads()
    assert_type(listed, list[MyLead])
    assert sum(x.endpoints or 0 for x in listed) == 40
    assert [type(x) for x in listed] == [MyLead]
    assert leads_of(funnel) == listed

    farmed = funnel.farm(lead)
    assert_type(farmed, MyLead)
    responded = funnel.respond(farmed)
    assert_type(responded, MyLead)
    disqualified = funnel.disqualify(responded.id)
    assert_type(disqualified, MyLead)
    assert [type(x) for x in (farmed, responded, disqualified)] == [MyLead] * 3
    assert disqualified.endpoints == 40

    # A plain Lead is stored as MyLead; the type checker keeps the class it was given.
    plain = funnel.add(Lead(**person(2)))
    assert_type(plain, Lead)
    assert type(plain) is MyLead
    captured = funnel.capture(Lead(**person(3)))
    assert_type(captured, MyLead | MyContact)
    assert type(captured) is MyLead
    assert captured.endpoints is None
    found = funnel.find(email=person(3)["email"])
    assert_type(found, MyLead | MyContact | None)
    assert type(found) is MyLead
    got = funnel.get(lead.id)
    assert_type(got, MyLead | MyContact | MyDeal)
    assert type(got) is MyLead

    # update gives back the class it is given: the stored one, read from this funnel.
    edited = funnel.update(funnel.get_lead(plain.id).model_copy(update={"endpoints": 7}))
    assert_type(edited, MyLead)
    assert type(edited) is MyLead
    assert edited.endpoints == 7


def test_conversion_and_deal_triggers_return_the_registered_classes(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = custom(repository, clock)
    lead = funnel.add(MyLead(**person(1), endpoints=40))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    assert_type(deal, MyDeal)
    assert type(deal) is MyDeal
    assert deal.po_number is None
    contact = funnel.get_contact(deal.contact_id)
    assert_type(contact, MyContact)
    assert type(contact) is MyContact
    assert contact.endpoints == 40
    assert_type(funnel.contacts(), list[MyContact])
    assert [type(x) for x in funnel.contacts()] == [MyContact]
    assert_type(funnel.opportunities(), list[MyDeal])
    assert [type(x) for x in funnel.opportunities()] == [MyDeal]
    assert_type(funnel.get_opportunity(deal.id), MyDeal)

    moved = [funnel.sit(deal), funnel.propose(deal.id), funnel.send_contract(deal)]
    assert_type(moved, list[MyDeal])
    won = funnel.win(deal, amount=1000)
    assert_type(won, MyDeal)
    assert [type(x) for x in [*moved, won]] == [MyDeal] * 4

    again = funnel.set_appointment(contact, clock.now() + timedelta(days=1))
    assert_type(again, MyDeal)
    later = funnel.reschedule(again, appointment_at=clock.now() + timedelta(days=2))
    assert_type(later, MyDeal)
    lost = funnel.lose(later, reason="other")
    assert_type(lost, MyDeal)
    assert (type(later), type(lost)) == (MyDeal, MyDeal)

    avoided = funnel.avoid(contact.id)
    assert_type(avoided, MyLead | MyContact)
    assert type(avoided) is MyContact


def test_merges_and_avoid_keep_the_class_given(repository: Repository, clock: ManualClock) -> None:
    funnel = custom(repository, clock)
    keep = funnel.add(MyLead(**person(1), endpoints=40))
    other = funnel.add(MyLead(**person(2, company=person(1)["company"])))
    similar = funnel.similar(keep)
    assert_type(similar, list[MyLead | MyContact])
    assert [x.id for x in similar] == [other.id]
    merged = funnel.merge(keep, other)
    assert_type(merged, MyLead)
    restored = funnel.unmerge(keep.id)
    assert_type(restored, MyLead | MyContact)
    assert type(merged) is MyLead
    assert type(restored) is MyLead
    merged_by_id = funnel.merge(keep.id, other.id)
    assert_type(merged_by_id, MyLead | MyContact)
    unmerged = funnel.unmerge(funnel.get_lead(keep.id))
    assert_type(unmerged, MyLead)
    avoided = funnel.avoid(funnel.get_lead(keep.id))
    assert_type(avoided, MyLead)
    assert type(avoided) is MyLead
    assert avoided.endpoints == 40


def test_a_funnel_without_models_reads_the_base_classes(repository: Repository) -> None:
    funnel = Funnel(repository)
    lead = funnel.add(Lead(**person(1)))
    assert_type(funnel.get_lead(lead.id), Lead)
    assert_type(funnel.leads(), list[Lead])
    assert_type(funnel.capture(Lead(**person(1))), Lead | Contact)
    assert_type(funnel.get(lead.id), Lead | Contact | Opportunity)
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    assert_type(deal, Opportunity)
    assert_type(funnel.get_contact(deal.contact_id), Contact)
    assert type(deal) is Opportunity
    assert type(funnel.get_lead(lead.id)) is Lead


def test_the_strategies_draw_the_model_given() -> None:
    assert_type(leads(), SearchStrategy[Lead])
    assert_type(leads(status="raw", source="webinar"), SearchStrategy[Lead])
    assert_type(leads(model=MyLead, status="raw"), SearchStrategy[MyLead])
    assert_type(contacts(), SearchStrategy[Contact])
    assert_type(contacts(model=MyContact, type="client"), SearchStrategy[MyContact])

    @settings(max_examples=5, deadline=None)
    @given(leads(model=MyLead, status="raw"), contacts(model=MyContact, type="client"))
    def drawn(lead: MyLead, contact: MyContact) -> None:
        assert type(lead) is MyLead
        assert type(contact) is MyContact
        assert lead.endpoints is None or isinstance(lead.endpoints, int)

    drawn()
