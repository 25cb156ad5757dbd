"""Scenarios from other CRMs' test suites (Odoo's mail gateway, duplicates and merge
tests) that found gaps: a known person writing from a new address, and a converted
lead shown beside its own contact as a duplicate."""

from __future__ import annotations

import pytest

from leadfunnel import (
    Contact,
    Funnel,
    InvalidArgumentError,
    InvalidTransitionError,
    Lead,
)


def test_a_known_person_writing_from_a_new_address_keeps_it(funnel: Funnel) -> None:
    """Found by the phone, the new e-mail is theirs too (kept as merge keeps one): the
    next inquiry from it finds them instead of making a second lead."""
    ray = funnel.add(Lead(first_name="Ray", email="ray@old.example.com", phone="+12025550142"))
    captured = funnel.capture(Lead(email="Ray@New.example.com", phone="202-555-0142"))
    assert captured.id == ray.id
    stored = funnel.get_lead(ray.id)
    assert stored.email == "ray@old.example.com"
    assert {e.lower() for e in stored.other_emails} == {"ray@new.example.com"}
    again = funnel.capture(Lead(email="ray@new.example.com", notes="second inquiry"))
    assert again.id == ray.id
    assert funnel.count("lead") == 1
    found = funnel.find(email="RAY@new.example.com")
    assert found is not None
    assert found.id == ray.id
    first, _ = (e for e in funnel.history(ray) if e.name == "capture")
    assert "other_emails" in first.data["fields"]


def test_a_known_person_calling_from_a_new_number_keeps_it(funnel: Funnel) -> None:
    ann = funnel.add(Lead(first_name="Ann", email="ann@x.example.com", phone="+12025550100"))
    funnel.capture(Lead(email="ANN@x.example.com", phone="(512) 555-0134"))
    stored = funnel.get_lead(ann.id)
    assert stored.phone == "+12025550100"
    assert stored.other_phones == {"+15125550134"}
    assert funnel.capture(Lead(phone="+1 512 555 0134")).id == ann.id


def test_an_address_someone_else_holds_stays_theirs(funnel: Funnel) -> None:
    ray = funnel.add(Lead(first_name="Ray", email="ray@x.example.com", phone="+12025550142"))
    sue = funnel.add(Lead(first_name="Sue", email="sue@x.example.com"))
    funnel.capture(Lead(email="sue@x.example.com", phone="+12025550142"))
    # The e-mail is Sue's: whichever record the capture landed on, neither took the
    # other's key.
    assert funnel.get_lead(ray.id).other_emails == set()
    assert funnel.get_lead(sue.id).email == "sue@x.example.com"
    assert funnel.get_lead(sue.id).other_phones == set()
    # The same address in another case is no new address.
    funnel.capture(Lead(email="RAY@X.EXAMPLE.COM", phone="+12025550142"))
    assert funnel.get_lead(ray.id).other_emails == set()


def test_similar_shows_a_converted_leads_contact_not_the_lead(funnel: Funnel) -> None:
    """The converted lead's person is its contact: shown once, as the contact (the
    record a merge can take)."""
    dana = funnel.add(Lead(first_name="Dana", last_name="Kirk", company="Kirk Co"))
    funnel.qualify(dana, force=True)
    deal = funnel.set_appointment(dana)
    badge = funnel.add(Lead(first_name="Dana", last_name="Kirk", company="Kirk Co"))
    found = funnel.similar(badge)
    assert [(type(r), r.id) for r in found] == [(Contact, deal.contact_id)]
    # Only the lead shares the clue (the contact's company changed since): its contact
    # is shown all the same.
    contact = funnel.get_contact(deal.contact_id)
    funnel.update(contact.model_copy(update={"company": "Kirk Holdings"}))
    assert [r.id for r in funnel.similar(badge)] == [deal.contact_id]


def test_merge_refusals_say_what_can_be_done(funnel: Funnel) -> None:
    dana = funnel.add(Lead(first_name="Dana", last_name="Kirk", company="Kirk Co"))
    funnel.qualify(dana, force=True)
    deal = funnel.set_appointment(dana)
    badge = funnel.add(Lead(first_name="Dana", last_name="Kirk"))
    with pytest.raises(InvalidTransitionError) as converted:
        funnel.merge(dana, badge)
    assert f"converted into contact {deal.contact_id}" in str(converted.value)
    assert "merge its contact instead" not in str(converted.value)
    with pytest.raises(InvalidArgumentError, match="update the contact with what the lead adds"):
        funnel.merge(funnel.get_contact(deal.contact_id), badge)
