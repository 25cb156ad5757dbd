"""The rules engine at its edges, from an audit: regions of several countries, folded
titles, configurations nothing can pass, errors of rules built in Python and of plugins,
a rule asking another engine, and the bulk qualify event's record of custom rules."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from leadfunnel import (
    ConfigError,
    Funnel,
    InMemoryRepository,
    Lead,
    Profile,
    QualificationEngine,
    RuleError,
)
from leadfunnel.rules import (
    Authority,
    BaseRule,
    CompanySize,
    FieldRule,
    Niche,
    Verdict,
    register_rule,
)


def engine_of(*rules: dict[str, Any]) -> QualificationEngine:
    return QualificationEngine.from_dict({"profiles": [{"name": "p", "rules": list(rules)}]})


@pytest.mark.parametrize(
    ("country", "region", "inside"),
    [
        ("US", "WA", True),
        ("US", "Washington", True),
        ("AU", "NSW", True),
        ("Australia", "New South Wales", True),
        # Washington's code is Western Australia's: another country's region
        ("AU", "WA", False),
        ("Australia", "Western Australia", False),
        ("US", "NSW", False),
    ],
)
def test_a_region_is_the_one_of_its_own_country(country: str, region: str, inside: bool) -> None:
    engine = engine_of(
        {
            "rule": "geography",
            "countries": ["US", "AU"],
            "regions": ["Washington", "New South Wales"],
            "hard": True,
        }
    )
    assert engine.evaluate(Lead(country=country, region=region)).qualified is inside


def test_a_region_is_known_with_or_without_its_accents() -> None:
    engine = engine_of({"rule": "geography", "countries": ["CA"], "regions": ["QC"]})
    for region in ("Québec", "Quebec", unicodedata.normalize("NFD", "Québec"), "qc"):
        assert engine.evaluate(Lead(country="CA", region=region)).qualified, region


def test_titles_fold_alike_on_both_sides() -> None:
    rule = Authority(["Großhändler"])
    for title in ("Großhändler", "Inhaber & Großhändler", "GROSSHÄNDLER"):
        assert rule.evaluate(Lead(title=title)).ok, title
    assert not rule.evaluate(Lead(title="Händler")).ok


def test_decomposed_text_matches_as_composed() -> None:
    engine = engine_of({"rule": "niche", "industries": ["Café"]})
    assert engine.evaluate(Lead(industry=unicodedata.normalize("NFD", "Café"))).qualified


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"field": "source", "in": []}, r"in = \[\] lets nothing pass"),
        ({"field": "source", "equals": None}, "write exists = false"),
        ({"field": "tags", "min": "a"}, "tags is a set of them"),
        ({"field": "source", "equals": "webinar", "in": ["referral"]}, "nothing passes"),
        ({"field": "model_fields", "exists": True}, "pydantic's own attribute"),
    ],
)
def test_field_conditions_nothing_passes_are_config_errors(
    rule: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        engine_of({"rule": "field", **rule})


def test_a_set_field_may_want_two_values() -> None:
    engine = engine_of({"rule": "field", "field": "tags", "equals": "vip", "in": ["emea"]})
    assert engine.evaluate(Lead(tags={"vip", "emea"})).qualified
    assert not engine.evaluate(Lead(tags={"vip"})).qualified


def test_a_property_is_judged_by_the_engine_and_accepted_by_the_funnel() -> None:
    engine = engine_of({"rule": "field", "field": "full_name", "exists": True})
    assert engine.evaluate(Lead(first_name="Ann")).qualified
    funnel = Funnel(InMemoryRepository(), engine=engine)
    assert funnel.qualify(funnel.add(Lead(first_name="Ann"))).qualified


def test_a_text_range_is_checked_whatever_the_case() -> None:
    engine_of({"rule": "field", "field": "postal_code", "min": "a", "max": "M"})
    with pytest.raises(ConfigError, match="nothing passes"):
        engine_of({"rule": "field", "field": "postal_code", "min": "N", "max": "b"})


def test_text_bounds_compare_whatever_the_case() -> None:
    engine = engine_of({"rule": "field", "field": "postal_code", "min": "ab1", "max": "ab9"})
    for code in ("ab5 3xy", "AB5 3XY"):
        assert engine.evaluate(Lead(postal_code=code)).qualified, code
    assert not engine.evaluate(Lead(postal_code="AC1")).qualified


@pytest.mark.parametrize(
    "build",
    [
        lambda: Niche([]),
        lambda: Niche("IT"),
        lambda: Niche(["IT"], hard="yes"),  # type: ignore[arg-type]
        lambda: CompanySize(min_employees=10, max_employees=5),
        lambda: FieldRule("employees", min=20, max=10),
        lambda: FieldRule("employees", exists="yes"),  # type: ignore[arg-type]
    ],
)
def test_rules_built_in_python_refuse_a_wrong_argument_as_config_files_do(build: Any) -> None:
    with pytest.raises(ConfigError):
        build()


class _NeedsLimit(BaseRule):
    name = "needs_limit"

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.limit = config.pop("limit")  # a KeyError when the config leaves it out

    def evaluate(self, lead: Lead) -> Verdict:
        return Verdict.passed("ok")


def test_a_plugin_failing_on_its_arguments_is_a_config_error() -> None:
    register_rule("needs_limit", _NeedsLimit, replace=True)
    with pytest.raises(ConfigError, match=r"rule 'needs_limit': its factory .* KeyError"):
        engine_of({"rule": "needs_limit"})
    assert engine_of({"rule": "needs_limit", "limit": 3}).evaluate(Lead()).qualified


@pytest.mark.parametrize(("name", "factory"), [("scored", 42), (" padded ", dict)])
def test_register_rule_refuses_what_cannot_be_a_rule(name: str, factory: Any) -> None:
    with pytest.raises(ConfigError):
        register_rule(name, factory)


def test_weights_too_large_to_add_are_refused() -> None:
    niche = {"rule": "niche", "industries": ["IT"], "weight": 1e308}
    with pytest.raises(ConfigError, match="weights add up"):
        engine_of(niche, {**niche, "rule": "niche"})


class _Inner(BaseRule):
    name = "inner"

    def evaluate(self, lead: Lead) -> Verdict:
        raise RuntimeError("the service is down")


class _AnyOf(BaseRule):
    """A rule that asks another engine (segments of its own)."""

    name = "any_of_segments"

    def __init__(self) -> None:
        super().__init__()
        self.inner = QualificationEngine([Profile("segment", [_Inner()])])

    def evaluate(self, lead: Lead) -> Verdict:
        other = Lead(first_name="someone else")
        result = self.inner.evaluate(other)
        return Verdict.passed("fits") if result.qualified else Verdict.failed("fits none")


def test_a_rule_error_from_an_engine_a_rule_asks_names_the_rule_judging() -> None:
    engine = QualificationEngine([Profile("outer", [_AnyOf()])])
    lead = Lead(first_name="Ann")
    with pytest.raises(RuleError) as caught:
        engine.evaluate(lead)
    assert (caught.value.rule, caught.value.profile, caught.value.lead_id) == (
        "any_of_segments",
        "outer",
        lead.id,
    )
    assert isinstance(caught.value.__cause__, RuleError)


class _RemoteScore(BaseRule):
    name = "remote_score"

    def evaluate(self, lead: Lead) -> Verdict:
        return Verdict.failed("remote score 12 is below 50")


def test_the_bulk_qualify_event_keeps_the_applications_own_verdicts() -> None:
    engine = QualificationEngine([Profile("p", [Niche(["IT"]), _RemoteScore()])])
    funnel = Funnel(InMemoryRepository(), engine=engine)
    lead = funnel.add(Lead(first_name="Ann", industry="IT"))
    funnel.touch(lead, "call", "connected")
    funnel.qualify_all()
    (event,) = (e for e in funnel.history(lead) if e.name == "qualify")
    assert event.data["custom_verdicts"] == {
        "p": [
            {
                "rule": "remote_score",
                "outcome": "fail",
                "reason": "remote score 12 is below 50",
                "missing": [],
            }
        ]
    }
