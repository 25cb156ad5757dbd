"""Report data audit: the appointments-sat figures read from each deal's history (a
no-show rescheduled or edited afterwards stays a no-show of its period), rep lists in
UTC on every store, and time-in-stage medians to the microsecond on MariaDB."""

from __future__ import annotations

import csv
import io
import json
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import T0, person
from leadfunnel import (
    Funnel,
    InMemoryRepository,
    InvalidTransitionError,
    Lead,
    Opportunity,
    Repository,
)
from leadfunnel.testing import ManualClock, RepositoryContract

CHICAGO = ZoneInfo("America/Chicago")
DAY = timedelta(days=1)
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # T0's day
WEEK = {"since": MONDAY, "until": MONDAY + 7 * DAY}
NEXT_WEEK = {"since": MONDAY + 7 * DAY, "until": MONDAY + 14 * DAY}


def _booked(funnel: Funnel, n: int, at: datetime, setter: str = "sue") -> Opportunity:
    lead = funnel.capture(Lead(**person(n)))
    funnel.qualify(lead, force=True)
    return funnel.set_appointment(lead, setter=setter, appointment_at=at)


def _sat_figures(funnel: Funnel, **period: Any) -> tuple[Any, ...]:
    report = funnel.report(**period)
    return report.checks["appointments_sat"].value, dict(report.setters), report.not_sat


# --- 1. appointments sat, from the history ---------------------------------------------


def test_a_no_show_rescheduled_afterwards_stays_a_no_show_of_its_week(
    funnel: Funnel, clock: ManualClock
) -> None:
    """Reported on Monday: one of two appointments of last week sat. Rescheduling the
    no-show on Tuesday must not make last week read 100%."""
    sat = _booked(funnel, 1, T0 + DAY)
    no_show = _booked(funnel, 2, T0 + 2 * DAY)
    clock.set(T0 + DAY + timedelta(hours=1))
    funnel.sit(sat)
    clock.set(MONDAY + 7 * DAY + timedelta(hours=8))
    before = _sat_figures(funnel, **WEEK)
    assert before == (0.5, {"sue": 0.5}, 1)
    assert [item.id for item in funnel.rep_list("not_sat")] == [no_show.id]

    clock.advance(days=1)
    funnel.reschedule(no_show, appointment_at=MONDAY + 14 * DAY, reason="called, rebooked")

    assert _sat_figures(funnel, **WEEK) == before
    assert funnel.rep_list("not_sat").items == ()  # booked again: nobody to chase now
    assert _sat_figures(funnel, **NEXT_WEEK) == (None, {}, 0)


def test_a_rebooked_no_show_that_sits_counts_once_in_each_period(
    funnel: Funnel, clock: ManualClock
) -> None:
    """Each appointment counts in the period its time fell in: missed in the first week,
    sat in the second; over both, one of two appointments sat."""
    deal = _booked(funnel, 1, T0 + 2 * DAY, setter="sue")
    clock.set(MONDAY + 7 * DAY + timedelta(hours=8))
    deal = funnel.reschedule(deal, appointment_at=MONDAY + 9 * DAY)
    clock.set(MONDAY + 9 * DAY + timedelta(hours=1))
    funnel.sit(deal)

    assert _sat_figures(funnel, **WEEK) == (0.0, {"sue": 0.0}, 1)
    assert _sat_figures(funnel, **NEXT_WEEK) == (1.0, {"sue": 1.0}, 0)
    assert _sat_figures(funnel) == (0.5, {"sue": 0.5}, 1)
    months = funnel.report(by="month").groups
    assert months["2026-03"].checks["appointments_sat"].value == 0.5
    assert funnel.report(by="setter").groups["sue"].not_sat == 1
    (row,) = funnel.repository.no_shows(now=clock.now())
    assert (row.record.id, row.since) == (deal.id, T0 + 2 * DAY)


def test_a_no_show_rescheduled_twice_and_lost_counts_each_missed_appointment(
    funnel: Funnel, clock: ManualClock
) -> None:
    deal = _booked(funnel, 1, T0 + DAY)
    clock.set(T0 + 2 * DAY)
    deal = funnel.reschedule(deal, appointment_at=T0 + 3 * DAY)
    clock.set(T0 + 4 * DAY)
    deal = funnel.reschedule(deal, appointment_at=T0 + 5 * DAY)
    clock.set(T0 + 6 * DAY)
    funnel.lose(deal, reason="no_show")
    shows = [row.since for row in funnel.repository.no_shows(now=clock.now())]
    assert shows == [T0 + 5 * DAY, T0 + 3 * DAY, T0 + DAY]
    assert _sat_figures(funnel, **WEEK) == (0.0, {"sue": 0.0}, 3)
    # The rep list is of the deal as it is: one row, at its last appointment.
    assert [item.since for item in funnel.rep_list("not_sat")] == [T0 + 5 * DAY]


def test_an_appointment_moved_before_its_time_is_no_no_show(
    funnel: Funnel, clock: ManualClock
) -> None:
    deal = _booked(funnel, 1, T0 + 2 * DAY)
    clock.set(T0 + DAY)
    funnel.reschedule(deal, appointment_at=T0 + 9 * DAY)
    clock.set(MONDAY + 7 * DAY)
    assert _sat_figures(funnel, **WEEK) == (None, {}, 0)
    assert funnel.repository.no_shows(now=clock.now()) == []


def test_a_time_given_to_a_deal_booked_without_one_misses_nothing(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead, setter="sue")
    clock.advance(hours=2)
    funnel.reschedule(deal, appointment_at=T0 + 3 * DAY)
    assert funnel.repository.no_shows(now=T0 + DAY) == []


def test_a_lost_no_show_keeps_its_appointment_time(funnel: Funnel, clock: ManualClock) -> None:
    """update() refuses to move the appointment of a lost deal: the week it fell in
    keeps its figure, and the deal stays on the not_sat list."""
    deal = _booked(funnel, 1, T0 + 2 * DAY)
    clock.set(MONDAY + 7 * DAY + timedelta(hours=8))
    funnel.lose(deal, reason="no_show")
    before = _sat_figures(funnel, **WEEK)
    assert before == (0.0, {"sue": 0.0}, 1)
    history = funnel.history(deal)
    stored = funnel.get_opportunity(deal.id)
    moved = stored.model_copy(update={"appointment_at": MONDAY + 18 * DAY})
    with pytest.raises(InvalidTransitionError, match="set_appointment") as refused:
        funnel.update(moved)
    assert refused.value.state == "lost"
    assert funnel.get_opportunity(deal.id) == stored
    assert funnel.history(deal) == history
    assert _sat_figures(funnel, **WEEK) == before
    assert [item.id for item in funnel.rep_list("not_sat")] == [deal.id]
    # Other fields of a closed deal can still be edited.
    noted = funnel.update(stored.model_copy(update={"lost_note": "never picked up"}))
    assert noted.appointment_at == stored.appointment_at


def test_update_moves_no_appointment_still_to_come_or_won(
    funnel: Funnel, clock: ManualClock
) -> None:
    waiting = _booked(funnel, 1, T0 + 2 * DAY)
    later = waiting.model_copy(update={"appointment_at": T0 + 4 * DAY})
    with pytest.raises(InvalidTransitionError, match=r"reschedule\(\)"):
        funnel.update(later)
    won = _booked(funnel, 2, T0 + DAY)
    clock.set(T0 + DAY)
    won = funnel.win(funnel.send_contract(funnel.propose(funnel.sit(won))), amount=10)
    with pytest.raises(InvalidTransitionError, match="won deal"):
        funnel.update(won.model_copy(update={"appointment_at": T0}))
    # Once the appointment sat and the deal is open, its time is no report's to judge.
    sat = funnel.sit(_booked(funnel, 3, T0 + 2 * DAY))
    fixed = funnel.update(sat.model_copy(update={"appointment_at": T0 + DAY}))
    assert fixed.appointment_at == T0 + DAY
    # The same instant in another offset is no change.
    same = funnel.get_opportunity(waiting.id)
    kept = same.model_copy(update={"appointment_at": (T0 + 2 * DAY).astimezone(CHICAGO)})
    assert funnel.update(kept) == same


class _PortsNoShows(InMemoryRepository):
    """The port's own ``no_shows`` (every deal and its history read), as a third-party
    adapter that does not override it gets."""

    no_shows = Repository.no_shows


class _Against(RepositoryContract):
    def create_repository(self) -> Repository:
        return _PortsNoShows()


@pytest.mark.parametrize(
    "test",
    [
        "test_no_shows_count_each_appointment_moved_after_its_time",
        "test_rep_list_times_are_in_utc",
        "test_rep_lists",
        "test_erased_people_leave_follow_ups_and_rep_lists_and_still_count",
    ],
)
def test_the_ports_default_no_shows_reads_the_history_alike(test: str, tmp_path: Path) -> None:
    contract = _Against()
    contract.tmp_path = tmp_path
    with contract.fresh() as repo:
        getattr(contract, test)(repo)


# --- 2. rep lists in UTC on every store --------------------------------------------------


def test_rep_list_times_are_utc_whatever_offset_they_were_given_in(
    funnel: Funnel, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 3, 2, 15, tzinfo=UTC))
    lead = funnel.capture(Lead(first_name="Pat", email="pat@x.example.com"))
    # Thursday 20:00 in Chicago is Friday 02:00 UTC.
    funnel.set_appointment(
        lead, force=True, appointment_at=datetime(2026, 3, 5, 20, tzinfo=CHICAGO)
    )
    listed = funnel.rep_list("not_sat", at=datetime(2026, 3, 10, tzinfo=UTC))
    friday = datetime(2026, 3, 6, 2, tzinfo=UTC)
    (item,) = listed
    assert (item.since, item.appointment_at, item.age_days) == (friday, friday, 3)
    assert item.appointment_at is not None
    assert item.since.utcoffset() == item.appointment_at.utcoffset() == timedelta(0)
    (row,) = csv.DictReader(io.StringIO(listed.to_csv()))
    assert row["since"] == row["appointment_at"] == "2026-03-06T02:00:00+00:00"
    (data,) = json.loads(listed.to_json())["items"]
    assert data["since"] == data["appointment_at"] == "2026-03-06T02:00:00+00:00"
    assert "2026-03-06" in next(line for line in listed.to_table().splitlines() if "Pat" in line)


def test_never_booked_since_is_utc_for_an_imported_date(funnel: Funnel, clock: ManualClock) -> None:
    clock.set(datetime(2026, 3, 2, 15, tzinfo=UTC))
    funnel.import_leads(
        [
            {
                "email": "imp@x.example.com",
                "status": "qualified",
                "created_at": datetime(2026, 2, 1, 21, tzinfo=CHICAGO),
            }
        ],
        carry_over=True,
    )
    (item,) = funnel.rep_list("never_booked", at=datetime(2026, 3, 7, tzinfo=UTC))
    assert item.since.isoformat() == "2026-02-02T03:00:00+00:00"
    (row,) = csv.DictReader(io.StringIO(funnel.rep_list("never_booked").to_csv()))
    assert row["since"] == "2026-02-02T03:00:00+00:00"


# --- 3. time in stage to the microsecond --------------------------------------------------


def test_time_in_stage_medians_keep_the_microseconds(funnel: Funnel, clock: ManualClock) -> None:
    """MariaDB divided the microseconds by an exact 1000000.0, a DECIMAL division that
    kept 4 decimals: 86400.1235 s for 86400.123456."""
    lead = funnel.capture(Lead(**person(1)))
    clock.advance(days=1, microseconds=123_456)
    funnel.qualify(lead, force=True)
    times = funnel.report().time_in_stage["raw"]
    assert times.median_days == timedelta(days=1, microseconds=123_456).total_seconds() / 86_400
    assert json.loads(funnel.report().to_json())["time_in_stage"][0]["median_days"] == (
        times.median_days
    )


def test_an_even_count_median_is_pythons_to_the_last_digit(
    funnel: Funnel, clock: ManualClock
) -> None:
    """The mean of the middle two, in floating point as Python takes it, on every store
    (PostgreSQL's exact numeric seconds could round the mean otherwise)."""
    # The middle two: a mean that the exact sum rounds otherwise (497510.341981 against
    # Python's 497510.34198100003 seconds).
    waits = [
        timedelta(hours=7, microseconds=1),
        timedelta(microseconds=231_020_807_703),
        timedelta(microseconds=763_999_876_259),
        timedelta(days=20, microseconds=100_003),
    ]
    leads = [funnel.capture(Lead(**person(n))) for n in range(len(waits))]
    start = clock.now()
    for n in sorted(range(len(waits)), key=lambda n: waits[n]):
        clock.set(start + waits[n])
        funnel.qualify(leads[n], force=True)
    times = funnel.report().time_in_stage["raw"]
    expected = statistics.median(w.total_seconds() for w in waits) / 86_400
    assert (times.count, times.median_days) == (4, expected)


def test_no_shows_grouped_a_page_at_a_time_count_as_all_at_once(
    funnel: Funnel, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report by source reads each no-show's contact and lead a page of deals at a
    time (flat memory): pages of two give what one page of all gives."""
    from leadfunnel import _reports

    for n, source in enumerate(("web", "web", "fair", None, "web"), start=300):
        lead = funnel.capture(Lead(**person(n, source=source)))
        funnel.qualify(lead, force=True)
        funnel.set_appointment(lead, setter="sue", appointment_at=T0 + DAY)
    clock.advance(days=3)
    whole = {key: group.not_sat for key, group in funnel.report(by="source").groups.items()}
    assert whole == {"web": 3, "fair": 1, None: 1}
    monkeypatch.setattr(_reports, "_PAGE", 2)
    paged = {key: group.not_sat for key, group in funnel.report(by="source").groups.items()}
    assert paged == whole
