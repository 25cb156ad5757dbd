"""An erasure or a merge is refused at commit, and read again, when the person's
touches, events or deals changed after it read them (DESIGN 12: every change commits
only if what it read is unchanged; DESIGN 13: nothing of an erased person remains; 4:
a merge moves everything of the merged-away record). Each test commits the touch,
capture or booking between the erasure's or merge's reads and its commit, which
changes no version the commit checks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import person
from leadfunnel import Contact, Funnel, Lead, NotFoundError, Stage
from leadfunnel.storage import ChangeSet
from test_races_suppression import before_commit

NOTE = "Zebulon asked for Tuesday"


def erasing(changes: ChangeSet) -> bool:
    return any(e.name == "erase" for e in changes.events)


def merging(changes: ChangeSet) -> bool:
    return changes.add_merge is not None


def left_of(funnel: Funnel, subject: Lead | Contact, text: str) -> bool:
    return text.casefold() in json.dumps(funnel.export_person(subject.id), default=str).casefold()


# --- erase ----------------------------------------------------------------------------


def test_an_erasure_racing_a_touch_scrubs_its_note(funnel: Funnel) -> None:
    pat = funnel.add(Lead(**person(1)))
    before_commit(funnel, erasing, lambda: funnel.touch(pat, "call", "no_answer", note=NOTE))
    funnel.erase(pat)
    (logged,) = funnel.touches(pat.id)
    assert logged.note is None
    assert not left_of(funnel, pat, "Zebulon")


def test_an_erasure_racing_a_capture_scrubs_its_reason(funnel: Funnel) -> None:
    pat = funnel.add(Lead(**person(1)))
    capture = Lead(first_name="Pat1", email=pat.email)
    before_commit(funnel, erasing, lambda: funnel.capture(capture, reason=NOTE))
    funnel.erase(pat)
    names = [e.name for e in funnel.history(pat.id)]
    assert names == ["add", "capture", "erase"]
    assert all(e.reason is None for e in funnel.history(pat.id))
    assert not left_of(funnel, pat, "Zebulon")


def test_an_erasure_racing_a_booking_loses_that_deal_too(funnel: Funnel) -> None:
    sam = funnel.add(Contact(first_name="Sam", last_name="Chen", email="sam@client.example.com"))
    funnel.set_appointment(sam)
    before_commit(funnel, erasing, lambda: funnel.set_appointment(sam, reason=NOTE))
    funnel.erase(sam)
    deals = funnel.opportunities(contact_id=sam.id)
    assert len(deals) == 2
    assert all(d.stage is Stage.LOST for d in deals)
    assert not left_of(funnel, sam, "Zebulon")


# --- merge ----------------------------------------------------------------------------


def pair(funnel: Funnel, model: type[Lead] | type[Contact] = Lead) -> tuple[Any, Any]:
    keep = funnel.add(model(first_name="Ann", last_name="Lee", email="ann@acme.example.com"))
    other = funnel.add(model(first_name="Ann", last_name="Lee", phone="+15125550000"))
    return keep, other


def nothing_points_at(funnel: Funnel, gone: Lead | Contact) -> None:
    with pytest.raises(NotFoundError):
        funnel.get(gone.id)
    assert funnel.touches(gone.id) == []
    assert funnel.history(gone.id) == []
    assert funnel.opportunities(contact_id=gone.id) == []
    assert funnel.repository.opportunities(lead_id=gone.id) == []


def test_a_merge_racing_a_touch_on_the_merged_away_record_moves_it(funnel: Funnel) -> None:
    keep, other = pair(funnel)
    before_commit(funnel, merging, lambda: funnel.touch(other, "call", "no_answer", note=NOTE))
    funnel.merge(keep, other)
    nothing_points_at(funnel, other)
    assert [t.note for t in funnel.touches(keep.id)] == [NOTE]
    # So erasing the person scrubs it.
    funnel.erase(keep)
    assert [t.note for t in funnel.touches(keep.id)] == [None]
    assert not left_of(funnel, keep, "Zebulon")


def test_a_merge_racing_a_capture_of_the_merged_away_record_moves_its_event(
    funnel: Funnel,
) -> None:
    keep, other = pair(funnel)
    capture = Lead(first_name="Ann", phone="+15125550000")
    before_commit(funnel, merging, lambda: funnel.capture(capture, reason=NOTE))
    funnel.merge(keep, other)
    nothing_points_at(funnel, other)
    assert "capture" in [e.name for e in funnel.history(keep.id)]


def test_a_merge_racing_a_booking_on_the_merged_away_contact_moves_the_deal(
    funnel: Funnel,
) -> None:
    keep, other = pair(funnel, Contact)
    booked: list[Any] = []
    before_commit(funnel, merging, lambda: booked.append(funnel.set_appointment(other)))
    funnel.merge(keep, other)
    nothing_points_at(funnel, other)
    assert [d.id for d in funnel.opportunities(contact_id=keep.id)] == [booked[0].id]
