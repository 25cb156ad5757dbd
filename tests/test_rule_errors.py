"""Third-party rules: the BaseRule base class, and a rule that fails reported as a
RuleError naming the rule, profile and lead, with nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from leadfunnel import (
    BaseRule,
    ConfigError,
    Funnel,
    Lead,
    LeadFunnelError,
    LeadStatus,
    Profile,
    QualificationEngine,
    RuleError,
    Verdict,
)
from leadfunnel._cli import main
from leadfunnel.rules import Niche


class Endpoints(BaseRule):
    name = "endpoints"

    def __init__(self, minimum: int, *, hard: bool = False) -> None:
        super().__init__(hard=hard)
        self.minimum = minimum

    def evaluate(self, lead: Lead) -> Verdict:
        if lead.employees is None:
            return Verdict.unknown("no head count", missing=["employees"])
        if lead.employees >= self.minimum:
            return Verdict.passed("a fleet worth managing")
        return Verdict.failed("too few endpoints")


class Broken(BaseRule):
    name = "broken"

    def evaluate(self, lead: Lead) -> Verdict:
        raise KeyError("crm_score")


class Sloppy(BaseRule):
    name = "sloppy"

    def evaluate(self, lead: Lead) -> Verdict:
        return True  # type: ignore[return-value]  # the mistake under test


def test_a_base_rule_subclass_qualifies_like_a_built_in_one() -> None:
    engine = QualificationEngine([Profile("fleet", [Endpoints(20, hard=True)])])
    assert engine.evaluate(Lead(employees=40)).qualified
    result = engine.evaluate(Lead(employees=4))
    assert result.decision == "hard_fail"
    assert engine.evaluate(Lead()).missing == ("employees",)
    assert repr(Endpoints(3)) == "Endpoints(name='endpoints', hard=False, weight=1.0)"


def test_a_base_rule_checks_its_name_and_arguments() -> None:
    class Nameless(BaseRule):
        def evaluate(self, lead: Lead) -> Verdict:
            return Verdict.passed("ok")

    # ConfigErrors, as a built-in rule's same mistakes are (Niche(weight=-1), say).
    with pytest.raises(ConfigError, match="Nameless needs a name"):
        Nameless()
    with pytest.raises(ConfigError, match="rule 'broken': weight must be a positive number"):
        Broken(weight=0)
    with pytest.raises(ConfigError, match="weight must be a positive number"):
        Broken(weight=-1)
    with pytest.raises(ConfigError, match="hard must be true or false"):
        Broken(hard="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule", "problem"),
    [(Broken(), "KeyError: 'crm_score'"), (Sloppy(), "returned True, not a Verdict")],
)
def test_a_rule_that_fails_is_a_rule_error_and_nothing_changes(
    rule: BaseRule, problem: str
) -> None:
    engine = QualificationEngine([Profile("msp", [Niche(["IT Services"]), rule])])
    funnel = Funnel(engine=engine)
    lead = funnel.capture(Lead(first_name="Pat", industry="IT Services"))
    assert isinstance(lead, Lead)
    with pytest.raises(RuleError) as err:
        funnel.qualify(lead)
    assert (err.value.rule, err.value.profile, err.value.lead_id) == (rule.name, "msp", lead.id)
    assert problem in str(err.value)
    assert isinstance(err.value, LeadFunnelError)
    assert [e.name for e in funnel.history(lead)] == ["capture"]
    with pytest.raises(RuleError):
        engine.profiles[0].explain(lead)


class Misspelt(BaseRule):
    name = "misspelt"

    def evaluate(self, lead: Lead) -> Verdict:
        return Verdict.unknown("no address", missing=["emial"])


def test_a_verdict_naming_a_field_the_lead_lacks_is_a_rule_error() -> None:
    engine = QualificationEngine([Profile("p", [Misspelt()])])
    with pytest.raises(RuleError, match="'emial' is missing, but Lead has no such field"):
        engine.evaluate(Lead(first_name="Pat"))


def test_a_field_rule_naming_no_field_of_the_lead_model_is_refused_by_the_funnel(
    tmp_path: Path,
) -> None:
    """Found when the funnel is made, naming the profile and the rule, not on a lead."""
    config = {"profiles": [{"name": "big", "rules": [
        {"rule": "niche", "industries": ["IT Services"]},
        {"rule": "field", "field": "endpoints", "min": 20},
    ]}]}  # fmt: skip
    engine = QualificationEngine.from_dict(config)
    with pytest.raises(ConfigError, match=r"profile 'big', rule #2: .*'endpoints', which Lead"):
        Funnel(engine=engine)

    class FleetLead(Lead):
        endpoints: int | None = None

    funnel = Funnel(engine=engine, lead_model=FleetLead)  # the application's field
    lead = funnel.add(FleetLead(industry="IT Services", endpoints=25, status="raw"))
    assert funnel.qualify(lead).qualified
    # The command line says so in one line and exits 2, before touching a lead.
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[profiles]]\nname = "big"\nrules = [{ rule = "field", field = "endpoint", min = 20 }]\n'
    )
    done = CliRunner().invoke(
        main, ["qualify", "--rules", str(rules), "--db", f"sqlite:///{tmp_path / 'f.db'}"]
    )
    assert done.exit_code == 2
    assert "rule 'field' names 'endpoint', which Lead has no field" in done.output


@pytest.mark.parametrize("weight", [-3, 0, float("nan"), float("inf"), "2", True])
def test_a_rule_weight_must_be_a_positive_number(weight: object) -> None:
    class Weighted:
        name = "weighted"

        def evaluate(self, lead: Lead) -> Verdict:
            return Verdict.passed("ok")

    rule = Weighted()
    rule.weight = weight  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="rule 'weighted' has weight"):
        Profile("p", [rule])


def test_hard_and_weight_set_on_the_class_are_the_rules_own() -> None:
    """A plugin declares hard and weight as it declares its name: on the class. The
    instance's arguments still override them."""

    class Territory(BaseRule):
        name = "territory"
        hard = True
        weight = 3.0

        def evaluate(self, lead: Lead) -> Verdict:
            return Verdict.failed("outside the territory")

    rule = Territory()
    assert (rule.hard, rule.weight) == (True, 3.0)
    assert (Territory(hard=False, weight=2).hard, Territory(weight=2).weight) == (False, 2.0)
    funnel = Funnel(engine=QualificationEngine(profiles=[Profile("p", rules=[rule])]))
    lead = funnel.capture(Lead(first_name="Pat", email="pat@x.example.com"))
    funnel.qualify(lead)
    assert funnel.get_lead(lead.id).status == LeadStatus.UNQUALIFIED

    class Shaky(BaseRule):
        name = "shaky"
        hard = "yes"  # type: ignore[assignment]

        def evaluate(self, lead: Lead) -> Verdict:
            return Verdict.passed("fine")

    with pytest.raises(ConfigError, match="hard must be true or false"):
        Shaky()
