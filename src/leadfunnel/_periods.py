"""Report periods: reading their bounds, naming them, and finding the one before.

A period is half-open, ``since <= at < until``. On the command line a bound is a date
(``2026-03-02``: the start of that day) or a date-time (``2026-03-02T09:00``, with or
without an offset); a bound without an offset is read in the ``--timezone`` given
(UTC by default). A label names a period the way a reader expects: a period from
midnight to midnight shows the days it covers, the last one included
(``2026-03-02 to 2026-03-08`` for ``until=2026-03-09``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from ._clock import in_utc_range

__all__ = ["month_of", "parse_bound", "period_label", "previous_period", "read_zone"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def month_of(at: datetime) -> str:
    """The UTC month of ``at``, as a report groups by it: ``"2026-03"`` (``"0001-01"``:
    the year always has four digits, as the SQL stores write it)."""
    if at.utcoffset():
        at = at.astimezone(UTC)
    return f"{at.year:04d}-{at.month:02d}"


def read_zone(name: str) -> tzinfo:
    """The time zone named ``name`` (an IANA name such as ``Europe/Paris``, or ``UTC``).

    Raises ``ValueError`` saying what to give instead.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name.strip().upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a time zone; give an IANA name such as Europe/Paris or "
            "America/New_York (or UTC)"
        ) from None


def parse_bound(text: str, zone: tzinfo = UTC) -> datetime:
    """A period bound from ``text``: a date is the start of that day in ``zone``; a
    date-time keeps its own offset, or is read in ``zone`` without one.

    Raises ``ValueError`` with an example of what is accepted.
    """
    value = text.strip()
    try:
        if _DATE.fullmatch(value):
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=zone)
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or a date-time; give e.g. 2026-03-02, "
            "2026-03-02T09:00 or 2026-03-02T09:00:00+01:00"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def _midnight(when: datetime) -> bool:
    return when.time() == time() and when.tzinfo is not None


def _first_of_month(when: datetime) -> bool:
    return _midnight(when) and when.day == 1


def _add_months(when: datetime, months: int) -> datetime:
    index = when.year * 12 + when.month - 1 + months
    return when.replace(year=index // 12, month=index % 12 + 1)


def previous_period(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """The period just before ``since <= at < until``, for a comparison.

    Whole calendar months (both bounds at midnight on the first of a month) give the
    same number of months before (March 2026 -> February 2026); whole days (both at
    midnight) the same number of days before (a week -> the week before); any other
    period one of the same length ending at ``since``. Each bound is read on its own
    wall clock, whatever its tzinfo (Paris March given as offsets, ``+01:00`` to
    ``+02:00``, is whole months), and the period before is counted on the wall clock of
    ``since``, so a week stays Monday to Monday across a change to or from summer time.
    """
    if until <= since:
        raise ValueError(
            f"the period is empty: until ({until.isoformat()}) is not after "
            f"since ({since.isoformat()})"
        )
    # On the bounds' own wall clocks: with two tzinfo objects (two offsets, or
    # timezone.utc and ZoneInfo("UTC")) Python would subtract the instants instead.
    wall = until.replace(tzinfo=None) - since.replace(tzinfo=None)
    months = (until.year - since.year) * 12 + until.month - since.month
    try:
        if _first_of_month(since) and _first_of_month(until) and months > 0:
            start = _add_months(since, -months)
        elif _midnight(since) and _midnight(until) and wall > timedelta(0):
            start = since - wall
        else:
            start = since - (until - since)
        in_utc_range(start)  # year 0 on the wall clock raises above, in UTC here
    except (ValueError, OverflowError):
        raise ValueError(
            f"no period of the same length comes before since ({since.isoformat()}): it "
            "would start before 0001-01-01; compare a later period"
        ) from None
    return start, since


def _zone_name(when: datetime) -> str:
    name = when.tzname() or ""
    return "UTC" if name in ("UTC", "UTC+00:00") else name


def _moment(when: datetime) -> str:
    # Not strftime: its %Y leaves a year before 1000 unpadded on some platforms ("1-01-01").
    text = f"{when.year:04d}-{when.month:02d}-{when.day:02d} {when.hour:02d}:{when.minute:02d}"
    return text + (f":{when.second:02d}" if when.second else "")


def _in_zone_of(when: datetime | None, bound: datetime | None) -> datetime | None:
    """``when`` on the wall clock of ``bound``'s zone (the period's), if there is one;
    as it is where that wall clock would be off the calendar (0001-01-01 00:00 UTC is
    still the year 0 in New York)."""
    if when is None or bound is None or bound.tzinfo is None:
        return when
    try:
        return when.astimezone(bound.tzinfo)
    except (OverflowError, ValueError):
        return when


def _calendar_start(when: datetime) -> bool:
    """Whether ``when`` is at (or, on a wall clock ahead of UTC, before) the calendar's
    first instant, 0001-01-01 00:00 UTC: nothing can come before it."""
    offset = when.utcoffset()
    return offset is not None and when.replace(tzinfo=None) - datetime.min <= offset


def period_label(
    since: datetime | None,
    until: datetime | None,
    *,
    first: datetime | None = None,
    as_of: datetime | None = None,
    first_what: str = "first lead",
) -> str:
    """A period as a reader expects it: ``2026-03-02 to 2026-03-08`` (the days covered,
    both included) when the bounds fall on midnight, with the zone's abbreviation when
    it is not UTC (``2026-11-10 (CST)``: one day), else the moments with their zone
    (``2026-03-02 09:00 UTC up to 2026-03-09 09:00 UTC``, the end excluded).

    An open start shows ``first`` (the day the data starts, named ``first_what``), an
    open end ``as_of`` (the day the report was made); without them, ``the start`` and
    ``now``; both on the wall clock of the other bound's zone. A period that cannot
    hold anything says so rather than read backwards: ``until`` not after ``since``
    (``an empty period at 2026-03-02 00:00 UTC``), an end before the data starts
    (``up to 2025-12-31, before the first lead (2026-08-31)``), a start after the
    report was made (``from 2027-01-01, after today (2026-11-29)``).
    """
    if since is None and until is None and first is None and as_of is None:
        return "all time"
    if since is not None and until is not None and until <= since:
        if until == since:
            return f"an empty period at {_moment(since)} {_zone_name(since)}"
        return (
            f"an empty period: {_moment(until)} {_zone_name(until)} is before "
            f"{_moment(since)} {_zone_name(since)}"
        )
    if since is None and until is not None and _calendar_start(until):
        return (
            f"an empty period: nothing comes before {_moment(until)} {_zone_name(until)}, "
            "the start of the calendar"
        )
    first = _in_zone_of(first, until)
    as_of = _in_zone_of(as_of, since)
    if first is not None and as_of is not None and first > as_of:
        first = None  # a clock set back: the data cannot start after the report
    # Midnight on the calendar's first day ends no day: it has no day before it to show
    # (nor can its day be reached by going back one), so such a period shows moments.
    days = (since is None or _midnight(since)) and (
        until is None or (_midnight(until) and until.date() > date.min)
    )
    # Both bounds' zones when they differ: a period across a change of daylight saving
    # time starts in one (CST) and ends in the other (CDT).
    zones = dict.fromkeys(_zone_name(b) for b in (since, until) if b is not None)
    zone = "/".join(zones) or "UTC"
    suffix = "" if zone == "UTC" else f" ({zone})"
    if days:
        last = None if until is None else (until - timedelta(days=1)).date().isoformat()
        if since is None and until is not None and first is not None and first >= until:
            return f"up to {last}{suffix}, before the {first_what} ({first.date().isoformat()})"
        if until is None and since is not None and as_of is not None and as_of <= since:
            return f"from {since.date().isoformat()}{suffix}, after today ({as_of.date()})"
        start = (
            since.date().isoformat()
            if since is not None
            else (f"{first.date().isoformat()} ({first_what})" if first else "the start")
        )
        if last is None and as_of is not None:  # "(today, CST)", not "(today) (CST)"
            today = f" (today{suffix.replace(' (', ', ')}" if suffix else " (today)"
            if since is not None and since.date() == as_of.date():
                return f"{start}{today}"
            return f"{start} to {as_of.date().isoformat()}{today}"
        if since is not None and last == since.date().isoformat():
            return f"{start}{suffix}"
        return f"{start} to {last or 'now'}{suffix}"
    if since is None and until is not None and first is not None and first >= until:
        return (
            f"up to {_moment(until)} {_zone_name(until)}, before the {first_what} "
            f"({_moment(first)} {_zone_name(first)})"
        )
    if until is None and since is not None and as_of is not None and as_of <= since:
        return (
            f"from {_moment(since)} {_zone_name(since)}, after now "
            f"({_moment(as_of)} {_zone_name(as_of)})"
        )
    start = (
        f"{_moment(since)} {_zone_name(since)}"
        if since is not None
        else (f"{_moment(first)} {_zone_name(first)} ({first_what})" if first else "the start")
    )
    end = (
        f"{_moment(until)} {_zone_name(until)}"
        if until is not None
        else (f"{_moment(as_of)} {_zone_name(as_of)} (now)" if as_of else "now")
    )
    return f"{start} up to {end}"
