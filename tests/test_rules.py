"""Built-in qualification rules: what passes, fails or is unknown, and why."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from leadfunnel import ConfigError, Lead
from leadfunnel.rules import (
    FAIL,
    PASS,
    UNKNOWN,
    Authority,
    CompanySize,
    FieldRule,
    Geography,
    Money,
    Need,
    Niche,
    Rule,
    Source,
    Verdict,
    available_rules,
    make_rule,
)


def outcome(rule: Any, **fields: Any) -> str:
    verdict = rule.evaluate(Lead(**fields))
    # The fast check and the explained verdict never disagree.
    assert {PASS: "pass", FAIL: "fail", UNKNOWN: "unknown"}[rule.check(Lead(**fields))] == (
        verdict.outcome
    )
    assert verdict.rule == rule.name
    return str(verdict.outcome)


def test_verdict_constructors() -> None:
    assert Verdict.passed("ok") == Verdict("pass", "ok")
    assert Verdict.failed("no").outcome == "fail"
    unknown = Verdict.unknown("need data", missing=["title"])
    assert unknown.outcome == "unknown"
    assert unknown.missing == ("title",)
    assert unknown.to_dict() == {
        "rule": None,
        "outcome": "unknown",
        "reason": "need data",
        "missing": ["title"],
    }


def test_every_built_in_rule_is_a_rule() -> None:
    rules = [
        Niche(["IT"]),
        Authority(["ceo"]),
        Money(min_annual_revenue=1),
        Need(["backup"]),
        Geography(["US"]),
        CompanySize(min_employees=1),
        Source(),
    ]
    assert all(isinstance(rule, Rule) for rule in rules)
    assert [r.name for r in rules] == [
        "niche",
        "authority",
        "money",
        "need",
        "geography",
        "company_size",
        "source",
    ]


@pytest.mark.parametrize(
    ("industry", "expected"),
    [
        ("IT Services", "pass"),
        ("  it   services ", "pass"),
        ("MANAGED SERVICES", "pass"),
        ("Retail", "fail"),
        (None, "unknown"),
    ],
)
def test_niche(industry: str | None, expected: str) -> None:
    assert outcome(Niche(["IT Services", "Managed Services"]), industry=industry) == expected


def test_niche_reason_names_the_industry_and_the_niches() -> None:
    verdict = Niche(["IT Services", "Managed Services"]).evaluate(Lead(industry="Retail"))
    assert verdict.reason == "industry 'Retail' is not one of IT Services, Managed Services"
    assert Niche(["IT"]).evaluate(Lead()).missing == ("industry",)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("CEO", "pass"),
        ("Owner/CEO", "pass"),
        ("Co-Founder & CEO", "pass"),
        ("ceo", "pass"),
        ("Managing  Director", "pass"),
        ("CEO's assistant", "fail"),
        ("CEO\u2019s assistant", "fail"),
        ("Marketing Manager", "fail"),
        ("Proceosing Lead", "fail"),
        (None, "unknown"),
    ],
)
def test_authority_matches_whole_words(title: str | None, expected: str) -> None:
    rule = Authority(["ceo", "owner", "founder", "managing director"])
    assert outcome(rule, title=title) == expected


def test_money_needs_every_given_minimum() -> None:
    rule = Money(min_annual_revenue=1_000_000, min_employees=10)
    assert outcome(rule, annual_revenue=2_000_000, employees=10) == "pass"
    assert outcome(rule, annual_revenue=999_999, employees=50) == "fail"
    assert outcome(rule, annual_revenue=2_000_000, employees=9) == "fail"
    # No figure fails and a needed one is missing: unknown, naming what is missing.
    verdict = rule.evaluate(Lead(annual_revenue=2_000_000))
    assert verdict.outcome == "unknown"
    assert verdict.missing == ("employees",)
    # A failing figure decides even when another is missing.
    assert outcome(rule, annual_revenue=10) == "fail"
    assert rule.evaluate(Lead()).missing == ("annual_revenue", "employees")


def test_money_reason_shows_the_figures() -> None:
    reason = Money(min_annual_revenue=1_000_000).evaluate(Lead(annual_revenue=250_000)).reason
    assert reason == "annual revenue 250,000 is below the minimum 1,000,000"


def test_need() -> None:
    rule = Need(["Managed Backup", "Help Desk"])
    assert outcome(rule, needs={"help desk"}) == "pass"
    assert outcome(rule, needs={"Websites"}) == "fail"
    assert outcome(rule, needs=set()) == "unknown"
    assert rule.evaluate(Lead()).missing == ("needs",)


@pytest.mark.parametrize(
    ("country", "region", "expected"),
    [
        ("US", "TX", "pass"),
        ("United States", "Texas", "pass"),
        ("USA", "tx", "pass"),
        ("US", "NY", "fail"),
        ("CA", "TX", "fail"),
        ("US", None, "unknown"),
        (None, "TX", "unknown"),
    ],
)
def test_geography_by_code_or_name(country: str | None, region: str | None, expected: str) -> None:
    rule = Geography(["United States of America"], regions=["TX", "California"])
    assert outcome(rule, country=country, region=region) == expected


def test_geography_without_regions_needs_only_the_country() -> None:
    rule = Geography(["US", "Canada"])
    assert rule.countries == ("US", "CA")
    assert outcome(rule, country="CA") == "pass"
    assert outcome(rule, country="MX") == "fail"
    assert rule.evaluate(Lead(country="MX")).reason == (
        "country MX is outside the territory (US, CA)"
    )


def test_company_size_bounds_are_inclusive() -> None:
    rule = CompanySize(min_employees=5, max_employees=200)
    assert outcome(rule, employees=5) == "pass"
    assert outcome(rule, employees=200) == "pass"
    assert outcome(rule, employees=4) == "fail"
    assert outcome(rule, employees=201) == "fail"
    assert outcome(rule) == "unknown"


def test_source_allowed_and_blocked() -> None:
    assert outcome(Source(), source="anything") == "pass"
    rule = Source(allowed=["Webinar", "Referral"], blocked=["bought list"])
    assert outcome(rule, source="webinar") == "pass"
    assert outcome(rule, source="Trade show") == "fail"
    assert outcome(Source(blocked=["Bought  List"]), source="bought list") == "fail"
    assert outcome(rule) == "unknown"


@pytest.mark.parametrize(
    ("name", "arguments", "problem"),
    [
        ("niche", {"industries": "IT"}, "must be a list of strings"),
        ("niche", {"industries": []}, "at least one"),
        ("niche", {"industries": ["IT"], "colour": "red"}, "unexpected keyword argument 'colour'"),
        ("authority", {"titles": [""]}, "non-empty strings"),
        ("money", {}, "min_annual_revenue, min_employees or both"),
        ("money", {"min_annual_revenue": "lots"}, "must be a number"),
        ("money", {"min_annual_revenue": -1}, "must not be negative"),
        ("geography", {"countries": ["Narnia"]}, "'Narnia' is not a country"),
        ("company_size", {"min_employees": 10, "max_employees": 5}, "is above max_employees"),
        ("niche", {"industries": ["IT"], "hard": "yes"}, "hard must be true or false"),
        ("niche", {"industries": ["IT"], "weight": 0}, "weight must be positive"),
        ("telepathy", {}, "unknown rule 'telepathy'"),
    ],
)
def test_bad_rule_arguments_are_config_errors(
    name: str, arguments: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        make_rule(name, **arguments)


def test_available_rules_lists_the_built_ins() -> None:
    assert {"niche", "authority", "money", "need", "geography", "company_size", "source"} <= set(
        available_rules()
    )


# --- the field rule --------------------------------------------------------------------


class _Fleet(Lead):
    renewal: date | None = None
    ratio: float | None = None
    budget: Decimal | None = None


def _judge(rule: FieldRule, **fields: Any) -> tuple[str, str]:
    verdict = rule.evaluate(_Fleet(**fields))
    return verdict.outcome, verdict.reason


def test_the_field_rule_reads_its_bounds_as_the_fields_type() -> None:
    """A JSON or dict config gives text: read as a date, a number, a decimal."""
    assert _judge(FieldRule("renewal", max="2027-12-31"), renewal=date(2027, 6, 1)) == (
        "pass",
        "renewal 2027-06-01 meets the profile",
    )
    assert _judge(FieldRule("employees", min="20"), employees=5)[1] == "employees 5 is below 20"
    assert _judge(FieldRule("budget", min="2500.50"), budget=Decimal(2500))[0] == "fail"
    with pytest.raises(ConfigError, match=r"max='soon' is not a value of the field"):
        FieldRule("renewal", max="soon").conditions_for(_Fleet)
    with pytest.raises(ConfigError, match="which _Fleet has no field called"):
        FieldRule("colour", exists=True).conditions_for(_Fleet)


def test_a_field_rule_that_nothing_can_pass_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="min 20 is above max 10: nothing passes"):
        FieldRule("employees", min=20, max=10)
    with pytest.raises(ValueError, match="nothing passes"):
        FieldRule("renewal", min="2027-01-01", max="2026-01-01").conditions_for(_Fleet)
    with pytest.raises(ValueError, match="exists=false wants the field empty"):
        FieldRule("employees", exists=False, min=1)


def test_the_field_rule_on_a_set_field_looks_in_the_set() -> None:
    assert _judge(FieldRule("tags", one_of=["vip", "gold"]), tags={"VIP", "x"})[0] == "pass"
    assert _judge(FieldRule("tags", one_of=["vip"]), tags={"x"}) == (
        "fail",
        "tags (x) hold none of vip",
    )
    assert _judge(FieldRule("needs", equals="backup"), needs={"backup", "voip"})[0] == "pass"
    # An empty set is no value: unknown, or failed where it must exist.
    assert _judge(FieldRule("tags", one_of=["vip"]))[0] == "unknown"
    assert _judge(FieldRule("tags", exists=True)) == ("fail", "no tags given")


def test_a_float_that_is_not_a_number_is_no_value() -> None:
    assert _judge(FieldRule("ratio", min=0.5), ratio=float("nan")) == ("unknown", "no ratio given")
    assert _judge(FieldRule("ratio", min=0.5), ratio=0.7)[0] == "pass"


def test_field_rule_reasons_show_values_as_people_write_them() -> None:
    assert _judge(FieldRule("budget", min=1), budget=Decimal("2500000"))[1] == (
        "budget 2500000 meets the profile"
    )
    assert _judge(FieldRule("interest", equals="high"), interest="slight")[1] == (
        "interest is slight, not high"
    )
    assert _judge(FieldRule("source", one_of=["webinar", "referral"]), source="list")[1] == (
        "source list is not one of webinar, referral"
    )
