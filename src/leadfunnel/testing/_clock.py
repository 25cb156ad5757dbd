"""A clock that only moves when told to."""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["ManualClock"]


class ManualClock:
    """A clock for tests: ``now()`` stays at ``start`` until ``advance``\\ d or ``set``.

    >>> from datetime import datetime, timezone
    >>> clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc))
    >>> clock.advance(days=2, hours=3).isoformat()
    '2026-03-04T12:00:00+00:00'
    """

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)

    def now(self) -> datetime:
        """The clock's current time."""
        return self._now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)`` and return the new time."""
        step = timedelta(**delta)
        if step < timedelta(0):
            raise ValueError(f"a clock does not run backwards ({step}); use set() to rewind")
        self._now += step
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (either direction) and return it."""
        self._now = _aware(when)
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{when.isoformat()} has no timezone; give the clock an aware datetime")
    return when
