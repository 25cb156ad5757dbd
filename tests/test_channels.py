"""The channel policy of DESIGN section 6, opt-outs, and e-mail only on drip."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conftest import person
from leadfunnel import (
    CadencePolicy,
    Channel,
    Contact,
    ContactType,
    Funnel,
    Lead,
    LeadStatus,
    Opportunity,
    PolicyError,
    Touch,
    allowed_channels,
)
from leadfunnel._channels import channels_for, check_touch, counted_touches
from leadfunnel.testing import ManualClock

ALL = frozenset(Channel)
E, S = Channel.EMAIL, Channel.SOCIAL

#: Section 6 of DESIGN.md, written out by hand.
LEAD_TABLE = {
    "suspect": {E, S},
    "farm_list": ALL,
    "qualified": ALL,
    "raw": {Channel.CALL, E, Channel.SMS, Channel.MEETING},
    "unqualified": {E},
    "avoid": set(),
    "converted": set(),
}
CONTACT_TABLE = {
    "prospect": ALL,
    "client": ALL,
    "supplier": ALL,
    "partner": ALL,
    "other": ALL,
    "unqualified": {E},
    "avoid": set(),
}


@pytest.mark.parametrize(("status", "allowed"), LEAD_TABLE.items())
@pytest.mark.parametrize("channel", sorted(Channel))
def test_the_lead_table(status: str, allowed: set[Channel], channel: Channel) -> None:
    lead = Lead(**person(1), status=status)
    assert allowed_channels(lead) == allowed
    assert channels_for("lead", status) == allowed
    if channel in allowed:
        check_touch(lead, channel)
    else:
        with pytest.raises(PolicyError, match=f"^{channel.value} refused: "):
            check_touch(lead, channel)


@pytest.mark.parametrize(("type_", "allowed"), CONTACT_TABLE.items())
@pytest.mark.parametrize("channel", sorted(Channel))
def test_the_contact_table(type_: str, allowed: set[Channel], channel: Channel) -> None:
    contact = Contact(**person(1), type=type_)
    assert allowed_channels(contact) == allowed
    assert channels_for("contact", type_) == allowed
    if channel in allowed:
        check_touch(contact, channel)
    else:
        with pytest.raises(PolicyError, match=f"^{channel.value} refused: "):
            check_touch(contact, channel)


def test_every_state_has_a_policy() -> None:
    assert set(LEAD_TABLE) == {s.value for s in LeadStatus}
    assert set(CONTACT_TABLE) == {t.value for t in ContactType}


@pytest.mark.parametrize(
    ("status", "channel", "why"),
    [
        ("unqualified", "call", "call refused: the lead is unqualified: e-mail drip only"),
        ("suspect", "direct_mail", "nothing paid until farmed"),
        ("raw", "direct_mail", "qualify it before paying for mail"),
        ("avoid", "email", "never market to it"),
        ("converted", "call", "touch its contact instead"),
    ],
)
def test_a_refused_touch_says_why_and_stores_nothing(
    funnel: Funnel, status: str, channel: str, why: str
) -> None:
    lead = funnel.capture(Lead(**person(1)))
    if status == "unqualified":
        funnel.disqualify(lead)
    elif status == "avoid":
        funnel.avoid(lead)
    elif status == "converted":
        funnel.qualify(lead, force=True)
        funnel.set_appointment(lead)
    elif status == "suspect":
        lead = funnel.add(Lead(**person(2), status="suspect"))
    before = funnel.get(lead.id)
    history = funnel.history(lead)
    with pytest.raises(PolicyError) as info:
        funnel.touch(lead, channel, "no_answer")
    assert why in str(info.value)
    assert funnel.touches(lead) == []
    assert funnel.history(lead) == history
    assert funnel.get(lead.id) == before


def test_touches_go_to_people_not_deals(funnel: Funnel) -> None:
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    opp = funnel.set_appointment(lead)
    assert isinstance(opp, Opportunity)
    with pytest.raises(PolicyError, match=f"touch contact {opp.contact_id}"):
        funnel.touch(opp, Channel.CALL, "no_answer")  # type: ignore[arg-type]
    assert funnel.touches(opp.contact_id) == []


def test_an_opt_out_is_refused_and_an_opted_out_outcome_records_one(funnel: Funnel) -> None:
    lead = funnel.capture(Lead(**person(1), opt_outs={"sms"}))
    with pytest.raises(PolicyError, match="opted out of sms; use one of: call, email, meeting"):
        funnel.touch(lead, "sms", "no_answer")
    funnel.touch(lead, "call", "opted_out")
    stored = funnel.get(lead.id)
    assert isinstance(stored, Lead)
    assert stored.opt_outs == {Channel.SMS, Channel.CALL}
    assert allowed_channels(stored) == {Channel.EMAIL, Channel.MEETING}
    with pytest.raises(PolicyError, match="opted out of call"):
        funnel.touch(lead, "call", "connected")
    assert channels_for("lead", "raw", stored.opt_outs) == {Channel.EMAIL, Channel.MEETING}


# --- drip -----------------------------------------------------------------------------


def test_a_lead_on_drip_gets_email_only_until_it_replies(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    funnel.touch(lead, "call", "no_answer")
    clock.advance(days=2)
    funnel.touch(lead, "direct_mail", "no_answer")
    clock.advance(days=30)
    with pytest.raises(PolicyError) as info:
        funnel.touch(lead, "call", "no_answer")
    message = str(info.value)
    assert "call refused: the lead is on drip (2 follow-up touches" in message
    assert "e-mail only" in message
    assert len(funnel.touches(lead)) == 2
    funnel.touch(lead, "email", "no_answer")  # the drip campaign itself
    funnel.touch(lead, "call", "replied")  # they called back: always allowed
    funnel.touch(lead, "call", "connected")  # and the cadence starts again
    assert len(funnel.touches(lead)) == 5


def test_a_contact_goes_on_drip_after_eight_touches_but_not_with_an_open_deal(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    opp = funnel.set_appointment(lead)
    contact = opp.contact_id
    for _ in range(8):
        funnel.touch(contact, "call", "connected")  # an open deal: worked, not dripped
    funnel.touch(contact, "meeting", "connected")
    funnel.lose(opp, reason="price")
    with pytest.raises(PolicyError, match="the contact is on drip"):
        funnel.touch(contact, "call", "no_answer")
    funnel.touch(contact, "email", "no_answer")
    funnel.touch(contact, "social", "interested")
    funnel.touch(contact, "call", "no_answer")


def test_drip_follows_the_funnels_policy(clock: ManualClock) -> None:
    funnel = Funnel(cadence=CadencePolicy(lead_touches=0), clock=clock)
    lead = funnel.capture(Lead(**person(1)))
    with pytest.raises(PolicyError, match="cadence allows 0"):
        funnel.touch(lead, "call", "no_answer")
    funnel.touch(lead, "email", "no_answer")
    # Unqualified and farm-list leads are outside the cadence: no drip rule, their own table.
    farm = funnel.add(Lead(**person(2), status="farm_list"))
    funnel.touch(farm, "direct_mail", "no_answer")


def _touch(at_hour: int, outcome: str) -> Touch:
    return Touch(
        subject_id=Lead(**person(1)).id,
        channel="call",
        outcome=outcome,
        at=datetime(2026, 3, 2, at_hour, tzinfo=UTC),
    )


def test_counted_touches_start_after_the_last_reply_by_time() -> None:
    assert counted_touches([]) == 0
    assert counted_touches([_touch(9, "no_answer"), _touch(10, "bounced")]) == 2
    assert counted_touches([_touch(9, "no_answer"), _touch(10, "replied")]) == 0
    # Order of logging does not matter, time does: a late-logged earlier reply resets less.
    touches = [_touch(11, "no_answer"), _touch(12, "no_answer"), _touch(10, "interested")]
    assert counted_touches(touches) == 2
    touches = [_touch(9, "no_answer"), _touch(12, "replied"), _touch(13, "left_message")]
    assert counted_touches(touches) == 1
