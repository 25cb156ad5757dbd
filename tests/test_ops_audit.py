"""Found by a sales-operations audit: an opt-out is recorded whatever the person's state,
capture refuses a status it would drop, and argument errors for reports and due()."""

from __future__ import annotations

from datetime import timedelta

import pytest

from leadfunnel import (
    Channel,
    Funnel,
    InvalidArgumentError,
    Lead,
    PolicyError,
)
from leadfunnel.testing import ManualClock


def _on_drip(funnel: Funnel, clock: ManualClock, email: str) -> Lead:
    lead = funnel.get_lead(funnel.capture(Lead(email=email, phone="+15125550111")).id)
    funnel.touch(lead, "call", "no_answer")
    clock.advance(days=2)
    funnel.touch(lead, "call", "no_answer")
    with pytest.raises(PolicyError, match="on drip"):
        funnel.touch(lead, "call", "no_answer")
    return lead


def test_a_lead_on_drip_who_says_stop_calling_is_recorded(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = _on_drip(funnel, clock, "d@d.example.com")
    logged = funnel.touch(lead, "call", "opted_out", note="never call me again")
    assert logged.outcome == "opted_out"
    assert funnel.get_lead(lead.id).opt_outs == {Channel.CALL}
    with pytest.raises(PolicyError, match="opted out of call"):
        funnel.touch(lead, "call", "replied")


def test_an_opt_out_on_a_channel_the_state_forbids_is_refused_and_says_how_to_record_it(
    funnel: Funnel,
) -> None:
    """DESIGN 6: a touch outside the policy raises PolicyError, whatever its outcome;
    an unqualified person who phones to say "stop texting" is recorded by an update."""
    lead = funnel.capture(Lead(email="u@d.example.com", phone="+15125550112"))
    lead = funnel.disqualify(lead)
    with pytest.raises(PolicyError, match=r"e-mail drip only; .*funnel.update\(lead.model_copy"):
        funnel.touch(lead, "sms", "opted_out")
    assert funnel.touches(lead.id) == []
    funnel.update(lead.model_copy(update={"opt_outs": {Channel.SMS}}))
    assert funnel.get_lead(lead.id).opt_outs == {Channel.SMS}
    suspect = funnel.add(Lead(email="s@d.example.com", status="suspect"))
    with pytest.raises(PolicyError, match="suspect"):
        funnel.touch(suspect, "call", "opted_out")


def test_an_avoided_person_still_gets_no_touch_at_all(funnel: Funnel) -> None:
    lead = funnel.add(Lead(email="a@d.example.com", status="avoid"))
    with pytest.raises(PolicyError, match="avoid list"):
        funnel.touch(lead, "email", "opted_out")


def test_an_opt_out_refusal_on_drip_suggests_only_what_the_drip_allows(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = _on_drip(funnel, clock, "o@d.example.com")
    funnel.touch(lead, "email", "opted_out")
    with pytest.raises(PolicyError) as refused:
        funnel.touch(lead, "email", "no_answer")
    assert "use one of: none (the person is on drip" in str(refused.value)
    fresh = funnel.capture(Lead(email="f@d.example.com", phone="+15125550113"))
    funnel.touch(fresh, "email", "opted_out")
    with pytest.raises(PolicyError, match=r"use one of: call, meeting, sms$"):
        funnel.touch(fresh, "email", "no_answer")


@pytest.mark.parametrize("status", ["avoid", "qualified", "unqualified", "converted"])
def test_capture_refuses_a_status_it_would_drop(funnel: Funnel, status: str) -> None:
    with pytest.raises(InvalidArgumentError, match="makes a raw lead"):
        funnel.capture(Lead(email="x@x.example.com", status=status))
    assert funnel.find(email="x@x.example.com") is None


@pytest.mark.parametrize("status", ["raw", "suspect", "farm_list"])
def test_a_captured_suspect_or_farm_list_person_responds_and_is_raw(
    funnel: Funnel, status: str
) -> None:
    captured = funnel.capture(Lead(email="x@x.example.com", status=status))
    assert funnel.get_lead(captured.id).status == "raw"


def test_a_report_of_a_period_that_ends_before_it_starts_is_an_argument_error(
    funnel: Funnel, clock: ManualClock
) -> None:
    now = clock.now()
    funnel.capture(Lead(email="r@x.example.com"))
    with pytest.raises(InvalidArgumentError, match="is before since"):
        funnel.report(since=now, until=now - timedelta(days=1))
    assert funnel.report(since=now, until=now).steps["raw"].count == 0  # empty, half-open


def test_due_refuses_an_owner_that_is_no_name(funnel: Funnel) -> None:
    with pytest.raises(InvalidArgumentError, match="owner=123"):
        funnel.due(owner=123)  # type: ignore[arg-type]


def test_an_enum_argument_error_reads_right(funnel: Funnel) -> None:
    lead = funnel.capture(Lead(email="g@x.example.com"))
    with pytest.raises(InvalidArgumentError, match="is not an Outcome; use one of"):
        funnel.touch(lead, "call", "maybe")
    with pytest.raises(InvalidArgumentError, match="is not a Channel; use one of"):
        funnel.touch(lead, "fax", "no_answer")


def test_the_chart_shows_a_rate_as_the_table_does() -> None:
    funnel = Funnel()
    for n in range(8):
        lead = funnel.capture(Lead(email=f"p{n}@x.example.com"))
        if n < 5:
            funnel.qualify(lead, force=True)
    report = funnel.report()
    assert report.steps["qualified"].rate == 0.625
    svg = report.to_svg()
    assert "62.5% of previous" in svg
    assert "62.5%" in str(report)


def test_a_period_with_more_won_than_raw_says_why(funnel: Funnel, clock: ManualClock) -> None:
    deals = []
    for n in range(3):
        lead = funnel.capture(Lead(email=f"w{n}@x.example.com"))
        funnel.qualify(lead, force=True)
        deals.append(funnel.set_appointment(lead))
    clock.advance(days=40)
    start = clock.now()
    for deal in deals:
        funnel.win(funnel.send_contract(funnel.propose(funnel.sit(deal))), amount=10)
    funnel.capture(Lead(email="late@x.example.com"))
    clock.advance(days=1)
    text = str(funnel.report(since=start, until=clock.now()))
    assert "Raw leads to won: 300.0% (3 of 1; deals from earlier leads count too)" in text
