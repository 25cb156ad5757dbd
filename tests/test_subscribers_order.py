"""Subscribers (DESIGN.md section 14): each hears one thread's commits in position order,
even when subscribers commit themselves; each stop() removes its own registration; bad
callbacks are refused at subscribe time; a failure is logged with what to read again.
Also the in-memory store's reads, which wait for an open transaction as a database reader
never sees uncommitted rows, and the feed's answer to an ``after`` beyond every position.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import person
from leadfunnel import (
    Contact,
    Event,
    Funnel,
    InMemoryRepository,
    InvalidArgumentError,
    Lead,
    NotFoundError,
)

# --- order ----------------------------------------------------------------------------


def test_a_subscriber_that_commits_leaves_the_others_hearing_commits_in_order(
    funnel: Funnel,
) -> None:
    def automation(events: list[Event]) -> None:  # "when a lead qualifies, log a touch"
        for event in events:
            if event.name == "qualify":
                funnel.touch(event.subject_id, "email", "replied", note="welcome mail")

    heard: list[tuple[int, str]] = []
    funnel.subscribe(automation)
    funnel.subscribe(lambda events: heard.extend((e.position, e.name) for e in events))
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    assert heard == [(e.position, e.name) for e in funnel.events()]
    assert [name for _, name in heard] == ["capture", "qualify", "touch"]


# One entry a commit, by the order in which the subscribers hear them: which subscriber
# answers it, with how many commits of its own, and whether in one transaction().
_PLANS = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 2), st.booleans()), min_size=1, max_size=8
)


@settings(max_examples=60, deadline=None)
@given(plan=_PLANS)
def test_every_subscriber_hears_every_commit_once_in_position_order(
    plan: list[tuple[int, int, bool]],
) -> None:
    funnel = Funnel()
    lead = funnel.capture(Lead(**person(1)))
    start = funnel.events()[-1].position
    heard: list[list[list[int]]] = [[], [], []]

    def subscriber(index: int) -> Callable[[list[Event]], None]:
        def hear(events: list[Event]) -> None:
            heard[index].append([e.position for e in events])
            ordinal = len(heard[index]) - 1
            if ordinal >= len(plan) or plan[ordinal][0] != index:
                return
            _, commits, together = plan[ordinal]
            if together:
                with funnel.transaction():
                    for _ in range(commits):
                        funnel.touch(lead, "email", "replied")
            else:
                for _ in range(commits):
                    funnel.touch(lead, "email", "replied")

        return hear

    for index in range(3):
        funnel.subscribe(subscriber(index))
    funnel.touch(lead, "email", "replied")
    stored = [e.position for e in funnel.events(after=start, limit=None)]
    for batches in heard:
        assert [p for batch in batches for p in batch] == stored  # each once, in order
    assert heard[0] == heard[1] == heard[2]  # in the same commits


def test_each_thread_s_commits_are_heard_in_position_order() -> None:
    funnel = Funnel()
    leads = [funnel.capture(Lead(**person(n))) for n in range(4)]
    heard: list[tuple[int, int]] = []

    def automation(events: list[Event]) -> None:
        for event in events:
            if event.name == "touch" and len(funnel.touches(event.subject_id)) % 3 == 1:
                funnel.touch(event.subject_id, "email", "replied")

    def relay(events: list[Event]) -> None:
        heard.extend((threading.get_ident(), e.position) for e in events)

    funnel.subscribe(automation)
    funnel.subscribe(relay)

    def work(lead: Lead) -> None:
        for _ in range(10):
            funnel.touch(lead, "email", "replied")

    threads = [threading.Thread(target=work, args=(lead,)) for lead in leads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ident in {thread.ident for thread in threads}:
        positions = [p for i, p in heard if i == ident]
        assert positions == sorted(positions)
    assert sorted(p for _, p in heard) == [e.position for e in funnel.events()][4:]


def test_a_subscription_stopped_during_a_round_is_not_called_again() -> None:
    funnel = Funnel()
    heard: list[int] = []
    stops: list[Callable[[], None]] = []
    funnel.subscribe(lambda events: stops[0]())
    stops.append(funnel.subscribe(lambda events: heard.append(len(events))))
    funnel.capture(Lead(**person(1)))
    assert heard == []


# --- registrations ----------------------------------------------------------------------


def test_what_one_subscriber_writes_into_an_events_data_the_next_never_sees() -> None:
    """An event is frozen but its ``data`` is a dict: each subscriber gets its own
    copies, so one that redacts or annotates them changes nothing for the others (nor
    the feed)."""
    funnel = Funnel()
    seen: list[dict[str, Any]] = []

    def redact(events: list[Event]) -> None:
        for event in events:
            event.data.clear()
            event.data["redacted"] = True

    def read(events: list[Event]) -> None:
        seen.extend(dict(event.data) for event in events)

    funnel.subscribe(redact)
    funnel.subscribe(read)
    lead = funnel.capture(Lead(**person(1)))
    funnel.touch(lead, "call", "interested")
    assert len(seen) == 2
    assert all("redacted" not in data for data in seen), seen
    assert seen == [event.data for event in funnel.events()]


def test_each_stop_removes_its_own_registration_only() -> None:
    funnel = Funnel()
    heard: list[int] = []

    def hook(events: list[Event]) -> None:
        heard.append(len(events))

    first = funnel.subscribe(hook)
    second = funnel.subscribe(hook)
    funnel.capture(Lead(**person(1)))
    assert heard == [1, 1]  # registered twice, called twice
    first()
    funnel.capture(Lead(**person(2)))
    assert heard == [1, 1, 1]
    first()  # again: nothing more to remove
    funnel.capture(Lead(**person(3)))
    assert heard == [1, 1, 1, 1]
    second()
    funnel.capture(Lead(**person(4)))
    assert heard == [1, 1, 1, 1]


async def _post_webhook(events: list[Event]) -> None:
    pass


async def _stream(events: list[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event


class _AsyncRelay:
    async def __call__(self, events: list[Event]) -> None:
        pass


def _generator(events: list[Event]) -> Iterator[Event]:
    yield from events  # never run: calling it only makes a generator


class _Relay:
    def __call__(self, events: list[Event]) -> None:
        pass


@pytest.mark.parametrize(
    ("callback", "says"),
    [
        (None, "pass a function"),
        (42, "pass a function"),
        (_post_webhook, "async function"),
        (functools.partial(_post_webhook), "async function"),
        (_stream, "async function"),
        (_AsyncRelay(), "async function"),
        (_generator, "generator function"),
    ],
)
def test_a_callback_that_would_never_run_is_refused(callback: Any, says: str) -> None:
    funnel = Funnel()
    with pytest.raises(InvalidArgumentError, match=says) as raised:
        funnel.subscribe(callback)
    assert isinstance(raised.value, ValueError)
    funnel.capture(Lead(**person(1)))  # and nothing was registered


def test_plain_callables_are_accepted() -> None:
    funnel = Funnel()
    heard: list[Event] = []
    for callback in (heard.extend, _Relay(), lambda events: None, functools.partial(heard.extend)):
        funnel.subscribe(callback)
    funnel.capture(Lead(**person(1)))
    assert [e.name for e in heard] == ["capture", "capture"]


# --- failures ---------------------------------------------------------------------------


def test_a_failing_subscriber_is_named_with_the_positions_to_read_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    funnel = Funnel()
    lead = funnel.capture(Lead(**person(1)))

    def broken(events: list[Event]) -> None:
        raise RuntimeError("the search index is down")

    funnel.subscribe(broken)
    with caplog.at_level(logging.ERROR, logger="leadfunnel"):
        funnel.qualify(lead, force=True)
        deal = funnel.set_appointment(lead)  # positions 3..5
    last = funnel.events()[-1]
    assert last.subject_id == deal.id
    assert last.position == 5
    message = caplog.records[-1].getMessage()
    assert "test_subscribers_order" in message
    assert "test_a_failing_subscriber_is_named_with_the_positions_to_read_again" in message
    assert "<locals>.broken" in message
    assert " 3..5" in message
    assert "events(after=2)" in message
    assert "opportunities=1" in message  # InMemoryRepository's repr spells it
    assert "the search index is down" in caplog.text


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_an_interrupting_subscriber_stops_the_caller_and_the_commit_stands(
    stop: type[BaseException],
) -> None:
    funnel = Funnel()
    later: list[Event] = []

    def quitter(events: list[Event]) -> None:
        if events[0].name == "capture":
            raise stop

    funnel.subscribe(quitter)
    funnel.subscribe(later.extend)
    with pytest.raises(stop):
        funnel.capture(Lead(**person(1)))
    assert [e.name for e in funnel.events()] == ["capture"]  # the commit stands
    assert later == []  # the later subscriber was not told
    lead = funnel.get_lead(funnel.events()[0].subject_id)
    funnel.touch(lead, "email", "replied")  # and the next commit is told as usual
    assert [e.name for e in later] == ["touch"]


# --- the in-memory store's reads wait for an open transaction ---------------------------

_READS: dict[str, Callable[[Funnel, UUID], object]] = {
    "get": lambda f, id: f.repository.get(id),
    "get_many": lambda f, id: f.repository.get_many([id]),
    "get_lead": lambda f, id: f.get_lead(id),
    "find": lambda f, id: f.find(email="kim@gamma.example.com"),
    "leads": lambda f, id: f.leads(),
    "count": lambda f, id: f.count("lead"),
    "history": lambda f, id: f.history(id),
    "touches": lambda f, id: f.touches(id),
    "events": lambda f, id: f.events(),
}


@pytest.mark.parametrize("read", sorted(_READS))
def test_another_thread_never_reads_what_a_transaction_rolls_back(read: str) -> None:
    funnel = Funnel(InMemoryRepository())
    inside, read_done = threading.Event(), threading.Event()
    made: list[Lead | Contact] = []
    seen: list[object] = []

    def request() -> None:  # a web request that fails half way
        try:
            with funnel.transaction():
                lead = funnel.capture(Lead(first_name="Kim", email="kim@gamma.example.com"))
                funnel.touch(lead, "email", "replied")
                made.append(lead)
                inside.set()
                read_done.wait(0.3)  # a read that does not wait is done by now
                raise RuntimeError("the request failed")
        except RuntimeError:
            pass

    def reader() -> None:
        inside.wait()
        try:
            seen.append(_READS[read](funnel, made[0].id))
        except NotFoundError:
            seen.append(None)
        read_done.set()

    threads = [threading.Thread(target=request), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen in ([None], [{}], [[]], [0])  # nothing of the rolled-back block


# --- the feed beyond every position -----------------------------------------------------


@pytest.mark.parametrize("after", [2**63 - 2, 2**63 - 1, 2**63, 2**64, 2**70])
def test_an_after_beyond_every_position_reads_nothing(funnel: Funnel, after: int) -> None:
    funnel.capture(Lead(**person(1)))
    assert funnel.events(after=after) == []
    assert funnel.events(after=after, limit=None) == []


def test_a_negative_after_is_still_refused(funnel: Funnel) -> None:
    with pytest.raises(InvalidArgumentError, match="whole number"):
        funnel.events(after=-1)
