"""The channel policy: who may be reached how.

Cold people get cheap channels, warm people any channel, unfit people free e-mail drip,
avoided people nothing. A channel the person refused (``opt_outs``) is always refused.
A person on drip (past the cadence's touch limit) gets e-mail only, until they reply:
that check is the touch use case's (:func:`leadfunnel._follow_ups.check_drip`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from ._enums import Channel, ContactType, LeadStatus, Outcome
from ._errors import PolicyError
from ._models import Contact, Lead, Opportunity, Record, Touch

__all__ = [
    "RESETS",
    "allowed_channels",
    "channels_for",
    "check_touch",
    "counted_touches",
    "lead_entered",
    "reachable_channels",
]

#: Outcomes that restart a cadence: the person answered, so the count starts again.
RESETS = frozenset({Outcome.REPLIED, Outcome.INTERESTED})

_ALL = frozenset(Channel)
_FREE = frozenset({Channel.EMAIL, Channel.SOCIAL})
_EMAIL = frozenset({Channel.EMAIL})
_NONE: frozenset[Channel] = frozenset()

_LEAD_POLICY: dict[LeadStatus, tuple[frozenset[Channel], str]] = {
    LeadStatus.SUSPECT: (_FREE, "a suspect gets e-mail and social only, nothing paid until farmed"),
    LeadStatus.FARM_LIST: (_ALL, ""),
    LeadStatus.QUALIFIED: (_ALL, ""),
    LeadStatus.RAW: (
        frozenset({Channel.CALL, Channel.EMAIL, Channel.SMS, Channel.MEETING}),
        "a raw lead gets call, e-mail, sms or meeting; qualify it before paying for mail or social",
    ),
    LeadStatus.UNQUALIFIED: (_EMAIL, "the lead is unqualified: e-mail drip only"),
    LeadStatus.AVOID: (_NONE, "the lead is on the avoid list: never market to it"),
    LeadStatus.CONVERTED: (_NONE, "the lead was converted: touch its contact instead"),
}
_CONTACT_POLICY: dict[ContactType, tuple[frozenset[Channel], str]] = {
    ContactType.UNQUALIFIED: (_EMAIL, "the contact is unqualified: e-mail drip only"),
    ContactType.AVOID: (_NONE, "the contact is on the avoid list: never market to it"),
}


def _policy(record: Lead | Contact) -> tuple[frozenset[Channel], str]:
    if isinstance(record, Lead):
        return _LEAD_POLICY[LeadStatus(record.status)]
    return _CONTACT_POLICY.get(ContactType(record.type), (_ALL, ""))


def channels_for(subject: str, state: str, opt_outs: Iterable[Channel] = ()) -> frozenset[Channel]:
    """The channels the policy allows a ``"lead"`` or ``"contact"`` in ``state``."""
    if subject == "lead":
        allowed = _LEAD_POLICY[LeadStatus(state)][0]
    else:
        allowed = _CONTACT_POLICY.get(ContactType(state), (_ALL, ""))[0]
    return allowed.difference(opt_outs)


def allowed_channels(record: Lead | Contact) -> frozenset[Channel]:
    """The channels the policy allows for this person now, opt-outs removed."""
    allowed, _ = _policy(record)
    return allowed - record.opt_outs if record.opt_outs else allowed


_BY_PHONE = frozenset({Channel.CALL, Channel.SMS})


def reachable_channels(
    record: Lead | Contact, channels: Iterable[Channel] | None = None
) -> frozenset[Channel]:
    """Of ``channels`` (default: :func:`allowed_channels`), those the record holds an
    address for: a call or a text needs a phone (``phone`` or one of ``other_phones``),
    an e-mail an e-mail address. The models hold no address of a meeting, a social
    profile or a letter's street, so those are kept as given. What a rep can use on a
    follow-up: ``reachable_channels(person, item.channels)``."""
    given = allowed_channels(record) if channels is None else frozenset(channels)
    if record.phone is None and not record.other_phones:
        given -= _BY_PHONE
    if record.email is None and not record.other_emails:
        given -= _EMAIL
    return given


def check_touch(
    record: Record,
    channel: Channel,
    outcome: Outcome | None = None,
    *,
    on_drip: Callable[[], bool] | None = None,
) -> None:
    """Raise :class:`PolicyError` if ``channel`` may not be used on ``record``.

    The policy holds whatever the outcome (DESIGN 6): an ``opted_out`` touch on a
    channel the person's state forbids is refused too, and the refusal says how to
    record the opt-out instead (an ``update`` of the person's ``opt_outs``). ``on_drip``
    says, when asked, whether the person is on drip: a refusal of a channel they opted
    out of then suggests e-mail at most instead."""
    if isinstance(record, Opportunity):
        raise PolicyError(
            f"touches are logged on people, not deals: touch contact {record.contact_id}"
        )
    allowed, why = _policy(record)
    if channel not in allowed:
        hint = ""
        if outcome == Outcome.OPTED_OUT and allowed:
            hint = (
                f"; to record that the person opted out of {channel.value}, add it to "
                f"their opt_outs: funnel.update({record.kind}.model_copy(update="
                "{'opt_outs': ...}))"
            )
        raise PolicyError(f"{channel.value} refused: {why}{hint}")
    if channel in record.opt_outs:
        others = allowed - record.opt_outs
        dripping = on_drip is not None and on_drip()
        if dripping:
            others &= _EMAIL
        raise PolicyError(
            f"{channel.value} refused: this person opted out of {channel.value}; "
            f"use one of: {', '.join(sorted(c.value for c in others)) or 'none'}"
            + (" (the person is on drip: e-mail only until they reply)" if dripping else "")
        )


def lead_entered(
    status: LeadStatus, status_at: datetime, moves: Iterable[tuple[str, datetime]]
) -> datetime:
    """When a raw or qualified lead entered its follow-up cadence, which covers both:
    when it became raw (captured, imported, or a suspect that responded), unless it
    was disqualified since and came back qualified (then when it was qualified).
    ``moves`` are the lead's arrivals at ``raw`` and ``unqualified`` (the funnel steps
    of its history); ``status_at`` when it reached its ``status``.

    A lead becomes raw once; one that merges took in holds the history of each record
    it merged, and so one arrival at raw each: the person entered the cadence at the
    first of them (the later ones, another record's, would drop the touches between),
    whether it is still raw or was qualified since (qualifying it keeps its count and
    its schedule), and a qualified one was disqualified since if any of its records
    was."""
    moves = list(moves)
    raw = [at for step, at in moves if step == "raw" and at <= status_at]
    if not raw:
        return status_at  # qualified from outside the cadence (or no raw step kept)
    became_raw = min(raw)
    if status is not LeadStatus.QUALIFIED:
        return became_raw
    if any(step == "unqualified" and became_raw <= at <= status_at for step, at in moves):
        return status_at  # disqualified since, then qualified again: a new cadence
    return became_raw


def counted_touches(touches: Iterable[Touch], since: datetime | None = None) -> int:
    """How many of ``touches`` count towards the cadence limit: those logged since the
    person entered the cadence (``since``: see :func:`lead_entered`; a contact's
    creation or the close of its last deal) and after the last ``replied`` or
    ``interested`` touch (by ``at``, then by order logged)."""
    ordered = sorted(enumerate(touches), key=lambda pair: (pair[1].at, pair[0]))
    count = 0
    for _, touch in reversed(ordered):
        if touch.outcome in RESETS or (since is not None and touch.at < since):
            break
        count += 1
    return count
