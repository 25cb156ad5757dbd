"""Bulk import of leads (and contacts): validate, dedupe, and store in chunks.

Rows often come from another CRM, so a row may say more than a new lead's fields:

* ``created_at``: when the CRM created the person. The record is dated then, and so are
  its ``import`` events, so ages, date filters and reports by month tell the truth.
* ``type`` (a contact type): the row is a contact (a converted lead, a customer), not
  a lead.
* ``status`` ``qualified`` or ``unqualified``, with ``carry_over=True``: the lead's
  status as it stood in the CRM. Its history shows it arriving raw and moving on, both
  at its creation date, as a lead that went through this funnel would.

One bad row never sinks the import: a row that does not validate is rejected with the
reason, and a row the store refuses (a value the database cannot hold, a person another
writer stored a moment ago) is found by splitting its chunk and storing the halves, so
only that row is reported; later rows of its chunk that repeat it are then judged as if
it had never come. The report is the same however the rows are chunked. A store that
stops answering stops the import: its error is raised, after ``on_progress`` has been
given what was stored until then.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from uuid import UUID

import pydantic

from ._changes import bump, event, refuse_kept, retrying
from ._collector import collector_paused
from ._enums import Channel, LeadStatus
from ._errors import (
    AvoidListedError,
    ConcurrencyError,
    DuplicateError,
    InvalidArgumentError,
    InvalidTransitionError,
    LeadFunnelError,
    StorageError,
)
from ._leads import SWEET_SPOT
from ._models import (
    Contact,
    Event,
    Lead,
    Person,
    Record,
    field_keys,
    field_values,
    identity_keys,
    is_avoided,
    new_id,
    state_of,
    updated,
)
from ._people import NAMES_NOBODY, avoid, avoid_into, names_nobody
from ._protocols import Router, assign_owner, routing_data
from ._repository import ChangeSet, Repository, settled_by_commit
from ._results import Serialised
from ._suppression import Suppressor

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_ROWS",
    "FIRST_CHUNK_ROWS",
    "ImportIssue",
    "ImportReport",
    "import_leads",
    "row_bytes",
    "sized_chunks",
]

_T = TypeVar("_T")

_IMPORTABLE = (LeadStatus.SUSPECT, LeadStatus.FARM_LIST, LeadStatus.RAW, LeadStatus.AVOID)
# Statuses a lead reaches through qualification: only carried over from another CRM.
_CARRIED = (LeadStatus.QUALIFIED, LeadStatus.UNQUALIFIED)
# What a store may raise for one row it cannot hold; anything else is a bug, not data.
_STORE_REFUSALS = (LeadFunnelError, ValueError, OverflowError)


@dataclass(frozen=True, slots=True)
class ImportIssue:
    """One row ``import_leads`` did not add: its 1-based number and why."""

    row: int
    reason: str
    existing_id: UUID | None = None


@dataclass(slots=True)
class ImportReport(Serialised):
    """The outcome of ``import_leads``: every row lands in exactly one of ``added``,
    ``duplicates``, ``avoided`` and ``rejected``.

    ``added`` holds the ids of every record stored, leads and contacts; ``contacts``
    those of them that were stored as contacts (rows with a ``type``).
    """

    added: list[UUID] = field(default_factory=list)
    duplicates: list[ImportIssue] = field(default_factory=list)
    avoided: list[ImportIssue] = field(default_factory=list)
    rejected: list[ImportIssue] = field(default_factory=list)
    contacts: list[UUID] = field(default_factory=list)

    @property
    def total(self) -> int:
        """How many rows were read."""
        return len(self.added) + len(self.duplicates) + len(self.avoided) + len(self.rejected)

    def to_dict(self) -> dict[str, Any]:
        """``{"added": [id...], "contacts": [id...], "duplicates"|"avoided"|"rejected":
        [{"row", "reason", "existing_id"}...], "total": n}``."""

        def issues(found: list[ImportIssue]) -> list[dict[str, Any]]:
            return [
                {
                    "row": issue.row,
                    "reason": issue.reason,
                    "existing_id": None if issue.existing_id is None else str(issue.existing_id),
                }
                for issue in found
            ]

        return {
            "added": [str(id) for id in self.added],
            "contacts": [str(id) for id in self.contacts],
            "duplicates": issues(self.duplicates),
            "avoided": issues(self.avoided),
            "rejected": issues(self.rejected),
            "total": self.total,
        }

    def __str__(self) -> str:
        added = f"{len(self.added)} added"
        if self.contacts:
            added += f" ({len(self.contacts)} as contacts)"
        return (
            f"{added}, {len(self.duplicates)} duplicates, "
            f"{len(self.avoided)} avoided, {len(self.rejected)} rejected"
        )


class _Refused(ValueError):
    """A row that validates but cannot be imported as it is; the message says why."""


def _drop_blank_twins(data: dict[str, Any], keys: Mapping[str, str]) -> None:
    """Leave out of ``data`` a blank value (None, or a text of spaces) given for a field
    that another of its keys (its name or an alias) gives too: an export's empty column
    is no data, and only two values for one field are a row to refuse."""
    by_field: dict[str, list[str]] = {}
    for key in data:
        name = keys.get(key)
        if name is not None:
            by_field.setdefault(name, []).append(key)
    for given in by_field.values():
        if len(given) > 1:
            for key in given:
                value = data[key]
                if value is None or (isinstance(value, str) and not value.strip()):
                    del data[key]


def _reason(exc: pydantic.ValidationError, keys: Mapping[str, str], row: Iterable[str]) -> str:
    """The errors of ``exc``, raised validating ``row`` (its keys) as a model of these
    ``keys`` (:func:`field_keys`): a field given twice, by its name and by its alias
    (pydantic takes one and calls the other unknown), is said to be."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "row"
        name = keys.get(where) if error["type"] == "extra_forbidden" else None
        given = [key for key in row if key != where and keys.get(key) == name] if name else []
        if given:
            twice = " and ".join(repr(key) for key in sorted([where, *given]))
            parts.append(f"{name}: given more than once ({twice}); keep one")
        else:
            parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


#: How much of a long import goes into one transaction (``Funnel.import_leads`` unless
#: given a ``chunk_size``, and ``leadfunnel import``): at most this many rows, and about
#: this many bytes of input. Larger transactions make the per-commit costs vanish (index
#: pages written back once, fewer checkpoints: 100,000 rows wrote 670 MB to disk in
#: 1,000-row transactions and 377 MB in 10,000-row ones, for a 160 MB file); the bytes
#: bound keeps memory flat when rows are wide.
CHUNK_ROWS = 10_000
CHUNK_BYTES = 8 * 1024 * 1024
#: The first transaction's rows; each next one doubles, up to :data:`CHUNK_ROWS`: the
#: first rows are stored (and shown as progress) at once, and a store that fails is
#: found before much work is lost.
FIRST_CHUNK_ROWS = 1_000


def sized_chunks(
    items: Iterable[_T],
    size_of: Callable[[_T], int],
    *,
    first: int | None = None,
    rows: int | None = None,
    max_bytes: int | None = None,
) -> Iterator[list[_T]]:
    """``items`` in lists of ``first`` items, then twice as many each time up to
    ``rows``, each list also ended as soon as the ``size_of`` its items reaches
    ``max_bytes`` (defaults: :data:`FIRST_CHUNK_ROWS`, :data:`CHUNK_ROWS`,
    :data:`CHUNK_BYTES`)."""
    most = CHUNK_ROWS if rows is None else rows
    limit = min(FIRST_CHUNK_ROWS if first is None else first, most)
    max_bytes = CHUNK_BYTES if max_bytes is None else max_bytes
    chunk: list[_T] = []
    total = 0
    for item in items:
        chunk.append(item)
        total += size_of(item)
        if len(chunk) >= limit or total >= max_bytes:
            yield chunk
            chunk, total = [], 0
            limit = min(limit * 2, most)
    if chunk:
        yield chunk


def row_bytes(row: Mapping[str, Any] | Lead | Contact) -> int:
    """About how many bytes of input ``row`` holds, to size transactions: the length of
    its text values (a model's text fields), the rest not counted. Cheap, not exact."""
    values: Iterable[Any]
    if type(row) is dict:
        values = row.values()
    elif isinstance(row, (Lead, Contact)):
        values = row.__dict__.values()
    elif isinstance(row, Mapping):
        values = row.values()
    else:
        return 0  # not a row: import_leads rejects it
    return sum(map(len, filter(str.__instancecheck__, values)))


def import_leads(
    repository: Repository,
    rows: Iterable[Mapping[str, Any] | Lead | Contact],
    *,
    status: LeadStatus | None,
    carry_over: bool,
    chunk_size: int | None,
    at: datetime,
    actor: str | None,
    reason: str | None,
    on_progress: Callable[[ImportReport], None] | None,
    phone_region: str,
    router: Router | None,
    suppressor: Suppressor | None = None,
    models: Mapping[str, type[Any]] | None = None,
    now: Callable[[], datetime] | None = None,
) -> ImportReport:
    """Add many leads and contacts, never raising for one bad row: ``Funnel.import_leads``.

    Each chunk of rows is stored in one transaction: ``chunk_size`` rows, or, if it is
    ``None``, chunks sized by :func:`sized_chunks` on :func:`row_bytes`. ``models`` are
    the classes rows become (the application's subclasses, with their own fields: a
    row's key named like one fills it); default ``Lead`` and ``Contact``.

    New records are dated ``at``; a change to a person stored before (put on the avoid
    list, given a duplicate row's opt-outs) is dated ``now()`` when it is made (default:
    ``at``), so that it never comes before an edit the application committed meanwhile.
    """
    if now is None:
        now = lambda: at  # noqa: E731
    lead_model: type[Lead] = (models or {}).get("lead", Lead)
    contact_model: type[Contact] = (models or {}).get("contact", Contact)
    if chunk_size is not None and (type(chunk_size) is not int or chunk_size < 1):
        raise InvalidArgumentError(
            f"chunk_size must be a whole number of rows, at least 1, not {chunk_size!r} "
            "(or None: chunks sized by rows and bytes)"
        )
    if status is not None and status not in _IMPORTABLE:
        raise InvalidTransitionError(
            "lead",
            status.value,
            "import",
            None,
            hint="imported leads start as suspect, farm_list, raw or avoid",
        )
    allowed = _IMPORTABLE + _CARRIED if carry_over else _IMPORTABLE
    report = ImportReport()
    context = {"phone_region": phone_region}
    number = 0
    marks = _marks(report)  # the issues before the chunk being imported
    # Validation allocates many short-lived objects and no cycles: the cyclic collector
    # only costs time here. A long import into a small store may let the store put off
    # some upkeep to its end (Repository.loading).
    with collector_paused() as collect, repository.loading():
        try:
            chunks = (
                sized_chunks(rows, row_bytes) if chunk_size is None else _chunks(rows, chunk_size)
            )
            for chunk in chunks:
                marks = _marks(report)
                valid: list[tuple[int, Person]] = []
                for row in chunk:
                    number += 1
                    try:
                        record = _new_record(
                            row, status, allowed, at, context, lead_model, contact_model
                        )
                    except pydantic.ValidationError as exc:
                        keys = field_keys(_model_of(row, lead_model, contact_model))
                        given = row if isinstance(row, Mapping) else ()
                        report.rejected.append(ImportIssue(number, _reason(exc, keys, given)))
                        continue
                    except (TypeError, ValueError) as exc:
                        report.rejected.append(ImportIssue(number, str(exc)))
                        continue
                    valid.append((number, record))
                _store_chunk(repository, valid, report, actor, reason, suppressor, router, now)
                _in_row_order(report, marks)
                # Storing leaves cyclic garbage (a SQL adapter's statements): collect
                # this chunk's, or it piles up for the whole import.
                collect(0)
                if on_progress is not None:
                    on_progress(report)
        except BaseException:
            _in_row_order(report, marks)
            if on_progress is not None:
                on_progress(report)  # what was stored before the failure, exactly
            raise
    return report


def _marks(report: ImportReport) -> tuple[int, int, int]:
    return len(report.duplicates), len(report.avoided), len(report.rejected)


def _in_row_order(report: ImportReport, marks: tuple[int, int, int]) -> None:
    """Sort the issues one chunk added (from ``marks`` on) by row, so that the report
    does not depend on the chunking: a chunk's rows the store refuses are found after
    those validation refused, and rows that repeat someone another writer has just
    stored after the chunk's other duplicates."""
    for found, start in zip(
        (report.duplicates, report.avoided, report.rejected), marks, strict=True
    ):
        if len(found) - start > 1:
            found[start:] = sorted(found[start:], key=_row_of)


def _row_of(issue: ImportIssue) -> int:
    return issue.row


def _model_of(
    row: Mapping[str, Any] | Lead | Contact, lead_model: type[Lead], contact_model: type[Contact]
) -> type[Person]:
    """The model ``row`` is validated as (see :func:`_new_record`)."""
    if isinstance(row, (Lead, Contact)):
        return lead_model if isinstance(row, Lead) else contact_model
    return lead_model if row.get("type") in (None, "") else contact_model


def _new_record(
    row: Mapping[str, Any] | Lead | Contact,
    status: LeadStatus | None,
    allowed: tuple[LeadStatus, ...],
    at: datetime,
    context: dict[str, str],
    lead_model: type[Lead] = Lead,
    contact_model: type[Contact] = Contact,
) -> Person:
    """The record a row becomes, dated and checked, not stored yet."""
    record: Person
    if isinstance(row, (Lead, Contact)):
        model = lead_model if isinstance(row, Lead) else contact_model
        dated = "created_at" in row.model_fields_set
        if type(row) is not model:  # a plain Lead given where MyLead is stored
            # The fields set, as values (a dump would add computed fields, refused
            # as extra input, and apply the application's serialisers).
            given = {name: row.__dict__[name] for name in row.model_fields_set}
            row = model.model_validate(given, context=context)
        else:
            # Validated whole (as add() and capture() do): a record made with
            # model_copy(update=...) or model_construct never was, and may hold what
            # its class refuses, which a store would keep and no read could give back.
            row = model.model_validate(field_values(row), context=context)
        when = row.created_at if dated else at
        stamp: dict[str, Any] = {"version": 1, "created_at": when, "updated_at": when}
        if isinstance(row, Lead):
            # A model_copy(update=...) skips validation and may carry a plain string.
            stamp["status"] = LeadStatus(status if status is not None else row.status)
            stamp["status_at"] = when
        record = updated(row, stamp)
    else:
        if type(row) is not dict and not isinstance(row, Mapping):
            raise TypeError(
                f"a row is a mapping of Lead fields (a dict), a Lead or a Contact, not "
                f"{type(row).__name__}"
            )
        data = dict(row)
        kind: type[Person] = lead_model
        if data.get("type") in (None, ""):
            data.pop("type", None)
            is_lead = True
        else:
            kind = contact_model
            is_lead = issubclass(kind, Lead)
            # A column of the lead model's own (by name or alias) that the contact model
            # lacks stays behind (as a conversion leaves it on the lead), rather than
            # sink the row.
            lead_keys = field_keys(lead_model)
            for key in data.keys() - field_keys(contact_model).keys():
                name = lead_keys.get(key)
                if name is not None and name not in Lead.model_fields:
                    del data[key]
        keys = field_keys(kind)
        if len(keys) > len(kind.model_fields):  # the model has aliases
            _drop_blank_twins(data, keys)
        created = data.get("created_at")
        dated = created not in (None, "")
        if not dated:
            data["created_at"] = at
            data["updated_at"] = at
            if is_lead:
                data["status_at"] = at
        elif type(created) is datetime and created.tzinfo is UTC and "updated_at" not in data:
            # What it becomes below (a CSV's dates are read in UTC): rather than have
            # validation call the field's default factory for nothing.
            data["updated_at"] = created
        data["version"] = 1
        if is_lead and status is not None:
            data["status"] = status
        if "id" not in data:  # a CSV import's rows bring theirs
            data["id"] = new_id()
        record = kind.model_validate(data, context=context)
        if dated:
            # Known once validated: the record is as old as the CRM says, and so is its
            # last change.
            when = record.created_at
            stamp = {"updated_at": when}
            if is_lead:
                stamp["status_at"] = when
            # What model_copy(update=stamp) does, on the record nobody holds yet.
            record.__dict__.update(stamp)
            record.__pydantic_fields_set__.update(stamp)
    refuse_kept(record)
    if dated and record.created_at > at:
        raise _Refused(
            f"created_at: {record.created_at.isoformat()} is later than the import "
            f"({at.isoformat()}); check the date, and the zone its time was read in "
            "(leadfunnel import --timezone)"
        )
    if isinstance(record, Lead):
        if record.status not in allowed:
            raise _Refused(_refusal(record.status))
        if record.status is LeadStatus.QUALIFIED:
            record = updated(record, {"tags": record.tags | {SWEET_SPOT}})
    if names_nobody(record):
        # Stored, it would be a lead naming nobody, added again by every import of the
        # rows (no key to find it by): refused alone, its other problems told first, as
        # the command line refuses such a row.
        raise _Refused(NAMES_NOBODY)
    return record


def _refusal(status: LeadStatus) -> str:
    if status is LeadStatus.CONVERTED:
        return (
            "status: 'converted' cannot be imported: a converted lead is a contact; give "
            "the row a type (prospect, client...) to import it as one"
        )
    if status in _CARRIED:
        return (
            f"status: {status.value!r} comes from qualification; import the lead as "
            "suspect, farm_list or raw, or pass carry_over=True to keep the status "
            "it has in another CRM"
        )
    return f"status: {status.value!r} cannot be imported; use suspect, farm_list, raw or avoid"


def _store_chunk(
    repository: Repository,
    valid: list[tuple[int, Person]],
    report: ImportReport,
    actor: str | None,
    reason: str | None,
    suppressor: Suppressor | None,
    router: Router | None,
    now: Callable[[], datetime],
) -> None:
    """Sort each row into added, duplicates or avoided, and store the added in one
    commit; rows that repeat an earlier row the store then refused are sorted again
    (as they would be if that row had come alone), until none is left. Only the rows
    about to be stored are routed, and counted once stored: a duplicate (found now, or
    stored by another writer a moment before this commit) or an avoided person takes
    nobody's turn or capacity.

    A row that is itself on the avoid list (an avoid list imported, ``status="avoid"``)
    and names a person stored already puts that person on the avoid list (see
    :func:`_avoid_named`), and every other key it carries with them (see
    :func:`_avoid_carried`)."""
    named: list[tuple[int, str, UUID]] = []  # avoid rows naming someone stored
    opted: dict[UUID, list[tuple[int, Person]]] = {}  # duplicates' holders -> the rows
    chunk, start = valid, len(report.avoided)
    while valid:
        rows = _sort_rows(repository, valid, report, suppressor, named, opted)
        before = len(report.added)
        accepted = [(number, record) for number, record, earlier, _ in rows if earlier is None]
        _commit(repository, accepted, report, actor, reason, opted, named, router, suppressor)
        # The earlier rows repeated are among the accepted: either all of them were
        # stored (the common case), or look each one up.
        stored = None if len(report.added) - before == len(accepted) else set(report.added[before:])
        valid = []
        for number, record, earlier, key in rows:
            if earlier is None:
                continue
            if stored is not None and earlier.id not in stored:
                valid.append((number, record))
            elif is_avoided(earlier):
                report.avoided.append(_avoid_listed(number, key, earlier.id))
            elif is_avoided(record):
                named.append((number, key, earlier.id))
            else:
                report.duplicates.append(_duplicate(number, key, "an earlier row", earlier.id))
                if _opts_out_more(record, earlier):
                    opted.setdefault(earlier.id, []).append((number, record))
    _avoid_named(repository, named, report, actor, reason, now)
    if len(report.avoided) > start:
        _avoid_carried(repository, chunk, start, report, suppressor, actor, reason, now)
    if opted:
        _carry_opt_outs(repository, opted, report, actor, reason, now)


def _opts_out_more(row: Person, holder: Person) -> bool:
    """Whether the duplicate ``row`` refuses a channel its stored ``holder`` does not."""
    return not row.opt_outs <= holder.opt_outs


def _carry_opt_outs(
    repository: Repository,
    opted: dict[UUID, list[tuple[int, Person]]],
    report: ImportReport,
    actor: str | None,
    reason: str | None,
    now: Callable[[], datetime],
) -> None:
    """A duplicate row is not stored, but the channels it opts out of are: added to the
    stored person's ``opt_outs`` (never removed: an export that says nothing of an
    opt-out takes nobody's back), in one commit with an ``update`` event each, and said
    in the row's duplicate entry. Next week's export, where a person has unsubscribed,
    must not leave them contactable. A person someone changed meanwhile is read again
    (the commit is retried); an erased or avoided one gets nothing more."""
    wanted = {
        holder: frozenset().union(*(record.opt_outs for _, record in rows))
        for holder, rows in opted.items()
    }
    added = _opt_out(repository, wanted, now, actor, reason)
    if not added:
        return
    notes = {
        number: ", ".join(sorted(c.value for c in added[holder]))
        for holder, rows in opted.items()
        if holder in added
        for number, _ in rows
    }
    # This chunk's duplicates are the last ones (sorted into row order afterwards).
    duplicates = report.duplicates
    for index in range(len(duplicates) - 1, -1, -1):
        issue = duplicates[index]
        channels = notes.pop(issue.row, None)
        if channels is not None:
            duplicates[index] = dataclasses.replace(
                issue, reason=f"{issue.reason}; its opt-outs ({channels}) were added to it"
            )
            if not notes:
                break


@retrying
def _opt_out(
    repository: Repository,
    wanted: dict[UUID, frozenset[Channel]],
    now: Callable[[], datetime],
    actor: str | None,
    reason: str | None,
) -> dict[UUID, frozenset[Channel]]:
    """Add ``wanted`` channels to each stored person's ``opt_outs``; return what each
    gained."""
    changes = ChangeSet()
    at = now()
    gained: dict[UUID, frozenset[Channel]] = {}
    for holder in repository.get_many(wanted).values():
        if not isinstance(holder, (Lead, Contact)) or holder.erased_at is not None:
            continue
        more = wanted[holder.id] - holder.opt_outs
        if not more or is_avoided(holder):
            continue
        record = bump(holder, max(at, holder.updated_at), opt_outs=holder.opt_outs | more)
        changes.updates.append(record)
        state = state_of(record)
        changes.events.append(
            event(record, "update", state, state, at, actor, reason, {"fields": ["opt_outs"]})
        )
        gained[holder.id] = more
    if changes.updates:
        repository.commit(changes)
    return gained


def _avoid_named(
    repository: Repository,
    named: list[tuple[int, str, UUID]],
    report: ImportReport,
    actor: str | None,
    reason: str | None,
    now: Callable[[], datetime],
) -> None:
    """Put the stored people that avoid rows name on the avoid list, as ``avoid()``
    does (the contact a lead became too, open deals lost, keys suppressed), in one
    commit for them all; each row lands in ``avoided``, saying so.

    A commit the store refuses (a person someone changed meanwhile, a value it cannot
    hold) is split as :func:`_commit` splits one, each half read again, down to one
    person, who is avoided alone: read again as long as others change it (the use case
    retries), and left a duplicate, saying why, if it cannot be avoided."""
    pending = named
    while pending:
        pending = _avoid_together(repository, pending, report, actor, reason, now)


def _avoid_together(
    repository: Repository,
    rows: list[tuple[int, str, UUID]],
    report: ImportReport,
    actor: str | None,
    reason: str | None,
    now: Callable[[], datetime],
) -> list[tuple[int, str, UUID]]:
    """Avoid in one commit the people ``rows`` name, read here; return the rows left
    for another commit: those naming a person who shares a record with one avoided in
    this one (a contact, and the lead converted into it), which each row avoided alone
    would find changed (avoided already, most often)."""
    found = repository.get_many({holder for _, _, holder in rows})
    at = now()
    changes = ChangeSet()
    planned: dict[UUID, list[tuple[int, str, UUID]]] = {}  # people avoided -> their rows
    touched: set[UUID] = set()  # the records this commit changes or checks
    digests: set[str] = set()
    later: list[tuple[int, str, UUID]] = []
    alone: list[tuple[int, str, UUID]] = []
    for row in rows:
        number, key, holder = row
        if holder in planned:
            planned[holder].append(row)  # a second row naming the same person
            continue
        if holder in touched:
            later.append(row)
            continue
        record = found.get(holder)
        if not isinstance(record, (Lead, Contact)) or record.erased_at is not None:
            alone.append(row)  # gone, merged away or erased: avoid() says why
            continue
        if is_avoided(record):
            report.avoided.append(_now_avoided(number, key, holder))
            continue
        own = ChangeSet()
        try:
            # A person at its first version was never edited (an edit, like a merge into
            # it, moves its version on; the commit refuses one made since it was read):
            # its history records no key edited away, and is not read.
            simple = isinstance(record, Lead) and record.contact_id is None
            former = not simple or record.version > 1
            avoid_into(
                repository, record, own, now=at, actor=actor, reason=reason, former_keys=former
            )
        except LeadFunnelError:
            alone.append(row)  # avoid() says why
            continue
        mine = {r.id for r in (*own.updates, *own.checks)}
        if mine & touched:
            later.append(row)
            continue
        touched |= mine
        planned[holder] = [row]
        changes.updates += own.updates
        changes.events += own.events
        changes.checks += own.checks
        # What the avoid decided on (the deals it closes: a booking in between fails the
        # commit, and the row is tried again, as avoid() is).
        changes.deals_read.update(own.deals_read)
        changes.touches_read.update(own.touches_read)
        changes.events_read.update(own.events_read)
        # A key two people held stays suppressed under the first (as two commits keep).
        changes.suppress += [s for s in own.suppress if s.digest not in digests]
        digests.update(s.digest for s in own.suppress)
        changes.read[record.id] = record
    if planned:
        try:
            repository.commit(changes)
        except _STORE_REFUSALS as exc:
            if isinstance(exc, StorageError) and not exc.of_value:
                raise  # the store failed, not a row
            _check_store(repository, cast(Person, found[next(iter(planned))]), exc)
            people = list(planned.values())
            if len(people) == 1:
                alone = people[0] + alone
            else:
                half = len(people) // 2
                for part in (people[:half], people[half:]):
                    _avoid_named(
                        repository, [r for rs in part for r in rs], report, actor, reason, now
                    )
        else:
            for holder, named in planned.items():
                report.avoided.extend(_now_avoided(number, key, holder) for number, key, _ in named)
    _avoid_alone(repository, alone, report, actor, reason, now)
    return later


def _avoid_carried(
    repository: Repository,
    chunk: list[tuple[int, Person]],
    start: int,
    report: ImportReport,
    suppressor: Suppressor | None,
    actor: str | None,
    reason: str | None,
    now: Callable[[], datetime],
) -> None:
    """Avoid every key the avoid rows of ``chunk`` that landed in ``avoided`` (from
    ``start`` on) carry, beyond the person each names (``existing_id``: a person
    stored, avoided now or before, an earlier row of the list, or the record a
    suppressed key belongs to): a do-not-contact list's row giving a phone stored and
    a new e-mail leaves neither callable. A person stored under another of its keys is
    put on the avoid list too (said in the row's reason); a key nobody holds is
    suppressed on behalf of the person the row named, as the keys an avoided person
    edited away are, so that adding it later raises ``AvoidListedError``. (A key
    claimed by another writer just before the suppression is found after it, and its
    holder avoided: one claimed after is refused by the store.)"""
    named = {i.row: i.existing_id for i in report.avoided[start:] if i.existing_id}
    wanted: dict[str, tuple[int, UUID]] = {}  # key -> its row and the person it names
    for number, record in chunk:
        if number in named and is_avoided(record):
            keys = identity_keys(record)
            if len(keys) > 1:  # the key it was matched by, and more
                for key in keys:
                    wanted.setdefault(key, (number, named[number]))
    if not wanted:
        return
    held = repository.find_keys(wanted)
    others = _callable(repository, held, wanted)
    free = [key for key in wanted if key not in held]
    if free and suppressor is not None:
        banned = suppressor.banned(free)
        free = [key for key in free if key not in banned]
        if free:
            people: dict[UUID, list[str]] = {}
            for key in free:
                people.setdefault(wanted[key][1], []).append(key)
            changes = ChangeSet()
            for person, given in people.items():
                changes.suppress += suppressor.suppress(given, person)
            repository.commit(changes)
            others += _callable(repository, repository.find_keys(free), wanted)
    if not others:
        return
    more = ImportReport()
    _avoid_named(repository, others, more, actor, reason, now)
    notes: dict[int, list[str]] = {}
    for issue in sorted((*more.avoided, *more.duplicates), key=_row_of):
        if issue.reason not in notes.setdefault(issue.row, []):
            notes[issue.row].append(issue.reason)
    avoided = report.avoided
    for index in range(start, len(avoided)):
        issue = avoided[index]
        if issue.row in notes:
            reasons = "; ".join([issue.reason, *notes.pop(issue.row)])
            avoided[index] = dataclasses.replace(issue, reason=reasons)


def _callable(
    repository: Repository, held: dict[str, UUID], wanted: dict[str, tuple[int, UUID]]
) -> list[tuple[int, str, UUID]]:
    """The keys of ``held`` whose holder is not on the avoid list, each with the row
    (of ``wanted``) that carries it and the holder, as :func:`_avoid_named` takes them."""
    if not held:
        return []
    found = repository.get_many(set(held.values()))
    return [
        (wanted[key][0], key, holder)
        for key, holder in held.items()
        if not _avoided_holder(found.get(holder))
    ]


def _avoid_alone(
    repository: Repository,
    rows: list[tuple[int, str, UUID]],
    report: ImportReport,
    actor: str | None,
    reason: str | None,
    now: Callable[[], datetime],
) -> None:
    """Avoid the person each row names in a commit of its own (see :func:`_avoid_named`)."""
    avoid_now = retrying(avoid)
    for number, key, holder in rows:
        try:
            avoid_now(repository, holder, now=now(), actor=actor, reason=reason)
        except LeadFunnelError as exc:
            report.duplicates.append(
                ImportIssue(number, f"same {key.partition(':')[0]} as {holder}; {exc}", holder)
            )
            continue
        report.avoided.append(_now_avoided(number, key, holder))


def _now_avoided(number: int, key: str, holder: UUID) -> ImportIssue:
    """Row ``number`` put the person ``holder``, who holds its ``key``, on the avoid list."""
    return ImportIssue(
        number, f"{key.partition(':')[2]} was stored as {holder}, now on the avoid list", holder
    )


def _sort_rows(
    repository: Repository,
    valid: list[tuple[int, Person]],
    report: ImportReport,
    suppressor: Suppressor | None,
    named: list[tuple[int, str, UUID]],
    opted: dict[UUID, list[tuple[int, Person]]],
) -> list[tuple[int, Person, Person | None, str]]:
    """Report the rows the store's people (or the avoid list) rule out; return the
    others, each with the earlier row of ``valid`` it repeats and their shared key, or
    ``None`` and ``""`` for the rows to store."""
    # Rows of earlier chunks are stored, so the repository finds their keys:
    # remembering keys per chunk only keeps memory flat on long imports.
    keyed = [(number, record, identity_keys(record)) for number, record in valid]
    keys = {key for _, _, record_keys in keyed for key in record_keys}
    holders = repository.find_keys(keys)
    stored = repository.get_many(set(holders.values()))
    # Keys of people erased or edited off the avoid list, kept only as keyed hashes.
    banned = suppressor.banned(keys) if suppressor is not None else {}
    seen: dict[str, Person] = {}  # keys of these rows -> the record that claimed them
    # The keys nobody holds that avoid rows carry beside the person they name: avoided
    # with that person (see _avoid_carried), so a later row giving one is refused, as
    # it is in a later chunk.
    carried: dict[str, UUID] = {}
    rows: list[tuple[int, Person, Person | None, str]] = []
    for number, record, record_keys in keyed:
        if banned:
            suppressed = next((k for k in record_keys if k in banned), None)
            if suppressed is not None:
                report.avoided.append(_avoid_listed(number, suppressed, banned[suppressed]))
                if is_avoided(record):
                    _carry(carried, record_keys, banned[suppressed], holders, banned, seen)
                continue
        if holders:
            clashes = [k for k in record_keys if k in holders]
            if clashes:
                # A key of an avoided person rules, whichever key matched first: the
                # row is refused as add() refuses it, not filed as a duplicate.
                clash = next(
                    (k for k in clashes if _avoided_holder(stored.get(holders[k]))), clashes[0]
                )
                holder = stored.get(holders[clash])
                if is_avoided(record):
                    _carry(carried, record_keys, holders[clash], holders, banned, seen)
                if holder is not None and is_avoided(holder):
                    report.avoided.append(_avoid_listed(number, clash, holder.id))
                elif is_avoided(record):
                    named.append((number, clash, holders[clash]))  # avoided once stored
                else:
                    report.duplicates.append(
                        _duplicate(number, clash, str(holders[clash]), holders[clash])
                    )
                    if isinstance(holder, (Lead, Contact)) and _opts_out_more(record, holder):
                        opted.setdefault(holder.id, []).append((number, record))
                continue
        if carried:
            key = next((k for k in record_keys if k in carried), None)
            if key is not None:
                report.avoided.append(_avoid_listed(number, key, carried[key]))
                if is_avoided(record):
                    _carry(carried, record_keys, carried[key], holders, banned, seen)
                continue
        repeated = [key for key in record_keys if key in seen]
        if repeated:
            # Known once the earlier row is stored, or refused; an avoided one rules.
            key = next((k for k in repeated if is_avoided(seen[k])), repeated[0])
            rows.append((number, record, seen[key], key))
            if is_avoided(record):  # it names the earlier row's person
                _carry(carried, record_keys, seen[key].id, holders, banned, seen)
        else:
            for key in record_keys:
                seen[key] = record
            rows.append((number, record, None, ""))
    return rows


def _carry(
    carried: dict[str, UUID],
    keys: Iterable[str],
    person: UUID,
    *taken: Mapping[str, object],
) -> None:
    """Note in ``carried`` the ``keys`` of an avoid row naming ``person`` that none of
    ``taken`` (keys held, suppressed, or claimed by an earlier row) holds."""
    for key in keys:
        if not any(key in found for found in taken):
            carried.setdefault(key, person)


def _avoided_holder(holder: Record | None) -> bool:
    return holder is not None and is_avoided(holder)


def _avoid_listed(number: int, key: str, holder: UUID) -> ImportIssue:
    """Row ``number`` is refused: its identity ``key`` is on the avoid list."""
    return ImportIssue(number, f"{key.partition(':')[2]} is on the avoid list", holder)


def _duplicate(number: int, key: str, of: str, holder: UUID) -> ImportIssue:
    """Row ``number`` repeats ``of`` (a stored record's id, or an earlier row)."""
    return ImportIssue(number, f"same {key.partition(':')[0]} as {of}", holder)


def _commit(
    repository: Repository,
    accepted: list[tuple[int, Person]],
    report: ImportReport,
    actor: str | None,
    reason: str | None,
    opted: dict[UUID, list[tuple[int, Person]]],
    named: list[tuple[int, str, UUID]],
    router: Router | None = None,
    suppressor: Suppressor | None = None,
) -> None:
    """Route and store ``accepted`` in one commit; if the store refuses it, store each
    half, down to the one row it refuses, which is reported (about 2 log2(n) commits
    per bad row). A row another writer stored meanwhile is a duplicate whose opt-outs
    go to ``opted``, as if it had been found stored, and a row of the avoid list that
    names them goes to ``named`` (that person is avoided, as one found stored is); one
    whose person another writer avoided or erased meanwhile (the store checks the
    suppression list again as it commits) is avoided. A refused commit gives the owners
    it routed to their turns and capacity back (see ``assign_owner``): each half is
    routed again, so a row the store refuses takes nobody's."""
    if not accepted:
        return
    try:
        # A refusal before the commit (a bad reason, an interrupt) gives the turns back.
        with settled_by_commit():
            records = [assign_owner(router, r) if isinstance(r, Lead) else r for _, r in accepted]
            changes = ChangeSet(
                inserts=list(records),
                events=[
                    e for r in records for e in _events(r, actor, reason, routing_data(router, r))
                ],
            )
            if suppressor is not None:
                changes.unsuppressed = [k for r in records for k in identity_keys(r)]
                changes.digest = suppressor.digest
            repository.commit(changes)
    except DuplicateError as exc:
        # Another writer claimed (or avoided) one of these people since we looked.
        if len(accepted) == 1:
            number, record = accepted[0]
            if isinstance(exc, AvoidListedError):
                report.avoided.append(_avoid_listed(number, exc.key, exc.existing_id))
            elif is_avoided(record) and exc.existing_id is not None:
                # An avoid row naming the person another writer stored meanwhile: that
                # person goes on the avoid list, as one found stored does (_sort_rows).
                named.append((number, exc.key, exc.existing_id))
            else:
                report.duplicates.append(ImportIssue(number, str(exc), exc.existing_id))
                if exc.existing_id is not None and record.opt_outs:
                    opted.setdefault(exc.existing_id, []).append((number, record))
            return
    except _STORE_REFUSALS as exc:
        if isinstance(exc, StorageError) and not exc.of_value:
            raise  # the store failed (read-only, full, gone), not a row: no row would store
        _check_store(repository, records[0], exc)
        if len(accepted) == 1:
            number, record = accepted[0]
            if isinstance(exc, ConcurrencyError) and exc.expected == 0 and exc.id == record.id:
                why = (
                    f"id {record.id} is already stored; leave the id out to store a new "
                    "record, or edit the stored one with funnel.update()"
                )
            else:
                why = f"the store refused this row: {exc}"
            report.rejected.append(ImportIssue(number, why))
            return
    else:
        report.added.extend([record.id for record in records])
        report.contacts.extend([r.id for r in records if isinstance(r, Contact)])
        return
    half = len(accepted) // 2
    for part in (accepted[:half], accepted[half:]):
        _commit(repository, part, report, actor, reason, opted, named, router, suppressor)


def _check_store(repository: Repository, record: Person, refusal: Exception) -> None:
    """Raise ``refusal`` if the store itself fails (it cannot even be read), rather than
    blame the rows: every row would be refused, and the import must stop instead."""
    try:
        repository.get_many([record.id])
    except _STORE_REFUSALS:
        raise refusal from None


def _events(
    record: Person, actor: str | None, reason: str | None, routed: dict[str, Any]
) -> list[Event]:
    """The events of an imported row; the first (its arrival) records its ``routed``
    data (see ``routing_data``)."""
    at = record.created_at
    if isinstance(record, Contact):
        return [event(record, "import", None, record.type.value, at, actor, reason, routed)]
    dest = record.status.value
    if record.status in _CARRIED:
        # The lead was raw in the CRM it comes from before it was (dis)qualified: its
        # history, and every report counted from it, shows both steps.
        return [
            event(record, "import", None, LeadStatus.RAW.value, at, actor, reason, routed),
            event(record, "import", LeadStatus.RAW.value, dest, at, actor, reason),
        ]
    return [event(record, "import", None, dest, at, actor, reason, routed)]
