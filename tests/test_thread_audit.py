"""What a thread-safety audit of the in-memory store and the facade found (2026-11-30;
one funnel shared by 8 to 16 threads, as DESIGN 8 allows): each test failed before its
fix."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from uuid import UUID

from conftest import T0, person
from leadfunnel import (
    ChangeSet,
    Event,
    Funnel,
    InMemoryRepository,
    Lead,
    OwnerGroup,
    RoutingRules,
)
from leadfunnel._models import Record
from leadfunnel.testing import ManualClock


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


class _Between(InMemoryRepository):
    """A store that, once, right after its next call of the method ``after`` names, runs
    ``then``: as if another thread's merge or unmerge came between that read and the
    next one."""

    after: str = ""
    then: Callable[[], object] | None = None

    def _once(self) -> None:
        then, self.then = self.then, None
        if then is not None:
            then()

    def find_keys(self, keys: Iterable[str]) -> dict[str, UUID]:
        found = super().find_keys(keys)
        if self.after == "find_keys":
            self._once()
        return found

    def get_many(self, ids: Iterable[UUID]) -> dict[UUID, Record]:
        found = super().get_many(ids)
        if self.after == "get_many":
            self._once()
        return found

    def get(self, id: UUID) -> Record:
        try:
            return super().get(id)
        finally:
            if self.after == "get":
                self._once()


def _two(repository: _Between) -> tuple[Funnel, Lead, Lead]:
    funnel = Funnel(repository)
    return funnel, funnel.add(Lead(**person(1))), funnel.add(Lead(**person(2)))


def test_find_between_a_merge_finds_the_person_who_holds_the_key_now() -> None:
    """``find`` read the key's holder, then the holder: merged away in between, it
    answered nobody, though someone holds the e-mail at every moment."""
    repository = _Between()
    funnel, a, b = _two(repository)
    repository.after, repository.then = "find_keys", lambda: funnel.merge(a, b)
    found = funnel.find(email=b.email)
    assert found is not None
    assert found.id == a.id


def test_a_page_after_a_record_unmerged_between_two_reads_is_served() -> None:
    """``leads(after=id)`` read the record (merged away), then its merge log (removed
    by an unmerge in between): "no such record", though it was stored all along."""
    repository = _Between()
    funnel, a, b = _two(repository)
    funnel.merge(a, b)
    repository.after, repository.then = "get_many", lambda: funnel.unmerge(a)
    assert funnel.leads(after=str(b.id)) == []  # b is the newest lead


def test_get_between_an_unmerge_returns_the_record_put_back() -> None:
    repository = _Between()
    funnel, a, b = _two(repository)
    funnel.merge(a, b)
    repository.after, repository.then = "get", lambda: funnel.unmerge(a)
    assert funnel.get(b.id).id == b.id


class _PausedAfterCommit(InMemoryRepository):
    """A store whose next commit in a thread named ``capturer`` stops right after it
    is stored, before the funnel settles it (as a thread switch there would), until
    ``resume`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.pause = False
        self.committed, self.resume = threading.Event(), threading.Event()

    def _commit(self, changes: ChangeSet) -> list[Event]:
        stored = super()._commit(changes)
        if self.pause and threading.current_thread().name == "capturer":
            self.committed.set()
            self.resume.wait(timeout=10)
        return stored


def test_attach_between_a_commit_and_its_settling_counts_the_lead_once() -> None:
    """``router.attach`` (called from time to time, as docs/cadence.md says) counted a
    lead from the feed that was still held, waiting to be settled: settled, it was
    counted again, and its owner got a lead less than their capacity that day."""
    router = RoutingRules([OwnerGroup("inbound", ["ana"], capacity={"ana": 3})], default="inbound")
    repository = _PausedAfterCommit()
    funnel = Funnel(repository, clock=ManualClock(T0), router=router)
    router.attach(funnel)
    funnel.capture(Lead(**person(1)))
    repository.pause = True
    capturer = threading.Thread(
        target=lambda: funnel.capture(Lead(**person(2))), name="capturer", daemon=True
    )
    capturer.start()
    assert repository.committed.wait(timeout=10)
    router.attach(funnel)
    repository.resume.set()
    capturer.join(timeout=10)
    repository.pause = False

    assert router.assigned_today() == {"ana": 2}
    assert funnel.capture(Lead(**person(3))).owner == "ana"  # the third of three
