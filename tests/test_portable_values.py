"""Values every store keeps (docs/storage.md): what a model accepts stores on memory,
SQLite, PostgreSQL and MariaDB alike, or is refused by all of them, before anything is
written: a NUL character (PostgreSQL refused it, the others kept it), an integer beyond
signed 64 bits (stored, but filters and bigint indexes on it broke), an infinite or NaN
float (memory kept it, every SQL store read back ``None``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from conftest import person, write_csv
from leadfunnel import (
    Contact,
    Event,
    Funnel,
    InMemoryRepository,
    Lead,
    Opportunity,
    Repository,
    StorageError,
)
from leadfunnel._csv import open_csv
from leadfunnel.storage import ChangeSet
from leadfunnel.testing import ManualClock, RepositoryContract

INT64_MAX = 2**63 - 1


class Address(BaseModel):
    street: str | None = None
    floor: int = 0


class OddLead(Lead):
    """An application's lead whose own fields can hold values not every store keeps."""

    score: int | None = None
    ratio: float | None = None
    label: str | None = None
    systems: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)
    address: Address | None = None
    #: Fields that cannot: bounded, finite.
    seats: Annotated[int, Field(ge=0, le=10_000)] = 0
    share: Annotated[float, Field(allow_inf_nan=False)] = 0.0


def odd_funnel(repository: Repository, clock: ManualClock) -> Funnel:
    return Funnel(repository, lead_model=OddLead, clock=clock)


# Each: the fields given, the field the error names, and the problem it names.
REFUSED: dict[str, tuple[dict[str, Any], str, str]] = {
    "int above 64 bits": ({"score": 2**63}, "'score'", "beyond signed 64 bits (it takes 65)"),
    "int below 64 bits": (
        {"score": -(2**63) - 1},
        "'score'",
        "beyond signed 64 bits (it takes 65)",
    ),
    "a huge int in a dict": (
        {"meta": {"n": 2**70}},
        "\"meta['n']\"",
        "beyond signed 64 bits (it takes 72)",
    ),
    "inf": ({"ratio": math.inf}, "'ratio'", "holds inf"),
    "-inf": ({"ratio": -math.inf}, "'ratio'", "holds -inf"),
    "nan": ({"ratio": math.nan}, "'ratio'", "holds nan"),
    "nan in a dict": ({"meta": {"x": [1.5, math.nan]}}, "\"meta['x'][1]\"", "holds nan"),
    "NUL in a str": ({"label": "Acme\x00"}, "'label'", "NUL character (U+0000) at position 4"),
    "NUL in a list": ({"systems": ["ok", "\x00x"]}, "'systems[1]'", "NUL character"),
    "NUL in a dict key": ({"meta": {"k\x00": 1}}, "'meta'", "a key with a NUL character"),
    "NUL in a dict value": ({"meta": {"k": "v\x00"}}, "\"meta['k']\"", "NUL character"),
    "NUL under a key that may be data": (
        {"meta": {"pat@acme.example.com": "\x00"}},
        "'meta[<key 1>]'",
        "NUL character",
    ),
    "NUL in a nested model": (
        {"address": {"street": "Main\x00St"}},
        "'address.street'",
        "NUL character",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_every_store_refuses_a_value_not_every_store_keeps(
    repository: Repository, clock: ManualClock, case: str
) -> None:
    fields, named, problem = REFUSED[case]
    funnel = odd_funnel(repository, clock)
    odd = OddLead(**person(1), **fields)  # the model accepts it
    with pytest.raises(StorageError) as refused:
        funnel.add(odd)
    error = refused.value
    assert error.of_value  # the value, not the database: an import rejects the row alone
    message = str(error)
    assert f"field {named} of lead {odd.id}" in message
    assert problem in message
    assert "nothing of this change was stored" in message
    assert "Field(" in message or "remove it" in message  # what to do
    assert "Acme\x00" not in message
    assert "Main" not in message
    assert "pat@acme" not in message
    # Nothing of the change: no record, no event, no identity key.
    assert funnel.leads() == []
    assert funnel.events() == []
    assert repository.find_keys([f"email:{odd.email}"]) == {}
    # The same person without the odd value stores.
    assert funnel.add(OddLead(**person(1))).version == 1


def test_an_update_to_such_a_value_is_refused_and_changes_nothing(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = odd_funnel(repository, clock)
    lead = funnel.add(OddLead(**person(1), label="fine", score=3))
    for change in ({"label": "a\x00"}, {"score": 2**64}, {"ratio": math.nan}):
        with pytest.raises(StorageError) as refused:
            funnel.update(lead.model_copy(update=change))
        assert refused.value.of_value
        assert funnel.get(lead.id) == lead
        assert [e.name for e in funnel.history(lead.id)] == ["add"]


def test_values_at_the_limits_store_and_read_back_the_same_everywhere(
    repository: Repository, clock: ManualClock
) -> None:
    """The largest and smallest 64-bit integers, the largest finite float and text with
    other control characters store on every backend and read back the same, and filter;
    one step beyond, the store refuses."""
    funnel = odd_funnel(repository, clock)
    edge = {
        "score": INT64_MAX,
        "ratio": 1.7976931348623157e308,
        "label": "tab\tbell\x07end",
        "meta": {"low": -(2**63), "tiny": 5e-324, "keys": {"a\x01": ["\x1f"]}},
        "employees": INT64_MAX,
    }
    lead = funnel.add(OddLead(**person(1, **edge)))
    assert funnel.get(lead.id) == lead
    assert [r.id for r in funnel.leads(where={"score": INT64_MAX})] == [lead.id]
    assert [r.id for r in funnel.leads(where={"employees": INT64_MAX})] == [lead.id]
    with pytest.raises(StorageError):
        funnel.add(OddLead(**person(2), score=INT64_MAX + 1))
    assert [r.id for r in funnel.leads()] == [lead.id]


@pytest.mark.parametrize("model", [Lead, Contact])
def test_leadfunnels_own_counts_are_bounded_by_the_model(model: type[Lead | Contact]) -> None:
    """A count beyond signed 64 bits is bad input: a ValidationError naming the field,
    before any store is asked (DESIGN section 2)."""
    with pytest.raises(ValidationError) as refused:
        model(**person(1, employees=2**63))
    assert refused.value.errors()[0]["loc"] == ("employees",)
    assert model(**person(1, employees=INT64_MAX)).employees == INT64_MAX


def test_an_import_rejects_such_a_row_alone(repository: Repository, clock: ManualClock) -> None:
    funnel = odd_funnel(repository, clock)
    rows = [
        person(1, label="fine"),
        person(2, label="Acme\x00"),
        person(3, score=2**64),
        person(4, ratio="inf"),
        person(5, meta={"a": [1, 2]}),
        person(6, employees=2**63),
    ]
    report = funnel.import_leads(rows)
    assert [issue.row for issue in report.rejected] == [2, 3, 4, 6]
    reasons = [issue.reason for issue in report.rejected]
    assert "field 'label'" in reasons[0]
    assert "NUL character" in reasons[0]
    assert "field 'score'" in reasons[1]
    assert "64 bits" in reasons[1]
    assert "field 'ratio'" in reasons[2]
    assert "inf" in reasons[2]
    assert reasons[3].startswith("employees:")
    stored = {lead.email for lead in funnel.leads()}
    assert stored == {person(n)["email"] for n in (1, 5)}
    assert len(report.added) == 2


def test_a_lead_list_with_a_huge_employee_count_rejects_that_row(
    tmp_path: Path, repository: Repository, clock: ManualClock
) -> None:
    text = (
        "FirstName,LastName,Email,Company,NumberOfEmployees\n"
        "Pat,Rivera,pat@acme.example.com,Acme,9223372036854775808\n"
        'Sam,Chen,sam@blue.example.com,Blue,"9,223,372,036,854,775,807"\n'
        "Al,Bo,al@cove.example.com,Cove,40\n"
    )
    funnel = Funnel(repository, clock=clock)
    report = funnel.import_leads(row.fields for row in open_csv(write_csv(tmp_path, text)).rows())
    assert [(issue.row, issue.reason.partition(":")[0]) for issue in report.rejected] == [
        (1, "employees")
    ]
    assert sorted(lead.employees or 0 for lead in funnel.leads()) == [40, INT64_MAX]


def test_which_fields_a_commit_looks_at_is_decided_once_per_class() -> None:
    """leadfunnel's own records cost the commit nothing to check (their counts are
    bounded, their text refuses control characters); an application's only the fields
    that can hold such a value."""
    from leadfunnel._repository import _walk_of

    for model in (Lead, Contact, Opportunity):
        assert _walk_of(model).fields == ()
    assert _walk_of(OddLead).fields == (
        "score",
        "ratio",
        "label",
        "systems",
        "meta",
        "address",
    )


class _SkipsTheCheck(InMemoryRepository):
    """An adapter that overrides ``commit`` and calls ``_commit`` itself."""

    def commit(self, changes: ChangeSet) -> list[Event]:
        return self._commit(changes)


class _ContractOn(RepositoryContract):
    def __init__(self, make: type[Repository]) -> None:
        self.make = make

    def create_repository(self) -> Repository:
        return self.make()


def test_the_contract_fails_an_adapter_whose_commit_skips_the_check() -> None:
    check = RepositoryContract.test_values_not_every_store_keeps_are_refused_and_nothing_is_stored
    with _ContractOn(InMemoryRepository).fresh() as repository:
        check(_ContractOn(InMemoryRepository), repository)
    with (
        _ContractOn(_SkipsTheCheck).fresh() as repository,
        pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"),
    ):
        check(_ContractOn(_SkipsTheCheck), repository)
