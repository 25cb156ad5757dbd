"""The qualification rules engine, after an integrator's audit: arguments refused when a
config is loaded (not on the first lead), a rule of one's own asked once per lead, and
whatever a rule answers checked."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import person
from leadfunnel import (
    Funnel,
    Lead,
    LeadStatus,
    Profile,
    QualificationEngine,
    RuleError,
)
from leadfunnel.rules import (
    BaseRule,
    Niche,
    Verdict,
)


def _engine(*given: dict[str, Any]) -> QualificationEngine:
    return QualificationEngine.from_dict({"profiles": [{"name": "p", "rules": list(given)}]})


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
    assert counts == {"qualified": 1, "unqualified": 0, "waiting": 2, "skipped": 0}
    assert sorted(counted.asked) == sorted(lead.id for lead in made)
    undecided = [e for e in funnel.events() if e.name == "qualify" and e.subject_id == made[1].id]
    assert undecided[0].data["missing"] == ["industry"]


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
