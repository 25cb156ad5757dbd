"""An update that keeps a person's identity keys (a new version sharing the fields its
keys come from, as a bulk qualify's move does) writes no key rows, and the keys it
keeps still refuse anybody else: on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPOSITORY_KINDS, T0, make_repository, person, release_repository
from leadfunnel import (
    AvoidListedError,
    DuplicateError,
    Lead,
    LeadStatus,
    SqlRepository,
)
from leadfunnel._changes import bump
from leadfunnel._models import updated
from leadfunnel._repository import ChangeSet

LATER = T0.replace(year=T0.year + 1)


@pytest.fixture(params=[kind for kind in REPOSITORY_KINDS if kind != "memory"])
def repository(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlRepository]:
    """An empty store on each SQL backend (the servers' when their URLs are set)."""
    repo = make_repository(request.param, tmp_path)
    assert isinstance(repo, SqlRepository)
    yield repo
    release_repository(repo)


def _stored(repository: SqlRepository, n: int, **fields: object) -> Lead:
    lead = Lead(**person(n, phone="+15125550100", other_emails=[f"alt{n}@x.example"], **fields))
    repository.commit(ChangeSet(inserts=[lead]))
    stored = repository.get(lead.id)
    assert isinstance(stored, Lead)
    return stored


def _moved(repository: SqlRepository, lead: Lead, **fields: object) -> ChangeSet:
    """A change set moving ``lead`` (read whole from the store) as a use case does."""
    changes = ChangeSet(updates=[bump(lead, LATER, **fields)])
    changes.read[lead.id] = lead
    return changes


def test_a_move_keeps_every_key(repository: SqlRepository) -> None:
    lead = _stored(repository, 1)
    keys = ["email:pat1@acme-it1.example.com", "phone:+15125550100", "email:alt1@x.example"]
    assert repository.find_keys(keys) == dict.fromkeys(keys, lead.id)
    repository.commit(
        _moved(
            repository, lead, status=LeadStatus.QUALIFIED, status_at=LATER, tags=frozenset({"x"})
        )
    )
    assert repository.find_keys(keys) == dict.fromkeys(keys, lead.id)
    moved = repository.get(lead.id)
    assert isinstance(moved, Lead)
    assert moved.status is LeadStatus.QUALIFIED
    assert moved.tags == {"x"}
    # Still refused to anybody else, by each key.
    for n, fields in enumerate(
        [{"email": "PAT1@acme-it1.example.com"}, {"phone": "+1 512 555 0100"}], 2
    ):
        other = Lead(**{**person(n), **fields})
        with pytest.raises(DuplicateError) as caught:
            repository.commit(ChangeSet(inserts=[other]))
        assert caught.value.existing_id == lead.id


def test_a_new_person_claiming_a_kept_key_in_the_same_commit_is_refused(
    repository: SqlRepository,
) -> None:
    """The key column refuses the claim; nothing of the commit is stored."""
    lead = _stored(repository, 1)
    changes = _moved(repository, lead, status=LeadStatus.QUALIFIED, status_at=LATER)
    newcomer = Lead(**person(2, email="pat1@acme-it1.example.com"))
    changes.inserts.append(newcomer)
    with pytest.raises(DuplicateError) as caught:
        repository.commit(changes)
    assert caught.value.key == "email:pat1@acme-it1.example.com"
    assert repository.get_many([newcomer.id]) == {}
    again = repository.get(lead.id)
    assert isinstance(again, Lead)
    assert again.status is LeadStatus.RAW
    assert again.version == lead.version
    assert repository.find_keys(["email:pat1@acme-it1.example.com"]) == {
        "email:pat1@acme-it1.example.com": lead.id
    }


def test_a_move_onto_the_avoid_list_flags_the_keys(repository: SqlRepository) -> None:
    """Moving to avoid keeps the key sources but changes the flag: not a kept update."""
    lead = _stored(repository, 1)
    repository.commit(_moved(repository, lead, status=LeadStatus.AVOID, status_at=LATER))
    other = Lead(**person(2, email="alt1@x.example"))
    with pytest.raises(AvoidListedError) as caught:
        repository.commit(ChangeSet(inserts=[other]))
    assert caught.value.existing_id == lead.id


@pytest.mark.parametrize("validated", [True, False])
def test_a_new_address_moves_the_keys(repository: SqlRepository, validated: bool) -> None:
    """Whether the new version was validated (its other fields new objects) or made
    from the old one's values (sharing every other field)."""
    lead = _stored(repository, 1)
    if validated:
        repository.commit(_moved(repository, lead, email="new1@acme-it1.example.com"))
    else:
        change = {"email": "new1@acme-it1.example.com", "version": lead.version + 1}
        changes = ChangeSet(updates=[updated(lead, change)])
        changes.read[lead.id] = lead
        repository.commit(changes)
    old, new = "email:pat1@acme-it1.example.com", "email:new1@acme-it1.example.com"
    assert repository.find_keys([old, new]) == {new: lead.id}
    # The old address is free for somebody else now.
    repository.commit(ChangeSet(inserts=[Lead(**person(2, email="pat1@acme-it1.example.com"))]))
