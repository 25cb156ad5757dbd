"""Bad input from a typed application (an audit of the public API, 2026-11-29): every
mistake below was a plain ValueError or TypeError, an AttributeError from deep inside,
or silently wrong; each is now a LeadFunnelError saying what to give instead."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import pytest

from conftest import person
from leadfunnel import (
    FREE_MAIL_DOMAINS,
    ConfigError,
    Contact,
    Funnel,
    InvalidArgumentError,
    Lead,
    Opportunity,
)


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda f: f.qualify_all(status="nope"), "status='nope' is not a LeadStatus; use one of"),
        (lambda f: f.qualify_all(page_size="x"), "page_size='x': give a whole number"),
        (lambda f: f.qualify_all(page_size=True), "page_size=True: give a whole number"),
        (lambda f: f.report().required_for(wins=-1), "wins=-1: give a whole number"),
        (lambda f: f.add(Opportunity(contact_id=uuid4())), "add takes a Lead or a Contact"),
        (
            lambda f: f.capture(Contact(**person(9))),
            "capture takes the response as a Lead, not Contact",
        ),
        (lambda f: f.similar(f.add(Lead(**person(1))), limit="2"), "limit='2'"),
        (lambda f: f.similar(f.add(Lead(**person(1))), limit=-1), "limit=-1"),
    ],
)
def test_a_wrong_argument_is_an_invalid_argument_error(
    funnel: Funnel, call: Callable[[Funnel], object], says: str
) -> None:
    before = funnel.events(limit=None)
    with pytest.raises(InvalidArgumentError, match=says):
        call(funnel)
    assert [e.name for e in funnel.events(limit=None)] == [e.name for e in before] + (
        ["add"] if "similar" in says or "limit" in says else []
    )


def test_similar_with_a_limit_returns_that_many(funnel: Funnel) -> None:
    """``limit=-1`` cut the last candidate off (a slice); ``limit=0`` gives none."""
    lead = funnel.add(Lead(**person(1, email="pat@acme.example.com")))
    for n in (2, 3):
        funnel.add(Lead(**person(n, email=f"pat{n}@acme.example.com", company="Acme IT 1")))
    assert len(funnel.similar(lead)) == 2
    assert len(funnel.similar(lead, limit=1)) == 1
    assert funnel.similar(lead, limit=0) == []


@pytest.mark.parametrize("domains", ["gmail.com", ["gmail.com", ""], ["gmail.com", 7]])
def test_free_mail_domains_must_be_a_list_of_domains(domains: object) -> None:
    """One text was read as its letters: ``"gmail.com"`` made every domain containing
    a ``g`` a free-mail one, and two gmail users a likely duplicate."""
    with pytest.raises(ConfigError, match=r"free_mail_domains=.*give a list of domain names"):
        Funnel(free_mail_domains=domains)  # type: ignore[arg-type]


def test_free_mail_domains_extend_the_default_list(funnel: Funnel) -> None:
    crm = Funnel(funnel.repository, free_mail_domains=FREE_MAIL_DOMAINS | {" Mail.Example.NET "})
    assert "mail.example.net" in crm.free_mail_domains
    assert "gmail.com" in crm.free_mail_domains
    a = crm.add(Lead(first_name="Ann", last_name="Li", email="ann@mail.example.net"))
    crm.add(Lead(first_name="Bo", last_name="Ek", email="bo@mail.example.net"))
    assert crm.similar(a) == []  # a shared free-mail domain is no clue
