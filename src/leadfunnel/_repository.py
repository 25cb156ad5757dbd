"""The storage port: what the funnel needs from a store, and nothing more.

A :class:`Repository` keeps five kinds of rows (leads, contacts and opportunities, the
*records*; touches and events, which are only ever appended) plus merge logs. The
:class:`~leadfunnel.Funnel` facade decides every change; the repository only stores
it, atomically, and answers queries. Writing an adapter means implementing this class;
``leadfunnel.testing.RepositoryContract`` is the test suite an adapter must pass.

**Writes.** There is exactly one write method, :meth:`Repository.commit` (an adapter
implements ``_commit``), which applies a :class:`ChangeSet` all or nothing:

0. a record inserted or updated that holds a value not every store keeps (a NUL
   character in text, an integer beyond signed 64 bits, an infinite or NaN float,
   bytes that are no UTF-8 text, a value with no JSON form, one that reads back from
   its JSON document as another value: an application's field may accept them) is
   refused with :class:`~leadfunnel.StorageError` (``of_value=True``, naming the
   field), before ``_commit`` is called: every store refuses the same records alike
   (see :func:`check_portable`; an adapter overriding ``commit`` must keep calling it);
1. every ``delete`` and ``update`` is checked against the stored version
   (``update.record.version == stored.version + 1``, ``delete.version == stored.version``),
   and so is every record of ``checks`` (records the change was decided on but does not
   change: ``check.version == stored.version``); a mismatch raises
   :class:`~leadfunnel.ConcurrencyError`, an unknown id :class:`~leadfunnel.NotFoundError`
   (so does an update or check whose id is stored as another kind of record: a
   contact given a lead's id); an ``insert`` whose id is stored already raises
   :class:`~leadfunnel.ConcurrencyError` (expected version 0);
2. identity keys (:func:`identity_keys` of every record that :func:`holds_keys`) are
   released by deletes and updates, then claimed by updates and inserts; a key held by
   another record raises :class:`~leadfunnel.AvoidListedError` when that record is
   avoid-listed, else :class:`~leadfunnel.DuplicateError`, both with ``existing_id``;
   ``suppress`` adds :class:`Suppression` digests (an existing digest is kept as is);
3. ``rewrites`` replace stored touches and events (their subject and position kept) and
   ``rewrite_merges`` stored merge logs, each found by id (an unknown id raises
   :class:`~leadfunnel.NotFoundError`);
4. touches and events are appended (events in list order, which is history order for
   events at the same instant) and each event is given its ``position``: strictly
   greater than that of every event committed before, so positions grow in commit
   order across the store; ``moves`` re-point touches and events to another subject (a
   merge: a move to a subject that is not stored raises
   :class:`~leadfunnel.NotFoundError`, and nothing is moved); merge logs are added or
   removed.

An update stores the record as given, field for field: a field set to ``None`` (an
erasure blanks every personal one) reads back ``None``, and nothing of the version it
replaces is kept, but for what its class does not declare (the application's fields,
written by a funnel not given its classes), which an adapter that keeps a record's
fields beyond its model keeps.

If anything fails, nothing of the change set is visible, to this process or another.
The store must be safe to share between threads.

**Reads.** Records come back as the immutable models the funnel stored. Lists are in
``(created_at, id)`` order (ids are time-ordered: records made at one instant list in
the order they were made). History (:meth:`Repository.history`) is oldest first, by ``at`` and then
by ``position``; :meth:`Repository.events` reads every event in ``position`` order.

**Queries that scale.** :meth:`Repository.follow_up_candidates` and
:meth:`Repository.step_counts` exist so that an adapter backed by a database can answer
``funnel.due()`` and ``funnel.report()`` with a query instead of loading every record.
Their exact meaning is documented on each method; the in-memory adapter is the
reference implementation.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import inspect
import itertools
import logging
import math
import re
import threading
import types
import typing
import unicodedata
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, ForwardRef, Literal, TypeVar, get_args, get_origin
from uuid import UUID

import annotated_types
import pydantic_core
import typing_extensions
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic import types as pydantic_types
from pydantic.fields import FieldInfo

from ._clock import in_utc_range, require_aware, whole_minute_offset
from ._documents import FIELD_SCHEMAS, read_back, reread_fields, schema_nodes
from ._enums import Channel, ContactType, LeadStatus, LostReason, Stage
from ._lifecycle import funnel_steps
from ._models import (
    RECORD_TYPES,
    REFUSES_CONTROL,
    Contact,
    Event,
    Lead,
    Opportunity,
    Record,
    SubjectKind,
    Touch,
    field_annotation,
    field_keys,
    field_values,
)
from ._models import holds_keys as holds_keys
from ._models import identity_keys as identity_keys

__all__ = [
    "ChangeSet",
    "FollowUpCandidate",
    "FollowUpStats",
    "MergeLog",
    "Move",
    "RepListRow",
    "Repository",
    "StageTime",
    "StepCount",
    "Suppression",
]

_log = logging.getLogger("leadfunnel")
_SCOPES_LOCK = threading.Lock()
_SUBSCRIBERS_LOCK = threading.Lock()

#: Where a page of records ends: the ``(created_at, id)`` of its last record. Lists are
#: ordered by it, so the next page is the records after it.
Cursor = tuple[datetime, UUID]
_R = TypeVar("_R", bound=Record)

#: The filters each kind of record can be listed and counted by.
LIST_FILTERS: dict[str, frozenset[str]] = {
    "lead": frozenset(
        {"status", "tag", "source", "owner", "created_since", "created_until", "where"}
    ),
    "contact": frozenset({"type", "tag", "source", "owner", "lead_id", "where"}),
    "opportunity": frozenset({"stage", "owner", "setter", "contact_id", "lead_id", "where"}),
}

GroupBy = Literal["source", "owner", "setter", "profile", "month"]
RepListKind = Literal["not_sat", "not_bought", "never_booked"]

#: Lost reasons that keep a deal off every rep list: nobody should call them back.
DO_NOT_CALL = frozenset({LostReason.AVOID, LostReason.UNQUALIFIED})


@dataclass(frozen=True, slots=True)
class Move:
    """Re-point touches and events from one subject to another (used by merges)."""

    touch_ids: tuple[UUID, ...]
    event_ids: tuple[UUID, ...]
    to_subject_id: UUID


@dataclass(frozen=True, slots=True)
class MergeLog:
    """What a merge changed, kept so that ``unmerge`` can undo it exactly.

    ``keep_before`` and ``other`` are the two records as they were before the merge;
    ``keep_version`` is the version the merge gave ``keep`` (an unmerge is refused once
    ``keep`` has moved on); ``opportunities_before`` are the deals re-pointed to keep;
    ``touch_ids`` and ``event_ids`` what was moved from ``other`` to ``keep``.
    """

    id: UUID
    keep_id: UUID
    at: datetime
    keep_before: Lead | Contact
    other: Lead | Contact
    keep_version: int
    touch_ids: tuple[UUID, ...] = ()
    event_ids: tuple[UUID, ...] = ()
    opportunities_before: tuple[Opportunity, ...] = ()


@dataclass(frozen=True, slots=True)
class Suppression:
    """A person who must never be added again, known only by a keyed hash of one of
    their identity keys (``digest``, hex), and the record that keeps them avoided."""

    digest: str
    record_id: UUID


@dataclass(slots=True)
class ChangeSet:
    """Everything one funnel operation changes; committed all or nothing.

    ``checks`` are records the operation read and decided on without changing them (the
    person a touch is logged on): the commit fails if any of them changed since.
    ``touches_read`` are, by subject, how many touches the operation read and decided on
    (a touch checked against its cadence, the touches an erasure scrubs or a merge
    moves): the commit fails if the subject has another number now (counted before
    this change's own touches and moves). ``events_read`` are the same for events (the
    history an erasure scrubs or a merge moves), and ``deals_read``, by lead or
    contact, how many opportunities name it as their ``contact_id`` or ``lead_id``
    (the deals an erasure closes or a merge re-points): a capture, touch or booking
    committed in between, which changes no version, fails the change instead of being
    left behind. All of these fail with :class:`~leadfunnel.ConcurrencyError`, and a
    store checks them while it holds what the commit writes (the records of ``checks``,
    ``updates`` and ``deletes`` locked, where the store locks rows), so two commits
    checked against the same state cannot both be stored.

    ``unsuppressed`` are identity keys the change stores (a new person's, those an edit
    adds) that must not be on the suppression list, and ``digest`` gives the digest of
    one (see :class:`Suppression`): the commit fails with
    :class:`~leadfunnel.AvoidListedError` (the suppression's record id, the key) if the
    digest of one is suppressed. A store checks this after every commit that stores
    suppressions before it, so that a person avoided or erased a moment ago is never
    stored again; it may skip the digests when it holds no suppression at all.
    """

    inserts: list[Record] = field(default_factory=list)
    updates: list[Record] = field(default_factory=list)
    deletes: list[Record] = field(default_factory=list)
    touches: list[Touch] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    add_merge: MergeLog | None = None
    remove_merge: UUID | None = None
    checks: list[Record] = field(default_factory=list)
    touches_read: dict[UUID, int] = field(default_factory=dict)
    events_read: dict[UUID, int] = field(default_factory=dict)
    deals_read: dict[UUID, int] = field(default_factory=dict)
    suppress: list[Suppression] = field(default_factory=list)
    unsuppressed: list[str] = field(default_factory=list)
    digest: Callable[[str], str] | None = None
    #: Stored touches and events replaced by these (same id; the store keeps each one's
    #: subject and position): an erasure scrubbing notes, reasons and data.
    rewrites: list[Touch | Event] = field(default_factory=list)
    #: Stored merge logs replaced by these (same id): an erasure scrubbing snapshots.
    rewrite_merges: list[MergeLog] = field(default_factory=list)
    #: The records ``updates`` were decided on, by id, exactly as this store gave them
    #: (each at its update's version minus one). Optional: a store may take what such a
    #: record holds (its identity keys, its tags) from here instead of reading it
    #: again; the version check still refuses a record that changed since. Never put
    #: a record here that was built or edited rather than read.
    read: dict[UUID, Record] = field(default_factory=dict)

    def records(self) -> Iterator[Record]:
        """Every record inserted or updated."""
        yield from self.inserts
        yield from self.updates


@dataclass(frozen=True, slots=True)
class FollowUpCandidate:
    """One subject in a follow-up cadence, with what the cadence needs to schedule it.

    ``touches`` counts the touches logged on the subject after its last touch with a
    ``replied`` or ``interested`` outcome (all of them if there is none; that touch
    itself does not count) and at or after it entered the cadence (for a lead,
    :func:`leadfunnel.storage.lead_entered`; for a contact, the later of its
    ``created_at`` and its last deal's close, as below); ``last_touch_at`` is the
    ``at`` of the last counted touch
    (``None`` when ``touches == 0``); ``anchor_at`` is when the subject entered the
    cadence or was last reset: the later of when the lead entered it
    (:func:`leadfunnel.storage.lead_entered`: qualifying a raw lead does not move it,
    so an overdue first response stays overdue; for a contact, the later of its
    ``created_at`` and the latest ``closed_at`` of its opportunities, i.e. when its
    last deal closed; a closed deal without one counts its ``updated_at``) and the last
    resetting touch. A later edit of a closed deal does not move the anchor.
    """

    subject_id: UUID
    subject: Literal["lead", "contact"]
    state: str
    owner: str | None
    anchor_at: datetime
    touches: int
    last_touch_at: datetime | None
    opt_outs: frozenset[Channel]


@dataclass(frozen=True, slots=True)
class StepCount:
    """How many distinct subjects reached ``step`` within a report's period, per group."""

    step: str
    group: str | None
    count: int


@dataclass(frozen=True, slots=True)
class StageTime:
    """How long subjects took from ``step`` to ``next`` (two consecutive
    :data:`~leadfunnel.TIMED_STEPS`): the median over ``count`` subjects, in seconds,
    in ``group`` (``None`` without ``by``)."""

    step: str
    next: str
    median_seconds: float
    count: int
    group: str | None = None


@dataclass(frozen=True, slots=True)
class RepListRow:
    """One entry of a rep list: the record, and since when it has been in the situation
    the list is about (see :meth:`Repository.rep_list`)."""

    record: Lead | Opportunity
    since: datetime


@dataclass(frozen=True, slots=True)
class FollowUpStats:
    """How well the leads that reached ``qualified`` in a period were followed up.

    ``qualified`` counts those leads; ``touches`` the touches logged on them or on the
    contact each became (at any time: a converted lead is followed up on its contact),
    each once (two leads whose contacts were merged share one contact's touches);
    ``never_touched`` those with no such touch that were never converted either (an
    appointment booked is a follow-up that worked).
    """

    qualified: int
    never_touched: int
    touches: int


#: The text fields stores filter and group by, which a database adapter keeps in
#: columns of their models' length (the SQL adapter does).
_FILTERED_TEXT = frozenset({"owner", "source", "setter", "profile"})


@functools.cache
def _text_limits(base: type[Record]) -> dict[str, int]:
    """The text fields of leadfunnel's own ``base`` model kept in columns
    (:data:`_FILTERED_TEXT`) and the length they take: the ``max_length`` of the field's
    text schema."""
    limits: dict[str, int] = {}
    for name in base.model_fields:
        if name not in _FILTERED_TEXT:
            continue  # kept in the document alone: any length stores everywhere
        found = [
            node.get("max_length")
            for node in _nodes(_type_adapter(base, name).core_schema)
            if node.get("type") == "str"
        ]
        most = found[0] if len(found) == 1 else None
        if isinstance(most, int) and _takes(base, name, "x" * most):
            limits[name] = most
    return limits


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every mapping in the core schema ``schema``."""
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            yield node
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


def _takes(model: type[Record], name: str, text: str) -> bool:
    """Whether the field ``name`` of ``model``, by its type and constraints, accepts
    ``text``."""
    try:
        _type_adapter(model, name).validate_python(text)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


def _check_model(kind: str, model: object) -> None:
    """Refuse ``model`` as the class of ``kind``: not a subclass of leadfunnel's own, one
    hiding what leadfunnel's has under one of its field names, a lead model with a field
    ``type`` (an import's key for a contact's type), or one with a field its JSON dump
    leaves out or masks (see :func:`_unstorable_fields`)."""
    from ._errors import ConfigError, InvalidArgumentError

    base = RECORD_TYPES[kind]
    if not (isinstance(model, type) and issubclass(model, base)):
        raise InvalidArgumentError(
            f"{kind}_model={model!r} is not a subclass of {base.__name__}; "
            f"declare it as class My{base.__name__}({base.__name__}): ..."
        )
    hiding = [
        name for name in model.model_fields if name not in base.model_fields and hasattr(base, name)
    ]
    if hiding:
        raise InvalidArgumentError(
            f"{model.__name__} declares {', '.join(map(repr, hiding))}, which "
            f"{'hides' if len(hiding) == 1 else 'hide'} what {base.__name__} has "
            f"under that name ({base.__name__}.{hiding[0]}, which leadfunnel uses); "
            "give the field another name (an alias keeps the column's name)"
        )
    if kind == "lead" and "type" in field_keys(model):
        raise ConfigError(
            f"{model.__name__} declares a field 'type' (by name or alias): an import "
            "(import_leads, leadfunnel import) reads a row's 'type' as the ContactType "
            "that makes the row a contact, never as a lead's field; give the field "
            "another name and alias (lead_type, say), and name the column so in the "
            "files you import"
        )
    widened = [
        f"{model.__name__}.{name} (leadfunnel's takes at most {most:,} characters)"
        for name, most in _text_limits(base).items()
        if model.model_fields.get(name) is not base.model_fields[name]
        and name in model.model_fields
        and _takes(model, name, "x" * (most + 1))
    ]
    if widened:
        raise ConfigError(
            f"{model.__name__} redeclares leadfunnel's fields to take longer text: "
            f"{'; '.join(widened)}. Stores filter by those fields, and the SQL stores "
            "keep them in columns of that length (every store must keep what the others "
            "keep): keep the limit (Field(max_length=...)), or keep longer text in a "
            "field of your own"
        )
    unstorable = _unstorable_fields(model)
    if unstorable:
        raise ConfigError(
            f"{model.__name__} has fields a store cannot keep: {'; '.join(unstorable)}. "
            "The SQL adapter stores a record as its JSON dump, and every store must read "
            "a value back as it was given: declare a secret as plain str (better, keep "
            "credentials out of records: in a secrets store, the record holding a "
            "reference); leave a field out of your own dumps where you make them "
            "(model_dump(exclude=...)), not with Field(exclude=...)"
        )


#: pydantic's serialisers of ``SecretStr``, ``SecretBytes`` and ``Secret[...]``.
_SECRET_SERIALISERS = tuple(
    found
    for found in (
        getattr(pydantic_types, name, None)
        for name in ("_serialize_secret_field", "_serialize_secret")
    )
    if found is not None
)
_SECRET_TYPES = tuple(
    found
    for found in (
        getattr(pydantic_types, name, None) for name in ("SecretStr", "SecretBytes", "Secret")
    )
    if isinstance(found, type)
)


def _unstorable_fields(model: type[BaseModel]) -> list[str]:
    """The fields of ``model``, and of the models, dataclasses and typed dicts in them,
    that its JSON dump leaves out (``Field(exclude=True)``, ``exclude_if``) or masks (a
    secret writes ``'**********'``), each with why."""
    found: dict[str, str] = {}
    for node in schema_nodes(model):
        schema = node.schema
        cls = schema.get("cls")
        serialiser = schema.get("serialization")
        if (isinstance(cls, type) and issubclass(cls, _SECRET_TYPES)) or (
            isinstance(serialiser, dict) and serialiser.get("function") in _SECRET_SERIALISERS
        ):
            found.setdefault(node.field, "a secret, which a dump masks")
        if node.kind in FIELD_SCHEMAS and (
            schema.get("serialization_exclude") or schema.get("serialization_exclude_if")
        ):
            found.setdefault(node.field, "Field(exclude=...), which leaves it out of a dump")
    return [f"{where} is {why}" for where, why in found.items()]


def _check_not_retyped(kind: str, current: type[Record], model: type[Record]) -> None:
    """Refuse ``model`` for a store whose ``kind`` is read as ``current``, the
    application's class: the funnels already on the store would read it so too."""
    if model is current or current is RECORD_TYPES[kind]:
        return
    from ._errors import ConfigError

    now, then = _class_name(current), _class_name(model)
    if now == then:  # two classes of one name: a module imported twice, a class remade
        now, then = f"{now} (id {id(current):#x})", f"another class {then} (id {id(model):#x})"
    raise ConfigError(
        f"this store already reads {kind}s as {now}; it cannot also read them as {then} "
        f"(one set of models per store: every funnel on it would start reading "
        f"{kind}s as {model.__name__}). Give every funnel on this store "
        f"{kind}_model={current.__name__} (Funnel(repository) without models reads "
        f"them so too), open another repository for {model.__name__}, or, if the "
        f"application changed its model, call "
        f"repository.use_models({kind}={model.__name__}, replace=True)"
    )


def _class_name(model: type[Any]) -> str:
    return f"{model.__module__}.{model.__qualname__}"


class _Subscription:
    """One registration of a subscriber: stopping it leaves the callable's other
    registrations in place."""

    __slots__ = ("active", "callback", "name")

    def __init__(self, callback: Callable[[list[Event]], None]) -> None:
        self.callback = callback
        self.name = _name_of(callback)
        self.active = True


def _own_copy(event: Event) -> Event:
    """``event`` with a copy of its ``data`` (the rest of an event cannot change)."""
    return event.model_copy(update={"data": copy.deepcopy(event.data)})


def _name_of(callback: object) -> str:
    """A callable's qualified name for a log line (``module.Class.method``)."""
    qualname = getattr(callback, "__qualname__", None)
    if not isinstance(qualname, str):
        return repr(callback)
    module = getattr(callback, "__module__", None)
    return f"{module}.{qualname}" if isinstance(module, str) else qualname


def _only_makes(callback: object, *tests: Callable[[object], bool]) -> bool:
    """Whether ``callback`` (a function, or an object's ``__call__``) passes one of the
    ``inspect`` tests: calling it only makes a coroutine or a generator."""
    return any(test(f) for f in (callback, type(callback).__call__) for test in tests)


# --- values every store keeps -----------------------------------------------------------
#
# What a model accepts is not always what every database keeps: PostgreSQL's text and
# jsonb refuse U+0000, JSON has no inf or nan (an SQL store would read None back), and
# an integer beyond signed 64 bits stores but breaks filters and bigint indexes on it.
# The port refuses such values at commit, before an adapter writes anything, so that
# every store refuses the same records in the same way. Which fields can hold one is
# decided once per class, from its annotations: leadfunnel's own models have none (its
# counts are bounded, its text refuses control characters), so their records cost a
# cache look-up each.
#
# A JSON document has no form for some values (bytes that are no UTF-8 text, an object
# pydantic cannot write), and a field whose type admits several (``UUID | str``) reads
# back the member its validation picks from the JSON, not always the one the record
# holds: a record of a class with such a field (see ``reread_fields``) is read back
# from its document, as the SQL stores would, and refused if a field differs.

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
#: Leaf types whose values a store keeps whatever they are (or that the walk of values
#: could not look into anyway).
_PORTABLE_LEAVES: tuple[type, ...] = (
    bool,
    type(None),
    Decimal,
    UUID,
    datetime,
    date,
    time,
    timedelta,
)


@dataclass(frozen=True, slots=True)
class _Walk:
    """What to look at in a record of one class: ``fields``, its extra values when its
    class allows extra fields, and the fields to compare with the record read back from
    its document (``reread``, each with whether a union is why)."""

    fields: tuple[str, ...]
    extras: bool
    reread: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    #: The fields that hold a datetime or a time and nothing else (a UTC offset with
    #: seconds is all they can hold that a store does not keep): a quick look each.
    instants: tuple[str, ...] = ()
    #: The ``fields`` whose type does not make a number read back as a float (an
    #: ``Any``, a ``dict[str, Any]``, an ``int | float``): see :data:`_FLOAT_AS_INT`.
    loose: frozenset[str] = frozenset()
    #: Whether ``instants`` are all there is to look at.
    instants_only: bool = dataclasses.field(init=False, default=False)

    def __post_init__(self) -> None:
        only = bool(self.instants) and not (self.fields or self.extras or self.reread)
        object.__setattr__(self, "instants_only", only)


_NOTHING_TO_WALK = _Walk((), False)


@functools.cache
def _checks_of(model: type[BaseModel]) -> _Walk:
    """What :func:`check_portable` looks at in a record of ``model``: the fields of
    :func:`_walk_of`, and those that :func:`~leadfunnel._documents.reread_fields` gives."""
    walk = _walk_of(model)
    reread = reread_fields(model)
    return dataclasses.replace(walk, reread=reread) if reread else walk


@functools.cache
def _walk_of(model: type[BaseModel]) -> _Walk:
    """The fields of ``model`` whose annotation can hold a value not every store keeps
    (see :func:`_may_be_unportable`)."""
    return _plan(model, set())


def _plan(model: type[BaseModel], seen: set[type]) -> _Walk:
    seen = seen | {model}
    finite = model.model_config.get("allow_inf_nan", True) is False
    fields: list[str] = []
    instants: list[str] = []
    for name, info in model.model_fields.items():
        if _instant_only(info.annotation, tuple(info.metadata)):
            instants.append(name)
        elif _may_be_unportable(info.annotation, tuple(info.metadata), finite, seen):
            fields.append(name)
    extras = model.model_config.get("extra") == "allow"
    if not (fields or extras or instants):
        return _NOTHING_TO_WALK
    loose = frozenset(name for name in fields if _loose(model.model_fields[name].annotation))
    return _Walk(tuple(fields), extras, instants=tuple(instants), loose=loose)


#: pydantic's datetime types that are no ``datetime`` subclass, and may hold an offset.
_ZONED = (pydantic_types.AwareDatetime, pydantic_types.PastDatetime, pydantic_types.FutureDatetime)


def _own_instant(metadata: Iterable[Any]) -> bool:
    """Whether a field's ``metadata`` makes it one of leadfunnel's own instants, which
    ``in_utc_range`` checks (and gives in UTC when their offset has seconds)."""
    return any(getattr(check, "func", None) is in_utc_range for check in metadata)


def _instant_only(annotation: Any, metadata: tuple[Any, ...] = ()) -> bool:
    """Whether ``annotation`` holds a datetime or a time (or ``None``) and nothing else,
    and is not one of leadfunnel's own instants (checked by ``in_utc_range``: the
    funnel writes them in UTC, and looking at them would cost every record a look)."""
    if _own_instant(metadata):
        return False
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *more = get_args(annotation)
        return _instant_only(inner, tuple(more))
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in get_args(annotation) if a is not type(None)]
        return len(members) == 1 and _instant_only(members[0])
    if origin is not None or not isinstance(annotation, type):
        return False
    return issubclass(annotation, (datetime, time)) or annotation in _ZONED


def _loose(annotation: Any) -> bool:
    """Whether a number in a value of ``annotation`` may read back as the JSON number
    is (an integer text as an ``int``) rather than as the float its type makes of it:
    an ``Any``, a bare container, a union of ``float`` with another number."""
    if annotation is Any or annotation is object or isinstance(annotation, (str, ForwardRef)):
        return True
    if isinstance(annotation, TypeVar):
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _loose(get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        members = get_args(annotation)
        if float in members and any(m in (int, Decimal) for m in members):
            return True
        return any(_loose(m) for m in members)
    if origin is Literal:
        return False
    if origin is not None:
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        if isinstance(origin, type) and issubclass(origin, BaseModel):
            return False  # its own fields say
        return not args or any(_loose(arg) for arg in args)
    alias = getattr(annotation, "__value__", None) or getattr(annotation, "__supertype__", None)
    if alias is not None:
        return _loose(alias)
    if not isinstance(annotation, type) or issubclass(annotation, (str, bytes, BaseModel)):
        return False  # (a model's own fields say)
    if (
        dataclasses.is_dataclass(annotation)
        or typing_extensions.is_typeddict(annotation)
        or (issubclass(annotation, tuple) and hasattr(annotation, "_fields"))  # NamedTuple
    ):
        # Its fields' types say (a float field reads an integer text back as a float).
        try:
            hints = typing.get_type_hints(annotation)
        except Exception:  # annotations that do not resolve: taken as untyped
            return True
        return any(_loose(hint) for hint in hints.values())
    return issubclass(annotation, (Mapping, Collection))


def _constraints(metadata: Iterable[Any]) -> Iterator[Any]:
    """``metadata`` of an annotation flattened: a ``Field(...)``'s own constraints and a
    group's (``conint``'s ``Interval``) each on their own."""
    for item in metadata:
        if isinstance(item, FieldInfo):
            yield from _constraints(item.metadata)
        elif isinstance(item, annotated_types.GroupedMetadata):
            yield from _constraints(item)
        else:
            yield item


def _bounded(metadata: tuple[Any, ...]) -> bool:
    """Whether constraints ``metadata`` keep an integer within signed 64 bits."""
    low = high = False
    for item in metadata:
        ge, gt = getattr(item, "ge", None), getattr(item, "gt", None)
        le, lt = getattr(item, "le", None), getattr(item, "lt", None)
        low = (
            low
            or (ge is not None and ge >= _INT64_MIN)
            or (gt is not None and gt >= _INT64_MIN - 1)
        )
        high = (
            high
            or (le is not None and le <= _INT64_MAX)
            or (lt is not None and lt <= _INT64_MAX + 1)
        )
    return low and high


def _finite(metadata: tuple[Any, ...]) -> bool:
    """Whether constraints ``metadata`` refuse inf and nan: ``allow_inf_nan=False``, or
    a bound on either side (nan fails every comparison, inf the bound it passes)."""
    low = high = False
    for item in metadata:
        if getattr(item, "allow_inf_nan", None) is False:
            return True
        low = low or getattr(item, "ge", None) is not None or getattr(item, "gt", None) is not None
        high = (
            high or getattr(item, "le", None) is not None or getattr(item, "lt", None) is not None
        )
    return low and high


def _may_be_unportable(
    annotation: Any, metadata: tuple[Any, ...], finite: bool, seen: set[type]
) -> bool:
    """Whether a value of ``annotation`` (constrained by ``metadata``; ``finite`` when
    its model refuses inf and nan) can be one that not every store keeps: an ``int``,
    ``float``, plain ``str`` or ``bytes``, ``Any``, or a container or model holding
    one. Text checked by one of leadfunnel's own text types, a bounded int, a finite
    float, enums and literals of portable values, and leaf types such as ``UUID`` or
    ``datetime`` cannot."""
    if annotation is Any or annotation is object or isinstance(annotation, (str, ForwardRef)):
        return True  # anything at all, or a name not resolved: look at the values
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *more = get_args(annotation)
        return _may_be_unportable(inner, (*metadata, *more), finite, seen)
    if origin is Literal:
        return any(_flaw(value, 0, False) is not None for value in get_args(annotation))
    if origin is not None:  # a union, a container, a generic model
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        if not args:
            return True
        if isinstance(origin, type) and issubclass(origin, BaseModel):
            return _may_be_unportable(origin, (), finite, seen)
        return any(_may_be_unportable(arg, (), finite, seen) for arg in args)
    alias = getattr(annotation, "__value__", None) or getattr(annotation, "__supertype__", None)
    if alias is not None:  # a type alias (type X = ...), a NewType
        return _may_be_unportable(alias, metadata, finite, seen)
    if isinstance(annotation, TypeVar):
        return True
    if not isinstance(annotation, type):
        return False
    if issubclass(annotation, (datetime, time)) or annotation in _ZONED:
        # Its UTC offset may have seconds; leadfunnel's own instants are its to write.
        return not _own_instant(metadata)
    if issubclass(annotation, _PORTABLE_LEAVES):
        return False
    if issubclass(annotation, enum.Enum):
        return any(_flaw(member.value) is not None for member in annotation)
    if issubclass(annotation, str):
        checks = _constraints(metadata)
        return not any(getattr(check, "func", None) in REFUSES_CONTROL for check in checks)
    if issubclass(annotation, int):
        return not _bounded(tuple(_constraints(metadata)))
    if issubclass(annotation, float):
        return not (finite or _finite(tuple(_constraints(metadata))))
    if issubclass(annotation, BaseModel):
        return annotation in seen or _plan(annotation, seen) is not _NOTHING_TO_WALK
    if dataclasses.is_dataclass(annotation):
        if annotation in seen:
            return True
        hints = _hints(annotation)
        return hints is None or any(
            _may_be_unportable(hint, (), finite, seen | {annotation}) for hint in hints.values()
        )
    # bytes, and a bare container (list, dict...): anything may be in them.
    return issubclass(annotation, (bytes, bytearray, Mapping, Collection))


def _hints(cls: type) -> dict[str, Any] | None:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception:  # a name not resolvable here: look at the values
        return None


#: What to do about each kind of value not every store keeps.
_NUL_ADVICE = (
    "PostgreSQL stores no U+0000 in text or JSON; remove it (or have the field refuse "
    "control characters, with a validator of its own)"
)
_INT_ADVICE = (
    "databases store, index and filter on signed 64-bit integers "
    f"({_INT64_MIN} to {_INT64_MAX}); keep it within them (declare the field "
    "Annotated[int, Field(ge=-2**63, le=2**63 - 1)] to have the model refuse it), or "
    "store it as text"
)
_FLOAT_ADVICE = (
    "JSON has no infinity or NaN, and an SQL store would read it back as None; store a "
    "finite number or None (declare the field Annotated[float, Field(allow_inf_nan=False)] "
    "to have the model refuse it)"
)
_BYTES_ADVICE = (
    "the SQL stores keep a record as JSON, which holds bytes as UTF-8 text; keep such "
    "data as text in a str field: its hex (hashlib's hexdigest()) or its base64 "
    "(base64.b64encode(data).decode())"
)
_NO_JSON_ADVICE = (
    "the SQL stores keep a record as JSON, and pydantic has no JSON form for it; declare "
    "the field with a type pydantic writes as JSON (a nested model, a dataclass, "
    "dict[str, ...]), or keep such objects off the record"
)
_UNION_ADVICE = (
    "a JSON document does not tell the members of a union apart (a UUID, a date and a str "
    "are all text in it, a set and a list both an array), and a store reads back the "
    "member that fits it; keep one type in the field, or list first the type that must "
    'win and declare the field with Field(union_mode="left_to_right"), which then holds '
    "that type from the start"
)
_OWN_ADVICE = (
    "what the field's serialiser writes must read back, through its validators, as the "
    "value it was (pydantic's own types do); correct your serialiser or validator "
    "(field_serializer, PlainSerializer, a plain or wrap validator), or declare a type "
    "pydantic writes and reads alike"
)
_SURROGATE_ADVICE = (
    "text is stored as UTF-8, which has no lone surrogate (what a broken \\ud83d escape "
    "in JSON decodes to); remove it, or have the field refuse it (a str field does)"
)
_BIG_FLOAT_ADVICE = (
    "PostgreSQL keeps a JSON number as a decimal and writes a float of 1e16 or more back "
    "as an integer, which this field then holds as an int; store a Decimal, an int or "
    "text, or declare the field float (which reads it back as a float)"
)
_OFFSET_ADVICE = (
    "JSON writes a UTC offset in whole minutes (a zone's local mean time before about "
    "1900 has seconds, such as New York's -04:56:02), so the stores would read back "
    "another instant; give it in UTC (value.astimezone(timezone.utc)) or another "
    "whole-minute offset"
)
_DEPTH_ADVICE = (
    "MariaDB refuses a JSON document nested more than 32 levels deep, and the JSON "
    "reader of the others stops at 200; flatten it, or keep it as JSON text in a str "
    "field"
)
#: How deep lists, dicts, sets and models may nest in a field's value: the record's
#: document adds a level, a merge log's two more, and MariaDB refuses a 33rd.
_DEEPEST = 20
#: Floats this large or larger are whole numbers that PostgreSQL's jsonb writes back as
#: an integer text (1e+16 becomes 10000000000000000; 9999999999999998.0 stays).
_FLOAT_AS_INT = 1e16
_TOO_DEEP = ("", f"data nested more than {_DEEPEST} levels deep", _DEPTH_ADVICE)
#: Flaws that depend on how the field writes the value (a field's serialiser may write
#: bytes as base64 text, an object as text): checked against the field's own dump.
_AS_WRITTEN = (_BYTES_ADVICE, _NO_JSON_ADVICE)


def _flaw(value: Any, depth: int = 0, loose: bool = True) -> tuple[str, str, str] | None:
    """Where in ``value`` (``""``, ``"[2]"``, ``"['key']"``, ``".name"``...) a value not
    every store keeps is, what it is and what to do about it; ``None`` if there is none.
    ``depth`` is how many lists, dicts or models hold ``value`` in its record; ``loose``,
    whether its type lets a number read back as an ``int`` (see :func:`_loose`).
    The message never shows the value itself (it may be a person's data)."""
    if isinstance(value, str):
        at = value.find("\x00")
        if at >= 0:
            return "", f"a NUL character (U+0000) at position {at}", _NUL_ADVICE
        if value.isascii():
            return None
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            return "", f"a lone surrogate at position {exc.start}", _SURROGATE_ADVICE
        return None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return None
        bits = value.bit_length() + 1  # with its sign
        return "", f"an integer beyond signed 64 bits (it takes {bits})", _INT_ADVICE
    if isinstance(value, float):
        if -_FLOAT_AS_INT < value < _FLOAT_AS_INT:
            return None
        if not math.isfinite(value):
            return "", repr(value), _FLOAT_ADVICE
        if not loose:
            return None
        return "", "a float of 1e16 or more in size", _BIG_FLOAT_ADVICE
    if isinstance(value, (datetime, time)):
        if whole_minute_offset(value):
            return None
        return "", "a time whose UTC offset is not in whole minutes", _OFFSET_ADVICE
    if isinstance(value, (bytes, bytearray)):
        at = value.find(b"\x00")
        if at >= 0:
            return "", f"a NUL byte at position {at}", _NUL_ADVICE
        try:
            value.decode()
        except UnicodeDecodeError as exc:
            return "", f"bytes that are no UTF-8 text (from position {exc.start})", _BYTES_ADVICE
        return None
    if isinstance(value, Mapping):
        if depth >= _DEEPEST:
            return _TOO_DEEP
        for number, (key, item) in enumerate(value.items(), 1):
            found = _flaw(key) if isinstance(key, (str, bytes)) else None
            if found is not None:
                return "", f"a key with {found[1]}", found[2]
            found = _flaw(item, depth + 1, loose)
            if found is not None:
                return f"[{_key_name(key, number)}]{found[0]}", found[1], found[2]
        return None
    if isinstance(value, (list, tuple)):
        if depth >= _DEEPEST:
            return _TOO_DEEP
        for index, item in enumerate(value):
            found = _flaw(item, depth + 1, loose)
            if found is not None:
                return f"[{index}]{found[0]}", found[1], found[2]
        return None
    if isinstance(value, (set, frozenset)):
        if depth >= _DEEPEST:
            return _TOO_DEEP
        for item in value:
            found = _flaw(item, depth + 1, loose)
            if found is not None:
                return found[0], f"an item with {found[1]}", found[2]
        return None
    if isinstance(value, BaseModel):
        if depth >= _DEEPEST:
            return _TOO_DEEP
        if loose:
            # In an untyped place (an Any): read back as a dict, without its own types.
            for name, item in value.__dict__.items():
                found = _flaw(item, depth + 1, loose)
                if found is not None:
                    return f".{name}{found[0]}", found[1], found[2]
            return None
        return _flaw_in(value, _walk_of(type(value)), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if depth >= _DEEPEST:
            return _TOO_DEEP
        for each in dataclasses.fields(value):
            found = _flaw(getattr(value, each.name, None), depth + 1, loose)
            if found is not None:
                return f".{each.name}{found[0]}", found[1], found[2]
        return None
    if isinstance(value, _PORTABLE_LEAVES) or _has_json_form(value):
        return None
    return "", f"a value with no JSON form (a {type(value).__qualname__})", _NO_JSON_ADVICE


def _has_json_form(value: Any) -> bool:
    """Whether pydantic writes ``value`` as JSON where the type is not declared (an
    ``Any``): an enum, a path or an address does, an arbitrary object does not."""
    try:
        pydantic_core.to_json(value)
    except ValueError:  # (pydantic-core's PydanticSerializationError is one)
        return False
    return True


def _written(model: BaseModel, name: str) -> bool:
    """Whether ``model``'s JSON dump writes its field ``name`` (its serialiser may write
    what has no JSON form of its own: bytes as base64 text, an object as text)."""
    try:
        model.model_dump_json(include={name}, round_trip=True)
    except ValueError:
        return False
    return True


def kept_everywhere(value: Any) -> bool:
    """Whether every store keeps ``value`` (see :func:`check_portable`): a ``where=``
    value none keeps matches nothing, as no record can hold it (text with a NUL or a
    lone surrogate, data nested too deep...). (Bytes that are no text and values with
    no JSON form of their own are a field's to write: a filter compares them as the
    field writes them. A large float is a float field's to hold, and a datetime whose
    offset has seconds names an instant, which a filter compares.)"""
    found = _flaw(value, 0, False)
    return found is None or found[2] in _AS_WRITTEN or (found[2] is _OFFSET_ADVICE and not found[0])


def _key_name(key: Any, number: int) -> str:
    """A dict's ``key`` as an error shows it: a name (``'scores'``) or a number as it is,
    other keys (which may be a person's e-mail or name) by their place only."""
    if isinstance(key, str) and key.isidentifier() and len(key) <= 40:
        return repr(key)
    if type(key) is int and _INT64_MIN <= key <= _INT64_MAX:
        return repr(key)
    return f"<key {number}>"


def _flaws_in(model: BaseModel, walk: _Walk, depth: int = 0) -> Iterator[tuple[str, str, str, str]]:
    """Each field of ``model`` holding a value not every store keeps: its name, where in
    it, the problem and the advice. ``depth``: how many lists, dicts or models hold
    ``model`` in its record."""
    values = model.__dict__
    for name in walk.instants:
        value = values.get(name)
        if value is None or whole_minute_offset(value):
            continue  # (as most are: one look each)
        found = _flaw(value, depth)
        if found is not None:
            yield name, f".{name}{found[0]}", found[1], found[2]
    loose = walk.loose
    for name in walk.fields:
        found = _flaw(values.get(name), depth, name in loose)
        if found is not None and (found[2] not in _AS_WRITTEN or not _written(model, name)):
            yield name, f".{name}{found[0]}", found[1], found[2]
    if walk.extras and model.__pydantic_extra__:
        for name, item in model.__pydantic_extra__.items():
            found = _flaw(item, depth)
            if found is not None:
                yield name, f".{name}{found[0]}", found[1], found[2]


def _flaw_in(model: BaseModel, walk: _Walk, depth: int = 0) -> tuple[str, str, str] | None:
    for _, where, problem, advice in _flaws_in(model, walk, depth):
        return where, problem, advice
    return None


def _refuse_repeated_ids(inserts: list[Record]) -> None:
    """Refuse a change that inserts two records with one id (whatever their kinds): an
    id means one record, and a store would keep one of them, or both in two tables."""
    if len(inserts) < 2:
        return
    seen: dict[UUID, Record] = {}
    for record in inserts:
        first = seen.setdefault(record.id, record)
        if first is not record:
            from ._errors import ConcurrencyError

            raise ConcurrencyError.of_twins(record.id, first.kind, record.kind)


def check_portable(
    records: Iterable[Record], stored: Callable[[Record], Record | None] | None = None
) -> None:
    """Raise :class:`~leadfunnel.StorageError` (``of_value``) for the first of
    ``records`` holding a value not every store keeps: a NUL character in text (a
    ``str`` field, an item of a list, a key or value of a dict), an integer beyond
    signed 64 bits, an infinite or NaN float, bytes that are no UTF-8 text, a value
    with no JSON form (in an ``Any``, or an arbitrary class), text with a lone
    surrogate, data nested more than 20 levels deep, a float of 1e16 or more where its
    type lets it read back as an int (PostgreSQL's jsonb writes it as one), a datetime
    or time of an application's field whose UTC offset has seconds, or a value that reads
    back from the record's JSON document as another one (a UUID in a ``UUID | str``
    read back as the str, a Decimal in a ``float | Decimal`` as a float: see
    :func:`~leadfunnel._documents.reread_fields`; only the classes with such fields
    are read back). The error names the record, the field and the problem, never the
    value, and says what to do. :meth:`Repository.commit` calls this on what a change
    inserts and updates, before the adapter writes anything.

    ``stored`` gives the version of an updated record the store holds: a field that
    holds there what it holds in the update is not the change's (a value stored before
    stores checked it), so it does not block the record's other changes (a trigger, an
    avoid, an erasure). It is asked only when a value is refused."""
    checks_of = _checks_of
    for record in records:
        walk = checks_of(type(record))
        if walk is _NOTHING_TO_WALK:
            continue
        if walk.instants_only:  # (datetimes in whole-minute offsets need no more look)
            values = record.__dict__
            if all(
                (v := values.get(name)) is None or whole_minute_offset(v) for name in walk.instants
            ):
                continue
        asked, before = False, None
        found = _flaws_in(record, walk)
        if walk.reread and getattr(record, "erased_at", None) is None:
            # (An erasure blanks fields and changes no other: it is never refused by
            # the application's class, which may want what it blanks, and the stores
            # read an erased record their class refuses as leadfunnel's.)
            found = itertools.chain(found, _misread_in(record, walk.reread))
        for name, where, problem, advice in found:
            if not asked:
                asked, before = True, None if stored is None else stored(record)
            if before is not None and name and _same_field(before, record, name):
                continue
            from ._errors import StorageError

            named = f"field {where[1:]!r} of " if where else ""  # else: the whole record
            raise StorageError(
                f"{named}{record.kind} {record.id} holds {problem}, which not every store "
                f"keeps: {advice}; nothing of this change was stored",
                of_value=True,
            )


def _misread_in(record: Record, reread: Mapping[str, bool]) -> Iterator[tuple[str, str, str, str]]:
    """Each field of ``record`` that does not read back from its JSON document as it
    is (of ``reread``, each with whether a union is why; any field whose document the
    model refuses, or that has no JSON form): its name, where in it, the problem and
    the advice, as :func:`_flaws_in` gives them."""
    try:
        back = read_back(record)
    except ValidationError as exc:
        model = type(record).__name__
        for error in exc.errors(include_url=False, include_input=False):
            loc = error["loc"]
            name = str(loc[0]) if loc else ""
            why = f"as what {model} refuses ({error['type']})"
            union = reread.get(name, False)
            yield name, _located(loc), _reads_back(why), _UNION_ADVICE if union else _OWN_ADVICE
        return
    except ValueError:  # no JSON form (PydanticSerializationError): the fields it is in
        extra = record.__pydantic_extra__ or {}
        for name in [*type(record).model_fields, *extra]:
            if not _written(record, name):
                yield name, f".{name}", "a value with no JSON form", _NO_JSON_ADVICE
        return
    except Exception as exc:  # an application's validator failing on the document's data
        why = f"as what {type(record).__name__}'s validators fail on ({type(exc).__name__})"
        yield "", "", _reads_back(why), _OWN_ADVICE
        return
    values, read = record.__dict__, back.__dict__
    for name, union in reread.items():
        found = _difference(values.get(name), read.get(name))
        if found is not None:
            at, was, got = found
            if type(was) is type(got):
                problem = _reads_back("as another value")
            else:
                problem = _reads_back(f"as {type(got).__name__}", type(was).__name__)
            yield name, f".{name}{at}", problem, _UNION_ADVICE if union else _OWN_ADVICE


def _located(loc: Iterable[int | str]) -> str:
    """A validation error's ``loc`` as :func:`_flaw` says where (``.sites[1].vendor``):
    a key that is no name (it may be a person's e-mail) by its place only."""
    parts = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part.isidentifier() and len(part) <= 40:
            parts.append(f".{part}")
        else:
            parts.append("[<key>]")
    return "".join(parts)


def _reads_back(how: str, of: str | None = None) -> str:
    kind = "a value" if of is None else f"a value of type {of}"
    return f"{kind} that reads back from its JSON document {how}"


def _difference(value: Any, read: Any) -> tuple[str, Any, Any] | None:
    """Where ``read`` first differs from ``value`` (``""``, ``"[2]"``, ``".name"``...,
    as :func:`_flaw` says it), with the two values there; ``None`` if it is ``value``:
    of the same type and equal (a NaN is itself), and so are the items and fields in
    it."""
    if type(value) is not type(read):
        return "", value, read
    names: Iterable[str] | None = None
    if isinstance(value, BaseModel):
        names = value.__dict__
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [each.name for each in dataclasses.fields(value)]
    if names is not None:
        for name in names:
            found = _difference(getattr(value, name, None), getattr(read, name, None))
            if found is not None:
                return f".{name}{found[0]}", found[1], found[2]
        return None
    if isinstance(value, Mapping):
        if value.keys() != read.keys():
            return "", value, read
        for number, (key, item) in enumerate(value.items(), 1):
            found = _difference(item, read[key])
            if found is not None:
                return f"[{_key_name(key, number)}]{found[0]}", found[1], found[2]
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != len(read):
            return "", value, read
        for index, (item, back) in enumerate(zip(value, read, strict=True)):
            found = _difference(item, back)
            if found is not None:
                return f"[{index}]{found[0]}", found[1], found[2]
        return None
    try:
        if value == read:
            return None
    except ArithmeticError:  # a signalling Decimal NaN
        pass
    return None if repr(value) == repr(read) else ("", value, read)


def _same_field(before: Record, record: Record, name: str) -> bool:
    """Whether ``record`` holds in ``name`` what ``before`` holds (a NaN is itself)."""
    old = field_values(before).get(name, _ABSENT)
    new = field_values(record).get(name, _ABSENT)
    return old is new or repr(old) == repr(new)


_ABSENT = object()


_REGISTERING = threading.RLock()


class _Storing(threading.local):
    """Per thread: the ids of records about to be inserted -> what to tell once it is
    known whether they are stored (see :func:`when_stored`)."""

    def __init__(self) -> None:
        self.waiting: dict[UUID, Callable[[bool], None]] = {}


_STORING = _Storing()


def when_stored(record_id: UUID, settle: Callable[[bool], None]) -> None:
    """Call ``settle(True)`` once the commit of this thread that inserts (or updates)
    ``record_id`` is kept for good (at once; inside :meth:`Repository.transaction`, when
    the outermost transaction commits), ``settle(False)`` if it is not: that commit
    failed, or a transaction it was made in rolled back. For what counts only what is
    stored (a router's leads per owner and day): call it just before that commit, which
    settles it (through any repository); registered again, the earlier ``settle`` is
    told ``False``. ``settle`` must not raise."""
    waiting = _STORING.waiting
    earlier = waiting.pop(record_id, None)
    if earlier is not None:
        earlier(False)
    waiting[record_id] = settle


@contextmanager
def settled_by_commit() -> Iterator[None]:
    """Around routing a record and committing it: what :func:`when_stored` awaits for
    records registered inside the block and not taken up by a commit when it ends (it
    raised before its commit: a bad ``reason``, an interrupt) is told ``False`` there,
    rather than hold an owner's capacity for the rest of the day."""
    waiting = _STORING.waiting
    before = set(waiting)
    try:
        yield
    finally:
        for record_id in [k for k in waiting if k not in before]:
            waiting.pop(record_id)(False)


def _settle(settling: list[Callable[[bool], None]], stored: bool) -> None:
    for k, settle in enumerate(settling):
        try:
            settle(stored)
        except BaseException:
            _settle(settling[k + 1 :], stored)  # an interrupt: the rest are told too
            raise


class Repository(ABC):
    """The storage port. See the module documentation for the contract.

    Adapters implement :meth:`_commit` and the queries; :meth:`commit` and
    :meth:`subscribe` live here, so that every adapter tells its subscribers about
    every commit in the same way.
    """

    _subscribers: tuple[_Subscription, ...] = ()
    _scopes: threading.local | None = None
    _models: Mapping[str, type[Lead] | type[Contact] | type[Opportunity]] = RECORD_TYPES

    # --- the application's models -------------------------------------------------------

    def use_models(
        self,
        *,
        lead: type[Lead] | None = None,
        contact: type[Contact] | None = None,
        opportunity: type[Opportunity] | None = None,
        replace: bool = False,
    ) -> None:
        """Read records as these classes: the application's subclasses of ``Lead``,
        ``Contact`` and ``Opportunity``, with its own fields (``Funnel(lead_model=...)``
        calls this); a kind not given (``None``) keeps its class. One set of models per
        store: registering the class a kind has is a no-op, and a kind still read as
        leadfunnel's own class takes any subclass of it; another class for a kind that
        already has the application's raises :class:`~leadfunnel.ConfigError` (every
        funnel on this store would start reading it so), unless ``replace`` says that
        the store is meant to be retyped (the application changed its model)."""
        given = {"lead": lead, "contact": contact, "opportunity": opportunity}
        # One registration at a time (two threads each registering a kind would each
        # put the other's kind back, or both pass the check): rare, so one lock for all,
        # taken after the store's own (see _registering).
        with self._registering(), _REGISTERING:
            models: dict[str, type[Lead] | type[Contact] | type[Opportunity]] = {
                kind: self.models[kind] if model is None else model for kind, model in given.items()
            }
            for kind, model in models.items():
                _check_model(kind, model)
                if not replace:
                    _check_not_retyped(kind, self.models[kind], model)
            if any(models[kind] is not self.models[kind] for kind in models):
                self._use_models(models)

    def _registering(self) -> AbstractContextManager[object]:
        """What :meth:`use_models` holds while it registers, before the process-wide
        registration lock: the lock :meth:`_use_models` takes that a thread inside
        :meth:`transaction` holds, if there is one. Both then take the two in one order;
        else a thread inside a block that makes a funnel with an application's class,
        and another registering a class on this store, each waited for the other's lock
        for good."""
        return nullcontext()

    def _use_models(
        self, models: dict[str, type[Lead] | type[Contact] | type[Opportunity]]
    ) -> None:
        """Start reading records as ``models`` (checked by :meth:`use_models`). An
        adapter that holds records as objects converts them here, raising
        :class:`~leadfunnel.ConfigError` (and changing nothing) for one that cannot be
        read as its new class."""
        self._models = models

    @property
    def models(self) -> Mapping[str, type[Lead] | type[Contact] | type[Opportunity]]:
        """The classes records are read as, by kind (see :meth:`use_models`)."""
        return self._models

    # --- writes -----------------------------------------------------------------------

    def commit(self, changes: ChangeSet) -> list[Event]:
        """Apply ``changes`` atomically, or raise and apply nothing; return the events as
        stored (each with its ``position``), after telling the subscribers (inside a
        :meth:`transaction`, once it commits). A record holding a value not every store
        keeps is refused first (:func:`check_portable`), whatever the adapter. What
        :func:`when_stored` awaits for the records inserted or updated is settled here
        (inside a transaction, when the outermost one ends)."""
        waiting = _STORING.waiting
        settling = (
            [waiting.pop(r.id) for r in changes.records() if r.id in waiting] if waiting else []
        )
        try:
            _refuse_repeated_ids(changes.inserts)
            check_portable(changes.inserts)
            check_portable(changes.updates, lambda record: self._held(changes, record))
            stored = self._commit(changes)
        except BaseException:
            _settle(settling, False)
            raise
        scope = self._scope()
        if scope.depth:
            scope.pending.extend(stored)
            scope.settling.extend(settling)
        else:
            _settle(settling, True)
            if stored:
                self._tell(scope, stored)
        return stored

    def _held(self, changes: ChangeSet, record: Record) -> Record | None:
        """The version of ``record`` the store holds (the one the change was decided on,
        or read again), ``None`` if there is none."""
        known = changes.read.get(record.id)
        if known is not None:
            return known
        from ._errors import NotFoundError

        try:
            return self.get(record.id)
        except NotFoundError:
            return None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make every commit of this thread inside the block one atomic unit: all of
        them are kept if the block ends normally, none if it raises. A transaction
        inside another is a savepoint: if it raises, only its own commits are undone.
        Subscribers hear of the commits once the outermost transaction has committed."""
        scope = self._scope()
        told, held = len(scope.pending), len(scope.settling)
        scope.depth += 1
        try:
            with self._transaction():
                yield
        except BaseException:
            del scope.pending[told:]
            undone = scope.settling[held:]
            del scope.settling[held:]
            _settle(undone, False)
            raise
        finally:
            scope.depth -= 1
        if scope.depth == 0:
            settled, scope.settling = scope.settling, []
            _settle(settled, True)
            stored, scope.pending = scope.pending, []
            if stored:
                self._tell(scope, stored)

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """A context in which this thread's commits are one atomic unit (see
        :meth:`transaction`); entered again inside itself, a savepoint."""

    @contextmanager
    def loading(self) -> Iterator[None]:
        """A block of bulk loading: many commits of new records (an import's chunks).

        A store may put off, until the block ends, upkeep that such a load makes slow
        (the SQL adapter, loading 100,000 records or more into a small SQLite store,
        builds some indexes once at the end instead of entry by entry). Nothing else
        changes: every commit inside the block is stored, checked and told to
        subscribers as outside it; only reads by indexes put off run slower until the
        block ends. Blocks may nest (the outermost one counts). This default does
        nothing."""
        yield

    def _scope(self) -> Any:
        scopes = self._scopes
        if scopes is None:
            with _SCOPES_LOCK:
                if self._scopes is None:
                    self._scopes = threading.local()
                scopes = self._scopes
        if not hasattr(scopes, "depth"):
            # What the open transactions committed: events to tell, inserts to settle.
            scopes.depth, scopes.pending, scopes.settling = 0, [], []
            # Telling the subscribers: commits made meanwhile wait in the queue.
            scopes.telling, scopes.queue = False, deque()
        return scopes

    @abstractmethod
    def _commit(self, changes: ChangeSet) -> list[Event]:
        """Apply ``changes`` atomically, or raise and apply nothing; return the events of
        ``changes`` as stored, in order, each with the ``position`` it was given."""

    def subscribe(self, callback: Callable[[list[Event]], None]) -> Callable[[], None]:
        """Call ``callback(events)`` after each commit made through this repository
        object that stored events, with that commit's events (inside a
        :meth:`transaction`, once the outermost one commits); never for a change that
        failed. Returns a function that removes this registration only (subscribing
        a callable twice registers it twice).

        Commits through another repository object, even on the same database, and other
        processes' commits are not heard: they are read with :meth:`events`. Delivery is
        at most once: nothing if the process dies between the commit and the call, and
        nothing again if the callback raises. A callback that raises an ``Exception`` is
        logged (logger ``leadfunnel``) and changes nothing; one that raises
        ``KeyboardInterrupt`` or ``SystemExit`` stops the caller, the commit standing
        and later subscribers untold.

        Each subscriber hears one thread's commits in position order: a commit that a
        subscriber makes is told once every subscriber has heard the one being told.
        Deliveries of different threads' commits may interleave; a consumer that needs
        the store's order reads :meth:`events`. ``callback`` must be a plain callable:
        ``None``, ``async`` functions and generator functions (whose bodies would never
        run) raise :class:`~leadfunnel.InvalidArgumentError`."""
        from ._errors import InvalidArgumentError

        if not callable(callback):
            raise InvalidArgumentError(
                f"subscribe({callback!r}): pass a function that takes the list of a "
                "commit's events, such as def on_commit(events): ..."
            )
        if _only_makes(callback, inspect.iscoroutinefunction, inspect.isasyncgenfunction):
            raise InvalidArgumentError(
                f"subscribe({_name_of(callback)}): an async function would never run, "
                "since subscribers are called synchronously after each commit; pass a "
                "plain function that hands the events to your event loop (e.g. with "
                "asyncio.run_coroutine_threadsafe or a queue), or read "
                "funnel.events(after=...) from an async task"
            )
        if _only_makes(callback, inspect.isgeneratorfunction):
            raise InvalidArgumentError(
                f"subscribe({_name_of(callback)}): a generator function would never run "
                "(calling it only makes a generator, which nobody iterates); pass a plain "
                "function, without yield"
            )
        subscription = _Subscription(callback)
        with _SUBSCRIBERS_LOCK:
            self._subscribers = (*self._subscribers, subscription)

        def unsubscribe() -> None:
            subscription.active = False
            with _SUBSCRIBERS_LOCK:
                self._subscribers = tuple(s for s in self._subscribers if s is not subscription)

        return unsubscribe

    def _tell(self, scope: Any, events: list[Event]) -> None:
        """Tell the subscribers about one commit's ``events``. While this thread is
        telling them (a subscriber committed), the commit waits in the thread's queue
        for the current round to end, so that each subscriber hears this thread's
        commits in position order."""
        if scope.telling:
            scope.queue.append(list(events))  # the caller may change the list it got
            return
        if not self._subscribers:
            return
        scope.telling = True
        try:
            while True:
                for subscription in self._subscribers:
                    if subscription.active:
                        self._call(subscription, events)
                if not scope.queue:
                    break
                events = scope.queue.popleft()
        finally:
            # After a KeyboardInterrupt or SystemExit the queued commits go untold,
            # as the later subscribers of the interrupted round do.
            scope.telling = False
            scope.queue.clear()

    def _call(self, subscription: _Subscription, events: list[Event]) -> None:
        try:
            # Its own copies: an event is frozen, but its ``data`` is a dict, and what
            # one subscriber writes there must not reach the next.
            subscription.callback([_own_copy(e) for e in events])
        except Exception:
            first, last = events[0].position, events[-1].position
            _log.exception(
                "subscriber %s of %r failed on the events at positions %d..%d; the change "
                "stands, and the subscriber is not told again: read them with "
                "events(after=%d)",
                subscription.name,
                self,
                first,
                last,
                first - 1,
            )

    # --- reads ------------------------------------------------------------------------

    @abstractmethod
    def get(self, id: UUID) -> Record:
        """The record with this id, or :class:`~leadfunnel.NotFoundError`."""

    @abstractmethod
    def get_many(self, ids: Iterable[UUID]) -> dict[UUID, Record]:
        """The records among ``ids`` that exist (missing ids are left out)."""

    @abstractmethod
    def find_keys(self, keys: Iterable[str]) -> dict[str, UUID]:
        """For each claimed key among ``keys``, the id of the record holding it."""

    @abstractmethod
    def suppressed(self, digests: Iterable[str]) -> dict[str, UUID]:
        """For each stored :class:`Suppression` among ``digests``, its record's id."""

    def any_suppressed(self) -> bool:
        """Whether any :class:`Suppression` is stored at all: when there is none, nobody
        needs to hash keys to look them up. An adapter that cannot tell cheaply keeps
        this default, ``True``, and keys are looked up as usual."""
        return True

    @abstractmethod
    def suppression_secret(self) -> bytes:
        """The store's own secret for suppression digests (at least 32 random bytes),
        made once, on first use, and the same for every later caller: used only when the
        application configures none."""

    def suppression_fingerprint(self) -> str | None:
        """The fingerprint of the secret the suppression list is hashed under, as
        :meth:`keep_suppression_fingerprint` kept it; ``None`` if none is kept. A store
        opened with another secret (the command line without the application's) is
        refused rather than let erased people back in. This default keeps none."""
        return None

    def keep_suppression_fingerprint(self, fingerprint: str) -> str:
        """Keep ``fingerprint`` if no fingerprint is kept yet, and return the one kept
        (another process's, if it kept one first). This default keeps nothing and
        returns ``fingerprint``: such a store cannot tell two secrets apart."""
        return fingerprint

    @abstractmethod
    def events(self, *, after: int = 0, limit: int | None = None) -> list[Event]:
        """Events with ``position > after``, in ``position`` order, at most ``limit``."""

    def last_position(self) -> int:
        """The position of the last event committed (0 for none): where a new consumer
        that starts from now begins. This default reads the whole feed; an adapter that
        keeps a counter answers from it."""
        last = 0
        while page := self.events(after=last, limit=1000):
            if page[-1].position <= last:
                # An adapter whose events(after=N) also gives N (or earlier) would have
                # this read the same page for ever: say what is wrong instead.
                from ._errors import StorageError

                raise StorageError(
                    f"{type(self).__name__}.events(after={last}) returned an event at "
                    f"position {page[-1].position}: it must return only the events after "
                    f"position {last} (position > after), in position order"
                )
            last = page[-1].position
        return last

    def leads(
        self,
        *,
        status: LeadStatus | None = None,
        tag: str | None = None,
        source: str | None = None,
        owner: str | None = None,
        created_since: datetime | None = None,
        created_until: datetime | None = None,
        where: Mapping[str, Any] | None = None,
        after: Cursor | None = None,
        limit: int | None = None,
    ) -> list[Lead]:
        """Leads matching every given filter, ordered by ``(created_at, id)``, those
        after ``after`` only, at most ``limit``.

        ``created_since <= created_at < until``. ``tag``, ``source`` and ``owner`` are
        trimmed as the fields are (:func:`text_filter`) before an adapter sees them.
        ``where``: each named field, base or the application's own, equals the value
        (checked with :func:`where_values`), by value: a ``Decimal`` by its number
        (``10.5`` equals ``10.50``), an aware datetime by its instant (whatever its
        offset), a set whatever its order; a record stored without the field (one the
        application added later) matches when :func:`missing_value` equals the value."""
        filters = {
            "status": status,
            "tag": tag,
            "source": source,
            "owner": owner,
            "created_since": created_since,
            "created_until": created_until,
            "where": where,
        }
        checked = text_filters(self._models["lead"], filters)
        return [] if checked is None else self._list("lead", checked, after, limit)

    def contacts(
        self,
        *,
        type: ContactType | None = None,
        tag: str | None = None,
        source: str | None = None,
        owner: str | None = None,
        lead_id: UUID | None = None,
        where: Mapping[str, Any] | None = None,
        after: Cursor | None = None,
        limit: int | None = None,
    ) -> list[Contact]:
        """Contacts matching every given filter, in the order of :meth:`leads`."""
        filters = {
            "type": type,
            "tag": tag,
            "source": source,
            "owner": owner,
            "lead_id": lead_id,
            "where": where,
        }
        checked = text_filters(self._models["contact"], filters)
        return [] if checked is None else self._list("contact", checked, after, limit)

    def opportunities(
        self,
        *,
        stage: Stage | None = None,
        owner: str | None = None,
        setter: str | None = None,
        contact_id: UUID | None = None,
        lead_id: UUID | None = None,
        where: Mapping[str, Any] | None = None,
        after: Cursor | None = None,
        limit: int | None = None,
    ) -> list[Opportunity]:
        """Opportunities matching every given filter, in the order of :meth:`leads`."""
        filters = {
            "stage": stage,
            "owner": owner,
            "setter": setter,
            "contact_id": contact_id,
            "lead_id": lead_id,
            "where": where,
        }
        checked = text_filters(self._models["opportunity"], filters)
        return [] if checked is None else self._list("opportunity", checked, after, limit)

    def count(self, kind: SubjectKind, **filters: Any) -> int:
        """How many records of ``kind`` the list method of that kind would return with
        ``filters`` and no ``after`` or ``limit``."""
        check_filters(kind, filters)
        given = {name: v for name, v in filters.items() if v is not None}
        checked = text_filters(self._models[kind], given)
        return 0 if checked is None else self._count(kind, checked)

    def oldest_created_at(self, kind: SubjectKind) -> datetime | None:
        """When the oldest record of ``kind`` was created (the first of its list), or
        ``None`` when there is none: where a report's open period starts. This default
        reads that record; an adapter may answer without reading one (the SQL adapter
        reads the ``(created_at, id)`` index alone, so that a report builds no model)."""
        first = self._list(kind, {}, None, 1)
        return first[0].created_at if first else None

    @abstractmethod
    def _list(
        self, kind: SubjectKind, filters: dict[str, Any], after: Cursor | None, limit: int | None
    ) -> list[Any]:
        """The records of ``kind`` matching ``filters`` (the list methods' keywords, a
        value ``None`` meaning no filter), ordered by ``(created_at, id)``, after
        ``after``, at most ``limit``."""

    @abstractmethod
    def _count(self, kind: SubjectKind, filters: dict[str, Any]) -> int:
        """How many records :meth:`_list` would return without ``after`` and ``limit``."""

    @abstractmethod
    def people_like(
        self,
        *,
        email_domain: str | None = None,
        company: str | None = None,
        last_name: str | None = None,
        kind: SubjectKind = "lead",
        limit: int = 200,
    ) -> list[Lead | Contact]:
        """Leads (or contacts) sharing any given trait, compared case-insensitively.

        ``email_domain`` matches the part after ``@``; ``company`` and ``last_name``
        match the whole trimmed value (see :func:`trait_key`). Erased people are left
        out. Used by ``funnel.similar``; at most ``limit``.
        """

    @abstractmethod
    def history(self, subject_id: UUID) -> list[Event]:
        """The subject's events, oldest first."""

    @abstractmethod
    def touches(self, subject_id: UUID) -> list[Touch]:
        """The subject's touches, oldest first."""

    def touched(self, subject_ids: Iterable[UUID], *, channel: Channel) -> set[UUID]:
        """The subjects among ``subject_ids`` with at least one touch on ``channel``
        (``funnel.qualify_all`` asks which leads of a page were called).

        This default asks :meth:`touches` once per subject; an adapter backed by a
        database answers a batch with one query.
        """
        wanted = Channel(channel)
        return {
            id
            for id in dict.fromkeys(subject_ids)
            if any(t.channel == wanted for t in self.touches(id))
        }

    def touch_counts(self, subject_ids: Iterable[UUID]) -> dict[UUID, int]:
        """How many touches each of ``subject_ids`` has (0 for none): what a change
        decided on them puts in ``ChangeSet.touches_read`` (``funnel.qualify_all``
        asks it for a page's leads left waiting for a call).

        This default asks :meth:`touches` once per subject; an adapter backed by a
        database answers a batch with one query.
        """
        return {id: len(self.touches(id)) for id in dict.fromkeys(subject_ids)}

    def lead_batches(self, *, status: LeadStatus, size: int) -> Iterator[list[Lead]]:
        """Every lead with ``status``, in lists of at most ``size``, for bulk work
        (``funnel.qualify_all``): each batch is read when the previous one has been
        handled, so memory holds one batch, and the caller may change the leads of a
        batch before asking for the next. A lead is yielded at most once, if it has
        ``status`` when its batch is read; the order is the adapter's (storage order).

        This default pages through :meth:`leads` by ``(created_at, id)``; an adapter
        backed by a database may follow whatever order its indexes read fastest.
        """
        yield from keyset_pages(
            lambda after: self.leads(status=status, after=after, limit=size),
            f"{type(self).__name__}.leads",
        )

    def won_batches(
        self, *, since: datetime | None, until: datetime | None, size: int
    ) -> Iterator[list[Opportunity]]:
        """Every opportunity at ``won`` whose ``closed_at`` falls within ``since <=
        closed_at < until`` (``None``: that side open; a won deal without ``closed_at``
        is in no period), in lists of at most ``size``, for a report's won revenue:
        each batch is read when the previous one has been handled, so memory holds one
        batch. The order is the adapter's.

        This default pages through :meth:`opportunities` at ``won`` and keeps the deals
        closed in the period, so that a report of one month reads every deal ever won;
        an adapter backed by a database reads only the period's (the SQL adapter
        filters on its ``closed_at`` column)."""
        since = None if since is None else require_aware(since, "since")
        until = None if until is None else require_aware(until, "until")
        batch: list[Opportunity] = []
        for page in keyset_pages(
            lambda after: self.opportunities(stage=Stage.WON, after=after, limit=size),
            f"{type(self).__name__}.opportunities",
        ):
            for deal in page:
                closed = deal.closed_at
                if (
                    closed is not None
                    and (since is None or closed >= since)
                    and (until is None or closed < until)
                ):
                    batch.append(deal)
            if len(batch) >= size:
                yield batch[:size]
                batch = batch[size:]
        while batch:
            yield batch[:size]
            batch = batch[size:]

    @abstractmethod
    def merges_of(self, ids: Collection[UUID]) -> list[MergeLog]:
        """Every merge log not yet undone whose ``keep_id`` or merged-away record is
        among ``ids``, oldest first."""

    def stored_extras(self, records: Iterable[Record]) -> dict[UUID, dict[str, Any]]:
        """What the store holds of ``records`` beyond their models' fields, by id: the
        application's own fields of a record read with a model that does not declare
        them (a funnel or command without the application's classes), so that an
        access request (``export_person``) answers with everything stored.

        This default holds nothing beyond the model (a store that keeps the objects
        it is given); an adapter that keeps documents returns their undeclared keys.
        """
        return {}

    def compact(self) -> None:  # noqa: B027 - nothing to do for most stores
        """Reclaim the space of deleted and overwritten data, so that no byte of it is
        left in the store's files (after an erasure). A no-op where there are none."""

    @abstractmethod
    def last_merge(self, keep_id: UUID) -> MergeLog | None:
        """The most recent merge into ``keep_id`` not yet undone, if any."""

    @abstractmethod
    def follow_up_candidates(
        self, *, lead_limit: int, contact_limit: int, owner: str | None = None
    ) -> Iterator[FollowUpCandidate]:
        """Subjects in a follow-up cadence and still under their touch limit (only
        those whose ``owner`` is ``owner``, when given).

        Those are leads with status ``raw`` or ``qualified`` and fewer than
        ``lead_limit`` counted touches, and contacts of type ``prospect`` with no open
        opportunity and fewer than ``contact_limit`` counted touches (see
        :class:`FollowUpCandidate` for what counts). Erased people (``erased_at`` set)
        are never candidates. Order is unspecified.
        """

    @abstractmethod
    def step_counts(
        self,
        *,
        since: datetime | None,
        until: datetime | None,
        by: GroupBy | None = None,
        steps: Collection[str] | None = None,
    ) -> list[StepCount]:
        """Distinct subjects per funnel step reached with ``since <= at < until``
        (only the ``steps`` named, when given).

        The steps an event reaches are :func:`leadfunnel.storage.funnel_steps` of it
        (an adapter may compute them when it stores the event). With ``by``, counts are
        per group: ``source`` and ``profile`` are the current values of the lead (for an
        opportunity step, the lead the opportunity came from: its ``lead_id``, else the
        ``lead_id`` of its contact, as when a contact booked before it took a lead's
        history in a merge; if neither, ``source`` is the contact's own, a contact added
        directly having one, and ``profile`` is ``None``);
        ``owner`` is the lead's owner for lead steps and the opportunity's owner for
        opportunity steps; ``setter`` is the opportunity's setter (``None`` for lead
        steps); ``month`` is the step's ``at`` as ``YYYY-MM`` in UTC. Without ``by``,
        ``group`` is ``None``.
        """

    @abstractmethod
    def qualified_follow_up(
        self, *, since: datetime | None, until: datetime | None
    ) -> FollowUpStats:
        """Follow-up figures for the leads that reached ``qualified`` with
        ``since <= at < until`` (see :class:`FollowUpStats`)."""

    @abstractmethod
    def stage_times(
        self,
        *,
        since: datetime | None,
        until: datetime | None,
        by: GroupBy | None = None,
    ) -> list[StageTime]:
        """The median time from each of :data:`~leadfunnel.TIMED_STEPS` to the next.

        A subject's time at a step is the ``at`` of its *first* arrival there (the
        :meth:`step_counts` rows). For ``qualified`` to ``appointment_set`` the two
        subjects differ: the lead, and the earliest booked of the opportunities whose
        ``lead_id`` is that lead. Other pairs are one subject's. A pair counts when its
        later arrival falls within ``since <= at < until``. The median of an even count
        is the mean of the middle two. Pairs that nobody completed are left out.

        With ``by``, medians are per group: a stretch belongs to the group that
        :meth:`step_counts` gives its later arrival (for ``qualified`` to
        ``appointment_set``, the arrival of that earliest booked opportunity). Rows come
        in the order of the steps, then of the groups (``None`` last).
        """

    @abstractmethod
    def rep_list(
        self,
        kind: RepListKind,
        *,
        now: datetime,
        source: str | None = None,
        owner: str | None = None,
        entered_since: datetime | None = None,
        entered_until: datetime | None = None,
        limit: int | None = None,
    ) -> list[RepListRow]:
        """The records a rep would call back, newest ``since`` first.

        * ``never_booked``: leads with status ``qualified`` (those a profile fits and
          those qualified by hand, ``profile`` ``None``), which have no appointment
          (a booked lead is ``converted``); ``since`` is their ``status_at``, else their
          ``created_at``.
        * ``not_sat``: opportunities that never reached ``appointment_sat`` and whose
          appointment time (``appointment_at``, else ``created_at``) is before ``now``,
          still at ``appointment_set`` or lost; ``since`` is that appointment time.
        * ``not_bought``: opportunities that reached ``appointment_sat`` and were not
          won (still open or lost); ``since`` is their first arrival at
          ``appointment_sat``.

        Lost deals whose ``lost_reason`` is ``avoid`` or ``unqualified`` are left out:
        nobody should call them, and so are the records of erased and of avoided people
        (the lead, or the deal's contact, with ``erased_at`` set or on the avoid list,
        whatever its deals' reasons). ``source`` and ``owner`` compare
        with the lead's, or
        for an opportunity with its contact's source and its own owner;
        ``entered_since <= since < entered_until``; at most ``limit`` rows. ``since``
        is in UTC, whatever offset the record's time was given in: a rep list reads the
        same on every store.
        """

    def no_shows(
        self,
        *,
        now: datetime,
        entered_since: datetime | None = None,
        entered_until: datetime | None = None,
    ) -> list[RepListRow]:
        """The appointments a report counts as not sat: one row per appointment whose
        time came before ``now`` without its sitting, ``since`` that time (in UTC), within
        ``entered_since <= since < entered_until``, newest first. They are read from
        each deal's history, whatever happened to the deal since, so that a period
        already reported keeps its figures:

        * a deal's current appointment (``appointment_at``, else ``created_at``) when the
          deal never reached ``appointment_sat`` and is at ``appointment_set`` or
          ``lost``: the deals the ``not_sat`` rep list picks (see :meth:`rep_list`), but
          *whatever the lost reason and whoever the person*: deals lost as ``avoid`` or
          ``unqualified`` and erased people's deals included. The rep list leaves those
          out because nobody should call them; that says nothing of whether the
          appointment sat (an erasure loses open deals as ``avoid``);
        * every earlier appointment of a deal that a ``reschedule`` event moved once its
          time had come (:func:`missed_appointment`): a no-show booked again is still a
          no-show in the period its time fell in, whether or not the deal sits later.
          An appointment moved before its time came is nobody's no-show.

        This default reads every deal and its history; an adapter backed by a database
        answers with a query or two."""
        now = require_aware(now, "now")
        rows: list[RepListRow] = []
        for deal in self.opportunities():
            history = self.history(deal.id)
            dues = [due for e in history if (due := missed_appointment(e)) is not None]
            if deal.stage in (Stage.APPOINTMENT_SET, Stage.LOST) and not any(
                "appointment_sat" in funnel_steps(e.subject, e.source, e.dest) for e in history
            ):
                dues.append((deal.appointment_at or deal.created_at).astimezone(UTC))
            rows.extend(
                RepListRow(deal, due)
                for due in dues
                if came_due(due, now, entered_since, entered_until)
            )
        rows.sort(key=lambda row: row.since, reverse=True)
        return rows

    # --- optional ---------------------------------------------------------------------

    def close(self) -> None:  # noqa: B027 - a no-op is the right default
        """Release connections; the repository must not be used afterwards."""

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def keyset_pages(read: Callable[[Cursor | None], list[_R]], method: str) -> Iterator[list[_R]]:
    """The pages ``read(after)`` gives, each after the last record of the one before,
    until one is empty. ``method`` names the list method in the error of a page that
    ends at or before its cursor (an adapter whose page holds its cursor's record would
    be read for ever)."""
    after: Cursor | None = None
    while page := read(after):
        last = (page[-1].created_at, page[-1].id)
        if after is not None and last <= after:
            from ._errors import StorageError

            raise StorageError(
                f"{method}(after=...) returned a page ending at or before its cursor: a "
                "page must start after the cursor's record (see Repository.leads)"
            )
        after = last
        yield page


def check_grouping(by: str | None, what: str) -> None:
    """Raise :class:`~leadfunnel.InvalidArgumentError` unless ``by`` is ``None`` or a
    :data:`GroupBy`. Shared by adapters."""
    from ._errors import InvalidArgumentError

    if by is not None and by not in get_args(GroupBy):
        raise InvalidArgumentError(
            f"cannot group {what} by {by!r}; choose one of: {', '.join(get_args(GroupBy))}"
        )


def check_filters(kind: str, filters: Mapping[str, Any]) -> None:
    """Raise :class:`~leadfunnel.InvalidArgumentError` for a filter ``kind`` lacks."""
    from ._errors import InvalidArgumentError

    allowed = LIST_FILTERS[kind]
    unknown = sorted(set(filters) - allowed)
    if unknown:
        raise InvalidArgumentError(
            f"{kind}s cannot be filtered by {unknown[0]!r}; "
            f"filter by one of: {', '.join(sorted(allowed))}"
        )


class _NoValue:
    """What a record lacking a field reads as when nothing static can say (see
    :func:`missing_value`): equal to nothing, not even itself."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Any = _NoValue()

#: Default factories whose value is known without calling anything of the application's:
#: a field ``Field(default_factory=list)`` reads as ``[]`` on a record stored before it.
_STATIC_FACTORIES: frozenset[Any] = frozenset({list, dict, set, frozenset, tuple})


@dataclass(frozen=True, slots=True)
class _Field:
    """How a model validates and serialises one of its fields."""

    validate: Callable[[Any], Any]
    dump: Callable[[Any], Any]


def _field_schema(model: type[Any], name: str) -> tuple[Any, Any] | None:
    """The core schema of ``model``'s field ``name`` as it sits in the model's own schema
    (its constraints and validators, the application's included) and the model's core
    config (``str_strip_whitespace`` and the like), or ``None`` for a model schema of
    another shape."""
    schema = model.__pydantic_core_schema__
    definitions = None
    if schema.get("type") == "definitions":
        definitions = schema["definitions"]
        schema = schema["schema"]
    while schema.get("type") in ("function-before", "function-after", "function-wrap"):
        schema = schema["schema"]  # a model validator around the model
    if schema.get("type") != "model":
        return None
    config = schema.get("config")
    fields = schema["schema"]
    while fields.get("type") in ("function-before", "function-after", "function-wrap"):
        fields = fields["schema"]  # a model validator around the fields
    if fields.get("type") != "model-fields" or name not in fields["fields"]:
        return None
    found = fields["fields"][name]["schema"]
    if definitions:
        found = {"type": "definitions", "schema": found, "definitions": definitions}
    return found, config


@functools.cache
def _field(model: type[Record], name: str) -> _Field:
    found = _field_schema(model, name)
    if found is not None:
        from pydantic_core import SchemaSerializer, SchemaValidator

        try:
            validator = SchemaValidator(found[0], found[1])
            serializer = SchemaSerializer(found[0], found[1])
        except Exception:  # a part pydantic-core takes only within its model
            pass
        else:
            return _Field(validator.validate_python, functools.partial(_dump, serializer))
    adapter = _type_adapter(model, name)
    return _Field(adapter.validate_python, functools.partial(adapter.dump_python, mode="json"))


@functools.cache
def _type_adapter(model: type[Record], name: str) -> TypeAdapter[Any]:
    """The field's type with its own constraints (kept apart from the annotation, in
    ``metadata``), without the model's validators and config."""
    return TypeAdapter(field_annotation(model.model_fields[name]))


def _dump(serializer: Any, value: Any) -> Any:
    return serializer.to_python(value, mode="json")


def field_value(model: type[Record], name: str, value: Any) -> Any:
    """``value`` validated as ``model``'s field ``name``, as a stored value of it was
    (constraints, validators and the model's config: text trimmed, an e-mail's domain
    lower-cased, a phone in E.164, ``"40"`` for an int field 40). A value the field
    refuses raises ``pydantic.ValidationError``."""
    try:
        return _field(model, name).validate(value)
    except ValidationError:
        raise
    except Exception:
        # A validator of the application's that needs the rest of a record (info.data)
        # fails on a value alone: the field's type and constraints are what is left.
        return _type_adapter(model, name).validate_python(value)


def where_values(model: type[Record], where: Mapping[str, Any]) -> dict[str, Any]:
    """``where`` checked against ``model``: each name a field of it, each value
    validated as that field (:func:`field_value`: ``"40"`` for an int field is 40,
    ``" Acme "`` for a text field ``"Acme"``), so that it compares with stored values as
    they were stored. An unknown field or a value the field refuses is an
    :class:`~leadfunnel.InvalidArgumentError`."""
    from ._errors import InvalidArgumentError

    checked: dict[str, Any] = {}
    for name, value in where.items():
        if name not in model.model_fields:
            raise InvalidArgumentError(
                f"where={{{name!r}: ...}}: {model.__name__} has no field {name!r}; "
                f"its fields: {', '.join(model.model_fields)}"
            )
        if value is None:
            checked[name] = None
            continue
        try:
            checked[name] = field_value(model, name, value)
        except ValidationError as exc:
            message = exc.errors(include_url=False)[0]["msg"]
            raise InvalidArgumentError(f"where={{{name!r}: {value!r}}}: {message}") from None
    return checked


#: The list filters that compare text with a field of the same name (``tag`` with an
#: item of ``tags``): their values are validated as that field, as stored values were.
_TEXT_FILTERS = {"owner": "owner", "source": "source", "setter": "setter", "tag": "tags"}


def text_filter(model: type[Record], name: str, value: Any) -> Any:
    """The value of the list filter ``name`` (``owner``, ``source``, ``setter``, ``tag``)
    as the field it compares with would store it (trimmed, as stored values are: a
    filter ``owner="ana "`` finds the owner ``"ana"`` on every store), or
    :data:`NO_VALUE` for a value the field refuses (a control character, too long, an
    empty tag), which no stored record holds: such a filter matches nothing, without
    asking the store (PostgreSQL refuses a NUL byte even as a parameter)."""
    field_name = _TEXT_FILTERS.get(name)
    if not isinstance(value, str) or field_name not in model.model_fields:
        return value
    try:
        if field_name == "tags":
            items = field_value(model, field_name, [value])
            return next(iter(items)) if len(items) == 1 else NO_VALUE
        return field_value(model, field_name, value)
    except (ValidationError, TypeError, ValueError):
        return NO_VALUE


def text_filters(model: type[Record], filters: Mapping[str, Any]) -> dict[str, Any] | None:
    """``filters`` with the text filters' values as :func:`text_filter` gives them, or
    ``None`` when one of them can match nothing."""
    checked = {name: text_filter(model, name, value) for name, value in filters.items()}
    return None if any(v is NO_VALUE for v in checked.values()) else checked


def json_value(model: type[Record], name: str, value: Any) -> Any:
    """``value`` of field ``name`` as the stored JSON document holds it (the field's own
    serialiser in JSON mode: a ``Decimal`` as its text, a datetime as ISO 8601 text)."""
    return _field(model, name).dump(value)


@functools.cache
def missing_value(model: type[Record], name: str) -> Any:
    """What a record stored without the field ``name`` (a field the application added
    to its model later) reads as: the field's ``default``, or an empty container of a
    ``default_factory`` of ``list``, ``dict``, ``set``, ``frozenset`` or ``tuple``;
    :data:`NO_VALUE` (equal to nothing) for any other ``default_factory`` (its value
    is not known until it runs, and may change from one read to the next) and for a
    required field. ``where=`` filters match such a record when this equals their
    value."""
    info = model.model_fields[name]
    factory = info.default_factory
    if factory is not None:
        return factory() if factory in _STATIC_FACTORIES else NO_VALUE  # type: ignore[call-arg]
    if info.is_required():
        return NO_VALUE
    value = info.default
    if value is not None and (
        info.validate_default or model.model_config.get("validate_default", False)
    ):
        try:
            value = field_value(model, name, value)
        except (ValidationError, TypeError, ValueError):
            return NO_VALUE
    return value


class RepRowsAdapter(Repository):
    """For an adapter that answers the rep lists and a report's no-shows with one query
    of its own, :meth:`_rep_rows`: for a rep list, it leaves out erased people and deals
    lost as ``avoid`` or ``unqualified``; for a report (``no_shows``), it keeps them."""

    def rep_list(
        self,
        kind: RepListKind,
        *,
        now: datetime,
        source: str | None = None,
        owner: str | None = None,
        entered_since: datetime | None = None,
        entered_until: datetime | None = None,
        limit: int | None = None,
    ) -> list[RepListRow]:
        return self._rep_rows(
            kind,
            now=now,
            source=source,
            owner=owner,
            entered_since=entered_since,
            entered_until=entered_until,
            limit=limit,
            report=False,
        )

    def no_shows(
        self,
        *,
        now: datetime,
        entered_since: datetime | None = None,
        entered_until: datetime | None = None,
    ) -> list[RepListRow]:
        rows = self._rep_rows(
            "not_sat",
            now=now,
            entered_since=entered_since,
            entered_until=entered_until,
            report=True,
        )
        rows += self._missed_appointments(
            now=now, entered_since=entered_since, entered_until=entered_until
        )
        rows.sort(key=lambda row: row.since, reverse=True)  # stable: each part's order
        return rows

    @abstractmethod
    def _missed_appointments(
        self,
        *,
        now: datetime,
        entered_since: datetime | None,
        entered_until: datetime | None,
    ) -> list[RepListRow]:
        """The rows of :meth:`no_shows` that a deal's current appointment does not give:
        one per ``reschedule`` event that :func:`missed_appointment` reads a missed time
        from, ``since`` that time, before ``now`` and within the period."""

    @abstractmethod
    def _rep_rows(
        self,
        kind: RepListKind,
        *,
        now: datetime,
        source: str | None = None,
        owner: str | None = None,
        entered_since: datetime | None = None,
        entered_until: datetime | None = None,
        limit: int | None = None,
        report: bool,
    ) -> list[RepListRow]:
        """:meth:`rep_list`; with ``report``, :meth:`no_shows`' rows: the records of
        erased people and the deals lost as ``avoid`` or ``unqualified`` kept in."""


#: The longest trait key :meth:`Repository.people_like` compares, by trait: the SQL
#: adapter's ``email_domain``, ``company_key`` and ``last_name_key`` columns hold no more.
TRAIT_KEY_LENGTH = {"email_domain": 255, "company": 200, "last_name": 200}


def trait_key(value: str | None, trait: str) -> str | None:
    """``value`` as :meth:`Repository.people_like` compares it, cut to
    ``TRAIT_KEY_LENGTH[trait]`` characters (``None`` for no value, or nothing left).

    An e-mail domain is trimmed and case-folded. A company or last name is read as
    duplicate searches read names (:func:`fold_name`): case, accents, spaces and
    punctuation aside, so "O'Connell" meets "Oconnell", "Acme, Inc." meets "ACME Inc",
    and a name typed on one system meets the same name decomposed by another (NFD, as
    macOS writes it). Folding may lengthen a text (``"ß"`` is ``"ss"``): a valid
    200-character company keeps its first 200 folded characters, on every adapter
    alike, so such a key may match a company that differs only after them
    (``funnel.similar`` then compares the whole names)."""
    if not value:
        return None
    folded = value.strip().casefold() if trait == "email_domain" else fold_name(value)
    return folded[: TRAIT_KEY_LENGTH[trait]] or None


_ASCII_NOT_LETTER_OR_DIGIT = re.compile(r"[^0-9a-z]+")


@functools.lru_cache(maxsize=4096)  # names and companies repeat: Smith, Acme Inc
def fold_name(text: str) -> str:
    """``text`` as duplicate searches compare names: compatibility-decomposed (NFKD),
    case-folded, its letters and digits only (``"  José O'Connell-Müller "`` is
    ``"joseoconnellmuller"``). An accent on a Latin, Greek or Cyrillic letter goes
    (badge scanners drop them); the vowel signs and voicing marks of other scripts
    stay, as they tell names apart (कुमार is not कामरा)."""
    if text.isascii():
        return _ASCII_NOT_LETTER_OR_DIGIT.sub("", text.lower())
    kept: list[str] = []
    for char in unicodedata.normalize("NFKD", text).casefold():
        if char.isalnum():
            kept.append(char)
        elif (
            unicodedata.category(char) in ("Mn", "Mc", "Me") and kept and not _accentable(kept[-1])
        ):
            kept.append(char)  # a mark of its own script: part of the letter
    return unicodedata.normalize("NFC", "".join(kept))


def _accentable(char: str) -> bool:
    """Whether ``char`` is a Latin, Greek or Cyrillic letter (or a digit), whose
    combining accents duplicate searches leave out."""
    point = ord(char)
    return point < 0x0530 or 0x1D00 <= point < 0x2000


def missed_appointment(event: Event) -> datetime | None:
    """The appointment that ``event`` shows was missed, in UTC, or ``None``: a deal's
    ``reschedule`` event records the time it moved the appointment from (its
    ``data["from"]``, ISO 8601 with an offset); when that time is before the event's
    ``at``, the appointment came due and was moved without sitting (a no-show booked
    again). A move from no time at all, or before the time came, misses nothing.
    Shared by adapters (see :meth:`Repository.no_shows`)."""
    if event.subject != "opportunity" or event.name != "reschedule" or not event.data:
        return None
    moved_from = event.data.get("from")
    if not isinstance(moved_from, str):
        return None
    try:
        due = datetime.fromisoformat(moved_from)
    except ValueError:
        return None
    if due.utcoffset() is None:
        return None
    try:
        due = due.astimezone(UTC)
    except OverflowError:  # past an end of the calendar in UTC: no time that came
        return None
    return due if due < event.at else None


def came_due(due: datetime, now: datetime, since: datetime | None, until: datetime | None) -> bool:
    """Whether an appointment due at ``due`` had come by ``now`` and falls in the
    period ``since <= due < until`` (``None``: no bound), as :meth:`Repository.no_shows`
    counts it. Shared by adapters."""
    return due < now and (since is None or due >= since) and (until is None or due < until)


def check_rep_list(kind: str) -> None:
    """Raise :class:`~leadfunnel.InvalidArgumentError` unless ``kind`` is a
    :data:`RepListKind`. Shared by adapters."""
    from ._errors import InvalidArgumentError

    if kind not in get_args(RepListKind):
        raise InvalidArgumentError(
            f"there is no rep list {kind!r}; choose one of: {', '.join(get_args(RepListKind))}"
        )


def read_changed(what: str, id: UUID, read: int, found: int) -> Exception:
    """The :class:`~leadfunnel.ConcurrencyError` of a change decided on ``read``
    ``what`` (``"touches"``, ``"events"``, ``"deals"``) of ``id``, which has ``found``
    now. Shared by adapters."""
    from ._errors import ConcurrencyError

    if what == "touches":
        return ConcurrencyError.of_touches(id, read, found)
    return ConcurrencyError(
        id,
        read,
        found,
        message=f"{id} had {read} {what} when this change read them and has {found} now "
        "(someone changed it in between); read it again and retry",
    )


def refuse_suppressed(
    changes: ChangeSet, suppressed: Callable[[list[str]], Mapping[str, UUID]]
) -> None:
    """Raise :class:`~leadfunnel.AvoidListedError` if a key of ``changes.unsuppressed``
    is suppressed: ``suppressed`` gives, for a list of digests, those stored with their
    record's id (an adapter's lookup, inside its commit). Shared by adapters."""
    from ._errors import AvoidListedError, InvalidArgumentError

    if not changes.unsuppressed:
        return
    if changes.digest is None:
        raise InvalidArgumentError("a ChangeSet with unsuppressed keys needs its digest")
    digests = {changes.digest(key): key for key in dict.fromkeys(changes.unsuppressed)}
    found = suppressed(list(digests))
    for digest, key in digests.items():
        if digest in found:
            raise AvoidListedError(found[digest], key)


def check_keys_free(
    records: Sequence[Record],
    holders: Mapping[str, UUID],
    stored: Mapping[UUID, Record],
) -> None:
    """Raise if a key of ``records`` is held by another record. Shared by adapters."""
    from ._errors import AvoidListedError, DuplicateError
    from ._models import is_avoided

    for record in records:
        if not isinstance(record, (Lead, Contact)) or not holds_keys(record):
            continue
        for key in identity_keys(record):
            holder = holders.get(key)
            if holder is not None and holder != record.id:
                existing = stored.get(holder)
                if existing is not None and is_avoided(existing):
                    raise AvoidListedError(holder, key)
                raise DuplicateError(holder, key)
