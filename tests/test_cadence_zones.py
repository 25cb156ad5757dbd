"""Times given in a zone with daylight saving (an oracle audit, 2026-11-29): the
in-memory store kept an ``at=`` in its zone, and the cadence's waits were added on that
zone's wall clock, so across a change of clocks a follow-up was due an hour off what
every SQL store said."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conftest import person
from leadfunnel import Funnel, Lead, Repository
from leadfunnel.testing import ManualClock

NEW_YORK = ZoneInfo("America/New_York")  # clocks go forward on 2026-03-08
BERLIN = ZoneInfo("Europe/Berlin")  # and on 2026-03-29


class _ZonedClock:
    """An application's clock that tells the time in its office's zone."""

    def __init__(self, clock: ManualClock, zone: ZoneInfo) -> None:
        self.clock, self.zone = clock, zone

    def now(self) -> datetime:
        return self.clock.now().astimezone(self.zone)


@pytest.mark.parametrize("zone", [NEW_YORK, BERLIN], ids=str)
def test_a_wait_across_a_change_of_clocks_is_counted_in_hours(
    repository: Repository, zone: ZoneInfo
) -> None:
    start = (
        datetime(2026, 3, 7, 16, 0, tzinfo=UTC)
        if zone is NEW_YORK
        else datetime(2026, 3, 28, 16, 0, tzinfo=UTC)
    )
    clock = ManualClock(start)
    funnel = Funnel(repository, clock=clock)
    lead = funnel.capture(Lead(**person(1)))
    touched = start + timedelta(hours=1)
    funnel.touch(lead, "call", "no_answer", at=touched.astimezone(zone))
    clock.set(start + timedelta(days=5))
    [item] = funnel.due()
    assert item.due_at == touched + timedelta(days=2)  # the default second wait
    assert item.overdue_at == touched + timedelta(days=3)
    assert item.due_at.utcoffset() == timedelta(0)  # an instant, as every store gives it
    assert funnel.touches(lead)[0].at == touched


def test_a_clock_in_a_zone_dates_changes_as_instants(repository: Repository) -> None:
    clock = ManualClock(datetime(2026, 3, 7, 16, 0, tzinfo=UTC))
    funnel = Funnel(repository, clock=_ZonedClock(clock, NEW_YORK))
    lead = funnel.capture(Lead(**person(1)))
    clock.advance(hours=1)
    funnel.touch(lead, "call", "no_answer")
    clock.advance(days=5)
    [item] = funnel.due()
    assert item.due_at == datetime(2026, 3, 9, 17, 0, tzinfo=UTC)
    assert funnel.get_lead(lead.id).created_at == datetime(2026, 3, 7, 16, 0, tzinfo=UTC)
    assert funnel.history(lead)[-1].at.utcoffset() == timedelta(0)


def test_a_lead_added_at_a_zoned_time_is_overdue_an_hour_of_instants_later(
    repository: Repository,
) -> None:
    """Added 30 minutes before New York's clocks go forward: its first response is
    overdue an hour later in UTC (on New York's wall clock that hour reads as two)."""
    made = datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK)  # 06:30 UTC
    clock = ManualClock(datetime(2026, 3, 8, 9, 0, tzinfo=UTC))
    funnel = Funnel(repository, clock=clock)
    funnel.add(Lead(**person(1)), at=made)
    [item] = funnel.due()
    assert item.overdue_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert item.overdue_at.astimezone(NEW_YORK).hour == 3  # 01:30 + 1 h, clocks moved
