"""An avoid list imported over stored people avoids them a chunk at a time (DESIGN.md
section 17: bulk work does not go through the per-record path), with exactly what
``funnel.avoid`` did one row at a time: the same states, events, suppressions, deals
lost and report, on every backend; a person whose avoid fails is handled alone."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from conftest import T0, make_repository, person, release_repository
from leadfunnel import (
    AvoidListedError,
    ChangeSet,
    Contact,
    Funnel,
    ImportReport,
    Lead,
    Repository,
    SqlRepository,
    StorageError,
    _importing,
)
from leadfunnel._models import identity_keys
from leadfunnel._sql import _schema as schema
from leadfunnel._suppression import DROPPED_KEYS
from leadfunnel.testing import ManualClock

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _per_row(
    repository: Repository,
    named: list[tuple[int, str, UUID]],
    report: ImportReport,
    actor: str | None,
    reason: str | None,
    now: Callable[[], Any],
) -> None:
    """The behaviour before: one ``avoid`` (one commit) per row."""
    _importing._avoid_alone(repository, named, report, actor, reason, now)


def _phone(n: int) -> str:
    return f"+1512555{n:04d}"


def _stored(funnel: Funnel) -> None:
    """People in every situation an avoid list may name."""
    funnel.import_leads(
        [person(n, phone=_phone(n)) for n in range(1, 10)], status="raw", reason="crm"
    )
    by_name = {lead.first_name: lead for lead in funnel.leads(limit=None)}
    # A lead converted into a contact, with an open deal: avoiding it loses the deal.
    funnel.set_appointment(by_name["Pat1"], force=True, owner="sam")
    # A lead that edited an e-mail away: that e-mail is suppressed with the others.
    lead2 = funnel.get_lead(by_name["Pat2"].id)
    funnel.update(lead2.model_copy(update={"email": "new2@acme-it2.example.com"}))
    funnel.avoid(by_name["Pat3"])  # on the list already
    funnel.add(Contact(**person(40, phone=_phone(40)), type="prospect"))
    funnel.erase(by_name["Pat5"])
    funnel.merge(by_name["Pat9"], by_name["Pat8"])  # 8's keys now name 9
    assert isinstance(funnel.clock, ManualClock)
    funnel.clock.advance(hours=1)


def _avoid_rows() -> list[dict[str, Any]]:
    return [
        {"email": "pat1@acme-it1.example.com"},  # the contact lead 1 became
        {"email": "new2@acme-it2.example.com", "first_name": "Two"},
        {"email": "pat3@acme-it3.example.com"},  # avoided already
        {"email": "pat40@acme-it40.example.com"},  # a contact stored as one
        {"email": "pat5@acme-it5.example.com"},  # erased: suppressed
        {"email": "pat6@acme-it6.example.com"},
        {"phone": _phone(6)},  # the same person again, by phone
        {"email": "pat7@acme-it7.example.com", "notes": "do not call"},
        {"email": "pat8@acme-it8.example.com"},  # merged into 9
        {"phone": _phone(9)},
        person(100),  # new: stored avoided
        person(100),  # a repeat of a row stored avoided
        {"email": "not an e-mail"},
        {"phone": _phone(4)},
        {"email": "pat6@acme-it6.example.com"},  # 6 again, a chunk later
    ]


def _snapshot(funnel: Funnel[Lead, Contact, Any], report: ImportReport) -> dict[str, Any]:
    """What the import did, with each id given as the person's name (ids are random)."""
    repository = funnel.repository
    records: list[Lead | Contact] = [*funnel.leads(limit=None), *funnel.contacts(limit=None)]
    deals = funnel.opportunities(limit=None)
    names: dict[str, str] = {str(r.id): f"{r.kind}:{r.first_name}" for r in records}
    names.update({str(d.id): f"deal:{names[str(d.contact_id)]}" for d in deals})

    def named(value: Any) -> Any:
        if isinstance(value, UUID):
            value = str(value)
        if isinstance(value, str):
            return _UUID.sub(lambda m: names.get(m.group(), "?"), value)
        if isinstance(value, dict):
            return {
                k: (len(v) if k == DROPPED_KEYS else named(v)) for k, v in sorted(value.items())
            }
        if isinstance(value, (list, tuple)):
            return [named(v) for v in value]
        return value

    def issues(found: list[Any]) -> list[Any]:
        return [(i.row, named(i.reason), named(i.existing_id)) for i in found]

    def state(record: Any) -> Any:
        data = record.model_dump(exclude={"id", "contact_id", "lead_id"})
        return named(data)

    keys = sorted(
        {k for r in records for k in identity_keys(r)}
        | {"email:pat1@acme-it1.example.com", "email:pat2@acme-it2.example.com"}
        | {"email:pat5@acme-it5.example.com", "email:pat8@acme-it8.example.com"}
    )
    banned = funnel._suppressor.banned(keys)
    flags: list[Any] = []
    if isinstance(repository, SqlRepository):
        # The key index's avoided flags, as the store keeps them.
        with repository.engine.connect() as conn:
            flags = sorted(
                (key, names.get(str(holder), "?"), bool(avoided))
                for key, holder, avoided in conn.execute(sa.select(schema.keys))
            )
    return {
        "report": {
            "added": len(report.added),
            "contacts": len(report.contacts),
            "avoided": issues(report.avoided),
            "duplicates": issues(report.duplicates),
            "rejected": issues(report.rejected),
        },
        "records": sorted((names[str(r.id)], state(r)) for r in (*records, *deals)),
        "histories": sorted(
            (
                names[str(r.id)],
                [
                    named(e.model_dump(exclude={"id", "subject_id", "position"}))
                    for e in repository.history(r.id)
                ],
            )
            for r in (*records, *deals)
        ),
        "feed": [(names.get(str(e.subject_id), "?"), e.name) for e in funnel.events(limit=None)],
        "flags": flags,
        "suppressed": {k: names.get(str(v), "?") for k, v in sorted(banned.items())},
        "holders": {
            k: names.get(str(v), "?") for k, v in sorted(repository.find_keys(keys).items())
        },
    }


@pytest.fixture
def reference(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Repository]:
    """A second store of the fixture ``repository``'s kind, for the per-row run."""
    folder = tmp_path / "reference"
    folder.mkdir()
    repo = make_repository(request.node.callspec.params["repository"], folder)
    yield repo
    release_repository(repo)


def _run(
    repository: Repository, chunk_size: int | None, refuse: str | None = None
) -> dict[str, Any]:
    funnel = Funnel(repository, clock=ManualClock(T0))
    _stored(funnel)
    if refuse is not None:
        _refusing(repository, refuse)
    report = funnel.import_leads(
        _avoid_rows(), status="avoid", chunk_size=chunk_size, actor="ops", reason="dnc list"
    )
    return _snapshot(funnel, report)


def _refusing(repository: Repository, first_name: str) -> None:
    """Have ``repository`` refuse, as a value it cannot hold, any change that updates the
    person named ``first_name``."""
    commit = repository.commit

    def refusing(changes: ChangeSet) -> Any:
        if any(getattr(r, "first_name", None) == first_name for r in changes.updates):
            raise StorageError("refused a value of Pat7", of_value=True)
        return commit(changes)

    repository.commit = refusing  # type: ignore[method-assign]


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_an_avoid_list_over_stored_people_does_what_avoiding_each_one_did(
    repository: Repository,
    reference: Repository,
    monkeypatch: pytest.MonkeyPatch,
    chunk_size: int | None,
) -> None:
    bulk = _run(repository, chunk_size)
    monkeypatch.setattr(_importing, "_avoid_named", _per_row)
    assert bulk == _run(reference, chunk_size)
    # And what that is: every stored person named is avoided, each with its event.
    report = bulk["report"]
    assert [row for row, _, _ in report["avoided"]] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 15]
    assert [row for row, _, _ in report["rejected"]] == [13]
    assert report["added"] == 1
    records = dict(bulk["records"])
    assert records["contact:Pat1"]["type"] == "avoid"
    assert records["deal:contact:Pat1"]["lost_reason"] == "avoid"
    assert records["lead:Pat6"]["status"] == "avoid"
    assert records["lead:Pat4"]["status"] == "avoid"
    assert bulk["suppressed"]["email:pat2@acme-it2.example.com"] == "lead:Pat2"


def test_a_person_whose_avoid_is_refused_stays_a_duplicate_and_sinks_nobody(
    repository: Repository, reference: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk = _run(repository, None, refuse="Pat7")
    monkeypatch.setattr(_importing, "_avoid_named", _per_row)
    assert bulk == _run(reference, None, refuse="Pat7")
    duplicates = bulk["report"]["duplicates"]
    assert [(row, reason.endswith("refused a value of Pat7")) for row, reason, _ in duplicates] == [
        (8, True)
    ]
    records = dict(bulk["records"])
    assert records["lead:Pat7"]["status"] == "raw"
    assert records["lead:Pat6"]["status"] == "avoid"


def test_a_person_changed_meanwhile_is_read_again_and_avoided(repository: Repository) -> None:
    funnel = Funnel(repository, clock=ManualClock(T0))
    funnel.import_leads([person(n) for n in range(20)], status="raw")
    target = next(r for r in funnel.leads(limit=None) if r.first_name == "Pat7")
    commit = repository.commit
    raced: list[bool] = []

    def racing(changes: ChangeSet) -> Any:
        if not raced and len(changes.updates) > 1:
            raced.append(True)  # another writer edits Pat7 just before this commit
            funnel.update(funnel.get_lead(target.id).model_copy(update={"city": "Waco"}))
        return commit(changes)

    repository.commit = racing  # type: ignore[method-assign]
    report = funnel.import_leads([{"email": person(n)["email"]} for n in range(20)], status="avoid")
    assert raced
    assert (len(report.avoided), report.duplicates, report.rejected) == (20, [], [])
    assert all(lead.status == "avoid" for lead in funnel.leads(limit=None))
    again = funnel.get_lead(target.id)
    assert again.city == "Waco"
    assert [e.name for e in funnel.history(again)][-2:] == ["update", "avoid"]
    with pytest.raises(AvoidListedError):
        funnel.add(Lead(email=person(7)["email"]))


def test_an_avoid_list_of_stored_people_costs_statements_per_chunk_not_per_row(
    tmp_path: Any,
) -> None:
    repository = SqlRepository(f"sqlite:///{tmp_path / 'avoid.db'}")
    funnel = Funnel(repository)
    rows = [{"first_name": f"F{i}", "email": f"p{i}@d{i % 50}.example.com"} for i in range(1200)]
    funnel.import_leads(rows, status="raw", chunk_size=400)
    statements: list[str] = []
    commits: list[bool] = []
    sa.event.listen(repository.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    sa.event.listen(repository.engine, "commit", lambda *a: commits.append(True))
    report = funnel.import_leads(rows, status="avoid", chunk_size=400)
    assert len(report.avoided) == 1200
    assert funnel.count("lead", status="avoid") == 1200
    assert len(commits) == 3  # one a chunk (one a row before: 1,200)
    # About 30 a chunk (13 a row before: 15,600).
    assert len(statements) < 3 * 40, len(statements)
    repository.close()
