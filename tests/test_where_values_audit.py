"""``where=`` agrees on every store (memory, SQLite, PostgreSQL, MariaDB in ``conftest``)
where an audit found the stores apart.

A dict compares whatever the order of its keys (a list in its order); a number in a
dict or list by its value. A value no store holds (an integer beyond 64 bits, a
non-finite float, a text with a NUL) matches nothing, without an error and without
reaching the database. MariaDB compares decimals beyond ``DECIMAL(65, 30)`` exactly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import pytest
from pydantic import Field

from conftest import person
from leadfunnel import Funnel, Lead, Repository


class Audited(Lead):
    meta: dict[str, Any] = {}
    items: list[Any] = []
    ratio: float | None = None
    big: int | None = None
    label: str | None = None
    names: frozenset[str] = frozenset()
    price: Decimal | None = None


def ids(records: list[Any]) -> list[Any]:
    return [r.id for r in records]


def test_where_compares_a_dict_whatever_the_order_of_its_keys(repository: Repository) -> None:
    funnel = Funnel(repository, lead_model=Audited)
    text = 'é "q" \\ / \n \u2028 \U0001f600'
    a = funnel.add(
        Audited(
            **person(1),
            meta={"b": 1, "a": 2, "n": {"y": [1, {"q": 1, "p": 2}], "x": text}, "r": 2.0},
            items=[{"b": 1, "a": 2}, 3],
        )
    )
    b = funnel.add(Audited(**person(2), meta={"a": 2, "b": 1}, items=[3, {"a": 2, "b": 1}]))
    c = funnel.add(Audited(**person(3), meta={"n": 2**60}))
    reordered = {"r": 2, "n": {"x": text, "y": [1, {"p": 2, "q": 1}]}, "a": 2, "b": 1}
    assert ids(funnel.leads(where={"meta": reordered})) == [a.id]
    assert funnel.count("lead", where={"meta": {**reordered, "r": 2.5}}) == 0
    assert ids(funnel.leads(where={"meta": {"b": 1, "a": 2}})) == [b.id]
    # Lists keep their order; the dicts in them do not.
    assert ids(funnel.leads(where={"items": [{"a": 2, "b": 1}, 3]})) == [a.id]
    assert ids(funnel.leads(where={"items": [3, {"b": 1, "a": 2}]})) == [b.id]
    assert funnel.count("lead", where={"items": [3]}) == 0
    # A number by its value, every digit of it.
    assert ids(funnel.leads(where={"meta": {"n": 2**60}})) == [c.id]
    assert funnel.count("lead", where={"meta": {"n": 2**60 + 1}}) == 0


@pytest.mark.parametrize(
    "where",
    [
        {"big": 2**63},
        {"big": 2**64},
        {"big": -(2**63) - 1},
        {"meta": {"a": 2**64}},
        {"items": [1, 2**63]},
        {"ratio": float("inf")},
        {"ratio": float("-inf")},
        {"ratio": float("nan")},
        {"meta": {"a": float("inf")}},  # JSON would write it null
        {"items": [float("nan")]},
        {"label": "a\x00b"},
        {"meta": {"a": "\x00"}},
        {"meta": {"\x00": None}},
        {"items": ["\x00"]},
        {"names": frozenset({"a\x00"})},
    ],
    ids=repr,
)
def test_where_with_a_value_no_store_holds_matches_nothing(
    repository: Repository, where: dict[str, Any]
) -> None:
    funnel = Funnel(repository, lead_model=Audited)
    a = funnel.add(Audited(**person(1), meta={"a": None}, items=[1, None], label="ab"))
    b = funnel.add(Audited(**person(2), big=7, ratio=0.5, names=frozenset({"a"})))
    assert funnel.count("lead", where=where) == 0
    assert funnel.leads(where=where) == []
    assert funnel.leads(where={**where, "employees": 25}) == []
    # The rest of the store, and of later queries, as before.
    assert ids(funnel.leads(where={"employees": 25})) == [a.id, b.id]
    assert ids(funnel.leads(where={"big": 7, "ratio": 0.5})) == [b.id]
    assert funnel.count("lead", where={"meta": {"a": None}}) == 1


def test_where_compares_decimals_beyond_decimal_65_30_exactly(repository: Repository) -> None:
    funnel = Funnel(repository, lead_model=Audited)
    big = funnel.add(Audited(**person(1), price=Decimal("1E+40")))
    wide = funnel.add(
        Audited(**person(2), price=Decimal("-12345678901234567890123456789012345678.5"))
    )
    fine = funnel.add(
        Audited(**person(3), price=Decimal("0.1234567890123456789012345678901234567"))
    )
    huge = funnel.add(Audited(**person(4), price=Decimal("2.5E+400")))
    small = funnel.add(Audited(**person(5), price=Decimal("10.50")))
    assert ids(funnel.leads(where={"price": Decimal("1E+40")})) == [big.id]
    assert ids(funnel.leads(where={"price": "10000000000000000000000000000000000000000.000"})) == [
        big.id
    ]
    assert ids(funnel.leads(where={"price": 10**40})) == [big.id]
    assert (
        funnel.count("lead", where={"price": Decimal("1.000000000000000000000000000000001E+40")})
        == 0
    )
    assert ids(
        funnel.leads(where={"price": Decimal("-1234567890123456789012345678901234567.85E+1")})
    ) == [wide.id]
    assert ids(
        funnel.leads(where={"price": Decimal("0.12345678901234567890123456789012345670")})
    ) == [fine.id]
    # Equal to the 30th decimal place, not beyond: another number.
    assert (
        funnel.count("lead", where={"price": Decimal("0.1234567890123456789012345678901234568")})
        == 0
    )
    assert funnel.count("lead", where={"price": Decimal("0.123456789012345678901234567890")}) == 0
    assert ids(funnel.leads(where={"price": Decimal("25E+399")})) == [huge.id]
    assert funnel.count("lead", where={"price": Decimal("2.5E+401")}) == 0
    assert ids(funnel.leads(where={"price": Decimal("10.5")})) == [small.id]
    assert funnel.count("lead", where={"price": Decimal("1E-40")}) == 0


def test_where_on_a_decimal_at_the_edge_of_a_double(repository: Repository) -> None:
    funnel = Funnel(repository, lead_model=Audited)
    edge = funnel.add(Audited(**person(1), price=Decimal("1.7976931348623157E+308")))
    funnel.add(Audited(**person(2), price=Decimal("-1.7976931348623157E+308")))
    assert ids(funnel.leads(where={"price": Decimal("1.7976931348623157E+308")})) == [edge.id]
    assert funnel.count("lead", where={"price": Decimal("1.7976931348623158E+308")}) == 0


class Unbounded(Lead):
    amount: Annotated[Decimal, Field(allow_inf_nan=True)] | None = None


def test_where_on_a_decimal_that_is_no_number(repository: Repository) -> None:
    funnel = Funnel(repository, lead_model=Unbounded)
    up = funnel.add(Unbounded(**person(1), amount=Decimal("Infinity")))
    down = funnel.add(Unbounded(**person(2), amount=Decimal("-Infinity")))
    funnel.add(Unbounded(**person(3), amount=Decimal("NaN")))
    funnel.add(Unbounded(**person(4)))
    assert ids(funnel.leads(where={"amount": Decimal("Infinity")})) == [up.id]
    assert ids(funnel.leads(where={"amount": "-inf"})) == [down.id]
    assert funnel.count("lead", where={"amount": Decimal("NaN")}) == 0  # not even itself


def test_where_on_a_version_no_record_has_matches_nothing(repository: Repository) -> None:
    """``version`` is a column of its own (a 32-bit integer on PostgreSQL): a value
    beyond it was a StorageError there, an OverflowError on SQLite past 64 bits."""
    funnel = Funnel(repository)
    lead = funnel.add(Lead(**person(1)))
    assert ids(funnel.leads(where={"version": 1})) == [lead.id]
    assert funnel.count("lead", where={"version": 2**31}) == 0
    assert funnel.count("lead", where={"version": 2**40}) == 0
