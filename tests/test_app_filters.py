"""Filters as a web application passes them from a query string: a value of the wrong
type is the caller's mistake (InvalidArgumentError), never a database failure, and a
page's total takes the filters its items take."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import person
from leadfunnel import Contact, Funnel, InvalidArgumentError, Lead, LeadFunnelError


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda f: f.leads(source=["web"]), "source"),
        (lambda f: f.leads(tag={"x"}), "tag"),
        (lambda f: f.leads(owner=("ana",)), "owner"),
        (lambda f: f.leads(owner=5), "owner"),
        (lambda f: f.contacts(source=["web"]), "source"),
        (lambda f: f.opportunities(setter=["sue"]), "setter"),
        (lambda f: f.count("lead", source=["web"]), "source"),
        (lambda f: f.count("contact", lead_id="garbage"), "lead_id"),
        (lambda f: f.contacts(lead_id="garbage"), "lead_id"),
        (lambda f: f.opportunities(lead_id=5), "lead_id"),
        (lambda f: f.due(owner=5), "owner"),
    ],
)
def test_a_filter_of_the_wrong_type_is_an_argument_error(
    funnel: Funnel, call: Any, name: str
) -> None:
    with pytest.raises(LeadFunnelError) as caught:
        call(funnel)
    assert isinstance(caught.value, InvalidArgumentError)
    assert str(caught.value).startswith(f"{name}=")


def test_contacts_and_deals_filter_by_their_lead_as_count_does(funnel: Funnel) -> None:
    lead = funnel.add(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    other = funnel.add(Contact(**person(2)))
    assert [c.id for c in funnel.contacts(lead_id=lead)] == [deal.contact_id]
    assert funnel.count("contact", lead_id=lead.id) == 1
    assert [d.id for d in funnel.opportunities(lead_id=str(lead.id))] == [deal.id]
    assert funnel.count("opportunity", lead_id=lead) == 1
    assert other.id not in [c.id for c in funnel.contacts(lead_id=lead)]
