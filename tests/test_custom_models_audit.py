"""An application's models whose values the stores kept wrong, on every backend in
``conftest``: a ``None`` where the default is not ``None`` (nested too), computed fields
(``update()``, documents), exports of a model that dumps by alias, and the models
refused when registered (fields a JSON dump leaves out or masks, a lead field ``type``).
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any, Literal

import pydantic
import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr, computed_field
from pydantic.alias_generators import to_camel
from typing_extensions import TypedDict

from conftest import person
from leadfunnel import ConfigError, Contact, Funnel, InMemoryRepository, Lead, Repository
from leadfunnel._sql import _rows as sql
from leadfunnel.testing import ManualClock

# --- a None where the default is something else -----------------------------------------


class Address(BaseModel):
    street: str
    zip: str | None = None  # None is its default: left out of documents
    country: str | None = "US"  # None means "no country": must be kept


@dataclasses.dataclass
class Span:
    low: int | None = 0
    high: int | None = None


class Kinds(TypedDict):
    label: str | None


class NoneLead(Lead):
    addr: Address | None = None
    addrs: list[Address] = []
    by_name: dict[str, Address] = {}
    channel: Literal["web", "phone", None] = "web"
    anything: Any = "x"
    span: Span | None = None
    kinds: Kinds | None = None


def test_a_none_set_where_the_default_is_another_value_reads_back_none(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=NoneLead, clock=clock)
    lead = funnel.add(
        NoneLead(
            **person(1),
            addr=Address(street="1 Rue", country=None),
            addrs=[Address(street="2 Rue", country=None), Address(street="3 Rue")],
            by_name={"home": Address(street="4 Rue", country=None)},
            channel=None,
            anything=None,
            span=Span(low=None),
            kinds={"label": None},
        )
    )
    read = funnel.get_lead(lead.id)
    assert read == lead
    assert read.addr is not None
    assert read.addr.country is None
    assert [a.country for a in read.addrs] == [None, "US"]
    assert read.by_name["home"].country is None
    assert (read.channel, read.anything) == (None, None)
    assert read.span == Span(low=None)
    assert read.kinds == {"label": None}
    # A filter finds the record by the value it holds, and not by the default.
    assert funnel.count("lead", where={"addr": {"street": "1 Rue", "country": None}}) == 1
    assert funnel.count("lead", where={"addr": {"street": "1 Rue"}}) == 0
    assert funnel.count("lead", where={"channel": None}) == 1
    assert funnel.count("lead", where={"channel": "web"}) == 0
    assert funnel.count("lead", where={"anything": None}) == 1
    edited = funnel.update(read.model_copy(update={"notes": "called"}))
    assert funnel.get_lead(lead.id) == edited
    assert edited.addr is not None
    assert edited.addr.country is None


def test_documents_leave_out_only_the_none_of_fields_whose_default_is_none() -> None:
    lead = NoneLead(
        addr=Address(street="1 Rue", country=None), addrs=[Address(street="2 Rue")], channel=None
    )
    document = json.loads(sql.document_of(lead))
    assert document["addr"] == {"street": "1 Rue", "country": None}  # no "zip": None
    assert document["addrs"] == [{"street": "2 Rue", "country": "US"}]
    assert document["channel"] is None
    assert "first_name" not in document  # default None
    assert "span" not in document
    # What where= compares a nested model with: the same JSON.
    assert sql.document_value(NoneLead, "addr", lead.addr) == document["addr"]


def test_leadfunnels_own_models_keep_their_compact_documents() -> None:
    from leadfunnel import Event, Opportunity, Touch

    for model in (Lead, Contact, Opportunity, Touch, Event):
        assert sql._skip_none(model), model  # exclude_none: pydantic's fast path
    lead = Lead(**person(1))
    assert sql.document_of(lead) == lead.model_dump_json(by_alias=False, exclude_none=True)


def test_a_model_of_none_defaults_only_is_on_the_fast_path() -> None:
    class Street(BaseModel):
        name: str
        number: int | None = None

    class Plain(Lead):
        street: Street | None = None
        streets: list[Street] = []
        seats: int = 1
        nickname: str | None = None

    class Nested(BaseModel):
        inner: Address | None = None

    class Deep(Lead):
        nested: Nested | None = None

    assert sql._skip_none(Plain)
    assert not sql._skip_none(Deep)  # Address.country, two models down
    assert not sql._skip_none(NoneLead)


# --- computed fields --------------------------------------------------------------------


class Box(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def twice(self) -> int:
        return self.n * 2


class PriceLead(Lead):
    budget: Decimal | None = None
    box: Box | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def budget_k(self) -> Decimal | None:
        return None if self.budget is None else self.budget / 1000


def test_update_of_a_model_with_computed_fields(repository: Repository, clock: ManualClock) -> None:
    funnel = Funnel(repository, lead_model=PriceLead, clock=clock)
    lead = funnel.add(PriceLead(**person(1), budget=Decimal("5000"), box=Box(n=2)))
    edited = funnel.update(funnel.get_lead(lead.id).model_copy(update={"budget": Decimal(7000)}))
    assert edited.budget_k == Decimal(7)
    read = funnel.get_lead(lead.id)
    assert read == edited
    assert read.budget_k == Decimal(7)
    assert read.box == Box(n=2)
    assert funnel.history(lead)[-1].data["fields"] == ["budget"]
    assert funnel.count("lead", where={"box": {"n": 2}}) == 1


def test_documents_leave_computed_fields_out() -> None:
    document = json.loads(sql.document_of(PriceLead(budget=Decimal(5000), box=Box(n=2))))
    assert "budget_k" not in document
    assert document["box"] == {"n": 2}
    # A document written before, holding the computed field, still reads, and the
    # field is not kept as a key of another model's when the record is written again.
    assert "budget_k" in sql.declared_keys(PriceLead)


def test_a_nested_value_the_model_refuses_is_an_error_never_dropped() -> None:
    lead = PriceLead(box=Box(n=2))
    document = json.loads(lead.model_dump_json())
    document["box"] = {"n": 2, "unknown": 1}  # Box forbids extra keys
    with pytest.raises(Exception, match=r"box\.unknown"):
        sql.build_record(PriceLead, document)


# --- exports of a model that dumps by alias ---------------------------------------------


class TaggedLead(Lead):
    model_config = ConfigDict(serialize_by_alias=True)
    vertical: str | None = Field(default=None, alias="Vertical Market")
    labels: set[str] = Field(default_factory=set, alias="Labels")


def test_export_names_fields_not_aliases(repository: Repository, clock: ManualClock) -> None:
    funnel = Funnel(repository, lead_model=TaggedLead, clock=clock)
    lead = funnel.add(
        TaggedLead(**person(1, annual_revenue=10), vertical="health", labels={"b", "c", "a"})
    )
    exported = funnel.export_person(lead)["records"][0]
    assert exported["vertical"] == "health"
    assert "Vertical Market" not in exported
    assert exported["labels"] == ["a", "b", "c"]  # a set, sorted
    assert exported["annual_revenue"] == "10"


class CamelLead(Lead):
    model_config = ConfigDict(
        alias_generator=to_camel, serialize_by_alias=True, validate_by_name=True
    )
    deal_size: Decimal | None = None


def test_export_names_base_fields_too_under_an_alias_generator(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=CamelLead, clock=clock)
    lead = funnel.add(CamelLead(**person(1, annual_revenue=10), deal_size=Decimal("10.5")))
    exported = funnel.export_person(lead)["records"][0]
    assert exported["deal_size"] == "10.5"
    assert exported["annual_revenue"] == "10"
    assert exported["first_name"] == lead.first_name
    assert not {"dealSize", "annualRevenue", "firstName"} & exported.keys()


# --- models refused when registered -----------------------------------------------------


class SecretLead(Lead):
    api_token: SecretStr | None = None


class ExcludedLead(Lead):
    internal: str | None = Field(default=None, exclude=True)


class Credentials(BaseModel):
    user: str
    password: pydantic.SecretBytes


class NestedSecretLead(Lead):
    login: Credentials | None = None


class GenericSecretLead(Lead):
    pin: pydantic.Secret[int] | None = None


class TypedLead(Lead):
    type: str | None = None


class AliasedTypeLead(Lead):
    category: str | None = Field(default=None, alias="type")


@pytest.mark.parametrize(
    ("model", "named"),
    [
        (SecretLead, r"SecretLead\.api_token is a secret"),
        (ExcludedLead, r"ExcludedLead\.internal is Field\(exclude"),
        (NestedSecretLead, r"Credentials\.password is a secret"),
        (GenericSecretLead, r"GenericSecretLead\.pin is a secret"),
    ],
)
def test_a_field_a_json_dump_masks_or_leaves_out_is_refused(model: type[Lead], named: str) -> None:
    repository = InMemoryRepository()
    with pytest.raises(ConfigError, match=named) as refused:
        Funnel(repository, lead_model=model)
    assert "Field(exclude=" in str(refused.value)  # what to do instead
    assert "plain str" in str(refused.value)
    assert repository.models["lead"] is Lead  # nothing registered
    with pytest.raises(ConfigError, match=named):
        repository.use_models(lead=model)


def test_contact_and_deal_models_are_checked_too() -> None:
    class SecretContact(Contact):
        token: SecretStr | None = None

    with pytest.raises(ConfigError, match=r"SecretContact\.token"):
        Funnel(InMemoryRepository(), contact_model=SecretContact)


@pytest.mark.parametrize("model", [TypedLead, AliasedTypeLead])
def test_a_lead_field_named_type_is_refused(model: type[Lead]) -> None:
    with pytest.raises(ConfigError, match=r"'type'.*ContactType.*another name"):
        Funnel(InMemoryRepository(), lead_model=model)


def test_fields_named_like_others_are_still_taken(clock: ManualClock) -> None:
    class Fine(Lead):
        lead_type: str | None = None
        note_hidden: str | None = Field(default=None, repr=False)

    funnel = Funnel(InMemoryRepository(), lead_model=Fine, clock=clock)
    report = funnel.import_leads([{"email": "b@x.example.com", "lead_type": "inbound"}])
    assert len(report.added) == 1
