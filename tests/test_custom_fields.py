"""The application's own fields (DESIGN.md section 15), on every backend in ``conftest``."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from conftest import person
from leadfunnel import (
    ConfigError,
    Contact,
    Funnel,
    InvalidArgumentError,
    Lead,
    Opportunity,
    QualificationEngine,
    Repository,
    StorageError,
)
from leadfunnel.rules import FieldRule
from leadfunnel.testing import ManualClock


class MyLead(Lead):
    endpoints: int | None = None
    provider: str | None = None
    renewal: date | None = None
    managed: bool | None = None
    only_on_leads: str | None = None


class MyContact(Contact):
    endpoints: int | None = None
    provider: str | None = None
    renewal: date | None = None
    managed: bool | None = None


class MyDeal(Opportunity):
    po_number: str | None = None


def custom(repository: Repository, clock: ManualClock, **options: Any) -> Funnel:
    return Funnel(
        repository,
        lead_model=MyLead,
        contact_model=MyContact,
        opportunity_model=MyDeal,
        clock=clock,
        **options,
    )


def test_custom_fields_round_trip_and_update(repository: Repository, clock: ManualClock) -> None:
    funnel = custom(repository, clock)
    lead = funnel.add(MyLead(**person(1), endpoints=40, provider="Acme", renewal=date(2027, 1, 31)))
    stored = funnel.get_lead(lead.id)
    assert isinstance(stored, MyLead)
    assert (stored.endpoints, stored.provider, stored.renewal) == (40, "Acme", date(2027, 1, 31))
    edited = funnel.update(stored.model_copy(update={"endpoints": 45, "managed": True}))
    assert funnel.get(lead.id) == edited
    assert funnel.history(lead)[-1].data["fields"] == ["endpoints", "managed"]
    plain = funnel.capture(Lead(**person(2)))  # a plain Lead becomes the registered class
    assert type(funnel.get(plain.id)) is MyLead


def test_where_filters_on_base_and_custom_fields_in_storage(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = custom(repository, clock)
    big = funnel.add(MyLead(**person(1), endpoints=40, provider="Acme", managed=True))
    funnel.add(MyLead(**person(2), endpoints=7, provider="Other", managed=False))
    none = funnel.add(MyLead(**person(3)))
    assert [x.id for x in funnel.leads(where={"endpoints": 40})] == [big.id]
    assert [x.id for x in funnel.leads(where={"endpoints": "40"})] == [big.id]  # validated
    assert [x.id for x in funnel.leads(where={"provider": "Acme", "managed": True})] == [big.id]
    assert [x.id for x in funnel.leads(where={"endpoints": None})] == [none.id]
    assert [x.id for x in funnel.leads(where={"source": "webinar", "endpoints": 40})] == [big.id]
    assert funnel.count("lead", where={"managed": False}) == 1
    with pytest.raises(InvalidArgumentError, match="has no field 'colour'"):
        funnel.leads(where={"colour": "red"})
    with pytest.raises(InvalidArgumentError, match="endpoints"):
        funnel.leads(where={"endpoints": "many"})


def test_conversion_copies_the_fields_both_models_declare(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = custom(repository, clock)
    lead = funnel.capture(MyLead(**person(1), endpoints=40, only_on_leads="x"))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    contact = funnel.get_contact(deal.contact_id)
    assert isinstance(contact, MyContact)
    assert contact.endpoints == 40
    assert "only_on_leads" not in type(contact).model_fields
    assert isinstance(funnel.get(deal.id), MyDeal)
    funnel.update(funnel.get_opportunity(deal.id).model_copy(update={"po_number": "PO-7"}))
    assert funnel.opportunities(where={"po_number": "PO-7"})[0].id == deal.id


def test_merge_fills_empty_custom_fields_and_unmerge_restores_them(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = custom(repository, clock)
    keep = funnel.add(MyLead(**person(1), provider="Acme"))
    other = funnel.add(MyLead(**person(2), endpoints=12, provider="Other"))
    merged = funnel.merge(keep, other)
    assert isinstance(merged, MyLead)
    assert (merged.endpoints, merged.provider) == (12, "Acme")
    restored = funnel.unmerge(keep)
    assert isinstance(restored, MyLead)
    assert restored.endpoints is None
    assert funnel.get_lead(other.id).endpoints == 12  # type: ignore[attr-defined]


def test_the_field_rule_judges_any_field(repository: Repository, clock: ManualClock) -> None:
    engine = QualificationEngine.from_dict(
        {
            "profiles": [
                {
                    "name": "fleet",
                    "rules": [
                        {"rule": "field", "field": "endpoints", "min": 20, "max": 500},
                        {"rule": "field", "field": "provider", "in": ["acme", "Globex"]},
                        {"rule": "field", "field": "managed", "equals": True, "hard": True},
                    ],
                }
            ]
        }
    )
    funnel = custom(repository, clock, engine=engine)
    numbers = iter(range(1, 100))

    def judge(**fields: Any) -> Any:
        return funnel.qualify(funnel.capture(MyLead(**person(next(numbers)), **fields)))

    assert judge(endpoints=40, provider="ACME", managed=True).qualified
    small = judge(endpoints=5, provider="Acme", managed=True)
    assert not small.qualified
    assert "endpoints 5 is below 20" in str(small.verdicts)
    assert judge(endpoints=40, provider="Acme", managed=False).decision == "hard_fail"
    unknown = judge(provider="Acme", managed=True)
    assert unknown.decision == "undecided"
    assert "endpoints" in unknown.missing


def test_field_rule_conditions_and_config_errors() -> None:
    lead = MyLead(endpoints=40, provider="Acme", renewal=date(2027, 1, 31))
    assert FieldRule("renewal", max=date(2027, 6, 30)).evaluate(lead).outcome == "pass"
    assert FieldRule("provider", exists=True).evaluate(lead).outcome == "pass"
    assert FieldRule("managed", exists=True).evaluate(lead).outcome == "fail"
    assert FieldRule("managed", exists=False).evaluate(lead).outcome == "pass"
    with pytest.raises(ConfigError, match="min=3 is not a value of the field"):
        FieldRule("provider", min=3).evaluate(lead)  # a number is no provider's name
    assert FieldRule("annual_revenue", min=Decimal(1)).evaluate(Lead()).outcome == "unknown"
    with pytest.raises(Exception, match="at least one of min, max"):
        QualificationEngine.from_dict(
            {"profiles": [{"name": "p", "rules": [{"rule": "field", "field": "endpoints"}]}]}
        )


def test_a_stored_value_that_no_longer_validates_is_reported_not_dropped(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = custom(repository, clock)
    lead = funnel.add(MyLead(**person(1), provider="Acme", endpoints=3))

    class Stricter(Lead):  # the application changed the field's type
        provider: int | None = None
        endpoints: int | None = None

    class Fewer(Lead):  # ... or removed a field: no migration needed
        endpoints: int | None = None

    if type(repository).__name__ == "InMemoryRepository":
        pytest.skip("memory keeps the objects it was given")
    repository.use_models(lead=Fewer, replace=True)
    kept = {k: v for k, v in lead.model_dump().items() if k in Fewer.model_fields}
    assert repository.get(lead.id) == Fewer(**kept)
    repository.use_models(lead=Stricter, replace=True)
    with pytest.raises(
        StorageError, match=rf"lead {lead.id} has a value in provider that Stricter does not"
    ) as err:
        repository.get(lead.id)
    assert "Acme" not in str(err.value)  # the value is not quoted (DESIGN 13)


def test_an_import_fills_custom_fields_from_keys_named_like_them(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = custom(repository, clock)
    report = funnel.import_leads(
        [
            {**person(1), "endpoints": "40", "provider": "Acme"},
            {**person(2), "endpoints": "many"},
            Lead(**person(3)),
        ]
    )
    assert len(report.added) == 2
    assert [issue.row for issue in report.rejected] == [2]
    assert "endpoints" in report.rejected[0].reason
    first = funnel.get_lead(report.added[0])
    assert isinstance(first, MyLead)
    assert (first.endpoints, first.provider) == (40, "Acme")
    assert type(funnel.get(report.added[1])) is MyLead


class SkillLead(Lead):
    skills: frozenset[str] = frozenset()
    aliases: list[str] = []
    langs: set[str] = set()


def test_a_merge_fills_an_empty_set_or_list_field_of_the_applications(
    repository: Repository, clock: ManualClock
) -> None:
    """DESIGN 15: a merge fills empty custom fields as it fills base ones: a set is
    united (as tags are), an empty list takes the other's; they were left empty."""
    funnel = Funnel(repository, lead_model=SkillLead, clock=clock)
    keep = funnel.add(SkillLead(first_name="Pat", email="pat@x.example.com", skills={"go"}))
    other = funnel.add(
        SkillLead(first_name="Pat", email="pat@y.example.com", skills={"python"}, aliases=["P."])
    )
    funnel.update(funnel.get_lead(other.id).model_copy(update={"langs": {"fr"}}))
    merged = funnel.merge(keep, other)
    assert (merged.skills, merged.aliases) == (frozenset({"go", "python"}), ["P."])
    assert merged.langs == {"fr"}  # a plain set too
    assert funnel.get(keep.id) == merged
    restored = funnel.unmerge(keep)
    assert (restored.skills, restored.aliases) == (frozenset({"go"}), [])
