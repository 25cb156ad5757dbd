"""Found by a web-CRM developer's audit of the application API: a page's cursor that
was merged away since, argument errors for malformed ids and filters, and a custom
field that would hide what leadfunnel uses."""

from __future__ import annotations

from typing import Any

import pytest

from leadfunnel import Funnel, InvalidArgumentError, Lead, NotFoundError, Repository
from leadfunnel.testing import ManualClock


def test_paging_goes_on_after_the_last_record_of_a_page_is_merged_away(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock)
    ids = []
    for n in range(6):
        ids.append(funnel.add(Lead(email=f"p{n}@x.example.com", company="Acme")).id)
        clock.advance(minutes=1)
    first = funnel.leads(limit=3)
    assert [lead.id for lead in first] == ids[:3]
    funnel.merge(ids[0], ids[2])  # a colleague merges the page's last lead away
    # A web client carries only the id between requests.
    rest = funnel.leads(after=str(ids[2]), limit=3)
    assert [lead.id for lead in rest] == ids[3:]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: f.leads(after="garbage"), "after='garbage' is not a record id"),
        (lambda f: f.opportunities(contact_id="nope"), "contact_id='nope' is not a record id"),
        (lambda f: f.count("opportunity", contact_id="nope"), "contact_id='nope'"),
        (lambda f: f.leads(where=[("a", 1)]), "give a mapping of field names"),
        (lambda f: f.count("lead", where="endpoints=2"), "give a mapping of field names"),
    ],
)
def test_a_malformed_id_or_filter_is_an_argument_error(call: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        call(Funnel())


@pytest.mark.parametrize(
    "text",
    [
        "01a22908-50f9-7000-825f-d0e42c4a2ef",  # a character short
        "01a22908-50f9-7000-825f-d0e42c4a2ef00",  # one too many
        "urn:uuid:01a22908-50f9-7000-825f-d0e42c4a2e",
    ],
)
def test_a_mistyped_id_is_said_to_be_one_not_an_email_or_a_phone(text: str) -> None:
    """Almost every mistyped UUID holds six digits in a row: it was taken for a phone
    (and not repeated, as personal data would not be). It is said to be an id that is
    not valid, repeated, with how many digits it has."""
    funnel = Funnel()
    with pytest.raises(NotFoundError, match="is not a valid record id") as err:
        funnel.get_lead(text)
    assert text in str(err.value)
    assert "e-mail or a phone" not in str(err.value)
    with pytest.raises(InvalidArgumentError, match=r"after='.*' is not a valid record id"):
        funnel.leads(after=text)
    # A phone is still kept out of the message.
    with pytest.raises(NotFoundError, match="e-mail or a phone") as err:
        funnel.get_lead("+1 (512) 555-0177")
    assert "555" not in str(err.value)


def test_an_unknown_but_well_formed_cursor_id_is_still_said_to_be_unknown() -> None:
    with pytest.raises(InvalidArgumentError, match="no such record"):
        Funnel().leads(after="01a22571-8552-7003-bfb3-3985b9d2c15b")


def test_a_custom_field_that_hides_what_leadfunnel_uses_is_refused() -> None:
    with pytest.warns(UserWarning, match="shadows"):  # pydantic's own warning

        class KindLead(Lead):
            kind: str | None = None  # type: ignore[assignment,misc]

    with pytest.raises(InvalidArgumentError, match="'kind', which hides"):
        Funnel(lead_model=KindLead)


def test_update_refuses_to_edit_the_creation_date(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock)
    lead = funnel.add(Lead(email="c@x.example.com"))
    moved = lead.model_copy(update={"created_at": lead.created_at.replace(year=2001)})
    with pytest.raises(InvalidArgumentError, match="created_at is when the record came to be"):
        funnel.update(moved)
    assert funnel.get_lead(lead.id).created_at == lead.created_at
    # An edit of anything else on the same copy still works.
    assert funnel.update(lead.model_copy(update={"notes": "hi"})).notes == "hi"


def test_a_contact_record_filters_its_deals_as_its_id_does(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock)
    lead = funnel.add(Lead(email="d@x.example.com"))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    contact = funnel.get_contact(deal.contact_id)
    assert [d.id for d in funnel.opportunities(contact_id=contact)] == [deal.id]  # type: ignore[arg-type]
    assert funnel.count("opportunity", contact_id=contact) == 1
