"""Values an application's fields accept read back the same on every store, or are
refused by every store alike (docs/custom-fields.md, docs/storage.md).

An audit found three ways this failed:

- a strict model (``ConfigDict(strict=True)``) or field (``Field(strict=True)``) stored
  on the SQL store and never read back: a strict date or UUID refused its JSON text, so
  every read of the table failed (memory worked);
- a union-typed field read back from the SQL stores as another member of its union (a
  UUID or a date as a str, a set as a list, a date as a datetime, a Decimal as a float,
  digits lost), and the next write made that for good (memory kept the original);
- bytes that are no UTF-8 text, and values with no JSON form in an ``Any``: memory kept
  them (then ``export_person`` crashed), the SQL store raised pydantic's own
  ``PydanticSerializationError``, and an import kept the row on memory and rejected it
  on SQL.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import pytest
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_serializer,
    field_validator,
    model_validator,
)

from conftest import value_refusal
from leadfunnel import Contact, Funnel, Lead, Opportunity, Repository, StorageError
from leadfunnel._documents import reads_alike_as_json, reread_fields
from leadfunnel._repository import _NOTHING_TO_WALK, _checks_of
from leadfunnel.testing import ManualClock

REF = UUID("12345678-1234-5678-1234-567812345678")
DIGEST = hashlib.sha256(b"card.pdf").digest()  # 32 bytes, not UTF-8 text


# --- strict models and fields -------------------------------------------------------------


class StrictSite(BaseModel):
    model_config = ConfigDict(strict=True)

    vendor: UUID
    since: date


class StrictLead(Lead):
    model_config = ConfigDict(strict=True)

    endpoints: int | None = None
    renewal: date | None = None
    site: StrictSite | None = None


class StrictFieldLead(Lead):
    renewal: date | None = Field(default=None, strict=True)
    account: UUID | None = Field(default=None, strict=True)
    sites: list[StrictSite] = Field(default_factory=list)


def test_a_strict_model_reads_back_on_every_store(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=StrictLead, clock=clock)
    site = StrictSite(vendor=REF, since=date(2020, 5, 1))
    lead = funnel.add(
        StrictLead(email="pat@acme.example.com", endpoints=40, renewal=date(2027, 1, 31), site=site)
    )
    assert funnel.get_lead(lead.id) == lead
    assert funnel.leads() == [lead]
    assert [x.id for x in funnel.leads(where={"renewal": date(2027, 1, 31)})] == [lead.id]
    assert funnel.qualify(lead, force=True).qualified
    qualified = funnel.get_lead(lead.id)
    assert (qualified.status, qualified.site) == ("qualified", site)
    funnel.erase(lead.id)
    assert funnel.get_lead(lead.id).erased_at is not None
    assert funnel.count("lead") == 1


def test_a_strict_field_reads_back_on_every_store(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=StrictFieldLead, clock=clock)
    lead = funnel.add(
        StrictFieldLead(
            email="pat@acme.example.com",
            renewal=date(2027, 1, 31),
            account=REF,
            sites=[StrictSite(vendor=REF, since=date(2020, 5, 1))],
        )
    )
    read = funnel.get_lead(lead.id)
    assert read == lead
    assert (type(read.renewal), type(read.account)) == (date, UUID)
    assert funnel.leads() == [lead]
    funnel.qualify(lead, force=True)
    assert funnel.get_lead(lead.id).renewal == date(2027, 1, 31)
    assert [x.id for x in funnel.leads(where={"account": REF})] == [lead.id]


def test_a_strict_model_is_read_from_its_json_text_as_pydantic_reads_it() -> None:
    # Documents are read lax in either mode, so strictness is no reason to parse the
    # text first: a strict model reads alike (faster on SQLite and MariaDB).
    assert reads_alike_as_json(StrictLead)
    assert reads_alike_as_json(StrictFieldLead)


# --- unions ---------------------------------------------------------------------------------


class Site(BaseModel):
    vendor: UUID | str


class UnionLead(Lead):
    account_ref: UUID | str | None = None  # a billing-system id, or a legacy code
    renewal: date | str | None = None  # a date, or "on request"
    seats: set[int] | list[int] | None = None
    follow_up: datetime | date | None = None  # a moment, or just a day
    budget: float | Decimal | None = None  # a rough figure, or an exact amount
    site: Site | None = None
    sites: list[Site] = Field(default_factory=list)


# Each: a value of a field that reads back from a JSON document as another member of
# its union, where the error says it is, and the type it would read back as.
MISREAD: dict[str, tuple[dict[str, Any], str, str]] = {
    "a UUID in UUID | str": ({"account_ref": REF}, "'account_ref'", "of type UUID"),
    "a date in date | str": ({"renewal": date(2027, 1, 31)}, "'renewal'", "as str"),
    "a set in set | list": ({"seats": {3, 1}}, "'seats'", "of type set"),
    "a date in datetime | date": ({"follow_up": date(2027, 1, 15)}, "'follow_up'", "as datetime"),
    "a Decimal in float | Decimal": (
        {"budget": Decimal("12345678901234567.89")},
        "'budget'",
        "as float",
    ),
    "a UUID in a nested model": ({"site": Site(vendor=REF)}, "'site.vendor'", "as str"),
    "a UUID in a list of them": (
        {"sites": [Site(vendor="acme"), Site(vendor=REF)]},
        "'sites[1].vendor'",
        "as str",
    ),
}


@pytest.mark.parametrize("case", list(MISREAD))
def test_every_store_refuses_a_union_value_that_reads_back_as_another_member(
    repository: Repository, clock: ManualClock, case: str
) -> None:
    fields, named, problem = MISREAD[case]
    funnel = Funnel(repository, lead_model=UnionLead, clock=clock)
    lead = UnionLead(email="pat@acme.example.com", **fields)
    message = value_refusal(funnel, lead, named, problem)
    assert f"field {named} of lead {lead.id} holds a value" in message
    assert 'Field(union_mode="left_to_right")' in message  # what to do
    for shown in (str(REF), "2027", "12345678901234567", "acme"):
        assert shown not in message  # never the value: it may be personal data
    assert funnel.leads() == []
    assert funnel.events() == []


def test_union_values_that_read_back_as_themselves_store_everywhere(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=UnionLead, clock=clock)
    kept = UnionLead(
        email="pat@acme.example.com",
        account_ref="LEGACY-7",
        renewal="on request",
        seats=[3, 1],
        follow_up=datetime(2027, 1, 15, 10, 30, tzinfo=UTC),
        budget=1.5,
        site=Site(vendor="acme"),
        sites=[Site(vendor="acme"), Site(vendor=str(REF))],  # a str stays a str
    )
    lead = funnel.add(kept)
    read = funnel.get_lead(lead.id)
    assert read == lead
    assert [type(read.account_ref), type(read.seats), type(read.budget)] == [str, list, float]
    assert read.sites[1].vendor == str(REF)
    # A trigger rewrites the document from what it read: still the same values.
    funnel.qualify(read, force=True)
    again = funnel.get_lead(lead.id)
    for name in UnionLead.model_fields.keys() - Lead.model_fields.keys():
        assert getattr(again, name) == getattr(lead, name), name


def test_an_update_to_a_union_value_that_reads_back_otherwise_changes_nothing(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=UnionLead, clock=clock)
    lead = funnel.add(UnionLead(email="pat@acme.example.com", budget=1.5))
    with pytest.raises(StorageError) as refused:
        funnel.update(lead.model_copy(update={"budget": Decimal("12345678901234567.89")}))
    assert refused.value.of_value
    assert "field 'budget'" in str(refused.value)
    assert funnel.get_lead(lead.id) == lead
    assert [e.name for e in funnel.history(lead.id)] == ["add"]
    # The record's other changes still store (a trigger, an erasure).
    funnel.qualify(lead, force=True)
    assert funnel.get_lead(lead.id).budget == 1.5


class PricedLead(Lead):
    """A serialiser of the application's writes the document (docs/custom-fields.md)."""

    shown: Decimal | None = None  # formatted for display: no Decimal reads it back
    rounded: Decimal | None = None  # to the cent: reads back, rounded

    @field_serializer("shown")
    def _show(self, value: Decimal | None) -> str | None:
        return None if value is None else f"${value:.2f}"

    @field_serializer("rounded")
    def _round(self, value: Decimal | None) -> str | None:
        return None if value is None else str(round(value, 2))


def test_a_serialiser_whose_document_reads_back_otherwise_is_refused_when_written(
    repository: Repository, clock: ManualClock
) -> None:
    # Before, the record stored and then no read of it worked (every SQL store).
    funnel = Funnel(repository, lead_model=PricedLead, clock=clock)
    lead = funnel.add(PricedLead(email="pat@acme.example.com", rounded=Decimal("10.5")))
    assert funnel.get_lead(lead.id) == lead
    for given, problem in (
        ({"shown": Decimal("10.5")}, "as what PricedLead refuses (decimal_parsing)"),
        ({"rounded": Decimal("10.555")}, "as another value"),
    ):
        with pytest.raises(StorageError) as refused:
            funnel.update(lead.model_copy(update=given))
        message = str(refused.value)
        assert refused.value.of_value
        assert f"field {next(iter(given))!r} of lead {lead.id}" in message
        assert problem in message
        assert "serialiser" in message
        assert "10.5" not in message
    assert funnel.get_lead(lead.id) == lead


class OrderedLead(Lead):
    """The advice of the error: the type that must win first, tried left to right."""

    account_ref: UUID | str | None = Field(default=None, union_mode="left_to_right")
    renewal: date | str | None = Field(default=None, union_mode="left_to_right")
    seats: set[int] | list[int] | None = Field(default=None, union_mode="left_to_right")
    follow_up: date | datetime | None = Field(default=None, union_mode="left_to_right")
    budget: Decimal | float | None = Field(default=None, union_mode="left_to_right")


def test_an_ordered_union_reads_back_the_same_everywhere(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=OrderedLead, clock=clock)
    given: list[dict[str, Any]] = [
        {
            "account_ref": REF,
            "renewal": date(2027, 1, 31),
            "seats": {3, 1},
            "follow_up": date(2027, 1, 15),
            "budget": Decimal("12345678901234567.89"),
        },
        {
            "account_ref": "LEGACY-7",
            "renewal": "on request",
            "seats": [3, 1],  # held as a set from the start, on every store
            "follow_up": datetime(2027, 1, 15, 10, 30, tzinfo=UTC),
            "budget": 1.5,  # held as a Decimal from the start
        },
    ]
    for n, fields in enumerate(given):
        lead = funnel.add(OrderedLead(email=f"pat{n}@acme.example.com", **fields))
        read = funnel.get_lead(lead.id)
        for name in fields:
            assert type(getattr(read, name)) is type(getattr(lead, name)), name
        assert read == lead
    first, second = funnel.leads()
    assert (first.account_ref, first.budget) == (REF, Decimal("12345678901234567.89"))
    assert (second.seats, second.budget) == ({1, 3}, Decimal("1.5"))


def test_leadfunnels_own_models_are_never_read_back() -> None:
    for model in (Lead, Contact, Opportunity):
        assert reread_fields(model) == {}
        assert _checks_of(model) is _NOTHING_TO_WALK  # a cache look-up a record
    assert set(reread_fields(UnionLead)) == {
        "account_ref",
        "renewal",
        "seats",
        "follow_up",
        "budget",
        "site",
        "sites",
    }
    assert reread_fields(StrictLead) == {}


# --- bytes and values with no JSON form ----------------------------------------------------


class Thing:
    """An object pydantic has no JSON form for."""


def _from_hex(value: Any) -> Any:
    return bytes.fromhex(value) if isinstance(value, str) else value


#: Bytes that the field itself writes as text (and reads back from it).
HexBytes = Annotated[
    bytes, BeforeValidator(_from_hex), PlainSerializer(lambda b: b.hex(), return_type=str)
]


class BytesLead(Lead):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    digest: bytes | None = None
    extra: Any = None
    meta: dict[str, Any] = Field(default_factory=dict)
    hexed: HexBytes | None = None
    thing: Thing | None = None


NO_JSON: dict[str, tuple[dict[str, Any], str, str]] = {
    "a digest in bytes": ({"digest": DIGEST}, "'digest'", "bytes that are no UTF-8 text"),
    "a digest in Any": ({"extra": DIGEST}, "'extra'", "bytes that are no UTF-8 text"),
    "a digest in a dict": ({"meta": {"d": DIGEST}}, "\"meta['d']\"", "no UTF-8 text"),
    "an object in Any": ({"extra": Thing()}, "'extra'", "no JSON form (a Thing)"),
    "a range in Any": ({"extra": range(3)}, "'extra'", "no JSON form (a range)"),
    "an object in a dict": (
        {"meta": {"pat@acme.example.com": [Thing()]}},
        "'meta[<key 1>][0]'",
        "no JSON form",
    ),
    "an object of an arbitrary type": ({"thing": Thing()}, "'thing'", "no JSON form"),
}


@pytest.mark.parametrize("case", list(NO_JSON))
def test_every_store_refuses_a_value_with_no_json_form(
    repository: Repository, clock: ManualClock, case: str
) -> None:
    fields, named, problem = NO_JSON[case]
    funnel = Funnel(repository, lead_model=BytesLead, clock=clock)
    lead = BytesLead(email="pat@acme.example.com", **fields)
    message = value_refusal(funnel, lead, named, problem)
    assert DIGEST.hex() not in message
    assert "pat@acme" not in message
    assert funnel.leads() == []


def test_bytes_that_json_holds_store_and_export_everywhere(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=BytesLead, clock=clock)
    lead = funnel.add(
        BytesLead(email="pat@acme.example.com", digest=b"abc", hexed=DIGEST, meta={"n": [1, "x"]})
    )
    read = funnel.get_lead(lead.id)
    assert read == lead
    assert read.hexed == DIGEST  # its serialiser writes it as text
    exported = funnel.export_person(lead.id)
    assert exported["records"][0]["digest"] == "abc"


def test_an_import_rejects_such_rows_alone_on_every_store(
    repository: Repository, clock: ManualClock
) -> None:
    class ImportedLead(Lead):
        digest: bytes | None = None
        account_ref: UUID | str | None = None
        extra: Any = None

    funnel = Funnel(repository, lead_model=ImportedLead, clock=clock)
    rows: list[dict[str, Any]] = [
        {"email": "ok1@x.example.com", "account_ref": "LEGACY-7"},
        {"email": "bad1@x.example.com", "digest": DIGEST},
        {"email": "bad2@x.example.com", "account_ref": REF},
        {"email": "bad3@x.example.com", "extra": Thing()},
        {"email": "ok2@x.example.com", "digest": b"abc"},
    ]
    report = funnel.import_leads(rows)
    assert [issue.row for issue in report.rejected] == [2, 3, 4]
    reasons = [issue.reason for issue in report.rejected]
    assert "field 'digest'" in reasons[0]
    assert "field 'account_ref'" in reasons[1]
    assert "field 'extra'" in reasons[2]
    assert len(report.added) == 2
    assert {x.email for x in funnel.leads()} == {"ok1@x.example.com", "ok2@x.example.com"}


def test_a_where_filter_on_bytes_no_store_holds_matches_nothing(
    repository: Repository, clock: ManualClock
) -> None:
    """A ``where=`` value with no JSON form (bytes that are no text) raised
    ``UnicodeDecodeError`` on the SQL stores (memory answered ``[]``): no record can
    hold it, so it matches nothing, on every store."""
    funnel = Funnel(repository, lead_model=BytesLead, clock=clock)
    funnel.add(BytesLead(email="pat@acme.example.com", digest=b"text"))
    assert funnel.leads(where={"digest": DIGEST}) == []
    assert funnel.count("lead", where={"digest": DIGEST}) == 0
    assert [lead.digest for lead in funnel.leads(where={"digest": b"text"})] == [b"text"]


class ReachableLead(Lead):
    """A union field (its records are read back before they are stored) and a
    validator that wants what an erasure blanks."""

    crm_ref: int | str | None = None

    @model_validator(mode="after")
    def reachable(self) -> ReachableLead:
        if not (self.email or self.phone):
            raise ValueError("a lead needs an e-mail or a phone")
        return self


def test_an_erasure_is_never_refused_by_the_read_back_check(repository: Repository) -> None:
    """The read-back check validated the erased record as the application's class,
    whose validator refused it: ``erase`` failed and the person's data stayed (an
    erasure is never refused by the application's class, DESIGN 13)."""
    funnel = Funnel(repository, lead_model=ReachableLead)
    lead = funnel.add(ReachableLead(email="pat@acme.example.com", crm_ref="A-1"))
    funnel.erase(lead)
    assert funnel.get_lead(lead.id).email is None


class RoundingLead(Lead):
    budget: Decimal | None = None

    @field_validator("budget", mode="wrap")
    @classmethod
    def cents(cls, value: Any, handler: Any) -> Any:
        return handler(None if value is None else round(value, 2))  # fails on text


def test_a_validator_failing_on_the_read_back_is_a_storage_error(
    repository: Repository,
) -> None:
    """A validator of the application's raising ``TypeError`` on the document's data made
    ``add`` raise that ``TypeError`` itself."""
    funnel = Funnel(repository, lead_model=RoundingLead)
    with pytest.raises(StorageError, match="RoundingLead's validators fail on") as refused:
        funnel.add(RoundingLead(email="pat@acme.example.com", budget=Decimal("10.555")))
    assert refused.value.of_value
    assert "10.5" not in str(refused.value)
    assert funnel.leads() == []


class HalfBase64Lead(Lead):
    """Bytes written as base64 in JSON, read back as UTF-8 text."""

    model_config = ConfigDict(ser_json_bytes="base64")

    blob: bytes | None = None


@pytest.mark.parametrize("blob", [b"abc", b"\xff"], ids=["text", "binary"])
def test_bytes_written_and_read_in_two_encodings_are_refused(
    repository: Repository, blob: bytes
) -> None:
    """With ``ser_json_bytes="base64"`` and no ``val_json_bytes``, memory kept ``b'abc'``
    and the SQL stores read back ``b'YWJj'``: the class is read back before a record is
    stored, and every store refuses it alike."""
    funnel = Funnel(repository, lead_model=HalfBase64Lead)
    with pytest.raises(StorageError, match="blob"):
        funnel.add(HalfBase64Lead(email="pat@acme.example.com", blob=blob))
    assert funnel.leads() == []
