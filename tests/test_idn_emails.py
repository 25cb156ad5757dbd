"""An e-mail whose domain has international letters is one mailbox however its domain is
spelt: in Unicode (``bücher.example.com``) or in its ASCII form (``xn--bcher-kva...``,
as some CRMs export it). Dedupe, the avoid list and erasure see one person (found by a
privacy audit: an avoided person came back in the other spelling)."""

from __future__ import annotations

import pytest

from leadfunnel import AvoidListedError, DuplicateError, Funnel, Lead, Repository
from leadfunnel.testing import ManualClock

UNICODE = "ida@bücher.example.com"
ASCII = "ida@xn--bcher-kva.example.com"


def test_an_international_domain_gives_both_spellings_the_written_one_first() -> None:
    from leadfunnel._models import email_keys

    assert email_keys(UNICODE) == (f"email:{UNICODE}", f"email:{ASCII}")
    assert email_keys(ASCII) == (f"email:{ASCII}", f"email:{UNICODE}")
    assert email_keys("Ida@BÜCHER.example.com") == (f"email:{UNICODE}", f"email:{ASCII}")
    assert email_keys("pat@acme.example.com") == ("email:pat@acme.example.com",)
    assert email_keys("Pat@Acme.example.com") == ("email:pat@acme.example.com",)


def test_other_emails_give_both_spellings_too() -> None:
    lead = Lead(email="pat@acme.example.com", other_emails={ASCII})
    assert Lead.model_validate(lead.model_dump()).other_emails == {ASCII}
    from leadfunnel.storage import identity_keys

    assert identity_keys(lead) == (
        "email:pat@acme.example.com",
        f"email:{ASCII}",
        f"email:{UNICODE}",
    )


@pytest.mark.parametrize(("first", "then"), [(UNICODE, ASCII), (ASCII, UNICODE)])
def test_the_other_spelling_is_a_duplicate(
    repository: Repository, clock: ManualClock, first: str, then: str
) -> None:
    funnel = Funnel(repository, clock=clock)
    stored = funnel.capture(Lead(first_name="Ida", email=first))
    with pytest.raises(DuplicateError) as raised:
        funnel.add(Lead(email=then))
    assert raised.value.existing_id == stored.id
    found = funnel.find(email=then)
    assert found is not None
    assert found.id == stored.id


@pytest.mark.parametrize(("first", "then"), [(UNICODE, ASCII), (ASCII, UNICODE)])
def test_an_avoided_or_erased_person_does_not_come_back_in_the_other_spelling(
    repository: Repository, clock: ManualClock, first: str, then: str
) -> None:
    funnel = Funnel(repository, clock=clock)
    funnel.avoid(funnel.add(Lead(first_name="Ida", email=first)))
    with pytest.raises(AvoidListedError):
        funnel.capture(Lead(email=then))
    erased = funnel.add(Lead(first_name="Ira", email=first.replace("ida", "ira")))
    funnel.erase(erased)
    with pytest.raises(AvoidListedError):
        funnel.add(Lead(email=then.replace("ida", "ira")))
    report = funnel.import_leads([{"email": then}, {"email": then.replace("ida", "ira")}])
    assert report.added == []
    assert len(report.avoided) == 2
