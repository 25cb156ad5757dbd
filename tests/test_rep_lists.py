"""funnel.rep_list(): the people a rep calls back, by source and by age."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import T0, person
from leadfunnel import Funnel, InvalidArgumentError, Lead, RepList, RepListName
from leadfunnel.testing import ManualClock

DAY = timedelta(days=1)


def booked(funnel: Funnel, n: int, *, in_days: int = 1, **fields: Any) -> Any:
    lead = funnel.capture(Lead(**person(n, **fields)))
    funnel.qualify(lead, force=True)
    now = funnel.clock.now()
    return funnel.set_appointment(lead, appointment_at=now + in_days * DAY, setter="sue")


@pytest.fixture
def story(funnel: Funnel, clock: ManualClock) -> dict[str, Any]:
    """Day 0: three bookings and two qualified leads; the rest happens over 40 days."""
    no_show = booked(funnel, 1, source="webinar")
    sat_lost = booked(funnel, 2, source="ads")
    sat_won = booked(funnel, 3, source="ads")
    fits = funnel.capture(Lead(**person(4, source="webinar")))
    funnel.qualify(fits, force=True)
    clock.advance(days=2)
    funnel.lose(funnel.sit(sat_lost), reason="price")
    funnel.win(funnel.send_contract(funnel.propose(funnel.sit(sat_won))))
    clock.advance(days=8)  # day 10
    late = funnel.capture(Lead(**person(5, source="ads")))
    funnel.qualify(late, force=True)
    upcoming = booked(funnel, 6, in_days=60, source="ads")
    avoided = booked(funnel, 7, source="ads")
    funnel.lose(avoided, reason="avoid")
    clock.advance(days=30)  # day 40
    return {
        "no_show": no_show,
        "sat_lost": sat_lost,
        "fits": fits,
        "late": late,
        "upcoming": upcoming,
    }


def ids(pulled: RepList) -> list[Any]:
    return [item.id for item in pulled]


def test_the_three_lists(funnel: Funnel, story: dict[str, Any]) -> None:
    not_sat = funnel.rep_list("not_sat")
    assert ids(not_sat) == [story["no_show"].id]  # not the upcoming one, not the avoided
    (item,) = not_sat
    assert item.list is RepListName.NOT_SAT
    assert (item.subject, item.state, item.setter) == ("opportunity", "appointment_set", "sue")
    assert item.since == T0 + DAY
    assert item.age_days == 39
    assert (item.name, item.email) == ("Pat1 Rivera", "pat1@acme-it1.example.com")
    assert item.source == "webinar"  # the deal's contact's, copied from the lead
    not_bought = funnel.rep_list(RepListName.NOT_BOUGHT)
    assert ids(not_bought) == [story["sat_lost"].id]
    assert (not_bought[0].state, not_bought[0].lost_reason) == ("lost", "price")
    never_booked = funnel.rep_list("never_booked")
    assert ids(never_booked) == [story["late"].id, story["fits"].id]  # newest first
    assert [i.age_days for i in never_booked] == [30, 40]
    assert never_booked[0].subject == "lead"
    assert never_booked[0].state == "qualified"


def test_filters_by_source_owner_age_and_limit(funnel: Funnel, story: dict[str, Any]) -> None:
    assert ids(funnel.rep_list("never_booked", source="webinar")) == [story["fits"].id]
    assert ids(funnel.rep_list("never_booked", source="print")) == []
    assert ids(funnel.rep_list("never_booked", min_age_days=31)) == [story["fits"].id]
    assert ids(funnel.rep_list("never_booked", max_age_days=30)) == [story["late"].id]
    # Whole days, inclusive at both ends.
    assert ids(funnel.rep_list("never_booked", min_age_days=30, max_age_days=30)) == [
        story["late"].id
    ]
    assert ids(funnel.rep_list("never_booked", min_age_days=40, max_age_days=40)) == [
        story["fits"].id
    ]
    assert ids(funnel.rep_list("never_booked", limit=1)) == [story["late"].id]
    owner = funnel.get(story["fits"].id).owner
    assert story["fits"].id in ids(funnel.rep_list("never_booked", owner=owner))


def test_at_picks_the_moment(funnel: Funnel, story: dict[str, Any]) -> None:
    later = funnel.rep_list("not_sat", at=T0 + 80 * DAY)
    assert ids(later) == [story["upcoming"].id, story["no_show"].id]
    assert later.at == T0 + 80 * DAY
    assert ids(funnel.rep_list("not_sat", at=T0)) == []


def test_groups_by_source_and_by_age(funnel: Funnel, story: dict[str, Any]) -> None:
    pulled = funnel.rep_list("never_booked")
    assert {
        k: ids(RepList(pulled.name, pulled.at, tuple(v))) for k, v in pulled.by_source().items()
    } == {
        "ads": [story["late"].id],
        "webinar": [story["fits"].id],
    }
    ages = pulled.by_age()
    assert list(ages) == ["0-7 days", "8-30 days", "31-90 days", "over 90 days"]
    assert [len(v) for v in ages.values()] == [0, 1, 1, 0]
    assert list(pulled.by_age([30])) == ["0-30 days", "over 30 days"]
    with pytest.raises(ValueError, match="increasing"):
        pulled.by_age([30, 7])


def test_outputs(funnel: Funnel, story: dict[str, Any]) -> None:
    pulled = funnel.rep_list("never_booked")
    rows = list(csv.DictReader(io.StringIO(pulled.to_csv())))
    assert [row["id"] for row in rows] == [str(i) for i in ids(pulled)]
    assert rows[0]["age_days"] == "30"
    assert rows[0]["setter"] == ""
    data = json.loads(pulled.to_json())
    assert data["list"] == "never_booked"
    assert [item["id"] for item in data["items"]] == [str(i) for i in ids(pulled)]
    text = str(pulled)
    assert text.startswith("Sweet-spot leads never booked, as of")
    assert "Pat5 Rivera" in text
    assert "30d" in text
    by_age = pulled.to_table(by="age")
    assert "age = 8-30 days: 1" in by_age
    assert "age = over 90 days: 0" in by_age
    assert "source = webinar: 1" in pulled.to_table(by="source")
    with pytest.raises(InvalidArgumentError, match="choose source or age"):
        pulled.to_table(by="owner")  # type: ignore[arg-type]


def test_bad_arguments_say_what_to_do(funnel: Funnel) -> None:
    refused = "no rep list 'no_shows'; choose one of: not_sat"
    with pytest.raises(InvalidArgumentError, match=refused):
        funnel.rep_list("no_shows")
    with pytest.raises(InvalidArgumentError, match="min_age_days=-1: give a whole number"):
        funnel.rep_list("not_sat", min_age_days=-1)
    with pytest.raises(InvalidArgumentError, match="limit=-1: give a whole number"):
        funnel.rep_list("not_sat", limit=-1)
    assert len(funnel.rep_list("not_sat")) == 0
    assert "(nobody)" in str(funnel.rep_list("not_sat"))


def test_a_list_as_of_an_early_year_writes_its_dates_with_four_digits() -> None:
    """strftime's %Y writes the year 1 as "1": the list's dates are ISO dates."""
    text = str(Funnel().rep_list("never_booked", at=datetime(1, 3, 1, tzinfo=UTC)))
    assert "as of 0001-03-01 00:00 UTC" in text
