"""Report periods: bounds read from the command line, their labels, the period before."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from leadfunnel._periods import parse_bound, period_label, previous_period, read_zone

CHICAGO = ZoneInfo("America/Chicago")


def test_a_date_is_the_start_of_that_day_in_the_zone() -> None:
    assert parse_bound("2026-03-02") == datetime(2026, 3, 2, tzinfo=UTC)
    assert parse_bound("2026-03-02", CHICAGO) == datetime(2026, 3, 2, tzinfo=CHICAGO)
    assert parse_bound("2026-03-02", CHICAGO).astimezone(UTC) == datetime(2026, 3, 2, 6, tzinfo=UTC)


def test_a_datetime_keeps_its_offset_or_takes_the_zone() -> None:
    assert parse_bound("2026-03-02T09:30") == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert parse_bound(" 2026-03-02 09:30 ", CHICAGO) == datetime(2026, 3, 2, 9, 30, tzinfo=CHICAGO)
    with_offset = parse_bound("2026-03-02T09:30:00+01:00", CHICAGO)
    assert with_offset.utcoffset() == timedelta(hours=1)
    assert parse_bound("2026-03-02T09:30Z") == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "02/03/2026", ""])
def test_anything_else_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape("give e.g. 2026-03-02, 2026-03-02T09:00")):
        parse_bound(text)


def test_zones_by_name() -> None:
    assert read_zone("utc") is UTC
    assert read_zone("America/Chicago") == CHICAGO
    with pytest.raises(ValueError, match="'Mars/Base' is not a time zone"):
        read_zone("Mars/Base")


def test_whole_months_compare_with_the_same_months_before() -> None:
    march = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert previous_period(*march) == (datetime(2026, 2, 1, tzinfo=UTC), march[0])
    quarter = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert previous_period(*quarter) == (datetime(2025, 10, 1, tzinfo=UTC), quarter[0])


def test_other_periods_compare_with_the_same_length_before() -> None:
    week = (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC))
    assert previous_period(*week) == (datetime(2026, 2, 23, tzinfo=UTC), week[0])
    hours = (datetime(2026, 3, 2, 9, tzinfo=UTC), datetime(2026, 3, 2, 17, tzinfo=UTC))
    assert previous_period(*hours)[0] == datetime(2026, 3, 2, 1, tzinfo=UTC)
    # A week across the change to summer time (Chicago, 8 March 2026) stays Monday to
    # Monday on the wall clock.
    summer = (datetime(2026, 3, 9, tzinfo=CHICAGO), datetime(2026, 3, 16, tzinfo=CHICAGO))
    assert previous_period(*summer)[0] == datetime(2026, 3, 2, tzinfo=CHICAGO)
    with pytest.raises(ValueError, match="the period is empty"):
        previous_period(week[1], week[0])


def test_labels_show_the_days_covered_or_the_moments() -> None:
    day = datetime(2026, 3, 2, tzinfo=UTC)
    assert period_label(day, day + timedelta(days=7)) == "2026-03-02 to 2026-03-08"
    assert period_label(day, day + timedelta(days=1)) == "2026-03-02"
    assert (
        period_label(datetime(2026, 2, 2, tzinfo=CHICAGO), datetime(2026, 2, 9, tzinfo=CHICAGO))
        == "2026-02-02 to 2026-02-08 (CST)"
    )
    assert (
        period_label(day + timedelta(hours=9), day + timedelta(days=1, hours=9, seconds=5))
        == "2026-03-02 09:00 UTC up to 2026-03-03 09:00:05 UTC"
    )
    paris = timezone(timedelta(hours=1))
    assert period_label(datetime(2026, 3, 2, 9, tzinfo=paris), None) == (
        "2026-03-02 09:00 UTC+01:00 up to now"
    )
    assert period_label(None, None) == "all time"
    assert period_label(None, day, first=day - timedelta(days=3)) == (
        "2026-02-27 (first lead) to 2026-03-01"
    )
    assert period_label(None, None, as_of=day) == "the start to 2026-03-02 (today)"


def test_a_period_across_a_change_of_daylight_saving_time_names_both_zones() -> None:
    chicago = ZoneInfo("America/Chicago")
    since = datetime(2026, 3, 2, tzinfo=chicago)  # CST
    until = datetime(2026, 3, 16, tzinfo=chicago)  # CDT since 8 March
    assert period_label(since, until) == "2026-03-02 to 2026-03-15 (CST/CDT)"
    assert period_label(since, datetime(2026, 3, 7, tzinfo=chicago)).endswith("(CST)")
