"""What a thread-safety audit of the in-memory store and the facade found (2026-11-30;
one funnel shared by 8 to 16 threads, as DESIGN 8 allows): each test failed before its
fix."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from leadfunnel import Funnel, InMemoryRepository, Lead


class MyLead(Lead):
    crm_id: str | None = None


class OtherLead(Lead):
    region_code: str | None = None


def _both_finish(first: Callable[[], object], second: Callable[[], object]) -> bool:
    """Run ``first`` and ``second`` in two threads; whether both finish (in 10 s)."""
    threads = [threading.Thread(target=f, daemon=True) for f in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return not any(thread.is_alive() for thread in threads)


def test_a_funnel_made_inside_a_block_never_deadlocks_a_registration_on_the_store() -> None:
    """A request inside ``transaction()`` that makes a funnel with the application's
    lead class, while another request makes the first such funnel (the registration
    that converts the stored records): each held the lock the other waited for (the
    process-wide registration lock, the store's), for good."""
    repository = InMemoryRepository()
    base = Funnel(repository)
    base.add(Lead(email="a@one.example.com"))
    inside = threading.Event()

    def in_a_block() -> None:
        with base.transaction():
            base.add(Lead(email="b@one.example.com"))
            inside.set()
            time.sleep(0.2)  # the other request registers meanwhile
            Funnel(repository, lead_model=MyLead)

    def registering() -> None:
        inside.wait(timeout=30)
        Funnel(repository, lead_model=MyLead)

    assert _both_finish(in_a_block, registering)
    assert all(isinstance(lead, MyLead) for lead in Funnel(repository, lead_model=MyLead).leads())


def test_a_block_on_one_store_never_deadlocks_a_registration_on_another() -> None:
    """The registration lock is the process's: a block on one tenant's store that makes
    a funnel on a second store waited for it, held by a registration on the first."""
    tenant1, tenant2 = InMemoryRepository(), InMemoryRepository()
    base = Funnel(tenant1)
    inside = threading.Event()

    def in_a_block() -> None:
        with base.transaction():
            base.add(Lead(email="a@one.example.com"))
            inside.set()
            time.sleep(0.2)
            Funnel(tenant2, lead_model=OtherLead)

    def registering() -> None:
        inside.wait(timeout=30)
        Funnel(tenant1, lead_model=MyLead)

    assert _both_finish(in_a_block, registering)
