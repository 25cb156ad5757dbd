"""Merge and unmerge against the avoid list, custom fields and races (DESIGN.md 4, 12, 15).

- An unmerge gives the record merged away its keys back: the digests of those the kept
  record's history had dropped no longer count as the kept person's former keys, so
  avoiding or erasing the kept person later leaves the other person alone.
- A record merged into a person already avoided has its former keys suppressed, as
  when the merge comes first and the avoidance after.
- On the SQL stores, an unmerge by a funnel without the application's classes puts the
  kept record's own fields back as the merge log's snapshot has them.
- An unmerge that loses a race is retried; one with nothing to undo says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from conftest import T0, open_server, server_name
from leadfunnel import (
    AvoidListedError,
    ChangeSet,
    Contact,
    Event,
    Funnel,
    Lead,
    NotFoundError,
    Repository,
    SqlRepository,
)
from leadfunnel._suppression import DROPPED_KEYS, RETURNED_KEYS
from leadfunnel.testing import ManualClock

ANN = "ann@x.example.com"
BOB = "bob@y.example.com"


def edit(funnel: Funnel, record: Lead | Contact, **changes: Any) -> Any:
    """Save ``changes`` on the stored version of ``record``."""
    return funnel.update(funnel.get(record.id).model_copy(update=changes))


def merged_edited_unmerged(funnel: Funnel) -> tuple[Lead, Lead]:
    """Bob merged into Ann; an edit takes Bob's e-mail off Ann and another puts it back
    (what the unmerge refusal tells a user to do); the merge undone. Ann's own history
    keeps the digest of Bob's e-mail, dropped by the first edit."""
    ann = funnel.add(Lead(first_name="Ann", email=ANN))
    bob = funnel.add(Lead(first_name="Bob", email=BOB))
    merged = funnel.merge(ann, bob)
    assert merged.other_emails == {BOB}
    edit(funnel, ann, other_emails=frozenset())
    edit(funnel, ann, other_emails=frozenset({BOB}))
    funnel.unmerge(ann)
    found = funnel.find(email=BOB)
    assert found is not None
    assert found.id == bob.id
    return ann, bob


# --- 1. the keys an unmerge gives back are no longer the kept person's -------------------


@pytest.mark.parametrize("how", ["avoid", "erase"])
def test_avoiding_the_kept_person_after_an_unmerge_leaves_the_other_alone(
    funnel: Funnel, how: str
) -> None:
    ann, bob = merged_edited_unmerged(funnel)
    if how == "avoid":
        funnel.avoid(ann)
    else:
        funnel.erase(ann)
        # The erasure keeps no digest in Ann's history, the given-back ones included.
        kept = [e.data for e in funnel.history(ann) if DROPPED_KEYS in e.data]
        assert kept + [e.data for e in funnel.history(ann) if RETURNED_KEYS in e.data] == []
    captured = funnel.capture(Lead(email=BOB, notes="Bob writes again"))
    assert captured.id == bob.id
    report = funnel.import_leads([{"first_name": "Bob", "email": BOB}])
    assert report.avoided == []
    assert [d.existing_id for d in report.duplicates] == [bob.id]
    # Ann herself stays avoided under her own key.
    with pytest.raises(AvoidListedError):
        funnel.add(Lead(email=ANN))


def test_the_unmerge_event_names_the_given_back_digests_never_the_keys(funnel: Funnel) -> None:
    ann, bob = merged_edited_unmerged(funnel)
    dropped = [e for e in funnel.history(ann) if DROPPED_KEYS in e.data]
    (unmerge,) = [e for e in funnel.history(ann) if e.name == "unmerge"]
    assert unmerge.data[RETURNED_KEYS] == dropped[0].data[DROPPED_KEYS]
    assert unmerge.data["other_id"] == str(bob.id)
    assert "bob@" not in json.dumps(unmerge.model_dump(mode="json"))
    # Only digests the kept record's history dropped: an unmerge with no such edit
    # between records none.
    carl = funnel.add(Lead(first_name="Carl", email="carl@z.example.com"))
    dan = funnel.add(Lead(first_name="Dan", email="dan@z.example.com"))
    funnel.merge(carl, dan)
    funnel.unmerge(carl)
    assert RETURNED_KEYS not in funnel.history(carl)[-1].data


def test_a_key_given_back_then_dropped_again_stays_avoided(funnel: Funnel) -> None:
    ann, bob = merged_edited_unmerged(funnel)
    funnel.merge(ann, bob)  # the same person after all
    edit(funnel, ann, other_emails=frozenset())  # Bob's e-mail taken off for good
    funnel.avoid(ann)
    with pytest.raises(AvoidListedError) as err:
        funnel.add(Lead(email=BOB))
    assert err.value.existing_id == ann.id


def test_the_kept_persons_own_keys_edited_during_the_merge_stay_its_own(funnel: Funnel) -> None:
    ann = funnel.add(Lead(first_name="Ann", email=ANN))
    bob = funnel.add(Lead(first_name="Bob", email=BOB))
    funnel.merge(ann, bob)
    edit(funnel, ann, email="ann2@x.example.com")  # Ann's own e-mail dropped
    edit(funnel, ann, email=ANN)  # and back, as the merge left it
    funnel.unmerge(ann)
    funnel.avoid(ann)
    with pytest.raises(AvoidListedError):
        funnel.add(Lead(email="ann2@x.example.com"))
    assert funnel.capture(Lead(email=BOB)).id == bob.id


# --- 2. merging into a person already avoided ------------------------------------------


def test_a_record_merged_into_an_avoided_person_has_its_former_keys_suppressed(
    funnel: Funnel,
) -> None:
    kim = funnel.add(Lead(first_name="Kim", email="kim@acme.example.com"))
    old = funnel.add(Lead(first_name="Kim", email="old@acme.example.com"))
    edit(funnel, old, email="new@acme.example.com")  # old@ edited away
    funnel.avoid(kim)
    funnel.merge(kim, old)
    for email in ("old@acme.example.com", "new@acme.example.com"):
        with pytest.raises(AvoidListedError) as err:
            funnel.add(Lead(first_name="Again", email=email))
        assert err.value.existing_id == kim.id  # the record that keeps them, not gone
    with pytest.raises(AvoidListedError):
        funnel.capture(Lead(email="old@acme.example.com"))
    report = funnel.import_leads([{"email": "old@acme.example.com"}])
    assert (report.added, len(report.avoided)) == ([], 1)


def test_a_contact_merged_into_an_avoided_one_brings_its_leads_former_keys(
    funnel: Funnel, clock: ManualClock
) -> None:
    kept = funnel.avoid(funnel.add(Contact(first_name="Kim", email="kim@acme.example.com")))
    lead = funnel.add(Lead(first_name="Kim", email="lead-old@acme.example.com", status="raw"))
    edit(funnel, lead, email="lead-new@acme.example.com")  # on the lead, before converting
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead, appointment_at=T0 + timedelta(days=2))
    funnel.lose(deal, reason="other")  # no open deal: it may join the avoided person
    funnel.merge(kept, deal.contact_id)
    with pytest.raises(AvoidListedError) as err:
        funnel.add(Lead(email="lead-old@acme.example.com"))
    assert err.value.existing_id == kept.id


# --- 3. an unmerge without the application's classes (SQL stores) ----------------------


class MyLead(Lead):
    endpoints: int | None = None
    handle: str | None = None


def another(repository: SqlRepository) -> SqlRepository:
    """A second store on ``repository``'s database, as another process opens it."""
    if repository.dialect == "sqlite":
        return SqlRepository(repository.url.render_as_string(hide_password=False))
    kind = "postgres" if repository.dialect == "postgresql" else "mysql"
    return open_server(kind, server_name(repository))


@pytest.fixture
def two_funnels(
    repository: Repository, clock: ManualClock
) -> Iterator[tuple[Funnel[MyLead, Contact, Any], Funnel]]:
    """The application's funnel (with ``MyLead``) and a plain one (a script, the CLI)
    on one SQL database."""
    if not isinstance(repository, SqlRepository):
        pytest.skip("a store in memory holds the application's records themselves")
    plain = another(repository)
    try:
        yield Funnel(repository, lead_model=MyLead, clock=clock), Funnel(plain, clock=clock)
    finally:
        plain.close()


def custom(funnel: Funnel[MyLead, Contact, Any], *records: Lead) -> list[tuple[Any, Any]]:
    found = [funnel.get_lead(r.id) for r in records]
    return [(r.endpoints, r.handle) for r in found]


def test_a_plain_unmerge_puts_back_the_fields_the_merge_filled(
    two_funnels: tuple[Funnel[MyLead, Contact, Any], Funnel],
) -> None:
    app, plain = two_funnels
    a = app.add(MyLead(first_name="A", email="a@x.example.com", handle="a-handle"))
    b = app.add(MyLead(first_name="B", email="b@x.example.com", endpoints=40, handle="b-h"))
    assert app.merge(a, b).endpoints == 40  # filled from b
    plain.unmerge(a.id)
    assert custom(app, a, b) == [(None, "a-handle"), (40, "b-h")]
    assert app.get_lead(a.id).model_dump(exclude={"version", "updated_at"}) == a.model_dump(
        exclude={"version", "updated_at"}
    )


def test_a_plain_unmerge_of_a_record_read_whole_puts_back_its_fields(
    two_funnels: tuple[Funnel[MyLead, Contact, Any], Funnel],
) -> None:
    """The kept record's row holds no field of the application's when the plain funnel
    reads it (the application cleared its one since the merge), so the store writes the
    update from the two records alone (``changed_row``): the snapshot's fields go back
    all the same. (A funnel without the classes cannot see that such a field changed
    since the merge; it puts the record back as it was before the merge.)"""
    app, plain = two_funnels
    a = app.add(MyLead(first_name="A", email="a@x.example.com", handle="a-handle"))
    b = app.add(MyLead(first_name="B", email="b@x.example.com"))
    app.merge(a, b)
    app.update(app.get_lead(a.id).model_copy(update={"handle": None}))
    plain.unmerge(a.id)
    assert custom(app, a, b) == [(None, "a-handle"), (None, None)]


# --- 4. an unmerge that lost a race is retried -----------------------------------------


def test_an_unmerge_that_lost_a_race_to_a_moved_deal_is_retried(
    funnel: Funnel, clock: ManualClock
) -> None:
    leads = [
        funnel.add(Lead(first_name="A", email=f"a{n}@x.example.com", status="raw")) for n in (1, 2)
    ]
    deals = []
    for lead in leads:
        funnel.qualify(lead, force=True)
        deals.append(funnel.set_appointment(lead, appointment_at=T0 + timedelta(days=3)))
    funnel.merge(deals[0].contact_id, deals[1].contact_id)
    repository = funnel.repository
    commit = repository.commit
    moved = T0 + timedelta(days=4)

    def first_loses(changes: ChangeSet) -> list[Event]:
        if changes.remove_merge is not None:
            tries.append(changes)
            if len(tries) == 1:
                # Another request reschedules a deal the merge moved, just before the
                # unmerge's commit: the deal it read is stale.
                Funnel(repository, clock=clock).reschedule(deals[1].id, appointment_at=moved)
        return commit(changes)

    tries: list[ChangeSet] = []
    repository.commit = first_loses  # type: ignore[method-assign]
    try:
        funnel.unmerge(deals[0].contact_id)
    finally:
        repository.commit = commit  # type: ignore[method-assign]
    assert len(tries) == 2
    back = funnel.get_opportunity(deals[1].id)
    assert (back.contact_id, back.appointment_at) == (deals[1].contact_id, moved)


# --- 5. nothing to undo -------------------------------------------------------------------


def test_an_unmerge_with_no_merge_to_undo_says_so(funnel: Funnel) -> None:
    a = funnel.add(Lead(first_name="A", email="a@x.example.com"))
    b = funnel.add(Lead(first_name="B", email="b@x.example.com"))

    def refused(call: Callable[[], Any]) -> str:
        with pytest.raises(NotFoundError) as err:
            call()
        assert isinstance(err.value, LookupError)
        assert err.value.id == a.id
        return str(err.value)

    never = refused(lambda: funnel.unmerge(a))
    assert never.startswith(f"lead {a.id} has no merge to undo")
    assert "check the id" not in never
    assert f"funnel.history({a.id})" in never
    funnel.merge(a, b)
    funnel.unmerge(a)
    assert refused(lambda: funnel.unmerge(a)) == never  # undone already
