"""Two review findings, on every backend in ``conftest``.

A raw lead that merges took in entered its cadence when the first of its records
became raw, as a qualified one does: it took its own, later arrival, so the touches
logged on the record that arrived first did not count while it was raw, and
qualifying it changed both its touch number and its due time.

``where=`` on a field whose type admits several JSON types (``int | str``, ``Any``):
PostgreSQL cast every row's value to the filter's type, and raised on a row of
another type ("invalid input syntax for type bigint"); the other stores compared by
value and returned the rows equal to the filter."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from conftest import person
from leadfunnel import Funnel, Lead, PolicyError, Repository
from leadfunnel.testing import ManualClock

T9 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _merged_raw(repository: Repository) -> tuple[Funnel, ManualClock, Lead]:
    """``first`` captured at 09:00 and called at 10:00; ``keep`` (the same person,
    another e-mail and phone) captured at 11:00; ``first`` merged into ``keep`` at 12:00."""
    clock = ManualClock(T9)
    funnel = Funnel(repository, clock=clock)
    first = funnel.capture(Lead(**person(1, first_name="Pat", last_name="Lee")))
    clock.advance(hours=1)
    funnel.touch(first, "call", "no_answer")
    clock.advance(hours=1)
    keep = funnel.capture(
        Lead(**person(2, first_name="Pat", last_name="Lee", phone="+1 512 555 0199"))
    )
    assert isinstance(keep, Lead)
    clock.advance(hours=1)
    funnel.merge(keep, first)
    return funnel, clock, keep


def _due(funnel: Funnel, lead: Lead) -> tuple[int, datetime]:
    [item] = [i for i in funnel.due() if i.subject_id == lead.id]
    return item.touch_number, item.due_at


def test_a_merged_raw_lead_counts_the_touches_of_the_record_that_arrived_first(
    repository: Repository,
) -> None:
    funnel, clock, keep = _merged_raw(repository)
    clock.advance(days=3)
    # The call on the record that arrived first counts: touch 2, due from that call.
    raw = (2, datetime(2026, 3, 4, 10, 0, tzinfo=UTC))
    assert _due(funnel, keep) == raw
    funnel.qualify(keep, force=True)
    assert _due(funnel, keep) == raw, "qualifying a raw lead keeps its count and schedule"


def test_a_merged_raw_lead_goes_on_drip_counting_the_first_records_touches(
    repository: Repository,
) -> None:
    funnel, clock, keep = _merged_raw(repository)
    clock.advance(days=1)
    funnel.touch(keep, "call", "no_answer")  # the second counted touch: the limit
    clock.advance(days=1)
    with pytest.raises(PolicyError, match="on drip"):
        funnel.touch(keep, "call", "no_answer")
    assert [i for i in funnel.due() if i.subject_id == keep.id] == []
    funnel.touch(keep, "email", "no_answer")  # the drip itself


class AnyLead(Lead):
    ext: int | str | None = None
    anything: Any = None


def _where_funnel(repository: Repository) -> tuple[Funnel, dict[str, Lead]]:
    funnel = Funnel(repository, lead_model=AnyLead, clock=ManualClock(T9))
    values: dict[str, tuple[Any, Any]] = {
        "text": ("A-12", "A-12"),
        "int": (12, 12),
        "float": (None, 12.5),
        "whole_float": (None, 12.0),
        "bool": (None, True),
        "yes": (None, "yes"),
        "one": (None, 1),
        "list": (None, [12]),
        "twelve_text": ("12", "12"),
        "true_text": (None, "true"),
    }
    return funnel, {
        name: funnel.add(AnyLead(**person(n), ext=ext, anything=anything))
        for n, (name, (ext, anything)) in enumerate(values.items(), start=1)
    }


def test_where_on_a_union_typed_field_compares_only_the_rows_of_a_comparable_type(
    repository: Repository,
) -> None:
    funnel, rows = _where_funnel(repository)

    def names(**where: Any) -> set[str]:
        found = {x.id for x in funnel.leads(where=where)}
        assert funnel.count("lead", where=where) == len(found)
        return {name for name, lead in rows.items() if lead.id in found}

    assert names(ext=12) == {"int"}
    assert names(ext="A-12") == {"text"}
    assert names(anything=12.5) == {"float"}
    # A Decimal's JSON is its text: in an Any field the SQL stores cannot tell it from
    # a text that spells it ("12"), which memory (Python) keeps apart. Never a failure.
    assert names(anything=Decimal("12.5")) == {"float"}
    assert names(anything=Decimal("12")) - {"twelve_text"} == {"int", "whole_float"}
    assert names(anything="A-12") == {"text"}
    # As Python compares them (12 == 12.0): a whole float is the integer.
    assert names(anything=12) == {"int", "whole_float"}
    assert names(anything=12.0) == {"int", "whole_float"}
    # Booleans: the JSON true, never a text PostgreSQL's boolean input reads as true
    # ("yes"). (Whether true is 1 differs: Python and SQLite say so, MariaDB does not.)
    assert names(anything=True) - {"one"} == {"bool"}
    assert names(anything=False) == set()
    assert names(anything=1) - {"bool"} == {"one"}
    assert names(anything="yes") == {"yes"}
    assert names(anything=[12]) == {"list"}
    # A text is not the number or boolean its JSON would spell.
    assert names(ext="12") == {"twelve_text"}
    assert names(anything="12") == {"twelve_text"}
    assert names(anything="true") == {"true_text"}
