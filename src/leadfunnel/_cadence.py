"""The follow-up cadence: who is due for a touch, when, and how.

Leads are cold: at most ``lead_touches`` follow-ups (2 by default). Contacts are warm: at
most ``contact_touches`` (8). After that a person is on drip: ``Funnel.due()`` lists
it no more and the channel policy allows it e-mail only. A ``replied`` or ``interested``
touch restarts the count. Everything here is computed on read from the records and
their touches; nothing is stored, so nothing goes stale.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from os import PathLike
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._channels import channels_for
from ._clock import in_utc
from ._collector import collector_paused
from ._enums import Channel
from ._errors import ConfigError
from ._models import Contact, Lead
from ._protocols import Router
from ._repository import FollowUpCandidate, Repository
from ._results import Serialised
from ._toml import read_toml

__all__ = [
    "CONTACT_INTERVALS",
    "LEAD_INTERVALS",
    "BusinessHours",
    "CadencePolicy",
    "FollowUp",
    "counted_follow_ups",
]

#: Default waits for a lead: the first touch at once, the second two days after it.
#: The latest instant there is: when something that never falls due is due.
NEVER = datetime.max.replace(tzinfo=UTC)

LEAD_INTERVALS: tuple[timedelta, ...] = (timedelta(0), timedelta(days=2))
#: Default waits for a contact: a day after it enters the cadence, then slower and slower.
CONTACT_INTERVALS: tuple[timedelta, ...] = (
    timedelta(days=1),
    timedelta(days=3),
    timedelta(days=7),
    timedelta(days=14),
    timedelta(days=30),
    timedelta(days=30),
    timedelta(days=60),
    timedelta(days=90),
)

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How far ahead ``BusinessHours.add`` looks for working time before giving up.
_MAX_DAYS = 3660


@dataclass(frozen=True)
class BusinessHours:
    """Working time for the first-response clock: weekdays, hours and holidays.

    ``days`` are weekday numbers (Monday is 0) or names (``"mon"``); ``start`` and
    ``end`` are local times in ``timezone`` (a ``tzinfo`` or an IANA name such as
    ``"America/Chicago"``); ``holidays`` is any container of dates (a set, or a
    calendar from the ``holidays`` package).
    """

    start: time = time(9)
    end: time = time(17)
    days: Iterable[int | str] = (0, 1, 2, 3, 4)
    holidays: Container[date] = frozenset()
    timezone: tzinfo | str = UTC

    def __post_init__(self) -> None:
        weekdays: set[int] = set()
        for day in self.days:
            if isinstance(day, str) and day[:3].lower() in _DAY_NAMES:
                weekdays.add(_DAY_NAMES.index(day[:3].lower()))
            elif isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6:
                weekdays.add(day)
            else:
                raise ConfigError(
                    f"business hours: days: {day!r} is not a weekday; use 0 (Monday) to 6 "
                    "(Sunday) or a name such as 'mon'"
                )
        if not weekdays:
            raise ConfigError("business hours: days: no working days; give at least one weekday")
        object.__setattr__(self, "days", frozenset(weekdays))
        if not isinstance(self.start, time) or not isinstance(self.end, time):
            raise ConfigError("business hours: start and end must be datetime.time values")
        for name, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is not None:
                # A time of day with an offset is no wall-clock time in the zone: it
                # could not be compared with one (nor with the other bound, if naive).
                attached = (
                    "a UTC offset"
                    if value.utcoffset() is not None
                    else f"a time zone ({value.tzinfo})"
                )
                raise ConfigError(
                    f"business hours: {name}: {value.isoformat()} has {attached}; business "
                    f"hours are wall-clock times in the policy's time zone (here {self.timezone}"
                    f"): write {_clock_time(value)} without an offset"
                )
        if isinstance(self.holidays, (set, frozenset, list, tuple)):
            for holiday in self.holidays:
                problem = _holiday_problem(holiday)
                if problem is not None:
                    raise ConfigError(f"business hours: holidays: {problem}")
        if self.start >= self.end:
            raise ConfigError(
                f"business hours: start {self.start} must be before end {self.end} "
                "(overnight shifts are not supported)"
            )
        if isinstance(self.timezone, str):
            try:
                object.__setattr__(self, "timezone", ZoneInfo(self.timezone))
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(
                    f"business hours: timezone: unknown time zone {self.timezone!r}; "
                    "use an IANA name such as 'Europe/Berlin'"
                ) from None
        elif not isinstance(self.timezone, tzinfo):
            # Refused here, not when the first deadline is counted in it.
            raise ConfigError(
                "business hours: timezone: must be an IANA name such as 'Europe/Berlin' "
                f"(or a tzinfo), not {self.timezone!r}"
            )

    @property
    def _tz(self) -> tzinfo:
        assert isinstance(self.timezone, tzinfo)
        return self.timezone

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` (a local date) is a working day and no holiday."""
        assert isinstance(self.days, frozenset)
        return day.weekday() in self.days and day not in self.holidays

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` falls within working time."""
        local = at.astimezone(self._tz)
        return self.is_working_day(local.date()) and self.start <= local.time() < self.end

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant ``duration`` of working time after ``start``.

        Time outside working hours does not count: a one-hour window opened on Friday
        at 18:00 closes on Monday at 10:00 (with the default hours).
        """
        if duration <= timedelta(0):
            return start
        tz = self._tz
        cursor = start.astimezone(tz)
        remaining = duration
        for _ in range(_MAX_DAYS):
            day = cursor.date()
            if self.is_working_day(day):
                opens = datetime.combine(day, self.start, tzinfo=tz)
                closes = datetime.combine(day, self.end, tzinfo=tz)
                cursor = max(cursor, opens)
                # Elapsed time in UTC: arithmetic on the zone's wall clock would count a
                # day that springs forward an hour long, one that falls back an hour short.
                since, until = cursor.astimezone(UTC), closes.astimezone(UTC)
                if since < until:
                    available = until - since
                    if remaining <= available:
                        return (since + remaining).astimezone(start.tzinfo)
                    remaining -= available
            cursor = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
        raise ConfigError(
            f"business hours: no working time within {_MAX_DAYS} days of {start.isoformat()}; "
            "check the working days and holidays"
        )


def _clock_time(value: time) -> str:
    """``value`` as a wall-clock time, without its offset: ``09:00`` (seconds shown only
    when it has some)."""
    plain = value.replace(tzinfo=None)
    return plain.isoformat("minutes" if not (plain.second or plain.microsecond) else "auto")


def _holiday_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a holiday (``None``: it is a date). A date and
    time (a ``datetime``, which Python counts as a date) never equals the day it falls
    on: kept, it would make the day no holiday, silently."""
    if isinstance(value, datetime):
        return (
            f"{value.isoformat()} is a date and time, not a date; a holiday is a whole "
            f"day: write the date alone ({value.date().isoformat()})"
        )
    if not isinstance(value, date):
        return f"{value!r} is not a date; give dates, such as datetime.date(2026, 12, 25)"
    return None


def _intervals(name: str, value: Iterable[timedelta]) -> tuple[timedelta, ...]:
    waits = tuple(value)
    if not waits:
        raise ConfigError(f"cadence: {name} is empty; give at least one wait (a timedelta)")
    for i, wait in enumerate(waits):
        if not isinstance(wait, timedelta) or wait < timedelta(0):
            raise ConfigError(f"cadence: {name}[{i}] = {wait!r} is not a non-negative timedelta")
    _never_faster(name, waits, [str(wait) for wait in waits])
    return waits


def _never_faster(name: str, waits: Sequence[timedelta], shown: Sequence[object]) -> None:
    """Refuse ``waits`` (at ``name``, each written as ``shown``) that shrink after the
    first: a due time would move earlier as touches are logged."""
    for i in range(2, len(waits)):
        if waits[i] < waits[i - 1]:
            raise ConfigError(
                f"cadence: {name}[{i}] = {shown[i]} is shorter than the wait before it "
                f"({shown[i - 1]}); a cadence may slow down but never speed up"
            )


@dataclass(frozen=True)
class CadencePolicy:
    """How often, and how many times, leads and contacts are followed up.

    ``lead_intervals[i]`` is the wait before touch ``i + 1`` of a lead: the first from
    when the lead entered the cadence (or last replied), the others from the touch
    before; past the end of the tuple its last wait repeats. ``contact_intervals`` is
    the same for contacts. Waits after the first may grow but never shrink, so a due
    time never moves earlier as touches are logged.

    A lead with no counted touch is awaiting its first response: it is overdue once
    ``first_response`` has passed (counted in working time when ``business_hours`` is
    given). Any other item is overdue once ``grace`` has passed after its due time.
    """

    lead_touches: int = 2
    contact_touches: int = 8
    lead_intervals: Sequence[timedelta] = LEAD_INTERVALS
    contact_intervals: Sequence[timedelta] = CONTACT_INTERVALS
    first_response: timedelta = timedelta(hours=1)
    grace: timedelta = timedelta(days=1)
    business_hours: BusinessHours | None = None

    def __post_init__(self) -> None:
        for name in ("lead_touches", "contact_touches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"cadence: {name} = {value!r} must be a whole number >= 0")
        object.__setattr__(
            self, "lead_intervals", _intervals("lead_intervals", self.lead_intervals)
        )
        object.__setattr__(
            self, "contact_intervals", _intervals("contact_intervals", self.contact_intervals)
        )
        for name in ("first_response", "grace"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ConfigError(f"cadence: {name} = {value!r} must be a non-negative timedelta")
        if self.business_hours is not None and not isinstance(self.business_hours, BusinessHours):
            raise ConfigError("cadence: business_hours must be a BusinessHours or None")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CadencePolicy:
        """A policy from data: counts as integers, waits and windows in hours or days.

        Keys: ``lead_touches``, ``contact_touches``, ``lead_intervals_days``,
        ``contact_intervals_days``, ``first_response_hours``, ``grace_hours``, and
        ``business_hours`` (a table with ``start`` and ``end`` as ``"HH:MM"``,
        ``days``, ``holidays`` as ISO dates, ``timezone``).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"cadence: the settings must be a table/mapping (lead_touches, "
                f"business_hours, ...), not {type(data).__name__}; give a dict, or {{}} "
                "for the defaults"
            )
        known = {
            "lead_touches",
            "contact_touches",
            "lead_intervals_days",
            "contact_intervals_days",
            "first_response_hours",
            "grace_hours",
            "business_hours",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"cadence: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}"
            )
        kwargs: dict[str, Any] = {}
        for name in ("lead_touches", "contact_touches"):
            if name in data:
                kwargs[name] = data[name]
        for name in ("lead_intervals", "contact_intervals"):
            key = f"{name}_days"
            if key in data:
                kwargs[name] = _waits(key, data[key])
        if "first_response_hours" in data:
            kwargs["first_response"] = _duration(
                "first_response_hours", data["first_response_hours"], "hours"
            )
        if "grace_hours" in data:
            kwargs["grace"] = _duration("grace_hours", data["grace_hours"], "hours")
        if "business_hours" in data:
            kwargs["business_hours"] = _business_hours(data["business_hours"])
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | PathLike[str]) -> CadencePolicy:
        """A policy from a TOML file with the keys of :meth:`from_dict` (business
        hours as a ``[business_hours]`` table)."""
        return cls.from_dict(read_toml(path, "cadence file"))

    def limit(self, subject: Literal["lead", "contact"]) -> int:
        """The number of follow-up touches before a ``subject`` goes on drip."""
        return self.lead_touches if subject == "lead" else self.contact_touches

    def wait(self, subject: Literal["lead", "contact"], touch_number: int) -> timedelta:
        """The wait before touch ``touch_number`` (1-based) of a ``subject``."""
        waits = self.lead_intervals if subject == "lead" else self.contact_intervals
        return waits[min(max(touch_number, 1), len(waits)) - 1]

    def first_response_deadline(self, start: datetime) -> datetime:
        """When a first response due at ``start`` becomes overdue."""
        if self.business_hours is None:
            return start + self.first_response
        return self.business_hours.add(start, self.first_response)

    def schedule(self, candidate: FollowUpCandidate) -> tuple[datetime, datetime]:
        """``(due_at, overdue_at)`` of the next touch of ``candidate``.

        A time past the end of the calendar (a record dated 9999-12-31 plus a wait) is
        never due: it is :data:`NEVER`, not an ``OverflowError`` for the whole list.
        """
        try:
            return self._schedule(candidate)
        except OverflowError:
            return NEVER, NEVER

    def _schedule(self, candidate: FollowUpCandidate) -> tuple[datetime, datetime]:
        subject = candidate.subject
        number = candidate.touches + 1
        # Waits are added to instants: on a time in a zone with daylight saving, Python
        # adds them on the wall clock (an hour off across a change).
        anchor = in_utc(candidate.anchor_at)
        earliest = anchor + self.wait(subject, 1)
        if candidate.touches == 0 or candidate.last_touch_at is None:
            due = earliest
            if subject == "lead":
                return due, self.first_response_deadline(due)
            return due, due + self.grace
        # Never before the first wait after the anchor: a touch logged while the lead
        # was raw does not make its first touch as qualified due earlier.
        due = max(in_utc(candidate.last_touch_at) + self.wait(subject, number), earliest)
        return due, due + self.grace


def _list(key: str, value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"cadence: {key} must be a list, not {type(value).__name__}")
    return list(value)


_UNITS = {"days": timedelta(days=1), "hours": timedelta(hours=1)}


def _duration(key: str, value: Any, unit: str) -> timedelta:
    """``value``, a number of ``unit`` (``"days"`` or ``"hours"``) from the key ``key`` of
    a cadence's data, as a wait; or a :class:`ConfigError` naming the key and the value
    (never the ``OverflowError`` or ``ValueError`` of an infinite, NaN or huge number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"cadence: {key} must be a number of {unit}, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"cadence: {key} = {value!r} must be a finite number of {unit} >= 0")
    try:
        return value * _UNITS[unit]
    except OverflowError:
        most = timedelta.max // _UNITS[unit]
        raise ConfigError(
            f"cadence: {key} = {value!r} is too long: at most {most} {unit}"
        ) from None


def _waits(key: str, value: Any) -> list[timedelta]:
    """The waits of the list of days at ``key`` (``lead_intervals_days``...), checked as
    :class:`CadencePolicy` checks them, with errors naming the key and the numbers."""
    numbers = _list(key, value)
    if not numbers:
        raise ConfigError(f"cadence: {key} is empty; give at least one wait (a number of days)")
    waits = [_duration(f"{key}[{i}]", number, "days") for i, number in enumerate(numbers)]
    _never_faster(key, waits, [repr(number) for number in numbers])
    return waits


def _business_hours(data: Any) -> BusinessHours:
    if not isinstance(data, Mapping):
        raise ConfigError("cadence: business_hours must be a table (start, end, days, ...)")
    known = {"start", "end", "days", "holidays", "timezone"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"cadence: business_hours has unknown key {unknown[0]!r}; "
            f"known keys: {', '.join(sorted(known))}"
        )
    kwargs: dict[str, Any] = {}
    for name in ("start", "end"):
        if name in data:
            value = data[name]
            try:
                kwargs[name] = value if isinstance(value, time) else time.fromisoformat(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"cadence: business_hours.{name} = {value!r} is not a time like '09:00'"
                ) from None
    if "days" in data:
        kwargs["days"] = _list("business_hours.days", data["days"])
    if "holidays" in data:
        days: set[date] = set()
        for value in _list("business_hours.holidays", data["holidays"]):
            if isinstance(value, datetime):  # a TOML date-time (2026-12-25T00:00:00Z)
                raise ConfigError(f"cadence: business_hours.holidays: {_holiday_problem(value)}")
            try:
                days.add(value if isinstance(value, date) else date.fromisoformat(value))
            except (TypeError, ValueError):
                raise ConfigError(
                    f"cadence: business_hours.holidays has {value!r}, not a date like '2026-12-25'"
                ) from None
        kwargs["holidays"] = frozenset(days)
    if "timezone" in data:
        kwargs["timezone"] = data["timezone"]
    try:
        return BusinessHours(**kwargs)
    except ConfigError as exc:
        # "business hours: days: ...", as the Python API names it: here as the file
        # names it, "business_hours.days".
        problem = str(exc).partition(": ")[2]
        named = problem.partition(":")[0] in known
        raise ConfigError(f"cadence: business_hours{'.' if named else ': '}{problem}") from None


@dataclass(frozen=True, slots=True)
class FollowUp(Serialised):
    """One follow-up due: who, by whom, when, and how they may be reached.

    ``touch_number`` is the number the next touch will have in the cadence (1 for the
    first); ``overdue_at`` is when the item becomes (or became) overdue; when it is
    overdue and a router is set, ``escalated_to`` names the owner's backup.
    """

    subject_id: UUID
    subject: Literal["lead", "contact"]
    owner: str | None
    due_at: datetime
    overdue: bool
    escalated_to: str | None
    touch_number: int
    channels: frozenset[Channel]
    state: str = ""
    overdue_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The follow-up as JSON-ready data (times in ISO 8601, channels sorted)."""
        return {
            "subject": self.subject,
            "subject_id": str(self.subject_id),
            "state": self.state,
            "owner": self.owner,
            "due_at": self.due_at.isoformat(),
            "overdue": self.overdue,
            "overdue_at": None if self.overdue_at is None else self.overdue_at.isoformat(),
            "escalated_to": self.escalated_to,
            "touch_number": self.touch_number,
            "channels": sorted(channel.value for channel in self.channels),
        }


def counted_follow_ups(
    repository: Repository,
    policy: CadencePolicy,
    at: datetime,
    router: Router | None = None,
    *,
    owner: str | None = None,
    limit: int | None = None,
) -> tuple[list[FollowUp], int, int]:
    """The follow-ups due at ``at``, most overdue first (``owner``'s only, when given;
    the first ``limit``), with how many are due in all and how many of them are overdue.

    Sorted by when each became (or becomes) overdue, then by due time: the longest
    overdue first. A person no channel may reach (every allowed channel opted out) is
    left out: nobody could act on it. With a ``limit`` only that many are held at a time
    (the candidates stream from the store): the first 50 of a million are found in the
    memory of 50.
    """
    # due() builds one small acyclic object per candidate, tens of thousands at once:
    # the cyclic collector would rescan the whole heap (every record in memory) for
    # nothing, more than doubling the time on a large in-memory funnel.
    with collector_paused():
        found = _DueRows(repository, policy, at, owner)
        if limit is None:
            rows = sorted(found, key=_DUE_ORDER)
        elif limit > 0:
            rows = heapq.nsmallest(limit, found, key=_DUE_ORDER)
        else:
            rows = []
            for _ in found:  # (counted all the same)
                pass
        backups = _escalations(repository, router, [row[3] for row in rows if at > row[0]])
        chosen = [
            FollowUp(
                subject_id=subject_id,
                subject=candidate.subject,
                owner=candidate.owner,
                due_at=due_at,
                overdue=at > overdue_at,
                escalated_to=backups.get(subject_id),
                touch_number=candidate.touches + 1,
                channels=channels,
                state=candidate.state,
                overdue_at=overdue_at,
            )
            for overdue_at, due_at, subject_id, candidate, channels in rows
        ]
        return chosen, found.due, found.overdue


_DueRow = tuple[datetime, datetime, UUID, FollowUpCandidate, frozenset[Channel]]
#: Most overdue first: by when it became (or becomes) overdue, then due, then the id.
_DUE_ORDER = operator.itemgetter(0, 1, 2)


class _DueRows:
    """The due follow-ups of the store's candidates, as they stream, each as
    ``(overdue_at, due_at, subject_id, candidate, channels)``, counting them (``due``)
    and the overdue ones (``overdue``) as they go."""

    def __init__(
        self, repository: Repository, policy: CadencePolicy, at: datetime, owner: str | None
    ) -> None:
        self._repository, self._policy, self._at, self._owner = repository, policy, at, owner
        self.due = self.overdue = 0

    def __iter__(self) -> Iterator[_DueRow]:
        policy, at = self._policy, self._at
        channel_cache: dict[tuple[str, str, frozenset[Channel]], frozenset[Channel]] = {}
        for candidate in self._repository.follow_up_candidates(
            lead_limit=policy.lead_touches, contact_limit=policy.contact_touches, owner=self._owner
        ):
            due_at, overdue_at = policy.schedule(candidate)
            if due_at > at:
                continue
            key = (candidate.subject, candidate.state, candidate.opt_outs)
            channels = channel_cache.get(key)
            if channels is None:
                channels = channel_cache[key] = channels_for(*key)
            if channels:  # nobody could act on a person every allowed channel refuses
                self.due += 1
                self.overdue += at > overdue_at
                yield overdue_at, due_at, candidate.subject_id, candidate, channels


def _escalations(
    repository: Repository, router: Router | None, late: list[FollowUpCandidate]
) -> dict[UUID, str | None]:
    """The backup of each overdue candidate's owner (never the owner themself).

    A router may offer ``needs_record(owner) -> bool``; where it answers False the
    answer depends on the owner alone, so it is asked once per owner and no record
    is read. Otherwise the overdue records are read in batches and passed along.
    """
    if router is None or not late:
        return {}
    needs_record = getattr(router, "needs_record", None)
    by_owner: dict[str | None, str | None] = {}
    backups: dict[UUID, str | None] = {}
    wanted: list[FollowUpCandidate] = []
    for candidate in late:
        owner = candidate.owner
        if needs_record is not None and not needs_record(owner):
            if owner not in by_owner:
                by_owner[owner] = router.backup_for(owner, None)
            backup = by_owner[owner]
            backups[candidate.subject_id] = backup if backup != owner else None
        else:
            wanted.append(candidate)
    for start in range(0, len(wanted), 1000):
        batch = wanted[start : start + 1000]
        records = repository.get_many(c.subject_id for c in batch)
        for candidate in batch:
            record = records.get(candidate.subject_id)
            person = record if isinstance(record, (Lead, Contact)) else None
            backup = router.backup_for(candidate.owner, person)
            backups[candidate.subject_id] = backup if backup != candidate.owner else None
    return backups
