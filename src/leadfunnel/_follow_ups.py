"""Follow-ups: log a touch on a lead or contact, within the channel policy and cadence.

The channel policy (:mod:`leadfunnel._channels`) says who may be reached how; the cadence
(:class:`~leadfunnel.CadencePolicy`) says when a person is on drip (e-mail only). What is
due is computed by :func:`leadfunnel._cadence.follow_ups`.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from ._cadence import CadencePolicy
from ._changes import bump, checked, created, event, load, refuse_before_existence, retrying
from ._channels import RESETS, check_touch, counted_touches, lead_entered
from ._enums import Channel, ContactType, LeadStatus, Outcome
from ._errors import PolicyError
from ._lifecycle import funnel_steps
from ._models import Contact, Lead, Opportunity, Touch, state_of
from ._repository import ChangeSet, Repository

__all__ = ["check_drip", "touch"]


@retrying
def touch(
    repository: Repository,
    subject_id: UUID,
    channel: Channel,
    outcome: Outcome,
    *,
    cadence: CadencePolicy,
    now: datetime,
    actor: str | None,
    note: str | None,
    reason: str | None,
) -> Touch:
    """Log one follow-up and return it (refused with ``PolicyError`` as the facade says)."""
    actor = checked(Touch, "actor", actor)
    note = checked(Touch, "note", note)
    record: Lead | Contact = load(repository, subject_id, (Lead, Contact, Opportunity))
    check_touch(record, channel, outcome, on_drip=lambda: _on_drip(repository, cadence, record))
    if now < record.created_at and outcome != Outcome.OPTED_OUT:
        # (After the policy's check: a deal is told it takes no touch, not a date.)
        refuse_before_existence(repository, record, now, "a touch")
    counted = check_drip(repository, cadence, record, channel, outcome)
    logged = created(
        Touch,
        now,
        subject_id=record.id,
        channel=channel,
        outcome=outcome,
        at=now,
        actor=actor,
        note=note,
    )
    changes = ChangeSet(touches=[logged])
    if counted is not None:
        # Checked against the cadence: two touches checked against the same touches
        # cannot both be stored. The one that loses the race is checked again, against
        # the touches the other stored (see retrying).
        changes.touches_read[record.id] = counted
    if outcome == Outcome.OPTED_OUT and channel not in record.opt_outs:
        record = bump(record, now, opt_outs=record.opt_outs | {channel})
        changes.updates.append(record)
    else:
        # The policy was checked against this version: if the person is avoided or
        # opts out before this commits, the commit fails and the check runs again.
        changes.checks.append(record)
    state = state_of(record)
    data = {"channel": channel.value, "outcome": outcome.value, "touch_id": str(logged.id)}
    changes.events.append(event(record, "touch", state, state, now, actor, reason or note, data))
    repository.commit(changes)  # a lost race is retried: see retrying
    return logged


def check_drip(
    repository: Repository,
    policy: CadencePolicy,
    record: Lead | Contact,
    channel: Channel,
    outcome: Outcome,
) -> int | None:
    """Raise :class:`PolicyError` if ``record`` is on drip and ``channel`` is not e-mail;
    return how many touches ``record`` had when the touch was checked against them (it
    is in a cadence, and the touch counts toward it), else ``None``.

    A person is on drip once it has ``policy.lead_touches`` (a contact
    ``policy.contact_touches``) counted touches in its cadence: those logged since it
    entered it (a lead when it became raw, or was qualified again after it was
    disqualified: a suspect's campaign e-mails do not count once it responds; a
    contact when it was made or its last deal closed: a deal's work does not count
    once it is lost). A touch that records a reply
    (``replied`` or ``interested``) is allowed on any channel: it restarts the cadence.
    """
    if channel == Channel.EMAIL or outcome in RESETS or outcome == Outcome.OPTED_OUT:
        # E-mail is the drip; a reply restarts the cadence; an opt-out only narrows it.
        return None
    if isinstance(record, Lead):
        if record.status not in (LeadStatus.RAW, LeadStatus.QUALIFIED):
            return None
        limit, kind = policy.lead_touches, "lead"
        touches = repository.touches(record.id)
        if len(touches) < limit:
            return len(touches)  # fewer touches than the limit, whenever it entered
        # The lead's arrivals at raw and unqualified: the funnel steps of its history,
        # as the stores keep them for follow_up_candidates.
        # A raw lead needs them too: one that merges took in entered its cadence
        # when the first of its records became raw.
        moves = [
            (step, e.at)
            for e in repository.history(record.id)
            for step in funnel_steps(e.subject, e.source, e.dest)
            if step in ("raw", "unqualified")
        ]
        entered = lead_entered(record.status, record.status_at or record.created_at, moves)
    else:
        if record.type != ContactType.PROSPECT:
            return None
        limit, kind = policy.contact_touches, "contact"
        deals = repository.opportunities(contact_id=record.id)
        if any(o.is_open for o in deals):
            return None  # a contact with an open deal is being worked, not dripped
        # When its last deal closed (an edit of the closed deal since does not move it).
        closed = [o.closed_at or o.updated_at for o in deals]
        entered = max([record.created_at, *closed])
        touches = repository.touches(record.id)
    count = counted_touches(touches, since=entered)
    if count < limit:
        return len(touches)
    raise PolicyError(
        f"{channel.value} refused: the {kind} is on drip ({count} follow-up touches, "
        f"the cadence allows {limit}): e-mail only until it replies; log a reply "
        "(outcome replied or interested) to restart its cadence"
    )


def _on_drip(repository: Repository, policy: CadencePolicy, record: Lead | Contact) -> bool:
    """Whether ``record`` is on drip: a paid channel would be refused for it."""
    try:
        check_drip(repository, policy, record, Channel.CALL, Outcome.NO_ANSWER)
    except PolicyError:
        return True
    return False
