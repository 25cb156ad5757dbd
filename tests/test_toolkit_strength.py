"""leadfunnel.testing holds adapters and users' tests to what its docs promise: the
strategies reach the fields' limits, the contract catches a store that cuts text, drops
the writer's UTC offset, pages back the cursor record or keeps a stale trait index, and
the assertions order one instant's events as the history does (audit of the toolkit)."""

from __future__ import annotations

import dataclasses
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from conftest import survey
from leadfunnel import Contact, Funnel, InMemoryRepository, Lead, Repository
from leadfunnel._models import Event
from leadfunnel.storage import ChangeSet, trait_key
from leadfunnel.testing import (
    ManualClock,
    RepositoryContract,
    assert_due,
    assert_passed_through,
    leads,
)

# --- the strategies reach the limits -----------------------------------------------


@pytest.mark.usefixtures("no_local_constants")  # a survey: the same draws in every process
def test_drawn_text_reaches_the_fields_limits_often() -> None:
    """The docs promise long text "up to the limits": names, companies and titles of
    200 characters and notes of 32,000 come often enough that a store cutting them
    fails (they once stopped at 150 and 2,000)."""
    seen: Counter[str] = Counter()

    @survey(1_000)
    @given(leads())
    def drawn(lead: Lead) -> None:
        seen["all"] += 1
        names = (lead.first_name, lead.last_name, lead.company, lead.title)
        seen["a name at 200"] += any(len(name or "") == 200 for name in names)
        seen["a name over 150"] += any(len(name or "") > 150 for name in names)
        notes = len(lead.notes or "")
        seen["notes at 32,000"] += notes == 32_000
        seen["notes over 4,000"] += notes > 4_000
        seen["notes over 2,000"] += notes > 2_000

    drawn()
    shares = {name: count / seen["all"] for name, count in seen.items()}
    assert shares["a name at 200"] >= 0.05, shares
    assert shares["a name over 150"] >= 0.10, shares
    assert shares["notes at 32,000"] >= 0.015, shares
    assert shares["notes over 4,000"] >= 0.05, shares
    assert shares["notes over 2,000"] >= 0.06, shares


# --- the contract catches broken adapters ----------------------------------------


def _replace(changes: ChangeSet, **fields: Any) -> ChangeSet:
    return dataclasses.replace(changes, **fields)


def _each_record(changes: ChangeSet, change: Callable[[Any], Any]) -> ChangeSet:
    return _replace(
        changes,
        inserts=[change(r) for r in changes.inserts],
        updates=[change(r) for r in changes.updates],
    )


def _in_utc(record: Any) -> Any:
    instants = {k: v for k, v in dict(record).items() if isinstance(v, datetime)}
    return record.model_copy(update={k: v.astimezone(UTC) for k, v in instants.items()})


class NotesCutAt2000(InMemoryRepository):
    """A notes column of 2,000 characters (the model takes 32,000)."""

    def _commit(self, changes: ChangeSet) -> list[Event]:
        def cut(r: Any) -> Any:
            return (
                r.model_copy(update={"notes": r.notes[:2000]}) if getattr(r, "notes", None) else r
            )

        return super()._commit(_each_record(changes, cut))


class NamesCutAt150(InMemoryRepository):
    """Name and company columns of 150 characters (the model takes 200)."""

    def _commit(self, changes: ChangeSet) -> list[Event]:
        def cut(r: Any) -> Any:
            fields = ("first_name", "last_name", "company")
            names = {k: v[:150] for k in fields if isinstance(v := getattr(r, k, None), str)}
            return r.model_copy(update=names)

        return super()._commit(_each_record(changes, cut))


class RecordsInUtc(InMemoryRepository):
    """Keeps each record's instants right, in UTC: the writer's offset is lost."""

    def _commit(self, changes: ChangeSet) -> list[Event]:
        return super()._commit(_each_record(changes, _in_utc))


class TouchesInUtc(InMemoryRepository):
    def _commit(self, changes: ChangeSet) -> list[Event]:
        return super()._commit(_replace(changes, touches=[_in_utc(t) for t in changes.touches]))


class CursorIncluded(InMemoryRepository):
    """A page after a cursor starts with the cursor's own record (``>=`` for ``>``)."""

    def _list(self, kind: Any, filters: dict[str, Any], after: Any, limit: int | None) -> list[Any]:
        page = super()._list(kind, filters, after, limit)
        if after is not None and (record := self._records.get(after[1])) is not None:
            page = [record, *page][:limit] if limit else [record, *page]
        return page


class _PeopleLikeByHand(InMemoryRepository):
    """``people_like`` written out, with the traits it reads, the people it skips, the
    key it makes of a trait and how it compares two keys as hooks a broken adapter
    overrides."""

    def traits_of(self, r: Any) -> tuple[str | None, str | None, str | None]:
        return r.email, r.company, r.last_name

    def skips(self, r: Any) -> bool:
        return r.erased_at is not None

    def key(self, value: str | None, trait: str) -> str | None:
        return trait_key(value, trait)

    def same(self, asked: str, held: str | None) -> bool:
        return held == asked

    def people_like(
        self,
        *,
        email_domain: str | None = None,
        company: str | None = None,
        last_name: str | None = None,
        kind: Any = "lead",
        limit: int = 200,
    ) -> list[Any]:
        domain = self.key(email_domain, "email_domain")
        firm, name = self.key(company, "company"), self.key(last_name, "last_name")

        def like(r: Any) -> bool:
            if self.skips(r):
                return False
            email, co, last = self.traits_of(r)
            at = email.rpartition("@")[2] if email else None
            return bool(
                (domain and at and self.same(domain, self.key(at, "email_domain")))
                or (firm and self.same(firm, self.key(co, "company")))
                or (name and self.same(name, self.key(last, "last_name")))
            )

        return self._select(kind, limit, like)


class StaleTraits(_PeopleLikeByHand):
    """``people_like`` reads traits written on insert and never updated (a SQL adapter
    that fills its company and last-name columns in its INSERT only)."""

    def __init__(self) -> None:
        super().__init__()
        self.traits: dict[Any, tuple[str | None, str | None, str | None]] = {}

    def _commit(self, changes: ChangeSet) -> list[Event]:
        stored = super()._commit(changes)
        for r in changes.inserts:
            if isinstance(r, Lead | Contact):
                self.traits[r.id] = (r.email, r.company, r.last_name)
        return stored

    def traits_of(self, r: Any) -> tuple[str | None, str | None, str | None]:
        return self.traits.get(r.id, (r.email, r.company, r.last_name))


class PeopleLikeIncludesErased(_PeopleLikeByHand):
    """``people_like`` forgets to leave erased people out."""

    def skips(self, r: Any) -> bool:
        return False


class PeopleLikeByPart(_PeopleLikeByHand):
    """``people_like`` matches a trait that contains the one asked for (SQL's
    ``LIKE '%acme%'``)."""

    def same(self, asked: str, held: str | None) -> bool:
        return asked in (held or "")


class PeopleLikeUnfolded(_PeopleLikeByHand):
    """``people_like`` compares traits trimmed and case-folded only (the keys of
    schema version 5), not as ``trait_key`` reads names."""

    def key(self, value: str | None, trait: str) -> str | None:
        return value.strip().casefold() if value else None


class _Against(RepositoryContract):
    def __init__(self, adapter: Callable[[], Repository], tmp_path: Path) -> None:
        self.adapter = adapter
        self.tmp_path = tmp_path

    def create_repository(self) -> Repository:
        return self.adapter()


@pytest.fixture
def _no_hang() -> Iterator[None]:
    """A contract test that loops forever fails the test instead of hanging the run."""

    def hung(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("the contract test did not end within 60 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.usefixtures("_no_hang")
@pytest.mark.parametrize(
    ("adapter", "test", "says"),
    [
        (NotesCutAt2000, "test_text_at_its_limits_comes_back_whole", ""),
        (NamesCutAt150, "test_text_at_its_limits_comes_back_whole", ""),
        (NotesCutAt2000, "test_drawn_people_come_back_as_they_went_in", ""),
        (NamesCutAt150, "test_drawn_people_come_back_as_they_went_in", ""),
        (RecordsInUtc, "test_records_come_back_equal", "another UTC offset"),
        (RecordsInUtc, "test_every_field_of_every_record_comes_back", "another UTC offset"),
        (TouchesInUtc, "test_touches_and_events_keep_every_field", "another UTC offset"),
        (
            CursorIncluded,
            "test_lists_are_in_created_order_and_page_after_a_cursor",
            "the cursor's own record",
        ),
        (StaleTraits, "test_people_like", "before an update"),
        (PeopleLikeIncludesErased, "test_people_like", "an erased person"),
        (PeopleLikeByPart, "test_people_like", "matched part of a trait"),
        (PeopleLikeUnfolded, "test_people_like", "must compare trait_key()s"),
    ],
    ids=lambda value: getattr(value, "__name__", None) or str(value)[:40],
)
def test_the_contract_fails_a_broken_adapter(
    tmp_path: Path, adapter: Callable[[], Repository], test: str, says: str
) -> None:
    contract = _Against(adapter, tmp_path)
    with contract.fresh() as repo, pytest.raises(AssertionError) as failed:
        getattr(contract, test)(repo)
    assert says in str(failed.value)


@pytest.mark.parametrize(
    "test",
    [
        "test_text_at_its_limits_comes_back_whole",
        "test_records_come_back_equal",
        "test_touches_and_events_keep_every_field",
        "test_lists_are_in_created_order_and_page_after_a_cursor",
        "test_people_like",
    ],
)
def test_the_same_contract_tests_pass_the_memory_adapter(tmp_path: Path, test: str) -> None:
    contract = _Against(InMemoryRepository, tmp_path)
    with contract.fresh() as repo:
        getattr(contract, test)(repo)


# --- assertions --------------------------------------------------------------------


def test_events_of_one_instant_are_ordered_by_position() -> None:
    """The clock never moves (as in many tests): a deal won makes the contact a client,
    then the client books again, all at one instant. The history orders them by
    position (DESIGN 12), and so does ``assert_passed_through``."""
    funnel = Funnel(clock=ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC)))
    lead = funnel.capture(Lead(email="bo@acme.example.com"))
    first = funnel.set_appointment(lead, force=True)
    for step in (funnel.sit, funnel.propose, funnel.send_contract, funnel.win):
        step(first)
    contact_id = funnel.get_lead(lead.id).contact_id
    assert contact_id is not None
    funnel.set_appointment(contact_id)
    assert_passed_through(funnel, lead, ["won", "client", "appointment_set"])
    with pytest.raises(AssertionError, match="never came after"):
        assert_passed_through(funnel, lead, ["client", "won"])


# --- drawn people replay ---------------------------------------------------------


def test_the_same_choices_draw_the_same_people() -> None:
    """``derandomize=True`` draws the same examples on every run, so the people are the
    same too: their e-mails and phones come from hypothesis' choices."""
    runs: list[list[tuple[str | None, str | None]]] = []

    @settings(max_examples=20, database=None, derandomize=True)
    @given(leads(keys="both"))
    def drawn(lead: Lead) -> None:
        runs[-1].append((lead.email, lead.phone))

    for _ in range(2):
        runs.append([])
        drawn()
    assert runs[0] == runs[1]


def test_a_failure_on_some_people_shrinks_and_replays() -> None:
    """A property that fails on some e-mails fails as itself (not ``FlakyFailure``: the
    replayed example draws the same person), shrinks, and the example it prints fails
    again, and the same seed fails the same way; the people of a shrunk example are
    still distinct."""
    emails: list[str] = []

    @seed(3)
    @settings(max_examples=200, database=None, deadline=None)
    @given(st.lists(leads(keys="email"), min_size=3, max_size=3))
    def buggy(people: list[Lead]) -> None:
        addresses = [person.email or "" for person in people]
        emails[:] = addresses
        assert len(set(addresses)) == 3, addresses
        assert not any("7@" in address for address in addresses)

    with pytest.raises(AssertionError, match="7@"):
        buggy()
    shrunk = list(emails)
    assert len(set(shrunk)) == 3, shrunk
    with pytest.raises(AssertionError, match="7@"):
        buggy()  # the same seed finds the same people, and shrinks them alike
    assert emails == shrunk


def test_an_id_that_is_no_uuid_fails_the_assertion() -> None:
    funnel = Funnel(clock=ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC)))
    with pytest.raises(AssertionError, match="'not-a-uuid' is no subject"):
        assert_due(funnel, "not-a-uuid")
    with pytest.raises(AssertionError, match="is no subject"):
        assert_passed_through(funnel, "42", ["raw"])


class DefaultNoShows(InMemoryRepository):
    """The port's own ``no_shows`` (every deal and its history read), as a third-party
    adapter that does not override it gets."""

    no_shows = Repository.no_shows


@pytest.mark.parametrize(
    "test", ["test_rep_lists", "test_erased_people_leave_follow_ups_and_rep_lists_and_still_count"]
)
def test_the_ports_default_no_shows_passes_the_contract(tmp_path: Path, test: str) -> None:
    contract = _Against(DefaultNoShows, tmp_path)
    with contract.fresh() as repo:
        getattr(contract, test)(repo)


class DefaultLastPosition(InMemoryRepository):
    """The port's own ``last_position`` (the feed read to its end)."""

    last_position = Repository.last_position


def test_the_ports_default_last_position_passes_the_contract(tmp_path: Path) -> None:
    contract = _Against(DefaultLastPosition, tmp_path)
    with contract.fresh() as repo:
        contract.test_event_positions_grow_in_commit_order(repo)


def test_a_record_that_came_back_otherwise_is_named_field_by_field_in_short() -> None:
    """The contract's ``assert_kept`` was ``assert got == expected``: pytest explained it
    by diffing the two whole reprs, which with text at its limit took minutes per failing
    example where the ``CI`` variable is set (pytest then cuts nothing short), and
    hypothesis replays hundreds as it shrinks. It names the fields that differ, short."""
    from leadfunnel.testing._contract import assert_kept

    given = Lead(email="a@acme.example.com", notes="n" * 32_000, tags={"vip"})
    back = given.model_copy(update={"notes": "n" * 2_000, "tags": frozenset({"vip", "x"})})
    with pytest.raises(AssertionError) as failed:
        assert_kept(back, given)
    message = str(failed.value)
    assert len(message) < 1_000
    assert ".notes: 32000 characters stored, 2000 back, first differing at 2000" in message
    assert ".tags: frozenset({'vip'}) stored" in message
    with pytest.raises(AssertionError, match=r"\[1\]\.notes: 32000 characters stored"):
        assert_kept({1: back}, {1: given})
    with pytest.raises(AssertionError, match="2 items stored, 1 back"):
        assert_kept([back], [given, given])
    with pytest.raises(AssertionError, match=r"\(32\d\d\d characters\) stored, None back"):
        assert_kept(None, given)
