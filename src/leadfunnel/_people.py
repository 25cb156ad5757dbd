"""People on the list: add them, capture their responses, edit them, avoid them.

Identity is the e-mail (trimmed, lower-cased) and the E.164 phone: the storage port's key
index refuses a second record with either (:class:`~leadfunnel.DuplicateError`), and a
match on an avoided person is an :class:`~leadfunnel.AvoidListedError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

import pydantic

from ._changes import (
    LOOKS,
    MANAGED,
    STATE_FIELD,
    bump,
    event,
    fill_from,
    lifecycle_of,
    load,
    refuse_erased,
    refuse_kept,
    refuse_overtaken,
    retrying,
)
from ._deals import lose_open_deals
from ._enums import ContactType, LeadStatus, Stage
from ._errors import (
    AvoidListedError,
    ConcurrencyError,
    DuplicateError,
    InvalidArgumentError,
    InvalidTransitionError,
    NotFoundError,
    _article,
    _key_kind,
)
from ._lifecycle import CONTACT, LEAD
from ._models import (
    Contact,
    Event,
    Lead,
    Opportunity,
    SubjectKind,
    field_values,
    identity_keys,
    is_avoided,
    state_of,
)
from ._privacy import suppress_former_keys
from ._protocols import Router, assign_owner, routing_data
from ._repository import ChangeSet, Repository, Suppression, settled_by_commit
from ._results import Serialised, model_data
from ._suppression import DROPPED_KEYS, Suppressor

__all__ = ["Captured", "add", "avoid", "avoid_into", "capture", "find", "holder_of", "update"]

_R = TypeVar("_R", bound=Lead | Contact | Opportunity)


@dataclass(frozen=True, slots=True)
class Captured(Serialised):
    """What :meth:`Funnel.capture_result` did: ``record`` carries the response; ``new``
    says whether it is a lead made just now (else a known person, a contact before its
    converted lead); ``event`` is the ``capture`` (or ``respond``) event recorded, whose
    ``data["fields"]`` lists the empty fields the response filled."""

    record: Lead | Contact
    new: bool
    event: Event

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "new", "record": {...}, "event": {...}}``, the models as JSON data."""
        return {
            "kind": self.record.kind,
            "new": self.new,
            "record": model_data(self.record),
            "event": model_data(self.event),
        }


_ADDABLE_LEAD_STATUSES = (
    LeadStatus.SUSPECT,
    LeadStatus.FARM_LIST,
    LeadStatus.RAW,
    LeadStatus.AVOID,
)


# What a captured lead may say it is: a response makes a suspect or farm-list person raw.
_CAPTURED_STATUSES = (LeadStatus.RAW, LeadStatus.SUSPECT, LeadStatus.FARM_LIST)


#: The fields that name a person: a row or record with none of them names nobody (a
#: trade-show badge has a name and a company, and is somebody).
NAMING_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "other_emails",
    "other_phones",
)
#: Why a row that names nobody is not imported (the Python API and the command line).
NAMES_NOBODY = (
    "names nobody: the row has no name, company, e-mail or phone; fill one in, or leave the row out"
)


def names_nobody(record: Lead | Contact) -> bool:
    """Whether ``record`` names nobody, as a CSV row that is refused does: none of
    :data:`NAMING_FIELDS` (a first or last name, a company, an e-mail or phone, a
    former one) holds a value. An erased person (``erased_at``) is not one: erasure
    leaves nobody named by design, and such a husk may be stored."""
    return record.erased_at is None and not any(
        getattr(record, name, None) for name in NAMING_FIELDS
    )


def add(
    repository: Repository,
    record: Lead | Contact,
    *,
    now: datetime,
    actor: str | None,
    reason: str | None,
    router: Router | None,
    suppressor: Suppressor,
) -> Lead | Contact:
    """Store a new lead or contact, refusing a duplicate or an avoided person."""
    stored = _prepare_new(record, now, "add", None)
    refuse_kept(record)
    holder = holder_of(repository, stored)
    if holder is not None and is_avoided(holder):
        _refuse_match(stored, holder)
    _refuse_suppressed(suppressor, stored)
    if holder is not None:
        _refuse_match(stored, holder)
    with settled_by_commit():  # a refusal before the commit gives the owner's turn back
        if isinstance(stored, Lead):
            stored = assign_owner(router, stored)  # only once it is certain to be stored
        routed = routing_data(router, stored)
        new = event(stored, "add", None, state_of(stored), now, actor, reason, routed)
        repository.commit(
            ChangeSet(inserts=[stored], events=[new], **_unsuppressed(suppressor, stored))
        )
    return stored


@retrying
def capture(
    repository: Repository,
    lead: Lead,
    *,
    now: datetime,
    actor: str | None,
    reason: str | None,
    router: Router | None,
    suppressor: Suppressor,
) -> Captured:
    """Record an inbound response: what carries it, and whether it is a new lead. A
    capture that lost a race (the person was stored, changed or avoided meanwhile)
    looks again (``retrying``)."""
    refuse_kept(lead)
    if lead.status not in _CAPTURED_STATUSES:
        # An inbound response makes a raw lead (a suspect or farm-list person who
        # responds is raw), or is news for a known person: any other status given with
        # it would be dropped without a word, an avoid-listed person made callable.
        raise InvalidArgumentError(
            "capture records an inbound response, which makes a raw lead; it cannot take "
            f"{_article(status := LeadStatus(lead.status).value)} {status} one: put a "
            "person on the avoid list with add(Lead(..., status='avoid')) or avoid(), and "
            "move leads with the triggers (qualify, disqualify)"
        )
    holder = holder_of(repository, lead)
    if holder is not None and is_avoided(holder):
        _refuse_match(lead, holder)
    _refuse_suppressed(suppressor, lead)
    if holder is None:
        fresh = lead.model_copy(update={"status": LeadStatus.RAW})
        with settled_by_commit():  # a refusal before the commit gives the turn back
            stored = _prepare_new(fresh, now, "capture", router)
            routed = routing_data(router, stored)
            new = event(stored, "capture", None, "raw", now, actor, reason, routed)
            try:
                repository.commit(
                    ChangeSet(inserts=[stored], events=[new], **_unsuppressed(suppressor, stored))
                )
            except DuplicateError:
                # Someone stored or avoided this person since we looked: look again
                # (capture retries, and refuses an avoided one).
                raise ConcurrencyError(stored.id, 0) from None
        return Captured(stored, True, new)
    if now < holder.created_at:
        # The person's own inquiry says they were there: one dated before they were
        # stored (forms processed out of order) is taken. But one dated by the clock
        # that another writer's storing of them overtook is dated by it again.
        refuse_overtaken(now, holder.created_at, holder)
    filled = fill_from(holder, lead)
    # An e-mail or phone another record holds is that record's, not news for this one.
    taken = repository.find_keys(identity_keys(lead))
    held = set(identity_keys(holder))
    for field_name, others in (("email", "other_emails"), ("phone", "other_phones")):
        value: str | None = getattr(lead, field_name)
        if value is None:
            continue
        key = f"{field_name}:{value.lower() if field_name == 'email' else value}"
        if taken.get(key, holder.id) != holder.id:
            filled.pop(field_name, None)
        elif field_name not in filled and key not in held:
            # A known person writing from a new address (found by the phone, say): the
            # address is theirs too, kept as merge keeps one, so the next inquiry from
            # it finds them instead of making a second lead.
            filled[others] = frozenset({*filled.get(others, getattr(holder, others)), value})
    state = state_of(holder)
    name, dest = "capture", state
    if isinstance(holder, Lead) and holder.status in (LeadStatus.SUSPECT, LeadStatus.FARM_LIST):
        name, dest = "respond", LEAD.move(state, "respond")
        filled["status"], filled["status_at"] = LeadStatus.RAW, now
    changes = ChangeSet()
    if filled:
        before = identity_keys(holder)
        holder = bump(holder, now, **filled)
        changes.updates.append(holder)
        # The keys it takes from the capture, checked again as it commits.
        gained = [k for k in identity_keys(holder) if k not in before]
        if gained:
            changes.unsuppressed, changes.digest = gained, suppressor.digest
    else:
        # Nothing to save, but the capture was decided on this holder (not avoided):
        # if it changed meanwhile (avoided, say), the commit fails and capture retries.
        changes.checks.append(holder)
    data: dict[str, Any] = {"fields": sorted(k for k in filled if k not in ("status", "status_at"))}
    if lead.notes is not None and "notes" not in filled and lead.notes != holder.notes:
        # The response's own words (the message of a form): the record keeps its notes
        # (only empty fields are filled), so its event keeps these, or they were lost.
        # Free text about the person: an erasure blanks it, as it does a reason.
        data["notes"] = lead.notes
    with settled_by_commit():  # a refusal before the commit gives the owner's turn back
        if name == "respond" and isinstance(holder, Lead) and holder.owner is None:
            # Raw now, to be called: routed as a lead that arrives raw is.
            holder = assign_owner(router, holder)
            changes.updates = [holder]
            data.update(routing_data(router, holder))
        recorded = event(holder, name, state, dest, now, actor, reason, data)
        changes.events.append(recorded)
        repository.commit(changes)
    return Captured(holder, False, recorded)


def avoid(
    repository: Repository,
    record_id: Any,
    *,
    now: datetime,
    actor: str | None,
    reason: str | None,
) -> Lead | Contact:
    """Put a lead or contact (and the contact a lead became) on the avoid list."""
    record: Lead | Contact = load(repository, record_id, (Lead, Contact))
    if is_avoided(record):
        return record
    changes = ChangeSet()
    result = avoid_into(repository, record, changes, now=now, actor=actor, reason=reason)
    repository.commit(changes)
    return result


def avoid_into(
    repository: Repository,
    record: Lead | Contact,
    changes: ChangeSet,
    *,
    now: datetime,
    actor: str | None,
    reason: str | None,
    former_keys: bool = True,
) -> Lead | Contact:
    """Add to ``changes`` what :func:`avoid` changes for ``record``, a person read just
    now, neither erased nor avoided; return ``record`` avoided. ``former_keys=False``
    leaves out the keys the person edited away before, for a caller that knows there
    are none (see :func:`~leadfunnel._privacy.suppress_former_keys`)."""
    targets: list[Lead | Contact] = [record]
    if isinstance(record, Lead) and record.contact_id is not None:
        contact = repository.get_many([record.contact_id]).get(record.contact_id)
        if isinstance(contact, Contact) and not is_avoided(contact):
            targets.append(contact)
    result: Lead | Contact = record
    for target in targets:
        source = state_of(target)
        if isinstance(target, Lead):
            dest = LEAD.move(source, "avoid")
            moved: Lead | Contact = bump(target, now, status=LeadStatus(dest), status_at=now)
        else:
            dest = CONTACT.move(source, "avoid")
            moved = bump(target, now, type=ContactType(dest))
        changes.updates.append(moved)
        changes.events.append(event(moved, "avoid", source, dest, now, actor, reason))
        if target is record:
            result = moved
        if isinstance(target, Contact):
            lose_open_deals(repository, target, now, actor, reason, changes)
    if former_keys:
        # Every key the person ever held stays avoided: those edited away before (on
        # any of its records) as well as those it holds now, which stay claimed in the
        # key index.
        suppress_former_keys(repository, record.id, changes)
    return result


def update(
    repository: Repository,
    record: _R,
    *,
    now: datetime,
    actor: str | None,
    reason: str | None,
    context: dict[str, Any],
    suppressor: Suppressor,
) -> _R:
    """Save the edited fields of ``record`` if nobody saved it since it was read."""
    found = repository.get(record.id)
    if type(found) is not type(record):
        raise NotFoundError(record.id, record.kind)
    refuse_erased(found)  # an erased person is never edited back
    if isinstance(found, Opportunity):  # nor their deals
        for person in repository.get_many([found.contact_id]).values():
            refuse_erased(person)
    stored = cast(_R, found)
    if stored.version != record.version:
        # A stale copy, whatever else someone changed meanwhile (its status, say): the
        # caller re-reads and retries, rather than be told its edit moves the status.
        raise ConcurrencyError(record.id, record.version, stored.version)
    kind: SubjectKind = record.kind
    state_field = STATE_FIELD[kind]
    old_state, new_state = state_of(stored), str(getattr(record, state_field))
    if old_state != new_state:
        raise InvalidTransitionError(
            kind,
            old_state,
            "update",
            lifecycle_of(kind).allowed(old_state),
            hint=f"update cannot change {state_field}: move it with one of these triggers",
        )
    if record.created_at != stored.created_at:
        # Reports, ages and paging count from it: an edit would rewrite history.
        raise InvalidArgumentError(
            f"{kind} {record.id}: created_at is when the record came to be "
            f"({stored.created_at.isoformat()}) and cannot be edited; an import's "
            "created_at (import_leads) dates a record as it is stored"
        )
    frozen = {"id", "created_at", "updated_at", "version", *MANAGED[kind]}
    edits = {
        name: getattr(record, name)
        for name in type(record).model_fields
        if name not in frozen and getattr(record, name) != getattr(stored, name)
    }
    managed = [n for n in MANAGED[kind] if getattr(record, n) != getattr(stored, n)]
    if managed:
        raise InvalidTransitionError(
            kind,
            old_state,
            "update",
            lifecycle_of(kind).allowed(old_state),
            hint=f"{', '.join(managed)} change only through the funnel's triggers",
        )
    if isinstance(stored, Opportunity) and "appointment_at" in edits:
        _check_appointment_edit(stored)
    if not edits:
        return stored
    # model_copy(update=...) skips validation: validate the edited record whole, from its
    # values (field_values: not a dump).
    edited = {**field_values(stored), **edits}
    checked = cast(_R, type(record).model_validate(edited, context=context))
    fresh = bump(checked, now)
    if fresh.version != stored.version + 1:
        fresh = cast(_R, fresh.model_copy(update={"version": stored.version + 1}))
    data: dict[str, Any] = {"fields": sorted(edits)}
    suppress: list[Suppression] = []
    added: list[str] = []
    if isinstance(stored, Lead) and stored.contact_id is not None:
        keys = [k for k in ("email", "phone", "other_emails", "other_phones") if k in edits]
        if keys:
            # Its contact holds the person's keys (dedupe, the avoid list): an e-mail
            # given to the converted lead would be nobody's, and let the person in again.
            raise InvalidArgumentError(
                f"lead {stored.id} was converted into contact {stored.contact_id}, which "
                f"holds the person's e-mails and phones: change {', '.join(keys)} there"
            )
    if isinstance(stored, (Lead, Contact)) and isinstance(fresh, (Lead, Contact)):
        before, after = identity_keys(stored), identity_keys(fresh)
        added = _refuse_suppressed_keys(suppressor, [k for k in after if k not in before], stored)
        dropped = [k for k in before if k not in after]
        if dropped:
            # What the person held before, as digests only: avoiding them later
            # suppresses these keys too (an edit never takes anyone off the list).
            data[DROPPED_KEYS] = suppressor.digests(dropped)
            if is_avoided(stored):
                suppress = suppressor.suppress(dropped, stored.id)
    new = event(fresh, "update", old_state, old_state, now, actor, reason, data)
    changes = ChangeSet(updates=[fresh], events=[new], suppress=suppress)
    if isinstance(fresh, (Lead, Contact)) and added:
        changes.unsuppressed, changes.digest = added, suppressor.digest
    try:
        repository.commit(changes)
    except DuplicateError as exc:
        if isinstance(exc, AvoidListedError) or not exc.key.startswith(("email:", "phone:")):
            raise
        # The store's message is an add's ("instead of adding again"): this is an edit
        # giving the person someone else's e-mail or phone.
        raise DuplicateError(
            exc.existing_id,
            exc.key,
            f"{exc.existing_id} already holds this {_key_kind(exc.key)}: two records "
            f"cannot share it; if they are one person, merge them (funnel.merge), else "
            f"give {fresh.kind} {fresh.id} another one",
        ) from None
    return fresh


def keys_of(*, email: str | None, phone: str | None, phone_region: str) -> tuple[str, ...]:
    """The identity keys of an e-mail and a phone, normalised as ``add`` normalises a
    person's (an :class:`~leadfunnel.InvalidArgumentError` for one that is not valid)."""
    try:
        probe = Lead.model_validate(
            {"email": email, "phone": phone}, context={"phone_region": phone_region}
        )
    except pydantic.ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        raise InvalidArgumentError(
            f"{problem['loc'][0]}={problem['input']!r}: {problem['msg']}"
        ) from None
    return identity_keys(probe)


def find(
    repository: Repository, *, email: str | None, phone: str | None, phone_region: str
) -> Lead | Contact | None:
    """The person holding ``email`` (else ``phone``), normalised as ``add`` does, through
    the key index: merged-away keys count, and a converted lead's keys are its contact's."""
    if email is None and phone is None:
        raise InvalidArgumentError("find() needs email= or phone= (or both)")
    keys = keys_of(email=email, phone=phone, phone_region=phone_region)
    for _ in range(LOOKS):
        holders = repository.find_keys(keys)
        for key in keys:  # the e-mail's holder first
            if key in holders:
                found = repository.get_many([holders[key]]).get(holders[key])
                if isinstance(found, (Lead, Contact)):
                    return found
                break  # its holder was merged away between the two reads: look again
        else:
            return None
    return None


def holder_of(repository: Repository, record: Lead | Contact) -> Lead | Contact | None:
    """The stored person sharing a key with ``record``: the avoided first, then a
    contact before a lead, then the e-mail's match before the phone's."""
    keys = identity_keys(record)
    if not keys:
        return None
    holders = repository.find_keys(keys)
    found = [
        r
        for r in repository.get_many(set(holders.values())).values()
        if r.id != record.id and isinstance(r, (Lead, Contact))
    ]
    if not found:
        return None
    rank = {holders[k]: i for i, k in reversed(list(enumerate(keys))) if k in holders}
    found.sort(key=lambda r: (not is_avoided(r), r.kind != "contact", rank[r.id]))
    return found[0]


def _refuse_suppressed(suppressor: Suppressor, record: Lead | Contact) -> None:
    found = suppressor.match(record)
    if found is not None:
        key, record_id = found
        raise AvoidListedError(record_id, key)


def _refuse_suppressed_keys(
    suppressor: Suppressor, keys: list[str], record: Lead | Contact
) -> list[str]:
    """Refuse an edit giving ``record`` a suppressed key, unless the person itself
    keeps it suppressed (an avoided record taking back a key it held); return the keys
    that are not suppressed at all, which the commit checks again."""
    banned = suppressor.banned(keys)
    own = {record.id, getattr(record, "lead_id", None), getattr(record, "contact_id", None)}
    for key in keys:
        if key in banned and banned[key] not in own:
            raise AvoidListedError(banned[key], key)
    return [key for key in keys if key not in banned]


def _unsuppressed(suppressor: Suppressor, record: Lead | Contact) -> dict[str, Any]:
    """The ``ChangeSet`` fields that have the store refuse ``record``'s keys if they
    are suppressed when it commits (someone avoided or erased since they were checked)."""
    return {"unsuppressed": list(identity_keys(record)), "digest": suppressor.digest}


def _refuse_match(record: Lead | Contact, holder: Lead | Contact) -> None:
    holders = set(identity_keys(holder))
    key = next((k for k in identity_keys(record) if k in holders), identity_keys(holder)[0])
    if is_avoided(holder):
        raise AvoidListedError(holder.id, key)
    raise DuplicateError(holder.id, key)


def _prepare_new(
    record: Lead | Contact, now: datetime, verb: str, router: Router | None
) -> Lead | Contact:
    if not isinstance(record, (Lead, Contact)):
        raise InvalidArgumentError(
            f"{verb} takes a Lead or a Contact, not {type(record).__name__}; "
            "open opportunities with set_appointment()"
        )
    if record.version != 0:
        raise DuplicateError(
            record.id,
            "id:" + str(record.id),
            f"{record.kind} {record.id} was already stored (version {record.version}); "
            "save changes with update() instead",
        )
    changes: dict[str, Any] = {"version": 1, "created_at": now, "updated_at": now}
    if isinstance(record, Lead):
        # A model_copy(update=...) skips validation and may carry a plain string.
        status = LeadStatus(record.status)
        changes["status"] = status
        if status not in _ADDABLE_LEAD_STATUSES:
            raise InvalidTransitionError(
                "lead",
                status.value,
                verb,
                None,
                hint="new leads start as suspect, farm_list, raw or avoid; "
                "then use the triggers to move them",
            )
        changes["status_at"] = now
        return assign_owner(router, record.model_copy(update=changes))
    changes["type"] = ContactType(record.type)
    return record.model_copy(update=changes)


def _check_appointment_edit(deal: Opportunity) -> None:
    """Refuse an ``update`` of the appointment time of a deal whose appointment is still
    to be judged or was judged already: whether an appointment sat is read from the
    deal's history, which a silent edit would rewrite (a no-show's time moved away
    would leave the appointments-sat figure of a period already reported)."""
    stage = Stage(deal.stage)
    if stage is Stage.APPOINTMENT_SET:
        hint = (
            "move the appointment with reschedule(), which records the time it moves "
            "from: a report still counts an appointment moved after its time as not sat"
        )
    elif stage in (Stage.WON, Stage.LOST):
        hint = (
            f"the appointment of a {stage.value} deal is part of its history, which "
            "reports read, and cannot be edited; to meet again, book a new appointment "
            "with set_appointment() on its contact"
        )
    else:
        return  # the appointment sat: its time is no report's to judge
    raise InvalidTransitionError(
        "opportunity",
        stage.value,
        "update",
        lifecycle_of("opportunity").allowed(stage.value),
        hint=f"appointment_at: {hint}",
    )
