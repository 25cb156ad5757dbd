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


def _positions_of_the_recipe(repository: Repository) -> tuple[Any, Any, Any]:
    """The SQL repository, a new metadata and the recipe's table of consumers'
    positions (docs/events.md); the test is skipped where the recipe cannot share the
    database's transaction."""
    from leadfunnel import SqlRepository

    if not isinstance(repository, SqlRepository):
        pytest.skip("the recipe shares the database's transaction")
    import sqlalchemy as sa

    meta = sa.MetaData()
    positions = sa.Table(
        "app_positions",
        meta,
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    return repository, meta, positions


def test_a_consumer_keeping_its_position_in_the_same_transaction_acts_exactly_once(
    repository: Repository,
) -> None:
    import sqlalchemy as sa

    sql, meta, positions = _positions_of_the_recipe(repository)
    effects = sa.Table("app_effects", meta, sa.Column("event_id", sa.String(36), primary_key=True))
    with sql._engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(sa.insert(positions).values(name="indexer", position=0))
    funnel = Funnel(repository)
    for n in range(6):
        funnel.capture(Lead(**person(n)))

    def consume(crash_after: int | None = None) -> int:
        with funnel.transaction():
            conn = sql.connection
            where = positions.c.name == "indexer"
            locked = sa.select(positions.c.position).where(where).with_for_update()
            last = conn.execute(locked).scalar_one()  # as docs/events.md reads it
            events = funnel.events(after=last, limit=4)
            for done, event in enumerate(events, 1):
                conn.execute(sa.insert(effects).values(event_id=str(event.id)))
                if done == crash_after:
                    raise RuntimeError("the consumer died")
            if events:
                conn.execute(sa.update(positions).where(where).values(position=events[-1].position))
            return len(events)

    try:
        assert consume() == 4
        with pytest.raises(RuntimeError):
            consume(crash_after=1)  # an effect written, then a crash: none of it is kept
        assert consume() == 2
        assert consume() == 0
        with sql._engine.connect() as conn:
            handled = sorted(conn.execute(sa.select(effects.c.event_id)).scalars())
        assert handled == sorted(str(e.id) for e in funnel.events(limit=None))
    finally:
        with sql._engine.begin() as conn:
            meta.drop_all(conn)


def test_two_consumers_running_at_once_handle_each_event_once(repository: Repository) -> None:
    """The recipe of docs/events.md run by two workers at once (two app servers, a cron
    job overlapping a slow run): the second waits for the first's position."""
    import sqlalchemy as sa

    sql, meta, positions = _positions_of_the_recipe(repository)
    # An effect without a unique key (an audit log): a second handling adds a row.
    log = sa.Table(
        "app_log",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
    )
    with sql._engine.begin() as conn:
        meta.create_all(conn)
        conn.execute(sa.insert(positions).values(name="audit", position=0))
    funnel = Funnel(repository)
    for n in range(3):
        funnel.capture(Lead(**person(n)))
    first_read, second_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def consume(first: bool) -> None:
        try:
            if not first:
                first_read.wait(5)
            with funnel.transaction():
                conn = sql.connection
                where = positions.c.name == "audit"
                locked = sa.select(positions.c.position).where(where).with_for_update()
                last = conn.execute(locked).scalar_one()
                events = funnel.events(after=last, limit=500)
                if first:
                    first_read.set()
                    second_done.wait(0.5)  # a second reader that does not wait is done
                for event in events:
                    conn.execute(sa.insert(log).values(event_id=str(event.id)))
                if events:
                    position = events[-1].position
                    conn.execute(sa.update(positions).where(where).values(position=position))
            if not first:
                second_done.set()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            first_read.set()

    try:
        workers = [threading.Thread(target=consume, args=(first,)) for first in (True, False)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == []
        with sql._engine.connect() as conn:
            handled = sorted(conn.execute(sa.select(log.c.event_id)).scalars())
        assert handled == sorted(str(e.id) for e in funnel.events(limit=None))
    finally:
        with sql._engine.begin() as conn:
            meta.drop_all(conn)
