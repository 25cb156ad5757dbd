"""The follow-up cadence: CadencePolicy, BusinessHours, funnel.due() and FollowUp."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import T0, new_sqlite_url, person
from leadfunnel import (
    BusinessHours,
    CadencePolicy,
    Channel,
    ConfigError,
    Contact,
    ContactType,
    FollowUp,
    Funnel,
    InMemoryRepository,
    Lead,
    LeadStatus,
    Outcome,
    OwnerGroup,
    PolicyError,
    Route,
    RoutingRules,
    SqlRepository,
)
from leadfunnel.testing import ManualClock

FAR = timedelta(days=3650)


def due_item(funnel: Funnel, subject: Any, at: datetime) -> FollowUp | None:
    subject_id = subject if isinstance(subject, UUID) else subject.id
    found = [i for i in funnel.due(at=at) if i.subject_id == subject_id]
    assert len(found) <= 1
    return found[0] if found else None


def qualified(funnel: Funnel, n: int, **fields: Any) -> Lead:
    lead = funnel.capture(Lead(**person(n, **fields)))
    funnel.qualify(lead, force=True)
    stored = funnel.get(lead.id)
    assert isinstance(stored, Lead)
    return stored


def prospect(funnel: Funnel, n: int) -> Contact:
    opp = funnel.set_appointment(qualified(funnel, n))
    funnel.lose(opp, reason="cancelled")
    contact = funnel.get(opp.contact_id)
    assert isinstance(contact, Contact)
    return contact


# --- the policy -----------------------------------------------------------------------


def test_the_default_policy_is_two_touches_for_leads_and_eight_for_contacts() -> None:
    policy = CadencePolicy()
    assert (policy.lead_touches, policy.contact_touches) == (2, 8)
    assert policy.first_response == timedelta(hours=1)
    assert policy.wait("lead", 1) == timedelta(0)
    assert policy.wait("lead", 2) == timedelta(days=2)
    assert policy.wait("lead", 9) == timedelta(days=2)  # the last wait repeats
    assert [policy.wait("contact", n) for n in (1, 2, 8, 20)] == [
        timedelta(days=1),
        timedelta(days=3),
        timedelta(days=90),
        timedelta(days=90),
    ]
    assert policy.limit("lead") == 2
    assert policy.limit("contact") == 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lead_touches": -1}, "lead_touches"),
        ({"contact_touches": 2.5}, "contact_touches"),
        ({"lead_intervals": []}, "lead_intervals is empty"),
        ({"lead_intervals": [timedelta(hours=-1)]}, "lead_intervals[0]"),
        ({"contact_intervals": [timedelta(0), 3]}, "contact_intervals[1]"),
        (
            {"contact_intervals": [timedelta(0), timedelta(days=7), timedelta(days=3)]},
            "never speed up",
        ),
        ({"first_response": timedelta(minutes=-5)}, "first_response"),
        ({"grace": 3}, "grace"),
        ({"business_hours": "9-5"}, "business_hours"),
    ],
)
def test_a_bad_policy_is_a_config_error_naming_the_field(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        CadencePolicy(**kwargs)
    assert message in str(info.value)


def test_a_first_wait_longer_than_the_second_is_allowed() -> None:
    # The first wait runs from the anchor, the others between touches: not comparable.
    policy = CadencePolicy(contact_intervals=[timedelta(days=5), timedelta(days=1)])
    assert policy.wait("contact", 1) == timedelta(days=5)


def test_a_policy_from_data() -> None:
    policy = CadencePolicy.from_dict(
        {
            "lead_touches": 3,
            "lead_intervals_days": [0, 1, 2],
            "contact_intervals_days": [0.5, 7],
            "first_response_hours": 2,
            "grace_hours": 12,
            "business_hours": {
                "start": "08:30",
                "end": "17:00",
                "days": ["mon", "tue", "wed", "thu"],
                "holidays": ["2026-12-25"],
                "timezone": "Europe/Berlin",
            },
        }
    )
    assert policy.lead_touches == 3
    assert policy.contact_touches == 8
    assert tuple(policy.lead_intervals) == (timedelta(0), timedelta(days=1), timedelta(days=2))
    assert tuple(policy.contact_intervals) == (timedelta(hours=12), timedelta(days=7))
    assert policy.first_response == timedelta(hours=2)
    assert policy.grace == timedelta(hours=12)
    hours = policy.business_hours
    assert hours is not None
    assert hours.start == time(8, 30)
    assert hours.days == frozenset({0, 1, 2, 3})
    assert date(2026, 12, 25) in hours.holidays
    assert hours.timezone == ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lead_touch": 3}, "unknown key 'lead_touch'"),
        ({"lead_intervals_days": 2}, "lead_intervals_days must be a list"),
        ({"lead_intervals_days": ["2"]}, "lead_intervals_days[0] must be a number of days"),
        ({"business_hours": {"start": "nine"}}, "business_hours.start"),
        ({"business_hours": {"holidays": ["25/12"]}}, "holidays"),
        ({"business_hours": {"open": "09:00"}}, "unknown key 'open'"),
        ({"business_hours": {"timezone": "Mars/Olympus"}}, "unknown time zone"),
        ({"business_hours": {"days": ["funday"]}}, "not a weekday"),
        ({"business_hours": {"days": []}}, "no working days"),
        ({"business_hours": {"start": "17:00", "end": "09:00"}}, "must be before end"),
    ],
)
def test_a_bad_policy_in_data_is_a_config_error(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        CadencePolicy.from_dict(data)
    assert message in str(info.value)


def test_a_policy_from_toml(tmp_path: Path) -> None:
    file = tmp_path / "cadence.toml"
    file.write_text(
        "lead_touches = 3\ncontact_intervals_days = [2, 4]\n\n"
        '[business_hours]\nstart = "08:00"\ndays = ["mon", "tue"]\n',
        encoding="utf-8",
    )
    policy = CadencePolicy.from_toml(file)
    assert policy.lead_touches == 3
    assert policy.wait("contact", 5) == timedelta(days=4)
    assert policy.business_hours == BusinessHours(start=time(8), days=[0, 1])
    with pytest.raises(ConfigError, match="cannot read"):
        CadencePolicy.from_toml(tmp_path / "missing.toml")
    file.write_text("lead_touches = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        CadencePolicy.from_toml(file)


# --- business hours -------------------------------------------------------------------

FRIDAY_EVENING = datetime(2026, 3, 6, 18, 0, tzinfo=UTC)  # a Friday


def test_business_hours_skip_nights_and_weekends() -> None:
    hours = BusinessHours()
    assert hours.add(FRIDAY_EVENING, timedelta(hours=1)) == datetime(2026, 3, 9, 10, tzinfo=UTC)
    morning = datetime(2026, 3, 9, 16, 30, tzinfo=UTC)  # Monday, half an hour before close
    assert hours.add(morning, timedelta(hours=1)) == datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
    early = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)
    assert hours.add(early, timedelta(minutes=15)) == datetime(2026, 3, 10, 9, 15, tzinfo=UTC)
    assert hours.add(early, timedelta(0)) == early
    # A full working day: 8 hours from opening ends at closing time.
    opening = datetime(2026, 3, 10, 9, tzinfo=UTC)
    assert hours.add(opening, timedelta(hours=8)) == datetime(2026, 3, 10, 17, tzinfo=UTC)
    assert hours.add(opening, timedelta(hours=9)) == datetime(2026, 3, 11, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "deadline"),
    [
        # 00:30 CST, the night the clocks spring from 02:00 to 03:00: 3 hours of work end
        # at 04:30 CDT, 09:30 UTC (wall-clock arithmetic said 08:30: 2 real hours).
        (datetime(2026, 3, 8, 6, 30, tzinfo=UTC), datetime(2026, 3, 8, 9, 30, tzinfo=UTC)),
        # 00:30 CDT, the night they fall back from 02:00 to 01:00: 08:30 UTC (not 09:30).
        (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_working_time_is_real_time_across_a_clock_change(
    start: datetime, deadline: datetime
) -> None:
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    hours = BusinessHours(
        start=time(0), end=time(23, 59), days=every_day, timezone="America/Chicago"
    )
    assert hours.add(start, timedelta(hours=3)) == deadline


def test_business_hours_skip_holidays_and_respect_the_time_zone() -> None:
    hours = BusinessHours(holidays={date(2026, 3, 9)}, timezone="America/Chicago")
    # Friday 18:00 UTC is 12:00 in Chicago (CST, UTC-6): 1 hour of work is left that day.
    assert hours.add(FRIDAY_EVENING, timedelta(hours=1)) == datetime(2026, 3, 6, 19, tzinfo=UTC)
    # Five more hours run out on Friday; the Monday holiday is skipped: Tuesday 10:00 CDT.
    late = hours.add(FRIDAY_EVENING, timedelta(hours=6))
    assert late.tzinfo is UTC
    assert late == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    assert not hours.is_open(datetime(2026, 3, 9, 15, tzinfo=UTC))
    assert hours.is_open(datetime(2026, 3, 10, 15, tzinfo=UTC))


def test_business_hours_give_up_when_every_day_is_a_holiday() -> None:
    class Always:
        def __contains__(self, item: object) -> bool:
            return True

    with pytest.raises(ConfigError, match="no working time"):
        BusinessHours(holidays=Always()).add(FRIDAY_EVENING, timedelta(hours=1))


# --- due() ----------------------------------------------------------------------------


def test_a_new_raw_lead_is_due_at_once_and_overdue_after_an_hour(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = funnel.capture(Lead(**person(1), owner="ana"))
    item = due_item(funnel, lead, clock.now())
    assert item is not None
    assert item == FollowUp(
        subject_id=lead.id,
        subject="lead",
        owner="ana",
        due_at=T0,
        overdue=False,
        escalated_to=None,
        touch_number=1,
        channels=frozenset({Channel.CALL, Channel.EMAIL, Channel.SMS, Channel.MEETING}),
        state="raw",
        overdue_at=T0 + timedelta(hours=1),
    )
    at_the_hour = due_item(funnel, lead, T0 + timedelta(hours=1))
    assert at_the_hour is not None
    assert not at_the_hour.overdue
    later = due_item(funnel, lead, T0 + timedelta(hours=1, seconds=1))
    assert later is not None
    assert later.overdue
    assert due_item(funnel, lead, T0 - timedelta(seconds=1)) is None  # not due before it came


def test_the_first_response_clock_counts_business_hours(clock: ManualClock) -> None:
    policy = CadencePolicy(business_hours=BusinessHours())
    funnel = Funnel(cadence=policy, clock=clock)
    clock.set(FRIDAY_EVENING)
    lead = funnel.capture(Lead(**person(1)))
    saturday = due_item(funnel, lead, FRIDAY_EVENING + timedelta(days=1))
    assert saturday is not None
    assert not saturday.overdue
    assert saturday.overdue_at == datetime(2026, 3, 9, 10, tzinfo=UTC)
    monday = due_item(funnel, lead, datetime(2026, 3, 9, 10, 1, tzinfo=UTC))
    assert monday is not None
    assert monday.overdue


def test_a_lead_touch_makes_the_next_one_due_after_the_interval(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = qualified(funnel, 1)
    clock.advance(minutes=20)
    funnel.touch(lead, Channel.CALL, "no_answer")
    assert due_item(funnel, lead, clock.now()) is None
    touched_at = clock.now()
    almost = due_item(funnel, lead, touched_at + timedelta(days=2) - timedelta(seconds=1))
    assert almost is None
    item = due_item(funnel, lead, touched_at + timedelta(days=2))
    assert item is not None
    assert item.due_at == touched_at + timedelta(days=2)
    assert item.touch_number == 2
    assert not item.overdue
    assert item.overdue_at == touched_at + timedelta(days=3)  # a day's grace
    late = due_item(funnel, lead, touched_at + timedelta(days=3, minutes=1))
    assert late is not None
    assert late.overdue
    clock.advance(days=2)
    funnel.touch(lead, Channel.EMAIL, "no_answer")
    assert due_item(funnel, lead, clock.now() + FAR) is None  # two touches: on drip


def test_a_reply_restarts_the_count(funnel: Funnel, clock: ManualClock) -> None:
    lead = qualified(funnel, 1)
    funnel.touch(lead, Channel.CALL, "no_answer")
    clock.advance(days=2)
    funnel.touch(lead, Channel.CALL, "left_message")
    assert due_item(funnel, lead, clock.now() + FAR) is None
    clock.advance(days=5)
    funnel.touch(lead, Channel.EMAIL, "replied")
    item = due_item(funnel, lead, clock.now())
    assert item is not None
    assert item.touch_number == 1
    assert item.due_at == clock.now()
    assert item.overdue_at == clock.now() + timedelta(hours=1)  # answer a reply promptly
    clock.advance(minutes=10)
    funnel.touch(lead, Channel.CALL, "connected")
    item = due_item(funnel, lead, clock.now() + FAR)
    assert item is not None
    assert item.touch_number == 2


def test_a_contact_is_due_a_day_after_its_deal_is_lost_and_never_while_one_is_open(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = qualified(funnel, 1)
    opp = funnel.set_appointment(lead, owner="rep")
    assert due_item(funnel, opp.contact_id, clock.now() + FAR) is None  # an open deal
    assert due_item(funnel, lead, clock.now() + FAR) is None  # converted
    clock.advance(days=3)
    funnel.lose(opp, reason="no_show")
    contact = funnel.get(opp.contact_id)
    assert isinstance(contact, Contact)
    item = due_item(funnel, contact, clock.now() + FAR)
    assert item is not None
    assert item.subject == "contact"
    assert item.state == "prospect"
    assert item.due_at == clock.now() + timedelta(days=1)  # a day after the deal closed
    assert item.overdue_at == item.due_at + timedelta(days=1)
    assert item.channels == frozenset(Channel)
    for number in range(1, 9):
        item = due_item(funnel, contact, clock.now() + FAR)
        assert item is not None
        assert item.touch_number == number
        clock.set(max(clock.now(), item.due_at))
        funnel.touch(contact, Channel.EMAIL, "no_answer")
    assert due_item(funnel, contact, clock.now() + FAR) is None
    # A new appointment takes it out of the cadence.
    funnel.set_appointment(contact)
    assert due_item(funnel, contact, clock.now() + FAR) is None


def test_a_contact_re_enters_the_cadence_when_its_deal_closes(
    funnel: Funnel, clock: ManualClock
) -> None:
    opp = funnel.set_appointment(qualified(funnel, 1))
    clock.advance(days=20)  # a long sales cycle
    funnel.sit(opp)
    clock.advance(days=10)
    funnel.lose(opp, reason="no_decision")
    item = due_item(funnel, opp.contact_id, clock.now() + FAR)
    assert item is not None
    assert item.due_at == clock.now() + timedelta(days=1)  # not at once, and not overdue
    assert due_item(funnel, opp.contact_id, clock.now()) is None
    # A second deal, lost later still, moves the anchor again.
    second = funnel.set_appointment(opp.contact_id)
    clock.advance(days=5)
    funnel.lose(second, reason="price")
    item = due_item(funnel, opp.contact_id, clock.now() + FAR)
    assert item is not None
    assert item.due_at == clock.now() + timedelta(days=1)


def test_an_edit_of_a_closed_deal_does_not_move_the_contacts_follow_up(
    funnel: Funnel, clock: ManualClock
) -> None:
    """The anchor is when the last deal closed: reassigning the closed deal, or a merge
    that moves it to another contact, later does not make an overdue follow-up vanish
    (it ran from the deal's last change)."""
    other = funnel.add(Contact(**person(2)))  # the same person, stored twice
    opp = funnel.set_appointment(qualified(funnel, 1))
    clock.advance(days=3)
    funnel.lose(opp, reason="price")
    due_at = clock.now() + timedelta(days=1)
    clock.advance(days=10)
    funnel.update(funnel.get_opportunity(opp.id).model_copy(update={"owner": "newrep"}))
    item = due_item(funnel, opp.contact_id, clock.now())
    assert item is not None
    assert item.due_at == due_at  # overdue since, still
    funnel.merge(other, opp.contact_id)  # moves the lost deal to ``other``
    item = due_item(funnel, other.id, clock.now())
    assert item is not None
    assert item.due_at == due_at


def test_people_outside_the_cadence_are_never_due(funnel: Funnel, clock: ManualClock) -> None:
    suspect = funnel.add(Lead(**person(1), status="suspect"))
    farm = funnel.add(Lead(**person(2), status="farm_list"))
    unqualified = funnel.disqualify(funnel.capture(Lead(**person(3))))
    avoided = funnel.avoid(funnel.capture(Lead(**person(4))))
    client = funnel.add(Contact(**person(5), type=ContactType.CLIENT))
    partner = funnel.add(Contact(**person(6), type=ContactType.PARTNER))
    converted = qualified(funnel, 7)
    won = funnel.set_appointment(converted)
    for step in (funnel.sit, funnel.propose, funnel.send_contract):
        won = step(won)
    funnel.win(won, amount=1000)
    prospect_contact = funnel.add(Contact(**person(8)))  # entered directly, no deal
    raw = funnel.capture(Lead(**person(9)))
    due = {i.subject_id for i in funnel.due(at=clock.now() + FAR)}
    assert due == {prospect_contact.id, raw.id}
    for record in (suspect, farm, unqualified, avoided, client, partner, converted):
        assert record.id not in due
    assert won.contact_id not in due


def test_due_lists_the_most_overdue_first(funnel: Funnel, clock: ManualClock) -> None:
    first = funnel.capture(Lead(**person(1)))
    clock.advance(minutes=30)
    second = funnel.capture(Lead(**person(2)))
    third = qualified(funnel, 3)
    funnel.touch(third, Channel.CALL, "no_answer")  # next due in two days
    clock.advance(minutes=30)
    contact = funnel.add(Contact(**person(4)))  # due in a day, overdue in two
    at = clock.now() + timedelta(days=10)
    order = [i.subject_id for i in funnel.due(at=at)]
    assert order == [first.id, second.id, contact.id, third.id]
    items = funnel.due(at=at)
    assert all(i.overdue for i in items)
    assert [i.overdue_at for i in items] == sorted(i.overdue_at for i in items)  # type: ignore[type-var]
    # Not yet overdue items come after, in the order they will become overdue.
    soon = funnel.due(at=T0 + timedelta(minutes=45))
    assert [(i.subject_id, i.overdue) for i in soon] == [(first.id, False), (second.id, False)]


def test_channels_leave_out_opt_outs_and_unreachable_people_are_not_listed(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = funnel.capture(Lead(**person(1), opt_outs={"sms"}))
    item = due_item(funnel, lead, clock.now())
    assert item is not None
    assert item.channels == frozenset({Channel.CALL, Channel.EMAIL, Channel.MEETING})
    funnel.touch(lead, Channel.CALL, "opted_out")
    item = due_item(funnel, lead, clock.now() + FAR)
    assert item is not None
    assert item.channels == frozenset({Channel.EMAIL, Channel.MEETING})
    everything = funnel.capture(
        Lead(**person(2), opt_outs={"call", "email", "sms", "meeting", "social"})
    )
    assert due_item(funnel, everything, clock.now() + FAR) is None


def test_overdue_items_are_escalated_to_the_backup_of_the_owners_group(
    clock: ManualClock,
) -> None:
    router = RoutingRules(
        [OwnerGroup("inbound", ["ana", "ben"], backup="carla")], default="inbound"
    )
    funnel = Funnel(router=router, clock=clock)
    lead = funnel.capture(Lead(**person(1)))
    assert lead.owner == "ana"
    item = due_item(funnel, lead, clock.now())
    assert item is not None
    assert item.escalated_to is None  # not overdue yet
    item = due_item(funnel, lead, clock.now() + timedelta(hours=2))
    assert item is not None
    assert (item.overdue, item.escalated_to) == (True, "carla")
    router.set_unavailable("carla")
    item = due_item(funnel, lead, clock.now() + timedelta(hours=2))
    assert item is not None
    assert item.escalated_to == "ben"  # the backup is out: another owner of the group
    # Without a router, nobody is named.
    plain = Funnel(funnel.repository, clock=clock)
    item = due_item(plain, lead, clock.now() + timedelta(hours=2))
    assert item is not None
    assert (item.overdue, item.escalated_to) == (True, None)


def test_an_overdue_item_of_the_backup_is_escalated_to_a_colleague(clock: ManualClock) -> None:
    router = RoutingRules([OwnerGroup("inbound", ["ana"], backup="carla")], default="inbound")
    funnel = Funnel(router=router, clock=clock)
    lead = funnel.capture(Lead(**person(1), owner="carla"))
    item = due_item(funnel, lead, clock.now() + timedelta(hours=2))
    assert item is not None
    assert item.escalated_to == "ana"


def test_escalation_reads_the_record_when_the_owner_is_in_several_groups(
    clock: ManualClock,
) -> None:
    router = RoutingRules(
        [OwnerGroup("us", ["ana"], backup="carla"), OwnerGroup("emea", ["ana"], backup="dirk")],
        [Route("emea", countries=["DE"])],
        default="us",
    )
    assert router.needs_record("ana")
    assert not router.needs_record("carla")
    assert router.needs_record(None)
    assert router.needs_record("stranger")
    funnel = Funnel(router=router, clock=clock)
    german = funnel.capture(Lead(**person(1, country="DE")))
    texan = funnel.capture(Lead(**person(2)))
    nobody = funnel.capture(Lead(**person(3, owner="carla")))
    later = clock.now() + timedelta(hours=2)
    escalated = {i.subject_id: i.escalated_to for i in funnel.due(at=later)}
    assert escalated == {german.id: "dirk", texan.id: "carla", nobody.id: "ana"}


def test_a_custom_policy_changes_limits_and_waits(clock: ManualClock) -> None:
    policy = CadencePolicy(
        lead_touches=3, lead_intervals=[timedelta(0), timedelta(days=1), timedelta(days=4)]
    )
    funnel = Funnel(cadence=policy, clock=clock)
    lead = qualified(funnel, 1)
    waits = []
    for _ in range(3):
        item = due_item(funnel, lead, clock.now() + FAR)
        assert item is not None
        waits.append(item.due_at - clock.now())
        clock.set(item.due_at)
        funnel.touch(lead, Channel.CALL, "no_answer")
    assert waits == [timedelta(0), timedelta(days=1), timedelta(days=4)]
    assert due_item(funnel, lead, clock.now() + FAR) is None


def test_due_needs_an_aware_time(funnel: Funnel) -> None:
    with pytest.raises(ValueError, match="timezone"):
        funnel.due(at=datetime(2026, 3, 2, 9, 0))


def test_due_with_no_time_uses_the_clock(funnel: Funnel, clock: ManualClock) -> None:
    lead = funnel.capture(Lead(**person(1)))
    assert [i.subject_id for i in funnel.due()] == [lead.id]
    clock.advance(hours=2)
    assert funnel.due()[0].overdue


# --- properties -----------------------------------------------------------------------

CADENCE_LEAD = (LeadStatus.RAW, LeadStatus.QUALIFIED)
RESET = ("replied", "interested")
OUTCOMES = (
    "no_answer",
    "left_message",
    "connected",
    "replied",
    "interested",
    "not_interested",
    "opted_out",
    "bounced",
)
OPS = st.one_of(
    st.tuples(
        st.just("touch"),
        st.sampled_from(sorted(Channel)),
        st.sampled_from(OUTCOMES),
        st.integers(min_value=0, max_value=96),
    ),
    st.tuples(st.sampled_from(["qualify", "disqualify", "avoid", "reopen", "lose"])),
)


@dataclass
class Model:
    """What the cadence should say about one person, kept by hand."""

    kind: str
    state: str
    #: When each counted touch was logged: those since the last reply, and since the
    #: person entered its cadence (a lead qualified again, a contact's lost deal).
    times: list[datetime] = field(default_factory=list)
    open_deal: bool = False
    opt_outs: set[Channel] = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self.times)

    def entered(self, at: datetime) -> None:
        """The person (re-)entered its cadence at ``at``: earlier touches stop counting
        (those at that very instant still count)."""
        self.times = [time for time in self.times if time >= at]

    def in_cadence(self) -> bool:
        if self.kind == "lead":
            return self.state in CADENCE_LEAD
        return self.state == "prospect" and not self.open_deal

    def limit(self) -> int:
        return 2 if self.kind == "lead" else 8

    def channels(self) -> set[Channel]:
        if self.state == "avoid":
            return set()
        if self.kind == "lead" and self.state == "raw":
            base = {Channel.CALL, Channel.EMAIL, Channel.SMS, Channel.MEETING}
        elif self.state == "unqualified":
            base = {Channel.EMAIL}
        else:
            base = set(Channel)
        return base - self.opt_outs

    def due(self) -> bool:
        return self.in_cadence() and self.count < self.limit() and bool(self.channels())


def _run_sequence(funnel: Funnel, clock: ManualClock, kind: str, ops: list[Any]) -> None:
    lead = funnel.capture(Lead(**person(1)))
    subject: UUID = lead.id
    model = Model("lead", "raw")
    opp = None
    if kind == "contact":
        funnel.qualify(lead, force=True)
        opp = funnel.set_appointment(lead)
        funnel.lose(opp, reason="cancelled")
        subject = opp.contact_id
        model = Model("contact", "prospect")
    previous_due: datetime | None = None
    for op in ops:
        name = op[0]
        reset_or_moved = False
        if name == "touch":
            _, channel, outcome, hours = op
            clock.advance(hours=hours)
            allowed = model.channels()
            on_drip = model.in_cadence() and model.count >= model.limit()
            # The policy holds whatever the outcome; on drip (e-mail only) a reply or
            # an opt-out may still come on another channel the state allows.
            refused = channel not in allowed or (
                on_drip
                and channel != Channel.EMAIL
                and outcome not in RESET
                and outcome != "opted_out"
            )
            if refused:
                with pytest.raises(PolicyError):
                    funnel.touch(subject, channel, outcome)
                continue
            funnel.touch(subject, channel, outcome)
            if outcome in RESET:
                model.times, reset_or_moved = [], True
            else:
                model.times.append(clock.now())
            if outcome == "opted_out":
                model.opt_outs.add(channel)
        elif name == "avoid":
            funnel.avoid(subject)
            model.state, reset_or_moved = "avoid", True
            model.open_deal = False  # avoiding a contact closes its open deals
        elif kind == "lead" and name == "qualify" and model.state in ("raw", "unqualified"):
            funnel.qualify(subject, force=True)
            if model.state == "unqualified":  # back from outside the cadence: anew
                model.entered(clock.now())
            model.state, reset_or_moved = "qualified", True
        elif kind == "lead" and name == "disqualify" and model.state in CADENCE_LEAD:
            funnel.disqualify(subject)
            model.state, reset_or_moved = "unqualified", True
        elif kind == "contact" and name == "reopen" and model.state == "prospect":
            if not model.open_deal:
                opp = funnel.set_appointment(subject)
                model.open_deal, reset_or_moved = True, True
        elif kind == "contact" and name == "lose" and model.open_deal:
            assert opp is not None
            funnel.lose(opp, reason="no_decision")
            model.open_deal, reset_or_moved = False, True
            model.entered(clock.now())  # the deal's work does not count after it
        else:
            continue
        item = due_item(funnel, subject, clock.now() + FAR)
        # Due iff in a cadence state and under the limit since the last reply.
        assert (item is not None) == model.due(), (model, item)
        if model.state == "avoid":
            assert item is None
        if item is not None:
            assert item.touch_number == model.count + 1
            assert item.channels == model.channels()
            # Due times never go backwards as (non-resetting) touches are added.
            if previous_due is not None and not reset_or_moved:
                assert item.due_at >= previous_due
        previous_due = item.due_at if item is not None else None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["lead", "contact"]), ops=st.lists(OPS, max_size=14))
def test_property_due_iff_in_cadence_and_under_the_limit_in_memory(
    kind: str, ops: list[Any]
) -> None:
    clock = ManualClock(T0)
    _run_sequence(Funnel(InMemoryRepository(), clock=clock), clock, kind, ops)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["lead", "contact"]), ops=st.lists(OPS, max_size=10))
def test_property_due_iff_in_cadence_and_under_the_limit_on_sqlite(
    kind: str, ops: list[Any]
) -> None:
    clock = ManualClock(T0)
    with tempfile.TemporaryDirectory() as folder:
        repository = SqlRepository(new_sqlite_url(Path(folder) / "funnel.db"))  # a new store
        try:
            _run_sequence(Funnel(repository, clock=clock), clock, kind, ops)
        finally:
            repository.close()


@settings(max_examples=100, deadline=None)
@given(
    first=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10)),
    rest=st.lists(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10)), max_size=5),
    gaps=st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=8),
)
def test_property_due_times_never_go_backwards_for_any_valid_policy(
    first: timedelta, rest: list[timedelta], gaps: list[int]
) -> None:
    policy = CadencePolicy(lead_touches=len(gaps) + 1, lead_intervals=[first, *sorted(rest)])
    clock = ManualClock(T0)
    funnel = Funnel(cadence=policy, clock=clock)
    lead = qualified(funnel, 1)
    previous = due_item(funnel, lead, clock.now() + FAR)
    assert previous is not None
    for gap in gaps:
        clock.advance(hours=gap)
        funnel.touch(lead, Channel.CALL, "no_answer")
        item = due_item(funnel, lead, clock.now() + FAR)
        assert item is not None
        assert item.due_at >= previous.due_at
        previous = item


def test_a_suspect_that_responds_is_due_for_its_first_response_whatever_it_was_sent(
    funnel: Funnel, clock: ManualClock
) -> None:
    """DESIGN 6: a raw lead is due for its first response at once. The campaign's
    e-mails and cold calls of a suspect are not its cadence: they stop counting when it
    responds (its cadence starts with its change of status)."""
    suspect = funnel.add(Lead(**person(1), status="suspect"))
    funnel.touch(suspect, Channel.EMAIL, Outcome.NO_ANSWER)
    clock.advance(days=3)
    funnel.touch(suspect, Channel.EMAIL, Outcome.NO_ANSWER)
    clock.advance(days=3)
    lead = funnel.respond(suspect)
    item = due_item(funnel, lead.id, clock.now())
    assert item is not None
    assert (item.touch_number, item.due_at, item.overdue) == (1, clock.now(), False)
    clock.advance(hours=2)
    overdue = due_item(funnel, lead.id, clock.now())
    assert overdue is not None
    assert overdue.overdue  # after first_response (1 hour)
    funnel.touch(lead, Channel.CALL, Outcome.NO_ANSWER)  # not "on drip"


def test_a_contact_whose_deal_is_lost_starts_its_count_when_the_deal_closes(
    funnel: Funnel, clock: ManualClock
) -> None:
    """The touches of a deal's work (eight calls while it was open) are not the
    contact's follow-ups after the deal is lost: it is due again, touch 1, from the
    close of the deal."""
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    for _ in range(8):
        clock.advance(hours=5)
        funnel.touch(deal.contact_id, Channel.CALL, Outcome.NO_ANSWER)
    clock.advance(days=1)
    funnel.lose(deal, reason="no_decision")
    item = due_item(funnel, deal.contact_id, clock.now() + FAR)
    assert item is not None
    assert item.touch_number == 1
    assert item.due_at > clock.now()  # the first wait runs from the close
    funnel.touch(deal.contact_id, Channel.CALL, Outcome.NO_ANSWER)  # not "on drip"


def test_a_qualified_lead_keeps_its_raw_touches_and_a_requalified_one_starts_anew(
    funnel: Funnel, clock: ManualClock
) -> None:
    """The cadence covers raw and qualified leads: qualifying a raw lead keeps its count
    (two calls: on drip), while a lead disqualified (its e-mail drip) and qualified
    again enters a new cadence."""
    kept = funnel.capture(Lead(**person(1)))
    again = funnel.capture(Lead(**person(2)))
    for lead in (kept, again):
        for _ in range(2):
            clock.advance(hours=5)
            funnel.touch(lead, Channel.CALL, Outcome.NO_ANSWER)
    clock.advance(days=1)
    funnel.qualify(kept, force=True)
    funnel.disqualify(again)
    clock.advance(days=1)
    funnel.touch(again, Channel.EMAIL, Outcome.NO_ANSWER)  # the drip
    clock.advance(days=1)
    funnel.qualify(again, force=True)
    assert due_item(funnel, kept.id, clock.now() + FAR) is None  # on drip
    item = due_item(funnel, again.id, clock.now() + FAR)
    assert item is not None
    assert item.touch_number == 1
    with pytest.raises(PolicyError, match="on drip"):
        funnel.touch(kept, Channel.CALL, Outcome.NO_ANSWER)
    funnel.touch(again, Channel.CALL, Outcome.NO_ANSWER)
