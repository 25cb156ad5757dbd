"""Configuration and arguments at their edges (an audit): a rule table with a ``name``
key, business hours with an offset and holidays written as date-times, a cadence or an
engine given no table or list, a report ending at the start of the calendar, and a goal
of wins too large for a float. Each is the library's own error saying what to write, or
a right answer; never a bare ``TypeError`` or ``OverflowError``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from leadfunnel import (
    BusinessHours,
    CadencePolicy,
    ConfigError,
    Funnel,
    Lead,
    Profile,
    QualificationEngine,
    SqlRepository,
    rules,
)
from leadfunnel._cli import main
from leadfunnel._periods import period_label
from leadfunnel._reports import FunnelReport, _steps
from leadfunnel.rules import BaseRule, Niche, Verdict, make_rule, register_rule
from leadfunnel.testing import ManualClock

NOW = datetime(2026, 3, 2, tzinfo=UTC)
CALENDAR_START = datetime(1, 1, 1, tzinfo=UTC)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --- 1. a rule table with a `name` key -----------------------------------------------


def test_a_name_key_on_a_built_in_rule_is_a_config_error_naming_profile_and_rule() -> None:
    config = {
        "profiles": [
            {
                "name": "msp",
                "rules": [{"rule": "niche", "name": "industry check", "industries": ["IT"]}],
            }
        ]
    }
    with pytest.raises(ConfigError) as info:
        QualificationEngine.from_dict(config)
    message = str(info.value)
    assert message.startswith(
        "profile 'msp', rule #1: rule 'niche': got an unexpected keyword argument 'name'"
    )
    assert "remove 'name'" in message


def test_a_name_key_in_a_rules_file_is_a_one_line_error_on_the_command_line(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[profiles]]\nname = "msp"\n'
        'rules = [ { rule = "niche", name = "industry check", industries = ["IT"] } ]\n',
        encoding="utf-8",
    )
    done = invoke("qualify", "--db", f"sqlite:///{tmp_path / 'f.db'}", "--rules", str(rules))
    assert done.exit_code == 2
    assert "Traceback" not in done.output
    assert "profile 'msp', rule #1: rule 'niche'" in done.output
    assert "'name'" in done.output


@pytest.fixture
def labelled_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "_registered", {})  # registrations last the process

    class Labelled(BaseRule):
        name = "audit_config_labelled"

        def __init__(self, *, name: str = "audit_config_labelled", hard: bool | None = None):
            super().__init__(hard=hard)
            self.name = name

        def evaluate(self, lead: Lead) -> Verdict:
            return Verdict.passed("labelled")

    register_rule("audit_config_labelled", Labelled)


@pytest.mark.usefixtures("labelled_rule")
def test_a_plugin_rule_that_takes_a_name_is_given_it_from_the_config() -> None:
    assert make_rule("audit_config_labelled", name="my label").name == "my label"
    engine = QualificationEngine.from_dict(
        {"profiles": [{"name": "p", "rules": [{"rule": "audit_config_labelled", "name": "x"}]}]}
    )
    assert engine.profiles[0].rules[0].name == "x"


def test_a_name_key_on_the_field_rule_is_a_config_error_too() -> None:
    with pytest.raises(ConfigError, match="rule 'field': got an unexpected keyword argument"):
        make_rule("field", field="industry", equals="IT", name="x")


# --- 2. business hours and cadence data -----------------------------------------------


@pytest.mark.parametrize(
    ("hours", "shown", "write"),
    [
        ({"start": "09:00+01:00", "end": "17:00"}, "09:00:00+01:00 has a UTC offset", "09:00"),
        ({"start": "09:00", "end": "17:30Z"}, "17:30:00+00:00 has a UTC offset", "17:30"),
    ],
)
def test_business_hours_with_an_offset_are_a_config_error_saying_what_to_write(
    tmp_path: Path, hours: dict[str, str], shown: str, write: str
) -> None:
    file = tmp_path / "cadence.toml"
    lines = [f'{key} = "{value}"' for key, value in hours.items()]
    file.write_text(
        "[business_hours]\n" + "\n".join(lines) + '\ntimezone = "Europe/Berlin"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        CadencePolicy.from_toml(file)
    message = str(info.value)
    assert message.startswith("cadence: business_hours.")
    assert shown in message
    assert "wall-clock times in the policy's time zone (here Europe/Berlin)" in message
    assert f"write {write} without an offset" in message
    done = invoke("due", "--db", f"sqlite:///{tmp_path / 'f.db'}", "--cadence", str(file))
    assert done.exit_code == 2
    assert "Traceback" not in done.output
    assert shown in done.output


@pytest.mark.parametrize(
    "hours",
    [
        {"start": time(9, tzinfo=timezone(timedelta(hours=1)))},
        {"start": time(9, tzinfo=UTC), "end": time(17, tzinfo=UTC)},
    ],
)
def test_business_hours_made_in_python_with_an_offset_are_a_config_error(
    hours: dict[str, time],
) -> None:
    with pytest.raises(ConfigError, match=r"^business hours: start: .* write 09:00 without"):
        BusinessHours(**hours)  # type: ignore[arg-type]


def test_a_holiday_written_as_a_toml_date_time_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "cadence.toml"
    file.write_text("[business_hours]\nholidays = [2026-12-25T00:00:00Z]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        CadencePolicy.from_toml(file)
    message = str(info.value)
    assert message.startswith("cadence: business_hours.holidays: 2026-12-25T00:00:00+00:00")
    assert "write the date alone (2026-12-25)" in message


@pytest.mark.parametrize(
    ("holidays", "problem"),
    [
        ({datetime(2026, 12, 25)}, "2026-12-25T00:00:00 is a date and time, not a date"),
        (["2026-12-25"], "'2026-12-25' is not a date"),
    ],
)
def test_a_holiday_made_in_python_that_is_no_date_is_a_config_error(
    holidays: Any, problem: str
) -> None:
    with pytest.raises(ConfigError, match=f"^business hours: holidays: {problem}"):
        BusinessHours(holidays=holidays)


def test_a_holiday_given_as_a_date_still_is_one(tmp_path: Path) -> None:
    file = tmp_path / "cadence.toml"
    file.write_text("[business_hours]\nholidays = [2026-12-25]\n", encoding="utf-8")
    hours = CadencePolicy.from_toml(file).business_hours
    assert hours is not None
    assert not hours.is_working_day(date(2026, 12, 25))
    assert hours.is_working_day(date(2026, 12, 24))


@pytest.mark.parametrize("data", [None, [], "lead_touches = 3", 3])
def test_cadence_data_that_is_no_mapping_is_a_config_error(data: Any) -> None:
    with pytest.raises(ConfigError, match=r"^cadence: the settings must be a table/mapping"):
        CadencePolicy.from_dict(data)


# --- 3. a report ending at the start of the calendar ----------------------------------


def test_a_report_until_the_start_of_the_calendar_reads_in_every_output(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    funnel = Funnel(SqlRepository(url), clock=ManualClock(NOW))
    funnel.capture(Lead(email="a@example.com"))
    report = funnel.report(until=CALENDAR_START)
    assert report.steps["raw"].count == 0
    expected = (
        "an empty period: nothing comes before 0001-01-01 00:00 UTC, the start of the calendar"
    )
    assert report.period == expected
    assert json.loads(report.to_json())["period"] == expected
    assert expected in str(report)
    assert report.to_svg().startswith("<svg")
    # The day after: the day before the first lead, shown as a day.
    next_day = funnel.report(until=CALENDAR_START + timedelta(days=1))
    assert next_day.period == "up to 0001-01-01, before the first lead (2026-03-02)"
    funnel.repository.close()
    done = invoke("report", "--db", url, "--until", "0001-01-01")
    assert done.exit_code == 0, done.output
    assert "nothing comes before 0001-01-01" in done.output


@pytest.mark.parametrize(
    ("since", "until", "first", "expected"),
    [
        # Midnight on the first day west of UTC: hours of UTC come before it.
        (
            None,
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
            CALENDAR_START,
            "0001-01-01 00:00 UTC (first lead) up to 0001-01-01 00:00 UTC-05:00",
        ),
        (
            CALENDAR_START,
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
            None,
            "0001-01-01 00:00 UTC up to 0001-01-01 00:00 UTC-05:00",
        ),
        # East of UTC, the calendar's first instant on that clock.
        (
            None,
            datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
            NOW,
            "an empty period: nothing comes before 0001-01-01 01:00 UTC+01:00, the start "
            "of the calendar",
        ),
        # A year before 1000 is written with four digits.
        (
            None,
            datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC),
            NOW,
            "up to 0001-01-01 00:00:01 UTC, before the first lead (2026-03-02 00:00 UTC)",
        ),
    ],
)
def test_a_period_at_the_start_of_the_calendar_is_labelled(
    since: datetime | None, until: datetime, first: datetime | None, expected: str
) -> None:
    assert period_label(since, until, first=first, as_of=NOW) == expected


def test_a_report_made_at_the_end_of_the_calendar_labels_its_day() -> None:
    east = timezone(timedelta(hours=1))
    as_of = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)  # the year 10000 at +01:00
    label = period_label(datetime(9999, 12, 31, tzinfo=east), None, as_of=as_of)
    assert label == "9999-12-31 (today, UTC+01:00)"


# --- 4. an engine or a profile given no list ------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: QualificationEngine(None),  # type: ignore[arg-type]
            "a qualification engine takes a list of profiles ([Profile(...)]), not None",
        ),
        (
            lambda: QualificationEngine("abc"),  # type: ignore[arg-type]
            "a qualification engine takes a list of profiles ([Profile(...)]), not the string",
        ),
        (
            lambda: QualificationEngine(Profile("p", [Niche(["IT"])])),  # type: ignore[arg-type]
            "not a single Profile; put it in a list: [Profile('p'",
        ),
        (
            lambda: Profile("p", None),  # type: ignore[arg-type]
            "profile 'p': rules must be a list of rules, not None",
        ),
        (
            lambda: Profile("p", "niche"),  # type: ignore[arg-type]
            "profile 'p': rules must be a list of rules, not the string 'niche'",
        ),
        (
            lambda: Profile("p", Niche(["IT"])),  # type: ignore[arg-type]
            "profile 'p': rules must be a list of rules, not a single Niche; put it in a list",
        ),
    ],
)
def test_an_engine_or_profile_without_a_list_is_a_config_error(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


def test_an_engine_still_takes_any_iterable_of_profiles() -> None:
    profiles = (Profile(name, [Niche(["IT"])]) for name in ("a", "b"))
    assert [p.name for p in QualificationEngine(profiles).profiles] == ["a", "b"]


# --- 5. required_for, exactly ---------------------------------------------------------


def _report(raw: int, won: int) -> FunnelReport:
    later = ("qualified", "appointment_set", "appointment_sat", "proposing", "contract_sent")
    return FunnelReport(steps=_steps({"raw": raw, **dict.fromkeys(later, won), "won": won}))


def test_required_for_is_exact_where_floats_round_up_one_too_many() -> None:
    needed = _report(49, 1).required_for(wins=10**6)
    assert needed["raw"] == 49_000_000
    assert needed["qualified"] == needed["won"] == 10**6


def test_required_for_a_goal_past_the_floats_is_answered() -> None:
    needed = _report(49, 1).required_for(wins=10**400)
    assert needed["raw"] == 49 * 10**400
    assert all(type(n) is int for n in needed.values())


@pytest.mark.parametrize(("raw", "won"), [(3, 2), (7, 3), (49, 1), (59, 58)])
@pytest.mark.parametrize("wins", [1, 7, 10**6, 10**9])
def test_required_for_rounds_the_exact_need_up(raw: int, won: int, wins: int) -> None:
    assert _report(raw, won).required_for(wins=wins)["raw"] == math.ceil(Fraction(wins * raw, won))


def test_required_for_keeps_none_past_a_step_never_reached() -> None:
    report = FunnelReport(steps=_steps({"raw": 3, "qualified": 0}))
    needed = report.required_for(wins=1)
    assert needed["won"] == 1
    assert needed["raw"] is None
    assert needed["contract_sent"] is None
    assert set(report.required_for(wins=0).values()) == {0}


@pytest.mark.parametrize("path", [None, 3], ids=["None", "int"])
def test_from_toml_given_no_path_is_a_config_error(path: object) -> None:
    """``from_toml(None)`` raised a bare TypeError from pathlib."""
    from leadfunnel import RoutingRules

    for cls in (QualificationEngine, CadencePolicy, RoutingRules):
        with pytest.raises(ConfigError, match=r"is a path \(a str or a pathlib\.Path\), not"):
            cls.from_toml(path)  # type: ignore[arg-type]
