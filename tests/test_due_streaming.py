"""``due(limit=N)`` holds N follow-ups, not every one due, and says the same as the whole
list cut to N; the command's table reads only the people it shows, with the counts of
all (a scale audit found ``due --limit 50`` holding every due person, and the table
reading the full record of each of them: 13 s and 800 MB at 200k leads)."""

from __future__ import annotations

import inspect
from datetime import timedelta

from conftest import T0, person
from leadfunnel import Funnel, Lead, Repository
from leadfunnel._cadence import counted_follow_ups
from leadfunnel.testing import ManualClock


def _listed(funnel: Funnel, clock: ManualClock, n: int) -> None:
    """``n`` leads, a few minutes apart, some touched (their next touch later), some
    owned by ana, one with every channel opted out (never listed)."""
    for i in range(n):
        clock.advance(minutes=7)
        lead = funnel.capture(
            Lead(**person(400 + i, owner="ana" if i % 3 == 0 else "bo", source="web"))
        )
        if i % 4 == 1:
            funnel.touch(lead, "call", "no_answer")
    funnel.capture(
        Lead(**person(499, opt_outs={"call", "email", "sms", "meeting", "social", "direct_mail"}))
    )


def test_the_first_n_are_the_whole_list_cut_to_n_with_the_counts_of_all(
    repository: Repository,
) -> None:
    clock = ManualClock(T0)
    funnel = Funnel(repository, clock=clock)
    _listed(funnel, clock, 23)
    for at in (clock.now(), clock.now() + timedelta(hours=2), clock.now() + timedelta(days=9)):
        for owner in (None, "ana"):
            whole = funnel.due(at=at, owner=owner)
            for n in (0, 1, 5, len(whole), len(whole) + 3):
                assert funnel.due(at=at, owner=owner, limit=n) == whole[:n]
                shown, due, overdue = counted_follow_ups(
                    repository, funnel.cadence, at, owner=owner, limit=n
                )
                assert shown == whole[:n]
                assert (due, overdue) == (len(whole), sum(f.overdue for f in whole))
    # Every lead is due by then, but the one every channel refuses: never listed.
    assert len(funnel.due(at=clock.now() + timedelta(days=9))) == 23


def test_a_sql_store_hands_its_candidates_over_as_they_come(repository: Repository) -> None:
    # A generator: the candidates of a million people are never a list at once.
    found = repository.follow_up_candidates(lead_limit=2, contact_limit=8)
    assert inspect.isgenerator(found) or not hasattr(repository, "engine")
    assert list(found) == []
