"""The event feed (DESIGN.md section 14): positions in commit order, a reader that never
misses an event however writers interleave, and in-process subscribers told after
commit. Runs on every backend in ``conftest``."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from conftest import person
from leadfunnel import DuplicateError, Event, Funnel, Lead, Repository


def test_a_subscriber_hears_each_commit_once_with_its_positioned_events(funnel: Funnel) -> None:
    heard: list[list[Event]] = []
    stop = funnel.subscribe(heard.append)
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)  # one commit, three events
    assert [[e.name for e in batch] for batch in heard] == [
        ["capture"],
        ["qualify"],
        ["convert", "convert", "set_appointment"],
    ]
    flat = [e for batch in heard for e in batch]
    assert flat == funnel.events()  # the same events, positions and all
    assert flat[-1].subject_id == deal.id
    stop()
    funnel.touch(deal.contact_id, "call", "connected")
    assert len(heard) == 3  # unsubscribed


def test_a_refused_change_is_never_reported(funnel: Funnel) -> None:
    heard: list[list[Event]] = []
    lead = funnel.add(Lead(**person(1)))
    funnel.subscribe(heard.append)
    with pytest.raises(DuplicateError):
        funnel.add(Lead(**person(1)))
    funnel.touch(lead, "call", "no_answer")
    assert [[e.name for e in batch] for batch in heard] == [["touch"]]


def test_a_subscriber_that_raises_is_logged_and_undoes_nothing(
    funnel: Funnel, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(events: list[Event]) -> None:
        raise RuntimeError("the search index is down")

    later: list[list[Event]] = []
    funnel.subscribe(broken)
    funnel.subscribe(later.append)
    with caplog.at_level(logging.ERROR, logger="leadfunnel"):
        lead = funnel.capture(Lead(**person(1)))
    assert funnel.get_lead(lead.id).status == "raw"  # the change stands
    assert len(later) == 1  # and the next subscriber was still told
    assert "the search index is down" in caplog.text


def follow(repository: Repository, done: threading.Event, seen: list[Event]) -> None:
    """A reader of the feed: keeps the last position it handled and asks again."""
    last = 0
    while True:
        finished = done.is_set()  # read before the last poll, so nothing is left behind
        batch = repository.events(after=last, limit=50)
        seen.extend(batch)
        if batch:
            last = batch[-1].position or 0
        elif finished:
            return


def test_a_reader_following_the_feed_sees_every_event_once_in_order(
    repository: Repository,
) -> None:
    done = threading.Event()
    seen: list[Event] = []
    errors: list[BaseException] = []
    reader = threading.Thread(target=follow, args=(repository, done, seen))
    reader.start()

    def write(worker: int) -> None:
        try:
            funnel = Funnel(repository)
            for n in range(15):
                lead = funnel.capture(Lead(**person(worker * 100 + n)))
                funnel.touch(lead, "call", "no_answer")
                if n % 3 == 0:
                    funnel.qualify(lead, force=True)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert errors == []
    stored = repository.events(after=0, limit=None)
    assert len(stored) == 4 * (15 * 2 + 5)
    assert [e.id for e in seen] == [e.id for e in stored]  # each once, none missed
    positions: list[Any] = [e.position for e in seen]
    assert positions == sorted(set(positions))
