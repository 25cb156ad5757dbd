"""The facade: :class:`Funnel`, the one object an application talks to."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar
from uuid import UUID, uuid4

import pydantic

from ._channels import check_drip, check_touch
from ._clock import Clock, SystemClock
from ._enums import Channel, ContactType, Interest, LeadStatus, LostReason, Outcome, Stage
from ._errors import (
    AvoidListedError,
    ConcurrencyError,
    ConfigError,
    DuplicateError,
    InvalidTransitionError,
    NotFoundError,
    PolicyError,
)
from ._lifecycle import CONTACT, LEAD, OPPORTUNITY
from ._memory import InMemoryRepository
from ._models import (
    SET_FIELDS,
    Contact,
    Event,
    Lead,
    Opportunity,
    Record,
    SubjectKind,
    Touch,
    _Person,
    _Stored,
    identity_keys,
    is_avoided,
    state_of,
)
from ._qualification import QualificationResult
from ._repository import ChangeSet, MergeLog, Move, Repository

if TYPE_CHECKING:
    from ._cadence import CadencePolicy, FollowUp
    from ._rep_lists import RepList, RepListName
    from ._reports import FunnelReport
    from ._repository import GroupBy

__all__ = ["Funnel", "ImportIssue", "ImportReport", "Router"]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_R = TypeVar("_R", Lead, Contact, Opportunity)
_S = TypeVar("_S", bound=_Stored)

Subject = Lead | Contact | Opportunity | UUID | str

_SWEET_SPOT = "sweet-spot"
_ADDABLE_LEAD_STATUSES = (
    LeadStatus.SUSPECT,
    LeadStatus.FARM_LIST,
    LeadStatus.RAW,
    LeadStatus.AVOID,
)
# The person fields a conversion copies from the lead onto its new contact: every field
# leads and contacts share, bar the stored record's own (id, timestamps, version).
_PERSON_FIELDS = tuple(name for name in _Person.model_fields if name not in _Stored.model_fields)
# Fields only triggers may change; ``update`` refuses edits to them.
_MANAGED = {
    "lead": ("status", "status_at", "contact_id", "profile"),
    "contact": ("type", "lead_id"),
    "opportunity": ("stage", "closed_at", "lost_reason", "contact_id", "lead_id"),
}
_STATE_FIELD = {"lead": "status", "contact": "type", "opportunity": "stage"}
_INTEREST_RANK = {Interest.NONE: 0, Interest.SLIGHT: 1, Interest.HIGH: 2}

#: Free-mail providers: sharing one of these domains says nothing about a company.
FREE_MAIL_DOMAINS = frozenset(
    {
        "aol.com",
        "gmail.com",
        "googlemail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "hotmail.com",
        "hotmail.co.uk",
        "icloud.com",
        "live.com",
        "mac.com",
        "mail.com",
        "mail.ru",
        "me.com",
        "msn.com",
        "outlook.com",
        "proton.me",
        "protonmail.com",
        "qq.com",
        "web.de",
        "yahoo.co.uk",
        "yahoo.com",
        "yandex.ru",
        "zoho.com",
    }
)


_EVENT = Event.model_construct(
    id=UUID(int=0),
    created_at=datetime.min.replace(tzinfo=UTC),
    updated_at=datetime.min.replace(tzinfo=UTC),
    version=1,
    subject_id=UUID(int=0),
    subject="lead",
    name="",
    source=None,
    dest=None,
    at=datetime.min.replace(tzinfo=UTC),
    actor=None,
    reason=None,
    data={},
)


class Router(Protocol):
    """Assigns an owner to a new lead, and names who backs an owner up."""

    def assign(self, lead: Lead) -> str | None:
        """The owner for a new lead, or ``None`` to leave it unassigned."""
        ...

    def backup_for(self, owner: str | None, lead: Lead | Contact | None = None) -> str | None:
        """Who takes over an overdue follow-up of ``owner``'s."""
        ...


class Engine(Protocol):
    """What ``Funnel`` needs of a qualification engine."""

    def evaluate(self, lead: Lead) -> QualificationResult:
        """Judge ``lead`` without changing anything."""
        ...


@dataclass(frozen=True, slots=True)
class ImportIssue:
    """One row ``import_leads`` did not add: its 1-based number and why."""

    row: int
    reason: str
    existing_id: UUID | None = None


@dataclass(slots=True)
class ImportReport:
    """The outcome of ``import_leads``: every row lands in exactly one list."""

    added: list[UUID] = field(default_factory=list)
    duplicates: list[ImportIssue] = field(default_factory=list)
    avoided: list[ImportIssue] = field(default_factory=list)
    rejected: list[ImportIssue] = field(default_factory=list)

    @property
    def total(self) -> int:
        """How many rows were read."""
        return len(self.added) + len(self.duplicates) + len(self.avoided) + len(self.rejected)

    def __str__(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.duplicates)} duplicates, "
            f"{len(self.avoided)} avoided, {len(self.rejected)} rejected"
        )


def _retrying(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Re-run a trigger that lost a race: it re-reads the subject, so a retry is the
    same call made a moment later, validated against the state that won."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        for _ in range(4):
            try:
                return method(*args, **kwargs)
            except ConcurrencyError:
                continue
        return method(*args, **kwargs)

    return wrapper


class Funnel:
    """A lead funnel over a repository: the one object an application talks to.

    ``Funnel()`` keeps everything in memory; pass ``SqlRepository(url)`` to persist.
    Every method that changes something takes the subject (a model or its id),
    ``at=`` (default: ``clock.now()``), ``actor=`` and ``reason=``, checks the move
    against the lifecycle, stores the change and one event per changed record
    atomically, and returns the fresh record.
    """

    def __init__(
        self,
        repository: Repository | None = None,
        *,
        engine: Engine | None = None,
        cadence: CadencePolicy | None = None,
        clock: Clock | None = None,
        router: Router | None = None,
        phone_region: str = "US",
        free_mail_domains: Iterable[str] = FREE_MAIL_DOMAINS,
    ) -> None:
        self.repository: Repository = repository if repository is not None else InMemoryRepository()
        self.engine = engine
        self._cadence = cadence
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.router = router
        self.phone_region = phone_region
        self.free_mail_domains = frozenset(d.lower() for d in free_mail_domains)
        self._context = {"phone_region": phone_region}

    @property
    def cadence(self) -> CadencePolicy:
        """The follow-up cadence (the default policy unless one was given)."""
        if self._cadence is None:
            from ._cadence import CadencePolicy

            self._cadence = CadencePolicy()
        return self._cadence

    def __repr__(self) -> str:
        return f"Funnel({self.repository!r}, engine={self.engine!r}, clock={self.clock!r})"

    # --- helpers ----------------------------------------------------------------------

    def _now(self, at: datetime | None) -> datetime:
        if at is None:
            return self.clock.now()
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(
                f"at={at.isoformat()} has no timezone; pass an aware datetime "
                "(for example datetime(..., tzinfo=timezone.utc))"
            )
        return at

    @staticmethod
    def _id(subject: Subject) -> UUID:
        if isinstance(subject, (Lead, Contact, Opportunity)):
            return subject.id
        if isinstance(subject, UUID):
            return subject
        try:
            return UUID(str(subject))
        except ValueError:
            raise NotFoundError(str(subject)) from None

    def _load(self, subject: Subject, kind: type[_R] | tuple[type[Any], ...]) -> _R:
        record = self.repository.get(self._id(subject))
        if not isinstance(record, kind):
            names = kind if isinstance(kind, tuple) else (kind,)
            wanted = " or ".join(k.kind for k in names)
            raise NotFoundError(record.id, wanted)
        return record

    @staticmethod
    def _event(
        record: Record,
        name: str,
        source: str | None,
        dest: str | None,
        at: datetime,
        actor: str | None,
        reason: str | None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        # Built from values the funnel has already validated: skip re-validation. Copying
        # a prototype costs a third of model_construct, and this is on every write.
        return _EVENT.model_copy(
            update={
                "id": uuid4(),
                "created_at": at,
                "updated_at": at,
                "version": 1,
                "subject_id": record.id,
                "subject": record.kind,
                "name": name,
                "source": source,
                "dest": dest,
                "at": at,
                "actor": actor,
                "reason": reason,
                "data": data if data is not None else {},
            }
        )

    @staticmethod
    def _bump(record: _S, at: datetime, **changes: Any) -> _S:
        changes["version"] = record.version + 1
        changes["updated_at"] = at
        return record.model_copy(update=changes)

    def _holder(self, record: Lead | Contact) -> Lead | Contact | None:
        """The stored person sharing a key with ``record``: a contact before a lead."""
        keys = identity_keys(record)
        holders = self.repository.find_keys(keys)
        found = [
            r
            for r in self.repository.get_many(set(holders.values())).values()
            if r.id != record.id and isinstance(r, (Lead, Contact))
        ]
        if not found:
            return None
        # Avoided first, contacts before leads, then the e-mail's match before the phone's.
        rank = {holders[k]: i for i, k in reversed(list(enumerate(keys))) if k in holders}
        found.sort(key=lambda r: (not is_avoided(r), r.kind != "contact", rank[r.id]))
        return found[0]

    @staticmethod
    def _refuse_match(record: Lead | Contact, holder: Lead | Contact) -> None:
        holders = set(identity_keys(holder))
        key = next((k for k in identity_keys(record) if k in holders), identity_keys(holder)[0])
        if is_avoided(holder):
            raise AvoidListedError(holder.id, key)
        raise DuplicateError(holder.id, key)

    def _route(self, lead: Lead) -> Lead:
        if self.router is None or lead.owner is not None:
            return lead
        owner = self.router.assign(lead)
        return lead if owner is None else lead.model_copy(update={"owner": owner})

    # --- adding people ----------------------------------------------------------------

    def add(
        self,
        record: Lead | Contact,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Lead | Contact:
        """Store a new lead (suspect, farm_list, raw or avoid) or contact.

        Raises :class:`DuplicateError` if a stored lead or contact has the same e-mail
        or phone, :class:`AvoidListedError` if that record is avoid-listed.
        """
        now = self._now(at)
        stored = self._prepare_new(record, now, "add")
        holder = self._holder(stored)
        if holder is not None:
            self._refuse_match(stored, holder)
        event = self._event(stored, "add", None, state_of(stored), now, actor, reason)
        self.repository.commit(ChangeSet(inserts=[stored], events=[event]))
        return stored

    def _prepare_new(self, record: Lead | Contact, now: datetime, verb: str) -> Lead | Contact:
        if not isinstance(record, (Lead, Contact)):
            raise TypeError(
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
                    (),
                    hint="new leads start as suspect, farm_list, raw or avoid; "
                    "then use the triggers to move them",
                )
            changes["status_at"] = now
            record = self._route(record)
        else:
            changes["type"] = ContactType(record.type)
        return record.model_copy(update=changes)

    def capture(
        self,
        lead: Lead,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Lead | Contact:
        """Record an inbound response and return the record that carries it.

        A new person becomes a raw lead. A known one (same e-mail or phone) is not
        duplicated: a suspect or farm-list lead responds (moves to raw), anyone else
        gets a ``capture`` event; either way its empty fields are filled from ``lead``.
        A match on the avoid list raises :class:`AvoidListedError` and records nothing.
        """
        now = self._now(at)
        for _ in range(4):
            try:
                return self._capture(lead, now, actor, reason)
            except ConcurrencyError:
                continue
        return self._capture(lead, now, actor, reason)

    def _capture(
        self, lead: Lead, now: datetime, actor: str | None, reason: str | None
    ) -> Lead | Contact:
        holder = self._holder(lead)
        if holder is None:
            fresh = lead.model_copy(update={"status": LeadStatus.RAW})
            stored = self._prepare_new(fresh, now, "capture")
            event = self._event(stored, "capture", None, "raw", now, actor, reason)
            try:
                self.repository.commit(ChangeSet(inserts=[stored], events=[event]))
            except DuplicateError:
                # Someone stored this person since we looked: look again (capture retries).
                raise ConcurrencyError(stored.id, 0) from None
            return stored
        if is_avoided(holder):
            self._refuse_match(lead, holder)
        filled = _fill_from(holder, lead)
        # An e-mail or phone another record holds is that record's, not news for this one.
        taken = self.repository.find_keys(identity_keys(lead))
        for field_name in ("email", "phone"):
            value: str | None = filled.get(field_name)
            if value is None:
                continue
            key = f"{field_name}:{value.lower() if field_name == 'email' else value}"
            if taken.get(key, holder.id) != holder.id:
                del filled[field_name]
        state = state_of(holder)
        name, dest = "capture", state
        if isinstance(holder, Lead) and holder.status in (LeadStatus.SUSPECT, LeadStatus.FARM_LIST):
            name, dest = "respond", LEAD.move(state, "respond")
            filled["status"], filled["status_at"] = LeadStatus.RAW, now
        changes = ChangeSet()
        if filled:
            holder = self._bump(holder, now, **filled)
            changes.updates.append(holder)
        data = {"fields": sorted(k for k in filled if k not in ("status", "status_at"))}
        changes.events.append(self._event(holder, name, state, dest, now, actor, reason, data))
        self.repository.commit(changes)
        return holder

    def import_leads(
        self,
        rows: Iterable[Mapping[str, Any] | Lead],
        *,
        status: LeadStatus | str | None = None,
        chunk_size: int = 1000,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
        on_progress: Callable[[ImportReport], None] | None = None,
    ) -> ImportReport:
        """Add many leads; never raises for one bad row.

        Rows are mappings of ``Lead`` fields (or ``Lead`` objects). Each lands in one
        list of the returned :class:`ImportReport`: ``added``, ``duplicates`` (of a
        stored record or of an earlier row), ``avoided`` or ``rejected`` (with the
        validation error). Rows are stored in chunks of ``chunk_size``, each chunk in
        one transaction, so memory stays flat however long ``rows`` is.
        """
        from ._importing import run_import

        return run_import(
            self,
            rows,
            status=LeadStatus(status) if status is not None else None,
            chunk_size=chunk_size,
            at=self._now(at),
            actor=actor,
            reason=reason,
            on_progress=on_progress,
        )

    # --- lead triggers ----------------------------------------------------------------

    def _lead_move(
        self,
        subject: Subject,
        trigger: str,
        at: datetime | None,
        actor: str | None,
        reason: str | None,
        *,
        force: bool = False,
        data: dict[str, Any] | None = None,
        **changes: Any,
    ) -> Lead:
        now = self._now(at)
        lead: Lead = self._load(subject, Lead)
        source = lead.status.value
        dest = LEAD.move(source, trigger, force=force)
        moved = self._bump(lead, now, status=LeadStatus(dest), status_at=now, **changes)
        event = self._event(moved, trigger, source, dest, now, actor, reason, data)
        self.repository.commit(ChangeSet(updates=[moved], events=[event]))
        return moved

    @_retrying
    def farm(
        self,
        lead: Subject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Lead:
        """A suspect fits the profile on paper: move it to the farm list."""
        return self._lead_move(lead, "farm", at, actor, reason)

    @_retrying
    def respond(
        self,
        lead: Subject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Lead:
        """A suspect or farm-list lead showed interest: it becomes a raw lead."""
        return self._lead_move(lead, "respond", at, actor, reason)

    @_retrying
    def disqualify(
        self,
        lead: Subject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Lead:
        """Reviewed and unfit: the lead stays on the list for e-mail drip only."""
        return self._lead_move(lead, "disqualify", at, actor, reason)

    @_retrying
    def avoid(
        self,
        subject: Subject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Lead | Contact:
        """Put a lead or contact on the avoid list: never market to them again.

        Avoiding a converted lead avoids the contact it became too. An avoided contact's
        open deals are closed as lost, reason ``avoid``, in the same change: nobody
        should go on selling to them. Avoiding an avoided record changes and records
        nothing.
        """
        now = self._now(at)
        record: Lead | Contact = self._load(subject, (Lead, Contact))
        if is_avoided(record):
            return record
        changes = ChangeSet()
        targets: list[Lead | Contact] = [record]
        if isinstance(record, Lead) and record.contact_id is not None:
            contact = self.repository.get_many([record.contact_id]).get(record.contact_id)
            if isinstance(contact, Contact) and not is_avoided(contact):
                targets.append(contact)
        result: Lead | Contact = record
        for target in targets:
            source = state_of(target)
            if isinstance(target, Lead):
                dest = LEAD.move(source, "avoid")
                moved: Lead | Contact = self._bump(
                    target, now, status=LeadStatus(dest), status_at=now
                )
            else:
                dest = CONTACT.move(source, "avoid")
                moved = self._bump(target, now, type=ContactType(dest))
            changes.updates.append(moved)
            changes.events.append(self._event(moved, "avoid", source, dest, now, actor, reason))
            if target is record:
                result = moved
            if isinstance(target, Contact):
                self._lose_open_deals(target, now, actor, reason, changes)
        self.repository.commit(changes)
        return result

    def _lose_open_deals(
        self,
        contact: Contact,
        now: datetime,
        actor: str | None,
        reason: str | None,
        changes: ChangeSet,
    ) -> None:
        """Close ``contact``'s open deals as lost, reason ``avoid``, into ``changes``
        (those it does not change already)."""
        changing = {record.id for record in changes.updates}
        for deal in self.repository.opportunities(contact_id=contact.id):
            if not deal.is_open or deal.id in changing:
                continue
            source = deal.stage.value
            dest = OPPORTUNITY.move(source, "lose")
            lost = self._bump(
                deal, now, stage=Stage(dest), lost_reason=LostReason.AVOID, closed_at=now
            )
            changes.updates.append(lost)
            changes.events.append(
                self._event(
                    lost,
                    "lose",
                    source,
                    dest,
                    now,
                    actor,
                    reason or LostReason.AVOID.value,
                    {"lost_reason": LostReason.AVOID.value},
                )
            )

    @_retrying
    def qualify(
        self,
        lead: Subject,
        *,
        force: bool = False,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> QualificationResult:
        """Judge a raw (or unqualified) lead with the engine and move it accordingly.

        A fit qualifies it (tagged ``sweet-spot``, ``profile`` recorded); missing data
        leaves it raw; hard failures in every profile disqualify it at once; soft
        failures disqualify it only once it has had a ``call`` touch. ``force=True``
        qualifies by hand, without the engine. One ``qualify`` event is recorded
        whatever the outcome; the result's ``status`` says where the lead went.
        """
        now = self._now(at)
        record: Lead = self._load(lead, Lead)
        source = record.status.value
        if not LEAD.can(source, "qualify"):
            LEAD.move(source, "qualify")  # raises, naming the allowed triggers
        if force:
            result = QualificationResult(
                qualified=True,
                decision="qualified",
                score=1.0,
                tier=_tier(record, qualified=True),
            )
        elif self.engine is None:
            raise ConfigError(
                "no qualification engine configured: pass Funnel(engine=QualificationEngine"
                "(...)), or qualify by hand with qualify(lead, force=True, reason=...)"
            )
        else:
            result = self.engine.evaluate(record)
        dest = self._qualify_dest(record, result)
        changes: dict[str, Any] = {}
        if dest != source:
            changes["status"], changes["status_at"] = LeadStatus(dest), now
        if dest == LeadStatus.QUALIFIED:
            changes["tags"] = record.tags | {_SWEET_SPOT}
            changes["profile"] = result.profile
        data = _result_data(result, forced=force)
        moved = self._bump(record, now, **changes)
        event = self._event(moved, "qualify", source, dest, now, actor, reason, data)
        self.repository.commit(ChangeSet(updates=[moved], events=[event]))
        return result.with_status(LeadStatus(dest))

    def _qualify_dest(self, lead: Lead, result: QualificationResult) -> str:
        state = lead.status.value
        if result.qualified:
            return LEAD.move(state, "qualify")
        if result.decision == "undecided":
            return state
        if result.decision == "hard_fail" or self._was_called(lead.id):
            return "unqualified"
        return state

    def _was_called(self, lead_id: UUID) -> bool:
        return any(t.channel == Channel.CALL for t in self.repository.touches(lead_id))

    def qualify_all(
        self,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
        status: LeadStatus | str = LeadStatus.RAW,
    ) -> dict[str, int]:
        """Qualify every lead with ``status`` (raw by default); count where they went.

        Returns a mapping with ``qualified``, ``unqualified``, ``waiting`` (left raw:
        missing data, or a soft failure waiting for a call) and ``skipped`` (leads that
        moved under our feet).
        """
        counts = {"qualified": 0, "unqualified": 0, "waiting": 0, "skipped": 0}
        for lead in self.repository.leads(status=LeadStatus(status)):
            try:
                result = self.qualify(lead, at=at, actor=actor, reason=reason)
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

    # --- appointments and deals -------------------------------------------------------

    @_retrying
    def set_appointment(
        self,
        subject: Lead | Contact | UUID | str,
        appointment_at: datetime | None = None,
        owner: str | None = None,
        setter: str | None = None,
        force: bool = False,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Opportunity:
        """Book an appointment: open an opportunity at ``appointment_set``.

        A qualified lead (a raw one with ``force=True``) is converted into a prospect
        contact first; an existing contact (prospect or client; unqualified with
        ``force=True``) just gets a new opportunity.
        """
        now = self._now(at)
        if appointment_at is not None:
            self._now(appointment_at)  # must be aware
        record: Lead | Contact = self._load(subject, (Lead, Contact))
        changes = ChangeSet()
        if isinstance(record, Lead):
            source = record.status.value
            if record.contact_id is not None:
                raise InvalidTransitionError(
                    "lead",
                    source,
                    "convert",
                    LEAD.allowed(source),
                    hint=f"it became contact {record.contact_id}: set the appointment on it",
                )
            dest = LEAD.move(source, "convert", force=force)
            contact = Contact.model_construct(
                id=uuid4(),
                created_at=now,
                updated_at=now,
                version=1,
                type=ContactType.PROSPECT,
                lead_id=record.id,
                **{name: getattr(record, name) for name in _PERSON_FIELDS},
            )
            if owner is not None:
                contact = contact.model_copy(update={"owner": owner})
            lead = self._bump(
                record, now, status=LeadStatus(dest), status_at=now, contact_id=contact.id
            )
            changes.updates.append(lead)
            changes.inserts.append(contact)
            changes.events.append(
                self._event(
                    lead,
                    "convert",
                    source,
                    dest,
                    now,
                    actor,
                    reason,
                    {"contact_id": str(contact.id)},
                )
            )
            changes.events.append(
                self._event(
                    contact,
                    "convert",
                    None,
                    contact.type.value,
                    now,
                    actor,
                    reason,
                    {"lead_id": str(lead.id)},
                )
            )
            lead_id: UUID | None = lead.id
        else:
            contact = record
            state = contact.type.value
            if state not in ("prospect", "client") and not (force and state == "unqualified"):
                raise InvalidTransitionError(
                    "contact",
                    state,
                    "set_appointment",
                    ("set_appointment",) if state in ("prospect", "client") else (),
                    hint="appointments are for prospects and clients"
                    + (
                        "; pass force=True to book an unqualified contact"
                        if state == "unqualified"
                        else ""
                    ),
                )
            lead_id = contact.lead_id
        opportunity = Opportunity.model_construct(
            id=uuid4(),
            created_at=now,
            updated_at=now,
            version=1,
            contact_id=contact.id,
            lead_id=lead_id,
            owner=owner if owner is not None else contact.owner,
            setter=setter,
            stage=Stage.APPOINTMENT_SET,
            appointment_at=appointment_at,
            amount=None,
            lost_reason=None,
            lost_note=None,
            closed_at=None,
        )
        changes.inserts.append(opportunity)
        changes.events.append(
            self._event(
                opportunity,
                "set_appointment",
                None,
                "appointment_set",
                now,
                actor,
                reason,
                {"contact_id": str(contact.id)},
            )
        )
        self.repository.commit(changes)
        return opportunity

    def _deal_move(
        self,
        subject: Subject,
        trigger: str,
        at: datetime | None,
        actor: str | None,
        reason: str | None,
        *,
        force: bool = False,
        data: dict[str, Any] | None = None,
        contact_trigger: str | None = None,
        **changes: Any,
    ) -> Opportunity:
        now = self._now(at)
        deal: Opportunity = self._load(subject, Opportunity)
        source = deal.stage.value
        dest = OPPORTUNITY.move(source, trigger, force=force)
        if dest in ("won", "lost"):
            changes["closed_at"] = now
        moved = self._bump(deal, now, stage=Stage(dest), **changes)
        change_set = ChangeSet(
            updates=[moved],
            events=[self._event(moved, trigger, source, dest, now, actor, reason, data)],
        )
        if contact_trigger is not None:
            self._move_contact(deal.contact_id, contact_trigger, now, actor, reason, change_set)
        self.repository.commit(change_set)
        return moved

    def _move_contact(
        self,
        contact_id: UUID,
        trigger: str,
        now: datetime,
        actor: str | None,
        reason: str | None,
        changes: ChangeSet,
    ) -> None:
        contact = self.repository.get_many([contact_id]).get(contact_id)
        if not isinstance(contact, Contact):
            return
        source = contact.type.value
        if not CONTACT.can(source, trigger):
            return  # a client stays a client, an avoided contact stays avoided
        dest = CONTACT.move(source, trigger)
        if dest == source:
            return
        moved = self._bump(contact, now, type=ContactType(dest))
        changes.updates.append(moved)
        changes.events.append(self._event(moved, trigger, source, dest, now, actor, reason))
        if dest == ContactType.AVOID:
            self._lose_open_deals(moved, now, actor, reason, changes)

    @_retrying
    def sit(
        self,
        opportunity: Subject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Opportunity:
        """The appointment took place."""
        return self._deal_move(opportunity, "sit", at, actor, reason)

    @_retrying
    def propose(
        self,
        opportunity: Subject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Opportunity:
        """A proposal is on the table; negotiating."""
        return self._deal_move(opportunity, "propose", at, actor, reason)

    @_retrying
    def send_contract(
        self,
        opportunity: Subject,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Opportunity:
        """The contract went out."""
        return self._deal_move(opportunity, "send_contract", at, actor, reason)

    @_retrying
    def win(
        self,
        opportunity: Subject,
        *,
        amount: Any = None,
        force: bool = False,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Opportunity:
        """Closed won (from ``contract_sent``; from ``proposing`` with ``force=True``).

        The contact becomes a client.
        """
        changes: dict[str, Any] = {}
        if amount is not None:
            changes["amount"] = _money(amount)
        return self._deal_move(
            opportunity,
            "win",
            at,
            actor,
            reason,
            force=force,
            data={"amount": str(changes["amount"])} if changes else None,
            contact_trigger="win",
            **changes,
        )

    @_retrying
    def lose(
        self,
        opportunity: Subject,
        *,
        reason: LostReason | str,
        note: str | None = None,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> Opportunity:
        """Closed lost, for a :class:`LostReason`.

        ``unqualified`` makes the contact unqualified (a client stays a client);
        ``avoid`` puts the contact on the avoid list; otherwise it stays a prospect,
        followed up on the contact cadence.
        """
        try:
            lost = LostReason(reason)
        except ValueError:
            raise ValueError(
                f"{reason!r} is not a lost reason; use one of: "
                + ", ".join(r.value for r in LostReason)
            ) from None
        contact_trigger = {LostReason.UNQUALIFIED: "disqualify", LostReason.AVOID: "avoid"}
        return self._deal_move(
            opportunity,
            "lose",
            at,
            actor,
            note or lost.value,
            data={"lost_reason": lost.value},
            contact_trigger=contact_trigger.get(lost),
            lost_reason=lost,
            lost_note=note,
        )

    @_retrying
    def reschedule(
        self,
        opportunity: Subject,
        *,
        appointment_at: datetime,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Opportunity:
        """Move a set appointment to a new time."""
        self._now(appointment_at)
        deal: Opportunity = self._load(opportunity, Opportunity)
        data = {
            "from": deal.appointment_at.isoformat() if deal.appointment_at else None,
            "to": appointment_at.isoformat(),
        }
        return self._deal_move(
            deal, "reschedule", at, actor, reason, data=data, appointment_at=appointment_at
        )

    # --- touches ----------------------------------------------------------------------

    def touch(
        self,
        subject: Lead | Contact | UUID | str,
        channel: Channel | str,
        outcome: Outcome | str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        note: str | None = None,
        reason: str | None = None,
    ) -> Touch:
        """Log one follow-up on a lead or contact and return it.

        Refused with :class:`PolicyError` (and nothing stored) where the channel policy
        forbids the channel, or the person is on drip (past its cadence's touch limit:
        e-mail only, unless the touch records a reply). An ``opted_out`` outcome adds
        the channel to the person's ``opt_outs``.
        """
        now = self._now(at)
        channel, outcome = Channel(channel), Outcome(outcome)
        for attempt in range(4):
            record: Lead | Contact = self._load(subject, (Lead, Contact, Opportunity))
            check_touch(record, channel)
            check_drip(self.repository, self.cadence, record, channel, outcome)
            touch = Touch.model_construct(
                id=uuid4(),
                created_at=now,
                updated_at=now,
                version=1,
                subject_id=record.id,
                channel=channel,
                outcome=outcome,
                at=now,
                actor=actor,
                note=note,
            )
            changes = ChangeSet(touches=[touch])
            if outcome == Outcome.OPTED_OUT and channel not in record.opt_outs:
                record = self._bump(record, now, opt_outs=record.opt_outs | {channel})
                changes.updates.append(record)
            state = state_of(record)
            changes.events.append(
                self._event(
                    record,
                    "touch",
                    state,
                    state,
                    now,
                    actor,
                    reason or note,
                    {"channel": channel.value, "outcome": outcome.value, "touch_id": str(touch.id)},
                )
            )
            try:
                self.repository.commit(changes)
            except ConcurrencyError:
                if attempt == 3:
                    raise
                continue
            return touch
        raise AssertionError("unreachable")  # pragma: no cover

    # --- editing ----------------------------------------------------------------------

    def update(
        self,
        record: _R,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> _R:
        """Save edited fields of a stored record, if nobody saved it in between.

        A stale copy raises :class:`ConcurrencyError`; a changed state (status, type,
        stage) raises :class:`InvalidTransitionError`: states move only by triggers.
        """
        now = self._now(at)
        stored = self.repository.get(record.id)
        if type(stored) is not type(record):
            raise NotFoundError(record.id, record.kind)
        kind: SubjectKind = record.kind
        state_field = _STATE_FIELD[kind]
        old_state, new_state = state_of(stored), str(getattr(record, state_field))
        if old_state != new_state:
            raise InvalidTransitionError(
                kind,
                old_state,
                "update",
                _lifecycle_of(kind).allowed(old_state),
                hint=f"update cannot change {state_field}: move it with one of these triggers",
            )
        if stored.version != record.version:
            raise ConcurrencyError(record.id, record.version, stored.version)
        frozen = {"id", "created_at", "updated_at", "version", *_MANAGED[kind]}
        edits = {
            name: getattr(record, name)
            for name in type(record).model_fields
            if name not in frozen and getattr(record, name) != getattr(stored, name)
        }
        managed = [n for n in _MANAGED[kind] if getattr(record, n) != getattr(stored, n)]
        if managed:
            raise InvalidTransitionError(
                kind,
                old_state,
                "update",
                _lifecycle_of(kind).allowed(old_state),
                hint=f"{', '.join(managed)} change only through the funnel's triggers",
            )
        if not edits:
            return stored
        # model_copy(update=...) skips validation: validate the edited record whole.
        checked = type(record).model_validate(
            {**stored.model_dump(), **edits}, context=self._context
        )
        fresh = self._bump(checked, now)
        if fresh.version != stored.version + 1:
            fresh = fresh.model_copy(update={"version": stored.version + 1})
        event = self._event(
            fresh, "update", old_state, old_state, now, actor, reason, {"fields": sorted(edits)}
        )
        self.repository.commit(ChangeSet(updates=[fresh], events=[event]))
        return fresh

    # --- reading ----------------------------------------------------------------------

    def get(self, id: UUID | str) -> Lead | Contact | Opportunity:
        """The stored record with this id, or :class:`NotFoundError`."""
        return self.repository.get(self._id(id))

    def leads(
        self,
        *,
        status: LeadStatus | str | None = None,
        tag: str | None = None,
        source: str | None = None,
        owner: str | None = None,
        created_since: datetime | None = None,
        created_until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Lead]:
        """Leads matching every given filter, in the order they were added."""
        return self.repository.leads(
            status=LeadStatus(status) if status is not None else None,
            tag=tag,
            source=source,
            owner=owner,
            created_since=created_since,
            created_until=created_until,
            limit=limit,
        )

    def contacts(
        self,
        *,
        type: ContactType | str | None = None,
        tag: str | None = None,
        source: str | None = None,
        owner: str | None = None,
        limit: int | None = None,
    ) -> list[Contact]:
        """Contacts matching every given filter, in the order they were added."""
        return self.repository.contacts(
            type=ContactType(type) if type is not None else None,
            tag=tag,
            source=source,
            owner=owner,
            limit=limit,
        )

    def opportunities(
        self,
        *,
        stage: Stage | str | None = None,
        owner: str | None = None,
        setter: str | None = None,
        contact_id: UUID | str | None = None,
        limit: int | None = None,
    ) -> list[Opportunity]:
        """Opportunities matching every given filter, in the order they were opened."""
        return self.repository.opportunities(
            stage=Stage(stage) if stage is not None else None,
            owner=owner,
            setter=setter,
            contact_id=self._id(contact_id) if contact_id is not None else None,
            limit=limit,
        )

    def history(self, subject: Subject) -> list[Event]:
        """The subject's events, oldest first."""
        return self.repository.history(self._id(subject))

    def touches(self, subject: Subject) -> list[Touch]:
        """The touches logged on a lead or contact, oldest first."""
        return self.repository.touches(self._id(subject))

    # --- duplicates -------------------------------------------------------------------

    def similar(
        self, subject: Lead | Contact | UUID | str, *, limit: int = 20
    ) -> list[Lead | Contact]:
        """Likely duplicates that ``add`` could not refuse, best first.

        Candidates share the company's e-mail domain (free-mail domains excepted), the
        company, or a close person name; each clue adds to the score.
        """
        record: Lead | Contact = self._load(subject, (Lead, Contact))
        domain = record.email.rpartition("@")[2].lower() if record.email else None
        if domain in self.free_mail_domains:
            domain = None
        candidates = self.repository.people_like(
            email_domain=domain,
            company=record.company,
            last_name=record.last_name,
            kind=record.kind,
        )
        name = record.full_name.casefold()
        scored: list[tuple[float, Lead | Contact]] = []
        for other in candidates:
            if other.id == record.id:
                continue
            score = 0.0
            if domain and other.email and other.email.rpartition("@")[2].lower() == domain:
                score += 0.4
            if (
                record.company
                and other.company
                and (record.company.strip().casefold() == other.company.strip().casefold())
            ):
                score += 0.3
            other_name = other.full_name.casefold()
            if name and other_name:
                ratio = difflib.SequenceMatcher(None, name, other_name).ratio()
                if ratio >= 0.8:
                    score += 0.3 * ratio
            if score > 0:  # any one clue makes a likely duplicate
                scored.append((score, other))
        scored.sort(key=lambda pair: -pair[0])
        return [other for _, other in scored[:limit]]

    @_retrying
    def merge(
        self,
        keep: Lead | Contact | UUID | str,
        other: Lead | Contact | UUID | str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Lead | Contact:
        """Merge a duplicate into ``keep`` and return the merged ``keep``.

        ``keep``'s empty fields are filled from ``other``, tags, needs and opt-outs are
        united, and ``other``'s touches, deals and history move to ``keep``. ``other``
        is removed; a merge log lets :meth:`unmerge` undo it exactly.
        """
        now = self._now(at)
        kept: Lead | Contact = self._load(keep, (Lead, Contact))
        gone: Lead | Contact = self._load(other, (Lead, Contact))
        if kept.id == gone.id:
            raise ValueError("cannot merge a record into itself")
        if kept.kind != gone.kind:
            raise ValueError(
                f"cannot merge a {gone.kind} into a {kept.kind}: merge records of one kind"
            )
        for record in (kept, gone):
            if isinstance(record, Lead) and record.contact_id is not None:
                raise InvalidTransitionError(
                    "lead",
                    record.status.value,
                    "merge",
                    (),
                    hint=f"lead {record.id} was converted: merge its contact instead",
                )
        if is_avoided(gone) and not is_avoided(kept):
            raise PolicyError(
                f"{gone.kind} {gone.id} is on the avoid list: avoid {kept.id} first, "
                "or merge the other way round"
            )
        field_name = "contact_id" if isinstance(gone, Contact) else "lead_id"
        deals = (
            self.repository.opportunities(contact_id=gone.id)
            if isinstance(gone, Contact)
            else self.repository.opportunities(lead_id=gone.id)
        )
        if is_avoided(kept) and not is_avoided(gone) and any(d.is_open for d in deals):
            raise PolicyError(
                f"{kept.kind} {kept.id} is on the avoid list and {gone.kind} {gone.id} has "
                f"open deals: avoid {gone.id} first (that closes them as lost), then merge"
            )
        filled = _merge_changes(kept, gone)
        merged = self._bump(kept, now, **filled)
        touches = tuple(t.id for t in self.repository.touches(gone.id))
        events = tuple(e.id for e in self.repository.history(gone.id))
        moved_deals = [self._bump(d, now, **{field_name: kept.id}) for d in deals]
        # The lead that became ``other`` now points at ``keep``: no dangling contact_id.
        moved_leads = [
            self._bump(lead, now, contact_id=kept.id)
            for lead in self._leads_of(gone, gone.id, deals)
        ]
        changes = ChangeSet(
            updates=[merged, *moved_deals, *moved_leads],
            deletes=[gone],
            moves=[Move(touches, events, kept.id)],
            add_merge=MergeLog(
                id=uuid4(),
                keep_id=kept.id,
                at=now,
                keep_before=kept,
                other=gone,
                keep_version=merged.version,
                touch_ids=touches,
                event_ids=events,
                opportunities_before=tuple(deals),
            ),
        )
        state = state_of(merged)
        changes.events.append(
            self._event(
                merged,
                "merge",
                state,
                state,
                now,
                actor,
                reason,
                {"other_id": str(gone.id), "fields": sorted(filled)},
            )
        )
        # One event per changed record: each re-pointed deal says where it went.
        changes.events.extend(
            self._event(
                d,
                "merge",
                d.stage.value,
                d.stage.value,
                now,
                actor,
                reason,
                {field_name: str(kept.id), "other_id": str(gone.id)},
            )
            for d in moved_deals
        )
        changes.events.extend(
            self._event(
                lead,
                "merge",
                lead.status.value,
                lead.status.value,
                now,
                actor,
                reason,
                {"contact_id": str(kept.id), "other_id": str(gone.id)},
            )
            for lead in moved_leads
        )
        self.repository.commit(changes)
        return merged

    def unmerge(
        self,
        keep: Lead | Contact | UUID | str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Lead | Contact:
        """Undo the last merge into ``keep`` and return ``keep`` as it was before it.

        The merged-away record comes back exactly as it was (``funnel.get(other_id)``),
        with its touches, deals and history.

        Refused with :class:`ConcurrencyError` once ``keep`` has changed since the
        merge (undoing it would silently drop that change).
        """
        now = self._now(at)
        kept: Lead | Contact = self._load(keep, (Lead, Contact))
        log = self.repository.last_merge(kept.id)
        if log is None:
            raise NotFoundError(kept.id, "merge into record")
        if kept.version != log.keep_version:
            # Later merges into keep, since undone, bumped its version and changed
            # nothing else: compare with what this merge made, not with its version.
            made = log.keep_before.model_copy(update=_merge_changes(log.keep_before, log.other))
            ignore = {"version", "updated_at"}
            if kept.model_dump(exclude=ignore) != made.model_dump(exclude=ignore):
                raise ConcurrencyError(kept.id, log.keep_version, kept.version)
        restored = log.keep_before.model_copy(
            update={"version": kept.version + 1, "updated_at": now}
        )
        current = self.repository.get_many(o.id for o in log.opportunities_before)
        deals = []
        for before in log.opportunities_before:
            now_deal = current.get(before.id)
            if now_deal is not None:
                deals.append(
                    before.model_copy(
                        update={
                            **{n: getattr(now_deal, n) for n in type(before).model_fields},
                            "contact_id": before.contact_id,
                            "lead_id": before.lead_id,
                            "version": now_deal.version + 1,
                            "updated_at": now,
                        }
                    )
                )
        leads = [
            self._bump(lead, now, contact_id=log.other.id)
            for lead in self._leads_of(log.other, kept.id, log.opportunities_before)
        ]
        changes = ChangeSet(
            updates=[restored, *deals, *leads],
            inserts=[log.other],
            moves=[Move(log.touch_ids, log.event_ids, log.other.id)],
            remove_merge=log.id,
        )
        state = state_of(restored)
        changes.events.append(
            self._event(
                restored,
                "unmerge",
                state,
                state,
                now,
                actor,
                reason,
                {"other_id": str(log.other.id)},
            )
        )
        # One event per changed record: the restored duplicate and each deal given back.
        changes.events.append(
            self._event(
                log.other,
                "unmerge",
                state_of(log.other),
                state_of(log.other),
                now,
                actor,
                reason,
                {"keep_id": str(restored.id)},
            )
        )
        changes.events.extend(
            self._event(
                d,
                "unmerge",
                d.stage.value,
                d.stage.value,
                now,
                actor,
                reason,
                {"contact_id": str(d.contact_id), "lead_id": str(d.lead_id) if d.lead_id else None},
            )
            for d in deals
        )
        changes.events.extend(
            self._event(
                lead,
                "unmerge",
                lead.status.value,
                lead.status.value,
                now,
                actor,
                reason,
                {"contact_id": str(log.other.id)},
            )
            for lead in leads
        )
        self.repository.commit(changes)
        return restored

    def _leads_of(
        self, contact: Lead | Contact, pointing_at: UUID, deals: Iterable[Opportunity]
    ) -> list[Lead]:
        """The leads converted into ``contact`` (directly, or into a contact merged into
        it: each left a deal) whose ``contact_id`` is ``pointing_at``."""
        if not isinstance(contact, Contact):
            return []
        ids = {i for i in (contact.lead_id, *(d.lead_id for d in deals)) if i is not None}
        return [
            lead
            for lead in self.repository.get_many(ids).values()
            if isinstance(lead, Lead) and lead.contact_id == pointing_at
        ]

    # --- cadence and reports ----------------------------------------------------------

    def due(self, at: datetime | None = None) -> list[FollowUp]:
        """The follow-ups due at ``at`` (default now), most overdue first."""
        from ._cadence import follow_ups

        return follow_ups(self.repository, self.cadence, self._now(at), self.router)

    def report(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        by: GroupBy | None = None,
    ) -> FunnelReport:
        """Stage-to-stage conversion counted from history, ``since <= at < until``."""
        from ._reports import build_report

        return build_report(self.repository, since=since, until=until, by=by)

    def rep_list(
        self,
        name: RepListName | str,
        *,
        at: datetime | None = None,
        source: str | None = None,
        owner: str | None = None,
        min_age_days: int | None = None,
        max_age_days: int | None = None,
        limit: int | None = None,
    ) -> RepList:
        """A list a rep can call from, newest first: ``"not_sat"`` (appointments set but
        not sat), ``"not_bought"`` (sat but didn't buy) or ``"never_booked"``
        (qualified, sweet-spot leads never booked). See :class:`RepListName`.

        ``at`` is the moment the list is for (default now): an appointment counts as
        not sat once its time has passed, and ages are whole days to ``at``. Filter by
        ``source`` (the lead's, or the deal's contact's) and ``owner``, by age
        (``min_age_days <= age_days <= max_age_days``), and cap with ``limit``. Lost
        deals marked ``avoid`` or ``unqualified`` never appear. Group the result with
        ``.by_source()`` and ``.by_age()``.
        """
        from ._rep_lists import build_rep_list

        return build_rep_list(
            self.repository,
            name,
            at=self._now(at),
            source=source,
            owner=owner,
            min_age_days=min_age_days,
            max_age_days=max_age_days,
            limit=limit,
        )


def _lifecycle_of(kind: str) -> Any:
    return {"lead": LEAD, "contact": CONTACT, "opportunity": OPPORTUNITY}[kind]


def _merge_changes(keep: Lead | Contact, other: Lead | Contact) -> dict[str, Any]:
    """What merging ``other`` into ``keep`` changes on ``keep``."""
    changes = _fill_from(keep, other)
    # other's own e-mail and phone stay keys of the person, as other_emails/other_phones
    # when keep has (or just took) different ones.
    email = changes.get("email", keep.email)
    if other.email is not None and other.email.lower() != (email or "").lower():
        changes["other_emails"] = changes.get("other_emails", keep.other_emails) | {other.email}
    phone = changes.get("phone", keep.phone)
    if other.phone is not None and other.phone != phone:
        changes["other_phones"] = changes.get("other_phones", keep.other_phones) | {other.phone}
    if (
        isinstance(keep, Contact)
        and isinstance(other, Contact)
        and keep.lead_id is None
        and other.lead_id is not None
    ):
        changes["lead_id"] = other.lead_id  # keep is now the contact that lead became
    return changes


def _fill_from(target: Lead | Contact, source: Lead | Contact) -> dict[str, Any]:
    """The changes that fill ``target``'s empty fields from ``source`` and unite sets."""
    changes: dict[str, Any] = {}
    target_fields = type(target).model_fields
    for name in type(source).model_fields:
        if (
            name not in target_fields
            or name in _MANAGED[target.kind]
            or name
            in (
                "id",
                "created_at",
                "updated_at",
                "version",
                "status",
                "type",
                "interest",
            )
        ):
            continue
        mine, theirs = getattr(target, name), getattr(source, name)
        if name in SET_FIELDS:
            if theirs - mine:
                changes[name] = mine | theirs
        elif mine is None and theirs is not None:
            changes[name] = theirs
    if (
        isinstance(target, Lead)
        and isinstance(source, Lead)
        and (_INTEREST_RANK[source.interest] > _INTEREST_RANK[target.interest])
    ):
        changes["interest"] = source.interest
    return changes


def _tier(lead: Lead, *, qualified: bool) -> Any:
    from ._enums import Tier

    if not qualified:
        return Tier.COLD
    return Tier.HOT if lead.interest == Interest.HIGH else Tier.WARM


def _money(value: Any) -> Any:
    try:
        checked = Opportunity.model_validate({"contact_id": UUID(int=0), "amount": value}).amount
    except pydantic.ValidationError as exc:
        raise ValueError(
            f"amount={value!r} is not a valid amount: {exc.errors()[0]['msg']}"
        ) from None
    return checked


def _result_data(result: QualificationResult, *, forced: bool) -> dict[str, Any]:
    data = result.to_dict()
    del data["status"]  # the event's dest says where the lead went
    data["forced"] = forced
    return data
