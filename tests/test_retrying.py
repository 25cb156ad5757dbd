"""A change that loses a race is retried, each time after a longer, jittered pause."""

from __future__ import annotations

import time
from uuid import uuid4

import pytest

from conftest import T0, person
from leadfunnel import ConcurrencyError, Event, Funnel, InMemoryRepository, Lead, _changes
from leadfunnel._repository import ChangeSet
from leadfunnel.testing import ManualClock


def _lost() -> ConcurrencyError:
    return ConcurrencyError(uuid4(), 1, 2)


def test_a_change_that_loses_races_is_retried_until_it_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    calls = []

    @_changes.retrying
    def change(value: int) -> int:
        calls.append(value)
        if len(calls) <= _changes._RETRIES:
            raise _lost()
        return value * 2

    assert change(21) == 42
    assert calls == [21] * (_changes._RETRIES + 1)
    # Each pause is the doubling step, drawn from half to one and a half times it.
    assert len(pauses) == _changes._RETRIES
    for attempt, pause in enumerate(pauses):
        step = _changes._FIRST_PAUSE * 2**attempt
        assert 0.5 * step <= pause <= 1.5 * step


def test_the_last_lost_race_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: None)
    calls = 0

    @_changes.retrying
    def change() -> None:
        nonlocal calls
        calls += 1
        raise _lost()

    with pytest.raises(ConcurrencyError):
        change()
    assert calls == _changes._RETRIES + 1


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: pytest.fail("no pause"))
    calls = 0

    @_changes.retrying
    def change() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        change()
    assert calls == 1


class _Contended(InMemoryRepository):
    """A store where someone else changes the person just before each of the first
    ``losses`` touches is stored: those commits lose the race."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses

    def _commit(self, changes: ChangeSet) -> list[Event]:
        if changes.touches and self.losses:
            self.losses -= 1
            (checked,) = changes.checks
            raise ConcurrencyError(checked.id, checked.version, checked.version + 1)
        return super()._commit(changes)


def test_a_touch_on_a_person_others_keep_changing_is_stored_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: None)
    repository = _Contended(losses=_changes._RETRIES)
    funnel = Funnel(repository, clock=ManualClock(T0))
    lead = funnel.capture(Lead(**person(1)))
    touch = funnel.touch(lead, "call", "no_answer")
    assert repository.losses == 0
    assert funnel.touches(lead) == [touch]
    assert [e.name for e in funnel.history(lead)] == ["capture", "touch"]
