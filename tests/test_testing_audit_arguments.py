"""leadfunnel.testing refuses arguments that would make it test something else than
asked (audit of the testing toolkit): a strategy's misspelt keyword, unknown ``keys``,
status or type, when the strategy is made; a bare string of names and a count that is
no int in the assertions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from pydantic import Field

from leadfunnel import Contact, Funnel, InvalidArgumentError, Lead, LeadStatus
from leadfunnel.testing import (
    ManualClock,
    assert_due,
    assert_history,
    assert_passed_through,
    assert_report_counts,
    contacts,
    leads,
)

# --- the strategies check their arguments when they are made ----------------------

# Untyped, for the arguments their signatures refuse to a type checker.
_leads: Any = leads
_contacts: Any = contacts


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: leads(compnay="Acme"), ["compnay", "did you mean 'company'", "status", "keys"]),
        (lambda: contacts(ownr="ann"), ["ownr", "did you mean 'owner'", "type"]),
        (lambda: contacts(status="raw"), ["status", "no field of Contact", "type"]),
        (lambda: leads(type="client"), ["type", "no field of Lead"]),
        (lambda: _leads(keys="mail"), ["keys='mail'", "both", "email", "phone", "none"]),
        (lambda: _contacts(keys="neither"), ["keys='neither'", "both", "email", "phone", "none"]),
        (
            lambda: leads(status="qualifed"),
            ["status='qualifed'", *(s.value for s in LeadStatus)],
        ),
        (
            lambda: contacts(type="vendor"),
            ["type='vendor'", "prospect", "client", "supplier", "partner", "other"],
        ),
        (lambda: _leads(missing="no"), ["missing='no'", "True", "False"]),
    ],
)
def test_a_bad_argument_is_refused_when_the_strategy_is_made(make: Any, says: list[str]) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        make()
    missing = [part for part in says if part not in str(refused.value)]
    assert not missing, f"{refused.value} does not say {missing}"


class _AliasedLead(Lead):
    endpoints: int | None = None
    po: str | None = Field(default=None, alias="PO Number")


def test_fields_aliases_strategies_and_the_strategies_own_keywords_are_taken() -> None:
    """What the strategies always took still works: any field of the model (the
    application's own included, by its name or its alias), a strategy as a value,
    ``keys`` of each kind."""
    from hypothesis import strategies as st

    made = [
        leads(company="Acme", erased_at=None, employees=st.integers(1, 9)),
        leads(model=_AliasedLead, endpoints=3, po="PO-1"),
        _leads(model=_AliasedLead, **{"PO Number": "PO-2"}),
        leads(status=LeadStatus.QUALIFIED, keys="email", missing=False),
        leads(status="raw", keys=None),
        contacts(type="client", keys="none", owner="ann"),
        *(leads(keys=keys) for keys in ("both", "email", "phone", "none")),
    ]

    @settings(max_examples=5, deadline=None, database=None)
    @given(people=st.tuples(*made))
    def drawn(people: tuple[Any, ...]) -> None:
        assert people[0].company == "Acme"
        assert 1 <= people[0].employees <= 9
        assert isinstance(people[1], _AliasedLead)
        assert people[1].endpoints == 3
        assert isinstance(people[2], _AliasedLead)
        assert people[2].po == "PO-2"
        assert people[3].status == LeadStatus.QUALIFIED
        assert people[3].phone is None
        assert isinstance(people[5], Contact)
        assert people[5].email is None

    drawn()


def test_keys_draw_what_they_say() -> None:
    @settings(max_examples=20, deadline=None, database=None)
    @given(leads(keys="email"))
    def only_email(lead: Lead) -> None:
        assert lead.email is not None
        assert lead.phone is None

    only_email()


# --- the assertions refuse a bare string of names and a count that is no int ------


@pytest.fixture
def funnel() -> tuple[Funnel, Lead]:
    funnel = Funnel(clock=ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC)))
    lead = funnel.capture(Lead(email="ann@acme.example.com"))
    funnel.qualify(lead, force=True)
    return funnel, funnel.get_lead(lead.id)


def test_a_bare_string_of_event_names_is_refused(funnel: tuple[Funnel, Lead]) -> None:
    f, lead = funnel
    with pytest.raises(TypeError, match=r"list of event names.*'capture'.*\['capture'\]"):
        assert_history(f, lead, "capture")
    assert_history(f, lead, ["capture", "qualify"])
    assert_history(f, lead, ("capture", "qualify"))


def test_a_bare_string_of_states_is_refused(funnel: tuple[Funnel, Lead]) -> None:
    f, lead = funnel
    with pytest.raises(TypeError, match=r"list of states.*'raw'.*\['raw'\]"):
        assert_passed_through(f, lead, "raw")
    with pytest.raises(TypeError, match=r"\['raw'\]"):  # an enum member is a str too
        assert_passed_through(f, lead, LeadStatus.RAW)
    assert_passed_through(f, lead, [LeadStatus.RAW, "qualified"])


@pytest.mark.parametrize("count", ["1", 1.0, Decimal(1), True, None])
def test_a_count_that_is_no_int_is_refused(funnel: tuple[Funnel, Lead], count: Any) -> None:
    f, _ = funnel
    with pytest.raises(TypeError) as refused:
        assert_report_counts(f.report(), {"raw": count})
    assert repr(count) in str(refused.value)
    assert type(count).__name__ in str(refused.value)


def test_a_wrong_int_count_still_fails_as_an_assertion(funnel: tuple[Funnel, Lead]) -> None:
    f, _ = funnel
    assert_report_counts(f.report(), {"raw": 1, "qualified": 1})
    with pytest.raises(AssertionError, match="raw: expected 2, counted 1"):
        assert_report_counts(f.report(), {"raw": 2})


def test_due_takes_a_bool(funnel: tuple[Funnel, Lead]) -> None:
    f, lead = funnel
    with pytest.raises(TypeError, match="due='no'"):
        assert_due(f, lead, due="no")  # type: ignore[arg-type]
