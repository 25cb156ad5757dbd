"""Rows ``import_leads``, ``add`` and ``capture`` refuse: fields only the funnel sets, a
row that is not a mapping, bad arguments (found by a user audit of imports)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from leadfunnel import Contact, Funnel, InvalidArgumentError, Lead, LeadStatus

WHEN = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value", "setter"),
    [
        ("erased_at", WHEN, "erase()"),
        ("contact_id", uuid4(), "set_appointment()"),
        ("profile", "msp-owner", "qualify()"),
    ],
)
def test_an_imported_lead_row_cannot_set_what_the_funnel_keeps(
    field: str, value: Any, setter: str
) -> None:
    funnel = Funnel()
    report = funnel.import_leads(
        [{"email": "eve@example.com", "first_name": "Eve", field: value}, {"email": "ok@x.co"}]
    )
    assert [issue.row for issue in report.rejected] == [1]
    assert field in report.rejected[0].reason
    assert setter in report.rejected[0].reason
    assert len(report.added) == 1
    # Nothing of the refused row is stored, so the person is new to a later import.
    assert funnel.find(email="eve@example.com") is None
    again = funnel.import_leads([{"email": "eve@example.com", "first_name": "Eve"}])
    assert len(again.added) == 1
    stored = funnel.get_lead(again.added[0])
    assert (stored.erased_at, stored.contact_id, stored.profile) == (None, None, None)


def test_an_imported_contact_row_cannot_set_its_lead_or_erasure() -> None:
    funnel = Funnel()
    report = funnel.import_leads(
        [
            {"email": "a@x.co", "type": "client", "lead_id": str(uuid4())},
            {"email": "b@x.co", "type": "client", "erased_at": WHEN},
            Contact(email="c@x.co", lead_id=uuid4()),
        ]
    )
    assert [issue.row for issue in report.rejected] == [1, 2, 3]
    assert "lead_id" in report.rejected[0].reason
    assert "erased_at" in report.rejected[1].reason
    assert funnel.count("contact") == 0


def test_a_lead_object_that_claims_to_be_erased_is_refused_by_every_entry() -> None:
    funnel = Funnel()
    erased = Lead(email="eve@example.com", first_name="Eve", erased_at=WHEN)
    assert [i.row for i in funnel.import_leads([erased]).rejected] == [1]
    with pytest.raises(InvalidArgumentError, match="erased_at by erase"):
        funnel.add(erased)
    with pytest.raises(InvalidArgumentError, match="erased_at by erase"):
        funnel.capture(erased)
    converted = Lead(email="p@x.co", contact_id=uuid4())
    with pytest.raises(InvalidArgumentError, match="contact_id"):
        funnel.add(converted)
    assert funnel.count("lead") == 0


def test_capture_of_a_known_person_with_a_kept_field_is_refused_before_anything() -> None:
    funnel = Funnel()
    known = funnel.add(Lead(email="k@x.co"))
    with pytest.raises(InvalidArgumentError, match="profile"):
        funnel.capture(Lead(email="k@x.co", profile="msp-owner"))
    assert funnel.get_lead(known.id).version == known.version


@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_a_row_that_is_not_a_mapping_is_rejected_alone_however_rows_are_chunked(
    chunk_size: int | None,
) -> None:
    funnel = Funnel()
    rows: list[Any] = [{"email": "a@x.co"}, None, ["email", "b@x.co"], {"email": "c@x.co"}]
    report = funnel.import_leads(rows, chunk_size=chunk_size)
    assert [i.row for i in report.rejected] == [2, 3]
    assert "not NoneType" in report.rejected[0].reason
    assert "not list" in report.rejected[1].reason
    assert len(report.added) == 2


@pytest.mark.parametrize("status", ["bogus", "Raw", 3])
def test_a_status_that_is_no_lead_status_is_an_argument_error_listing_them(status: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="suspect, farm_list, raw"):
        Funnel().import_leads([{"email": "a@x.co"}], status=status)


def test_a_row_whose_id_is_stored_is_rejected_saying_so() -> None:
    funnel = Funnel()
    stored = funnel.add(Lead(email="a@x.co"))
    report = funnel.import_leads([{"id": str(stored.id), "email": "b@x.co"}])
    assert [i.row for i in report.rejected] == [1]
    assert report.rejected[0].reason.startswith(f"id {stored.id} is already stored")
    assert funnel.get_lead(stored.id).status is LeadStatus.RAW


def test_an_erased_person_without_personal_data_may_be_stored() -> None:
    # As erase() leaves one (the testing toolkit draws such people): nothing to erase.
    funnel = Funnel()
    husk = Lead(company=None, first_name=None, erased_at=WHEN, industry="Retail")
    stored = funnel.add(husk)
    assert funnel.get_lead(stored.id).erased_at == WHEN
    report = funnel.import_leads([{"erased_at": WHEN, "industry": "Retail"}])
    assert len(report.added) == 1
    with pytest.raises(InvalidArgumentError, match=r"personal data \(first_name\)"):
        funnel.add(Lead(first_name="Eve", erased_at=WHEN))


def test_a_row_matching_an_avoided_person_by_any_key_is_avoided(funnel: Funnel) -> None:
    """add() refuses a person whose phone is avoided though their e-mail is someone
    else's: the import reports the row as avoided too, not as a duplicate of the other
    (acting on duplicates could bring the avoided phone back into use)."""
    known = funnel.add(Lead(first_name="Known", email="known@x.example.org"))
    stop = funnel.add(Lead(first_name="Stop", phone="+1 512 555 0188"))
    funnel.avoid(stop)
    row = {"first_name": "Z", "email": "known@x.example.org", "phone": "512-555-0188"}
    report = funnel.import_leads([row])
    assert [(i.row, i.existing_id) for i in report.avoided] == [(1, stop.id)]
    assert report.duplicates == []
    assert report.added == []
    assert known.id != stop.id


def test_a_row_repeating_an_avoid_row_of_the_same_import_is_avoided(funnel: Funnel) -> None:
    rows = [
        {"first_name": "Stop", "phone": "+1 512 555 0177", "status": "avoid"},
        {"first_name": "Known", "email": "known@y.example.org"},
        {"first_name": "Z", "email": "known@y.example.org", "phone": "512-555-0177"},
    ]
    report = funnel.import_leads(rows)
    assert [i.row for i in report.avoided] == [3]
    assert report.duplicates == []
    assert len(report.added) == 2
