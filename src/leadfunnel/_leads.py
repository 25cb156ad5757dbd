"""The lead triggers: farm a suspect, a response, qualify and disqualify.

``qualify`` asks the engine for a :class:`~leadfunnel.QualificationResult` and applies
the outcome rules of the design (a fit qualifies; missing data waits; hard failures
everywhere disqualify at once; soft failures only once the lead has had a call).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from ._changes import bump, event, load, retrying
from ._collector import collector_paused
from ._enums import Channel, Interest, LeadStatus, Tier
from ._errors import (
    ConcurrencyError,
    ConfigError,
    InvalidArgumentError,
    InvalidTransitionError,
    LeadFunnelError,
    NotFoundError,
    PolicyError,
    RuleError,
)
from ._lifecycle import LEAD
from ._models import Contact, Lead
from ._protocols import Engine, Router, assign_owner, routing_data
from ._qualification import QualificationResult, lead_field, shown_name
from ._repository import ChangeSet, Repository, settled_by_commit

__all__ = ["PAGE_SIZE", "SWEET_SPOT", "move_lead", "qualify", "qualify_all", "unfit"]

#: The tag a qualified lead carries: it sits in the sweet spot of a profile.
SWEET_SPOT = "sweet-spot"


def unfit(person: Lead | Contact) -> dict[str, Any]:
    """What a person found unfit (a lead disqualified, a contact whose deal was lost as
    unqualified) changes besides its state: it leaves the sweet spot, if it was in it;
    the profile it matched, and its history, stay."""
    return {"tags": person.tags - {SWEET_SPOT}} if SWEET_SPOT in person.tags else {}


def move_lead(
    repository: Repository,
    lead_id: UUID,
    trigger: str,
    *,
    now: datetime,
    actor: str | None,
    reason: str | None,
    router: Router | None = None,
) -> Lead:
    """Fire a plain lead trigger (``farm``, ``respond``, ``disqualify``) and commit; a
    lead without an owner that responds is routed (``router``), as one arriving raw is."""
    lead: Lead = load(repository, lead_id, Lead)
    source = lead.status.value
    dest = LeadStatus(LEAD.move(source, trigger))
    changes: dict[str, Any] = {"status": dest, "status_at": now}
    if dest is LeadStatus.UNQUALIFIED:
        changes.update(unfit(lead))
    moved = bump(lead, now, **changes)
    if trigger != "respond" or moved.owner is not None or router is None:
        new = event(moved, trigger, source, dest.value, now, actor, reason)
        repository.commit(ChangeSet(updates=[moved], events=[new], read={lead.id: lead}))
        return moved
    with settled_by_commit():  # a refusal before the commit gives the owner's turn back
        moved = assign_owner(router, moved)
        data = routing_data(router, moved)
        new = event(moved, trigger, source, dest.value, now, actor, reason, data)
        repository.commit(ChangeSet(updates=[moved], events=[new], read={lead.id: lead}))
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
    # A soft failure is decided on the lead's touches (was it called?): the commit holds
    # only if they are as read, so a call logged meanwhile is not missed.
    touches_read: dict[UUID, int] = {}

    def was_called(id: UUID) -> bool:
        touches = repository.touches(id)
        touches_read[id] = len(touches)
        return any(t.channel == Channel.CALL for t in touches)

    dest = _destination(record, result, was_called)
    data = result.to_dict()
    del data["status"]  # the event's dest says where the lead went
    data["forced"] = force
    moved = bump(record, now, **_changed_fields(record, dest, result, now))
    new = event(moved, "qualify", source, dest.value, now, actor, reason, data)
    repository.commit(
        ChangeSet(
            updates=[moved], events=[new], read={record.id: record}, touches_read=touches_read
        )
    )
    return result.with_status(dest)


_qualify_retrying = retrying(qualify)

#: Leads judged and stored per transaction by :func:`qualify_all`.
PAGE_SIZE = 2_000
# The young garbage of this many pages (a few statements' cycles each) is collected at
# once: a collection per page cost 2% of a run.
_COLLECT_EVERY = 8
# A page that keeps losing races is qualified lead by lead instead.
_PAGE_ATTEMPTS = 3


def qualify_all(
    repository: Repository,
    *,
    engine: Engine | None,
    status: LeadStatus,
    now: Callable[[], datetime],
    actor: str | None,
    reason: str | None,
    page_size: int = PAGE_SIZE,
    on_error: Callable[[LeadFunnelError], object] | None = None,
) -> dict[str, int]:
    """Qualify every lead with ``status``; count where they went (see the facade).

    ``now`` is asked for the time of each page's changes once the page is read (and
    again when a page is read afresh): a run is long, and the application edits leads
    meanwhile, so a time taken at the start would date a lead's ``qualify`` before the
    edit it was decided on, and its history would contradict the order of commits.

    Leads are read in pages of ``page_size`` (:meth:`Repository.lead_batches`), so
    memory stays flat however many there are. A page is judged by the engine, asked "was it
    called" in one query, and stored in one commit: the leads that moved (status, tags
    and profile only) and one ``qualify`` event per lead; a lead that stays where it is
    is only version-checked. Stopping between pages loses nothing: every page is stored
    whole or not at all, and the next run judges the leads still at ``status``.

    A lead on which a rule fails (:class:`RuleError`), or that the application's lead
    class refuses as moved (:class:`InvalidTransitionError`), stops the run, unless
    ``on_error`` is given: the lead is then left as it is (no change, no event), the
    page is stored without it, and ``on_error`` is handed the error once the page is
    stored (never for a judging the store did not keep).
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise InvalidArgumentError(f"page_size={page_size!r}: give a whole number, 1 or more")
    counts = {"qualified": 0, "unqualified": 0, "waiting": 0, "skipped": 0, "failed": 0}
    if not LEAD.can(status.value, "qualify"):
        # Nothing at this status may be qualified: every such lead is skipped.
        counts["skipped"] = repository.count("lead", status=status)
        return counts
    # A page makes many short-lived, acyclic objects: the cyclic collector only costs
    # time here (each page's garbage is collected after it).
    with collector_paused() as collect:
        for number, page in enumerate(repository.lead_batches(status=status, size=page_size), 1):
            if engine is None:
                raise ConfigError(
                    "no qualification engine configured: pass Funnel(engine="
                    "QualificationEngine(...)), or qualify leads by hand with "
                    "qualify(lead, force=True, reason=...)"
                )
            _qualify_page(repository, page, engine, status, now, actor, reason, counts, on_error)
            del page  # the collection below then walks only what the page left behind
            if number % _COLLECT_EVERY == 0:
                collect(0)
    return counts


def _qualify_page(
    repository: Repository,
    page: list[Lead],
    engine: Engine,
    status: LeadStatus,
    now: Callable[[], datetime],
    actor: str | None,
    reason: str | None,
    counts: dict[str, int],
    on_error: Callable[[LeadFunnelError], object] | None,
) -> None:
    """Judge and store one page; if it keeps losing races, lead by lead."""
    for _ in range(_PAGE_ATTEMPTS):
        # An erased person's lead keeps its status, and nothing may be done to it
        # (``qualify`` refuses it with PolicyError): skipped, left as it is.
        kept = [lead for lead in page if lead.erased_at is None]
        counts["skipped"] += len(page) - len(kept)
        page = kept
        if not page:
            return
        try:
            changes, dests, failed = _judge_page(
                repository, page, engine, now(), actor, reason, on_error is not None
            )
            repository.commit(changes)
        except (ConcurrencyError, NotFoundError):
            # Somebody changed one of these leads since the page was read: read the
            # page's leads again (those still at ``status``) and judge them afresh.
            fresh = repository.get_many(lead.id for lead in page)
            still = [fresh.get(lead.id) for lead in page]
            page = [r for r in still if isinstance(r, Lead) and r.status is status]
            counts["skipped"] += len(still) - len(page)  # moved under our feet
            continue
        for dest in dests:
            counts[_COUNTED.get(dest, "waiting")] += 1
        _failed(failed, counts, on_error)
        return
    for lead in page:
        try:
            result = _qualify_retrying(
                repository,
                lead.id,
                engine=engine,
                force=False,
                now=now(),
                actor=actor,
                reason=reason,
            )
        except NotFoundError:
            counts["skipped"] += 1
            continue
        except PolicyError:
            current = repository.get_many([lead.id]).get(lead.id)
            if isinstance(current, Lead) and current.erased_at is not None:
                counts["skipped"] += 1  # erased since the page was read: left as it is
                continue
            raise
        except InvalidTransitionError as error:
            current = repository.get_many([lead.id]).get(lead.id)
            if not isinstance(current, Lead) or current.status is not status:
                counts["skipped"] += 1  # moved meanwhile
                continue
            if on_error is None:  # still there: the application's class refused it
                raise
            _failed([error], counts, on_error)
            continue
        except RuleError as error:
            if on_error is None:
                raise
            _failed([error], counts, on_error)
            continue
        counts[_COUNTED.get(result.status, "waiting")] += 1


def _failed(
    errors: list[LeadFunnelError],
    counts: dict[str, int],
    on_error: Callable[[LeadFunnelError], object] | None,
) -> None:
    """Count the leads of a stored page that a rule failed on, and hand each error to
    ``on_error`` (which may raise to stop the run: the page stays stored)."""
    for error in errors:
        counts["failed"] += 1
        assert on_error is not None  # errors are only collected for an on_error
        on_error(error)


_COUNTED: dict[LeadStatus | None, str] = {
    LeadStatus.QUALIFIED: "qualified",
    LeadStatus.UNQUALIFIED: "unqualified",
}


def _judge_page(
    repository: Repository,
    page: list[Lead],
    engine: Engine,
    now: datetime,
    actor: str | None,
    reason: str | None,
    collect: bool = False,
) -> tuple[ChangeSet, list[LeadStatus], list[LeadFunnelError]]:
    """A page's commit, where each of its leads goes, and (``collect``) the errors of
    the leads a rule or the application's lead class failed on, which the commit leaves
    out."""
    if collect:
        page, results, failed = _judged(page, engine)
    else:
        results, failed = [engine.evaluate(lead) for lead in page], []
    # Only a soft failure waits on a call: ask for those leads' calls in one query.
    asking = [lead.id for lead, r in zip(page, results, strict=True) if r.decision == "fail"]
    # Those not called wait for a call: the page commits only if no touch was logged on
    # them since they were counted (counted first, so that a call logged between the
    # two reads is seen by one of them), else it is judged again.
    counts = repository.touch_counts(asking) if asking else {}
    called = repository.touched(asking, channel=Channel.CALL) if asking else set()
    changes = ChangeSet()
    changes.touches_read.update((id, counts[id]) for id in asking if id not in called)
    dests: list[LeadStatus] = []
    for lead, result in zip(page, results, strict=True):
        source = lead.status
        dest = _destination(lead, result, called.__contains__)
        fields = _changed_fields(lead, dest, result, now)
        if fields:
            try:
                record = bump(lead, now, **fields)
            except InvalidTransitionError as error:
                if not collect:
                    raise
                # The application's lead class refuses the lead as moved (its
                # validator wants what a qualified lead lacks): left as it is.
                failed.append(error)
                continue
            changes.updates.append(record)
            changes.read[lead.id] = lead  # as the store gave it: its keys and tags
        else:
            record = lead  # nothing to store: only checked, so a change since is caught
            changes.checks.append(lead)
        changes.events.append(
            event(record, "qualify", source.value, dest.value, now, actor, reason, _data(result))
        )
        dests.append(dest)
    return changes, dests, failed


def _judged(
    page: list[Lead], engine: Engine
) -> tuple[list[Lead], list[QualificationResult], list[LeadFunnelError]]:
    """The leads of ``page`` the engine judged, their results, and the errors of the
    rules that failed on the others."""
    kept: list[Lead] = []
    results: list[QualificationResult] = []
    failed: list[LeadFunnelError] = []
    for lead in page:
        try:
            result = engine.evaluate(lead)
        except RuleError as error:
            failed.append(error)
        else:
            kept.append(lead)
            results.append(result)
    return kept, results, failed


def _data(result: QualificationResult) -> dict[str, Any]:
    """A bulk ``qualify`` event's data: the result without the rules' explanations
    (``funnel.qualify`` of the lead, or ``engine.evaluate``, gives those)."""
    data: dict[str, Any] = {
        "qualified": result.qualified,
        "decision": result.decision,
        "profile": result.profile,
        "score": result.score,
        "tier": result.tier.value,
        "outcomes": dict(result.outcomes),
        "forced": False,
    }
    if result.decision == "undecided":
        data["missing"] = list(result.missing)  # what to find out about the lead
    # The application's own rules' verdicts, as asked (already at hand): unlike the
    # built-in rules' reasons, which follow from the rules and the lead, they may not
    # be given again (a score from a service).
    asked = result._asked_verdicts()
    if asked:
        data["custom_verdicts"] = {
            profile: [verdict.to_dict() for verdict in verdicts]
            for profile, verdicts in asked.items()
        }
    return data


def _destination(
    lead: Lead, result: QualificationResult, was_called: Callable[[UUID], bool]
) -> LeadStatus:
    """Where the outcome rules send ``lead`` (``was_called`` is asked only about a soft
    failure: only then does a call decide)."""
    if result.qualified:
        return LeadStatus(LEAD.move(lead.status.value, "qualify"))
    if result.decision == "hard_fail" or (result.decision == "fail" and was_called(lead.id)):
        return LeadStatus.UNQUALIFIED
    return lead.status


def _profile_of(result: QualificationResult) -> str | None:
    """The profile ``result`` names, as a lead's field holds it: a custom engine's
    name that the field refuses (too long, a control character) is a configuration
    error, raised before anything is written (the built-in engine checks its names
    when it is built)."""
    name = result.profile
    if name is None:
        return None
    return lead_field(
        "profile",
        name,
        lambda problem: (
            f"the engine's profile name {shown_name(name)} cannot be recorded as a lead's "
            f"profile ({problem}); rename the profile"
        ),
    )


def _changed_fields(
    lead: Lead, dest: LeadStatus, result: QualificationResult, now: datetime
) -> dict[str, Any]:
    """What moving ``lead`` to ``dest`` changes: its status (and since when), and for a
    qualified lead the sweet-spot tag and the profile it fits (a lead found unfit:
    :func:`unfit`); nothing else."""
    fields: dict[str, Any] = {}
    if dest is not lead.status:
        fields["status"], fields["status_at"] = dest, now
    if dest is LeadStatus.QUALIFIED:
        if SWEET_SPOT not in lead.tags:
            fields["tags"] = lead.tags | {SWEET_SPOT}
        if lead.profile != result.profile:
            fields["profile"] = _profile_of(result)
    elif dest is LeadStatus.UNQUALIFIED:
        fields.update(unfit(lead))
    return fields


def _tier(lead: Lead, *, qualified: bool) -> Tier:
    if not qualified:
        return Tier.COLD
    return Tier.HOT if lead.interest == Interest.HIGH else Tier.WARM
