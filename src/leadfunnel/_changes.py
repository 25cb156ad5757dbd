"""The building blocks every use case shares: reading the subject, bumping a record's
version, and the event that goes with each change.

A use case reads what it needs through the :class:`~leadfunnel.Repository` port, decides
the change, and commits one :class:`~leadfunnel.ChangeSet`: the records it changed (each
with ``version`` one higher than it read, so the commit fails if anybody saved in
between) and one :class:`~leadfunnel.Event` per changed record.
"""

from __future__ import annotations

import enum
import functools
import random
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime
from typing import Any, NamedTuple, ParamSpec, TypeVar, cast
from uuid import UUID

import pydantic
from pydantic_core import InitErrorDetails

from ._clock import Clock, in_utc, require_aware
from ._documents import stored_validator
from ._enums import Interest
from ._errors import (
    ConcurrencyError,
    InvalidArgumentError,
    InvalidTransitionError,
    NotFoundError,
    PolicyError,
    _article,
)
from ._lifecycle import CONTACT, EVENT_NAMES, LEAD, OPPORTUNITY, Lifecycle
from ._models import (
    SET_FIELDS,
    Contact,
    Event,
    Lead,
    Opportunity,
    Record,
    Touch,
    _Stored,
    field_annotation,
    field_values,
    new_id,
    personal_fields,
    state_of,
    updated,
)
from ._repository import MergeLog, Repository

__all__ = [
    "LOOKS",
    "MANAGED",
    "MAX_MERGES_FOLLOWED",
    "STATE_FIELD",
    "DealSubject",
    "LeadSubject",
    "Subject",
    "ahead_of_clock",
    "bump",
    "checked",
    "clock_scoped",
    "clock_told",
    "created",
    "current_record",
    "event",
    "fill_from",
    "get_or_merged",
    "lifecycle_of",
    "load",
    "member",
    "merged_into",
    "moved",
    "refuse_before",
    "refuse_before_existence",
    "refuse_erased",
    "refuse_kept",
    "refuse_overtaken",
    "registered",
    "require_aware",
    "retrying",
    "subject_id",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_R = TypeVar("_R", Lead, Contact, Opportunity)
_Returned = TypeVar("_Returned")
_S = TypeVar("_S", bound=_Stored)

#: What the facade accepts as the subject of a change: a stored model or its id.
Subject = Lead | Contact | Opportunity | UUID | str
#: The subject of a lead trigger (``farm``, ``respond``, ``qualify``, ``disqualify``):
#: a person or its id (type checkers then refuse a deal given to ``qualify``). A
#: contact is accepted by type, as ``capture`` returns ``Lead | Contact`` and its result
#: is qualified without a check of its own; at run time a contact is refused
#: (``NotFoundError``: a contact, not a lead).
LeadSubject = Lead | Contact | UUID | str
#: The subject of a deal trigger (``sit``, ``propose``, ``win``, ...): an opportunity or
#: its id.
DealSubject = Opportunity | UUID | str


class _Told(NamedTuple):
    """The funnel clock as the facade read it for the change being made (see
    :func:`clock_told`). A tuple: one is made for every change."""

    clock: Clock
    #: Its first reading, in UTC.
    now: datetime
    #: The readings the change is dated by (none when it was given ``at=``): the first,
    #: and those of its retries (see :func:`retrying`).
    dated_by: tuple[datetime, ...]


#: The funnel clock's now when the facade dated the change being made (in this thread
#: or task): see :func:`clock_told` and :func:`moved`. ``None`` outside a facade call.
_CLOCK_NOW: ContextVar[_Told | None] = ContextVar("leadfunnel_clock_now", default=None)


def clock_scoped(method: Callable[_P, _Returned]) -> Callable[_P, _Returned]:
    """A facade method whose noted clock time (:func:`clock_told`) is put back as it
    was when it returns: a subscriber or callback of the call that makes changes through
    another funnel (another clock) notes that funnel's time only for its own call, and
    the rest of this call (the next page of ``qualify_all(at=...)``) is checked against
    this funnel's clock again."""

    @functools.wraps(method)
    def scoped(*args: _P.args, **kwargs: _P.kwargs) -> _Returned:
        token = _CLOCK_NOW.set(_CLOCK_NOW.get())
        try:
            return method(*args, **kwargs)
        finally:
            _CLOCK_NOW.reset(token)

    return scoped


def clock_told(clock: Clock, now: datetime, *, dated_by_it: bool) -> None:
    """Note ``clock`` and ``now``, its time (in UTC) as the facade reads it for a
    change, for :func:`moved`'s check of a move dated before its record's last change;
    ``dated_by_it`` when the change is dated ``now`` (no ``at=`` given)."""
    _CLOCK_NOW.set(_Told(clock, now, (now,) if dated_by_it else ()))


def ahead_of_clock(at: datetime, last: datetime, record: Record) -> bool:
    """Whether a change of ``record`` dated ``at``, before ``last`` (the record's change,
    or coming to be, that it follows), is let through because ``last`` is dated ahead of the
    funnel clock (an ``at=`` ahead of the clock: a simulation's, or a mistyped year):
    ``at`` is at or after the clock's now as the facade read it for this change, and
    ``last`` is after the clock's now, read again. What the clock says happens now is
    not refused for following what, by the clock, has not happened yet.

    ``False`` outside a facade call (a use case run on its own), and where ``last`` has
    happened by the clock: then another writer's change overtook this one after this
    one read the clock. A change dated by the clock then raises a retryable
    :class:`ConcurrencyError` instead (:func:`retrying` dates it by the clock again,
    after what it follows) rather than be stored before what it follows."""
    told = _CLOCK_NOW.get()
    if told is None or at < told.now:
        return False
    if last > in_utc(told.clock.now()):
        return True
    if at in told.dated_by:
        raise ConcurrencyError.of_clock(record.id, record.kind, record.version, at, last)
    return False


def refuse_overtaken(at: datetime, last: datetime, record: Record) -> None:
    """For a change of ``record`` dated ``at``, before ``last``, that must come after
    ``last`` whatever the clock says (an unmerge, after the merge it undoes): a
    retryable :class:`ConcurrencyError` if ``at`` is this call's clock reading and
    ``last`` has happened by the clock (another writer's change overtook this one; tried
    again, it is dated by the clock again). Else nothing: the caller refuses the date."""
    told = _CLOCK_NOW.get()
    if told is not None and at in told.dated_by and last <= in_utc(told.clock.now()):
        raise ConcurrencyError.of_clock(record.id, record.kind, record.version, at, last)


def refuse_before(at: datetime, last: datetime, record: Record, before: str, rule: str) -> None:
    """An :class:`InvalidArgumentError` for a change of ``record`` dated ``at``, before
    ``last`` (when ``before`` happened: "the lead's last change"), unless ``last`` is
    dated ahead of the clock (see :func:`ahead_of_clock`, which raises the retryable
    :class:`ConcurrencyError` of a change the clock dated and another writer's
    overtook); ``rule`` says what such a change is dated at or after."""
    if at < last and not ahead_of_clock(at, last, record):
        raise InvalidArgumentError(
            f"at={at.isoformat()} is before {before} ({last.isoformat()}): {rule}; give a "
            "later at=, or leave it out to use the funnel's clock"
        )


def refuse_before_existence(
    repository: Repository, record: Lead | Contact, at: datetime, what: str
) -> None:
    """An :class:`InvalidArgumentError` if ``what`` (a touch), dated ``at``,
    is dated before ``record``'s person came to be: its history would start with it,
    before anybody, and reports would count it in a period before them. The person is
    as old as the earliest of ``record``, the first event of its history (which holds
    the records merged into it) and, for a contact, the lead it was converted from and
    the first event of that lead's history (a lead's call logged late on the contact it
    became is fine).

    Not refused for a person dated ahead of the funnel clock (see
    :func:`ahead_of_clock`), which holds back nothing done now."""
    if at >= record.created_at:
        return  # the person is at most as old as its record: nothing to read
    born = [record.created_at]
    history = repository.history(record.id)
    if history:
        born.append(history[0].at)
    lead_id = getattr(record, "lead_id", None)
    lead = None if lead_id is None else repository.get_many([lead_id]).get(lead_id)
    if lead is not None:
        born.append(lead.created_at)
        lead_history = repository.history(lead.id)  # with the leads merged into it
        if lead_history:
            born.append(lead_history[0].at)
    refuse_before(
        at,
        min(born),
        record,
        f"{record.kind} {record.id} came to be",
        f"{what} is dated at or after its person was stored (one logged late is fine)",
    )


#: Fields only triggers may change; ``update`` refuses edits to them.
MANAGED = {
    "lead": ("status", "status_at", "contact_id", "profile", "erased_at"),
    "contact": ("type", "lead_id", "erased_at"),
    "opportunity": ("stage", "closed_at", "lost_reason", "contact_id", "lead_id"),
}
STATE_FIELD = {"lead": "status", "contact": "type", "opportunity": "stage"}
#: The managed fields a new person is born without, and what sets each later: a record
#: given with one of them set (a ``contact_id`` would keep a lead's keys out of dedupe)
#: is refused by ``add``, ``capture`` and ``import_leads``. ``erased_at`` is refused only
#: on a record that still holds personal data, which ``erase()`` could then never
#: remove; an erased person without any (as ``erase`` leaves one) may be stored.
_BORN_EMPTY = {
    "lead": ("contact_id", "profile", "erased_at"),
    "contact": ("lead_id", "erased_at"),
}
_SET_BY = {
    "contact_id": "set_appointment() converting the lead",
    "lead_id": "set_appointment() converting a lead",
    "profile": "qualify()",
    "erased_at": "erase(), which blanks the personal data",
}
_INTEREST_RANK = {Interest.NONE: 0, Interest.SLIGHT: 1, Interest.HIGH: 2}
_NEVER_FILLED = frozenset(
    {"id", "created_at", "updated_at", "version", "status", "type", "interest"}
)

#: The fields an event made by :func:`event` counts as set: all but ``position``,
#: which the store sets.
_EVENT_SET = frozenset(Event.model_fields) - {"position"}
_UNPLACED = Event.model_fields["position"].default
_new_object = object.__new__
_set = object.__setattr__


def subject_id(subject: Subject) -> UUID:
    """The id of a model, or the id given (as a UUID or its text); else a
    :class:`NotFoundError` (which does not repeat an e-mail or a phone given instead)."""
    if isinstance(subject, (Lead, Contact, Opportunity)):
        return subject.id
    if isinstance(subject, UUID):
        return subject
    try:
        return UUID(str(subject))
    except ValueError:
        text = str(subject)
        mistyped = mistyped_id(text)
        if mistyped is not None:
            raise NotFoundError(text, found=mistyped) from None
        if looks_personal(text):
            # An e-mail or a phone, given where a record is wanted: not repeated in the
            # message (exceptions end up in logs); the error's ``id`` holds it.
            raise NotFoundError(
                text,
                found="the text given is not a record id but an e-mail or a phone, by "
                "the look of it: find the person with funnel.find(email=..., phone=...) "
                "and pass that record",
            ) from None
        raise NotFoundError(text) from None


def mistyped_id(text: str) -> str | None:
    """What is wrong with ``text`` if it is an id mistyped (a character short, one too
    many): hex digits and dashes only, more digits than any phone has (so no personal
    data to keep out of logs, and the text is repeated); else ``None``."""
    digits = sum(c in _HEX for c in text.strip().lower().removeprefix("urn:uuid:"))
    if digits < 20 or _ID_LIKE.fullmatch(text.strip()) is None:
        return None
    return (
        f"{text!r} is not a valid record id: an id is 32 hexadecimal digits, as "
        f"01a22908-50f9-7000-825f-d0e42c4a2ef0 (this one has {digits}); check for a "
        "missing or extra character"
    )


def looks_personal(text: str) -> bool:
    """Whether ``text``, given where an id was wanted, may be an e-mail or a phone (or
    hold one: ``tel:+1 512 555 0177``): such a text is never repeated in an error
    message, since errors end up in logs."""
    return "@" in text or _PHONE_LIKE.search(text) is not None


#: A text that looks like an id mistyped: hex digits and dashes only (in braces, or
#: after ``urn:uuid:``, as ``UUID()`` reads them too).
_ID_LIKE = re.compile(r"(?:urn:uuid:)?\{?[0-9a-fA-F-]+\}?", re.IGNORECASE)
_HEX = frozenset("0123456789abcdefABCDEF")

#: A text that is not an id but may be a phone: six digits or more, written as
#: phones are (spaces, dots, dashes, slashes, brackets, a plus).
_PHONE_LIKE = re.compile(r"[+(]?(?:\d[\s().\-/]*){6,}")


def load(
    repository: Repository,
    id: UUID,
    kind: type[_R] | tuple[type[Any], ...],
    *,
    erased: bool = False,
) -> _R:
    """The stored record ``id``, which must be of ``kind`` (else ``NotFoundError``) and,
    unless ``erased``, not an erased person (else ``PolicyError``: nothing may be done
    to a person whose data was erased). The id of a record merged away is a
    ``NotFoundError`` naming the record it was merged into."""
    record = get_or_merged(repository, id)
    if not isinstance(record, kind):
        names = kind if isinstance(kind, tuple) else (kind,)
        wanted = " or ".join(dict.fromkeys(k.kind for k in names))
        raise NotFoundError(
            record.id, wanted, f"{record.id} is {_a(record.kind)}, not {_a(wanted)}"
        )
    if not erased:
        refuse_erased(record)
    return record


def get_or_merged(repository: Repository, id: UUID) -> Record:
    """``repository.get(id)``; for a record merged away, a :class:`NotFoundError` that
    says which record holds its data now (its merge logs are asked only then): at the
    end of a chain of merges (A into B, then B into C: C), not the first record it was
    merged into, which may be gone too."""
    try:
        return repository.get(id)
    except NotFoundError:
        chain, holder = merged_into(repository, id)
        if not chain:
            # Unmerged between the two reads (its merge log gone, the record back)?
            again = repository.get_many([id]).get(id)
            if again is not None:
                return again
            raise
        kind, first = chain[0].other.kind, chain[0].keep_id
        if holder is None:
            raise NotFoundError(
                id,
                kind,
                f"{kind} {id} was merged into {first}, and no stored record was found "
                f"at the end of its merges (followed {len(chain)}, to "
                f"{chain[-1].keep_id})",
            ) from None
        if len(chain) == 1:
            found = f"{kind} {id} was merged into {first}, which holds its data now"
        else:
            found = (
                f"{kind} {id} was merged into {first}, which was merged away in turn "
                f"({len(chain)} merges in all): {holder.id} holds its data now"
            )
        raise NotFoundError(id, kind, f"{found}: pass {holder.id}") from None


#: How many times a read of two steps (a key's holder, then the holder; a record, then
#: its merge log) looks again when another thread's merge or unmerge came between them.
LOOKS = 3

#: How many merges :func:`merged_into` follows from a record before it gives up.
MAX_MERGES_FOLLOWED = 100


def merged_into(repository: Repository, id: UUID) -> tuple[list[MergeLog], Record | None]:
    """Where the data of the record ``id`` went, if it was merged away: the merge logs
    followed from it (A into B, then B into C: A's log, then B's), and the stored record
    they end at (C). ``([], None)`` for a record not merged away; ``None`` as the record
    when the chain ends at no stored record, loops, or runs longer than
    :data:`MAX_MERGES_FOLLOWED` merges."""
    chain: list[MergeLog] = []
    seen = {id}
    current = id
    while len(chain) < MAX_MERGES_FOLLOWED:
        log = next((m for m in repository.merges_of([current]) if m.other.id == current), None)
        if log is None:
            break
        chain.append(log)
        if log.keep_id in seen:
            break  # a loop: no merge log leads anywhere from here
        seen.add(log.keep_id)
        try:
            return chain, repository.get(log.keep_id)
        except NotFoundError:
            current = log.keep_id
    return chain, None


def current_record(repository: Repository, id: UUID) -> Record | None:
    """The stored record ``id``, or the record that holds its data now if it was merged
    away (see :func:`merged_into`); ``None`` if there is neither."""
    try:
        return repository.get(id)
    except NotFoundError:
        return merged_into(repository, id)[1]


def _a(noun: str) -> str:
    return f"{_article(noun)} {noun}"


_E = TypeVar("_E", bound=enum.Enum)


def member(kind: type[_E], value: Any, name: str) -> _E:
    """``value`` as a member of the enum ``kind``; else an
    :class:`~leadfunnel.InvalidArgumentError` listing the allowed values."""
    try:
        return kind(value)
    except ValueError:
        raise InvalidArgumentError(
            f"{name}={value!r} is not {_article(kind.__name__.lower())} {kind.__name__}; "
            "use one of: " + ", ".join(str(m.value) for m in kind)
        ) from None


def checked(model: type[_Stored], name: str, value: str | None) -> str | None:
    """``value``, a use case's free-text argument that becomes ``model``'s field ``name``
    (an owner, a note, a reason, an actor), validated as that field: the record or
    event it lands in is built from validated values without validating them again, so
    a control character or an over-long text is refused here, with the
    ``pydantic.ValidationError`` building ``model`` would raise, before anything is
    stored. Whitespace around it is stripped, and a blank is ``None``: no value, as
    when the argument is left out (``set_appointment(owner=" ")`` keeps the owner)."""
    if value is None:
        return None
    if type(value) is not str:
        return _validated(model, name, value)
    return _checked_text(model, name, value)


@functools.lru_cache(maxsize=512)
def _checked_text(model: type[_Stored], name: str, value: str) -> str | None:
    # The same few texts (an actor, a rep's name) come back on every write of a run.
    return _validated(model, name, value)


def _validated(model: type[_Stored], name: str, value: object) -> str | None:
    try:
        checked: str | None = _field_adapter(model, name).validate_python(value)
    except pydantic.ValidationError as exc:
        details: list[InitErrorDetails] = []
        for error in exc.errors():
            detail: InitErrorDetails = {
                "type": error["type"],
                "loc": (name, *error["loc"]),
                "input": error["input"],
            }
            if "ctx" in error:
                detail["ctx"] = error["ctx"]
            details.append(detail)
        raise pydantic.ValidationError.from_exception_data(model.__name__, details) from None
    return checked or None  # a blank is not data (as a record's own text fields say)


@functools.cache
def _field_adapter(model: type[_Stored], name: str) -> pydantic.TypeAdapter[Any]:
    annotation = field_annotation(model.model_fields[name])
    return pydantic.TypeAdapter(annotation, config=pydantic.ConfigDict(str_strip_whitespace=True))


def refuse_kept(record: Lead | Contact) -> None:
    """Refuse a new ``record`` that carries a field only the funnel sets
    (:class:`~leadfunnel.InvalidArgumentError`, naming the field and what sets it)."""
    fields = record.__dict__
    given = [name for name in _BORN_EMPTY.get(record.kind, ()) if fields[name] is not None]
    if not given:
        return
    held = ""
    if given[-1] == "erased_at":
        personal = [name for name in personal_fields(type(record)) if getattr(record, name)]
        if personal:
            held = f" while it holds personal data ({', '.join(personal)})"
        else:
            del given[-1]  # an erased person as erase() leaves one: nothing to erase
            if not given:
                return
    setters = "; ".join(f"{name} by {_SET_BY[name]}" for name in given)
    one = len(given) == 1
    raise InvalidArgumentError(
        f"a new {record.kind} cannot be given {', '.join(given)}{held}: the funnel sets "
        f"{'it' if one else 'them'} ({setters}); leave {'it' if one else 'them'} out"
    )


def refuse_erased(record: Record) -> None:
    """A :class:`~leadfunnel.PolicyError` if ``record`` is an erased person."""
    erased_at: datetime | None = getattr(record, "erased_at", None)
    if erased_at is not None:
        raise PolicyError(
            f"{record.kind} {record.id} was erased (personal data removed at "
            f"{erased_at.isoformat()}): nothing more may be done with it"
        )


def event(
    record: Record,
    name: str,
    source: str | None,
    dest: str | None,
    at: datetime,
    actor: str | None,
    reason: str | None,
    data: dict[str, Any] | None = None,
) -> Event:
    """The event recording ``name`` on ``record`` (from ``source`` to ``dest``); the
    caller's ``actor`` and ``reason`` are checked as the event's fields (see
    :func:`checked`)."""
    assert name in EVENT_NAMES, name  # the documented vocabulary (docs/events.md)
    actor = checked(Event, "actor", actor)
    reason = checked(Event, "reason", reason)
    # Built from values the use case has already validated: skip re-validation. What
    # model_construct would make, at a fifth of its cost (this is on every write, once a
    # row in an import): every field of Event, in a dict made at once.
    new = _new_object(Event)
    _set(
        new,
        "__dict__",
        {
            "id": new_id(),
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
            "position": _UNPLACED,
        },
    )
    _set(new, "__pydantic_fields_set__", set(_EVENT_SET))
    _set(new, "__pydantic_extra__", None)
    _set(new, "__pydantic_private__", None)
    return new


def created(model: type[_S], now: datetime, /, **fields: Any) -> _S:
    """A new record of ``model`` made at ``now`` (a new id, version 1) from ``fields``,
    values the use case has validated already: not validated again. A record of an
    application's class is not complete until :func:`registered` has validated it (a
    required field, its own validators): the use case that makes one calls it."""
    record = model.model_construct(id=new_id(), created_at=now, updated_at=now, version=1, **fields)
    return cast(_S, record)  # (pydantic types model_construct on the bound, _Stored)


#: The fields a record's state is in: a change of one is a move of its lifecycle.
_STATE_FIELDS = ("status", "stage", "type")

#: leadfunnel's own classes, exactly (not an application's subclass of one): their
#: records are valid by construction (a trigger changes them only with values it has
#: checked), and are not validated again on the hot paths (a lead moved by qualify_all,
#: an imported row).
_OWN_CLASSES = frozenset({Lead, Contact, Opportunity, Touch, Event})


def bump(record: _S, at: datetime, **changes: Any) -> _S:
    """``record`` with ``changes``, its next version, updated at ``at``: see
    :func:`moved` (which also names the trigger, for the error it may raise)."""
    return moved(record, at, changes)


def erased(record: _S, at: datetime, **changes: Any) -> _S:
    """``record`` with ``changes`` (an erasure's: its personal fields blanked, its
    ``erased_at``), its next version, updated at ``at``; never refused by the
    application's class, whose validators may want what the erasure blanks (an e-mail or
    a phone): personal data must go whatever the class says. Stores read an erased
    record their class refuses as leadfunnel's class reads it (see the SQL adapter's
    ``build_record``)."""
    changes["version"] = record.version + 1
    changes["updated_at"] = max(at, record.updated_at)  # never back: see moved()
    return updated(record, changes)


def moved(record: _S, at: datetime, changes: dict[str, Any], trigger: str | None = None) -> _S:
    """``record`` with ``changes`` (the dict is used up), its next version, updated at
    ``at``; a record of an application's class is validated as that class (see
    :func:`registered`; ``trigger`` names the change in its error, else it is told from
    the move of the record's state).

    A move of the record's state dated before its last change is refused
    (:class:`InvalidArgumentError`): its history, and every report counted from it,
    would have the move before what it followed (a deal won before it was booked, a
    negative time in stage). Any other change may be dated earlier (a call logged the
    day after), but ``updated_at`` never goes back: it stays at the last change, so
    that a move dated before that is still refused.

    A last change dated after the funnel clock's now (an ``at=`` ahead of the clock: a
    simulation's, or a mistyped year) holds back no move dated at or after the clock's
    now: what the clock says happens now is not refused for following what, by the
    clock, has not happened yet (else a lead qualified ``at=`` 2062 by mistake could
    never be avoided until then). A move dated before both is refused as ever; one
    dated by the clock that another writer's change overtook raises a retryable
    :class:`ConcurrencyError` (see :func:`ahead_of_clock`)."""
    if at < record.updated_at and any(name in changes for name in _STATE_FIELDS):
        refuse_before(
            at,
            record.updated_at,
            cast(Record, record),
            f"the {getattr(record, 'kind', 'record')}'s last change",
            "a move is dated at or after what it follows",
        )
    changes["version"] = record.version + 1
    changes["updated_at"] = max(at, record.updated_at)
    new = updated(record, changes)
    if type(record) in _OWN_CLASSES:
        return new
    before = cast(Record, record)
    return registered(new, trigger or _trigger_of(before, changes), before)


def registered(record: _S, trigger: str, subject: Record) -> _S:
    """``record``, which a trigger made or changed, validated as its class when that is
    an application's (a subclass of ``Lead``, ``Contact`` or ``Opportunity``): its
    field types, its required fields, its validators (a ``mode="before"`` one that
    derives a field gives the record its value), as a store reads the record back
    (so a change an application's class refuses is never committed, to be unreadable
    after). leadfunnel's own classes are returned as they are. ``trigger`` and
    ``subject`` (the record it was fired on, as it was before: the one ``record`` was
    moved from, or the lead or contact a new deal is opened on) name the move in the
    :class:`InvalidTransitionError` raised where the class refuses the record: the
    class, each field and its problem (never its value: it may be personal data), and
    what to do. Nothing is changed."""
    model = type(record)
    if model in _OWN_CLASSES:
        return record
    try:
        return _stored_validator(model)(field_values(record))
    except pydantic.ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
    new = subject.id != record.id
    name, kind = model.__name__, cast(Record, record).kind
    found = "; ".join(_problem(error) for error in problems)
    if new:
        todo = (
            f"give {name} defaults for what {trigger}() does not fill, and make its "
            f"validators accept a new {kind}"
        )
    else:
        todo = (
            f"give the {kind} what {name} needs first (funnel.update()), or make "
            f"{name}'s validators accept this move"
        )
    raise InvalidTransitionError(
        subject.kind,
        state_of(subject),
        trigger,
        None,
        hint=f"{name} refuses the {kind} it would "
        f"{'make' if new else 'leave'}: {found}. Nothing was changed: {todo}",
    )


def _problem(error: Any) -> str:
    """One problem a class found in a record: the field (dotted) and pydantic's message,
    without its input."""
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{where} has no value, which it requires"
    return f"{where}: {message}" if where else message


def _stored_validator(model: type[_S]) -> Callable[[Any], _S]:
    """How a store validates a record of ``model`` it reads back (see
    :func:`~leadfunnel._documents.stored_validator`: every check but leadfunnel's own
    write-time checks, which held when the values were first stored), so that a record a
    trigger makes is refused exactly when reading it back would fail, on every store."""
    found = _VALIDATORS.get(model)
    if found is None:
        found = _VALIDATORS[model] = stored_validator(model)
    return cast(Callable[[Any], _S], found)


_VALIDATORS: dict[type[Any], Callable[[Any], Any]] = {}


def _trigger_of(record: Record, changes: dict[str, Any]) -> str:
    """The trigger that ``changes`` fire on ``record``, told from the move of its state
    (for a change that does not say which it is): the one trigger that moves it from its
    state to the new one; ``"erase"`` for an erasure; else ``"change"``."""
    if changes.get("erased_at") is not None:
        return "erase"
    field = STATE_FIELD[record.kind]
    dest = changes.get(field)
    if dest is None:
        return "change"
    lifecycle = lifecycle_of(record.kind)
    source, dest = state_of(record), str(getattr(dest, "value", dest))
    found = [
        trigger
        for trigger in lifecycle.allowed(source)
        if lifecycle.move(source, trigger, force=True) == dest
    ]
    return found[0] if len(found) == 1 else "change"


_RETRIES = 6  # after the first try
_FIRST_PAUSE = 0.0005  # seconds; doubled after each lost race, with jitter


def retrying(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Re-run a change that lost a race. A use case re-reads its subject, so a retry is
    the same call made a moment later, validated against the state that won.

    Each retry waits a little longer than the last (0.5 ms, then doubling to 16 ms, each
    drawn from half to one and a half times that): retried at once, a change to a
    record other threads keep changing could lose every race to the same interleaving.
    The last try's ``ConcurrencyError`` is raised, and at once one whose ``retryable``
    is ``False`` (the database rolled back the whole transaction the change was in, or
    a new record's id is taken: trying again meets the same record)."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        for attempt in range(_RETRIES):
            try:
                return method(*args, **kwargs)
            except ConcurrencyError as exc:
                if getattr(exc, "retryable", True) is False:
                    raise  # the store says only a larger unit (a transaction) can retry
                time.sleep(_FIRST_PAUSE * 2**attempt * random.uniform(0.5, 1.5))
                _redate(kwargs)
        return method(*args, **kwargs)

    return wrapper


def _redate(kwargs: dict[str, Any]) -> None:
    """Date a retried change (its ``now=``) by the funnel clock again, if it was dated
    by it: a retry is the same call made a moment later (see :func:`ahead_of_clock`)."""
    told = _CLOCK_NOW.get()
    if told is not None and kwargs.get("now") in told.dated_by:
        kwargs["now"] = again = in_utc(told.clock.now())
        # (for the rest of this facade call: clock_scoped puts the one before back)
        _CLOCK_NOW.set(told._replace(dated_by=(*told.dated_by, again)))


def lifecycle_of(kind: str) -> Lifecycle:
    """The state machine of a ``"lead"``, ``"contact"`` or ``"opportunity"``."""
    return {"lead": LEAD, "contact": CONTACT, "opportunity": OPPORTUNITY}[kind]


def _empty(value: Any) -> bool:
    """No value: ``None``, or an empty text, list, tuple or mapping (an application's
    field whose default is one)."""
    return value is None or (isinstance(value, (str, list, tuple, dict, set)) and not value)


def fill_from(target: Lead | Contact, source: Lead | Contact) -> dict[str, Any]:
    """The changes that fill ``target``'s empty fields from ``source`` (an application's
    empty list or mapping too) and unite sets (tags, needs, opt-outs, other e-mails and
    phones, and an application's set fields); interest only ever rises."""
    changes: dict[str, Any] = {}
    target_fields = type(target).model_fields
    for name in type(source).model_fields:
        if name not in target_fields or name in MANAGED[target.kind] or name in _NEVER_FILLED:
            continue
        mine, theirs = getattr(target, name), getattr(source, name)
        if name in SET_FIELDS:
            if theirs - mine:
                changes[name] = mine | theirs
        elif isinstance(mine, (set, frozenset)) and isinstance(theirs, (set, frozenset)):
            if theirs - mine:  # an application's set field: united, as the base ones
                changes[name] = type(mine)(mine | theirs)
        elif _empty(mine) and not _empty(theirs):
            changes[name] = theirs  # an empty list or mapping of the application's too
    if (
        isinstance(target, Lead)
        and isinstance(source, Lead)
        and _INTEREST_RANK[source.interest] > _INTEREST_RANK[target.interest]
    ):
        changes["interest"] = source.interest
    return changes
