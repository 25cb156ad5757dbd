"""A cadence's configuration errors are ConfigErrors naming the key the user wrote and
the value: infinite, NaN, negative and huge numbers of days or hours, and a time zone
that is not a name, from data and TOML as from the Python API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from leadfunnel import BusinessHours, CadencePolicy, ConfigError

INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lead_intervals_days": [0, INF]}, "lead_intervals_days[1] = inf must be a finite"),
        ({"contact_intervals_days": [1, NAN]}, "contact_intervals_days[1] = nan must be a finite"),
        ({"lead_intervals_days": [-1]}, "lead_intervals_days[0] = -1 must be a finite number"),
        ({"lead_intervals_days": [1e12]}, "lead_intervals_days[0] = 1000000000000.0 is too long"),
        ({"lead_intervals_days": []}, "lead_intervals_days is empty"),
        ({"contact_intervals_days": [1, 7, 3]}, "contact_intervals_days[2] = 3 is shorter"),
        ({"grace_hours": NAN}, "grace_hours = nan must be a finite number of hours >= 0"),
        ({"grace_hours": INF}, "grace_hours = inf must be a finite number of hours >= 0"),
        ({"first_response_hours": -1}, "first_response_hours = -1 must be a finite number"),
        ({"first_response_hours": 1e300}, "first_response_hours = 1e+300 is too long"),
        ({"first_response_hours": "2"}, "first_response_hours must be a number of hours, not '2'"),
        ({"business_hours": {"timezone": 5}}, "business_hours.timezone: must be an IANA name"),
        ({"business_hours": {"timezone": "Mars/Base"}}, "business_hours.timezone: unknown"),
        ({"business_hours": {"days": ["mon", "xyz"]}}, "business_hours.days: 'xyz' is not a"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_key_and_the_value(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        CadencePolicy.from_dict(data)
    assert str(info.value).startswith("cadence: ")
    assert message in str(info.value)


def test_the_same_from_a_toml_file(tmp_path: Path) -> None:
    file = tmp_path / "cadence.toml"
    for text, message in [
        ("lead_intervals_days = [0, inf]\n", "lead_intervals_days[1] = inf"),
        ("grace_hours = nan\n", "grace_hours = nan"),
        ("lead_intervals_days = [1e12]\n", "lead_intervals_days[0] = 1000000000000.0"),
        ("[business_hours]\ntimezone = 5\n", "business_hours.timezone: must be an IANA name"),
        ("first_response_hours = -1\n", "first_response_hours = -1"),
    ]:
        file.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            CadencePolicy.from_toml(file)
        assert message in str(info.value), text


def test_a_time_zone_that_is_not_a_name_is_refused_when_the_hours_are_made() -> None:
    """Not accepted, to fail with an AssertionError when the first deadline is counted."""
    with pytest.raises(ConfigError, match=r"timezone: must be an IANA name .* not 5"):
        BusinessHours(timezone=5)  # type: ignore[arg-type]
    policy = CadencePolicy(business_hours=BusinessHours(timezone="Europe/Berlin"))
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    assert policy.first_response_deadline(start) == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_good_values_still_read() -> None:
    policy = CadencePolicy.from_dict(
        {"lead_intervals_days": [0, 0.5, 2], "first_response_hours": 0, "grace_hours": 1.5}
    )
    assert [w.total_seconds() for w in policy.lead_intervals] == [0, 43200, 172800]
    assert policy.first_response.total_seconds() == 0
    assert policy.grace.total_seconds() == 5400
