"""Records, events and merge logs as table rows and JSON documents, and back."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar, cast
from uuid import UUID

import pydantic
import pydantic_core

from .._documents import _skip_none as _skip_none  # (the tests look at it here)
from .._documents import document_of as document_of
from .._documents import document_value as document_value
from .._documents import json_data as json_data
from .._documents import (
    stored_aliases,
    stored_json_validator,
    stored_validator,
)
from .._enums import Channel, Outcome
from .._errors import StorageError
from .._models import Contact, Event, Lead, Opportunity, Record, Touch
from .._repository import MergeLog
from . import _schema as s

_ZERO = timedelta(0)


def dump_json(value: Any) -> str:
    # Documents arrive already serialised by pydantic (model_dump_json is several times
    # faster than json.dumps of model_dump); anything else is encoded here.
    if isinstance(value, str):
        return value
    return pydantic_core.to_json(value).decode()


def load_json(value: Any) -> Any:
    """``value``, a stored JSON document, as data; a document the JSON reader cannot
    read (nested deeper than its 200 levels, stored before leadfunnel refused such
    values) is a :class:`~leadfunnel.StorageError`, not the reader's ``ValueError``."""
    try:
        return pydantic_core.from_json(value)
    except ValueError as exc:
        # (The reader's message says where, never what: "recursion limit exceeded at
        # line 1 column 521".)
        raise StorageError(
            f"a stored JSON document cannot be read ({exc}); correct or remove the "
            "stored value (data nested deeper than leadfunnel keeps is refused since)"
        ) from None


def _stored_columns(record: Record) -> dict[str, Any]:
    """The columns every record's row has: its id, version, times and document."""
    return {
        "id": record.id,
        "version": record.version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "doc": document_of(record),
    }


def _person_row(record: Lead | Contact) -> dict[str, Any]:
    """The columns of a lead's or contact's row (kind apart)."""
    opt_outs = record.opt_outs
    return {
        **_stored_columns(record),
        "erased_at": record.erased_at,
        "owner": record.owner,
        "source": record.source,
        **s.trait_columns(record.email, record.company, record.last_name),
        "opt_outs": ",".join(sorted(c.value for c in opt_outs)) if opt_outs else None,
    }


def record_row(record: Record) -> dict[str, Any]:
    if isinstance(record, Lead):
        row = _person_row(record)
        row["status"] = record.status.value
        row["status_at"] = record.status_at
        row["profile"] = record.profile
        row["contact_id"] = record.contact_id
        return row
    if isinstance(record, Contact):
        row = _person_row(record)
        row["type"] = record.type.value
        row["lead_id"] = record.lead_id
        return row
    return {
        **_stored_columns(record),
        "stage": record.stage.value,
        "owner": record.owner,
        "setter": record.setter,
        "contact_id": record.contact_id,
        "lead_id": record.lead_id,
        "appointment_at": record.appointment_at,
        "lost_reason": None if record.lost_reason is None else record.lost_reason.value,
        "closed_at": record.closed_at,
    }


#: The columns of :func:`record_row` that hold the field of their name as it is (an
#: enum's value): by kind. (``tests/test_sql_rows.py`` checks these against it.)
_PLAIN: dict[str, frozenset[str]] = {
    "lead": frozenset(
        {"id", "version", "created_at", "updated_at", "erased_at", "owner", "source"}
        | {"status", "status_at", "profile", "contact_id"}
    ),
    "contact": frozenset(
        {"id", "version", "created_at", "updated_at", "erased_at", "owner", "source"}
        | {"type", "lead_id"}
    ),
    "opportunity": frozenset(
        {"id", "version", "created_at", "updated_at", "stage", "owner", "setter"}
        | {"contact_id", "lead_id", "appointment_at", "lost_reason", "closed_at"}
    ),
}
#: The fields the other columns are computed from: the traits' keys, the opt-outs.
_DERIVED = frozenset({"email", "company", "last_name", "opt_outs"})
_UNSET = object()


def changed_row(before: Record, after: Record) -> dict[str, Any] | None:
    """What :func:`record_row` gives for ``after``, an update of ``before`` (the record
    as stored, at the version before), where it can differ from what it gives for
    ``before``: the document, and each column holding a field that changed. ``None``
    when a column computed from other fields (:data:`_DERIVED`) may have changed, or the
    two are not of one class: make the whole row then.

    An update that moves a lead (its status, its time and its version) then converts
    five values instead of the row's sixteen, and folds no name again."""
    if type(before) is not type(after):
        return None
    old = before.__dict__
    columns = _PLAIN[after.kind]
    row: dict[str, Any] = {}
    changed = False
    for name, value in after.__dict__.items():
        was = old.get(name, _UNSET)
        if was is value or was == value:  # (a new version shares what it kept)
            continue
        if name in _DERIVED:
            return None
        changed = True
        if name in columns:
            row[name] = value.value if isinstance(value, Enum) else value
    if changed:
        row["doc"] = document_of(after)
    return row


def touch_row(touch: Touch) -> dict[str, Any]:
    return {
        "id": touch.id,
        "subject_id": touch.subject_id,
        "at": touch.at,
        "channel": Channel(touch.channel).value,
        "outcome": Outcome(touch.outcome).value,
        "doc": document_of(touch),
    }


def event_row(event: Event, position: int) -> dict[str, Any]:
    return {
        "id": event.id,
        "subject_id": event.subject_id,
        "subject": event.subject,
        "name": event.name,
        "at": event.at,
        "doc": event_document(event),
        "position": position,
    }


# An event's row holds these in columns: its document leaves them out (read back from
# the columns, see ``event_from_row``), and so the times and version almost every event has.
_EVENT_COLUMNS = frozenset({"id", "subject_id", "subject", "name", "position"})
# What an event's document leaves out, by (at in UTC, created_at is at, updated_at is at,
# version 1, no data): the sets are made once, not per event.
_LEFT_OUT_WHEN = ("at", "created_at", "updated_at", "version", "data")
LEAVE_OUT: dict[tuple[bool, ...], set[str]] = {
    flags: set(_EVENT_COLUMNS).union(
        name for name, out in zip(_LEFT_OUT_WHEN, flags, strict=True) if out
    )
    for flags in itertools.product((False, True), repeat=5)
}
EVENT_READ = tuple(
    s.events.c[name] for name in ("id", "subject_id", "subject", "name", "at", "position", "doc")
)


def event_document(event: Event) -> str:
    """The event's document, without what its columns hold: ``at`` when it is in UTC
    (the column keeps the instant in UTC), ``created_at`` and ``updated_at`` when they
    are ``at`` exactly, a version of 1 and empty data. An import's event shrinks from
    about 260 bytes to 30."""
    values = event.__dict__
    if type(event) is Event and values["version"] == 1 and _dated_at_in_utc(values):
        # The common event (what a use case makes): its texts, whose few combinations
        # in a run (an import's are all alike) are encoded once, and its data (a
        # qualification's result), encoded as the serializer encodes ``Any``.
        texts = [values[name] for name in _TEXT_FIELDS]
        data = values["data"]
        if not data:
            return _texts_document(*texts)
        document = {
            name: text for name, text in zip(_TEXT_FIELDS, texts, strict=True) if text is not None
        }
        document["data"] = data
        return pydantic_core.to_json(document).decode()
    at = event.at
    offset = at.utcoffset()
    dated = event.created_at
    changed = event.updated_at
    flags = (
        offset == _ZERO,
        dated == at and dated.utcoffset() == offset,
        changed == at and changed.utcoffset() == offset,
        event.version == 1,
        not event.data,
    )
    return event.model_dump_json(exclude=LEAVE_OUT[flags], exclude_none=_skip_none(Event))


def _dated_at_in_utc(values: dict[str, Any]) -> bool:
    """Whether an event's ``at`` is in UTC and its ``created_at`` and ``updated_at`` are
    ``at`` exactly, in the same offset: what :func:`event` makes (one instant for all
    three) is answered by identity, without comparing."""
    at = values["at"]
    if at.tzinfo is not UTC and at.utcoffset() != _ZERO:
        return False
    dated, changed = values["created_at"], values["updated_at"]
    return (dated is at or (dated == at and dated.utcoffset() == at.utcoffset())) and (
        changed is at or (changed == at and changed.utcoffset() == at.utcoffset())
    )


ALL_LEFT_OUT = (True,) * len(_LEFT_OUT_WHEN)
#: What an event's document holds when everything else is left out: its texts (source,
#: dest, actor, reason), each ``str`` or ``None``.
#: (``tests/test_stored_documents.py`` checks that this gives what the serializer does.)
_TEXT_FIELDS = tuple(name for name in Event.model_fields if name not in LEAVE_OUT[ALL_LEFT_OUT])


@functools.lru_cache(maxsize=1024)
def _texts_document(*texts: str | None) -> str:
    """The document of an event that holds only its ``_TEXT_FIELDS`` (``texts``)."""
    return pydantic_core.to_json(
        {name: text for name, text in zip(_TEXT_FIELDS, texts, strict=True) if text is not None}
    ).decode()


def doc_as_dict(doc: Any) -> dict[str, Any]:
    return doc if isinstance(doc, dict) else load_json(doc)


@functools.cache
def declared_keys(model: type[pydantic.BaseModel]) -> frozenset[str]:
    """The keys of a stored document that ``model`` reads as its fields: their names,
    and the aliases a document may hold them by (see :func:`stored_aliases`); and its
    computed fields, which documents written before they were left out hold (the
    value of a field of its own, out of date: not kept when the record is written)."""
    return frozenset(model.model_fields).union(stored_aliases(model), model.model_computed_fields)


def reads_every_key(model: type[pydantic.BaseModel]) -> bool:
    """Whether validating a document as ``model`` refuses a key it does not declare
    (leadfunnel's models do; a subclass may ``ignore`` them instead)."""
    return model.model_config.get("extra") == "forbid"


def undeclared(model: type[pydantic.BaseModel], doc: Any) -> dict[str, Any] | None:
    """The keys of ``doc``, a stored document, that ``model`` does not declare, with
    their values (fields of another model: the application's, written by a funnel
    given its classes), or ``None`` if it has none."""
    data = doc_as_dict(doc)
    known = declared_keys(model)
    if known.issuperset(data):
        return None
    return {key: value for key, value in data.items() if key not in known}


def with_keys(document: str, more: dict[str, Any] | None) -> str:
    """``document`` (as :func:`document_of` writes it: one JSON object) with the keys
    of ``more`` added, which it does not hold."""
    if not more:
        return document
    added = pydantic_core.to_json(more).decode()
    return f"{document[:-1]},{added[1:]}" if document != "{}" else added


#: The validators of a stored document, as data and as JSON text, per model class (see
#: :func:`stored_validator`).
_VALIDATORS: dict[type[Record], Callable[[Any], Record]] = {}
_JSON_VALIDATORS: dict[type[Record], Callable[[str | bytes], Record]] = {}


def _validator(model: type[Record]) -> Callable[[Any], Record]:
    found = _VALIDATORS.get(model)
    if found is None:
        found = _VALIDATORS[model] = stored_validator(model)
    return found


def _json_validator(model: type[Record]) -> Callable[[str | bytes], Record]:
    found = _JSON_VALIDATORS.get(model)
    if found is None:
        found = _JSON_VALIDATORS[model] = stored_json_validator(model)
    return found


def _erased(model: type[Record], data: dict[str, Any]) -> Record:
    """An erased person's record that the application's class refuses (a validator
    wanting what the erasure blanked): leadfunnel's own fields read as leadfunnel's
    class reads them, the application's as stored, unchecked. An erasure is never
    refused by the application's class, and its record stays readable."""
    base: type[Record] = next(c for c in model.__mro__ if c.__module__ == "leadfunnel._models")
    own = _validator(base)({k: v for k, v in data.items() if k in base.model_fields})
    theirs = {k: v for k, v in data.items() if k in model.model_fields and k not in own.__dict__}
    return model.model_construct(**own.__dict__, **theirs)


def build_record(
    model: type[Record],
    doc: Any,
    noted: Callable[[Record, dict[str, Any]], object] | None = None,
) -> Record:
    """``doc``, a stored document (as data, or as the JSON text the driver gave), as
    ``model``. Fields are stored and read by name; a key that is a field's alias (a
    document written by alias) is read as that field. Keys that are no field's (a
    field the application removed from its model, or one of a model this one is not)
    are left out, and the record is given to ``noted`` with the document;
    a value that no longer validates, or a field held twice with two values, is an
    error naming the record and the field, never dropped.

    JSON text is validated as it is, in pydantic's JSON mode (the way pydantic reads
    what ``model_dump_json`` wrote): building its dict first cost a fifth of reading a
    lead. A document that this refuses is parsed and read as data, as below."""
    if isinstance(doc, (str, bytes)):
        try:
            return _json_validator(model)(doc)
        except pydantic.ValidationError:
            pass
    try:
        data = doc_as_dict(doc)
    except StorageError as exc:
        raise StorageError(f"a stored {model.kind}: {exc}") from None
    validate = _validator(model)
    try:
        return validate(data)
    except pydantic.ValidationError as exc:
        problems = exc.errors(include_url=False)
    # A key of the document no field has (not one inside a field's value: a nested
    # model's value it refuses is an error, never a field dropped whole).
    unknown = {str(p["loc"][0]) for p in problems if _unknown_key(p)}
    if unknown and len(unknown) == len(problems):
        stored = data
        data = _by_name(model, data, unknown)
        try:
            record = validate(data)
        except pydantic.ValidationError as exc:
            problems = exc.errors(include_url=False)  # a value read by its alias
        else:
            if noted is not None:
                noted(record, stored)
            return record
    if data.get("erased_at") is not None:
        return _erased(model, data)
    bad = next(p for p in problems if not _unknown_key(p))
    where = ".".join(str(part) for part in bad["loc"])
    # The field and the kind of problem, never the value (nor pydantic's message, which
    # may quote it): errors end up in logs, which must not carry personal data.
    if not where:  # the model's own validator refused the record as a whole
        found = f"is refused by {model.__name__} as a whole (a model validator: {bad['type']})"
    elif bad["type"] == "missing":
        found = f"has no {where}, which {model.__name__} requires"
    else:
        found = f"has a value in {where} that {model.__name__} does not accept ({bad['type']})"

    raise StorageError(
        f"the stored {model.kind} {data.get('id')} {found}; change the model back or "
        "correct the stored value"
    ) from None


def _unknown_key(problem: Any) -> bool:
    return problem["type"] == "extra_forbidden" and len(problem["loc"]) == 1


def _by_name(model: type[Record], data: dict[str, Any], unknown: set[str]) -> dict[str, Any]:
    """``data`` without its ``unknown`` keys: each that is an alias of a field of
    ``model`` (see :func:`stored_aliases`) put under the field's name, the others (no
    field's) left out."""
    aliases = stored_aliases(model)
    placed = {key: value for key, value in data.items() if key not in unknown}
    came_as: dict[str, str] = {name: name for name in placed}
    for key in sorted(unknown):
        name = aliases.get(key)
        if name is None:
            continue
        if name in placed and placed[name] != data[key]:
            raise StorageError(
                f"the stored {model.kind} {data.get('id')} holds its field {name} twice, "
                f"as {came_as[name]}={placed[name]!r} and as {key}={data[key]!r}; "
                "correct the stored document so that it holds one"
            )
        placed[name] = data[key]
        came_as.setdefault(name, key)
    return placed


_M = TypeVar("_M", Event, Touch)


def moved_to(model: type[_M], doc: Any, subject_id: UUID) -> _M:
    data = doc_as_dict(doc)
    data["subject_id"] = subject_id  # a merge re-points rows without rewriting documents
    return model.model_validate(data)


def event_from_row(row: Any) -> Event:
    """An event from its row (:data:`EVENT_READ`): the document, completed from the
    columns (see :func:`event_document`; a document written whole reads the same)."""
    data = doc_as_dict(row.doc)
    data["subject_id"] = row.subject_id  # a merge re-points rows, not documents
    data["position"] = row.position  # given at commit, after the document was written
    data.setdefault("id", row.id)
    data.setdefault("subject", row.subject)
    data.setdefault("name", row.name)
    at = data.setdefault("at", row.at)
    data.setdefault("created_at", at)
    data.setdefault("updated_at", at)
    data.setdefault("version", 1)
    return Event.model_validate(data)


def opt_outs_of(value: str | None) -> frozenset[Channel]:
    return frozenset(Channel(v) for v in value.split(",")) if value else frozenset()


def merge_doc(
    log: MergeLog,
    keep_before: dict[str, Any] | None = None,
    other: dict[str, Any] | None = None,
) -> str:
    """The stored document of a merge log; ``keep_before`` and ``other`` are keys the
    two records' stored documents hold that their models do not declare (see
    :func:`undeclared`), kept in their snapshots for ``unmerge``."""

    def person(record: Lead | Contact, more: dict[str, Any] | None) -> dict[str, Any]:
        doc = json_data(record)
        return {"kind": record.kind, "doc": {**more, **doc} if more else doc}

    return dump_json(
        {
            "id": str(log.id),
            "keep_id": str(log.keep_id),
            "at": log.at.isoformat(),
            "keep_before": person(log.keep_before, keep_before),
            "other": person(log.other, other),
            "keep_version": log.keep_version,
            "touch_ids": [str(i) for i in log.touch_ids],
            "event_ids": [str(i) for i in log.event_ids],
            "opportunities_before": [json_data(o) for o in log.opportunities_before],
        }
    )


def merge_log_from(doc: Any, record_of: Callable[[str, Any], Record]) -> MergeLog:
    data = doc_as_dict(doc)

    def person(part: dict[str, Any]) -> Lead | Contact:
        record = record_of(part["kind"], part["doc"])
        assert isinstance(record, (Lead, Contact))
        return record

    return MergeLog(
        id=UUID(data["id"]),
        keep_id=UUID(data["keep_id"]),
        at=datetime.fromisoformat(data["at"]),
        keep_before=person(data["keep_before"]),
        other=person(data["other"]),
        keep_version=int(data["keep_version"]),
        touch_ids=tuple(UUID(i) for i in data["touch_ids"]),
        event_ids=tuple(UUID(i) for i in data["event_ids"]),
        opportunities_before=tuple(
            cast(Opportunity, record_of("opportunity", o)) for o in data["opportunities_before"]
        ),
    )
