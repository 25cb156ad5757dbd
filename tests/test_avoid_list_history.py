"""The avoid list cannot be undone by editing (DESIGN.md section 12), on every backend.

An edit may not give a record a key on the suppression list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conftest import person
from leadfunnel import AvoidListedError, Contact, Funnel, Lead


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
