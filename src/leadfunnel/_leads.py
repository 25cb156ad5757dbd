"""The lead triggers: farm a suspect, a response, qualify and disqualify.

``qualify`` asks the engine for a :class:`~leadfunnel.QualificationResult` and applies
the outcome rules of the design (a fit qualifies; missing data waits; hard failures
everywhere disqualify at once; soft failures only once the lead has had a call).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from ._changes import bump, event, load, retrying
from ._enums import Channel, Interest, LeadStatus, Tier
from ._errors import ConfigError, InvalidTransitionError, NotFoundError
from ._lifecycle import LEAD
from ._models import Lead
from ._protocols import Engine
from ._qualification import QualificationResult
from ._repository import ChangeSet, Repository

__all__ = ["SWEET_SPOT", "move_lead", "qualify", "qualify_all"]

#: The tag a qualified lead carries: it sits in the sweet spot of a profile.
SWEET_SPOT = "sweet-spot"


def move_lead(
    repository: Repository,
    lead_id: UUID,
    trigger: str,
    *,
    now: datetime,
    actor: str | None,
    reason: str | None,
) -> Lead:
    """Fire a plain lead trigger (``farm``, ``respond``, ``disqualify``) and commit."""
    lead: Lead = load(repository, lead_id, Lead)
    source = lead.status.value
    dest = LEAD.move(source, trigger)
    moved = bump(lead, now, status=LeadStatus(dest), status_at=now)
    repository.commit(
        ChangeSet(updates=[moved], events=[event(moved, trigger, source, dest, now, actor, reason)])
    )
    return moved


def qualify(
    repository: Repository,
    lead_id: UUID,
    *,
    engine: Engine | None,
    force: bool,
    now: datetime,
    actor: str | None,
    reason: str | None,
) -> QualificationResult:
    """Judge a raw (or unqualified) lead and move it as the outcome rules say."""
    record: Lead = load(repository, lead_id, Lead)
    source = record.status.value
    if not LEAD.can(source, "qualify"):
        LEAD.move(source, "qualify")  # raises, naming the allowed triggers
    if force:
        result = QualificationResult(
            qualified=True, decision="qualified", score=1.0, tier=_tier(record, qualified=True)
        )
    elif engine is None:
        raise ConfigError(
            "no qualification engine configured: pass Funnel(engine=QualificationEngine"
            "(...)), or qualify by hand with qualify(lead, force=True, reason=...)"
        )
    else:
        result = engine.evaluate(record)
    dest = _destination(repository, record, result)
    changes: dict[str, Any] = {}
    if dest != source:
        changes["status"], changes["status_at"] = LeadStatus(dest), now
    if dest == LeadStatus.QUALIFIED:
        changes["tags"] = record.tags | {SWEET_SPOT}
        changes["profile"] = result.profile
    data = result.to_dict()
    del data["status"]  # the event's dest says where the lead went
    data["forced"] = force
    moved = bump(record, now, **changes)
    new = event(moved, "qualify", source, dest, now, actor, reason, data)
    repository.commit(ChangeSet(updates=[moved], events=[new]))
    return result.with_status(LeadStatus(dest))


_qualify_retrying = retrying(qualify)


def qualify_all(
    repository: Repository,
    *,
    engine: Engine | None,
    status: LeadStatus,
    now: datetime,
    actor: str | None,
    reason: str | None,
) -> dict[str, int]:
    """Qualify every lead with ``status``; count where they went (see the facade)."""
    counts = {"qualified": 0, "unqualified": 0, "waiting": 0, "skipped": 0}
    for lead in repository.leads(status=status):
        try:
            result = _qualify_retrying(
                repository,
                lead.id,
                engine=engine,
                force=False,
                now=now,
                actor=actor,
                reason=reason,
            )
        except (InvalidTransitionError, NotFoundError):
            counts["skipped"] += 1
            continue
        if result.status == LeadStatus.QUALIFIED:
            counts["qualified"] += 1
        elif result.status == LeadStatus.UNQUALIFIED:
            counts["unqualified"] += 1
        else:
            counts["waiting"] += 1
    return counts


def _destination(repository: Repository, lead: Lead, result: QualificationResult) -> str:
    state = lead.status.value
    if result.qualified:
        return LEAD.move(state, "qualify")
    if result.decision == "undecided":
        return state
    if result.decision == "hard_fail" or _was_called(repository, lead.id):
        return "unqualified"
    return state


def _was_called(repository: Repository, lead_id: UUID) -> bool:
    return any(t.channel == Channel.CALL for t in repository.touches(lead_id))


def _tier(lead: Lead, *, qualified: bool) -> Tier:
    if not qualified:
        return Tier.COLD
    return Tier.HOT if lead.interest == Interest.HIGH else Tier.WARM
