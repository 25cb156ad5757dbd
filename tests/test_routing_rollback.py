"""Routing counts only what is stored: a lead whose change rolls back (a transaction
block that raises, a commit the store refuses, an import row that turns out to repeat
someone another writer stored a moment before) gives its owner's capacity and turn
back (DESIGN 6: capacity is the most leads an owner is *given* per day)."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from conftest import T0, person
from leadfunnel import (
    ChangeSet,
    DuplicateError,
    Event,
    Funnel,
    Lead,
    OwnerGroup,
    Repository,
    RoutingRules,
)
from leadfunnel._repository import when_stored
from leadfunnel.testing import ManualClock

_T = TypeVar("_T")


def lead(n: int, **fields: Any) -> Lead:
    return Lead(**person(n, **fields))


class Failed(Exception):
    """The request a transaction block serves failed."""


def rolled_back(repository: Repository, body: Callable[[], _T]) -> _T:
    """What ``body`` returned in a transaction block that then failed (rolled back)."""
    returned: list[_T] = []

    def block() -> None:
        with repository.transaction():
            returned.append(body())
            raise Failed

    with pytest.raises(Failed):
        block()
    return returned[0]


def routed(
    repository: Repository, owners: list[str], **options: Any
) -> tuple[Funnel, RoutingRules]:
    router = RoutingRules([OwnerGroup("g", owners, **options)], default="g")
    funnel = Funnel(repository, clock=ManualClock(T0), router=router)
    router.attach(funnel)
    return funnel, router


def stored_owners(funnel: Funnel) -> Counter[str | None]:
    return Counter(x.owner for x in funnel.leads(limit=None))


def before_commit(repository: Repository, event: str, meddle: Callable[[], object]) -> list[int]:
    """Run ``meddle`` (another writer's change) once, just before the first commit with
    an ``event`` event: that commit was decided on the store as it was before."""
    real = repository.commit
    done: list[int] = []

    def commit(changes: ChangeSet) -> list[Event]:
        if not done and any(e.name == event for e in changes.events):
            done.append(1)
            meddle()
        return real(changes)

    repository.commit = commit  # type: ignore[method-assign]
    return done


def other_writer(repository: Repository, *numbers: int) -> Callable[[], None]:
    """Another process storing the people ``numbers`` (it routes nobody)."""

    def store() -> None:
        other = Funnel(repository, clock=ManualClock(T0))
        for n in numbers:
            other.capture(lead(n))

    return store


def test_a_rolled_back_transaction_gives_the_capacity_back(repository: Repository) -> None:
    funnel, router = routed(repository, ["ana"], capacity={"ana": 2})
    assert rolled_back(repository, lambda: funnel.capture(lead(1)).owner) == "ana"
    assert router.assigned_today() == {}
    assert [funnel.capture(lead(n)).owner for n in (2, 3, 4)] == ["ana", "ana", None]
    assert router.assigned_today() == {"ana": 2}
    assert stored_owners(funnel) == {"ana": 2, None: 1}


def test_a_lead_counts_once_the_outermost_transaction_commits(repository: Repository) -> None:
    funnel, router = routed(repository, ["ana", "ben"], capacity={"ana": 1})
    with funnel.transaction():
        assert funnel.capture(lead(1)).owner == "ana"
        assert router.assigned_today() == {}  # not stored yet
        # ...but ana's place is held: the next lead cannot overfill her.
        assert funnel.capture(lead(2)).owner == "ben"
    assert router.assigned_today() == {"ana": 1, "ben": 1}


def test_a_rolled_back_lead_gives_its_turn_back(repository: Repository) -> None:
    funnel, router = routed(repository, ["ana", "ben", "cal"], weights={"ana": 2})
    owners = rolled_back(repository, lambda: [funnel.capture(lead(n)).owner for n in (1, 2)])
    assert owners == ["ana", "ben"]
    # The same turns again, as if the block had never run (ana weighs 2: a, b, c, a).
    owners = [funnel.capture(lead(n)).owner for n in range(3, 11)]
    assert owners == ["ana", "ben", "cal", "ana"] * 2
    assert router.assigned_today() == {"ana": 4, "ben": 2, "cal": 2}


def test_a_savepoint_rolled_back_gives_back_only_its_own_leads(repository: Repository) -> None:
    funnel, router = routed(repository, ["ana", "ben"], capacity={"ana": 1, "ben": 1})
    with funnel.transaction():
        assert funnel.capture(lead(1)).owner == "ana"
        assert rolled_back(repository, lambda: funnel.capture(lead(2)).owner) == "ben"
        assert funnel.capture(lead(3)).owner == "ben"  # his place and turn came back
    assert router.assigned_today() == {"ana": 1, "ben": 1}
    assert stored_owners(funnel) == {"ana": 1, "ben": 1}


def test_an_add_the_store_refuses_gives_the_capacity_and_turn_back(
    repository: Repository,
) -> None:
    funnel, router = routed(repository, ["ana", "ben"], capacity={"ana": 1})
    raced = before_commit(repository, "add", other_writer(repository, 1))
    with pytest.raises(DuplicateError):
        funnel.add(lead(1))
    assert raced
    assert router.assigned_today() == {}
    assert funnel.capture(lead(2)).owner == "ana"
    assert router.assigned_today() == {"ana": 1}


def test_a_capture_that_finds_the_person_stored_on_retry_spends_nothing(
    repository: Repository,
) -> None:
    funnel, router = routed(repository, ["ana", "ben"], capacity={"ana": 1})
    raced = before_commit(repository, "capture", other_writer(repository, 1))
    captured = funnel.capture_result(lead(1))
    assert raced
    assert not captured.new
    assert captured.record.owner is None  # the other writer's, routed by nobody
    assert router.assigned_today() == {}
    assert funnel.capture(lead(2)).owner == "ana"


def test_import_rows_another_writer_stored_meanwhile_take_no_turn_or_capacity(
    repository: Repository,
) -> None:
    funnel, router = routed(repository, ["ana", "ben"], capacity={"ana": 2, "ben": 2})
    raced = before_commit(repository, "import", other_writer(repository, 2, 3))
    report = funnel.import_leads([person(n) for n in (1, 2, 3, 4)])
    assert raced
    assert [i.row for i in report.duplicates] == [2, 3]
    # Rows 1 and 4 are routed as if rows 2 and 3 had never come.
    assert [funnel.get_lead(i).owner for i in report.added] == ["ana", "ben"]
    assert router.assigned_today() == {"ana": 1, "ben": 1}
    assert [funnel.capture(lead(n)).owner for n in (5, 6, 7)] == ["ana", "ben", None]


def test_an_import_in_a_rolled_back_transaction_gives_everything_back(
    repository: Repository,
) -> None:
    funnel, router = routed(repository, ["ana", "ben"], capacity={"ana": 2, "ben": 2})
    report = rolled_back(repository, lambda: funnel.import_leads([person(n) for n in range(1, 6)]))
    assert len(report.added) == 5
    assert funnel.count("lead") == 0
    assert router.assigned_today() == {}
    assert [funnel.capture(lead(n)).owner for n in range(6, 11)] == [
        "ana",
        "ben",
        "ana",
        "ben",
        None,
    ]


def test_a_lead_given_an_owner_counts_only_once_stored(repository: Repository) -> None:
    funnel, router = routed(repository, ["ana", "ben"], capacity={"ana": 1})
    rolled_back(repository, lambda: funnel.add(lead(1, owner="ana")))
    rolled_back(repository, lambda: funnel.import_leads([person(2, owner="ana")]))
    assert router.assigned_today() == {}
    funnel.add(lead(3, owner="ana"))
    assert router.assigned_today() == {"ana": 1}
    assert funnel.capture(lead(4)).owner == "ben"  # ana is full


def test_threads_never_overfill_an_owner_and_count_only_what_they_stored(
    repository: Repository,
) -> None:
    """Captures in eight threads, half of them in blocks that fail: no owner gets more
    than their capacity, and the counts are the leads stored for each owner."""
    funnel, router = routed(repository, ["ana", "ben"], capacity={"ana": 5, "ben": 5})
    assert funnel.capture(lead(99)).owner == "ana"  # one before the threads, counted too
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(3):
                n = 10 * t + i
                if (t + i) % 2:
                    try:
                        with funnel.transaction():
                            funnel.capture(lead(n))
                            raise Failed
                    except Failed:
                        pass
                else:
                    funnel.capture(lead(n))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = stored_owners(funnel)
    assert sum(stored.values()) == 13
    assert stored["ana"] <= 5
    assert stored["ben"] <= 5
    assert router.assigned_today() == {o: n for o, n in stored.items() if o is not None}


def test_the_store_settles_what_it_was_asked_to(repository: Repository) -> None:
    """``when_stored``: told True once the insert is kept (inside a transaction, when the
    outermost one commits), False when its commit fails or a transaction rolls back."""
    told: dict[str, bool] = {}
    numbers = itertools.count(1)

    def new(name: str, n: int | None = None) -> ChangeSet:
        data = person(next(numbers) if n is None else n)
        record = Lead(**data, version=1, created_at=T0, updated_at=T0)
        when_stored(record.id, lambda stored: told.__setitem__(name, stored))
        return ChangeSet(inserts=[record])

    repository.commit(new("alone"))
    assert told == {"alone": True}
    with repository.transaction():
        repository.commit(new("in the block"))
        assert "in the block" not in told  # not known until the block ends
        rolled_back(repository, lambda: repository.commit(new("in the savepoint")))
        assert told["in the savepoint"] is False
    assert told["in the block"] is True
    rolled_back(repository, lambda: repository.commit(new("rolled back")))
    assert told["rolled back"] is False
    with pytest.raises(DuplicateError):
        repository.commit(new("refused", 1))  # the e-mail of the first
    assert told["refused"] is False
    unrelated = Lead(**person(99), version=1, created_at=T0, updated_at=T0)
    repository.commit(ChangeSet(inserts=[unrelated]))
    assert set(told) == {"alone", "in the block", "in the savepoint", "rolled back", "refused"}


def test_reserve_and_settle_on_the_router_alone() -> None:
    clock = ManualClock(T0)
    router = RoutingRules(
        [OwnerGroup("g", ["ana", "ben"], capacity={"ana": 1})],
        default="g",
        clock=clock,
    )
    owner, settle = router.reserve(lead(1))
    assert owner == "ana"
    assert settle is not None
    assert router.assigned_today() == {}
    assert router.reserve(lead(2))[0] == "ben"  # ana's place is held
    settle(False)
    settle(True)  # a second call changes nothing
    assert router.assigned_today() == {}
    owner, settle = router.reserve(lead(3))
    assert owner == "ana"
    assert settle is not None
    settle(True)
    assert router.assigned_today() == {"ana": 1}
    # A lead held over midnight is not counted on the new day.
    owner, late = router.reserve(lead(4))
    assert owner == "ben"
    assert late is not None
    clock.advance(days=1)
    late(True)
    assert router.assigned_today() == {}
    # assign() alone (no store) counts at once, as before.
    owner = router.assign(lead(5))
    assert owner is not None
    assert router.assigned_today() == {owner: 1}


@pytest.mark.parametrize("how", ["add", "capture", "import"])
def test_a_refusal_before_the_commit_gives_the_owner_s_place_back(
    repository: Repository, how: str
) -> None:
    """A reason the event cannot hold (a NUL) is refused after routing and before the
    commit: the owner's place was held for the rest of the day (a review, 2026-11-29)."""
    funnel, router = routed(repository, ["ana"], capacity={"ana": 1})
    bad = "call\x00back"
    if how == "import":
        report = funnel.import_leads([person(1)], reason=bad)
        assert len(report.rejected) == 1
    else:
        with pytest.raises(ValueError, match="control character"):
            getattr(funnel, how)(lead(1), reason=bad)
    assert router.assigned_today() == {}
    assert funnel.add(lead(2)).owner == "ana"  # the place is free again
    assert router.assigned_today() == {"ana": 1}
