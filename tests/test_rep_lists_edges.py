"""Rep lists at the edges: the ends of the calendar, a list for a past moment, and
argument errors that are the library's own."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import person
from leadfunnel import Funnel, InvalidArgumentError, Lead, LeadFunnelError, Repository
from leadfunnel.testing import ManualClock

FIRST = datetime(1, 1, 1, tzinfo=UTC)
LAST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def _qualified_at(repository: Repository, when: datetime) -> Funnel:
    funnel = Funnel(repository, clock=ManualClock(when))
    funnel.qualify(funnel.add(Lead(**person(1))), force=True)
    return funnel


@pytest.mark.parametrize(
    ("when", "asked", "listed"),
    [
        # "no upper limit" written as a large number of days
        (datetime(2024, 6, 1, tzinfo=UTC), {"max_age_days": 1_000_000}, 1),
        (datetime(2024, 6, 1, tzinfo=UTC), {"max_age_days": 10**12}, 1),
        # older than the calendar: nobody
        (datetime(2024, 6, 1, tzinfo=UTC), {"min_age_days": 10**6}, 0),
        (datetime(2024, 6, 1, tzinfo=UTC), {"min_age_days": 10**12}, 0),
        # a list for the last moment of the calendar, and for the first
        (LAST, {"at": LAST, "min_age_days": 0}, 1),
        (LAST, {"at": LAST, "max_age_days": 0}, 1),
        (FIRST, {"at": FIRST, "max_age_days": 0}, 1),
        (FIRST, {"at": FIRST, "min_age_days": 1}, 0),
    ],
)
def test_age_filters_at_the_ends_of_the_calendar_never_crash(
    repository: Repository, when: datetime, asked: dict[str, object], listed: int
) -> None:
    """DESIGN 12: datetimes anywhere in 0001-9999 never crash a read. A bound past an
    end of the calendar leaves nobody (older than the calendar) or bounds nothing."""
    funnel = _qualified_at(repository, when)
    pulled = funnel.rep_list("never_booked", **asked)  # type: ignore[arg-type]
    assert len(pulled) == listed
    assert all(item.age_days >= 0 for item in pulled)


def test_a_list_for_a_past_moment_leaves_out_who_got_there_later(
    repository: Repository,
) -> None:
    """A list is for its ``at``: a lead qualified after it is not on it, and a filter
    every item passes (min_age_days=0) changes nothing."""
    clock = ManualClock(datetime(2024, 6, 1, 12, tzinfo=UTC))
    funnel = Funnel(repository, clock=clock)
    early = funnel.add(Lead(**person(1)))
    funnel.qualify(early, force=True)
    clock.advance(days=3)
    funnel.qualify(funnel.add(Lead(**person(2))), force=True)
    yesterday = clock.now() - timedelta(days=1)
    for asked in ({}, {"min_age_days": 0}, {"max_age_days": 10}):
        pulled = funnel.rep_list("never_booked", at=yesterday, **asked)  # type: ignore[arg-type]
        assert [item.id for item in pulled] == [early.id], asked
        assert [item.age_days for item in pulled] == [2]
    assert len(funnel.rep_list("never_booked")) == 2


@pytest.mark.parametrize(
    "asked",
    [{"limit": -1}, {"limit": 2.5}, {"min_age_days": -1}, {"max_age_days": True}],
)
def test_bad_arguments_are_the_librarys_own_errors(
    repository: Repository, asked: dict[str, object]
) -> None:
    """DESIGN 14: argument errors are InvalidArgumentError (a LeadFunnelError and a
    ValueError), naming the argument and what to give."""
    funnel = Funnel(repository)
    with pytest.raises(LeadFunnelError) as caught:
        funnel.rep_list("not_sat", **asked)  # type: ignore[arg-type]
    assert isinstance(caught.value, InvalidArgumentError)
    name, value = next(iter(asked.items()))
    assert f"{name}={value!r}: give a whole number" in str(caught.value)
    with pytest.raises(InvalidArgumentError, match="increasing whole days"):
        funnel.rep_list("not_sat").by_age([30, 7])


def test_a_person_without_a_name_is_null_in_json_and_empty_in_csv(
    repository: Repository,
) -> None:
    """As due's JSON and the other missing values: null, not an empty string."""
    funnel = Funnel(repository, clock=ManualClock(datetime(2024, 6, 1, tzinfo=UTC)))
    nameless = funnel.add(Lead(email="who@x.example.com"))
    funnel.qualify(nameless, force=True)
    pulled = funnel.rep_list("never_booked")
    assert pulled.to_dict()["items"][0]["name"] is None
    header, row = pulled.to_csv().splitlines()
    assert row.split(",")[header.split(",").index("name")] == ""


def test_a_list_is_built_with_the_cyclic_collector_paused_and_resumed_after(
    repository: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list without a limit is every such person's record at once: the collector
    would rescan them for nothing (2.4 s against 1.6 s for 52k people)."""
    funnel = _qualified_at(repository, datetime(2024, 6, 1, tzinfo=UTC))
    seen: list[bool] = []
    reading = repository.rep_list

    def rep_list(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return reading(*args, **kwargs)

    monkeypatch.setattr(repository, "rep_list", rep_list)
    assert gc.isenabled()
    assert len(funnel.rep_list("never_booked").items) == 1
    assert seen == [False]
    assert gc.isenabled()
