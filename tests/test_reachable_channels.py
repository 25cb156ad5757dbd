"""What a rep can use on a follow-up: the policy's channels the person holds an
address for. ``leadfunnel due`` offered a call and a text to people without a phone
(the demo's riley lists showed it); ``FollowUp.channels`` stays the policy's (DESIGN 6),
``reachable_channels`` narrows it."""

from __future__ import annotations

import pytest

from conftest import person
from leadfunnel import Channel, Contact, Funnel, Lead, reachable_channels

CALL, EMAIL, SMS, MEETING = Channel.CALL, Channel.EMAIL, Channel.SMS, Channel.MEETING


@pytest.mark.parametrize(
    ("fields", "reachable"),
    [
        ({}, {CALL, EMAIL, SMS, MEETING}),
        ({"phone": None}, {EMAIL, MEETING}),
        ({"phone": None, "other_phones": {"+15125550199"}}, {CALL, EMAIL, SMS, MEETING}),
        ({"email": None}, {CALL, SMS, MEETING}),
        ({"email": None, "other_emails": {"pat@home.example.net"}}, {CALL, EMAIL, SMS, MEETING}),
        ({"email": None, "phone": None}, {MEETING}),
        ({"phone": None, "opt_outs": {"email"}}, {MEETING}),
    ],
)
def test_a_raw_lead_is_reached_on_the_channels_it_has_an_address_for(
    fields: dict[str, object], reachable: set[Channel]
) -> None:
    funnel = Funnel()
    lead = funnel.capture(Lead(**person(1, **{"phone": "+15125550134", **fields})))
    assert reachable_channels(lead) == reachable
    [item] = funnel.due()
    assert item.channels == frozenset({CALL, EMAIL, SMS, MEETING}) - lead.opt_outs  # DESIGN 6
    assert reachable_channels(lead, item.channels) == reachable


def test_channels_without_an_address_in_the_models_are_kept() -> None:
    """Meetings, social profiles and letters: the models hold no such address."""
    nobody = Contact(first_name="Ann")
    assert reachable_channels(nobody) == {
        Channel.MEETING,
        Channel.SOCIAL,
        Channel.DIRECT_MAIL,
    }
    assert reachable_channels(nobody, [Channel.CALL, Channel.SOCIAL]) == {Channel.SOCIAL}
