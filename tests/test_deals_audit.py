"""Found by an audit of the deal pipeline as mature CRMs' test suites probe theirs: a
deal booked while its contact is avoided, a booking dated before its contact, a deal
booked during a merge after the merge is undone, custom contact fields named like a
lead's, and report money with more places or digits than leadfunnel's own amounts."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

import pytest
from pydantic import Field

from conftest import T0
from leadfunnel import (
    Contact,
    Funnel,
    Interest,
    InvalidArgumentError,
    Lead,
    LostReason,
    Opportunity,
    Repository,
    Stage,
)
from leadfunnel.testing import ManualClock


def _book_during_the_read(funnel: Funnel, contact: Contact, monkeypatch: Any) -> list[Any]:
    """Make the funnel's first read of ``contact``'s deals let another user book one on
    it, as if they committed between the read and the commit. The deals booked so."""
    repository = funnel.repository
    read = repository.opportunities
    booked: list[Any] = []

    def racing(**filters: Any) -> list[Any]:
        found = read(**filters)
        if filters.get("contact_id") == contact.id and not booked:
            other = Funnel(repository, clock=ManualClock(T0 + timedelta(hours=1)))
            booked.append(other.set_appointment(contact, setter="racer"))
        return found

    monkeypatch.setattr(repository, "opportunities", racing)
    return booked


@pytest.mark.parametrize("how", ["avoid", "lose", "import"])
def test_a_deal_booked_while_its_contact_is_avoided_is_closed_too(
    repository: Repository, clock: ManualClock, monkeypatch: Any, how: str
) -> None:
    funnel = Funnel(repository, clock=clock)
    person = funnel.add(Contact(email="kim@k.example.com"))
    first = funnel.set_appointment(person)
    clock.advance(hours=2)
    booked = _book_during_the_read(funnel, person, monkeypatch)
    if how == "avoid":
        funnel.avoid(person)
    elif how == "import":  # a do-not-contact list naming the person
        report = funnel.import_leads([{"email": "kim@k.example.com"}], status="avoid")
        assert [issue.reason for issue in report.rejected] == []
    else:
        funnel.lose(first, reason="avoid")
    assert booked, "the race was not staged"
    monkeypatch.undo()
    deals = funnel.opportunities(contact_id=person.id)
    assert len(deals) == 2
    assert all(d.stage is Stage.LOST and d.lost_reason is LostReason.AVOID for d in deals)
    assert funnel.report().open_deals == 0


def test_a_booking_on_a_contact_is_not_dated_before_the_contact(funnel: Funnel) -> None:
    lead = funnel.add(Lead(email="x@y.example.com"))
    funnel.qualify(lead, force=True)
    contact = funnel.get_contact(funnel.set_appointment(lead).contact_id)
    with pytest.raises(InvalidArgumentError, match=r"before contact .* was created"):
        funnel.set_appointment(contact, at=T0 - timedelta(days=30))
    assert len(funnel.opportunities(contact_id=contact.id)) == 1
    assert funnel.report().time_in_stage["qualified"].median_days == 0


def test_a_deal_booked_during_a_merge_is_the_kept_persons_after_the_unmerge(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock)
    kept = funnel.add(Contact(email="k@k.example.com", source="fair"))
    lead = funnel.add(Lead(email="l@l.example.com", source="web"))
    funnel.qualify(lead, force=True)
    other = funnel.set_appointment(lead).contact_id
    clock.advance(hours=1)
    funnel.merge(kept, other)  # kept takes the other's lead
    clock.advance(hours=1)
    booked = funnel.set_appointment(kept)
    assert booked.lead_id == lead.id
    clock.advance(hours=1)
    restored = funnel.unmerge(kept)
    deal = funnel.get_opportunity(booked.id)
    assert (deal.contact_id, deal.lead_id) == (kept.id, restored.lead_id)
    assert restored.lead_id is None
    assert [d.contact_id for d in funnel.opportunities(lead_id=lead.id)] == [other]
    assert funnel.history(deal)[-1].name == "unmerge"
    by_source = funnel.report(by="source").groups
    assert by_source["fair"].steps["appointment_set"].count == 1


class _CampaignLead(Lead):
    endpoints: int | None = None


class _CampaignContact(Contact):
    endpoints: int | None = None
    campaign: str | None = None
    needs: frozenset[str] = frozenset()
    interest: Interest | None = None
    status: str | None = None  # a field of the contact's own: never the lead's status


def test_a_conversion_copies_contact_fields_named_like_a_leads_own(funnel: Funnel) -> None:
    custom = Funnel(funnel.repository, lead_model=_CampaignLead, contact_model=_CampaignContact)
    lead = custom.add(
        _CampaignLead(
            email="a@b.example.com",
            endpoints=40,
            campaign="spring",
            needs={"backup"},
            interest="high",
        )
    )
    custom.qualify(lead, force=True)
    contact = custom.get_contact(custom.set_appointment(lead).contact_id)
    assert isinstance(contact, _CampaignContact)
    assert (contact.endpoints, contact.campaign) == (40, "spring")
    assert (contact.needs, contact.interest) == (frozenset({"backup"}), Interest.HIGH)
    assert contact.status is None


class _FineDeal(Opportunity):
    amount: Annotated[Decimal, Field(ge=0, max_digits=40, decimal_places=4)] | None = None


def _won(funnel: Funnel, n: int, amount: str) -> None:
    contact = funnel.add(Contact(email=f"k{n}@k.example.com"))
    deal = funnel.set_appointment(contact)
    for step in (funnel.sit, funnel.propose, funnel.send_contract):
        deal = step(deal)
    funnel.win(deal, amount=amount)


def test_report_money_is_exact_for_amounts_with_more_places_or_digits(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock, opportunity_model=_FineDeal)
    amounts = ["12.3456", "0.0049", "123456789012345678901234567890.25"]
    for n, amount in enumerate(amounts):
        _won(funnel, n, amount)
    report = funnel.report()
    exact = Decimal("123456789012345678901234567902.6005")
    assert report.won_revenue == exact
    assert json.loads(report.to_json())["won_revenue"] == str(exact)
    assert "123,456,789,012,345,678,901,234,567,902.6005" in str(report)


def test_a_comparisons_revenue_change_is_exact_too(clock: ManualClock) -> None:
    funnel = Funnel(clock=clock, opportunity_model=_FineDeal)
    _won(funnel, 1, "1.00")
    clock.advance(days=10)
    _won(funnel, 2, "123456789012345678901234567891.50")
    comparison = funnel.compare(T0 + timedelta(days=5), T0 + timedelta(days=15))
    assert comparison.revenue_change == Decimal("123456789012345678901234567890.50")
    assert json.loads(comparison.to_json())["won_revenue"]["change"] == (
        "123456789012345678901234567890.50"
    )
