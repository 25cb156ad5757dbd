"""An avoided or erased person's former e-mail is never stored again, however close the
race: the store checks the suppression list as the capture, add, edit or import
commits, not only before (DESIGN 12, 13). Each test commits the avoid or erasure
between the other change's check and its commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conftest import person
from leadfunnel import AvoidListedError, Funnel, Lead
from leadfunnel.storage import ChangeSet

OLD = "old@person.example.com"


def before_commit(funnel: Funnel, when: Callable[[ChangeSet], bool], do: Callable[[], Any]) -> None:
    """Run ``do`` once, just before the first commit ``when`` picks is applied: after
    the change was decided, before the store checks it."""
    repository = funnel.repository
    real = repository.commit
    done = False

    def commit(changes: ChangeSet) -> Any:
        nonlocal done
        if not done and when(changes):
            done = True
            do()
        return real(changes)

    setattr(repository, "commit", commit)  # noqa: B010 - an instance's own method


def stores(email: str) -> Callable[[ChangeSet], bool]:
    def picks(changes: ChangeSet) -> bool:
        return any(
            email in (getattr(r, "email", None), *getattr(r, "other_emails", ()))
            for r in changes.records()
        )

    return picks


def formerly_old(funnel: Funnel) -> Lead:
    """A person who held OLD and edited it away: OLD is suppressed once they are
    avoided or erased."""
    pat = funnel.add(Lead(**person(1, email=OLD)))
    assert isinstance(pat, Lead)
    return funnel.update(pat.model_copy(update={"email": "new@person.example.com"}))


def hide(funnel: Funnel, how: str, pat: Lead) -> Callable[[], Any]:
    if how == "avoid":
        return lambda: funnel.avoid(pat.id)
    return lambda: funnel.erase(pat.id)


@pytest.mark.parametrize("how", ["avoid", "erase"])
def test_a_capture_racing_an_avoid_of_a_former_key_is_refused(funnel: Funnel, how: str) -> None:
    pat = formerly_old(funnel)
    before_commit(funnel, stores(OLD), hide(funnel, how, pat))
    with pytest.raises(AvoidListedError) as err:
        funnel.capture(Lead(first_name="X", email=OLD))
    assert err.value.key == f"email:{OLD}"
    assert funnel.find(email=OLD) is None
    assert [lead.id for lead in funnel.leads()] == [pat.id]


@pytest.mark.parametrize("how", ["avoid", "erase"])
def test_an_add_racing_an_avoid_of_a_former_key_is_refused(funnel: Funnel, how: str) -> None:
    pat = formerly_old(funnel)
    before_commit(funnel, stores(OLD), hide(funnel, how, pat))
    with pytest.raises(AvoidListedError):
        funnel.add(Lead(**person(2, email=OLD)))
    assert funnel.find(email=OLD) is None


def test_an_edit_racing_an_erasure_of_a_former_key_is_refused(funnel: Funnel) -> None:
    pat = formerly_old(funnel)
    other = funnel.add(Lead(**person(3)))
    before_commit(funnel, stores(OLD), hide(funnel, "erase", pat))
    with pytest.raises(AvoidListedError):
        funnel.update(other.model_copy(update={"other_emails": frozenset({OLD})}))
    assert funnel.find(email=OLD) is None


def test_a_capture_filling_a_holder_racing_an_avoid_is_refused(funnel: Funnel) -> None:
    pat = formerly_old(funnel)
    holder = funnel.add(Lead(first_name="Ann", phone="+15125550000"))
    before_commit(funnel, stores(OLD), hide(funnel, "avoid", pat))
    with pytest.raises(AvoidListedError):
        funnel.capture(Lead(first_name="Ann", phone="+15125550000", email=OLD))
    assert funnel.find(email=OLD) is None
    assert funnel.get_lead(holder.id).email is None


@pytest.mark.parametrize("how", ["avoid", "erase"])
def test_an_import_racing_an_avoid_reports_that_row_avoided_alone(funnel: Funnel, how: str) -> None:
    pat = formerly_old(funnel)
    before_commit(funnel, stores(OLD), hide(funnel, how, pat))
    rows = [person(n) for n in range(10, 16)]
    rows.insert(3, person(99, email=OLD))
    report = funnel.import_leads(rows)
    assert [(issue.row, issue.existing_id) for issue in report.avoided] == [(4, pat.id)]
    assert report.avoided[0].reason == f"{OLD} is on the avoid list"
    assert len(report.added) == 6
    assert report.duplicates == []
    assert report.rejected == []
    assert funnel.find(email=OLD) is None
