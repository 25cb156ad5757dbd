"""Clocks: where the funnel gets "now" from.

A clock is any object with a ``now()`` method returning an aware datetime. The default
is the system's UTC clock; tests use :class:`leadfunnel.testing.ManualClock`.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime, time
from typing import Protocol, runtime_checkable

from ._errors import InvalidArgumentError

__all__ = ["Clock", "SystemClock", "require_aware"]


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the time, as an aware datetime."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """The system's clock, in UTC."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


def in_utc(value: datetime) -> datetime:
    """``value`` as the same instant in UTC (``value`` itself when it is in UTC already:
    the usual case, and the cheap one). A naive ``value`` is read as local time."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def require_aware(value: datetime, name: str = "at") -> datetime:
    """``value`` if it carries a timezone and is an instant a store can keep; else an
    :class:`~leadfunnel.InvalidArgumentError` (a ``ValueError``) saying how to fix it."""
    if not isinstance(value, datetime):
        # ISO text from a JSON body or a query string, a date, a timestamp: read it first.
        raise InvalidArgumentError(
            f"{name}={value!r} is not a datetime; pass an aware datetime (ISO text reads "
            "as one with datetime.fromisoformat('2026-12-01T10:00:00+01:00'))"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(
            f"{name}={value.isoformat()} has no timezone; pass an aware datetime "
            "(for example datetime(..., tzinfo=timezone.utc))"
        )
    try:
        return in_utc_range(value)
    except ValueError as exc:
        raise InvalidArgumentError(f"{name}={value.isoformat()} {exc}") from None


def whole_minute_offset(value: datetime | time) -> bool:
    """Whether ``value``'s UTC offset is in whole minutes, or it has none: JSON writes an
    offset so, and one with seconds or microseconds (a zone's local mean time before
    about 1900, New York's -04:56:02) would read back as another instant."""
    if value.tzinfo is UTC:
        return True
    offset = value.utcoffset()
    return offset is None or not (offset.seconds % 60 or offset.microseconds)


def in_utc_range(value: datetime) -> datetime:
    """``value`` (aware) if it falls within 0001-01-01 and 9999-12-31 in UTC, where every
    store keeps its instants; else a ``ValueError``. Only the first and the last day of
    that range can be out of it in another zone (0001-01-01T00:30+01:00 is in year 0
    in UTC). An offset with seconds (a zone's local mean time before about 1900: New
    York's -04:56:02) or microseconds is given in UTC: a document's JSON keeps whole
    minutes only."""
    if not whole_minute_offset(value):
        with suppress(OverflowError):  # (the range check below says so)
            value = value.astimezone(UTC)
    if value.year in (1, 9999) and value.utcoffset():
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError(
                "is outside 0001-01-01 to 9999-12-31 in UTC, the range of instants a "
                "store keeps; give a moment within it"
            ) from None
    return value
