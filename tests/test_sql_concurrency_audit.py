"""What a concurrency audit of the SQL adapter found (2026-11-30; several threads and
processes on one database): each test failed before its fix."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import person
from leadfunnel import Contact, Funnel, Lead, SqlRepository, StorageError
from test_sql import url

__all__ = ["url"]  # the fixture, from test_sql


@pytest.fixture
def two(url: tuple[str, str | None]) -> Iterator[tuple[Funnel, Funnel]]:
    """Two funnels on one server database, each with its own connections: the one
    that merges (``mine``) and another worker (``theirs``)."""
    if url[0].startswith("sqlite"):
        pytest.skip("needs a server: SQLite lets one connection write at a time")
    mine, theirs = SqlRepository(url[0], schema=url[1]), SqlRepository(url[0], schema=url[1])
    try:
        yield Funnel(mine), Funnel(theirs)
    finally:
        mine.close()
        theirs.close()


def _while_they_commit(theirs: Funnel, change: Any, then: Any) -> None:
    """Run ``then`` while ``theirs`` has made ``change`` in a transaction it has not
    committed yet (it commits half a second later)."""
    started = threading.Event()

    def write() -> None:
        with theirs.transaction():
            change()
            started.set()
            time.sleep(0.5)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert started.wait(timeout=30)
        then()
    finally:
        writer.join()


@pytest.mark.parametrize("what", ["touch", "book"])
def test_a_merge_takes_along_what_another_writer_was_committing_on_the_record_it_removes(
    two: tuple[Funnel, Funnel], what: str
) -> None:
    """On MariaDB the merge's first read (the removed record's document) took the
    transaction's snapshot before the merge locked that record: its counts of touches
    and deals read that snapshot, and a touch or a deal committed meanwhile was left
    pointing at the removed record."""
    mine, theirs = two
    keep: Lead | Contact
    other: Lead | Contact
    if what == "touch":
        keep, other = mine.add(Lead(**person(1))), mine.add(Lead(**person(2)))
        change: Any = lambda: theirs.touch(other, "call", "no_answer")  # noqa: E731
    else:
        keep = mine.add(Contact(first_name="Al", email="al@keep.example.com"))
        other = mine.add(Contact(first_name="Al", email="al@other.example.com"))
        change = lambda: theirs.set_appointment(other)  # noqa: E731
    _while_they_commit(theirs, change, lambda: mine.merge(keep, other))

    if what == "touch":
        assert len(mine.touches(keep.id)) == 1
        assert mine.touches(other.id) == []
    else:
        (deal,) = mine.opportunities(contact_id=keep.id)
        assert mine.opportunities(contact_id=other.id) == []
        assert deal.contact_id == keep.id


def test_a_pool_with_no_connection_free_in_time_is_a_storage_error(
    url: tuple[str, str | None],
) -> None:
    """The pool's own timeout (every connection it may open held, by a thread inside a
    long ``transaction()`` block) leaked as SQLAlchemy's ``TimeoutError``."""
    repository = SqlRepository(url[0], schema=url[1], pool_size=1, max_overflow=0, pool_timeout=0.2)
    funnel = Funnel(repository)
    try:
        lead = funnel.add(Lead(**person(1)))
        inside, leave = threading.Event(), threading.Event()

        def hold() -> None:
            with funnel.transaction():
                funnel.get(lead.id)
                inside.set()
                leave.wait(timeout=30)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert inside.wait(timeout=30)
            with pytest.raises(StorageError, match="no connection to the database was free"):
                funnel.get(lead.id)
            with pytest.raises(StorageError, match="pool_timeout"):
                funnel.add(Lead(**person(2)))
        finally:
            leave.set()
            holder.join()
        assert funnel.get(lead.id) == lead  # the pool serves again once a connection is free
    finally:
        repository.close()


def test_reading_a_person_for_export_locks_nothing(url: tuple[str, str | None]) -> None:
    """The merge's locking read (above) was every read of a document's undeclared
    fields on MariaDB: ``export_person`` waited for any writer's block on the person,
    and failed once the server's lock wait ran out (here at once)."""
    if url[0].startswith("sqlite"):
        pytest.skip("needs a server: SQLite lets one connection write at a time")
    mysql = url[0].startswith("mysql")
    impatient = (
        {"init_command": "SET SESSION innodb_lock_wait_timeout = 0"}
        if mysql
        else {"options": "-c lock_timeout=1"}
    )
    writer = Funnel(SqlRepository(url[0], schema=url[1]))
    reader = Funnel(SqlRepository(url[0], schema=url[1], connect_args=impatient))
    try:
        ann = writer.add(Lead(**person(1)))
        _while_they_commit(
            writer,
            lambda: writer.update(writer.get_lead(ann.id).model_copy(update={"notes": "x"})),
            lambda: reader.export_person(ann),
        )
        assert reader.export_person(ann)["records"][0]["notes"] == "x"
    finally:
        writer.repository.close()
        reader.repository.close()
