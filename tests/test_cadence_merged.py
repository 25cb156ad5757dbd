"""When a lead that merges took in entered its cadence (an oracle audit, 2026-11-29).
A merge moves the other record's history, its arrival at raw included, to the kept
lead: the cadence took the latest arrival, the other record's, as the lead's, so a
lead disqualified and qualified again kept counting its drip e-mails (a call was then
refused), and a raw lead lost the touches logged before the other record arrived. The
person entered the cadence at the first arrival."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import person
from leadfunnel import Funnel, Lead, Repository
from leadfunnel.testing import ManualClock


def _funnel(repository: Repository) -> tuple[Funnel, ManualClock]:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    return Funnel(repository, clock=clock), clock


def test_a_lead_disqualified_before_a_merge_and_qualified_again_starts_afresh(
    repository: Repository,
) -> None:
    funnel, clock = _funnel(repository)
    keep = funnel.capture(Lead(**person(1, first_name="Pat", last_name="Lee")))
    clock.advance(hours=1)
    funnel.disqualify(keep)
    clock.advance(hours=1)
    other = funnel.capture(
        Lead(first_name="Pat", last_name="Lee", email="pat.lee@acme-it1.example.com")
    )
    clock.advance(hours=1)
    funnel.merge(keep, other)
    for _ in range(2):
        clock.advance(days=1)
        funnel.touch(keep, "email", "no_answer")  # the drip, while unqualified
    clock.advance(days=5)
    funnel.qualify(keep, force=True)
    clock.advance(hours=2)
    [item] = [i for i in funnel.due() if i.subject_id == keep.id]
    assert (item.touch_number, item.overdue) == (1, True)
    funnel.touch(keep, "call", "no_answer")  # not on drip: a call is allowed


def test_a_raw_lead_keeps_the_touches_logged_before_the_other_record_arrived(
    repository: Repository,
) -> None:
    funnel, clock = _funnel(repository)
    keep = funnel.capture(Lead(**person(1, first_name="Pat", last_name="Lee")))
    clock.advance(hours=1)
    funnel.touch(keep, "call", "no_answer")
    clock.advance(hours=1)
    other = funnel.capture(
        Lead(first_name="Pat", last_name="Lee", email="pat.lee@acme-it1.example.com")
    )
    clock.advance(hours=1)
    funnel.merge(keep, other)
    funnel.qualify(keep, force=True)
    clock.advance(days=3)
    [item] = [i for i in funnel.due() if i.subject_id == keep.id]
    assert item.touch_number == 2  # the call before the merge counts
    funnel.touch(keep, "call", "no_answer")
    clock.advance(days=30)
    assert [i for i in funnel.due() if i.subject_id == keep.id] == []  # on drip now
