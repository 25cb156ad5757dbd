"""Records that triggers make or move are validated as the application's registered
classes: a change the class refuses is refused before anything is committed (so no
store holds a record it cannot read back), what the class derives is what every store
returns, and ``win(amount=)`` reads the amount as the registered class's field."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import pytest
from pydantic import Field, model_validator

from leadfunnel import (
    ConfigError,
    Contact,
    ContactType,
    Funnel,
    InvalidArgumentError,
    InvalidTransitionError,
    Lead,
    LeadStatus,
    Opportunity,
    Repository,
    Stage,
)
from leadfunnel.testing import ManualClock

_PROBABILITY = {
    "appointment_set": 10,
    "appointment_sat": 30,
    "proposing": 50,
    "contract_sent": 80,
    "won": 100,
    "lost": 0,
}


class PoDeal(Opportunity):
    po_number: str | None = None

    @model_validator(mode="after")
    def _won_needs_a_po(self) -> PoDeal:
        if self.stage is Stage.WON and not self.po_number:
            raise ValueError("a won deal needs a po_number")
        return self


class PipelineDeal(Opportunity):
    pipeline: str  # required, no default: set_appointment could never fill it


class ScoredDeal(Opportunity):
    probability: int = 0

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        if isinstance(data, dict) and "stage" in data:
            stage = str(getattr(data["stage"], "value", data["stage"]))
            data = {**data, "probability": _PROBABILITY[stage]}
        return data


class BigDeal(Opportunity):
    amount: Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=4)] | None = None


class OwnedLead(Lead):
    @model_validator(mode="after")
    def _qualified_needs_an_owner(self) -> OwnedLead:
        if self.status is LeadStatus.QUALIFIED and not self.owner:
            raise ValueError("a qualified lead needs an owner")
        return self


class BilledContact(Contact):
    billing_email: str | None = None

    @model_validator(mode="after")
    def _client_needs_billing(self) -> BilledContact:
        if self.type is ContactType.CLIENT and not self.billing_email:
            raise ValueError("a client needs a billing_email")
        return self


def _proposing(funnel: Funnel[Lead, Contact, Opportunity], email: str) -> Opportunity:
    deal = funnel.set_appointment(funnel.add(Lead(email=email)), force=True)
    return funnel.propose(funnel.sit(deal))


def test_a_move_the_deal_class_refuses_is_refused_and_nothing_is_stored(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock, opportunity_model=PoDeal)
    deal = _proposing(funnel, "po@a.example.com")
    with pytest.raises(InvalidTransitionError) as refused:
        funnel.win(deal, force=True)
    message = str(refused.value)
    assert "PoDeal refuses the opportunity" in message
    assert "a won deal needs a po_number" in message
    assert "funnel.update()" in message  # what to do
    assert refused.value.trigger == "win"
    assert refused.value.state == "proposing"
    assert "po@a.example.com" not in message
    # Nothing committed: every read works, and says the deal is still proposing.
    assert funnel.get_opportunity(deal.id).stage is Stage.PROPOSING
    assert [d.stage for d in funnel.opportunities()] == [Stage.PROPOSING]
    assert funnel.get_contact(deal.contact_id).type is ContactType.PROSPECT
    assert [e.name for e in funnel.history(deal)][-1] == "propose"
    # Given what the class needs, the move goes through and reads back on every store.
    funnel.update(funnel.get_opportunity(deal.id).model_copy(update={"po_number": "PO-7"}))
    won = funnel.win(deal, force=True)
    assert (won.stage, won.po_number) == (Stage.WON, "PO-7")
    assert funnel.get_opportunity(deal.id) == won
    assert funnel.opportunities() == [won]


def test_a_deal_class_with_a_required_field_of_its_own_is_refused_when_registered(
    repository: Repository, clock: ManualClock
) -> None:
    with pytest.raises(ConfigError) as refused:
        Funnel(repository, clock=clock, opportunity_model=PipelineDeal)
    message = str(refused.value)
    assert "PipelineDeal.pipeline is required" in message
    assert "set_appointment()" in message
    assert "default" in message
    assert repository.models["opportunity"] is Opportunity  # the store was not retyped


def test_set_appointment_refuses_a_deal_class_registered_on_the_store_directly(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock)
    lead = funnel.add(Lead(email="pipe@a.example.com"))
    repository.use_models(opportunity=PipelineDeal)
    with pytest.raises(ConfigError, match=r"PipelineDeal\.pipeline is required"):
        funnel.set_appointment(lead, force=True)
    assert funnel.get_lead(lead.id).status is LeadStatus.RAW
    assert funnel.contacts() == []
    assert funnel.opportunities() == []


def test_what_a_before_validator_derives_is_what_every_store_returns(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock, opportunity_model=ScoredDeal)
    deal = funnel.set_appointment(funnel.add(Lead(email="s@a.example.com")), force=True)
    assert deal.probability == 10
    sat = funnel.sit(deal)
    assert sat.probability == 30
    assert funnel.get_opportunity(deal.id).probability == 30
    assert funnel.get_opportunity(deal.id) == sat
    lost = funnel.lose(sat, reason="price")
    assert lost.probability == 0
    assert [d.probability for d in funnel.opportunities()] == [0]


def test_a_lead_move_its_class_refuses_is_refused(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock, lead_model=OwnedLead)
    lead = funnel.add(OwnedLead(email="o@a.example.com"))
    with pytest.raises(InvalidTransitionError) as refused:
        funnel.qualify(lead, force=True)
    assert "OwnedLead refuses the lead" in str(refused.value)
    assert "a qualified lead needs an owner" in str(refused.value)
    assert refused.value.trigger == "qualify"
    assert funnel.get_lead(lead.id).status is LeadStatus.RAW
    assert [e.name for e in funnel.history(lead)] == ["add"]
    owned = funnel.update(funnel.get_lead(lead.id).model_copy(update={"owner": "ann"}))
    assert funnel.qualify(owned, force=True).qualified
    assert funnel.get_lead(lead.id).status is LeadStatus.QUALIFIED


def test_a_contact_move_its_class_refuses_refuses_the_deal_s_move_too(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock, contact_model=BilledContact)
    deal = _proposing(funnel, "b@a.example.com")
    with pytest.raises(InvalidTransitionError) as refused:
        funnel.win(deal, force=True)
    assert "BilledContact refuses the contact" in str(refused.value)
    assert refused.value.subject == "contact"
    assert funnel.get_opportunity(deal.id).stage is Stage.PROPOSING
    contact = funnel.get_contact(deal.contact_id)
    assert contact.type is ContactType.PROSPECT
    funnel.update(contact.model_copy(update={"billing_email": "pay@a.example.com"}))
    assert funnel.win(deal, force=True).stage is Stage.WON
    assert funnel.get_contact(deal.contact_id).type is ContactType.CLIENT


def test_win_reads_the_amount_as_the_registered_deal_class_does(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock, opportunity_model=BigDeal)
    deal = _proposing(funnel, "big@a.example.com")
    won = funnel.win(deal, force=True, amount="1234.5678")
    assert won.amount == Decimal("1234.5678")
    assert funnel.get_opportunity(deal.id).amount == Decimal("1234.5678")
    other = _proposing(funnel, "big2@a.example.com")
    with pytest.raises(InvalidArgumentError, match=r"BigDeal\.amount accepts"):
        funnel.win(other, force=True, amount="1.23456")
    assert funnel.get_opportunity(other.id).stage is Stage.PROPOSING


def test_leadfunnel_s_own_deal_class_still_takes_two_decimals(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock)
    deal = _proposing(funnel, "own@a.example.com")
    with pytest.raises(InvalidArgumentError, match="at most two decimal places"):
        funnel.win(deal, force=True, amount="1234.5678")
    assert funnel.win(deal, force=True, amount="1234.56").amount == Decimal("1234.56")


def test_leadfunnel_s_own_classes_are_not_validated_again() -> None:
    from leadfunnel._changes import bump, registered

    # The hot paths (qualify_all, imports) move leadfunnel's own records as they are.
    lead = Lead(email="fast@a.example.com")
    assert registered(lead, "qualify", lead) is lead
    moved = bump(lead, lead.updated_at, notes="x")
    assert type(moved) is Lead
    assert moved.notes == "x"
    assert moved.version == lead.version + 1
