"""A known person's new message is not lost (a leftover of earlier audits): capture
fills only empty fields (DESIGN 4), so the response's notes, where the record had
notes of its own, went nowhere. The capture event keeps them; an erasure blanks them."""

from __future__ import annotations

from conftest import person
from leadfunnel import Funnel, Lead


def test_a_known_persons_new_message_is_kept_on_the_capture_event(funnel: Funnel) -> None:
    lead = funnel.add(Lead(**person(1, notes="Met at the Austin trade show")))
    again = funnel.capture_result(
        Lead(email=lead.email, notes="Please call me about backup for 40 seats")
    )
    assert again.record.notes == "Met at the Austin trade show"  # its own, kept
    assert again.event.data["notes"] == "Please call me about backup for 40 seats"
    assert funnel.history(lead)[-1].data["notes"] == "Please call me about backup for 40 seats"
    export = funnel.export_person(lead)
    assert "Please call me about backup for 40 seats" in str(export)


def test_notes_that_fill_the_record_or_repeat_it_are_not_copied(funnel: Funnel) -> None:
    empty = funnel.add(Lead(**person(1)))
    filled = funnel.capture_result(Lead(email=empty.email, notes="First message"))
    assert filled.record.notes == "First message"
    assert "notes" not in filled.event.data
    assert "notes" in filled.event.data["fields"]
    same = funnel.capture_result(Lead(email=empty.email, notes="First message"))
    assert "notes" not in same.event.data


def test_an_erasure_blanks_the_kept_message(funnel: Funnel) -> None:
    lead = funnel.add(Lead(**person(1, notes="Old note")))
    funnel.capture(Lead(email=lead.email, notes="Nothing here names me, but it is mine"))
    funnel.erase(lead)
    captures = [e for e in funnel.history(lead) if e.name == "capture"]
    assert [e.data.get("notes", "missing") for e in captures] == [None]
    assert "Nothing here names me" not in str(funnel.export_person(lead))
