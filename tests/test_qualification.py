"""The qualification engine: profiles, outcomes, config, plugins, and the funnel's use."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import person
from leadfunnel import (
    Channel,
    ConfigError,
    Funnel,
    InvalidTransitionError,
    Lead,
    LeadStatus,
    Outcome,
    Profile,
    QualificationEngine,
    Tier,
)
from leadfunnel.rules import (
    Authority,
    CompanySize,
    Geography,
    Money,
    Niche,
    Verdict,
    register_rule,
)

MSP = {
    "name": "msp-owner",
    "rules": [
        {"rule": "niche", "industries": ["IT Services", "Managed Services"]},
        {"rule": "authority", "titles": ["ceo", "owner", "founder", "president"]},
        {"rule": "money", "min_annual_revenue": 1_000_000},
        {"rule": "geography", "countries": ["US"], "hard": True},
    ],
}
ACCOUNTANT = {
    "name": "accountant",
    "rules": [
        {"rule": "niche", "industries": ["Accounting"]},
        {"rule": "company_size", "min_employees": 5, "max_employees": 50, "hard": True},
    ],
}


def engine(*profiles: dict[str, Any]) -> QualificationEngine:
    return QualificationEngine.from_dict({"profiles": list(profiles or (MSP,))})


def test_a_fit_qualifies_with_the_profile_and_full_score() -> None:
    result = engine(MSP, ACCOUNTANT).evaluate(Lead(**person(1)))
    assert result.qualified
    assert result.decision == "qualified"
    assert result.profile == "msp-owner"
    assert result.score == 1.0
    assert result.tier == Tier.WARM
    assert result.outcomes == {"msp-owner": "fit", "accountant": "fail"}
    assert result.status is None  # evaluate changes nothing and moves nothing


def test_high_interest_fit_is_hot() -> None:
    assert engine().evaluate(Lead(**person(1, interest="high"))).tier == Tier.HOT


def test_verdicts_explain_every_rule_of_every_profile() -> None:
    result = engine(MSP, ACCOUNTANT).evaluate(Lead(**person(1, title="Intern")))
    assert not result.qualified
    assert [v.rule for v in result.verdicts["msp-owner"]] == [
        "niche",
        "authority",
        "money",
        "geography",
    ]
    (failed,) = [v for v in result.failed if v.rule == "authority"]
    assert failed.reason == "title 'Intern' names none of ceo, owner, founder, president"
    assert result.score == pytest.approx(0.75)
    assert result.tier == Tier.COLD


def test_missing_data_is_undecided_and_names_the_fields() -> None:
    result = engine().evaluate(Lead(**person(1, annual_revenue=None, title=None)))
    assert result.decision == "undecided"
    assert result.missing == ("annual_revenue", "title")


def test_every_profile_hard_failing_is_a_hard_fail() -> None:
    result = engine(MSP, ACCOUNTANT).evaluate(
        Lead(**person(1, country="CA", industry="Accounting", employees=500))
    )
    assert result.outcomes == {"msp-owner": "hard_fail", "accountant": "hard_fail"}
    assert result.decision == "hard_fail"


def test_a_soft_failure_in_one_profile_is_not_a_hard_fail() -> None:
    result = engine(MSP, ACCOUNTANT).evaluate(Lead(**person(1, country="CA")))
    assert result.outcomes == {"msp-owner": "hard_fail", "accountant": "fail"}
    assert result.decision == "fail"


def test_weights_shape_the_score() -> None:
    heavy = Profile("p", [Niche(["IT Services"], weight=3), Authority(["ceo"])])
    result = QualificationEngine([heavy]).evaluate(Lead(industry="IT Services", title="Intern"))
    assert result.score == pytest.approx(0.75)


def test_to_dict_is_json_ready_and_records_failures() -> None:
    as_dict = engine().evaluate(Lead(**person(1, title="Intern"))).to_dict()
    assert as_dict["decision"] == "fail"
    assert {"rule": "authority", "outcome": "fail"}.items() <= as_dict["verdicts"]["msp-owner"][
        1
    ].items()


# --- config ---------------------------------------------------------------------------


def test_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        textwrap.dedent(
            """
            [[profiles]]
            name = "msp-owner"
            rules = [
              { rule = "niche", industries = ["IT Services", "Managed Services"] },
              { rule = "geography", countries = ["US"], hard = true },
            ]
            """
        )
    )
    loaded = QualificationEngine.from_toml(path)
    assert [p.name for p in loaded.profiles] == ["msp-owner"]
    assert loaded.profiles[0].rules[1].hard is True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "non-empty list 'profiles'"),
        ({"profiles": [], "x": 1}, "unknown top-level key"),
        ({"profiles": [{"rules": [{"rule": "niche"}]}]}, "profile #1 needs a non-empty 'name'"),
        ({"profiles": [{"name": "p", "rules": []}]}, "profile 'p' needs a non-empty list 'rules'"),
        (
            {"profiles": [{"name": "p", "rules": [{"rule": "nope"}]}]},
            "profile 'p', rule #1: unknown rule 'nope'",
        ),
        (
            {"profiles": [{"name": "p", "rules": [{"rule": "niche", "industries": 3}]}]},
            "profile 'p', rule #1: rule 'niche': industries must be a list of strings",
        ),
        (
            {"profiles": [{"name": "p", "rules": [{"industries": ["x"]}]}]},
            "profile 'p', rule #1: needs 'rule'",
        ),
        (
            {"profiles": [{"name": "p", "rules": [{"rule": "niche", "industries": ["x"]}]}] * 2},
            "two profiles are named 'p'",
        ),
    ],
)
def test_bad_configs_name_the_profile_rule_and_problem(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        QualificationEngine.from_dict(config)


class _Nameless:
    def __init__(self, name: Any) -> None:
        self.name = name

    def evaluate(self, lead: Any) -> Verdict:
        return Verdict.passed("fine")


@pytest.mark.parametrize("name", [None, "", "  ", 3])
def test_a_rule_without_a_usable_name_is_refused(name: Any) -> None:
    """Verdicts and errors name their rule: a rule object named None or "" is a bad
    config, as a BaseRule without a name is."""
    with pytest.raises(ConfigError, match=rf"name={name!r}; give it a non-empty name"):
        Profile("p", [_Nameless(name)])


def test_bad_toml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        QualificationEngine.from_toml(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[profiles]\nname = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        QualificationEngine.from_toml(broken)


# --- plugins --------------------------------------------------------------------------


class AvoidCompetitors:
    """A third-party rule: the contract is only a name and evaluate(lead)."""

    name = "not_a_competitor"
    hard = True

    def __init__(self, companies: list[str]) -> None:
        self.companies = {c.casefold() for c in companies}

    def evaluate(self, lead: Lead) -> Verdict:
        if lead.company is None:
            return Verdict.unknown("no company given", missing=["company"])
        if lead.company.casefold() in self.companies:
            return Verdict.failed(f"{lead.company} is a competitor")
        return Verdict.passed("not a competitor")


def test_a_plain_object_rule_works_in_a_profile() -> None:
    profile = Profile("p", [AvoidCompetitors(["Rival Inc"]), Niche(["IT Services"])])
    result = QualificationEngine([profile]).evaluate(
        Lead(company="rival inc", industry="IT Services")
    )
    assert result.decision == "hard_fail"
    assert result.verdicts["p"][0].rule == "not_a_competitor"


def test_registered_rules_can_be_named_in_a_config() -> None:
    register_rule("test_avoid_competitors", AvoidCompetitors)
    loaded = QualificationEngine.from_dict(
        {
            "profiles": [
                {
                    "name": "p",
                    "rules": [{"rule": "test_avoid_competitors", "companies": ["Rival"]}],
                }
            ]
        }
    )
    assert loaded.evaluate(Lead(company="Rival")).decision == "hard_fail"
    with pytest.raises(ConfigError, match="built-in"):
        register_rule("niche", AvoidCompetitors)


def test_entry_point_plugins_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "lf_plugin_example.py"
    package.write_text(
        textwrap.dedent(
            """
            from leadfunnel.rules import Verdict

            class HasWebsite:
                name = "has_website"

                def __init__(self, field="notes"):
                    self.field = field

                def evaluate(self, lead):
                    if getattr(lead, self.field):
                        return Verdict.passed("has notes")
                    return Verdict.unknown("no notes", missing=[self.field])
            """
        )
    )
    dist = tmp_path / "lf_plugin_example-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lf-plugin-example\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[leadfunnel.rules]\nhas_website = lf_plugin_example:HasWebsite\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = QualificationEngine.from_dict(
        {"profiles": [{"name": "p", "rules": [{"rule": "has_website"}]}]}
    )
    assert loaded.evaluate(Lead(notes="x")).qualified
    assert loaded.evaluate(Lead()).missing == ("notes",)
    with pytest.raises(ConfigError, match="unexpected keyword argument 'colour'"):
        QualificationEngine.from_dict(
            {"profiles": [{"name": "p", "rules": [{"rule": "has_website", "colour": 1}]}]}
        )


# --- properties -------------------------------------------------------------------------

RULE_POOL = [
    Niche(["IT Services", "Accounting"]),
    Niche(["Retail"], hard=True),
    Authority(["ceo", "owner"]),
    Money(min_annual_revenue=500_000),
    Money(min_employees=10, hard=True),
    Geography(["US"], hard=True),
    Geography(["US", "CA"], regions=["TX", "ON"]),
    CompanySize(min_employees=5, max_employees=100),
]

leads = st.builds(
    Lead,
    industry=st.sampled_from([None, "IT Services", "Retail", "Accounting", "Legal"]),
    title=st.sampled_from([None, "CEO", "Owner", "Intern", "CEO's assistant"]),
    annual_revenue=st.one_of(st.none(), st.integers(0, 2_000_000)),
    employees=st.one_of(st.none(), st.integers(0, 300)),
    country=st.sampled_from([None, "US", "CA", "GB"]),
    region=st.sampled_from([None, "TX", "ON", "NY"]),
)
profiles = st.lists(
    st.lists(st.sampled_from(RULE_POOL), min_size=1, max_size=4, unique_by=id),
    min_size=1,
    max_size=4,
).map(lambda groups: [Profile(f"p{i}", rules) for i, rules in enumerate(groups)])

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def summary(result: Any) -> tuple[Any, ...]:
    return (result.qualified, result.decision, result.profile, result.score, result.missing)


@PROPERTY
@given(lead=leads, profile_list=profiles, data=st.data())
def test_the_result_does_not_depend_on_profile_order(
    lead: Lead, profile_list: list[Profile], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(profile_list))
    assert summary(QualificationEngine(profile_list).evaluate(lead)) == summary(
        QualificationEngine(shuffled).evaluate(lead)
    )


@PROPERTY
@given(lead=leads, profile_list=profiles, extra=st.lists(st.sampled_from(RULE_POOL), min_size=1))
def test_adding_a_profile_never_unqualifies(
    lead: Lead, profile_list: list[Profile], extra: list[Any]
) -> None:
    before = QualificationEngine(profile_list).evaluate(lead)
    after = QualificationEngine([*profile_list, Profile("added", extra)]).evaluate(lead)
    if before.qualified:
        assert after.qualified


@PROPERTY
@given(lead=leads, profile_list=profiles)
def test_outcomes_follow_the_verdicts(lead: Lead, profile_list: list[Profile]) -> None:
    result = QualificationEngine(profile_list).evaluate(lead)
    for profile in profile_list:
        verdicts = result.verdicts[profile.name]
        hard_fail = any(
            v.outcome == "fail" and getattr(r, "hard", False)
            for v, r in zip(verdicts, profile.rules, strict=True)
        )
        if hard_fail:
            assert result.outcomes[profile.name] == "hard_fail"
        elif any(v.outcome == "fail" for v in verdicts):
            assert result.outcomes[profile.name] == "fail"
        elif any(v.outcome == "unknown" for v in verdicts):
            assert result.outcomes[profile.name] == "undecided"
        else:
            assert result.outcomes[profile.name] == "fit"
    if all(o == "hard_fail" for o in result.outcomes.values()):
        assert result.decision == "hard_fail"
        assert not result.qualified


@PROPERTY
@given(lead=leads, profile_list=profiles)
def test_missing_names_only_fields_that_are_empty(lead: Lead, profile_list: list[Profile]) -> None:
    result = QualificationEngine(profile_list).evaluate(lead)
    for name in result.missing:
        value = getattr(lead, name)
        assert value is None or value == frozenset()


# --- through the funnel ---------------------------------------------------------------


@pytest.fixture
def qualifying(funnel: Funnel) -> Funnel:
    funnel.engine = engine()
    return funnel


def test_funnel_qualify_tags_the_sweet_spot_and_records_the_profile(qualifying: Funnel) -> None:
    lead = qualifying.capture(Lead(**person(1)))
    result = qualifying.qualify(lead)
    assert result.status == LeadStatus.QUALIFIED
    stored = qualifying.get(lead.id)
    assert isinstance(stored, Lead)
    assert stored.profile == "msp-owner"
    assert "sweet-spot" in stored.tags
    event = qualifying.history(lead)[-1]
    assert (event.name, event.source, event.dest) == ("qualify", "raw", "qualified")
    assert event.data["profile"] == "msp-owner"


def test_funnel_qualify_records_why_a_lead_was_disqualified(qualifying: Funnel) -> None:
    lead = qualifying.capture(Lead(**person(2, country="CA")))
    result = qualifying.qualify(lead)
    assert result.status == LeadStatus.UNQUALIFIED
    event = qualifying.history(lead)[-1]
    assert event.dest == "unqualified"
    assert event.data["decision"] == "hard_fail"
    reasons = [v["reason"] for v in event.data["verdicts"]["msp-owner"] if v["outcome"] == "fail"]
    assert reasons == ["country CA is outside the territory (US)"]


def test_soft_failures_wait_for_a_call(qualifying: Funnel) -> None:
    lead = qualifying.capture(Lead(**person(3, title="Office Manager")))
    assert qualifying.qualify(lead).status == LeadStatus.RAW
    qualifying.touch(lead, Channel.EMAIL, Outcome.NO_ANSWER)
    assert qualifying.qualify(lead).status == LeadStatus.RAW  # e-mail is not a call
    qualifying.touch(lead, Channel.CALL, Outcome.NO_ANSWER)
    assert qualifying.qualify(lead).status == LeadStatus.UNQUALIFIED
    assert [e.name for e in qualifying.history(lead)].count("qualify") == 3


def test_new_information_requalifies_an_unqualified_lead(qualifying: Funnel) -> None:
    lead = qualifying.capture(Lead(**person(4, annual_revenue=10)))
    qualifying.touch(lead, Channel.CALL, Outcome.CONNECTED)
    assert qualifying.qualify(lead).status == LeadStatus.UNQUALIFIED
    stored = qualifying.get(lead.id)
    assert isinstance(stored, Lead)
    qualifying.update(stored.model_copy(update={"annual_revenue": 5_000_000}))
    assert qualifying.qualify(lead).status == LeadStatus.QUALIFIED


def test_qualify_is_refused_outside_raw_and_unqualified(qualifying: Funnel) -> None:
    lead = qualifying.add(Lead(**person(5, status="suspect")))
    with pytest.raises(InvalidTransitionError, match="suspect"):
        qualifying.qualify(lead)
    assert qualifying.history(lead)[-1].name == "add"


def test_qualify_all_counts_where_leads_went(qualifying: Funnel) -> None:
    qualifying.capture(Lead(**person(6)))
    qualifying.capture(Lead(**person(7, country="CA")))
    qualifying.capture(Lead(**person(8, title=None)))
    qualifying.capture(Lead(**person(9, title="Intern")))
    counts = qualifying.qualify_all()
    assert counts == {"qualified": 1, "unqualified": 1, "waiting": 2, "skipped": 0, "failed": 0}
    assert len(qualifying.leads(status="raw")) == 2


def test_force_qualifies_by_hand_even_a_lead_the_engine_would_refuse(qualifying: Funnel) -> None:
    lead = qualifying.capture(Lead(**person(10, country="CA")))
    result = qualifying.qualify(lead, force=True, reason="referred by the owner")
    assert result.status == LeadStatus.QUALIFIED
    event = qualifying.history(lead)[-1]
    assert (event.name, event.dest, event.reason) == (
        "qualify",
        "qualified",
        "referred by the owner",
    )
    assert event.data["forced"] is True


def test_qualify_without_an_engine_is_a_config_error_and_records_nothing(funnel: Funnel) -> None:
    lead = funnel.capture(Lead(**person(11)))
    before = funnel.history(lead)
    with pytest.raises(ConfigError, match="no qualification engine"):
        funnel.qualify(lead)
    assert funnel.history(lead) == before
    stored = funnel.get(lead.id)
    assert isinstance(stored, Lead)
    assert stored.status == LeadStatus.RAW
