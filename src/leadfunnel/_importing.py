"""Bulk import of leads: validate, dedupe, and store in chunks."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import pydantic

from ._enums import LeadStatus
from ._errors import AvoidListedError, DuplicateError, InvalidTransitionError
from ._models import Event, Lead, identity_keys, is_avoided
from ._protocols import Router, assign_owner
from ._repository import ChangeSet, Repository
from ._suppression import Suppressor

__all__ = ["ImportIssue", "ImportReport", "import_leads"]

_IMPORTABLE = (LeadStatus.SUSPECT, LeadStatus.FARM_LIST, LeadStatus.RAW, LeadStatus.AVOID)


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


def _reason(exc: pydantic.ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "row"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def import_leads(
    repository: Repository,
    rows: Iterable[Mapping[str, Any] | Lead],
    *,
    status: LeadStatus | None,
    chunk_size: int,
    at: datetime,
    actor: str | None,
    reason: str | None,
    on_progress: Callable[[ImportReport], None] | None,
    phone_region: str,
    router: Router | None,
    suppressor: Suppressor | None = None,
) -> ImportReport:
    """Add many leads, never raising for one bad row: ``Funnel.import_leads``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    if status is not None and status not in _IMPORTABLE:
        raise InvalidTransitionError(
            "lead",
            status.value,
            "import",
            (),
            hint="imported leads start as suspect, farm_list, raw or avoid",
        )
    report = ImportReport()
    stamp = {"version": 1, "created_at": at, "updated_at": at, "status_at": at}
    context = {"phone_region": phone_region}
    number = 0
    gc_was_enabled = gc.isenabled()
    # Validation allocates many short-lived objects and no cycles: the cyclic collector
    # only costs time here.
    gc.disable()
    try:
        for chunk in _chunks(rows, chunk_size):
            valid: list[tuple[int, Lead]] = []
            for row in chunk:
                number += 1
                try:
                    if isinstance(row, Lead):
                        lead = row.model_copy(update={**stamp, "id": row.id})
                    else:
                        data = dict(row)
                        data.update(stamp)
                        if status is not None:
                            data["status"] = status
                        data.setdefault("id", uuid4())
                        lead = Lead.model_validate(data, context=context)
                    if status is not None and lead.status != status:
                        lead = lead.model_copy(update={"status": status})
                    if lead.status not in _IMPORTABLE:
                        report.rejected.append(
                            ImportIssue(
                                number,
                                f"status: {lead.status.value!r} cannot be imported; use "
                                "suspect, farm_list, raw or avoid",
                            )
                        )
                        continue
                except pydantic.ValidationError as exc:
                    report.rejected.append(ImportIssue(number, _reason(exc)))
                    continue
                except (TypeError, ValueError) as exc:
                    report.rejected.append(ImportIssue(number, str(exc)))
                    continue
                valid.append((number, assign_owner(router, lead)))
            # Rows of earlier chunks are stored, so the repository finds their keys:
            # remembering keys per chunk only keeps memory flat on long imports.
            seen: dict[str, UUID] = {}  # keys of this chunk -> the lead that claimed them
            _store_chunk(repository, valid, seen, report, at, actor, reason, suppressor)
            if gc_was_enabled:
                # Storing leaves cyclic garbage (a SQL adapter's statements): collect
                # this chunk's, or it piles up for the whole import.
                gc.collect(0)
            if on_progress is not None:
                on_progress(report)
    finally:
        if gc_was_enabled:
            gc.enable()
    return report


def _store_chunk(
    repository: Repository,
    valid: list[tuple[int, Lead]],
    seen: dict[str, UUID],
    report: ImportReport,
    at: datetime,
    actor: str | None,
    reason: str | None,
    suppressor: Suppressor | None = None,
) -> None:
    keys = {key for _, lead in valid for key in identity_keys(lead)}
    holders = repository.find_keys(keys)
    stored = repository.get_many(set(holders.values()))
    # Keys of people erased or edited off the avoid list, kept only as keyed hashes.
    banned = suppressor.banned(keys) if suppressor is not None else {}
    accepted: list[tuple[int, Lead]] = []
    for number, lead in valid:
        lead_keys = identity_keys(lead)
        suppressed = next((k for k in lead_keys if k in banned), None)
        if suppressed is not None:
            report.avoided.append(
                ImportIssue(
                    number,
                    f"{suppressed.partition(':')[2]} is on the avoid list",
                    banned[suppressed],
                )
            )
            continue
        clash = next((k for k in lead_keys if k in holders), None)
        if clash is not None:
            holder = stored.get(holders[clash])
            if holder is not None and is_avoided(holder):
                report.avoided.append(
                    ImportIssue(
                        number, f"{clash.partition(':')[2]} is on the avoid list", holder.id
                    )
                )
            else:
                report.duplicates.append(
                    ImportIssue(
                        number,
                        f"same {clash.partition(':')[0]} as {holders[clash]}",
                        holders[clash],
                    )
                )
            continue
        earlier = next((k for k in lead_keys if k in seen), None)
        if earlier is not None:
            report.duplicates.append(
                ImportIssue(
                    number, f"same {earlier.partition(':')[0]} as an earlier row", seen[earlier]
                )
            )
            continue
        for key in lead_keys:
            seen[key] = lead.id
        accepted.append((number, lead))
    if not accepted:
        return
    try:
        repository.commit(_change_set([lead for _, lead in accepted], at, actor, reason))
        report.added.extend(lead.id for _, lead in accepted)
    except DuplicateError:
        # Another writer claimed one of these people since we looked: store row by row,
        # so only the clashing rows are reported, not the whole chunk.
        for number, lead in accepted:
            try:
                repository.commit(_change_set([lead], at, actor, reason))
                report.added.append(lead.id)
            except DuplicateError as exc:
                target = report.avoided if isinstance(exc, AvoidListedError) else report.duplicates
                target.append(ImportIssue(number, str(exc), exc.existing_id))


def _change_set(
    leads: list[Lead], at: datetime, actor: str | None, reason: str | None
) -> ChangeSet:
    events = [
        Event.model_construct(
            id=uuid4(),
            created_at=at,
            updated_at=at,
            version=1,
            subject_id=lead.id,
            subject="lead",
            name="import",
            source=None,
            dest=lead.status.value,
            at=at,
            actor=actor,
            reason=reason,
            data={},
        )
        for lead in leads
    ]
    return ChangeSet(inserts=list(leads), events=events)
