"""Unmerge: a lost race is retried, and nothing to undo is said so (DESIGN.md 4, 9)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from conftest import T0
from leadfunnel import (
    ChangeSet,
    Event,
    Funnel,
    Lead,
    NotFoundError,
)
from leadfunnel.testing import ManualClock

# --- 4. an unmerge that lost a race is retried -----------------------------------------


def test_an_unmerge_that_lost_a_race_to_a_moved_deal_is_retried(
    funnel: Funnel, clock: ManualClock
) -> None:
    leads = [
        funnel.add(Lead(first_name="A", email=f"a{n}@x.example.com", status="raw")) for n in (1, 2)
    ]
    deals = []
    for lead in leads:
        funnel.qualify(lead, force=True)
        deals.append(funnel.set_appointment(lead, appointment_at=T0 + timedelta(days=3)))
    funnel.merge(deals[0].contact_id, deals[1].contact_id)
    repository = funnel.repository
    commit = repository.commit
    moved = T0 + timedelta(days=4)

    def first_loses(changes: ChangeSet) -> list[Event]:
        if changes.remove_merge is not None:
            tries.append(changes)
            if len(tries) == 1:
                # Another request reschedules a deal the merge moved, just before the
                # unmerge's commit: the deal it read is stale.
                Funnel(repository, clock=clock).reschedule(deals[1].id, appointment_at=moved)
        return commit(changes)

    tries: list[ChangeSet] = []
    repository.commit = first_loses  # type: ignore[method-assign]
    try:
        funnel.unmerge(deals[0].contact_id)
    finally:
        repository.commit = commit  # type: ignore[method-assign]
    assert len(tries) == 2
    back = funnel.get_opportunity(deals[1].id)
    assert (back.contact_id, back.appointment_at) == (deals[1].contact_id, moved)


# --- 5. nothing to undo -------------------------------------------------------------------


def test_an_unmerge_with_no_merge_to_undo_says_so(funnel: Funnel) -> None:
    a = funnel.add(Lead(first_name="A", email="a@x.example.com"))
    b = funnel.add(Lead(first_name="B", email="b@x.example.com"))

    def refused(call: Callable[[], Any]) -> str:
        with pytest.raises(NotFoundError) as err:
            call()
        assert isinstance(err.value, LookupError)
        assert err.value.id == a.id
        return str(err.value)

    never = refused(lambda: funnel.unmerge(a))
    assert never.startswith(f"lead {a.id} has no merge to undo")
    assert "check the id" not in never
    assert f"funnel.history({a.id})" in never
    funnel.merge(a, b)
    funnel.unmerge(a)
    assert refused(lambda: funnel.unmerge(a)) == never  # undone already
