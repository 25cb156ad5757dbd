"""funnel.report(): counts from history, rates, groups, health checks and outputs."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from conftest import T0, new_sqlite_url, person
from leadfunnel import (
    FUNNEL_STEPS,
    Channel,
    Contact,
    Funnel,
    GroupBy,
    InMemoryRepository,
    InvalidArgumentError,
    Lead,
    Opportunity,
    Outcome,
    SqlRepository,
)
from leadfunnel._reports import build_report
from leadfunnel.testing import ManualClock, histories, replay


def won_deal(
    funnel: Funnel, n: int, *, setter: str = "sue", owner: str = "rep", **fields: Any
) -> Any:
    lead = funnel.capture(Lead(**person(n, **fields)))
    funnel.qualify(lead, force=True)
    funnel.touch(lead, Channel.CALL, Outcome.INTERESTED)
    deal = funnel.set_appointment(lead, owner=owner, setter=setter)
    for step in (funnel.sit, funnel.propose, funnel.send_contract):
        deal = step(deal)
    return funnel.win(deal, amount=1000)


def counts(report: Any) -> dict[str, int]:
    return {name: step.count for name, step in report.steps.items()}


def stage_times(funnel: Funnel, by: Any) -> list[tuple[Any, ...]]:
    rows = funnel.repository.stage_times(since=None, until=None, by=by)
    return [(r.step, r.group, r.count, round(r.median_seconds, 3)) for r in rows]


def test_an_empty_funnel_reports_zeros_and_no_rates(funnel: Funnel) -> None:
    report = funnel.report()
    assert list(report.steps) == list(FUNNEL_STEPS)
    assert all(step.count == 0 for step in report.steps.values())
    assert all(step.rate is None and step.overall is None for step in report.steps.values())
    assert all(check.ok is None for check in report.checks.values())


def test_each_subject_counts_at_every_step_it_passed(funnel: Funnel) -> None:
    won_deal(funnel, 1)
    qualified = funnel.capture(Lead(**person(2)))
    funnel.qualify(qualified, force=True)
    funnel.capture(Lead(**person(3)))
    report = funnel.report()
    assert counts(report) == {
        "raw": 3,
        "qualified": 2,
        "appointment_set": 1,
        "appointment_sat": 1,
        "proposing": 1,
        "contract_sent": 1,
        "won": 1,
    }
    assert report.steps["qualified"].rate == pytest.approx(2 / 3)
    assert report.steps["appointment_set"].rate == pytest.approx(1 / 2)
    assert report.steps["won"].overall == pytest.approx(1 / 3)
    assert report.steps["raw"].rate is None


def test_skipped_steps_count_at_the_move_that_skipped_them(funnel: Funnel) -> None:
    referral = funnel.capture(Lead(**person(1)))
    deal = funnel.set_appointment(referral, force=True)  # raw -> converted skips qualified
    deal = funnel.propose(funnel.sit(deal))
    funnel.win(deal, force=True)  # proposing -> won skips contract_sent
    assert counts(funnel.report()) == dict.fromkeys(FUNNEL_STEPS, 1)


def test_a_suspect_counts_as_raw_only_once_it_responds(funnel: Funnel, clock: ManualClock) -> None:
    suspect = funnel.add(Lead(**person(1, status="suspect")))
    assert funnel.report().steps["raw"].count == 0
    clock.advance(days=10)
    funnel.respond(suspect)
    assert funnel.report(since=T0 + timedelta(days=5)).steps["raw"].count == 1


def test_periods_are_half_open(funnel: Funnel, clock: ManualClock) -> None:
    funnel.capture(Lead(**person(1)))
    clock.advance(days=31)
    second = funnel.capture(Lead(**person(2)))
    funnel.qualify(second, force=True)
    april = T0 + timedelta(days=31)
    assert counts(funnel.report(until=april))["raw"] == 1
    assert counts(funnel.report(since=april))["raw"] == 1
    assert counts(funnel.report(since=april))["qualified"] == 1
    assert counts(funnel.report(since=T0, until=T0))["raw"] == 0
    with pytest.raises(ValueError, match="no timezone"):
        funnel.report(since=april.replace(tzinfo=None))


def test_each_period_is_answered_for_itself_in_any_order(
    funnel: Funnel, clock: ManualClock
) -> None:
    # A SQL store builds a report's statements once and binds each period's bounds: a
    # period asked earlier must not leak into a later one, in counts, follow-up figures
    # or time in stage, with one bound or both, and grouped.
    early = won_deal(funnel, 1, source="webinar")
    clock.advance(days=40)
    funnel.qualify(funnel.capture(Lead(**person(2, source="referral"))), force=True)
    clock.advance(days=3)
    later = won_deal(funnel, 3, source="referral")
    cut = T0 + timedelta(days=30)
    periods = [
        {"since": cut},
        {"until": cut},
        {"since": T0, "until": cut},
        {"since": cut, "until": clock.now() + timedelta(days=1)},
        {},
    ]

    def answer(period: dict[str, Any]) -> tuple[Any, ...]:
        report = funnel.report(**period)
        grouped = funnel.report(**period, by="source")
        return (
            counts(report),
            report.qualified_leads,
            report.touches_on_qualified,
            report.won_revenue,
            {step: t.count for step, t in report.time_in_stage.items()},
            {key: counts(group) for key, group in grouped.groups.items()},
        )

    first = [answer(period) for period in periods]
    assert [answer(period) for period in reversed(periods)] == first[::-1]
    since_cut, until_cut = first[0], first[1]
    assert since_cut[0]["raw"] == 2
    assert until_cut[0]["raw"] == 1
    assert since_cut[1] == 2  # qualified leads: the second and the later deal's
    assert until_cut[1] == 1
    assert since_cut[5].keys() == {"referral"}
    assert until_cut[5].keys() == {"webinar"}
    assert early.amount == later.amount


def test_groups_by_source_owner_setter_profile_and_month(
    funnel: Funnel, clock: ManualClock
) -> None:
    won_deal(funnel, 1, source="webinar", owner="ann", setter="sue")
    clock.advance(days=31)
    lost = funnel.capture(Lead(**person(2, source="ads", owner="bob")))
    funnel.qualify(lost, force=True)
    deal = funnel.set_appointment(lost, owner="ann", setter="cas")
    funnel.lose(deal, reason="no_show")

    by_source = funnel.report(by="source").groups
    assert set(by_source) == {"webinar", "ads"}
    assert counts(by_source["webinar"])["won"] == 1
    assert counts(by_source["ads"])["appointment_set"] == 1
    assert counts(by_source["ads"])["appointment_sat"] == 0

    by_setter = funnel.report(by="setter").groups
    assert counts(by_setter[None])["raw"] == 2  # lead steps have no setter
    assert counts(by_setter["cas"])["appointment_set"] == 1

    by_owner = funnel.report(by="owner").groups
    assert counts(by_owner["bob"])["raw"] == 1  # the lead's owner for lead steps
    assert counts(by_owner["ann"])["appointment_set"] == 2  # the deal's owner after

    by_month = funnel.report(by="month").groups
    assert counts(by_month["2026-03"])["won"] == 1
    assert counts(by_month["2026-04"])["raw"] == 1
    with pytest.raises(InvalidArgumentError, match="cannot group"):
        funnel.report(by="colour")  # type: ignore[arg-type]


def test_health_checks_and_weak_setters(funnel: Funnel, clock: ManualClock) -> None:
    for n in range(1, 4):
        won_deal(funnel, n, setter="sue")
    for n in range(4, 7):
        lead = funnel.capture(Lead(**person(n)))
        funnel.qualify(lead, force=True)
        funnel.lose(funnel.set_appointment(lead, setter="cas"), reason="no_show")
    unfit = funnel.capture(Lead(**person(7)))
    funnel.disqualify(unfit)
    funnel.qualify(funnel.capture(Lead(**person(8))), force=True)  # nobody called it
    clock.advance(days=1)  # the appointments (at their booking) are past
    report = funnel.report()
    checks = report.checks
    assert checks["appointments_sat"].value == pytest.approx(0.5)
    assert checks["appointments_sat"].ok is False
    assert checks["close_rate"].value == 1.0
    assert checks["close_rate"].ok is True
    assert checks["unqualified_share"].value == pytest.approx(1 / 8)
    # A booked lead was followed up (the no-shows too); only the lead nobody called or
    # booked was not.
    assert checks["never_followed_up"].value == pytest.approx(1 / 7)
    assert checks["touches_per_qualified"].value == pytest.approx(3 / 7)
    assert report.setters == {"sue": 1.0, "cas": 0.0}
    assert report.weak_setters == ["cas"]
    assert "cas (0% sat)" in str(report)


def test_a_lead_followed_up_on_the_contact_it_became_counts_as_followed_up(
    funnel: Funnel,
) -> None:
    """A qualified lead booked at once and then called on its contact was followed up:
    both checks failed for every funnel whose leads were booked (100% never followed
    up, 0.0 touches) because only the lead's own touches counted."""
    for n in range(1, 5):
        lead = funnel.capture(Lead(**person(n)))
        funnel.qualify(lead, force=True)
        contact = funnel.get_contact(funnel.set_appointment(lead).contact_id)
        funnel.touch(contact, "call", "connected")
        funnel.touch(contact, "email", "no_answer")
    checks = funnel.report().checks
    assert checks["never_followed_up"].value == 0.0
    assert checks["never_followed_up"].ok is True
    assert checks["touches_per_qualified"].value == 2.0
    assert checks["touches_per_qualified"].ok is True


def test_time_in_stage_is_the_median_days_per_stretch(funnel: Funnel, clock: ManualClock) -> None:
    deals = []
    for n, days in enumerate((1, 3, 8), start=1):
        lead = funnel.capture(Lead(**person(n)))
        clock.advance(days=days)
        funnel.qualify(lead, force=True)
        clock.advance(days=2 * days)
        deals.append(funnel.set_appointment(lead, setter="sue"))
    clock.advance(days=1)
    sat = funnel.sit(deals[0])
    clock.advance(hours=12)
    funnel.win(funnel.send_contract(funnel.propose(sat)))
    times = funnel.report().time_in_stage
    assert list(times) == ["raw", "qualified", "appointment_set", "appointment_sat"]
    assert [(t.step, t.next, t.count) for t in times.values()] == [
        ("raw", "qualified", 3),
        ("qualified", "appointment_set", 3),
        ("appointment_set", "appointment_sat", 1),
        ("appointment_sat", "won", 1),
    ]
    assert times["raw"].median_days == pytest.approx(3)
    assert times["qualified"].median_days == pytest.approx(6)
    # The first deal was booked on day 3 and sat on day 37, after the others were booked.
    assert times["appointment_set"].median_days == pytest.approx(37 - 3)
    assert times["appointment_sat"].median_days == pytest.approx(0.5)
    assert times["raw"].label == "Raw leads -> Qualified leads"


def test_time_in_stage_skips_nothing_a_forced_conversion_skipped(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = funnel.capture(Lead(**person(1)))
    clock.advance(days=4)
    funnel.set_appointment(lead, force=True)  # qualified counts at the conversion
    times = funnel.report().time_in_stage
    assert times["raw"].median_days == pytest.approx(4)
    assert times["qualified"].median_days == 0


def test_time_in_stage_in_the_outputs(funnel: Funnel, clock: ManualClock) -> None:
    assert funnel.report().time_in_stage == {}
    assert "Time in stage" not in str(funnel.report())
    lead = funnel.capture(Lead(**person(1)))
    clock.advance(days=2, hours=12)
    funnel.qualify(lead, force=True)
    report = funnel.report()
    assert json.loads(report.to_json())["time_in_stage"] == [
        {"step": "raw", "next": "qualified", "median_days": 2.5, "count": 1}
    ]
    assert "Raw leads -> Qualified leads" in str(report)
    assert "2.5  over 1 subject" in str(report)
    # Outside the period, the stretch is not measured.
    assert funnel.report(until=T0 + timedelta(days=1)).time_in_stage == {}


def test_groups_carry_their_own_time_in_stage(funnel: Funnel, clock: ManualClock) -> None:
    for n, (source, days) in enumerate([("webinar", 1), ("webinar", 3), ("ads", 10)]):
        lead = funnel.capture(Lead(**person(n, source=source)))
        clock.advance(days=days)
        funnel.qualify(lead, force=True)
    report = funnel.report(by="source")
    assert report.time_in_stage["raw"].median_days == pytest.approx(3)
    assert report.groups["webinar"].time_in_stage["raw"].median_days == pytest.approx(2)
    assert report.groups["ads"].time_in_stage["raw"].median_days == pytest.approx(10)
    assert "median days: raw -> qualified 2.0" in str(report)
    data = json.loads(report.to_json())
    assert data["groups"]["ads"]["time_in_stage"][0]["count"] == 1


def test_required_for_works_backward_through_the_rates(funnel: Funnel) -> None:
    won_deal(funnel, 1)
    for n in (2, 3, 4):
        funnel.capture(Lead(**person(n)))
    needed = funnel.report().required_for(wins=10)
    assert needed == {
        "raw": 40,
        "qualified": 10,
        "appointment_set": 10,
        "appointment_sat": 10,
        "proposing": 10,
        "contract_sent": 10,
        "won": 10,
    }
    empty = Funnel().report().required_for(wins=5)
    assert empty["won"] == 5
    assert empty["raw"] is None
    # No wins need none of anything, whatever the rates (unknown ones included).
    assert set(Funnel().report().required_for(wins=0).values()) == {0}
    assert set(funnel.report().required_for(wins=0).values()) == {0}
    with pytest.raises(ValueError, match="whole number"):
        funnel.report().required_for(wins=-1)


def test_outputs_parse(funnel: Funnel) -> None:
    won_deal(funnel, 1, source="webinar")
    funnel.capture(Lead(**person(2, source="ads")))
    report = funnel.report(by="source")
    data = json.loads(report.to_json())
    assert [s["step"] for s in data["steps"]] == list(FUNNEL_STEPS)
    assert data["steps"][0]["count"] == 2
    assert set(data["groups"]) == {"webinar", "ads"}
    rows = list(csv.reader(io.StringIO(report.to_csv())))
    assert rows[0] == ["step", "count", "rate", "overall"]
    assert [r[0] for r in rows[1:]] == list(FUNNEL_STEPS)
    assert rows[1][1] == "2"
    grouped = list(csv.reader(io.StringIO(report.to_csv(groups=True))))
    assert grouped[0] == ["scope", "group", "step", "count", "rate", "overall"]
    assert len(grouped) == 1 + 7 * 3
    assert {(row[0], row[1]) for row in grouped[1:]} == {
        ("all", ""),
        ("source", "webinar"),
        ("source", "ads"),
    }
    svg = ET.fromstring(report.to_svg())
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    # Small multiples: a panel per group, a bar per step with a count (ads has one).
    bars = [
        r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.find("{*}title") is not None
    ]
    assert sorted(r.findtext("{*}title", "") for r in bars)[:2] == [
        "ads, Raw leads: 1",
        "webinar, Appointments sat: 1",
    ]
    assert len(bars) == 1 + 7
    text = str(report)
    for step in FUNNEL_STEPS:
        assert step in text
    assert "source = webinar" in text


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=histories(max_steps=25))
def test_sql_counts_equal_memory_counts_and_steps_never_grow(
    history: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    memory = Funnel(InMemoryRepository(), clock=ManualClock(T0))
    path: Path = tmp_path_factory.mktemp("report") / "f.db"
    sql = Funnel(SqlRepository(new_sqlite_url(path)), clock=ManualClock(T0))
    replay(memory, history)
    replay(sql, history)
    for by in (None, "source", "owner", "setter", "month"):
        assert stage_times(memory, by) == stage_times(sql, by)
    for name in ("not_sat", "not_bought", "never_booked"):
        # A deal's id is each store's own: compare deals by the lead they came from.
        def rows(funnel: Funnel, name: str = name) -> list[Any]:
            return sorted(
                (
                    i.subject,
                    str(i.record.lead_id if isinstance(i.record, Opportunity) else i.id),
                    i.since,
                    i.age_days,
                )
                for i in funnel.rep_list(name)
            )

        assert rows(memory) == rows(sql)
    groupings: tuple[GroupBy | None, ...] = (None, "source", "setter", "month")
    for by in groupings:
        left, right = memory.report(by=by), sql.report(by=by)
        assert counts(left) == counts(right)
        money = ("won_revenue", "won_deals", "pipeline_value", "open_deals", "unpriced_deals")
        assert [getattr(left, f) for f in money] == [getattr(right, f) for f in money]
        assert {k: (g.won_revenue, g.won_deals) for k, g in left.groups.items()} == {
            k: (g.won_revenue, g.won_deals) for k, g in right.groups.items()
        }
        assert {k: counts(g) for k, g in left.groups.items()} == {
            k: counts(g) for k, g in right.groups.items()
        }
    skipped = any(
        (e.name == "convert" and e.source == "raw") or (e.name == "win" and e.source == "proposing")
        for lead in memory.leads()
        for e in memory.history(lead)
    ) or any(
        e.name == "win" and e.source == "proposing"
        for deal in memory.opportunities()
        for e in memory.history(deal)
    )
    if not skipped:
        values = list(counts(memory.report()).values())
        # Leads and deals are different subjects: compare within each part of the funnel.
        assert values[1] <= values[0]
        assert all(b <= a for a, b in pairwise(values[2:]))


def test_weak_setters_with_equal_rates_list_by_name_on_every_store(
    funnel: Funnel, clock: ManualClock
) -> None:
    # Found by the differential test: memory and SQL listed two equally weak setters in
    # different orders.
    for n, setter in enumerate(["tom", "sue", "tom", "sue"]):
        lead = funnel.capture(Lead(**person(n)))
        funnel.qualify(lead, force=True)
        deal = funnel.set_appointment(lead, setter=setter)
        if n < 2:
            funnel.sit(deal)
    clock.advance(days=1)
    assert funnel.report().weak_setters == ["sue", "tom"]


def test_an_appointment_not_yet_due_is_nobody_s_no_show(funnel: Funnel, clock: ManualClock) -> None:
    """Ten appointments booked on Thursday for next Tuesday, all of which sat: the week
    they were booked read "0% sat" and named their setter weak, though none was due (a
    reports audit). The rate is counted against the appointments that came due: none
    the first week, all sat the next; a real no-show still counts."""
    thursday = clock.now()
    tuesday = thursday + timedelta(days=5)
    deals = []
    for n in range(10):
        lead = funnel.capture(Lead(**person(n)))
        funnel.qualify(lead, force=True)
        deals.append(funnel.set_appointment(lead, appointment_at=tuesday, setter="dana"))
    week = timedelta(days=7)
    first = build_report(funnel.repository, since=thursday, until=thursday + timedelta(days=4))
    assert first.checks["appointments_sat"].value is None  # nothing came due
    assert first.weak_setters == []
    clock.set(tuesday)
    for deal in deals[:9]:
        funnel.sit(deal)
    clock.advance(days=14)
    second = build_report(
        funnel.repository, since=thursday + timedelta(days=4), until=thursday + week + week
    )
    assert second.checks["appointments_sat"].value == pytest.approx(0.9)  # one no-show
    assert second.setters == {"dana": pytest.approx(0.9)}
    assert second.checks["appointments_sat"].ok is True


def test_deals_of_a_contact_with_no_lead_count_under_the_contact_s_source(
    funnel: Funnel,
) -> None:
    """A customer imported from another CRM is a contact with no lead: its new deals and
    their revenue counted under no source at all; they count under the contact's own.
    A deal whose lead is known still counts under the lead's source."""
    imported = funnel.import_leads([{**person(1), "type": "client", "source": "tradeshow"}])
    client = funnel.get_contact(imported.added[0])
    deal = funnel.set_appointment(client)
    for move in (funnel.sit, funnel.propose, funnel.send_contract):
        deal = move(deal)
    funnel.win(deal, amount=9_000)
    won_deal(funnel, 2)  # a lead's deal: the lead's source (webinar)
    report = funnel.report(by="source")
    assert report.groups["tradeshow"].steps["won"].count == 1
    assert report.groups["tradeshow"].won_revenue == 9_000
    assert report.groups["webinar"].steps["won"].count == 1
    assert None not in report.groups


def test_time_in_stage_of_a_contacts_deal_groups_under_the_contacts_own_source(
    funnel: Funnel, clock: ManualClock
) -> None:
    """A contact with no lead (a customer imported as one) has a source of its own: the
    stretches of its deals count there, on every adapter, as its steps do (found by
    the SQL-against-memory property test, which the SQL adapter failed)."""
    customer = funnel.add(Contact(**person(1, source="trade-show")))
    deal = funnel.set_appointment(customer)
    clock.advance(hours=1)
    funnel.sit(deal)
    rows = stage_times(funnel, "source")
    assert ("appointment_set", "trade-show", 1, 3600.0) in rows


def test_the_json_keeps_no_setter_apart_from_a_setter_named_none(
    funnel: Funnel, clock: ManualClock
) -> None:
    """JSON keys are text: the deals booked without a setter are "" (as groups are),
    never "None", a name a setter could have; the same on every run."""
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    funnel.set_appointment(lead, appointment_at=clock.now())  # never sits
    other = funnel.capture(Lead(**person(2)))
    funnel.qualify(other, force=True)
    funnel.sit(funnel.set_appointment(other, setter="None", appointment_at=clock.now()))
    clock.advance(hours=1)
    report = funnel.report()
    assert report.setters == {"None": 1.0, None: 0.0}
    data = json.loads(report.to_json())
    assert data["setters"] == {"None": 1.0, "": 0.0}
    assert list(data["setters"]) == ["None", ""]
    assert data["weak_setters"] == [""]


def test_merged_contacts_touches_count_once_per_qualified_leads(
    funnel: Funnel, clock: ManualClock
) -> None:
    """Two leads of one person, each converted, whose contacts are merged: both leads
    now lead to the kept contact, whose touches are counted once, not once a lead."""
    deals = []
    for n in (1, 2):
        lead = funnel.capture(Lead(**person(n)))
        funnel.qualify(lead, force=True)
        deals.append(funnel.lose(funnel.set_appointment(lead), reason="price"))
    clock.advance(days=1)
    funnel.touch(deals[0].contact_id, "email", "replied")
    funnel.touch(deals[1].contact_id, "email", "replied")
    funnel.touch(deals[1].contact_id, "call", "connected")
    before = funnel.report().checks["touches_per_qualified"].value
    assert before == 1.5  # 3 touches, 2 qualified leads
    funnel.merge(deals[0].contact_id, deals[1].contact_id)
    assert funnel.report().checks["touches_per_qualified"].value == before


def test_an_open_start_is_the_oldest_record_when_a_deal_is_older_than_every_lead(
    funnel: Funnel, clock: ManualClock
) -> None:
    """A customer imported with a deal won years before the first lead: the report
    counts that deal, so its period starts there, not at the first lead."""
    customer = funnel.add(Contact(first_name="Old", email="old@customer.example.com"), at=T0)
    deal = funnel.set_appointment(customer, appointment_at=T0, at=T0)
    deal = funnel.send_contract(funnel.propose(funnel.sit(deal, at=T0), at=T0), at=T0)
    funnel.win(deal, amount=5000, at=T0)
    clock.advance(days=400)
    funnel.capture(Lead(first_name="New", email="new@lead.example.com"))
    report = funnel.report()
    assert report.period.startswith(f"{T0.date().isoformat()} (first record) to ")
    assert report.won_revenue == 5000
    alone = Funnel(InMemoryRepository(), clock=clock)
    alone.capture(Lead(first_name="New", email="new@lead.example.com"))
    assert "(first lead)" in alone.report().period
