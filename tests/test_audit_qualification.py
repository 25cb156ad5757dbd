"""Defects found by an audit of qualification, the cadence and reports (2026-11-30)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from leadfunnel import (
    Funnel,
    InvalidArgumentError,
    Lead,
    LeadStatus,
    Profile,
    QualificationEngine,
    Verdict,
)
from leadfunnel.testing import ManualClock

US_ONLY = QualificationEngine.from_dict(
    {
        "profiles": [
            {"name": "us", "rules": [{"rule": "geography", "countries": ["US"], "hard": True}]}
        ]
    }
)


def test_qualify_all_leaves_an_erased_persons_lead_alone(funnel: Funnel) -> None:
    """``qualify`` refuses an erased person's lead (PolicyError: nothing may be done to
    it); ``qualify_all`` moved it, added a ``qualify`` event to its history and changed
    the reports' counts. It is now skipped, as it is, beside the leads it judges."""
    funnel.engine = US_ONLY
    gone = funnel.capture(Lead(email="gone@example.com", country="US"))
    kept = funnel.capture(Lead(email="kept@example.com", country="US"))
    out = funnel.capture(Lead(email="out@example.com", country="DE"))
    funnel.erase(gone)
    erased = funnel.get_lead(gone.id)
    before = funnel.report()
    counts = funnel.qualify_all(page_size=2)
    assert counts == {"qualified": 1, "unqualified": 1, "waiting": 0, "skipped": 1, "failed": 0}
    assert funnel.get_lead(gone.id) == erased
    assert [e.name for e in funnel.history(gone)] == ["capture", "erase"]
    assert funnel.get_lead(kept.id).status is LeadStatus.QUALIFIED
    assert funnel.get_lead(out.id).status is LeadStatus.UNQUALIFIED
    after = funnel.report()
    assert after.steps["qualified"].count == before.steps["qualified"].count + 1
    assert funnel.qualify_all() == {
        "qualified": 0,
        "unqualified": 0,
        "waiting": 0,
        "skipped": 1,
        "failed": 0,
    }


def test_a_change_dated_earlier_never_moves_updated_at_back(
    funnel: Funnel, clock: ManualClock
) -> None:
    """A ``qualify`` that moves nothing (undecided) dated before the lead existed set
    its ``updated_at`` back there, and the check that refuses a move dated before the
    record's last change then let a move be dated before the lead's capture: a
    negative time in stage, and a report of 2020 counting a lead captured later."""
    funnel.engine = QualificationEngine.from_dict(
        {"profiles": [{"name": "it", "rules": [{"rule": "niche", "industries": ["IT"]}]}]}
    )
    lead = funnel.capture(Lead(email="a@example.com"))  # no industry: undecided
    captured = lead.updated_at
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    assert funnel.qualify(lead, at=long_ago).status is LeadStatus.RAW
    assert funnel.get_lead(lead.id).updated_at == captured
    with pytest.raises(InvalidArgumentError, match="before the lead's last change"):
        funnel.qualify(lead, force=True, at=long_ago + timedelta(days=1))
    # An opt-out logged with an earlier date changes the lead, not its last change.
    clock.advance(hours=1)
    funnel.touch(lead, "email", "opted_out", at=long_ago)
    stored = funnel.get_lead(lead.id)
    assert "email" in stored.opt_outs
    assert stored.updated_at == captured
    january = funnel.report(since=long_ago, until=datetime(2020, 2, 1, tzinfo=UTC))
    assert january.steps["qualified"].count == 0
    assert funnel.qualify(lead, force=True).status is LeadStatus.QUALIFIED
    assert funnel.report().time_in_stage["raw"].median_days >= 0


def test_a_manual_clock_in_a_zone_with_daylight_saving_advances_real_time() -> None:
    """``advance`` added the step to the wall clock: 23 real hours for ``hours=24`` over
    the spring change, two for ``hours=1`` on the fall-back night, and 50 minutes back
    for ``minutes=10`` from the second 01:10 (the docs: a clock never runs backwards)."""
    chicago = ZoneInfo("America/Chicago")

    def real(start: datetime, **step: float) -> timedelta:
        clock = ManualClock(start)
        # In UTC: two datetimes of one zone subtract as wall clocks.
        return clock.advance(**step).astimezone(UTC) - start.astimezone(UTC)

    assert real(datetime(2026, 3, 7, 12, tzinfo=chicago), hours=24) == timedelta(hours=24)
    assert real(datetime(2026, 11, 1, 1, 30, tzinfo=chicago), hours=1) == timedelta(hours=1)
    second = datetime(2026, 11, 1, 1, 10, fold=1, tzinfo=chicago)
    assert real(second, minutes=10) == timedelta(minutes=10)
    clock = ManualClock(second)
    assert clock.advance(minutes=10).tzinfo is chicago  # still in the clock's zone
    assert clock.now().utcoffset() == timedelta(hours=-6)


def test_a_lead_erased_while_its_page_keeps_losing_races_is_skipped(funnel: Funnel) -> None:
    """A page that loses its races is judged lead by lead: a lead erased meanwhile
    reached ``qualify`` there, whose ``PolicyError`` stopped the whole run."""
    calls = {"n": 0}
    ids: dict[str, Any] = {}

    class Meddler:
        name = "meddler"
        hard = False

        def evaluate(self, lead: Lead) -> Verdict:
            if lead.first_name == "A":  # once per attempt at the page
                calls["n"] += 1
                other = funnel.get_lead(ids["B"])
                if calls["n"] <= 2:  # another user edits B: the page loses the race
                    funnel.update(other.model_copy(update={"notes": f"edit {calls['n']}"}))
                elif calls["n"] == 3:  # then B's person asks to be erased
                    funnel.erase(other)
            return Verdict.passed("ok")

    funnel.engine = QualificationEngine([Profile("p", rules=[Meddler()])])
    for name in "AB":
        ids[name] = funnel.add(
            Lead(first_name=name, email=f"{name.lower()}@acme.example.com", status="raw")
        ).id
    counts = funnel.qualify_all()
    assert counts == {"qualified": 1, "unqualified": 0, "waiting": 0, "skipped": 1, "failed": 0}
    assert funnel.get_lead(ids["B"]).status is LeadStatus.RAW


def test_an_unmerge_is_not_dated_before_the_merge(funnel: Funnel, clock: ManualClock) -> None:
    """``unmerge(at=...)`` earlier than the merge set ``updated_at`` back, and a move
    dated between the two then passed: a history of add, unmerge, respond, merge."""
    a = funnel.add(Lead(first_name="A", email="a@acme.example.com", status="suspect"))
    b = funnel.add(Lead(first_name="A", email="a2@acme.example.com", status="suspect"))
    start = clock.now()
    clock.advance(hours=5)
    funnel.merge(a, b)
    with pytest.raises(InvalidArgumentError, match="an unmerge is dated at or after its merge"):
        funnel.unmerge(a, at=start + timedelta(hours=1))
    assert funnel.get_lead(a.id).updated_at == clock.now()
    funnel.unmerge(a)
    assert [e.name for e in funnel.history(a)][-1] == "unmerge"


class _NoDst(tzinfo):
    """A minimal tzinfo, as the datetime docs allow: no daylight saving to tell."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1)

    def tzname(self, dt: datetime | None) -> str:
        return "X"

    def dst(self, dt: datetime | None) -> None:
        return None


def test_a_manual_clock_advances_in_a_zone_without_dst() -> None:
    """Adding in UTC converts back with ``fromutc``, which such a tzinfo cannot do: a
    bare ``ValueError``. Its offset never changes, so its wall clock is real time."""
    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=_NoDst()))
    assert clock.advance(hours=1).hour == 10
