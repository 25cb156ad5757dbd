"""The avoid list cannot be undone by editing (DESIGN.md section 12), on every backend.

Every key an avoided or erased person ever held stays suppressed: the keys they hold,
those they edited away before or after being avoided (on the lead, the contact it
became, the records merged into them), and an edit may not give any of those keys to
another record either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conftest import person
from leadfunnel import (
    AvoidListedError,
    ChangeSet,
    Contact,
    Event,
    Funnel,
    InvalidArgumentError,
    Lead,
)
from leadfunnel._suppression import DROPPED_KEYS


def unchanged(funnel: Funnel, call: Callable[[], Any]) -> AvoidListedError:
    """Run ``call``, which must raise ``AvoidListedError`` and store nothing."""
    before = [
        [r.model_dump() for r in (*funnel.leads(), *funnel.contacts())],
        [e.model_dump() for e in funnel.events(limit=None)],
    ]
    with pytest.raises(AvoidListedError) as err:
        call()
    after = [
        [r.model_dump() for r in (*funnel.leads(), *funnel.contacts())],
        [e.model_dump() for e in funnel.events(limit=None)],
    ]
    assert after == before
    return err.value


def refused_everywhere(funnel: Funnel, email: str | None = None, phone: str | None = None) -> None:
    """Adding, capturing and importing the key are all refused as avoid-listed."""
    fields = {"email": email, "phone": phone}
    unchanged(funnel, lambda: funnel.add(Lead(first_name="Again", **fields)))
    unchanged(funnel, lambda: funnel.capture(Lead(**fields)))
    report = funnel.import_leads([{k: v for k, v in fields.items() if v is not None}])
    assert (report.added, len(report.avoided)) == ([], 1)


def edit(funnel: Funnel, record: Lead | Contact, **changes: Any) -> Any:
    """Save ``changes`` on the stored version of ``record``."""
    return funnel.update(funnel.get(record.id).model_copy(update=changes))


# --- an edit may not give a record a suppressed key ------------------------------------


def test_an_edit_cannot_give_a_record_an_erased_persons_keys(funnel: Funnel) -> None:
    gone = funnel.add(Lead(first_name="Gone", email="gone@x.example.com", phone="5125550123"))
    funnel.erase(gone)
    other = funnel.add(Lead(**person(1)))
    contact = funnel.add(Contact(**person(2)))
    err = unchanged(funnel, lambda: edit(funnel, other, email="Gone@X.example.com"))
    assert (err.existing_id, err.key) == (gone.id, "email:gone@x.example.com")
    unchanged(funnel, lambda: edit(funnel, other, phone="(512) 555-0123"))
    unchanged(funnel, lambda: edit(funnel, contact, other_emails=frozenset({"gone@x.example.com"})))
    unchanged(funnel, lambda: edit(funnel, contact, other_phones=frozenset({"+15125550123"})))
    # The other fields of the same edit are not saved either; a clean edit still is.
    unchanged(funnel, lambda: edit(funnel, other, city="Waco", email="gone@x.example.com"))
    assert edit(funnel, other, city="Waco").city == "Waco"


def test_an_edit_cannot_take_a_key_an_avoided_person_edited_away(funnel: Funnel) -> None:
    avoided = funnel.avoid(funnel.add(Lead(first_name="Av", email="av@x.example.com")))
    avoided = edit(funnel, avoided, email="av2@x.example.com")
    other = funnel.add(Lead(**person(1)))
    err = unchanged(funnel, lambda: edit(funnel, other, email="av@x.example.com"))
    assert err.existing_id == avoided.id
    # The avoided person may take its own old key back: it stays avoided either way.
    assert edit(funnel, avoided, email="av@x.example.com").email == "av@x.example.com"
    refused_everywhere(funnel, email="av2@x.example.com")


# --- keys held before being avoided ----------------------------------------------------


def test_keys_edited_away_before_the_avoidance_stay_avoided(funnel: Funnel) -> None:
    lead = funnel.add(Lead(first_name="B", email="b1@y.example.com", phone="+15125550111"))
    lead = edit(funnel, lead, email="b2@y.example.com", phone="+15125550112")
    lead = edit(funnel, lead, email="b3@y.example.com")
    funnel.add(Lead(**person(1)))  # somebody else, untouched by all this
    funnel.avoid(lead)
    refused_everywhere(funnel, email="b1@y.example.com")
    refused_everywhere(funnel, email="B2@y.example.com")
    refused_everywhere(funnel, phone="(512) 555-0111")
    refused_everywhere(funnel, email="b3@y.example.com")  # held now
    other = funnel.find(email=person(1)["email"])
    assert other is not None
    unchanged(funnel, lambda: edit(funnel, other, email="b1@y.example.com"))
    assert funnel.add(Lead(email="b4@y.example.com")).email == "b4@y.example.com"


def test_the_edits_keep_digests_of_the_keys_they_drop_never_the_keys(funnel: Funnel) -> None:
    lead = funnel.add(Lead(first_name="B", email="b1@y.example.com"))
    edit(funnel, lead, email="b2@y.example.com", city="Waco")
    last = funnel.history(lead)[-1]
    assert last.data["fields"] == ["city", "email"]
    (digest,) = last.data[DROPPED_KEYS]
    assert len(digest) == 64
    assert "b1@" not in json.dumps(last.model_dump(mode="json"))
    edit(funnel, lead, city="Austin")
    assert DROPPED_KEYS not in funnel.history(lead)[-1].data
    # Not avoided: the key it dropped is free for anybody.
    assert funnel.add(Lead(email="b1@y.example.com")).email == "b1@y.example.com"


def test_keys_merged_in_and_edited_away_stay_avoided(funnel: Funnel) -> None:
    keep = funnel.add(Lead(first_name="C", email="c1@z.example.com"))
    other = funnel.add(Lead(first_name="C", email="c2@z.example.com", phone="+15125550122"))
    funnel.update(other.model_copy(update={"email": "c3@z.example.com"}))  # c2 dropped
    merged = funnel.merge(keep, other)
    assert merged.other_emails == {"c3@z.example.com"}
    merged = edit(funnel, merged, other_emails=frozenset(), other_phones=frozenset())
    funnel.avoid(merged)
    for email in ("c1@z.example.com", "c2@z.example.com", "c3@z.example.com"):
        refused_everywhere(funnel, email=email)
    refused_everywhere(funnel, phone="+15125550122")


@pytest.mark.parametrize("avoided", ["lead", "contact"])
def test_a_converted_leads_keys_stay_avoided_with_its_contact(funnel: Funnel, avoided: str) -> None:
    lead = funnel.add(Lead(**person(1, email="l1@v.example.com")))
    lead = edit(funnel, lead, email="l2@v.example.com")  # before the conversion
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    contact = funnel.get_contact(deal.contact_id)
    contact = edit(funnel, contact, email="l3@v.example.com", phone="+15125550133")
    contact = edit(funnel, contact, phone=None)  # after it
    funnel.avoid(lead.id if avoided == "lead" else contact.id)
    for email in ("l1@v.example.com", "l2@v.example.com", "l3@v.example.com"):
        refused_everywhere(funnel, email=email)
    refused_everywhere(funnel, phone="+15125550133")


def test_losing_a_deal_for_avoid_keeps_the_contacts_old_keys_avoided(funnel: Funnel) -> None:
    lead = funnel.add(Lead(**person(1, email="m1@v.example.com")))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    edit(funnel, funnel.get_contact(deal.contact_id), email="m2@v.example.com")
    funnel.lose(deal, reason="avoid")  # avoids the contact
    refused_everywhere(funnel, email="m1@v.example.com")
    refused_everywhere(funnel, email="m2@v.example.com")


def test_avoiding_twice_or_without_history_changes_nothing_more(funnel: Funnel) -> None:
    lead = funnel.add(Lead(first_name="D", email="d1@u.example.com"))
    avoided = funnel.avoid(lead)
    assert funnel.avoid(avoided) == avoided
    refused_everywhere(funnel, email="d1@u.example.com")
    assert funnel.add(Lead(email="d2@u.example.com")).email == "d2@u.example.com"


# --- erasure -------------------------------------------------------------------------


def test_erasure_suppresses_the_keys_the_person_edited_away(funnel: Funnel) -> None:
    lead = funnel.add(Lead(first_name="E", email="e1@w.example.com", phone="+15125550144"))
    lead = edit(funnel, lead, email="e2@w.example.com", phone=None)
    funnel.erase(lead)
    refused_everywhere(funnel, email="e1@w.example.com")
    refused_everywhere(funnel, phone="+15125550144")
    refused_everywhere(funnel, email="e2@w.example.com")
    assert all(DROPPED_KEYS not in e.data for e in funnel.history(lead))


def test_erasure_without_suppression_keeps_no_digest_of_old_keys(funnel: Funnel) -> None:
    lead = funnel.add(Lead(first_name="E", email="e1@w.example.com"))
    lead = edit(funnel, lead, email="e2@w.example.com")
    funnel.erase(lead, suppress=False)
    assert all(DROPPED_KEYS not in e.data for e in funnel.history(lead))
    assert funnel.add(Lead(email="e1@w.example.com")).email == "e1@w.example.com"
    assert funnel.add(Lead(email="e2@w.example.com")).email == "e2@w.example.com"


# --- a key edited away while the person is being avoided ------------------------------


def _converted(funnel: Funnel, email: str) -> tuple[Lead, Contact, Any]:
    lead = funnel.add(Lead(**person(1, email=email, phone="+15125550177")))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    return funnel.get_lead(lead.id), funnel.get_contact(deal.contact_id), deal


def _edited_meanwhile(funnel: Funnel, record: Lead | Contact, **fields: Any) -> list[int]:
    """Another writer edits ``record`` just before the next commit, once."""
    other = Funnel(funnel.repository, clock=funnel.clock)
    real = funnel.repository.commit
    done: list[int] = []

    def commit(changes: ChangeSet) -> list[Event]:
        if not done:
            done.append(1)
            edit(other, record, **fields)
        return real(changes)

    funnel.repository.commit = commit  # type: ignore[method-assign]
    return done


@pytest.mark.parametrize("how", ["avoid the contact", "lose the deal for avoid"])
def test_the_other_self_edited_meanwhile_is_read_again_and_every_key_avoided(
    funnel: Funnel, how: str
) -> None:
    """The lead a contact came from is read, not changed, when the contact is avoided:
    an edit of it committed meanwhile fails the change, which is retried on what is
    stored then. A converted lead's keys are its contact's: they are edited there (the
    lead refuses them), and the keys the contact edited away are avoided too."""
    lead, contact, deal = _converted(funnel, "n1@v.example.com")
    with pytest.raises(InvalidArgumentError, match="change email there"):
        edit(funnel, lead, email="n2@v.example.com")
    edit(funnel, contact, email="n2@v.example.com")  # n1 edited away, on the contact
    raced = _edited_meanwhile(funnel, lead, industry="Dental")
    if how == "avoid the contact":
        funnel.avoid(contact.id)
    else:
        funnel.lose(deal, reason="avoid")
    assert raced == [1]
    assert funnel.get_lead(lead.id).industry == "Dental"  # the other writer's edit stands
    refused_everywhere(funnel, email="n2@v.example.com")
    refused_everywhere(funnel, email="n1@v.example.com")
