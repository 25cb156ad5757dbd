"""A deadlock between two ``funnel.transaction()`` blocks is a lost race: the losing
block raises ``ConcurrencyError`` and stores nothing, the other stores everything
(DESIGN 14; docs/storage.md). MariaDB rolls the whole transaction back on a deadlock,
savepoints and all: the error said "check that the database is reachable" and, retried
inside the block, a change could be stored without the block's earlier ones."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import open_server, server_name
from leadfunnel import ConcurrencyError, Funnel, Lead, Repository, SqlRepository

_WAITING = {
    "mysql": "SELECT count(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'",
    "postgresql": "SELECT count(*) FROM pg_locks WHERE NOT granted",
}


def wait_for_a_lock_wait(engine: sa.Engine, dialect: str, waiter: threading.Thread) -> None:
    """Until the server shows a transaction waiting for a lock, or two seconds passed
    (the waiter blocks within milliseconds; the server's list is not always current)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert waiter.is_alive(), "the second block ended without waiting"
        with engine.connect() as conn:  # one read each: MariaDB's would keep its answer
            if conn.exec_driver_sql(_WAITING[dialect]).scalar_one() > 0:
                return
        time.sleep(0.02)


def test_a_deadlock_between_two_blocks_loses_one_block_whole(repository: Repository) -> None:
    if not isinstance(repository, SqlRepository) or repository.dialect == "sqlite":
        pytest.skip("needs a server with row locks")
    dialect = "mysql" if repository.dialect in ("mysql", "mariadb") else "postgresql"
    kind = "mysql" if dialect == "mysql" else "postgres"
    funnel = Funnel(repository)
    x = funnel.add(Lead(first_name="X", email="x@x.example.com", status="raw")).id
    y = funnel.add(Lead(first_name="Y", email="y@y.example.com", status="raw")).id
    a_has_x, b_waits = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    stores = {name: open_server(kind, server_name(repository)) for name in "AB"}

    def block(name: str, first: Any, second: Any) -> None:
        other = stores[name]
        try:
            mine = Funnel(other)
            with mine.transaction():
                mine.qualify(first, force=True, reason=name)
                if name == "A":
                    a_has_x.set()
                    assert b_waits.wait(30)
                mine.touch(second, "call", "connected", note=name)
            outcome[name] = None
        except Exception as exc:
            outcome[name] = exc
        finally:
            other.close()

    a = threading.Thread(target=block, args=("A", x, y))
    b = threading.Thread(target=block, args=("B", y, x))
    a.start()
    assert a_has_x.wait(30)
    b.start()  # locks y, then waits for A's event-position lock
    wait_for_a_lock_wait(repository.engine, dialect, b)
    b_waits.set()  # A now touches y, which B holds: a deadlock
    a.join(60)
    b.join(60)
    raised = {name: exc for name, exc in outcome.items() if exc is not None}
    assert set(outcome) == {"A", "B"}
    assert len(raised) <= 1, raised
    for exc in raised.values():
        assert isinstance(exc, ConcurrencyError), repr(exc)
        if dialect == "mysql":
            assert "Run the whole block again" in str(exc)
    for name in "AB":
        qualified = [e for e in funnel.events(after=0) if e.name == "qualify" and e.reason == name]
        touched = [t for i in (x, y) for t in funnel.touches(i) if t.note == name]
        stored = (len(qualified), len(touched))
        assert stored == ((0, 0) if name in raised else (1, 1)), (name, stored, raised)
