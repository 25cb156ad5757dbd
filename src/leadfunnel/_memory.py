"""The in-memory repository: the reference adapter of the storage port.

It keeps the immutable records in dicts behind one re-entrant lock, checks a whole
change set before touching anything (so a refused commit leaves no trace), and answers
the scaling queries by scanning, which is what the SQL adapter does with an index.

Nothing a caller holds shares mutable state with the store, as with a store that
serialises: a record of a class whose fields can hold a mutable value (an application's
``list``, ``dict``, ``set`` or non-frozen model field) and every event (its ``data``) are
copied on the way in and out. leadfunnel's own record classes hold only immutable values
and are shared as they are: deciding costs one look-up per record, not a copy.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import statistics
import threading
from bisect import bisect_left, bisect_right, insort
from collections import ChainMap, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from pathlib import PurePath
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, ValidationError
from pydantic.types import (
    AwareDatetime,
    FutureDate,
    FutureDatetime,
    NaiveDatetime,
    PastDate,
    PastDatetime,
)

from ._channels import lead_entered
from ._clock import require_aware
from ._enums import Channel, ContactType, LeadStatus, Outcome, Stage
from ._errors import ConcurrencyError, ConfigError, NotFoundError
from ._lifecycle import TIMED_STEPS, funnel_steps
from ._models import (
    Contact,
    Event,
    Lead,
    Opportunity,
    Record,
    SubjectKind,
    Touch,
    field_values,
    is_avoided,
    shares_key_sources,
    updated,
)
from ._periods import month_of
from ._repository import (
    DO_NOT_CALL,
    ChangeSet,
    Cursor,
    FollowUpCandidate,
    FollowUpStats,
    GroupBy,
    MergeLog,
    RepListKind,
    RepListRow,
    RepRowsAdapter,
    StageTime,
    StepCount,
    came_due,
    check_grouping,
    check_keys_free,
    check_rep_list,
    holds_keys,
    identity_keys,
    kept_everywhere,
    missed_appointment,
    missing_value,
    read_changed,
    refuse_suppressed,
    text_filter,
    trait_key,
    where_values,
)

__all__ = ["InMemoryRepository"]

_RESETS = frozenset({Outcome.REPLIED, Outcome.INTERESTED})
_PLURALS = {"lead": "leads", "contact": "contacts", "opportunity": "opportunities"}
_R = TypeVar("_R", Lead, Contact, Opportunity)
_T = TypeVar("_T")
_Models = dict[str, type[Lead] | type[Contact] | type[Opportunity]]


# --- what a caller may not share with the store -----------------------------------------

#: Values that cannot change once made (instances of these classes and their subclasses).
_IMMUTABLE: tuple[type, ...] = (
    str,
    bytes,
    int,
    float,
    complex,
    Decimal,
    Fraction,
    datetime,
    date,
    time,
    timedelta,
    tzinfo,
    UUID,
    Enum,
    PurePath,
    NoneType,
    # pydantic's markers, which stand for a datetime or a date in annotations
    AwareDatetime,
    NaiveDatetime,
    PastDatetime,
    FutureDatetime,
    PastDate,
    FutureDate,
)
#: pydantic's markers that stand for a str, by module and name: importing their module
#: (pydantic.networks) would import importlib.metadata, which ``import leadfunnel`` skips.
_TEXT_MARKERS = frozenset({("pydantic.networks", "EmailStr")})
#: The exact types :func:`_copied` passes through without asking more.
_ATOMS = frozenset({str, int, float, bool, NoneType, Decimal, UUID, datetime, date})


def _can_change(annotation: Any, seen: frozenset[type] = frozenset()) -> bool:
    """Whether a value of a field annotated ``annotation`` may be changed in place (a
    ``list``, ``dict``, ``set``, a non-frozen model, or anything not known to be
    immutable: an unknown type counts as mutable)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _can_change(get_args(annotation)[0], seen)
    if origin is Union or origin is UnionType:
        return any(_can_change(arg, seen) for arg in get_args(annotation))
    if origin is Literal or annotation is None:
        return False
    if origin is frozenset or origin is tuple:
        items = [arg for arg in get_args(annotation) if arg is not Ellipsis]
        return not items or any(_can_change(arg, seen) for arg in items)
    if origin is None and isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return _model_can_change(annotation, seen)
        if (annotation.__module__, annotation.__qualname__) in _TEXT_MARKERS:
            return False
        return not issubclass(annotation, _IMMUTABLE)
    for alias in ("__supertype__", "__value__"):  # NewType, a type statement's alias
        if hasattr(annotation, alias):
            return _can_change(getattr(annotation, alias), seen)
    return True


def _model_can_change(model: type[BaseModel], seen: frozenset[type] = frozenset()) -> bool:
    """Whether an instance of ``model`` may be changed in place, or hold a value that
    may (a model nested in itself counts as what its other fields make it)."""
    if model in seen:
        return False
    config = model.model_config
    if not config.get("frozen") or config.get("extra") == "allow" or model.__private_attributes__:
        return True
    inner = seen | {model}
    return any(_can_change(info.annotation, inner) for info in model.model_fields.values())


def _copied(value: _T) -> _T:
    """A deep copy of ``value``, quick for what event data holds (dicts, lists, text,
    numbers)."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return {key: _copied(item) for key, item in value.items()}  # type: ignore[attr-defined, return-value]
    if kind is list:
        return [_copied(item) for item in value]  # type: ignore[attr-defined, return-value]
    if kind is tuple:
        return tuple(_copied(item) for item in value)  # type: ignore[attr-defined, return-value]
    if isinstance(value, Enum):
        return value
    return copy.deepcopy(value)


def _copier(model: type[BaseModel]) -> Callable[[Any], Any] | None:
    """How to copy an instance of ``model`` so that the copy shares nothing that can
    change with it, or ``None`` if instances share nothing that can (leadfunnel's own
    records and touches: handed out as they are)."""
    config = model.model_config
    if config.get("extra") == "allow" or model.__private_attributes__:
        return lambda item: item.model_copy(deep=True)
    names = tuple(name for name, info in model.model_fields.items() if _can_change(info.annotation))
    if not names and config.get("frozen"):
        return None

    def copied(item: Any) -> Any:
        values = item.__dict__
        return updated(item, {name: _copied(values[name]) for name in names if name in values})

    return copied


_new_object = object.__new__
_set = object.__setattr__


def _event_copy(event: Event, position: int | None = None) -> Event:
    """``event`` with data of its own (and ``position``, if given): what
    ``updated(event, {"data": ...})`` makes, at half its cost (every commit hands out
    its events, one an imported row)."""
    new = _new_object(Event)
    values = event.__dict__.copy()
    data = values["data"]
    values["data"] = _copied(data) if data else {}
    if position is not None:
        values["position"] = position
    _set(new, "__dict__", values)
    _set(new, "__pydantic_fields_set__", set(event.__pydantic_fields_set__))
    _set(new, "__pydantic_extra__", None)
    _set(new, "__pydantic_private__", None)
    return new


_UNKNOWN: Any = object()
#: Each model class's :func:`_copier`, decided the first time one of its instances is
#: stored or read.
_COPIERS: dict[type, Callable[[Any], Any] | None] = {Event: _event_copy}


def _isolated(item: _T) -> _T:
    """``item`` (a record, touch or event) as the store keeps or hands it out: a copy
    if it holds anything that can change in place, else ``item`` itself."""
    copier = _COPIERS.get(type(item), _UNKNOWN)
    if copier is _UNKNOWN:
        copier = _COPIERS.setdefault(type(item), _copier(type(item)))  # type: ignore[arg-type]
    return item if copier is None else copier(item)


def _log_read(log: MergeLog, read: Callable[[Any], Any]) -> MergeLog:
    """``log`` with ``read`` applied to its snapshots (``log`` itself if ``read`` gives
    each back as it is)."""
    keep, other = read(log.keep_before), read(log.other)
    deals = tuple(read(deal) for deal in log.opportunities_before)
    if (
        keep is log.keep_before
        and other is log.other
        and all(a is b for a, b in zip(deals, log.opportunities_before, strict=True))
    ):
        return log
    return replace(log, keep_before=keep, other=other, opportunities_before=deals)


def _isolated_log(log: MergeLog) -> MergeLog:
    """``log`` with snapshots that share nothing that can change with ``log``'s."""
    return _log_read(log, _isolated)


class InMemoryRepository(RepRowsAdapter):
    """A repository that keeps everything in this process's memory.

    As real as the SQL adapter (same contract, same errors, thread-safe), but gone when
    the process ends. The default store of ``Funnel()``.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[UUID, Record] = {}
        self._by_kind: dict[str, dict[UUID, Record]] = {
            "lead": {},
            "contact": {},
            "opportunity": {},
        }
        self._keys: dict[str, UUID] = {}
        # Each kind's records in list order, (created_at, id): what the SQL adapter's
        # (created_at, id) index is, so that a page after a cursor is a bisection.
        self._ordered: dict[str, list[tuple[datetime, UUID]]] = {
            "lead": [],
            "contact": [],
            "opportunity": [],
        }
        self._touches: defaultdict[UUID, list[tuple[datetime, int, Touch]]] = defaultdict(list)
        self._touch_subject: dict[UUID, UUID] = {}
        self._events: defaultdict[UUID, list[tuple[datetime, int, Event]]] = defaultdict(list)
        self._event_subject: dict[UUID, UUID] = {}
        # (event id, step, at): the funnel steps each stored event reached.
        self._steps: list[tuple[UUID, str, datetime]] = []
        self._merges: defaultdict[UUID, list[MergeLog]] = defaultdict(list)
        self._seq = 0
        # The event feed: every event by id (as re-pointed by merges), in position order.
        self._event_by_id: dict[UUID, Event] = {}
        self._feed: list[UUID] = []
        self._position = 0
        self._suppressed: dict[str, UUID] = {}
        self._secret: bytes | None = None
        self._fingerprint: str | None = None
        # Inside a transaction: how to undo each commit made in it, newest last.
        self._undo: list[Callable[[], None]] | None = None
        # Records read as a class registered after they were stored, by id: the fields
        # they were stored without, which where= filters treat as a document store
        # does (see missing_value). Gone once the record is stored again.
        self._lacking: dict[UUID, frozenset[str]] = {}

    def __repr__(self) -> str:
        counts = ", ".join(f"{_PLURALS[k]}={len(v)}" for k, v in self._by_kind.items())
        return f"InMemoryRepository({counts})"

    # --- the application's models -------------------------------------------------------

    def _registering(self) -> AbstractContextManager[object]:
        return self._lock  # held by a transaction() block to its end

    def _use_models(self, models: _Models) -> None:
        # Records stored before are read as the new classes from now on, as a store
        # that reads documents reads them: converted (and validated) once, here, so
        # that a record the new class refuses fails the registration, not a later read.
        with self._lock:
            retyped = {kind for kind, model in models.items() if model is not self._models[kind]}
            records, merges = self._retyped(models, retyped, strict=True)
            self._models = models
            self._keep_retyped(records, merges)

    def _retyped(
        self, models: Mapping[str, type[Record]], kinds: Collection[str], *, strict: bool
    ) -> tuple[dict[UUID, Record], dict[UUID, list[MergeLog]]]:
        """The held records of ``kinds`` (and merge logs' snapshots) that are not
        instances of ``models``, as those (call with the lock held). ``strict``: a
        record that cannot be read so raises :class:`~leadfunnel.ConfigError`; else it
        is left as it is."""

        def read(record: Any) -> Any:
            model = models[record.kind]
            if record.kind not in kinds or type(record) is model:
                return record
            try:
                return _read_as(model, record)
            except ConfigError:
                if strict:
                    raise
                return record

        records: dict[UUID, Record] = {}
        for kind in kinds:
            for record in self._by_kind[kind].values():
                new = read(record)
                if new is not record:
                    records[new.id] = new
        merges: dict[UUID, list[MergeLog]] = {}
        for keep_id, logs in self._merges.items():
            new_logs = [_log_read(log, read) for log in logs]
            if any(new is not old for new, old in zip(new_logs, logs, strict=True)):
                merges[keep_id] = new_logs
        return records, merges

    def _keep_retyped(
        self, records: dict[UUID, Record], merges: dict[UUID, list[MergeLog]]
    ) -> None:
        for id, record in records.items():
            old = self._records[id]
            lacking = record.__dict__.keys() - old.__dict__.keys() | self._lacking.get(id, set())
            if lacking:
                self._lacking[id] = frozenset(lacking)
            self._records[id] = record
            self._by_kind[record.kind][id] = record
        self._merges.update(merges)

    # --- writes -----------------------------------------------------------------------

    def _commit(self, changes: ChangeSet) -> list[Event]:
        with self._lock:
            changes = self._registered(changes)
            same_keys = self._check(changes)
            if self._undo is not None:
                self._undo.append(self._before_image(changes))
            return [_isolated(event) for event in self._apply(changes, same_keys)]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # The lock is held to the end: other threads wait, as they would for a database
        # writer; this thread's reads see its own commits.
        with self._lock:
            outer = self._undo is None
            if outer:
                self._undo = []
            assert self._undo is not None
            mark = len(self._undo)
            try:
                yield
            except BaseException:
                while len(self._undo) > mark:
                    self._undo.pop()()
                raise
            finally:
                if outer:
                    self._undo = None

    def _before_image(self, changes: ChangeSet) -> Callable[[], None]:
        """What the containers hold now, where ``changes`` will write: a function that
        puts it back. Copies only the entries the change set touches."""
        missing = object()
        records = [*changes.deletes, *changes.inserts, *changes.updates]
        ids = {r.id for r in records}
        old_records = {i: self._records.get(i, missing) for i in ids}
        old_lacking = {i: self._lacking.get(i, missing) for i in ids} if self._lacking else {}
        keys = {k for i in ids for r in (self._records.get(i),) if r for k in self._claimed_keys(r)}
        keys |= {k for r in records for k in self._claimed_keys(r)}
        old_keys = {k: self._keys.get(k, missing) for k in keys}
        touched = {t.subject_id for t in changes.touches} | {e.subject_id for e in changes.events}
        moved_touches = [i for m in changes.moves for i in m.touch_ids]
        moved_events = [i for m in changes.moves for i in m.event_ids]
        touched |= {m.to_subject_id for m in changes.moves}
        rewritten_touches = [t.id for t in changes.rewrites if isinstance(t, Touch)]
        rewritten_events = [e.id for e in changes.rewrites if isinstance(e, Event)]
        moved_touches += rewritten_touches
        moved_events += rewritten_events
        touched |= {self._touch_subject[i] for i in moved_touches if i in self._touch_subject}
        touched |= {self._event_subject[i] for i in moved_events if i in self._event_subject}
        old_touches = {i: list(self._touches[i]) for i in touched if i in self._touches}
        old_events = {i: list(self._events[i]) for i in touched if i in self._events}
        touch_ids = [t.id for t in changes.touches] + moved_touches
        event_ids = [e.id for e in changes.events] + moved_events
        old_touch_subject = {i: self._touch_subject.get(i, missing) for i in touch_ids}
        old_event_subject = {i: self._event_subject.get(i, missing) for i in event_ids}
        old_event_by_id = {i: self._event_by_id.get(i, missing) for i in event_ids}
        old_suppressed = {
            x.digest: self._suppressed.get(x.digest, missing) for x in changes.suppress
        }
        old_merges = (
            {k: list(v) for k, v in self._merges.items()}
            if (
                changes.add_merge is not None
                or changes.remove_merge is not None
                or changes.rewrite_merges
            )
            else None
        )
        counters = (self._seq, self._position, len(self._feed), len(self._steps))
        models = self._models

        def restore(target: dict[Any, Any], before: dict[Any, Any]) -> None:
            for key, value in before.items():
                if value is missing:
                    target.pop(key, None)
                else:
                    target[key] = value

        def undo() -> None:
            for i, before in old_records.items():
                now = self._records.get(i)
                if now is not None:
                    self._unorder(now)
                    del self._by_kind[now.kind][i]
                if before is not missing:
                    assert isinstance(before, (Lead, Contact, Opportunity))
                    insort(self._ordered[before.kind], (before.created_at, before.id))
                    self._by_kind[before.kind][i] = before
            restore(self._records, old_records)
            restore(self._lacking, old_lacking)
            restore(self._keys, old_keys)
            for i in touched:
                self._touches.pop(i, None)
                self._events.pop(i, None)
            self._touches.update(old_touches)
            self._events.update(old_events)
            restore(self._touch_subject, old_touch_subject)
            restore(self._event_subject, old_event_subject)
            restore(self._event_by_id, old_event_by_id)
            restore(self._suppressed, old_suppressed)
            if old_merges is not None:
                self._merges.clear()
                self._merges.update(old_merges)
            self._seq, self._position = counters[0], counters[1]
            del self._feed[counters[2] :]
            del self._steps[counters[3] :]
            if self._models is not models:
                # Models registered since: what came back is read as them too.
                retyped = [kind for kind in models if models[kind] is not self._models[kind]]
                self._keep_retyped(*self._retyped(self._models, retyped, strict=False))

        return undo

    def _registered(self, changes: ChangeSet) -> ChangeSet:
        """``changes`` with its records as the registered classes: one read before the
        classes were registered (by another thread, mid-change) is converted as the
        records held then were, before anything is written (a record the class cannot
        read raises :class:`~leadfunnel.ConfigError`, and nothing is stored)."""
        models = self._models
        if all(type(r) is models[r.kind] for r in changes.records()):
            return changes
        return replace(
            changes,
            inserts=[_as_class(models[r.kind], r) for r in changes.inserts],
            updates=[_as_class(models[r.kind], r) for r in changes.updates],
        )

    def _check(self, changes: ChangeSet) -> set[UUID]:
        """Raise if ``changes`` cannot apply; return the updates that keep their keys."""
        for record in changes.deletes:
            stored = self._stored(record.id, record.kind)
            if stored.version != record.version:
                raise ConcurrencyError(record.id, record.version, stored.version)
        released: set[str] = set()
        for record in changes.deletes:
            released.update(self._claimed_keys(self._records[record.id]))
        same_keys: set[UUID] = set()  # most updates (every trigger) keep their keys
        for record in changes.updates:
            stored = self._stored(record.id, record.kind)
            if stored.version != record.version - 1:
                raise ConcurrencyError(record.id, record.version - 1, stored.version)
            if shares_key_sources(stored, record):
                same_keys.add(record.id)
                continue
            old_keys = self._claimed_keys(stored)
            if old_keys == self._claimed_keys(record):
                same_keys.add(record.id)
            else:
                released.update(old_keys)
        for record in changes.inserts:
            if record.id in self._records:
                taken = self._records[record.id]
                raise ConcurrencyError.of_insert(record.id, taken.kind, taken.version)
        for item in changes.rewrites:
            subjects = self._touch_subject if isinstance(item, Touch) else self._event_subject
            if item.id not in subjects:
                raise NotFoundError(item.id, "touch" if isinstance(item, Touch) else "event")
        if changes.rewrite_merges:
            merge_ids = {log.id for logs in self._merges.values() for log in logs}
            for log in changes.rewrite_merges:
                if log.id not in merge_ids:
                    raise NotFoundError(log.id, "merge log")
        for record in changes.checks:
            stored = self._stored(record.id, record.kind)
            if stored.version != record.version:
                raise ConcurrencyError(record.id, record.version, stored.version)
        for subject_id, read in changes.touches_read.items():
            found = len(self._touches.get(subject_id, ()))
            if found != read:
                raise ConcurrencyError.of_touches(subject_id, read, found)
        for subject_id, read in changes.events_read.items():
            found = len(self._events.get(subject_id, ()))
            if found != read:
                raise read_changed("events", subject_id, read, found)
        if changes.deals_read:
            deals = self._by_kind["opportunity"].values()
            for record_id, read in changes.deals_read.items():
                found = sum(
                    1
                    for d in deals
                    if isinstance(d, Opportunity) and record_id in (d.contact_id, d.lead_id)
                )
                if found != read:
                    raise read_changed("deals", record_id, read, found)
        if changes.unsuppressed and self._suppressed:
            suppressed = self._suppressed
            refuse_suppressed(changes, lambda ds: {d: suppressed[d] for d in ds if d in suppressed})
        # Only the keys this change set claims matter: look them up, never copy the
        # whole index (that made every commit O(records)).
        claiming = [r for r in changes.records() if r.id not in same_keys]
        if not claiming and not changes.moves:
            return same_keys  # a trigger: nothing claims a key, nothing moves
        wanted = {key for record in claiming for key in self._claimed_keys(record)}
        claims: dict[str, UUID] = {
            key: self._keys[key] for key in wanted if key in self._keys and key not in released
        }
        pending: dict[UUID, Record] = {record.id: record for record in changes.records()}
        known = ChainMap(pending, self._records)
        for record in claiming:
            check_keys_free([record], claims, known)
            if isinstance(record, (Lead, Contact)) and holds_keys(record):
                for key in identity_keys(record):
                    claims[key] = record.id
        for move in changes.moves:
            if move.to_subject_id not in self._records and move.to_subject_id not in pending:
                raise NotFoundError(move.to_subject_id)
        return same_keys

    def _apply(self, changes: ChangeSet, same_keys: set[UUID]) -> list[Event]:
        if self._lacking:  # stored again: every field as given
            for record in itertools.chain(changes.deletes, changes.records()):
                self._lacking.pop(record.id, None)
        for record in changes.deletes:
            self._release(self._records[record.id])
            self._unorder(self._records[record.id])
            del self._records[record.id]
            del self._by_kind[record.kind][record.id]
        for record in changes.updates:
            if record.id not in same_keys:
                self._release(self._records[record.id])
        for record in changes.records():
            record = _isolated(record)
            previous = self._records.get(record.id)
            if previous is None or previous.created_at != record.created_at:
                if previous is not None:
                    self._unorder(previous)
                insort(self._ordered[record.kind], (record.created_at, record.id))
            self._records[record.id] = record
            self._by_kind[record.kind][record.id] = record
            if record.id not in same_keys:
                for key in self._claimed_keys(record):
                    self._keys[key] = record.id
        for touch in changes.touches:
            touch = _isolated(touch)
            self._seq += 1
            insort(self._touches[touch.subject_id], (touch.at, self._seq, touch), key=_order)
            self._touch_subject[touch.id] = touch.subject_id
        for suppression in changes.suppress:
            self._suppressed.setdefault(suppression.digest, suppression.record_id)
        stored: list[Event] = []
        for event in changes.events:
            self._position += 1
            # Its own data, whatever the caller does with the dict it gave.
            if type(event) is Event:
                event = _event_copy(event, self._position)
            else:
                event = _isolated(updated(event, {"position": self._position}))
            stored.append(event)
            history = self._events[event.subject_id]
            row = (event.at, self._position, event)
            if history and _order(row) < _order(history[-1]):
                insort(history, row, key=_order)
            else:
                history.append(row)  # the usual case: the newest event of its subject
            self._event_subject[event.id] = event.subject_id
            self._event_by_id[event.id] = event
            self._feed.append(event.id)
            self._steps.extend(
                (event.id, step, event.at)
                for step in funnel_steps(event.subject, event.source, event.dest)
            )
        for move in changes.moves:
            self._move(self._touches, self._touch_subject, move.touch_ids, move.to_subject_id)
            self._move(self._events, self._event_subject, move.event_ids, move.to_subject_id)
        if changes.rewrites:
            self._rewrite(changes.rewrites)
        for log in map(_isolated_log, changes.rewrite_merges):
            for logs in self._merges.values():
                logs[:] = [log if old.id == log.id else old for old in logs]
        if changes.remove_merge is not None:
            for logs in self._merges.values():
                logs[:] = [log for log in logs if log.id != changes.remove_merge]
        if changes.add_merge is not None:
            self._merges[changes.add_merge.keep_id].append(_isolated_log(changes.add_merge))
        return stored

    def _rewrite(self, items: list[Touch | Event]) -> None:
        """Replace stored touches and events by ``items``, each keeping its subject and
        place: each subject's rows are indexed by id once, so that an erasure scrubbing
        a long history is linear, not a scan of the history per item."""
        places: dict[tuple[bool, UUID], dict[UUID, int]] = {}
        for item in items:
            touch = isinstance(item, Touch)
            rows: Any
            if touch:
                rows, subject = self._touches, self._touch_subject[item.id]
            else:
                rows, subject = self._events, self._event_subject[item.id]
            place = places.get((touch, subject))
            if place is None:
                # Rewrites replace rows in place: the indexes stay true.
                place = {row[2].id: n for n, row in enumerate(rows[subject])}
                places[touch, subject] = place
            index = place.get(item.id)
            if index is None:
                continue
            at, seq, old = rows[subject][index]
            update: dict[str, Any] = {"subject_id": subject}
            if isinstance(old, Event):
                update["position"] = old.position
            new = _isolated(item.model_copy(update=update))
            rows[subject][index] = (at, seq, new)
            if isinstance(new, Event):
                self._event_by_id[new.id] = new

    def _move(
        self,
        rows: defaultdict[UUID, list[tuple[datetime, int, Any]]],
        subject_of: dict[UUID, UUID],
        ids: Iterable[UUID],
        to: UUID,
    ) -> None:
        for item_id in ids:
            source = subject_of.get(item_id)
            if source is None:
                continue
            for index, (at, seq, item) in enumerate(rows[source]):
                if item.id == item_id:
                    del rows[source][index]
                    moved = item.model_copy(update={"subject_id": to})
                    insort(rows[to], (at, seq, moved), key=_order)
                    subject_of[item_id] = to
                    if isinstance(moved, Event):
                        self._event_by_id[item_id] = moved
                    break

    def _stored(self, id: UUID, kind: str) -> Record:
        stored = self._by_kind[kind].get(id)
        if stored is None:
            raise NotFoundError(id, kind)
        return stored

    @staticmethod
    def _claimed_keys(record: Record) -> tuple[str, ...]:
        if isinstance(record, (Lead, Contact)) and holds_keys(record):
            return identity_keys(record)
        return ()

    def _release(self, record: Record) -> None:
        for key in self._claimed_keys(record):
            if self._keys.get(key) == record.id:
                del self._keys[key]

    # --- reads ------------------------------------------------------------------------

    # Every read takes the lock, as a database reader sees only committed rows: a
    # transaction() holds it to its end, so no other thread reads what may roll back.

    def get(self, id: UUID) -> Record:
        with self._lock:
            found = self._records.get(id)
        if found is None:
            raise NotFoundError(id)
        return _isolated(found)

    def get_many(self, ids: Iterable[UUID]) -> dict[UUID, Record]:
        with self._lock:
            records = self._records
            return {i: _isolated(records[i]) for i in ids if i in records}

    def find_keys(self, keys: Iterable[str]) -> dict[str, UUID]:
        with self._lock:
            return {k: self._keys[k] for k in keys if k in self._keys}

    def suppressed(self, digests: Iterable[str]) -> dict[str, UUID]:
        with self._lock:
            return {d: self._suppressed[d] for d in digests if d in self._suppressed}

    def any_suppressed(self) -> bool:
        with self._lock:
            return bool(self._suppressed)

    def suppression_secret(self) -> bytes:
        with self._lock:
            if self._secret is None:
                self._secret = secrets.token_bytes(32)
            return self._secret

    def suppression_fingerprint(self) -> str | None:
        with self._lock:
            return self._fingerprint

    def keep_suppression_fingerprint(self, fingerprint: str) -> str:
        with self._lock:
            if self._fingerprint is None:
                self._fingerprint = fingerprint
            return self._fingerprint

    def last_position(self) -> int:
        with self._lock:
            return len(self._feed)  # positions are 1, 2, 3...

    def events(self, *, after: int = 0, limit: int | None = None) -> list[Event]:
        with self._lock:
            # Positions are 1, 2, 3...: the event at position p is self._feed[p - 1].
            ids = self._feed[max(after, 0) : None if limit is None else max(after, 0) + limit]
            return [_isolated(self._event_by_id[i]) for i in ids]

    def _unorder(self, record: Record) -> None:
        ordered = self._ordered[record.kind]
        at = bisect_left(ordered, (record.created_at, record.id))
        if at < len(ordered) and ordered[at] == (record.created_at, record.id):
            del ordered[at]

    def _select(
        self, kind: str, limit: int | None, test: Any, after: Cursor | None = None
    ) -> list[Any]:
        found: list[Any] = []
        if limit == 0:
            return found
        with self._lock:
            ordered, records = self._ordered[kind], self._by_kind[kind]
            start = 0 if after is None else bisect_right(ordered, (after[0], after[1]))
            for _, id in itertools.islice(ordered, start, None):
                record = records[id]
                if test(record):
                    found.append(_isolated(record))
                    if limit is not None and len(found) >= limit:
                        break
        return found

    def _count(self, kind: SubjectKind, filters: dict[str, Any]) -> int:
        test = self._test(kind, filters)
        with self._lock:
            return sum(1 for r in self._by_kind[kind].values() if test(r))

    def _list(
        self, kind: SubjectKind, filters: dict[str, Any], after: Cursor | None, limit: int | None
    ) -> list[Any]:
        return self._select(kind, limit, self._test(kind, filters), after)

    def _test(self, kind: str, filters: dict[str, Any]) -> Callable[[Any], bool]:
        """The predicate of the list filters (``None`` means no filter)."""
        given = {name: value for name, value in filters.items() if value is not None}
        model = self._models[kind]
        # A record lacking a field (stored as another class) reads as its default.
        where = [
            (name, value, missing_value(model, name))
            for name, value in where_values(model, given.pop("where", None) or {}).items()
        ]
        since, until = given.pop("created_since", None), given.pop("created_until", None)
        tag = given.pop("tag", None)
        for name in ("status", "type", "stage"):
            if name in given:
                given[name] = str(getattr(given[name], "value", given[name]))
        if since is not None or until is not None:
            if since is not None:
                require_aware(since, "created_since")
            if until is not None:
                require_aware(until, "created_until")

        lacking = self._lacking
        # A value no store keeps (an int beyond 64 bits, inf, text with a NUL: refused
        # when written) matches nothing, as on SQL (where it is not even sent).
        impossible = any(not kept_everywhere(want) for _, want, _ in where)

        def value(record: Any, name: str, missing: Any) -> Any:
            gone = lacking.get(record.id)
            return missing if gone is not None and name in gone else getattr(record, name, missing)

        def test(record: Any) -> bool:
            return (
                not impossible
                and all(
                    str(getattr(v := getattr(record, name), "value", v)) == value
                    if name in ("status", "type", "stage")
                    else getattr(record, name) == value
                    for name, value in given.items()
                )
                and (tag is None or tag in record.tags)
                and all(_same(value(record, name, missing), want) for name, want, missing in where)
                and (since is None or record.created_at >= since)
                and (until is None or record.created_at < until)
            )

        return test

    def people_like(
        self,
        *,
        email_domain: str | None = None,
        company: str | None = None,
        last_name: str | None = None,
        kind: SubjectKind = "lead",
        limit: int = 200,
    ) -> list[Lead | Contact]:
        domain = trait_key(email_domain, "email_domain")
        company_key = trait_key(company, "company")
        name_key = trait_key(last_name, "last_name")

        def test(r: Lead | Contact) -> bool:
            return r.erased_at is None and bool(
                (
                    domain
                    and r.email
                    and trait_key(r.email.rpartition("@")[2], "email_domain") == domain
                )
                or (company_key and trait_key(r.company, "company") == company_key)
                or (name_key and trait_key(r.last_name, "last_name") == name_key)
            )

        return self._select(kind, limit, test)

    def history(self, subject_id: UUID) -> list[Event]:
        with self._lock:
            return [_isolated(event) for _, _, event in self._events.get(subject_id, ())]

    def touches(self, subject_id: UUID) -> list[Touch]:
        with self._lock:
            return [_isolated(touch) for _, _, touch in self._touches.get(subject_id, ())]

    def touched(self, subject_ids: Iterable[UUID], *, channel: Channel) -> set[UUID]:
        wanted = Channel(channel)
        with self._lock:
            return {
                id
                for id in subject_ids
                if any(touch.channel == wanted for _, _, touch in self._touches.get(id, ()))
            }

    def touch_counts(self, subject_ids: Iterable[UUID]) -> dict[UUID, int]:
        with self._lock:
            return {id: len(self._touches.get(id, ())) for id in dict.fromkeys(subject_ids)}

    def merges_of(self, ids: Collection[UUID]) -> list[MergeLog]:
        wanted = set(ids)
        with self._lock:
            logs = [
                log
                for logs in self._merges.values()
                for log in logs
                if log.keep_id in wanted or log.other.id in wanted
            ]
        return sorted(map(_isolated_log, logs), key=lambda log: log.at)

    def last_merge(self, keep_id: UUID) -> MergeLog | None:
        with self._lock:
            logs = self._merges.get(keep_id)
            return _isolated_log(logs[-1]) if logs else None

    # --- scaling queries --------------------------------------------------------------

    def follow_up_candidates(
        self, *, lead_limit: int, contact_limit: int, owner: str | None = None
    ) -> Iterator[FollowUpCandidate]:
        lead_owner = text_filter(self._models["lead"], "owner", owner)
        contact_owner = text_filter(self._models["contact"], "owner", owner)
        with self._lock:
            busy: set[UUID] = set()
            closed: dict[UUID, datetime] = {}  # contact -> when its last deal closed
            for o in self._by_kind["opportunity"].values():
                assert isinstance(o, Opportunity)
                if o.is_open:
                    busy.add(o.contact_id)
                    continue
                # When it closed: an edit of the closed deal since (an owner changed,
                # a merge moving it) does not move the contact's follow-up.
                at = o.closed_at or o.updated_at
                if o.contact_id not in closed or at > closed[o.contact_id]:
                    closed[o.contact_id] = at
            rows: list[FollowUpCandidate] = []
            moves: dict[UUID, list[tuple[str, datetime]]] = defaultdict(list)
            for event_id, step, at in self._steps:
                if step in ("raw", "unqualified"):
                    moves[self._event_subject[event_id]].append((step, at))
            for record in self._by_kind["lead"].values():
                assert isinstance(record, Lead)
                if (
                    record.status in (LeadStatus.RAW, LeadStatus.QUALIFIED)
                    and (owner is None or record.owner == lead_owner)
                    and record.erased_at is None
                ):
                    anchor = record.status_at or record.created_at
                    entered = lead_entered(record.status, anchor, moves.get(record.id, ()))
                    # Anchored where it entered its cadence: qualifying a raw lead
                    # keeps its schedule, as it keeps its count.
                    row = self._candidate(
                        record, "lead", record.status.value, entered, lead_limit, entered
                    )
                    if row is not None:
                        rows.append(row)
            for record in self._by_kind["contact"].values():
                assert isinstance(record, Contact)
                if (
                    record.type == ContactType.PROSPECT
                    and record.id not in busy
                    and (owner is None or record.owner == contact_owner)
                    and record.erased_at is None
                ):
                    anchor = max(record.created_at, closed.get(record.id, record.created_at))
                    row = self._candidate(
                        record, "contact", record.type.value, anchor, contact_limit
                    )
                    if row is not None:
                        rows.append(row)
        return iter(rows)

    def _candidate(
        self,
        record: Lead | Contact,
        subject: SubjectKind,
        state: str,
        anchor: datetime,
        limit: int,
        entered: datetime | None = None,
    ) -> FollowUpCandidate | None:
        count = 0
        last: datetime | None = None
        if entered is None:  # touches before it were not in this cadence
            entered = anchor
        for at, _, touch in reversed(self._touches.get(record.id, ())):
            if touch.outcome in _RESETS:
                anchor = max(anchor, at)
                break
            if at < entered:
                break
            count += 1
            if last is None:
                last = at
        if count >= limit:
            return None
        return FollowUpCandidate(
            subject_id=record.id,
            subject=subject,  # type: ignore[arg-type]
            state=state,
            owner=record.owner,
            anchor_at=anchor,
            touches=count,
            last_touch_at=last,
            opt_outs=record.opt_outs,
        )

    def step_counts(
        self,
        *,
        since: datetime | None,
        until: datetime | None,
        by: GroupBy | None = None,
        steps: Collection[str] | None = None,
    ) -> list[StepCount]:
        check_grouping(by, "a report")
        wanted = None if steps is None else frozenset(steps)
        with self._lock:
            seen: dict[tuple[str, str | None], set[UUID]] = defaultdict(set)
            for event_id, step, at in self._steps:
                if (since is not None and at < since) or (until is not None and at >= until):
                    continue
                if wanted is not None and step not in wanted:
                    continue
                subject_id = self._event_subject[event_id]
                group = self._group(subject_id, by, at) if by else None
                seen[(step, group)].add(subject_id)
        return [StepCount(step, group, len(ids)) for (step, group), ids in seen.items()]

    def qualified_follow_up(
        self, *, since: datetime | None, until: datetime | None
    ) -> FollowUpStats:
        with self._lock:
            leads = {
                self._event_subject[event_id]
                for event_id, step, at in self._steps
                if step == "qualified"
                and (since is None or at >= since)
                and (until is None or at < until)
            }
            never = 0
            touched: set[UUID] = set()  # each subject's touches once (merged contacts)
            for lead_id in leads:
                contact_id = getattr(self._records.get(lead_id), "contact_id", None)
                n = len(self._touches.get(lead_id, ()))
                touched.add(lead_id)
                if contact_id is not None:
                    n += len(self._touches.get(contact_id, ()))
                    touched.add(contact_id)
                never += n == 0 and contact_id is None
            touches = sum(len(self._touches.get(subject, ())) for subject in touched)
        return FollowUpStats(len(leads), never, touches)

    def _firsts(self, steps: Iterable[str]) -> dict[tuple[UUID, str], datetime]:
        """Each subject's first arrival at each of ``steps`` (call with the lock held)."""
        wanted = set(steps)
        firsts: dict[tuple[UUID, str], datetime] = {}
        for event_id, step, at in self._steps:
            if step in wanted:
                key = (self._event_subject[event_id], step)
                if key not in firsts or at < firsts[key]:
                    firsts[key] = at
        return firsts

    def stage_times(
        self,
        *,
        since: datetime | None,
        until: datetime | None,
        by: GroupBy | None = None,
    ) -> list[StageTime]:
        check_grouping(by, "time in stage")
        durations: dict[tuple[str, str | None], list[float]] = defaultdict(list)
        with self._lock:
            firsts = self._firsts(TIMED_STEPS)
            # qualified -> appointment_set: a lead's earliest booked opportunity.
            booked: dict[UUID, tuple[datetime, UUID]] = {}
            for (subject_id, step), at in firsts.items():
                record = self._records.get(subject_id)
                if step == "appointment_set" and isinstance(record, Opportunity):
                    lead_id = record.lead_id
                    if lead_id is not None and (lead_id not in booked or at < booked[lead_id][0]):
                        booked[lead_id] = (at, subject_id)
            for (subject_id, step), start in firsts.items():
                if step == TIMED_STEPS[-1]:
                    continue
                following = TIMED_STEPS[TIMED_STEPS.index(step) + 1]
                ended = (
                    booked.get(subject_id)
                    if following == "appointment_set"
                    else (
                        (firsts[(subject_id, following)], subject_id)
                        if (subject_id, following) in firsts
                        else None
                    )
                )
                if ended is None:
                    continue
                end, end_subject = ended
                if (since is not None and end < since) or (until is not None and end >= until):
                    continue
                group = self._group(end_subject, by, end) if by else None
                durations[(step, group)].append((end - start).total_seconds())
        nexts = dict(itertools.pairwise(TIMED_STEPS))
        order = {step: i for i, step in enumerate(TIMED_STEPS)}
        return [
            StageTime(step, nexts[step], statistics.median(found), len(found), group)
            for (step, group), found in sorted(
                durations.items(),
                key=lambda item: (order[item[0][0]], item[0][1] is None, item[0][1] or ""),
            )
        ]

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
        """:meth:`rep_list`; with ``report``, :meth:`no_shows`' rows (erased people's
        deals and those lost as ``avoid`` or ``unqualified`` kept in)."""
        check_rep_list(kind)
        deals = kind != "never_booked"
        source = text_filter(self._models["contact" if deals else "lead"], "source", source)
        owner = text_filter(self._models["opportunity" if deals else "lead"], "owner", owner)
        rows: list[tuple[datetime, int, Lead | Opportunity]] = []
        with self._lock:
            sat = self._firsts(("appointment_sat",)) if kind != "never_booked" else {}
            for position, record in enumerate(self._records.values()):
                if (
                    not report
                    and isinstance(record, Opportunity)
                    and record.stage is Stage.LOST
                    and record.lost_reason in DO_NOT_CALL
                ):
                    continue  # nobody calls them back (a report still counts them)
                entered = self._entered(record, kind, now, sat)
                if entered is None:
                    continue
                # In UTC, as the SQL stores give it: a rep list reads alike on every
                # store, whatever offset the record's time was given in.
                entered = entered.astimezone(UTC)
                if entered_since is not None and entered < entered_since:
                    continue
                if entered_until is not None and entered >= entered_until:
                    continue
                person = (
                    self._records.get(record.contact_id)
                    if isinstance(record, Opportunity)
                    else record
                )
                if not report and (
                    getattr(person, "erased_at", None) is not None
                    or (person is not None and is_avoided(person))
                ):
                    continue  # nobody calls an erased or avoided person back
                if source is not None and getattr(person, "source", None) != source:
                    continue
                if owner is not None and getattr(record, "owner", None) != owner:
                    continue
                assert isinstance(record, (Lead, Opportunity))
                rows.append((entered, position, record))
        rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
        return [RepListRow(_isolated(record), entered) for entered, _, record in rows[:limit]]

    def _missed_appointments(
        self,
        *,
        now: datetime,
        entered_since: datetime | None,
        entered_until: datetime | None,
    ) -> list[RepListRow]:
        rows: list[tuple[datetime, int, Opportunity]] = []
        with self._lock:
            for deal in self._by_kind["opportunity"].values():
                for _, position, event in self._events.get(deal.id, ()):
                    due = missed_appointment(event)
                    if due is None or not came_due(due, now, entered_since, entered_until):
                        continue
                    assert isinstance(deal, Opportunity)
                    rows.append((due, position, deal))
        rows.sort(key=_order, reverse=True)
        return [RepListRow(_isolated(deal), due) for due, _, deal in rows]

    @staticmethod
    def _entered(
        record: Record,
        kind: RepListKind,
        now: datetime,
        sat: dict[tuple[UUID, str], datetime],
    ) -> datetime | None:
        """When ``record`` entered the situation of rep list ``kind``, or None if it is
        not on that list."""
        if kind == "never_booked":
            if isinstance(record, Lead) and record.status is LeadStatus.QUALIFIED:
                return record.status_at or record.created_at
            return None
        if not isinstance(record, Opportunity) or record.stage is Stage.WON:
            return None
        sat_at = sat.get((record.id, "appointment_sat"))
        if kind == "not_bought":
            return sat_at
        if sat_at is not None or record.stage not in (Stage.APPOINTMENT_SET, Stage.LOST):
            return None
        appointment = record.appointment_at or record.created_at
        return appointment if appointment < now else None

    def _group(self, subject_id: UUID, by: str, at: datetime) -> str | None:
        if by == "month":
            return month_of(at)
        record = self._records.get(subject_id)
        lead: Record | None = None
        if isinstance(record, Lead):
            lead = record
        elif isinstance(record, Opportunity):
            if by == "setter":
                return record.setter
            if by == "owner":
                return record.owner
            contact = self._records.get(record.contact_id)
            lead_id = record.lead_id
            if lead_id is None:
                lead_id = contact.lead_id if isinstance(contact, Contact) else None
            lead = self._records.get(lead_id) if lead_id else None
            if lead is None and by == "source" and isinstance(contact, Contact):
                return contact.source  # a contact with no lead: its own source
        if not isinstance(lead, Lead) or by == "setter":
            return None
        value: str | None = getattr(lead, by)
        return value


def _order(row: tuple[datetime, int, Any]) -> tuple[datetime, int]:
    return row[0], row[1]


def _same(stored: Any, wanted: Any) -> bool:
    """``stored == wanted`` as the SQL stores compare their JSON: a boolean is no number
    (Python has ``True == 1``), in a dict or a list too."""
    if (type(stored) is bool) is not (type(wanted) is bool):
        return False
    if type(stored) is dict and type(wanted) is dict:
        return stored.keys() == wanted.keys() and all(_same(stored[k], wanted[k]) for k in stored)
    if type(stored) in (list, tuple) and type(wanted) in (list, tuple):
        return len(stored) == len(wanted) and all(map(_same, stored, wanted))
    return bool(stored == wanted)


def _as_class(model: type[Record], record: Record) -> Record:
    """``record`` as ``model``: itself if it is one, else read as one (:func:`_read_as`)
    when ``model`` is its class's subclass (the application's, registered since)."""
    if type(record) is model or not issubclass(model, type(record)):
        return record
    return _read_as(model, record)


def _read_as(model: type[Record], record: Record) -> Record:
    """``record`` as an instance of ``model`` (its fields validated as ``model``'s, its
    own fields the class lacks at their defaults), or :class:`~leadfunnel.ConfigError`
    saying why it cannot be one."""
    try:
        return model.model_validate(field_values(record))
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in problem["loc"])
    name = model.__name__
    stored = f"the stored {record.kind} {record.id} (a {type(record).__name__})"
    if problem["type"] == "missing":
        why = (
            f"{stored} has no {field}, which {name} requires; give the field a default "
            f"({record.kind}s stored before {name} was registered have no value for it)"
        )
    elif problem["type"] == "extra_forbidden":
        # The field and the kind of problem, never the value: errors end up in logs,
        # which must not carry personal data (DESIGN 13).
        why = (
            f"{stored} has a value in {field}, a field {name} does not declare "
            "(an in-memory store keeps no field beyond its class); declare it on "
            f"{name}, or register {type(record).__name__} again"
        )
    else:
        why = (
            f"{stored} has a value in {field} that {name} does not accept "
            f"({problem['type']}); change the model, or the record before registering it"
        )
    raise ConfigError(f"cannot read {record.kind}s as {name}: {why}")
