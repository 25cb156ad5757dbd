"""A clock that only moves when told to."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from .._errors import InvalidArgumentError

__all__ = ["ManualClock"]

#: The keywords ``advance`` takes (those of ``timedelta``).
_UNITS = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds")
_EXAMPLE = "datetime(2026, 1, 5, 9, tzinfo=timezone.utc)"


class ManualClock:
    """A clock for tests: ``now()`` stays at ``start`` until ``advance``\\ d or ``set``.

    ``start`` and ``set``'s ``when`` are aware datetimes; a naive one, a ``date``, a
    string or anything else is an :class:`~leadfunnel.InvalidArgumentError` (a
    ``ValueError``) that says what to give instead, as is a bad ``advance``.

    >>> from datetime import datetime, timezone
    >>> clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc))
    >>> clock.advance(days=2, hours=3).isoformat()
    '2026-03-04T12:00:00+00:00'
    """

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start, "ManualClock(start)")

    def now(self) -> datetime:
        """The clock's current time."""
        return self._now

    def advance(self, *args: Any, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)`` of real time (an hour is an hour, over
        a change of daylight saving too) and return the new time, in the clock's zone.

        The keywords are ``timedelta``'s (``weeks``, ``days``, ``hours``, ``minutes``,
        ``seconds``, ``milliseconds``, ``microseconds``), finite numbers whose sum is not
        negative; ``set()`` moves the clock back.
        """
        if args:
            raise InvalidArgumentError(
                f"advance() takes keywords, not {', '.join(repr(a) for a in args)}: "
                f"advance(hours=2), advance(days=1, minutes=30); the keywords are "
                f"{', '.join(_UNITS)} (a timedelta: advance(seconds=step.total_seconds()))"
            )
        unknown = sorted(set(delta) - set(_UNITS))
        if unknown:
            raise InvalidArgumentError(
                f"advance() does not take {', '.join(unknown)}; its keywords are "
                f"{', '.join(_UNITS)}"
            )
        for name, value in delta.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise InvalidArgumentError(
                    f"advance({name}={value!r}): give a finite number, as in advance({name}=2)"
                )
        too_far = (
            f"advance({_shown(delta)}) moves the clock past the first or last datetime "
            "Python has (0001-01-01, 9999-12-31); give a smaller step, or set() a time"
        )
        try:
            step = timedelta(**delta)
        except OverflowError:
            raise InvalidArgumentError(too_far) from None
        if step < timedelta(0):
            raise InvalidArgumentError(
                f"a clock does not run backwards (advance({_shown(delta)}) is {step}); "
                "give a step of zero or more, or use set() to move the clock back"
            )
        try:
            # In UTC: an aware datetime plus a timedelta moves its wall clock, which in a
            # zone with daylight saving is an hour more or less than the step (and at
            # the second 01:10 of a fall-back night, 50 minutes back for 10 forward).
            try:
                moved = (self._now.astimezone(UTC) + step).astimezone(self._now.tzinfo)
            except ValueError:  # a tzinfo whose dst() is None cannot convert from UTC
                moved = self._now + step
        except OverflowError:
            raise InvalidArgumentError(too_far) from None
        self._now = moved
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (either direction) and return it."""
        self._now = _aware(when, "set(when)")
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


def _shown(delta: dict[str, float]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in delta.items())


def _aware(when: object, where: str) -> datetime:
    if not isinstance(when, datetime):
        raise InvalidArgumentError(
            f"{where} takes an aware datetime, not {type(when).__name__} {when!r}: "
            f"give one such as {_EXAMPLE}"
        )
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidArgumentError(
            f"{where}: {when.isoformat()} has no timezone; give the clock an aware "
            f"datetime, such as {_EXAMPLE} or naive.replace(tzinfo=timezone.utc)"
        )
    return when
