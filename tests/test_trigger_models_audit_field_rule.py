"""The built-in ``field`` rule judges a field of lists, mappings or nested models as any
other: ``exists`` says whether it holds anything, ``equals`` and ``in`` compare by
equality, and ``min``/``max`` on values without an order are a ConfigError when the
rule meets the lead model, never a RuleError on a lead."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from leadfunnel import ConfigError, Funnel, Lead, QualificationEngine
from leadfunnel.rules import FieldRule


class Address(BaseModel):
    street: str


class RichLead(Lead):
    systems: list[str] = Field(default_factory=list)
    meta: dict[str, int] = Field(default_factory=dict)
    address: Address | None = None
    release: tuple[int, ...] | None = None


def _verdict(field: str, lead: RichLead, **conditions: Any) -> tuple[str, str]:
    rule = FieldRule(field, **conditions)
    rule.conditions_for(RichLead)
    verdict = rule.evaluate(lead)
    return verdict.outcome, verdict.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [("systems", ["crm"]), ("meta", {"a": 1}), ("address", Address(street="1 Main"))],
)
def test_exists_judges_a_list_a_mapping_or_a_nested_model(field: str, value: Any) -> None:
    engine = QualificationEngine.from_dict(
        {"profiles": [{"name": "p", "rules": [{"rule": "field", "field": field, "exists": True}]}]}
    )
    funnel = Funnel(lead_model=RichLead, engine=engine)
    holding = funnel.add(RichLead(email=f"{field}@a.example.com", **{field: value}))
    empty = funnel.add(RichLead(email=f"{field}-none@a.example.com"))
    assert funnel.qualify(holding).qualified
    result = funnel.qualify(empty)
    assert not result.qualified
    assert result.verdicts["p"][0].outcome == "fail"
    assert _verdict(field, RichLead(), exists=False)[0] == "pass"
    assert _verdict(field, RichLead(), equals=value)[0] == "unknown"  # an empty field


def test_equals_and_in_compare_lists_mappings_and_models_by_equality() -> None:
    lead = RichLead(
        systems=["crm", "ERP"], meta={"seats": 5}, address=Address(street="1 Main"), release=(1, 2)
    )
    assert _verdict("systems", lead, equals=["CRM", "erp"])[0] == "pass"  # case-insensitive
    assert _verdict("systems", lead, equals=["crm"]) == ("fail", "systems is crm, ERP, not crm")
    assert _verdict("systems", lead, one_of=[["x"], ["crm", "erp"]])[0] == "pass"
    assert _verdict("meta", lead, equals={"seats": 5})[0] == "pass"
    assert _verdict("meta", lead, equals={"seats": "5"})[0] == "pass"  # read as the field
    assert _verdict("meta", lead, one_of=[{"seats": 6}])[0] == "fail"
    assert _verdict("address", lead, equals={"street": "1 Main"})[0] == "pass"
    outcome, reason = _verdict("address", lead, one_of=[{"street": "2 Main"}])
    assert outcome == "fail"
    assert "Address(street='2 Main')" in reason
    assert _verdict("release", lead, min=[1, 1], max=(1, 3))[0] == "pass"  # tuples order


@pytest.mark.parametrize(
    ("field", "bound"), [("meta", {"seats": 1}), ("address", {"street": "1 Main"})]
)
def test_min_and_max_on_values_without_an_order_are_a_config_error(field: str, bound: Any) -> None:
    with pytest.raises(ConfigError, match="have no order"):
        FieldRule(field, min=bound).conditions_for(RichLead)
    engine = QualificationEngine.from_dict(
        {"profiles": [{"name": "p", "rules": [{"rule": "field", "field": field, "max": bound}]}]}
    )
    with pytest.raises(ConfigError, match=f"profile 'p'.*{field}.*have no order"):
        Funnel(lead_model=RichLead, engine=engine)


def test_equals_outside_in_is_refused_for_unhashable_values_too() -> None:
    with pytest.raises(ConfigError, match="nothing passes"):
        FieldRule("meta", equals={"a": 1}, one_of=[{"a": 2}]).conditions_for(RichLead)
