"""What a review of a day's fixes found: an erasure must neither change a report already
made (a postcode equal to a year is no reason to scrub a rescheduled appointment's
times) nor be refused by the application's class (its validator wanting what the
erasure blanks); ``qualify_all(on_error=...)`` goes on past a lead the application's
class refuses as qualified; a cursor given an e-mail or a phone does not repeat it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import model_validator

from conftest import T0, pages_lose_races
from leadfunnel import (
    Funnel,
    InvalidArgumentError,
    InvalidTransitionError,
    Lead,
    LeadFunnelError,
    NotFoundError,
    QualificationEngine,
    Repository,
)
from leadfunnel.testing import ManualClock


def test_an_erasure_leaves_the_no_shows_already_counted(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock)
    lead = funnel.capture(Lead(email="ann@bondi.example.com", postal_code="2026", country="AU"))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead, appointment_at=T0 + timedelta(days=1))
    clock.advance(days=2)  # the appointment came and went: booked again
    funnel.reschedule(deal, appointment_at=T0 + timedelta(days=9))
    clock.advance(days=10)
    funnel.sit(deal)

    def figures() -> tuple[Any, int]:
        sat = funnel.report().checks["appointments_sat"].value
        return sat, len(repository.no_shows(now=clock.now()))

    before = figures()
    assert before == (0.5, 1)
    funnel.erase(lead)
    assert figures() == before
    (moved,) = [e for e in funnel.history(deal) if e.name == "reschedule"]
    assert moved.data["from"] == (T0 + timedelta(days=1)).isoformat()


class _Reachable(Lead):
    @model_validator(mode="after")
    def needs_a_way_to_reach(self) -> _Reachable:
        if self.email is None and self.phone is None:
            raise ValueError("a lead needs an e-mail or a phone")
        return self


def test_an_applications_class_never_stops_an_erasure(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock, lead_model=_Reachable)
    zoe = funnel.capture(_Reachable(email="zoe@example.com", first_name="Zoe"))
    done = funnel.erase(zoe)
    assert zoe.id in done.subject_ids
    read = funnel.get_lead(zoe.id)  # an erased record stays readable on every store
    assert (read.email, read.first_name, read.erased_at) == (None, None, clock.now())
    assert [lead.id for lead in funnel.leads()] == [zoe.id]


class _Budgeted(Lead):
    budget: int | None = None

    @model_validator(mode="after")
    def qualified_needs_budget(self) -> _Budgeted:
        if self.status == "qualified" and self.budget is None:
            raise ValueError("a qualified lead needs a budget")
        return self


def test_on_error_goes_on_past_a_lead_the_applications_class_refuses(
    repository: Repository, clock: ManualClock
) -> None:
    engine = QualificationEngine.from_dict(
        {"profiles": [{"name": "us", "rules": [{"rule": "geography", "countries": ["US"]}]}]}
    )
    funnel = Funnel(repository, clock=clock, engine=engine, lead_model=_Budgeted)
    leads = [
        funnel.capture(
            _Budgeted(email=f"p{i}@c{i}.example.com", country="US", budget=None if i == 2 else 10)
        )
        for i in range(5)
    ]
    failures: list[LeadFunnelError] = []
    counts = funnel.qualify_all(page_size=2, on_error=failures.append)
    assert counts == {"qualified": 4, "unqualified": 0, "waiting": 0, "skipped": 0, "failed": 1}
    assert [type(error) for error in failures] == [InvalidTransitionError]
    assert "budget" in str(failures[0])
    assert funnel.get_lead(leads[2].id).status == "raw"
    with pytest.raises(InvalidTransitionError):  # without on_error, the run stops
        funnel.qualify_all()


@pytest.mark.parametrize("given", ["zelda@example.com", "tel:+1 512 555 0177"])
def test_a_contact_detail_given_for_an_id_is_not_repeated(funnel: Funnel, given: str) -> None:
    with pytest.raises(InvalidArgumentError) as cursor:
        funnel.leads(after=given)
    with pytest.raises(NotFoundError) as subject:
        funnel.get(given)
    for error in (cursor.value, subject.value):
        assert "zelda" not in str(error)
        assert "555" not in str(error)
        assert "funnel.find(" in str(error)


def test_the_lead_by_lead_fallback_tells_a_refusal_from_a_move(
    repository: Repository, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page that keeps losing races is qualified lead by lead: there too, a lead the
    application's class refuses is ``failed`` (handed to ``on_error``), not ``skipped``
    as a lead that moved meanwhile is."""
    engine = QualificationEngine.from_dict(
        {"profiles": [{"name": "us", "rules": [{"rule": "geography", "countries": ["US"]}]}]}
    )
    funnel = Funnel(repository, clock=clock, engine=engine, lead_model=_Budgeted)
    for i in range(3):
        funnel.capture(
            _Budgeted(email=f"p{i}@c{i}.example.com", country="US", budget=None if i == 1 else 5)
        )
    pages_lose_races(repository, monkeypatch)
    failures: list[LeadFunnelError] = []
    counts = funnel.qualify_all(on_error=failures.append)
    assert counts == {"qualified": 2, "unqualified": 0, "waiting": 0, "skipped": 0, "failed": 1}
    assert [type(error) for error in failures] == [InvalidTransitionError]
