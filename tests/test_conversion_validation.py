"""A conversion builds the application's contact model from the lead's fields: the
custom fields both declare are validated as the contact model says (another type, a
tighter bound, its own validators), or the conversion is refused and nothing stored."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import Field, field_validator

from leadfunnel import ConfigError, Contact, Funnel, Lead, LeadStatus, Repository
from leadfunnel.testing import ManualClock


class StrictLead(Lead):
    endpoints: int | None = None
    code: str | None = None


class StrictContact(Contact):
    endpoints: date | None = None
    code: str | None = Field(None, max_length=3)


class ShoutingContact(Contact):
    code: str | None = None

    @field_validator("code")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


def test_a_custom_field_the_contact_model_does_not_accept_refuses_the_conversion(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock, lead_model=StrictLead, contact_model=StrictContact)
    lead = funnel.add(StrictLead(email="c@a.example.com", endpoints=40, code="TOOLONG"))
    funnel.qualify(lead, force=True)
    with pytest.raises(ConfigError) as refused:
        funnel.set_appointment(lead)
    message = str(refused.value)
    assert "cannot become a StrictContact" in message
    assert "endpoints" in message
    assert "code" in message
    assert "TOOLONG" not in message  # values may be personal data
    assert funnel.get_lead(lead.id).status is LeadStatus.QUALIFIED
    assert funnel.contacts() == []  # nothing stored, every listing still reads
    assert funnel.opportunities() == []


def test_the_contact_model_s_own_validators_run_on_a_conversion(
    repository: Repository, clock: ManualClock
) -> None:
    class CodedLead(Lead):
        code: str | None = None

    funnel = Funnel(repository, clock=clock, lead_model=CodedLead, contact_model=ShoutingContact)
    lead = funnel.add(CodedLead(email="s@a.example.com", code="abc"))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    contact = funnel.get_contact(deal.contact_id)
    assert isinstance(contact, ShoutingContact)
    assert contact.code == "ABC"
