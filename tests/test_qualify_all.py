"""``funnel.qualify_all``: leads judged a page at a time, each page one transaction.

Every test runs on every backend (the ``repository`` fixture). The outcome is compared
with ``funnel.qualify`` lead by lead on a twin funnel: paging changes how the work is
done, never where a lead goes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from conftest import T0, pages_lose_races, person
from leadfunnel import (
    Channel,
    ConfigError,
    Funnel,
    InMemoryRepository,
    Lead,
    LeadFunnelError,
    LeadStatus,
    Outcome,
    Profile,
    QualificationEngine,
    Repository,
    RuleError,
)
from leadfunnel.rules import BaseRule, Verdict
from leadfunnel.testing import ManualClock

MSP = {
    "name": "msp-owner",
    "rules": [
        {"rule": "niche", "industries": ["IT Services", "Managed Services"]},
        {"rule": "authority", "titles": ["ceo", "owner", "founder", "president"]},
        {"rule": "money", "min_annual_revenue": 1_000_000},
        {"rule": "geography", "countries": ["US"], "hard": True},
    ],
}
ENGINE = QualificationEngine.from_dict({"profiles": [MSP]})

# Where each lead of ``_mix`` goes: (status, tags added, missing data).
EXPECTED = {
    "fit": LeadStatus.QUALIFIED,
    "abroad": LeadStatus.UNQUALIFIED,  # a hard failure
    "assistant": LeadStatus.RAW,  # a soft failure, never called
    "called": LeadStatus.UNQUALIFIED,  # a soft failure, called
    "mailed": LeadStatus.RAW,  # a soft failure, only e-mailed
    "untitled": LeadStatus.RAW,  # undecided: no title
    "vip": LeadStatus.QUALIFIED,
}


def _mix(funnel: Funnel) -> dict[str, UUID]:
    """Raw leads that go every way qualification can send them, and a suspect."""
    made = {
        "fit": funnel.capture(Lead(**person(1))),
        "abroad": funnel.capture(Lead(**person(2, country="CA"))),
        "assistant": funnel.capture(Lead(**person(3, title="Office Manager"))),
        "called": funnel.capture(Lead(**person(4, title="Intern"))),
        "mailed": funnel.capture(Lead(**person(5, title="Intern"))),
        "untitled": funnel.capture(Lead(**person(6, title=None))),
        "vip": funnel.capture(Lead(**person(7, tags={"vip"}))),
        "suspect": funnel.add(Lead(**person(8, status="suspect"))),
    }
    funnel.touch(made["called"], Channel.CALL, Outcome.NO_ANSWER)
    funnel.touch(made["mailed"], Channel.EMAIL, Outcome.NO_ANSWER)
    return {name: record.id for name, record in made.items()}


@pytest.fixture
def qualifying(repository: Repository, clock: ManualClock) -> Funnel:
    return Funnel(repository, clock=clock, engine=ENGINE)


def _lead(funnel: Funnel, id: UUID) -> Lead:
    record = funnel.get(id)
    assert isinstance(record, Lead)
    return record


@pytest.mark.parametrize("page_size", [1, 3, 1000])
def test_each_lead_goes_where_qualify_would_send_it(
    qualifying: Funnel, clock: ManualClock, page_size: int
) -> None:
    ids = _mix(qualifying)
    twin = Funnel(InMemoryRepository(), clock=ManualClock(clock.now()), engine=ENGINE)
    twin_ids = _mix(twin)
    clock.advance(hours=1)
    twin.clock.advance(hours=1)  # type: ignore[attr-defined]
    counts = qualifying.qualify_all(actor="bulk")
    assert counts == {"qualified": 2, "unqualified": 2, "waiting": 3, "skipped": 0, "failed": 0}
    for name, status in EXPECTED.items():
        one_by_one = twin.qualify(twin_ids[name])
        bulk = _lead(qualifying, ids[name])
        alone = _lead(twin, twin_ids[name])
        assert bulk.status == one_by_one.status == status, name
        assert (bulk.status, bulk.tags, bulk.profile, bulk.status_at) == (
            alone.status,
            alone.tags,
            alone.profile,
            alone.status_at,
        ), name
    assert _lead(qualifying, ids["vip"]).tags == {"vip", "sweet-spot"}
    assert _lead(qualifying, ids["suspect"]).status == LeadStatus.SUSPECT
    assert len(qualifying.history(ids["suspect"])) == 1  # not judged, nothing recorded


def test_one_compact_qualify_event_per_lead(qualifying: Funnel, clock: ManualClock) -> None:
    ids = _mix(qualifying)
    clock.advance(hours=1)
    qualifying.qualify_all(actor="bulk", reason="monthly review", page_size=2)
    for name, status in EXPECTED.items():
        history = qualifying.history(ids[name])
        judged = [e for e in history if e.name == "qualify"]
        assert len(judged) == 1, name
        event = judged[0]
        assert (event.source, event.dest, event.at) == ("raw", status.value, clock.now())
        assert (event.actor, event.reason) == ("bulk", "monthly review")
        assert event.data["qualified"] is (status is LeadStatus.QUALIFIED)
        assert event.data["forced"] is False
        assert set(event.data) <= {
            "qualified",
            "decision",
            "profile",
            "score",
            "tier",
            "outcomes",
            "forced",
            "missing",
        }
        assert "verdicts" not in event.data  # the explanations: funnel.qualify gives them
    untitled = qualifying.history(ids["untitled"])[-1].data
    assert (untitled["decision"], untitled["missing"]) == ("undecided", ["title"])
    fit = qualifying.history(ids["fit"])[-1].data
    assert (fit["decision"], fit["profile"], fit["score"], fit["tier"]) == (
        "qualified",
        "msp-owner",
        1.0,
        "warm",
    )
    assert "missing" not in fit
    abroad = qualifying.history(ids["abroad"])[-1].data
    assert (abroad["decision"], abroad["outcomes"]) == ("hard_fail", {"msp-owner": "hard_fail"})


def test_a_lead_that_stays_where_it_is_is_not_rewritten(
    qualifying: Funnel, clock: ManualClock
) -> None:
    ids = _mix(qualifying)
    before = {name: _lead(qualifying, id) for name, id in ids.items()}
    clock.advance(hours=1)
    qualifying.qualify_all()
    for name in ("assistant", "mailed", "untitled"):
        assert _lead(qualifying, ids[name]) == before[name], name  # same version, same time
    moved = _lead(qualifying, ids["fit"])
    assert moved.version == before["fit"].version + 1
    assert moved.updated_at == moved.status_at == clock.now()


def test_pages_are_commits_and_calls_are_asked_once_per_page(
    qualifying: Funnel, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mix(qualifying)
    repository = qualifying.repository
    commits = _spy(monkeypatch, repository, "commit")
    asked = _spy(monkeypatch, repository, "touched")
    one_at_a_time = _spy(monkeypatch, repository, "touches")
    qualifying.qualify_all(page_size=3)
    assert len(commits) == 3  # 7 raw leads: pages of 3, 3 and 1
    assert [len(c[0][0].events) for c in commits] == [3, 3, 1]
    assert 1 <= len(asked) <= 3  # only pages with a soft failure ask
    assert one_at_a_time == []  # the leads left waiting: their touches counted at once


def test_a_status_that_cannot_be_qualified_skips_every_lead(qualifying: Funnel) -> None:
    ids = _mix(qualifying)
    counts = qualifying.qualify_all(status="suspect")
    assert counts == {"qualified": 0, "unqualified": 0, "waiting": 0, "skipped": 1, "failed": 0}
    assert [e.name for e in qualifying.history(ids["suspect"])] == ["add"]


def test_unqualified_leads_can_be_judged_again(qualifying: Funnel, clock: ManualClock) -> None:
    ids = _mix(qualifying)
    qualifying.qualify_all()
    again = qualifying.qualify_all(status="unqualified")
    # Still a hard failure and still a called soft failure: they stay, judged again.
    assert again == {"qualified": 0, "unqualified": 2, "waiting": 0, "skipped": 0, "failed": 0}
    assert [e.name for e in qualifying.history(ids["abroad"])].count("qualify") == 2
    assert _lead(qualifying, ids["abroad"]).status == LeadStatus.UNQUALIFIED


def test_without_an_engine_nothing_is_judged(repository: Repository, clock: ManualClock) -> None:
    bare = Funnel(repository, clock=clock)
    nothing = {"qualified": 0, "unqualified": 0, "waiting": 0, "skipped": 0, "failed": 0}
    assert bare.qualify_all() == nothing
    lead = bare.capture(Lead(**person(1)))
    with pytest.raises(ConfigError, match="no qualification engine"):
        bare.qualify_all()
    assert [e.name for e in bare.history(lead)] == ["capture"]


def test_an_interrupted_run_loses_nothing_and_the_next_one_finishes(
    qualifying: Funnel, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _mix(qualifying)
    clock.advance(hours=1)
    repository = qualifying.repository
    real = repository.commit
    calls: list[int] = []

    def interrupted(changes: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C, between two pages
        return real(changes)

    monkeypatch.setattr(repository, "commit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        qualifying.qualify_all(page_size=2)
    monkeypatch.setattr(repository, "commit", real)
    judged = [n for n, id in ids.items() if _qualify_events(qualifying, id)]
    assert len(judged) == 2  # the first page, whole; nothing of the second
    _consistent(qualifying, ids)
    clock.advance(hours=1)
    qualifying.qualify_all(page_size=2)
    for name, status in EXPECTED.items():
        assert _lead(qualifying, ids[name]).status == status, name
    _consistent(qualifying, ids)


def test_a_lead_changed_while_its_page_is_judged_is_judged_afresh(
    qualifying: Funnel, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _mix(qualifying)
    repository = qualifying.repository
    real = repository.commit
    state = {"raced": False}

    def racing(changes: Any) -> Any:
        if not state["raced"]:
            state["raced"] = True
            # Another user, between the page's read and its commit: one lead is edited
            # out of the profile, another disqualified by hand.
            fit = _lead(qualifying, ids["fit"])
            qualifying.update(fit.model_copy(update={"title": "Intern"}))
            qualifying.disqualify(ids["vip"], reason="asked us to stop")
        return real(changes)

    monkeypatch.setattr(repository, "commit", racing)
    counts = qualifying.qualify_all()
    assert counts == {"qualified": 0, "unqualified": 2, "waiting": 4, "skipped": 1, "failed": 0}
    assert _lead(qualifying, ids["fit"]).status == LeadStatus.RAW  # judged on its new title
    assert [e.name for e in qualifying.history(ids["vip"])][-1] == "disqualify"
    _consistent(qualifying, ids)


@pytest.mark.parametrize("bulk", [False, True], ids=["qualify", "qualify_all"])
def test_a_call_logged_while_a_soft_failure_is_judged_is_not_missed(
    qualifying: Funnel, monkeypatch: pytest.MonkeyPatch, bulk: bool
) -> None:
    """A soft failure waits for a call: one logged between the read of the lead's
    touches and the commit refuses the commit (the touches it was decided on no longer
    hold), and the lead, judged again, is unqualified: never left waiting on a stale
    read (DESIGN 12)."""
    lead = qualifying.capture(Lead(**person(3, title="Office Manager")))
    repository = qualifying.repository
    real_commit = repository.commit
    state = {"raced": False}

    def racing(changes: Any) -> Any:
        if not state["raced"] and any(e.name == "qualify" for e in changes.events):
            state["raced"] = True
            # A rep's call, committed between the judgement and its commit.
            qualifying.touch(lead.id, Channel.CALL, Outcome.NO_ANSWER)
        return real_commit(changes)

    monkeypatch.setattr(repository, "commit", racing)
    if bulk:
        counts = qualifying.qualify_all()
        assert (counts["unqualified"], counts["waiting"]) == (1, 0)
    else:
        assert qualifying.qualify(lead).status == LeadStatus.UNQUALIFIED
    assert state["raced"]
    assert _lead(qualifying, lead.id).status == LeadStatus.UNQUALIFIED
    moves = [(e.name, e.dest) for e in qualifying.history(lead.id) if e.name == "qualify"]
    assert moves == [("qualify", "unqualified")]  # the stale judgement left nothing


def test_a_page_that_keeps_losing_races_is_qualified_lead_by_lead(
    qualifying: Funnel, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _mix(qualifying)
    repository = qualifying.repository
    pages_lose_races(repository, monkeypatch)
    counts = qualifying.qualify_all()
    assert counts == {"qualified": 2, "unqualified": 2, "waiting": 3, "skipped": 0, "failed": 0}
    for name, status in EXPECTED.items():
        assert _lead(qualifying, ids[name]).status == status, name


def _spy(
    monkeypatch: pytest.MonkeyPatch, target: Any, name: str
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Record the calls of ``target.name`` (which still runs)."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    real: Callable[..., Any] = getattr(target, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, spy)
    return calls


def _qualify_events(funnel: Funnel, id: UUID) -> list[Any]:
    return [e for e in funnel.history(id) if e.name == "qualify"]


def _consistent(funnel: Funnel, ids: dict[str, UUID]) -> None:
    """Every lead's status is where its last event left it: no status moved without
    its event, no event stored without its move."""
    for name, id in ids.items():
        history = funnel.history(id)
        assert _lead(funnel, id).status.value == history[-1].dest, name


def test_each_page_is_dated_when_it_is_judged_so_history_follows_the_commits(
    repository: Repository,
) -> None:
    """A long run meets the application's edits: an edit committed while page 1 was
    being judged, on a lead of page 2, is dated before that lead's ``qualify`` (the run
    dated every page with its start, so history listed the qualify first and the lead's
    ``updated_at`` went back). ``at=`` still dates the whole run."""
    clock = ManualClock(T0)
    funnel = Funnel(repository, engine=ENGINE, clock=clock)
    first, second = (funnel.capture(Lead(**person(n))) for n in (1, 2))
    batches = repository.lead_batches

    def editing_between_pages(*, status: LeadStatus, size: int) -> Any:
        for number, page in enumerate(batches(status=status, size=size)):
            if number == 1:  # page 2 is read after the app's edit
                clock.advance(minutes=5)
                funnel.update(funnel.get_lead(second.id).model_copy(update={"notes": "x"}))
                page = [funnel.get_lead(second.id)]
            clock.advance(minutes=1)
            yield page

    repository.lead_batches = editing_between_pages  # type: ignore[method-assign]
    funnel.qualify_all(page_size=1)
    edit, judged = funnel.history(second)[-2:]
    assert (edit.name, judged.name) == ("update", "qualify")
    assert edit.position < judged.position
    assert edit.at < judged.at == funnel.get_lead(second.id).updated_at
    assert funnel.history(first)[-1].at < edit.at
    del repository.lead_batches
    third = funnel.capture(Lead(**person(3)))
    when = T0 + timedelta(hours=1)
    funnel.qualify_all(at=when)
    assert funnel.history(third)[-1].at == when


class _Picky(BaseRule):
    """A rule that fails (raises) on leads whose notes are not a number."""

    name = "picky"

    def evaluate(self, lead: Lead) -> Verdict:
        return Verdict.passed("scored") if int(lead.notes or "0") > 50 else Verdict.failed("low")


def _picky_funnel(repository: Repository, clock: ManualClock) -> Funnel:
    return Funnel(
        repository, clock=clock, engine=QualificationEngine([Profile("scored", [_Picky()])])
    )


@pytest.mark.parametrize("page_size", [1, 2, 1000])
def test_with_on_error_one_failing_lead_never_stops_the_run(
    repository: Repository, clock: ManualClock, page_size: int
) -> None:
    funnel = _picky_funnel(repository, clock)
    notes = ["80", "eighty", "90", "10", "n/a", "70"]
    leads = [funnel.capture(Lead(**person(i, notes=n))) for i, n in enumerate(notes, 1)]
    before = {lead.id: funnel.get_lead(lead.id) for lead in leads}
    clock.advance(hours=1)
    errors: list[LeadFunnelError] = []
    counts = funnel.qualify_all(page_size=page_size, on_error=errors.append)
    failures = [e for e in errors if isinstance(e, RuleError)]
    assert len(failures) == len(errors)
    odd = {leads[1].id, leads[4].id}
    assert counts == {"qualified": 3, "unqualified": 0, "waiting": 1, "skipped": 0, "failed": 2}
    assert sorted(str(e.lead_id) for e in failures) == sorted(map(str, odd))
    assert all(e.rule == "picky" and e.profile == "scored" for e in failures)
    assert all(isinstance(e.__cause__, ValueError) for e in failures)
    for lead in leads:
        stored = funnel.get_lead(lead.id)
        if lead.id in odd:  # left as it was: no change, no event
            assert stored == before[lead.id]
            assert [e.name for e in funnel.history(lead.id)] == ["capture"]
        else:
            assert [e.name for e in funnel.history(lead.id)] == ["capture", "qualify"]
    # The next run judges the failed leads again (and only those, with the one waiting).
    again: list[LeadFunnelError] = []
    assert funnel.qualify_all(on_error=again.append)["failed"] == 2
    assert len(again) == 2


def test_without_on_error_a_failing_lead_still_stops_the_run(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = _picky_funnel(repository, clock)
    good = funnel.capture(Lead(**person(1, notes="80")))
    odd = funnel.capture(Lead(**person(2, notes="eighty")))
    with pytest.raises(RuleError) as raised:
        funnel.qualify_all(page_size=1)
    assert raised.value.lead_id == odd.id
    assert funnel.get_lead(good.id).status == LeadStatus.QUALIFIED  # its page, stored
    assert funnel.get_lead(odd.id).status == LeadStatus.RAW


def test_on_error_hears_only_of_the_judging_the_store_kept(
    repository: Repository, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page judged again after losing a race reports its failures once, after it is
    stored; an ``on_error`` that raises stops the run there, its page kept."""
    funnel = _picky_funnel(repository, clock)
    leads = [funnel.capture(Lead(**person(i, notes=n))) for i, n in enumerate(["x", "80"], 1)]
    later = [funnel.capture(Lead(**person(i, notes="y"))) for i in (3, 4)]
    real = repository.commit
    state = {"raced": False}

    def racing(changes: Any) -> Any:
        if not state["raced"] and any(e.name == "qualify" for e in changes.events):
            state["raced"] = True
            funnel.update(funnel.get_lead(leads[1].id).model_copy(update={"city": "Austin"}))
        return real(changes)

    monkeypatch.setattr(repository, "commit", racing)
    heard: list[UUID] = []

    def hear(error: LeadFunnelError) -> None:
        assert isinstance(error, RuleError)
        heard.append(error.lead_id)

    counts = funnel.qualify_all(page_size=2, on_error=hear)
    assert state["raced"]
    assert heard == [leads[0].id, later[0].id, later[1].id]  # once each, in order
    assert (counts["failed"], counts["qualified"]) == (3, 1)

    def stop(error: LeadFunnelError) -> None:
        assert isinstance(error, RuleError)
        raise RuntimeError(f"stop at {error.lead_id}")

    extra = funnel.capture(Lead(**person(5, notes="90")))
    with pytest.raises(RuntimeError, match=str(leads[0].id)):
        funnel.qualify_all(page_size=2, on_error=stop)
    # ``stop`` ran once the first page (two failing leads) was stored: the page after
    # it was never judged.
    assert funnel.get_lead(extra.id).status == LeadStatus.RAW
