"""An avoid list imported while another writer stores one of its people: the web form
captures someone between the import's look-up of stored people and its commit. The row
loses the race, and the person it names must still end on the avoid list, as one found
stored does (docs/api.md: a do-not-contact list never leaves anyone on it callable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conftest import T0
from leadfunnel import AvoidListedError, ChangeSet, Event, Funnel, Lead, Repository
from leadfunnel.testing import ManualClock


def before_the_import_commits(repository: Repository, meddle: Callable[[], object]) -> list[int]:
    """Run ``meddle`` (another writer's change) once, just before the import's first
    commit: the import decided on the store as it was before."""
    real = repository.commit
    done: list[int] = []

    def commit(changes: ChangeSet) -> list[Event]:
        if not done and any(e.name == "import" for e in changes.events):
            done.append(1)
            meddle()
        return real(changes)

    repository.commit = commit  # type: ignore[method-assign]
    return done


def web_form(repository: Repository, email: str) -> Callable[[], Any]:
    """Another writer's capture of ``email``: a funnel of its own on the same store."""
    return lambda: Funnel(repository, clock=ManualClock(T0)).capture(
        Lead(first_name="Dee", email=email)
    )


def test_an_avoid_row_that_loses_the_race_avoids_the_person_stored_meanwhile(
    repository: Repository,
) -> None:
    funnel = Funnel(repository, clock=ManualClock(T0))
    raced = before_the_import_commits(repository, web_form(repository, "dee@x.example.com"))
    report = funnel.import_leads([{"email": "dee@x.example.com"}], status="avoid", actor="legal")
    assert raced
    dee = funnel.find(email="dee@x.example.com")
    assert isinstance(dee, Lead)
    assert dee.status == "avoid"
    assert (report.added, report.duplicates, report.rejected) == ([], [], [])
    assert [(i.row, i.existing_id) for i in report.avoided] == [(1, dee.id)]
    assert report.avoided[0].reason.endswith("now on the avoid list")
    assert [e.name for e in funnel.history(dee)] == ["capture", "avoid"]
    with pytest.raises(AvoidListedError):
        funnel.capture(Lead(email="dee@x.example.com"))


def test_in_a_chunk_the_row_that_lost_and_a_later_row_repeating_it_both_avoid_the_person(
    repository: Repository,
) -> None:
    """The chunk's commit is refused and split down to the row that lost; a later row
    of the chunk naming the same person is sorted again and finds them stored."""
    funnel = Funnel(repository, clock=ManualClock(T0))
    raced = before_the_import_commits(repository, web_form(repository, "eve@x.example.com"))
    rows = [
        {"email": "dee@x.example.com"},
        {"email": "eve@x.example.com"},
        {"email": "EVE@x.example.com", "first_name": "Eve"},
        {"email": "fay@x.example.com"},
    ]
    report = funnel.import_leads(rows, status="avoid")
    assert raced
    eve = funnel.find(email="eve@x.example.com")
    assert isinstance(eve, Lead)
    assert eve.status == "avoid"
    assert (report.duplicates, report.rejected) == ([], [])
    assert [(i.row, i.existing_id) for i in report.avoided] == [(2, eve.id), (3, eve.id)]
    added = [funnel.get_lead(i) for i in report.added]
    assert [(x.email, x.status) for x in added] == [
        ("dee@x.example.com", "avoid"),
        ("fay@x.example.com", "avoid"),
    ]
    assert [e.name for e in funnel.history(eve)] == ["capture", "avoid"]


def test_a_person_the_other_writer_avoided_meanwhile_is_reported_avoided_as_before(
    repository: Repository,
) -> None:
    funnel = Funnel(repository, clock=ManualClock(T0))

    def stored_and_avoided() -> None:
        other = Funnel(repository, clock=ManualClock(T0))
        other.avoid(other.capture(Lead(email="gil@x.example.com")))

    raced = before_the_import_commits(repository, stored_and_avoided)
    report = funnel.import_leads([{"email": "gil@x.example.com"}], status="avoid")
    assert raced
    gil = funnel.find(email="gil@x.example.com")
    assert isinstance(gil, Lead)
    assert (report.added, report.duplicates) == ([], [])
    assert [(i.row, i.existing_id) for i in report.avoided] == [(1, gil.id)]
    assert report.avoided[0].reason.endswith("is on the avoid list")
    assert [e.name for e in funnel.history(gil)] == ["capture", "avoid"]  # avoided once


def test_a_row_not_on_the_avoid_list_that_loses_the_race_is_still_a_duplicate(
    repository: Repository,
) -> None:
    funnel = Funnel(repository, clock=ManualClock(T0))
    raced = before_the_import_commits(repository, web_form(repository, "hal@x.example.com"))
    report = funnel.import_leads([{"email": "hal@x.example.com"}], status="raw")
    assert raced
    hal = funnel.find(email="hal@x.example.com")
    assert isinstance(hal, Lead)
    assert hal.status == "raw"
    assert [(i.row, i.existing_id) for i in report.duplicates] == [(1, hal.id)]
    assert (report.added, report.avoided) == ([], [])
