"""Differential test: one random sequence of facade calls, two stores, the same answers.

A hypothesis state machine applies every step to a Funnel on ``InMemoryRepository`` and
to one on ``SqlRepository`` (SQLite), with the same clock, and after every step checks
that every read, ``due()`` and ``report()`` agree. Run it longer with
``LEADFUNNEL_HYPOTHESIS_PROFILE=long pytest tests/test_differential.py``.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from conftest import new_sqlite_url
from leadfunnel import (
    Channel,
    Funnel,
    InMemoryRepository,
    LeadFunnelError,
    LostReason,
    Outcome,
    QualificationEngine,
    SqlRepository,
    Stage,
)
from leadfunnel.testing import ManualClock, leads, reached

START = datetime(2026, 3, 2, 9, tzinfo=UTC)
ENGINE = {
    "profiles": [
        {
            "name": "msp",
            "rules": [
                {"rule": "niche", "industries": ["IT Services", "Managed Services"]},
                {"rule": "geography", "countries": ["US", "CA"], "hard": True},
            ],
        }
    ]
}
IGNORED = {"updated_at"}
NEXT_STEP = {
    Stage.APPOINTMENT_SET: "sit",
    Stage.APPOINTMENT_SAT: "propose",
    Stage.PROPOSING: "send_contract",
    Stage.CONTRACT_SENT: "win",
}

PROFILES = {
    "ci": settings(
        max_examples=15,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    ),
    "long": settings(
        max_examples=300,
        stateful_step_count=60,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    ),
}


class SameAnswers(RuleBasedStateMachine):
    """Every step on both funnels; every answer compared."""

    @initialize()
    def open_stores(self) -> None:
        self.folder = tempfile.TemporaryDirectory()
        engine = QualificationEngine.from_dict(ENGINE)
        self.clocks = [ManualClock(START), ManualClock(START)]
        self.sql_repository = SqlRepository(new_sqlite_url(Path(self.folder.name) / "f.db"))
        self.funnels = [
            Funnel(InMemoryRepository(), engine=engine, clock=self.clocks[0]),
            Funnel(self.sql_repository, engine=engine, clock=self.clocks[1]),
        ]
        self.people: list[UUID] = []

    def teardown(self) -> None:
        if hasattr(self, "funnels"):
            # What this run got to: see it with --hypothesis-show-statistics.
            for name in sorted(reached(self.funnels[0])):
                event(f"differential reached: {name}")
        if hasattr(self, "sql_repository"):
            self.sql_repository.close()
            self.folder.cleanup()

    def both(self, call: Any) -> None:
        """Run ``call(funnel)`` on both; both must succeed alike or fail alike."""
        outcomes = []
        for funnel in self.funnels:
            try:
                result = call(funnel)
                outcomes.append(("ok", getattr(result, "id", None)))
            except LeadFunnelError as error:
                outcomes.append(("error", type(error).__name__))
        assert outcomes[0][0] == outcomes[1][0], outcomes
        if outcomes[0][0] == "error":
            assert outcomes[0] == outcomes[1], outcomes

    # --- steps ------------------------------------------------------------------------

    @rule(lead=leads(status="raw"))
    def capture(self, lead: Any) -> None:
        self.both(lambda f: f.capture(lead))
        self.people.append(lead.id)

    @rule(lead=leads(status="raw"), setter=st.sampled_from(["sue", "tom"]))
    def capture_and_book(self, lead: Any, setter: str) -> None:
        """A referral booked at once: the quick way to deals that move on."""
        self.capture(lead)
        self.both(lambda f: f.set_appointment(lead.id, force=True, setter=setter))

    @rule(lead=leads(status="suspect"))
    def add_suspect(self, lead: Any) -> None:
        self.both(lambda f: f.add(lead))
        self.people.append(lead.id)

    @precondition(lambda self: bool(getattr(self, "people", None)))
    @rule(n=st.integers(0, 30), force=st.booleans())
    def qualify(self, n: int, force: bool) -> None:
        if self.people:
            target = self.people[n % len(self.people)]
            self.both(lambda f: f.qualify(target, force=force))

    @precondition(lambda self: bool(getattr(self, "people", None)))
    @rule(n=st.integers(0, 30), trigger=st.sampled_from(["farm", "respond", "disqualify", "avoid"]))
    def lead_trigger(self, n: int, trigger: str) -> None:
        if self.people:
            target = self.people[n % len(self.people)]
            self.both(lambda f: getattr(f, trigger)(target))

    @precondition(lambda self: bool(getattr(self, "people", None)))
    @rule(
        n=st.integers(0, 30),
        channel=st.sampled_from([Channel.CALL, Channel.EMAIL, Channel.SOCIAL]),
        outcome=st.sampled_from(list(Outcome)),
    )
    def touch(self, n: int, channel: Channel, outcome: Outcome) -> None:
        if self.people:
            self.both(lambda f: f.touch(self._person(f, n), channel, outcome))

    @precondition(lambda self: bool(getattr(self, "people", None)))
    @rule(n=st.integers(0, 30), force=st.booleans())
    def set_appointment(self, n: int, force: bool) -> None:
        if self.people:
            # Contact and opportunity ids are generated: each funnel resolves its own.
            self.both(lambda f: f.set_appointment(self._person(f, n), force=force, setter="sue"))

    @precondition(lambda self: hasattr(self, "funnels") and bool(self.funnels[0].opportunities()))
    @rule(
        n=st.integers(0, 30),
        step=st.sampled_from(["sit", "propose", "send_contract", "win", "lose", "reschedule"]),
    )
    def deal_step(self, n: int, step: str) -> None:
        deals = [f.opportunities() for f in self.funnels]
        if not deals[0]:
            return
        index = n % len(deals[0])
        kwargs: dict[str, Any] = {}
        if step == "lose":
            kwargs["reason"] = list(LostReason)[n % len(LostReason)]
        if step == "reschedule":
            kwargs["appointment_at"] = START
        for _funnel, own in zip(self.funnels, deals, strict=True):
            assert len(own) == len(deals[0])
        self.both(lambda f: getattr(f, step)(f.opportunities()[index].id, **kwargs))

    @precondition(lambda self: hasattr(self, "funnels") and bool(self.funnels[0].opportunities()))
    @rule(n=st.integers(0, 30), won=st.booleans())
    def deal_moves_on(self, n: int, won: bool) -> None:
        """The legal next step of an open deal (random steps alone rarely get far)."""
        deals = self.funnels[0].opportunities()
        open_deals = [i for i, deal in enumerate(deals) if deal.stage in NEXT_STEP]
        if not open_deals:
            return
        index = open_deals[n % len(open_deals)]
        step = NEXT_STEP[deals[index].stage]
        if step == "win" and not won:
            step = "lose"
        self.deal_step(index, step)

    @precondition(lambda self: hasattr(self, "funnels") and bool(self.funnels[0].opportunities()))
    @rule(n=st.integers(0, 30), moves=st.integers(1, 4), won=st.booleans())
    def deal_plays_out(self, n: int, moves: int, won: bool) -> None:
        """A deal moves on several times in a row, a day apart: one step at a time, deals
        seldom get past the sitting in a run, and won deals would go unchecked."""
        for _ in range(moves):
            for clock in self.clocks:
                clock.advance(days=1)
            self.deal_moves_on(n, won)

    @rule(hours=st.integers(1, 24 * 20))
    def time_passes(self, hours: int) -> None:
        for clock in self.clocks:
            clock.advance(hours=hours)

    @precondition(lambda self: bool(getattr(self, "people", None)))
    @rule(
        n=st.integers(0, 30),
        change=st.sampled_from(
            [
                {"title": "Owner"},
                {"notes": "called back, wants a quote"},
                {"employees": 40, "annual_revenue": 3_000_000},
                {"tags": frozenset({"vip"})},
                {"phone": None},
            ]
        ),
    )
    def update(self, n: int, change: dict[str, Any]) -> None:
        target = self.people[n % len(self.people)]
        self.both(lambda f: f.update(f.get(target).model_copy(update=change)))

    @precondition(lambda self: len(getattr(self, "people", ())) >= 2)
    @rule(n=st.integers(0, 30), m=st.integers(1, 30))
    def merge(self, n: int, m: int) -> None:
        """Merge one lead into another; the merged-away id stays in ``people`` (reads of
        it must fail alike, and ``unmerge`` brings it back)."""
        keep = self.people[n % len(self.people)]
        other = self.people[(n + m) % len(self.people)]
        if keep != other:
            self.both(lambda f: f.merge(keep, other, reason="same person"))

    @precondition(lambda self: bool(getattr(self, "people", None)))
    @rule(n=st.integers(0, 30))
    def unmerge(self, n: int) -> None:
        keep = self.people[n % len(self.people)]
        self.both(lambda f: f.unmerge(keep))

    def _person(self, funnel: Funnel, n: int) -> UUID:
        """A lead, or the contact it became in ``funnel`` (contact ids differ per store)."""
        lead = funnel.get(self.people[n % len(self.people)])
        contact_id = getattr(lead, "contact_id", None)
        return contact_id if contact_id is not None else lead.id

    # --- the same answers -----------------------------------------------------------

    @invariant()
    def reads_agree(self) -> None:
        if not hasattr(self, "funnels"):
            return
        memory, sql = self.funnels
        assert _people(memory.leads()) == _people(sql.leads())
        assert _people(memory.contacts(), contacts=True) == _people(sql.contacts(), contacts=True)
        assert [d.stage for d in memory.opportunities()] == [d.stage for d in sql.opportunities()]
        for lead in memory.leads():
            assert _moves(memory, lead.id) == _moves(sql, lead.id)
            assert [(t.channel, t.outcome, t.at) for t in memory.touches(lead)] == [
                (t.channel, t.outcome, t.at) for t in sql.touches(lead)
            ]
        # Contacts and deals have generated ids: pair them by the lead they came from.
        twins = {c.lead_id: c for c in sql.contacts()}
        for contact in memory.contacts():
            twin = twins[contact.lead_id]
            assert _moves(memory, contact.id) == _moves(sql, twin.id)
            assert [(t.channel, t.outcome, t.at) for t in memory.touches(contact)] == [
                (t.channel, t.outcome, t.at) for t in sql.touches(twin)
            ]
            deals = [
                memory.opportunities(contact_id=contact.id),
                sql.opportunities(contact_id=twin.id),
            ]
            assert [_deal(d) for d in deals[0]] == [_deal(d) for d in deals[1]]
            for mine, theirs in zip(*deals, strict=True):
                assert _moves(memory, mine.id) == _moves(sql, theirs.id)

    @invariant()
    def due_and_report_agree(self) -> None:
        if not hasattr(self, "funnels"):
            return
        memory, sql = self.funnels
        now = self.clocks[0].now()
        assert _due(memory, now) == _due(sql, now)
        for by in (None, "setter", "month"):
            assert memory.report(by=by).to_dict() == sql.report(by=by).to_dict()


def _people(records: list[Any], *, contacts: bool = False) -> list[tuple[Any, ...]]:
    # A conversion generates the contact's id in each store: compare contacts by the lead
    # they came from, and a lead's contact_id only by whether it has one.
    generated = {"id", "updated_at", "lead_id"} if contacts else {"updated_at", "contact_id"}
    return [
        (
            r.lead_id if contacts else (r.id, r.contact_id is not None),
            r.model_dump(exclude=generated),
        )
        for r in records
    ]


def _deal(deal: Any) -> dict[str, Any]:
    return deal.model_dump(exclude={"id", "contact_id", "updated_at"})  # type: ignore[no-any-return]


def _moves(funnel: Funnel, subject: UUID) -> list[tuple[str, Any, Any, Any]]:
    return [(e.name, e.source, e.dest, e.at) for e in funnel.history(subject)]


def _due(funnel: Funnel, at: datetime) -> list[tuple[Any, ...]]:
    return sorted(
        (i.subject, i.due_at, i.overdue, i.touch_number, sorted(i.channels), i.owner)
        for i in funnel.due(at=at)
    )


SameAnswers.TestCase.settings = PROFILES[os.environ.get("LEADFUNNEL_HYPOTHESIS_PROFILE", "ci")]
TestSameAnswers = pytest.mark.slow(SameAnswers.TestCase)  # scheduled first: see conftest
