"""The qualification rules engine, after an integrator's audit: arguments refused when a
config is loaded (not on the first lead), a rule of one's own asked once per lead, and
whatever a rule answers checked."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from conftest import T0, person
from leadfunnel import (
    ConfigError,
    Funnel,
    Lead,
    LeadStatus,
    Profile,
    QualificationEngine,
    RuleError,
    rules,
)
from leadfunnel.rules import (
    BaseRule,
    CompanySize,
    FieldRule,
    Money,
    Niche,
    Verdict,
    make_rule,
    register_rule,
)
from leadfunnel.testing import ManualClock


def _engine(*given: dict[str, Any]) -> QualificationEngine:
    return QualificationEngine.from_dict({"profiles": [{"name": "p", "rules": list(given)}]})


# --- 1. every number a rule takes is finite ----------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"rule": "money", "min_annual_revenue": float("nan")},
        {"rule": "money", "min_annual_revenue": float("inf")},
        {"rule": "money", "min_annual_revenue": Decimal("NaN")},
        {"rule": "money", "min_annual_revenue": Decimal("sNaN")},
        {"rule": "money", "min_annual_revenue": Decimal("Infinity")},
        {"rule": "money", "min_employees": float("inf")},
        {"rule": "company_size", "min_employees": float("nan")},
        {"rule": "company_size", "max_employees": float("inf")},
        {"rule": "field", "field": "annual_revenue", "min": float("nan")},
        {"rule": "field", "field": "ratio", "max": float("inf")},  # a custom field
        {"rule": "field", "field": "ratio", "equals": float("nan")},
        {"rule": "field", "field": "ratio", "in": [1.5, float("nan")]},
        {"rule": "niche", "industries": ["IT"], "weight": float("inf")},
        {"rule": "niche", "industries": ["IT"], "weight": float("nan")},
    ],
)
def test_a_number_that_is_not_finite_is_refused_at_load(rule: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"profile 'p', rule #1: .*(finite|weight)") as error:
        _engine(rule)
    assert f"rule {rule['rule']!r}" in str(error.value)


def test_nan_in_a_toml_rules_file_is_refused_when_it_is_read(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[profiles]]\nname = "rich"\nrules = [{ rule = "money", min_annual_revenue = nan }]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"profile 'rich', rule #1: rule 'money': .*finite"):
        QualificationEngine.from_toml(rules)


def test_a_non_finite_minimum_is_refused_in_python_too() -> None:
    with pytest.raises(ValueError, match="min_annual_revenue must be a finite number, not nan"):
        Money(min_annual_revenue=float("nan"))
    with pytest.raises(ValueError, match="max_employees must be a finite number"):
        CompanySize(max_employees=float("inf"))
    with pytest.raises(ValueError, match="finite"):
        Niche(["IT"], weight=float("inf"))


# --- 2. a rule of one's own is asked once per lead, and its verdict kept -----------------


class Flaky(BaseRule):
    """Answers differently every time it is asked."""

    name = "flaky"

    def __init__(self, *, hard: bool = False) -> None:
        super().__init__(hard=hard)
        self.calls = 0

    def evaluate(self, lead: Lead) -> Verdict:
        self.calls += 1
        return Verdict.passed("score 80") if self.calls % 2 == 0 else Verdict.failed("score 20")


class Counted(BaseRule):
    """Unknown unless the lead has an industry; counts the leads it was asked about."""

    name = "counted"

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[Any] = []

    def evaluate(self, lead: Lead) -> Verdict:
        self.asked.append(lead.id)
        if lead.industry is None:
            return Verdict.unknown("no industry", missing=["industry"])
        return Verdict.passed("an industry") if lead.title else Verdict.failed("no title")


def test_the_verdicts_of_a_qualify_are_those_it_decided_on() -> None:
    flaky = Flaky(hard=True)
    funnel = Funnel(engine=QualificationEngine([Profile("p", [flaky])]))
    result = funnel.qualify(funnel.capture(Lead(email="a@b.example.com")))
    assert flaky.calls == 1
    assert result.status is LeadStatus.UNQUALIFIED
    assert [(v.outcome, v.reason, v.rule) for v in result.verdicts["p"]] == [
        ("fail", "score 20", "flaky")
    ]
    assert funnel.events()[-1].data["verdicts"]["p"][0]["outcome"] == "fail"


def test_engine_evaluate_asks_a_custom_rule_once_however_often_it_is_explained() -> None:
    flaky = Flaky()
    engine = QualificationEngine(
        [Profile("p", [Niche(["IT Services"]), flaky]), Profile("q", [Niche(["Retail"])])]
    )
    result = engine.evaluate(Lead(industry="IT Services"))
    assert result.decision == "fail"
    assert [v.outcome for v in result.verdicts["p"]] == ["pass", "fail"]
    assert [v.outcome for v in result.failed] == ["fail", "fail"]
    assert result.to_dict()["verdicts"]["p"][1]["reason"] == "score 20"
    assert result.missing == ()
    assert flaky.calls == 1
    # Profile.explain on its own asks afresh: it is a new judgement.
    assert engine.profiles[0].explain(Lead(industry="IT Services"))[1].outcome == "pass"


def test_a_built_in_rule_answering_with_an_evaluate_of_its_own_is_asked_once() -> None:
    class Louder(Niche):
        asked = 0

        def evaluate(self, lead: Lead) -> Verdict:
            type(self).asked += 1
            return Verdict.failed("too quiet") if type(self).asked == 1 else super().evaluate(lead)

    result = QualificationEngine([Profile("p", [Louder(["IT"])])]).evaluate(Lead(industry="IT"))
    assert (result.decision, [v.reason for v in result.failed], Louder.asked) == (
        "fail",
        ["too quiet"],
        1,
    )


def test_qualify_all_asks_a_custom_rule_once_per_lead() -> None:
    counted = Counted()
    funnel = Funnel(engine=QualificationEngine([Profile("p", [counted])]))
    made = [
        funnel.capture(Lead(**person(1))),  # passes
        funnel.capture(Lead(**person(2, industry=None))),  # undecided: missing asked for
        funnel.capture(Lead(**person(3, title=None))),  # fails, waits for a call
    ]
    counts = funnel.qualify_all(page_size=2)
    assert counts == {"qualified": 1, "unqualified": 0, "waiting": 2, "skipped": 0, "failed": 0}
    assert sorted(counted.asked) == sorted(lead.id for lead in made)
    undecided = [e for e in funnel.events() if e.name == "qualify" and e.subject_id == made[1].id]
    assert undecided[0].data["missing"] == ["industry"]


# --- 3. field bounds given as text are compared as the field's values -------------------


def test_field_bounds_given_as_text_are_compared_as_numbers() -> None:
    engine = _engine({"rule": "field", "field": "employees", "min": "9", "max": "10"})
    assert engine.evaluate(Lead(employees=9)).qualified
    assert engine.evaluate(Lead(employees=11)).decision == "fail"
    with pytest.raises(ConfigError, match=r"profile 'p', rule #1: .*min 10 is above max 9"):
        _engine({"rule": "field", "field": "employees", "min": "10", "max": "9"})
    # A custom field's text bounds are compared once the funnel knows the field's type.
    rule = FieldRule("endpoints", min="9", max="10")

    class Fleet(Lead):
        endpoints: int | None = None

    assert rule.evaluate(Fleet(endpoints=10)).outcome == "pass"


# --- 4. a wrong field argument is refused at load, and said to be a config problem ------


def test_a_bound_no_value_of_a_lead_field_can_be_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match=r"profile 'p', rule #1: .*min='abc' is not a value"):
        _engine({"rule": "field", "field": "employees", "min": "abc"})
    with pytest.raises(ConfigError, match=r"in='gold' is not a value"):
        _engine({"rule": "field", "field": "interest", "in": ["high", "gold"]})
    with pytest.raises(ConfigError, match=r"min='abc' is not a value"):
        FieldRule("employees", min="abc")


def test_a_field_the_lead_lacks_is_a_config_error_when_judged_without_a_funnel() -> None:
    engine = _engine({"rule": "field", "field": "nonexistent", "exists": True})  # maybe custom
    with pytest.raises(ConfigError, match=r"'nonexistent', which Lead has no field"):
        Funnel(engine=engine)
    with pytest.raises(ConfigError, match=r"profile 'p'.*'nonexistent', which Lead has no") as e:
        engine.evaluate(Lead(industry="IT"))
    assert not isinstance(e.value, RuleError)
    assert "should answer unknown" not in str(e.value)


def test_a_config_error_inside_a_rule_surfaces_as_a_config_error() -> None:
    class Configured(BaseRule):
        name = "configured"

        def evaluate(self, lead: Lead) -> Verdict:
            raise ConfigError("the threshold file is missing; set THRESHOLDS")

    engine = QualificationEngine([Profile("p", [Configured()])])
    with pytest.raises(ConfigError, match="profile 'p', rule 'configured': the threshold"):
        engine.evaluate(Lead())


# --- 5. what a rule answers is checked --------------------------------------------------


def test_a_verdict_is_made_only_of_an_outcome_and_a_reason() -> None:
    with pytest.raises(ValueError, match="'pass', 'fail' or 'unknown', not 'maybe'"):
        Verdict("maybe", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reason must be text"):
        Verdict(outcome="pass", reason=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="missing must be a list of field names"):
        Verdict("unknown", "x", "industry")  # type: ignore[arg-type]
    assert Verdict("unknown", "x", ["industry"]).missing == ("industry",)  # type: ignore[arg-type]


def test_a_rule_answering_an_invalid_verdict_is_a_rule_error() -> None:
    class Maybe(BaseRule):
        name = "maybe"

        def evaluate(self, lead: Lead) -> Verdict:
            return Verdict("maybe", "perhaps")  # type: ignore[arg-type]

    class Sneaky(BaseRule):
        name = "sneaky"

        def evaluate(self, lead: Lead) -> Verdict:
            verdict = Verdict.passed("fine")
            object.__setattr__(verdict, "outcome", "maybe")  # past the checks
            return verdict

    lead = Lead(industry="IT")
    for rule in (Maybe(), Sneaky()):
        engine = QualificationEngine([Profile("p", [rule])])
        with pytest.raises(RuleError, match="maybe") as error:
            engine.evaluate(lead)
        assert (error.value.rule, error.value.profile, error.value.lead_id) == (
            rule.name,
            "p",
            lead.id,
        )


# --- 6. nits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("money", {"min_employees": 5.5}),
        ("company_size", {"min_employees": 0.5}),
        ("company_size", {"max_employees": Decimal("10.2")}),
    ],
)
def test_a_fractional_head_count_is_refused(name: str, arguments: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="whole number of employees"):
        make_rule(name, **arguments)


def test_a_whole_head_count_written_as_a_float_is_taken() -> None:
    assert Money(min_employees=5.0).evaluate(Lead(employees=5)).outcome == "pass"
    assert CompanySize(max_employees=10.0).evaluate(Lead(employees=11)).outcome == "fail"


def test_hard_must_be_true_or_false() -> None:
    class Duck:
        name = "duck"
        hard = "false"

        def evaluate(self, lead: Lead) -> Verdict:
            return Verdict.failed("quack")

    with pytest.raises(ConfigError, match=r"profile 'p': rule 'duck' has hard='false'"):
        Profile("p", [Duck()])


def test_a_field_rule_config_takes_in_not_one_of() -> None:
    with pytest.raises(ConfigError, match=r"'one_of'.* write 'in'"):
        _engine({"rule": "field", "field": "source", "one_of": ["webinar"]})
    engine = _engine({"rule": "field", "field": "source", "in": ["webinar"]})
    assert engine.evaluate(Lead(source="Webinar")).qualified


class _First(BaseRule):
    name = "audit_twice"

    def evaluate(self, lead: Lead) -> Verdict:
        return Verdict.passed("first")


class _Second(_First):
    def evaluate(self, lead: Lead) -> Verdict:
        return Verdict.failed("second")


def test_registering_a_name_twice_is_refused_unless_replacing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rules, "_registered", {})  # registrations last the process
    register_rule("audit_twice", _First)
    register_rule("audit_twice", _First)  # the same again: harmless (a module imported twice)
    with pytest.raises(ConfigError, match=r"'audit_twice' is already registered.*replace=True"):
        register_rule("audit_twice", _Second)
    assert make_rule("audit_twice").evaluate(Lead()).reason == "first"
    register_rule("audit_twice", _Second, replace=True)
    assert make_rule("audit_twice").evaluate(Lead()).reason == "second"


def test_qualify_all_stops_at_a_rule_that_raises_storing_nothing_of_that_page() -> None:
    """Pins what docs/rules.md says: a page is all or nothing; RuleError.lead_id finds
    the lead."""

    class Picky(BaseRule):
        name = "picky"

        def evaluate(self, lead: Lead) -> Verdict:
            if lead.company == "Broken":
                raise ValueError("no score")
            return Verdict.passed("fine")

    clock = ManualClock(T0)
    funnel = Funnel(engine=QualificationEngine([Profile("p", [Picky()])]), clock=clock)
    made = []
    for n, company in enumerate(["A", "B", "C", "Broken"], 1):
        made.append(funnel.capture(Lead(**person(n, company=company))))
        clock.advance(seconds=1)
    with pytest.raises(RuleError) as error:
        funnel.qualify_all(page_size=2)
    assert error.value.lead_id == made[3].id
    statuses = [funnel.get_lead(lead.id).status for lead in made]
    assert statuses == [LeadStatus.QUALIFIED] * 2 + [LeadStatus.RAW] * 2
