"""Qualifying a raw lead keeps its place in the cadence (an oracle audit, 2026-11-29):
its count and its schedule. The schedule used to restart at the qualification, so an
overdue lead stopped being overdue, and its escalation was lost, the moment someone
qualified it."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import person
from leadfunnel import Funnel, Lead, OwnerGroup, Repository, RoutingRules
from leadfunnel.testing import ManualClock


def test_an_overdue_lead_stays_overdue_once_qualified(repository: Repository) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    router = RoutingRules([OwnerGroup("inbound", ["ana"], backup="carla")], default="inbound")
    funnel = Funnel(repository, clock=clock, router=router)
    lead = funnel.capture(Lead(**person(1)))
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    funnel.touch(lead, "call", "no_answer")
    clock.set(datetime(2026, 3, 9, 9, 0, tzinfo=UTC))
    [before] = funnel.due()
    funnel.qualify(lead, force=True)
    [after] = funnel.due()
    assert (after.touch_number, after.due_at, after.overdue, after.escalated_to) == (
        2,
        datetime(2026, 3, 4, 10, 0, tzinfo=UTC),
        True,
        "carla",
    )
    assert (before.due_at, before.overdue_at) == (after.due_at, after.overdue_at)


def test_a_first_response_never_given_stays_overdue_once_qualified(
    repository: Repository,
) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    funnel = Funnel(repository, clock=clock)
    lead = funnel.capture(Lead(**person(1)))
    clock.set(datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
    funnel.qualify(lead, force=True)
    [item] = funnel.due()
    assert (item.touch_number, item.due_at, item.overdue_at, item.overdue) == (
        1,
        datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        True,
    )


def test_a_lead_qualified_again_after_it_was_disqualified_starts_afresh(
    repository: Repository,
) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    funnel = Funnel(repository, clock=clock)
    lead = funnel.capture(Lead(**person(1)))
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    funnel.touch(lead, "call", "no_answer")
    funnel.disqualify(lead)
    clock.set(datetime(2026, 3, 9, 9, 0, tzinfo=UTC))
    funnel.qualify(lead, force=True)
    [item] = funnel.due()
    assert (item.touch_number, item.due_at, item.overdue) == (1, clock.now(), False)
