"""Defects found by an audit of custom fields, subscribers and transactions (2026-11-30)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import pydantic
import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from leadfunnel import ConfigError, Contact, Funnel, Lead, LeadStatus, Personal, Repository


class Counted(Lead):
    endpoints: Annotated[int, Field(ge=0)] = 0


TEMPLATE = Lead(first_name="Pat", company="Acme", source="webinar")


@pytest.mark.parametrize(
    "bad",
    [
        {"email": "not an e-mail"},
        {"employees": -3},
        {"phone": "call me maybe"},
        {"first_name": "Pat\x1b[2J"},
        {"status": "no-such-status"},
    ],
    ids=["email", "employees", "phone", "control", "status"],
)
def test_a_copied_record_is_validated_before_it_is_stored(
    funnel: Funnel, bad: dict[str, Any]
) -> None:
    """``model_copy(update=...)`` does not validate: ``add``, ``capture`` and
    ``import_leads`` stored what ``Lead`` refuses (DESIGN 2: nothing is stored), and
    on SQL the row then failed every read of the table. ``update`` refused the same
    edit."""
    fields = {"email": "pat@acme.example.com", **bad}
    with pytest.raises(pydantic.ValidationError):
        funnel.add(TEMPLATE.model_copy(update=fields))
    with pytest.raises(pydantic.ValidationError):
        funnel.capture(TEMPLATE.model_copy(update=fields))
    report = funnel.import_leads([TEMPLATE.model_copy(update=fields)])
    assert len(report.rejected) == 1
    assert report.added == []
    assert funnel.leads() == []


def test_a_constructed_record_of_an_application_class_is_validated(funnel: Funnel) -> None:
    """``model_construct`` skips the class's own constraints too."""
    funnel.repository.use_models(lead=Counted)
    with pytest.raises(pydantic.ValidationError, match="endpoints"):
        funnel.add(Counted.model_construct(email="a@acme.example.com", endpoints=-1))
    good = funnel.add(Counted.model_construct(email="b@acme.example.com", endpoints=2))
    assert funnel.leads() == [good]
    stored = funnel.get_lead(good.id)
    assert isinstance(stored, Counted)
    assert stored.endpoints == 2


def test_a_valid_copy_is_stored_as_given(funnel: Funnel) -> None:
    """Validating again changes nothing of a valid record: its id is the one given."""
    lead = TEMPLATE.model_copy(update={"email": "Pat@ACME.example.com", "employees": 12})
    stored = funnel.add(lead)
    assert stored.id == lead.id
    assert (stored.email, stored.employees) == ("Pat@acme.example.com", 12)
    assert funnel.get_lead(lead.id) == stored


class Address(BaseModel):
    street: Annotated[str | None, Personal] = None
    country: str | None = None


def test_personal_inside_a_nested_model_is_refused_with_the_class() -> None:
    """``erase`` blanks a record's own fields: a street marked Personal inside an
    ``Address`` field survived every erasure, on every store. The class is refused
    where it is declared, as a Personal field without ``None`` is."""
    with pytest.raises(TypeError, match=r"MyLead\.home holds Address\.street"):

        class MyLead(Lead):
            home: Address | None = None

    class Outer(BaseModel):
        address: list[Address] = []

    with pytest.raises(TypeError, match=r"Deep\.homes holds Address\.street"):

        class Deep(Lead):
            homes: dict[str, Outer] = {}

    class Whole(Lead):  # the whole field marked: erased whole, accepted
        home: Annotated[Address | None, Personal] = None

    assert Whole(home=Address(street="1 Lane")).home is not None


class AccountContact(Contact):
    account_no: str


def test_a_contact_field_the_lead_lacks_and_requires_is_named_at_conversion(
    repository: Repository,
) -> None:
    """The error told to "make MyContact's accept what Lead's hold", where the lead has
    no such field: it names the required field and says to give it a default."""
    funnel = Funnel(repository, contact_model=AccountContact)
    lead = funnel.capture(Lead(email="pat@acme.example.com"))
    with pytest.raises(
        ConfigError,
        match=r"AccountContact\.account_no is required \(no default\), and Lead has no such field",
    ):
        funnel.set_appointment(lead, force=True)
    assert funnel.get_lead(lead.id).status is LeadStatus.RAW


@dataclasses.dataclass
class AddressRow:
    street: Annotated[str | None, Personal] = None


class AddressDict(TypedDict, total=False):
    street: Annotated[str | None, Personal]


def test_personal_inside_a_dataclass_or_typed_dict_is_refused_too() -> None:
    """The refusal looked inside pydantic models only: a dataclass's or a TypedDict's
    field marked Personal was accepted, and ``erase`` left it."""
    with pytest.raises(TypeError, match=r"RowLead\.home holds AddressRow\.street"):

        class RowLead(Lead):
            home: AddressRow | None = None

    with pytest.raises(TypeError, match=r"DictLead\.home holds AddressDict\.street"):

        class DictLead(Lead):
            home: AddressDict | None = None

    with pytest.raises(TypeError, match=r"ListLead\.streets holds an item type marked"):

        class ListLead(Lead):
            streets: list[Annotated[str, Personal]] = []


class UnionMarked(Lead):
    home_street: Annotated[str, Personal] | None = None


def test_a_mark_on_a_member_of_the_fields_union_is_erased(funnel: Funnel) -> None:
    """``Annotated[str, Personal] | None`` puts the mark on a member of the union, where
    pydantic keeps no metadata of the field: ``erase`` left the street."""
    funnel.repository.use_models(lead=UnionMarked)
    lead = funnel.add(UnionMarked(email="pat@acme.example.com", home_street="12 Hidden Lane"))
    funnel.erase(lead)
    assert "Hidden" not in repr(funnel.get_lead(lead.id))
