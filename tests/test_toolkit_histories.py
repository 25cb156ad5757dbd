"""leadfunnel.testing's histories really test: deals get somewhere, the awkward people
come often, each step is aimed at someone who can take it, and a forced move's skipped
step reads the same in the assertion as in the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from conftest import new_sqlite_url, runpytest_here, survey
from leadfunnel import (
    Channel,
    Contact,
    ContactType,
    Funnel,
    InMemoryRepository,
    Lead,
    LeadStatus,
    Outcome,
    Profile,
    QualificationEngine,
    SqlRepository,
    Stage,
)
from leadfunnel.rules import Niche
from leadfunnel.testing import (
    FunnelStep,
    ManualClock,
    assert_passed_through,
    assert_report_counts,
    contacts,
    deal_histories,
    histories,
    leads,
    reached,
    replay,
)

pytest_plugins = ["pytester"]

START = datetime(2026, 1, 5, 9, tzinfo=UTC)

# A survey, not a search: the same 200 examples on every run (derandomize), generated
# only (no database replay, no shrinking), so the shares below are stable.
# Surveys measure the strategies alone (see conftest.no_local_constants).
pytestmark = pytest.mark.usefixtures("no_local_constants")

SURVEY = survey(200)


def _survey(strategy: st.SearchStrategy[list[FunnelStep]]) -> tuple[int, Counter[str]]:
    seen: Counter[str] = Counter()
    runs = [0]

    @SURVEY
    @given(strategy)
    def replayed(history: list[FunnelStep]) -> None:
        funnel = Funnel(clock=ManualClock(START))
        replay(funnel, history)
        runs[0] += 1
        seen.update(reached(funnel))

    replayed()
    return runs[0], seen


def test_histories_win_and_lose_deals_in_a_good_share_of_examples() -> None:
    runs, seen = _survey(histories())
    assert runs == 200
    share = {name: count / runs for name, count in seen.items()}
    # Over many samples each of these steps is reached in 50-70% of the examples, a won
    # deal in about 40%, a lost one in about 50%; one sample of 200 wanders by ten
    # points or so (hypothesis's examples are not independent).
    for step in ("appointment_set", "appointment_sat", "proposing", "contract_sent"):
        assert share.get(step, 0) >= 0.35, (step, share)
    assert share.get("won", 0) >= 0.25, share
    assert share.get("lost", 0) >= 0.3, share
    # ... and the awkward people are there, often.
    assert share.get("keyless", 0) >= 0.2, share
    assert share.get("merged", 0) >= 0.15, share
    assert share.get("avoid", 0) >= 0.05, share  # one lead in eight arrives avoided


def test_deal_histories_win_and_lose_in_most_examples() -> None:
    runs, seen = _survey(deal_histories())
    share = {name: count / runs for name, count in seen.items()}
    assert share["appointment_set"] == 1.0  # every example books at least one deal
    assert share.get("won", 0) >= 0.5, share
    assert share.get("lost", 0) >= 0.4, share


def test_replay_tells_hypothesis_what_each_example_reached(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_reached="""
from hypothesis import given, settings
from leadfunnel import Funnel
from leadfunnel.testing import deal_histories, replay


@settings(max_examples=20, deadline=None)
@given(deal_histories(max_deals=2))
def test_replayed(make_funnel, history):
    replay(make_funnel(), history)
"""
    )
    # The plugin from the source tree, not a copy an editable install may have made.
    result = runpytest_here(
        pytester, "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*Events:*", "*%, replay reached: appointment_set*", "*%, replay reached: raw*"]
    )


# --- strategies: the awkward cases come often -------------------------------------------


# The shares docs/testing.md gives, measured on a fixed sample. Hypothesis does not draw
# independent examples (it mutates earlier ones, and starts from the simplest values),
# so a share wanders by a few points from sample to sample: the tolerances allow for
# that, and still fail the shares the strategies once had (17% keyless, 6% avoided,
# 44% merged before). Each awkward case is on at least a quarter of the people's plans,
# so that every run of 100 examples holds it (tests/test_toolkit_audit.py).
PEOPLE = settings(SURVEY, max_examples=1_000)
SHARES = {
    # A sample comes out a little under the plans' 2/5 and 1/4: hypothesis favours the
    # first plan, a plain person.
    "keyless": (0.35, 0.08),  # neither e-mail nor phone, the erased included
    "erased": (0.23, 0.07),
    "merged before": (1 / 4, 0.06),  # an e-mail or phone merged away
}


def _shares(seen: Counter[str]) -> dict[str, float]:
    return {name: round(count / seen["all"], 3) for name, count in seen.items()}


def _count_awkward(seen: Counter[str], person: Lead | Contact) -> None:
    """Count what is awkward about ``person``, and check that it is a valid record
    that comes back equal from its JSON (what a store keeps)."""
    assert type(person).model_validate_json(person.model_dump_json()) == person
    assert type(person).model_validate(person.model_dump()) == person
    seen["all"] += 1
    seen["keyless"] += person.email is None and person.phone is None
    seen["one key"] += (person.email is None) != (person.phone is None)
    seen["erased"] += person.erased_at is not None
    seen["merged before"] += bool(person.other_emails or person.other_phones)
    if person.erased_at is not None:
        assert (person.first_name, person.email, person.notes) == (None, None, None)
    else:
        assert None not in (person.first_name, person.last_name, person.company)
    texts = [person.first_name, person.last_name, person.company, person.title, person.notes]
    seen["long text"] += any(len(text or "") >= 100 for text in texts)
    seen["non-ASCII"] += any(not (text or "").isascii() for text in texts)
    seen["a formula"] += any((text or " ")[0] in "=+-@" for text in texts)
    seen["notes"] += person.notes is not None
    seen["notes on lines"] += any(c in (person.notes or "") for c in "\t\n\r")
    seen["long notes"] += len(person.notes or "") >= 500
    seen["opt-outs"] += bool(person.opt_outs)
    created = person.created_at
    seen["far date"] += not 1900 <= created.year <= 2100
    seen["first or last instant"] += created.astimezone(UTC).year in (1, 9999) and (
        created.astimezone(UTC).date() in (date(1, 1, 1), date(9999, 12, 31))
    )
    seen["not UTC"] += created.utcoffset() != timedelta(0)
    seen["odd e-mail"] += person.email is not None and not person.email.islower()
    seen["phone abroad"] += (person.phone or "+1").startswith("+44")


def _drawn_shares(kind: str) -> dict[str, float]:
    """The survey: 1,000 drawn leads or contacts, and the share of each awkward case
    (``all`` is the count). Every drawn person is also checked to be a valid record that
    comes back equal from its JSON."""
    seen: Counter[str] = Counter()

    @PEOPLE
    @given(leads() if kind == "leads" else contacts())
    def drawn(person: Lead | Contact) -> None:
        _count_awkward(seen, person)
        if isinstance(person, Lead):
            seen["avoid"] += person.status == LeadStatus.AVOID
            seen["revenue in cents"] += person.annual_revenue is not None and (
                person.annual_revenue != int(person.annual_revenue)
            )
        else:
            seen["avoid"] += person.type == ContactType.AVOID

    drawn()
    return {**_shares(seen), "all": seen["all"]}


def _shares_alone(kind: str) -> dict[str, float]:
    """:func:`_drawn_shares` in a process of its own. The survey draws the same people
    on every run (derandomize), but in a process where many other tests ran before it
    (an xdist worker of the whole suite) it drew others, the same ones each time, with
    shares a little off (merged before 0.233 against 1/6): which earlier test leaves
    that state behind was not found. Measured alone, the shares are the strategies'."""
    code = f"import json, test_toolkit_histories as t; print(json.dumps(t._drawn_shares({kind!r})))"
    here = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=here,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shares: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return shares


def test_leads_bring_the_awkward_people_in_the_shares_the_docs_give() -> None:
    shares = _shares_alone("leads")
    assert shares["all"] == 1_000
    for name, (share, tolerance) in {**SHARES, "avoid": (1 / 4, 0.06)}.items():
        assert abs(shares[name] - share) <= tolerance, (name, shares)
    # The awkward values come often, not now and then.
    for name in ("one key", "long text", "non-ASCII", "notes", "not UTC", "opt-outs"):
        assert shares[name] >= 0.15, (name, shares)
    for name in ("notes on lines", "long notes", "far date", "a formula", "odd e-mail"):
        assert shares[name] >= 0.05, (name, shares)
    for name in ("first or last instant", "phone abroad", "revenue in cents"):
        assert shares[name] >= 0.02, (name, shares)


def test_contacts_bring_the_awkward_people_too() -> None:
    shares = _shares_alone("contacts")
    for name, (share, tolerance) in {**SHARES, "avoid": (1 / 4, 0.06)}.items():
        assert abs(shares[name] - share) <= tolerance, (name, shares)
    for name in ("long text", "not UTC", "far date", "notes on lines"):
        assert shares[name] >= 0.05, (name, shares)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            leads(erased_at=None),
            leads(status="raw"),
            leads(fits=QualificationEngine([Profile("it", [Niche(["IT Services"])])])),
            leads(keys="none"),
            contacts(type="prospect"),
        ),
        min_size=5,
        max_size=5,
    )
)
def test_erased_people_come_only_in_the_unconstrained_mix(people: list[Lead | Contact]) -> None:
    """Nothing may be done with an erased person: a lead of a given ``status``, a
    contact of a given ``type``, a lead to fit an engine, a badge (``keys="none"``) and
    ``erased_at=None`` are never erased, and each is somebody."""
    for person in people:
        assert person.erased_at is None
        assert None not in (person.first_name, person.company)


@settings(max_examples=30, deadline=None)
@given(st.lists(leads(keys="none", status="raw"), min_size=2, max_size=4), contacts(keys="none"))
def test_keyless_people_are_stored_and_never_taken_for_each_other(
    people: list[Lead], contact: Contact
) -> None:
    funnel = Funnel()
    for lead in people:
        assert (lead.email, lead.phone) == (None, None)
        assert None not in (lead.first_name, lead.company)
        funnel.capture(lead)  # no key to match: a new lead every time
    funnel.add(contact)
    assert len(funnel.leads()) == len(people)
    assert len(funnel.contacts()) == 1


@settings(max_examples=20, deadline=None)
@given(leads(keys="email", missing=False), leads(keys="phone"), leads(missing=False))
def test_keys_says_how_a_person_can_be_reached(email: Lead, phone: Lead, full: Lead) -> None:
    assert (email.email is None, email.phone is None) == (False, True)
    assert (phone.email is None, phone.phone is None) == (True, False)
    assert (full.email is None, full.phone is None) == (False, False)


class MyLead(Lead):
    endpoints: Annotated[int, Field(ge=0, le=5_000)] | None = None
    plan: Literal["basic", "pro"] = "basic"
    renewal: date | None = None
    account_code: Annotated[str, Field(min_length=3, max_length=8)] = "none"
    sku: Annotated[str, Field(pattern=r"^[A-Z]{3}-\d{4}$")] | None = None
    discount: Annotated[Decimal, Field(max_digits=5, decimal_places=3, ge=0)] | None = None


class MyContact(Contact):
    seats: int = 1


def test_model_draws_a_subclass_with_its_custom_fields() -> None:
    seen: Counter[str] = Counter()

    @SURVEY
    @given(leads(model=MyLead), contacts(model=MyContact, seats=st.integers(5, 9)))
    def drawn(lead: Lead, contact: Contact) -> None:
        assert isinstance(lead, MyLead)
        assert isinstance(contact, MyContact)
        assert lead.endpoints is None or 0 <= lead.endpoints <= 5_000
        assert 3 <= len(lead.account_code) <= 8
        assert 5 <= contact.seats <= 9  # a strategy given by keyword is drawn from
        seen["endpoints"] += lead.endpoints is not None
        seen["pro"] += lead.plan == "pro"
        seen["renewal"] += lead.renewal is not None
        # A pattern and a number of digits are drawn to, not filtered into None.
        seen["sku"] += lead.sku is not None
        seen["discount"] += lead.discount is not None

    drawn()
    assert min(seen.values()) >= 10, seen  # custom fields vary, not left at defaults


def test_a_model_pydantic_could_not_finish_is_finished_where_it_is_drawn() -> None:
    # As in a module that is not importable (a notebook, an exec'd example): pydantic
    # cannot resolve the annotation when the class is made.
    source = "from __future__ import annotations\nclass Late(Lead):\n    seats: Seats = 1\n"
    namespace: dict[str, Any] = {"__name__": "not_importable", "Lead": Lead}
    exec(source, namespace)
    late = namespace["Late"]
    assert not late.__pydantic_complete__
    Seats = Annotated[int, Field(ge=2, le=4)]  # the name the class refers to
    assert Seats is not None

    @settings(max_examples=10, deadline=None)
    @given(leads(model=late))
    def drawn(lead: Any) -> None:
        assert 2 <= lead.seats <= 4

    drawn()


def test_model_must_be_the_records_class_or_a_subclass() -> None:
    with pytest.raises(TypeError, match="model= takes Lead or a subclass"):
        leads(model=MyContact)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="model= takes Contact or a subclass"):
        contacts(model=MyLead)  # type: ignore[type-var]


# --- steps are aimed -------------------------------------------------------------------


def _person(n: int, **fields: Any) -> Lead:
    return Lead(first_name=f"P{n}", company=f"Co {n}", email=f"p{n}@co{n}.example.com", **fields)


def _run(funnel: Funnel, steps: list[FunnelStep]) -> tuple[list[Any], list[Any]]:
    people: list[Any] = []
    deals: list[Any] = []
    for step in steps:
        step.apply(funnel, people, deals)
    return people, deals


def test_a_step_picks_among_those_that_can_take_it_newest_first() -> None:
    funnel = Funnel(clock=ManualClock(START))
    steps = [FunnelStep("capture", kwargs=(("record", _person(n)),)) for n in range(3)]
    steps += [
        FunnelStep("set_appointment", kwargs=(("force", True),)),  # the newest: P2
        # Bookable now, newest first: P2's contact, P1, P0.
        FunnelStep("set_appointment", 1, (("force", True),)),
        FunnelStep("sit"),  # the newest deal at appointment_set: P1's
        FunnelStep("propose"),  # the only deal sat: P1's again
        FunnelStep("send_contract", 5),  # the only one proposing, whatever the target
        FunnelStep("win"),
        FunnelStep("qualify", kwargs=(("force", True),)),  # the only raw lead left: P0
    ]
    people, deals = _run(funnel, steps)
    assert (len(people), len(deals)) == (3, 2)
    stages = {funnel.get_opportunity(d).lead_id: funnel.get_opportunity(d).stage for d in deals}
    assert stages == {people[2]: Stage.APPOINTMENT_SET, people[1]: Stage.WON}
    assert funnel.get_lead(people[0]).status == LeadStatus.QUALIFIED


def test_an_unaimed_step_may_be_refused_and_is_skipped() -> None:
    funnel = Funnel(clock=ManualClock(START))
    people, _ = _run(
        funnel,
        [
            FunnelStep("capture", kwargs=(("record", _person(1)),)),
            FunnelStep("farm", aimed=False),  # a raw lead cannot be farmed: refused
            FunnelStep("farm"),  # aimed: nobody is a suspect, nothing happens
            FunnelStep("sit"),  # no deal at all: nothing happens
        ],
    )
    assert [e.name for e in funnel.history(people[0])] == ["capture"]


def test_touches_go_to_people_the_channel_policy_lets_you_reach() -> None:
    funnel = Funnel(clock=ManualClock(START))
    suspect = _person(1, status="suspect")
    raw = _person(2)
    _run(
        funnel,
        [
            FunnelStep("add", kwargs=(("record", suspect),)),
            FunnelStep("capture", kwargs=(("record", raw),)),
            # Social is for suspects (not raw leads), a call for raw leads (not suspects).
            FunnelStep("touch", kwargs=(("channel", Channel.SOCIAL), ("outcome", "replied"))),
            FunnelStep("touch", 1, (("channel", Channel.CALL), ("outcome", Outcome.NO_ANSWER))),
        ],
    )
    assert [t.channel for t in funnel.touches(suspect.id)] == [Channel.SOCIAL]
    assert [t.channel for t in funnel.touches(raw.id)] == [Channel.CALL]


def test_returning_people_merges_edits_and_unmerges() -> None:
    funnel = Funnel(clock=ManualClock(START))
    first = _person(1)
    again = Lead(first_name="P1", company="Co 1", source="webinar")
    twin = Lead(first_name="P1", company="Co 1", phone="+1 512 555 0100", status="suspect")
    people, _ = _run(
        funnel,
        [
            FunnelStep("capture", kwargs=(("record", first),)),
            # P1 responds again, with the e-mail of someone already there: no new lead.
            FunnelStep("capture", kwargs=(("record", again), ("match", "email"))),
            FunnelStep("add", kwargs=(("record", twin),)),
            FunnelStep("merge", kwargs=(("other", 0),)),  # the twin (newest) keeps P1
            FunnelStep("update", kwargs=(("changes", (("title", "Owner"),)),)),
        ],
    )
    assert people == [first.id, twin.id]
    kept = funnel.get_lead(twin.id)
    assert (kept.email, kept.source, kept.title) == (first.email, "webinar", "Owner")
    assert [e.name for e in funnel.history(twin.id)][-2:] == ["merge", "update"]
    assert "merged" in reached(funnel)
    unmerged = Funnel(clock=ManualClock(START))
    _run(
        unmerged,
        [
            FunnelStep("capture", kwargs=(("record", first),)),
            FunnelStep("add", kwargs=(("record", twin),)),
            FunnelStep("merge", kwargs=(("other", 0),)),
            FunnelStep("unmerge"),  # the newest with a merge to undo: the twin
        ],
    )
    assert {lead.id for lead in unmerged.leads()} == {first.id, twin.id}


def test_an_appointment_time_is_given_from_the_replays_clock() -> None:
    clock = ManualClock(START)
    funnel = Funnel(clock=clock)
    _, deals = _run(
        funnel,
        [
            FunnelStep("capture", kwargs=(("record", _person(1)),)),
            FunnelStep(
                "set_appointment",
                kwargs=(("force", True), ("appointment_in", timedelta(days=2))),
                advance=timedelta(hours=5),
            ),
            FunnelStep("reschedule", kwargs=(("appointment_in", timedelta(days=3)),)),
        ],
    )
    deal = funnel.get_opportunity(deals[0])
    assert deal.appointment_at == START + timedelta(hours=5, days=3)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=deal_histories(max_deals=3))
def test_a_deal_history_reports_alike_in_memory_and_on_sqlite(
    history: list[FunnelStep], tmp_path_factory: pytest.TempPathFactory
) -> None:
    memory = Funnel(InMemoryRepository(), clock=ManualClock(START))
    path = tmp_path_factory.mktemp("deals") / "f.db"
    sql = Funnel(SqlRepository(new_sqlite_url(path)), clock=ManualClock(START))
    try:
        replay(memory, history)
        replay(sql, history)
        assert reached(memory) == reached(sql)
        for by in (None, "setter", "month"):
            assert memory.report(by=by).to_dict() == sql.report(by=by).to_dict()
        # Deal ids are generated per store: pair the deals by their lead and stage.
        assert sorted((str(d.lead_id), d.stage, d.amount) for d in memory.opportunities()) == (
            sorted((str(d.lead_id), d.stage, d.amount) for d in sql.opportunities())
        )
    finally:
        sql.repository.close()


# --- the property users want, exercised for real ---------------------------------------


@settings(max_examples=25, deadline=None)
@given(history=deal_histories())
def test_every_won_deal_passed_through_appointment_sat(history: list[FunnelStep]) -> None:
    funnel = Funnel(clock=ManualClock(START))
    replay(funnel, history)
    for deal in funnel.opportunities(stage=Stage.WON):
        assert_passed_through(funnel, deal, ["appointment_set", "appointment_sat", "won"])
        assert_passed_through(funnel, deal, ["proposing", "contract_sent", "won"])


# --- a forced move's skipped step ------------------------------------------------------


def test_a_forced_win_passed_contract_sent_as_the_report_counts_it() -> None:
    clock = ManualClock(START)
    funnel = Funnel(clock=clock)
    lead = funnel.capture(_person(1))
    deal = funnel.set_appointment(lead, force=True)  # skips qualified
    for move in (funnel.sit, funnel.propose):
        clock.advance(days=1)
        move(deal)
    funnel.win(deal, force=True)  # skips contract_sent
    assert_report_counts(funnel.report(), {"qualified": 1, "contract_sent": 1, "won": 1})
    assert_passed_through(funnel, deal, ["proposing", "contract_sent", "won"])
    assert_passed_through(funnel, lead, ["raw", "qualified", "converted", "contract_sent"])
    with pytest.raises(AssertionError) as caught:
        assert_passed_through(funnel, deal, ["contract_sent", "won"], include_skipped=False)
    assert str(caught.value) == (
        "expected the subject to pass through contract_sent -> won, but its path was "
        "appointment_set -> appointment_sat -> proposing -> [contract_sent] -> won "
        "(in brackets: skipped by a forced move, not counted: include_skipped=False)"
    )
    with pytest.raises(AssertionError, match=r"raw -> \[qualified\] -> converted"):
        assert_passed_through(funnel, lead, ["qualified"], include_skipped=False)
    with pytest.raises(AssertionError, match=r"'lost' never came after 'won' \(in brackets"):
        assert_passed_through(funnel, deal, ["won", "lost"])
