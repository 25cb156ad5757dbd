"""How ``Funnel.import_leads`` cuts its rows into transactions.

By default the first holds 1,000 rows and each next one twice as many, up to 10,000 rows
or about 8 MB of text; ``chunk_size=n`` means ``n`` rows each. The store here is a real
``InMemoryRepository`` that only counts what each commit inserts (and refuses the rows
it is told to, as a database refuses a value it cannot hold).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import T0, person
from leadfunnel import (
    ChangeSet,
    Event,
    Funnel,
    ImportReport,
    InMemoryRepository,
    InvalidArgumentError,
    Lead,
    StorageError,
)
from leadfunnel._importing import CHUNK_BYTES
from leadfunnel.testing import ManualClock


class Counting(InMemoryRepository):
    """Remembers how many records each commit stored; refuses any commit holding a
    record whose first name is ``refuse``."""

    def __init__(self, refuse: str | None = None) -> None:
        super().__init__()
        self.refuse = refuse
        self.stored: list[int] = []  # records inserted, per commit that went through
        self.attempts = 0

    def commit(self, changes: ChangeSet) -> list[Event]:
        self.attempts += 1
        if self.refuse and any(
            getattr(r, "first_name", None) == self.refuse for r in changes.inserts
        ):
            raise StorageError(
                "the database refused a value: too long for type varchar(200)", of_value=True
            )
        events = super().commit(changes)
        self.stored.append(len(changes.inserts))
        return events


def emails(count: int, start: int = 0) -> Iterator[dict[str, Any]]:
    """Short rows, streamed: nowhere near the bytes bound."""
    for n in range(start, start + count):
        yield {"email": f"p{n}@x.example.com"}


def test_default_transactions_hold_1000_rows_then_twice_as_many_up_to_10000() -> None:
    repository = Counting()
    progress: list[int] = []
    report = Funnel(repository).import_leads(
        emails(30_000), on_progress=lambda r: progress.append(r.total)
    )
    assert len(report.added) == 30_000
    assert repository.stored == [1_000, 2_000, 4_000, 8_000, 10_000, 5_000]
    assert progress == [1_000, 3_000, 7_000, 15_000, 25_000, 30_000]
    assert len(Funnel(repository).leads(limit=None)) == 30_000


def test_lead_objects_are_sized_the_same_way() -> None:
    repository = Counting()
    rows = (Lead(email=f"p{n}@x.example.com") for n in range(4_000))
    assert len(Funnel(repository).import_leads(rows).added) == 4_000
    assert repository.stored == [1_000, 2_000, 1_000]


def _wide(n: int) -> dict[str, Any]:
    # Every row holds the same text: 4 x 200 + 2,000 + 22 characters.
    return {
        "first_name": f"{n:0200d}",
        "last_name": "L" * 200,
        "company": "C" * 200,
        "title": "T" * 200,
        "notes": "N" * 2_000,
        "email": f"w{n:06d}@x.example.com",
    }


def test_about_8_mb_of_text_ends_a_transaction_before_its_rows_do() -> None:
    repository = Counting()
    per_row = 4 * 200 + 2_000 + len("w000000@x.example.com")
    report = Funnel(repository).import_leads(_wide(n) for n in range(7_000))
    assert len(report.added) == 7_000
    third = math.ceil(CHUNK_BYTES / per_row)  # 2,975 rows: fewer than the 4,000 due
    assert repository.stored == [1_000, 2_000, third, 7_000 - 3_000 - third]
    assert third < 4_000


def test_wide_lead_objects_end_a_transaction_early_too() -> None:
    repository = Counting()
    rows = (Lead.model_validate(_wide(n)) for n in range(3_500))
    assert len(Funnel(repository).import_leads(rows).added) == 3_500
    assert repository.stored[:2] == [1_000, 2_000]
    assert sum(repository.stored) == 3_500


def test_an_explicit_chunk_size_is_the_rows_of_every_transaction() -> None:
    repository = Counting()
    progress: list[int] = []
    report = Funnel(repository).import_leads(
        emails(1_000), chunk_size=300, on_progress=lambda r: progress.append(r.total)
    )
    assert len(report.added) == 1_000
    assert repository.stored == [300, 300, 300, 100]
    assert progress == [300, 600, 900, 1_000]
    # Larger than the default bound, and never cut by the bytes of the rows either.
    repository = Counting()
    Funnel(repository).import_leads((_wide(n) for n in range(3_500)), chunk_size=3_500)
    assert repository.stored == [3_500]


@pytest.mark.parametrize("size", [0, -1, 2.5, "10"])
def test_a_chunk_size_below_1_is_refused_before_anything_is_read(size: Any) -> None:
    repository = Counting()

    def rows() -> Iterator[dict[str, Any]]:
        raise AssertionError("read")
        yield {}

    with pytest.raises(InvalidArgumentError, match=f"at least 1, not {size!r}"):
        Funnel(repository).import_leads(rows(), chunk_size=size)
    assert repository.attempts == 0


def test_the_generator_is_read_one_transaction_at_a_time() -> None:
    # Memory stays flat: when a chunk is reported stored, no row after it was read.
    read = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal read
        for row in emails(16_000):
            read += 1
            yield row

    seen: list[tuple[int, int]] = []
    Funnel(Counting()).import_leads(rows(), on_progress=lambda r: seen.append((r.total, read)))
    assert seen == [(n, n) for n in (1_000, 3_000, 7_000, 15_000, 16_000)]


def test_one_row_the_store_refuses_is_rejected_alone_in_a_10000_row_transaction() -> None:
    repository = Counting(refuse="Poison")
    rows = [{"email": f"p{n}@x.example.com"} for n in range(25_000)]
    rows[19_999]["first_name"] = "Poison"  # in the fifth transaction, of 10,000 rows
    report = Funnel(repository, clock=ManualClock(T0)).import_leads(rows)
    assert [i.row for i in report.rejected] == [20_000]
    assert report.rejected[0].reason == (
        "the store refused this row: the database refused a value: too long for type varchar(200)"
    )
    assert len(report.added) == 24_999
    assert sum(repository.stored) == 24_999
    # Found by halving: about 2 log2(10,000) commits more, not one per row.
    assert repository.attempts <= 5 + 2 * math.ceil(math.log2(10_000))


# --- the report does not depend on the chunking -----------------------------------------

# A small pool of people, so that rows repeat one another; some rows are bad.
_ROW = st.one_of(
    st.integers(0, 7).map(lambda n: {"email": f"pat{n}@acme.example.com"}),
    st.integers(0, 7).map(lambda n: {"phone": f"+1512555{n:04d}"}),
    st.integers(0, 7).map(lambda n: {"email": f"avoid{n}@acme.example.com", "status": "avoid"}),
    st.just({"email": "not-an-email"}),
    st.integers(0, 3).map(lambda n: {"first_name": "Poison", "email": f"poison{n}@x.example.com"}),
    st.integers(0, 7).map(lambda n: {"email": f"pat{n}@acme.example.com", "type": "client"}),
)


def _outcome(report: ImportReport) -> dict[str, Any]:
    def issues(found: list[Any]) -> list[tuple[int, UUID | None]]:
        return [(issue.row, issue.existing_id) for issue in found]

    return {
        "added": report.added,
        "contacts": report.contacts,
        "duplicates": issues(report.duplicates),
        "avoided": issues(report.avoided),
        "rejected": [i.row for i in report.rejected],
    }


def _import(rows: list[dict[str, Any]], chunk_size: int | None) -> ImportReport:
    funnel = Funnel(Counting(refuse="Poison"), clock=ManualClock(T0))
    # Known before: one person on the avoid list, one stored lead.
    funnel.add(Lead(id=uuid.UUID(int=1), email="avoid0@acme.example.com", status="avoid"))
    funnel.add(Lead(id=uuid.UUID(int=2), **person(2, email="pat7@acme.example.com")))
    # The rows' ids are given, so that two imports can be compared id for id.
    given = [{**row, "id": uuid.UUID(int=1_000 + n)} for n, row in enumerate(rows)]
    report = funnel.import_leads(iter(given), chunk_size=chunk_size)
    assert {lead.id for lead in funnel.leads(limit=None)} | {
        c.id for c in funnel.contacts(limit=None)
    } == set(report.added) | {uuid.UUID(int=1), uuid.UUID(int=2)}
    return report


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(_ROW, max_size=40),
    chunk_size=st.one_of(st.none(), st.integers(1, 45)),
    first=st.integers(1, 8),
)
def test_the_report_is_the_same_however_the_rows_are_chunked(
    rows: list[dict[str, Any]], chunk_size: int | None, first: int
) -> None:
    expected = _outcome(_import(rows, chunk_size=1))  # every row alone
    if chunk_size is None:
        # The default sizing, scaled down so that forty rows make several transactions.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("leadfunnel._importing.FIRST_CHUNK_ROWS", first)
            patch.setattr("leadfunnel._importing.CHUNK_ROWS", 3 * first)
            patch.setattr("leadfunnel._importing.CHUNK_BYTES", 40 * first)
            report = _import(rows, chunk_size=None)
    else:
        report = _import(rows, chunk_size=chunk_size)
    assert _outcome(report) == expected
    assert report.total == len(rows)


def test_a_row_repeating_a_row_the_store_refused_is_tried_on_its_own() -> None:
    rows = [
        {"first_name": "Poison", "email": "pat@acme.example.com"},
        {"first_name": "Pat", "email": "pat@acme.example.com"},
        {"first_name": "Pat again", "email": "pat@acme.example.com"},
    ]
    report = Funnel(Counting(refuse="Poison")).import_leads(rows)
    # Not "a duplicate of row 1", which is not stored: what it would be without row 1.
    assert [i.row for i in report.rejected] == [1]
    assert len(report.added) == 1
    assert [(i.row, i.existing_id) for i in report.duplicates] == [(3, report.added[0])]


def test_a_row_repeating_an_avoided_row_of_the_same_chunk_is_avoided() -> None:
    rows = [{"email": "pat@acme.example.com", "status": "avoid"}, {"email": "pat@acme.example.com"}]
    for chunk_size in (1, 2):
        report = Funnel().import_leads(rows, chunk_size=chunk_size)
        assert [(i.row, i.existing_id) for i in report.avoided] == [(2, report.added[0])]
        assert report.avoided[0].reason == "pat@acme.example.com is on the avoid list"
        assert report.duplicates == []
