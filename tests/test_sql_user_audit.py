"""What an application's view of transactions, concurrency and reopening found in the
SQL adapter (a read-only audit, 2026-11-29): each test failed before its fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import person
from leadfunnel import (
    AvoidListedError,
    ConcurrencyError,
    Contact,
    DuplicateError,
    Funnel,
    Lead,
    Stage,
)
from leadfunnel._sql import _schema as schema
from test_sql import _back_to_version_1, open_repository, url

__all__ = ["url"]  # the fixture, from test_sql

NOTE = "Kim Jones said call her at 512 555 0100"


def servers_only(where: tuple[str, str | None]) -> None:
    if where[0].startswith("sqlite"):
        # SQLite's block holds the only write lock: no other writer commits inside it.
        pytest.skip("needs a server: another writer commits inside the block")


# --- the suppression secret of an upgraded store -------------------------------------


def test_an_upgraded_store_keeps_its_secret_through_a_rolled_back_first_use(
    url: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEADFUNNEL_SUPPRESSION_SECRET", raising=False)
    made = open_repository(url)
    _back_to_version_1(made, url)  # leadfunnel 0.1 had no secrets table
    made.close()
    upgraded = open_repository(url)
    with upgraded._engine.connect() as conn:  # made with the upgrade, not on first use
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.secrets)).scalar() == 1
    funnel = Funnel(upgraded)
    try:
        with funnel.transaction():
            funnel.add(Lead(**person(1)))  # the first use of the secret, rolled back
            raise RuntimeError("the request failed")
    except RuntimeError:
        pass
    kim = funnel.add(Lead(**person(2)))
    funnel.erase(kim)
    upgraded.close()

    again = Funnel(open_repository(url))
    try:
        with pytest.raises(AvoidListedError):
            again.add(Lead(**person(2)))  # still avoided after the restart
        # Was a ConfigError ("written under another secret") for everyone.
        assert again.add(Lead(**person(3))).version == 1
    finally:
        again.repository.close()


# --- MariaDB: a block's snapshot ---------------------------------------------------------


def in_a_block(funnel: Funnel, meanwhile: Callable[[], Any], then: Callable[[], Any]) -> bool:
    """Run ``then`` in a block whose first read comes before another writer's
    ``meanwhile``; on a refusal (the block undone whole) run ``then`` again outside any
    block, as an application retries. Whether the block was refused."""
    try:
        with funnel.transaction():
            funnel.count("lead")  # the block's first read: MariaDB's snapshot
            meanwhile()
            then()
    except ConcurrencyError:
        then()
        return True
    return False


def test_an_erasure_in_a_block_never_leaves_what_another_writer_logged_meanwhile(
    url: tuple[str, str | None],
) -> None:
    servers_only(url)
    app, worker = open_repository(url), open_repository(url)
    try:
        mine, theirs = Funnel(app), Funnel(worker)
        kim = mine.add(Lead(**person(1)))
        touch = lambda: theirs.touch(kim, "call", "no_answer", note=NOTE)  # noqa: E731
        in_a_block(mine, touch, lambda: mine.erase(kim))
        # Was stored on MariaDB, leaving the touch's note unscrubbed.
        assert [t.note for t in theirs.touches(kim.id)] == [None]

        sam = mine.add(Contact(first_name="Sam", email="sam@x.example.com"))
        booked: list[Any] = []
        in_a_block(
            mine, lambda: booked.append(theirs.set_appointment(sam)), lambda: mine.erase(sam)
        )
        # Was left open on MariaDB: a deal of an erased contact, booked meanwhile.
        assert mine.get_opportunity(booked[0].id).stage is Stage.LOST
    finally:
        app.close()
        worker.close()


def test_a_merge_in_a_block_never_leaves_a_touch_on_the_record_it_removes(
    url: tuple[str, str | None],
) -> None:
    servers_only(url)
    app, worker = open_repository(url), open_repository(url)
    try:
        mine, theirs = Funnel(app), Funnel(worker)
        a, b = mine.add(Lead(**person(1))), mine.add(Lead(**person(2)))
        touched: list[Any] = []
        in_a_block(
            mine,
            lambda: touched.append(theirs.touch(b, "call", "no_answer")),
            lambda: mine.merge(a, b),
        )
        # Was left on MariaDB pointing at the merged-away record.
        assert touched[0].id in [t.id for t in mine.touches(a.id)]
    finally:
        app.close()
        worker.close()


def adding_in_a_block(mine: Funnel, theirs: Funnel, n: int, **fields: Any) -> tuple[Lead, Any]:
    """What ``mine.add`` raises in a block after ``theirs`` stored person ``n``."""
    with mine.transaction():
        mine.count("lead")
        winner = theirs.add(Lead(**person(n)))
        try:
            mine.add(Lead(**person(n, **fields)))
        except DuplicateError as exc:
            return winner, exc
    raise AssertionError("stored twice")


def test_a_key_another_writer_stored_meanwhile_is_a_duplicate_in_a_block(
    url: tuple[str, str | None],
) -> None:
    servers_only(url)
    app, worker = open_repository(url), open_repository(url)
    try:
        mine, theirs = Funnel(app), Funnel(worker)
        winner, refusal = adding_in_a_block(mine, theirs, 1)  # was StorageError on MariaDB
        assert refusal.existing_id == winner.id
        assert not isinstance(refusal, AvoidListedError)
        with mine.transaction():
            mine.count("lead")
            other = theirs.add(Lead(**person(2)))
            report = mine.import_leads([person(2)])
        assert [issue.existing_id for issue in report.duplicates] == [other.id]
        assert report.rejected == []  # was rejected: "the store refused this row"
    finally:
        app.close()
        worker.close()
