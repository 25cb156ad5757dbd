"""Rep lists: the people a rep calls back, pulled from the funnel's state and history.

Three lists, as the seed material asks for them:

* ``not_sat``: appointments set but not sat (no-shows, whether still open or lost);
* ``not_bought``: appointments sat that did not turn into a sale (open or lost);
* ``never_booked``: qualified leads (sweet-spot: they fit a profile) never booked.

``funnel.rep_list(kind, ...)`` asks the repository for the rows (on the SQL adapter one
query, filtered, ordered and limited in the database), then adds the contact details a
rep needs to pick up the phone. A :class:`RepList` groups by source and by age, and
prints as a table, JSON or CSV.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, overload
from uuid import UUID

from ._collector import collector_paused
from ._csv_out import csv_text
from ._errors import InvalidArgumentError
from ._models import Contact, Lead, Opportunity, Record
from ._repository import RepListRow, Repository
from ._results import Serialised

__all__ = ["RepList", "RepListItem", "RepListName", "build_rep_list"]


class RepListName(StrEnum):
    """The rep lists ``funnel.rep_list`` can pull."""

    NOT_SAT = "not_sat"
    """Appointments set but not sat: the appointment time has passed, nobody sat."""
    NOT_BOUGHT = "not_bought"
    """Appointments sat that were not won (still open, or lost)."""
    NEVER_BOOKED = "never_booked"
    """Qualified leads (they fit a profile: the sweet spot) that were never booked."""


_TITLES = {
    RepListName.NOT_SAT: "Appointments set but not sat",
    RepListName.NOT_BOUGHT: "Sat but didn't buy",
    RepListName.NEVER_BOOKED: "Sweet-spot leads never booked",
}

#: The default age buckets of :meth:`RepList.by_age`, in whole days.
AGE_BOUNDS: tuple[int, ...] = (7, 30, 90)

_CSV_COLUMNS = (
    "list",
    "subject",
    "id",
    "name",
    "company",
    "email",
    "phone",
    "source",
    "owner",
    "setter",
    "state",
    "since",
    "age_days",
    "appointment_at",
    "amount",
    "lost_reason",
)


@dataclass(frozen=True, slots=True)
class RepListItem:
    """One person to call back, with what a rep needs on the line.

    ``subject`` says whether ``record`` is a lead (``never_booked``) or an opportunity;
    for an opportunity the person's details come from its contact. ``since`` is when
    the subject got into the list's situation (the appointment time, the sitting, the
    qualifying), ``age_days`` the whole days from then to the list's ``at``.
    """

    list: RepListName
    subject: Literal["lead", "opportunity"]
    id: UUID
    name: str
    company: str | None
    email: str | None
    phone: str | None
    source: str | None
    owner: str | None
    setter: str | None
    state: str
    since: datetime
    age_days: int
    appointment_at: datetime | None
    amount: Decimal | None
    lost_reason: str | None
    record: Lead | Opportunity

    def to_dict(self) -> dict[str, Any]:
        """The item as plain JSON-ready data (without the record)."""

        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, (UUID, Decimal)):
                return str(value)
            return value

        data = {name: plain(getattr(self, name)) for name in _CSV_COLUMNS}
        data["name"] = self.name or None  # no name: null, as the other missing values
        return data


@dataclass(frozen=True, slots=True)
class RepList(Serialised, Sequence[RepListItem]):
    """A rep list: its items (newest ``since`` first) as of ``at``, with groupings."""

    name: RepListName
    at: datetime
    items: tuple[RepListItem, ...]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[RepListItem]:
        return iter(self.items)

    @overload
    def __getitem__(self, index: int) -> RepListItem: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[RepListItem, ...]: ...

    def __getitem__(self, index: int | slice) -> RepListItem | tuple[RepListItem, ...]:
        return self.items[index]

    @property
    def title(self) -> str:
        """A human name for the list."""
        return _TITLES[self.name]

    def by_source(self) -> dict[str | None, list[RepListItem]]:
        """The items per source, sources in alphabetical order (no source last)."""
        groups: dict[str | None, list[RepListItem]] = {}
        for item in self.items:
            groups.setdefault(item.source, []).append(item)
        return {key: groups[key] for key in sorted(groups, key=lambda k: (k is None, k or ""))}

    def by_age(self, bounds: Sequence[int] = AGE_BOUNDS) -> dict[str, list[RepListItem]]:
        """The items per age bucket, youngest first: with the default ``bounds``
        ``"0-7 days"``, ``"8-30 days"``, ``"31-90 days"`` and ``"over 90 days"``.

        Every bucket is present, empty or not, so reports line up week to week.
        """
        wrong = InvalidArgumentError(
            f"age bounds must be increasing whole days >= 0, as in (7, 30, 90), not {bounds!r}"
        )
        if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Iterable):
            raise wrong
        edges = list(bounds)
        if (
            not edges
            or any(isinstance(b, bool) or not isinstance(b, int) for b in edges)
            or any(b < 0 for b in edges)
            or edges != sorted(set(edges))
        ):
            raise wrong
        labels = []
        low = 0
        for high in edges:
            labels.append(f"{low}-{high} days")
            low = high + 1
        labels.append(f"over {edges[-1]} days")
        groups: dict[str, list[RepListItem]] = {label: [] for label in labels}
        for item in self.items:
            index = next((i for i, high in enumerate(edges) if item.age_days <= high), len(edges))
            groups[labels[index]].append(item)
        return groups

    # --- output -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The list as plain JSON-ready data."""
        return {
            "list": self.name.value,
            "at": self.at.isoformat(),
            "items": [item.to_dict() for item in self.items],
        }

    def to_csv(self) -> str:
        """A header row and one row per item; text that a spreadsheet would run as a
        formula is prefixed with a single quote."""
        rows = (item.to_dict() for item in self.items)
        return csv_text(
            _CSV_COLUMNS,
            (["" if data[c] is None else data[c] for c in _CSV_COLUMNS] for data in rows),
        )

    def __str__(self) -> str:
        return self.to_table()

    def to_table(self, *, by: Literal["source", "age"] | None = None) -> str:
        """An aligned text table; ``by="source"`` or ``"age"`` prints one per group.
        Columns are padded and cut by the width text takes on a terminal: a name in
        Chinese or Japanese, two columns a character, lines up with the others."""
        return self._table(by, _as_is)

    def _table(self, by: str | None, shown: Callable[[str], str]) -> str:
        """:meth:`to_table`, each text passed through ``shown`` before it is measured
        (the command line's: control characters out, what the terminal's encoding
        cannot write replaced)."""
        # (isoformat: strftime's %Y writes the year 1 as "1", not "0001")
        at = f"{self.at.date().isoformat()} {self.at:%H:%M %Z}"
        head = f"{self.title}, as of {at}: {len(self.items)}"
        if by is None:
            return "\n".join([head, "", *_rows(self.items, shown)]) + "\n"
        if by not in ("source", "age"):
            raise InvalidArgumentError(f"cannot group a rep list by {by!r}; choose source or age")
        lines = [head]
        groups: Mapping[Any, list[RepListItem]] = (
            self.by_source() if by == "source" else self.by_age()
        )
        for key, items in groups.items():
            label = "(none)" if key is None else shown(str(key))
            lines += ["", f"{by} = {label}: {len(items)}", *_rows(items, shown)]
        return "\n".join(lines) + "\n"


def _as_is(text: str) -> str:
    return text


def _rows(items: Sequence[RepListItem], shown: Callable[[str], str]) -> list[str]:
    from rich.cells import cell_len, set_cell_size

    if not items:
        return ["  (nobody)"]

    def cell(value: str | None, width: int) -> str:
        text = shown(value or "-")
        if cell_len(text) > width:  # cut, ASCII "..." (any console)
            text = set_cell_size(text, width - 3).rstrip(" ") + "..."
        return set_cell_size(text, width)

    lines = [
        f"  {'name':<24} {'company':<20} {'phone':<16} {'source':<12} {'state':<15} "
        f"{'since':<10} {'age':>5}"
    ]
    lines.append("  " + "-" * (len(lines[0]) - 2))
    for item in items:
        lines.append(
            f"  {cell(item.name or item.email, 24)} {cell(item.company, 20)} "
            f"{cell(item.phone, 16)} {cell(item.source, 12)} {item.state:<15} "
            f"{item.since.date().isoformat()} {item.age_days:>4}d"
        )
    return lines


def build_rep_list(
    repository: Repository,
    name: RepListName | str,
    *,
    at: datetime,
    source: str | None = None,
    owner: str | None = None,
    min_age_days: int | None = None,
    max_age_days: int | None = None,
    limit: int | None = None,
) -> RepList:
    """The body of ``Funnel.rep_list``: see there."""
    try:
        kind = RepListName(name)
    except ValueError:
        choices = ", ".join(member.value for member in RepListName)
        raise InvalidArgumentError(
            f"there is no rep list {name!r}; choose one of: {choices}"
        ) from None
    for label, days in (("min_age_days", min_age_days), ("max_age_days", max_age_days)):
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
            raise InvalidArgumentError(f"{label}={days!r}: give a whole number of days, 0 or more")
    # age_days is the whole days from since to at: age >= m means since <= at - m days,
    # age <= m means since > at - (m + 1) days (the repository's bounds are since <= x <
    # until). Whoever got into the list's situation after ``at`` is not on the list for
    # ``at``: an age is never negative. Bounds past either end of the calendar (the year
    # 1, the year 9999) leave nobody (an age older than the calendar) or bound nothing.
    tick = timedelta(microseconds=1)
    latest = at if min_age_days is None else _days_before(at, min_age_days)
    if latest is None:
        return RepList(kind, at, ())
    entered_until = _after(latest, tick)
    entered_since = None
    if max_age_days is not None:
        earliest = _days_before(at, max_age_days + 1)
        entered_since = None if earliest is None else earliest + tick
    # A list without a limit is every such person's record at once, acyclic objects by
    # the hundred thousand: the cyclic collector would rescan the growing heap for
    # nothing (52k people of a 200k-lead store: 2.4 s with it running, 1.6 s without).
    with collector_paused():
        rows = repository.rep_list(
            kind.value,
            now=at,
            source=source,
            owner=owner,
            entered_since=entered_since,
            entered_until=entered_until,
            limit=limit,
        )
        people = repository.get_many(
            {row.record.contact_id for row in rows if isinstance(row.record, Opportunity)}
        )
        return RepList(kind, at, tuple(_item(kind, row, at, people) for row in rows))


def _days_before(at: datetime, days: int) -> datetime | None:
    """``days`` whole days before ``at``; None before the first day of the calendar."""
    try:
        return at - timedelta(days=days)
    except OverflowError:
        return None


def _after(at: datetime, tick: timedelta) -> datetime | None:
    """``at`` plus ``tick``; None (no bound) past the last moment of the calendar."""
    try:
        return at + tick
    except OverflowError:
        return None


def _item(
    kind: RepListName, row: RepListRow, at: datetime, people: Mapping[UUID, Record]
) -> RepListItem:
    record = row.record
    if isinstance(record, Lead):
        person: Lead | Contact | None = record
        state = record.status.value
        setter = appointment_at = amount = lost_reason = None
    else:
        found = people.get(record.contact_id)
        person = found if isinstance(found, Contact) else None
        state = record.stage.value
        setter, appointment_at, amount = record.setter, record.appointment_at, record.amount
        lost_reason = None if record.lost_reason is None else record.lost_reason.value
        if appointment_at is not None:
            appointment_at = appointment_at.astimezone(UTC)
    # Times in UTC, whatever offset a store keeps a record's in (the in-memory one keeps
    # the caller's): a list reads, prints and exports alike on every store.
    since = row.since.astimezone(UTC)
    return RepListItem(
        list=kind,
        subject=record.kind,  # type: ignore[arg-type]
        id=record.id,
        name=person.full_name if person else "",
        company=person.company if person else None,
        email=person.email if person else None,
        phone=person.phone if person else None,
        source=person.source if person else None,
        owner=record.owner,
        setter=setter,
        state=state,
        since=since,
        age_days=(at - since).days,
        appointment_at=appointment_at,
        amount=amount,
        lost_reason=lost_reason,
        record=record,
    )
