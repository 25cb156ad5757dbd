"""RepositoryContract catches a store whose text filters fold case or accents (audit of
the testing toolkit): every probe of ``test_text_filters_compare_exactly`` once differed
from the stored text in accents and case at once, so a store folding case only
(``lower(col) = lower(?)``, ``citext``, a MySQL ``*_as_ci`` collation) passed it."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from leadfunnel import Contact, InMemoryRepository, Lead, Opportunity, Repository
from leadfunnel._models import SubjectKind
from leadfunnel.storage import FollowUpCandidate, RepListRow
from leadfunnel.testing import RepositoryContract


def _case(text: str) -> str:
    return text.casefold()


def _ascii_case(text: str) -> str:
    """SQLite's ``NOCASE``: ASCII letters only."""
    return "".join(char.lower() if char.isascii() else char for char in text)


def _accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


FOLDS: dict[str, Callable[[str], str]] = {
    "case": _case,
    "ascii-case": _ascii_case,
    "accents": _accents,
}


def _folding(fold: Callable[[str], str], names: frozenset[str]) -> type[Repository]:
    """An in-memory store whose ``names`` filters (list, ``count()`` and ``where=``;
    ``owner`` of the follow-up candidates and rep lists, their ``source``) compare
    ``fold`` of the texts: right everywhere else."""

    def same(held: Any, asked: str) -> bool:
        return isinstance(held, str) and fold(held) == fold(asked)

    class Folding(InMemoryRepository):
        def _folded(self, filters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
            rest = dict(filters)
            where = dict(rest.pop("where", None) or {})
            asked = {name: rest.pop(name) for name in names if rest.get(name) is not None}
            asked.update({f"where:{n}": where.pop(n) for n in names if n in where})
            rest["where"] = where or None
            return rest, asked

        def _matches(self, record: Any, asked: dict[str, str]) -> bool:
            for name, value in asked.items():
                field = name.removeprefix("where:")
                if field == "tag":
                    if not any(same(tag, value) for tag in record.tags):
                        return False
                elif not same(getattr(record, field, None), value):
                    return False
            return True

        def _list(
            self, kind: SubjectKind, filters: dict[str, Any], after: Any, limit: int | None
        ) -> list[Any]:
            rest, asked = self._folded(filters)
            found = [r for r in super()._list(kind, rest, after, None) if self._matches(r, asked)]
            return found if limit is None else found[:limit]

        def _count(self, kind: SubjectKind, filters: dict[str, Any]) -> int:
            return len(self._list(kind, filters, None, None))

        def follow_up_candidates(
            self, *, lead_limit: int, contact_limit: int, owner: str | None = None
        ) -> Iterator[FollowUpCandidate]:
            if "owner" not in names:
                yield from super().follow_up_candidates(
                    lead_limit=lead_limit, contact_limit=contact_limit, owner=owner
                )
                return
            for row in super().follow_up_candidates(
                lead_limit=lead_limit, contact_limit=contact_limit
            ):
                if owner is None or same(self.get(row.subject_id).owner, owner):
                    yield row

        def rep_list(
            self,
            kind: Any,
            *,
            now: datetime,
            source: str | None = None,
            owner: str | None = None,
            entered_since: datetime | None = None,
            entered_until: datetime | None = None,
            limit: int | None = None,
        ) -> list[RepListRow]:
            rows = super().rep_list(
                kind,
                now=now,
                source=None if "source" in names else source,
                owner=None if "owner" in names else owner,
                entered_since=entered_since,
                entered_until=entered_until,
            )
            if "owner" in names and owner is not None:
                rows = [row for row in rows if same(row.record.owner, owner)]
            if "source" in names and source is not None:
                rows = [row for row in rows if same(self._source(row.record), source)]
            return rows if limit is None else rows[:limit]

        def _source(self, record: Lead | Opportunity) -> str | None:
            if isinstance(record, Opportunity):
                contact = self.get(record.contact_id)
                assert isinstance(contact, Contact)
                return contact.source
            return record.source

    Folding.__name__ = Folding.__qualname__ = f"Folding_{'_'.join(sorted(names))}"
    return Folding


class _Against(RepositoryContract):
    def __init__(self, adapter: Callable[[], Repository], tmp_path: Path) -> None:
        self.adapter = adapter
        self.tmp_path = tmp_path

    def create_repository(self) -> Repository:
        return self.adapter()


LIST_FILTERS = ["owner", "source", "setter", "tag"]


@pytest.mark.parametrize("fold", list(FOLDS))
@pytest.mark.parametrize("name", LIST_FILTERS)
def test_a_store_folding_one_list_filter_fails_the_contract(
    tmp_path: Path, name: str, fold: str
) -> None:
    adapter = _folding(FOLDS[fold], frozenset({name}))
    contract = _Against(adapter, tmp_path)
    with contract.fresh() as repo, pytest.raises(AssertionError) as failed:
        contract.test_text_filters_compare_exactly(repo)
    message = str(failed.value)
    assert f"{name}=" in message or f"'{name}'" in message, message
    assert {"case": "case", "ascii-case": "ASCII", "accents": "accents only"}[fold] in message


@pytest.mark.parametrize("fold", list(FOLDS))
def test_a_store_folding_an_applications_text_field_fails_the_contract(
    tmp_path: Path, fold: str
) -> None:
    adapter = _folding(FOLDS[fold], frozenset({"po_number"}))
    contract = _Against(adapter, tmp_path)
    with contract.fresh() as repo, pytest.raises(AssertionError) as failed:
        contract.test_an_applications_text_field_compares_exactly_in_where(repo)
    assert "po_number" in str(failed.value)


@pytest.mark.parametrize("fold", list(FOLDS))
@pytest.mark.parametrize("name", ["owner", "source"])
def test_a_store_folding_owners_of_follow_ups_or_rep_lists_fails_the_contract(
    tmp_path: Path, name: str, fold: str
) -> None:
    # Only the follow-up candidates and the rep lists fold: the list filters are right.
    class FollowUpsFold(_folding(FOLDS[fold], frozenset({name}))):  # type: ignore[misc]
        _list = InMemoryRepository._list
        _count = InMemoryRepository._count

    contract = _Against(FollowUpsFold, tmp_path)
    with contract.fresh() as repo:
        contract.test_text_filters_compare_exactly(repo)  # the lists are right
    with contract.fresh() as repo, pytest.raises(AssertionError) as failed:
        contract.test_owners_and_sources_of_follow_ups_and_rep_lists_compare_exactly(repo)
    assert f"{name}=" in str(failed.value)


@pytest.mark.parametrize(
    "test",
    [
        "test_text_filters_compare_exactly",
        "test_an_applications_text_field_compares_exactly_in_where",
        "test_owners_and_sources_of_follow_ups_and_rep_lists_compare_exactly",
    ],
)
def test_the_memory_store_and_an_exact_folding_adapter_pass(tmp_path: Path, test: str) -> None:
    """The probes fail only what folds: the memory store passes, and so does the test
    adapter above when its "fold" changes nothing."""
    for adapter in (
        InMemoryRepository,
        _folding(lambda text: text, frozenset({*LIST_FILTERS, "po_number"})),
    ):
        contract = _Against(adapter, tmp_path)
        with contract.fresh() as repo:
            getattr(contract, test)(repo)
