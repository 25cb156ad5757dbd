"""Clocks: where the funnel gets "now" from.

A clock is any object with a ``now()`` method returning an aware datetime. The default
is the system's UTC clock; tests use :class:`leadfunnel.testing.ManualClock`.
"""

from __future__ import annotations

from datetime import UTC, datetime
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


def require_aware(value: datetime, name: str = "at") -> datetime:
    """``value`` if it carries a timezone; else an
    :class:`~leadfunnel.InvalidArgumentError` (a ``ValueError``) saying how to fix it."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(
            f"{name}={value.isoformat()} has no timezone; pass an aware datetime "
            "(for example datetime(..., tzinfo=timezone.utc))"
        )
    return value
