"""Erasure and merge snapshots (DESIGN.md section 13), on every backend in ``conftest``.

A merge log keeps both records as they were before the merge. When the person is
erased, every personal field of both snapshots goes, whatever it holds: the merged-away
record's names, notes or city need not match anything the kept record has.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest

from conftest import T0
from leadfunnel import (
    AvoidListedError,
    Contact,
    Funnel,
    InvalidArgumentError,
    Lead,
    NotFoundError,
    PolicyError,
    SqlRepository,
)
from leadfunnel.testing import ManualClock

#: Only the merged-away badge holds these (no e-mail, no phone), and the merge takes
#: none of them: the kept record has every one of these fields already.
BADGE = {
    "first_name": "Bobby",
    "last_name": "Jonez",
    "title": "Boss",
    "city": "Dallasville",
    "postal_code": "75001",
    "notes": "BSECRET nickname",
    "company": "Jonez Widgets",
}
KEPT = {
    "first_name": "Robert",
    "last_name": "Jones",
    "email": "rj@acme.example.com",
    "title": "CEO",
    "city": "Austin",
    "postal_code": "78701",
    "notes": "anote",
    "company": "Acme",
}


def merged_and_erased(funnel: Funnel) -> Lead:
    keep = funnel.add(Lead(**KEPT))
    badge = funnel.add(Lead(**BADGE))
    funnel.merge(keep, badge)
    funnel.erase(keep)
    return keep


def found(text: str, values: dict[str, str]) -> list[str]:
    return [v for v in values.values() if v.casefold() in text.casefold()]


def test_the_merged_away_snapshot_is_scrubbed_of_every_personal_field(funnel: Funnel) -> None:
    keep = merged_and_erased(funnel)
    (log,) = funnel.repository.merges_of([keep.id])
    for snapshot in (log.keep_before, log.other):
        for name in (*BADGE, *KEPT):
            assert getattr(snapshot, name) is None, name
    assert found(json.dumps(funnel.export_person(keep.id)), {**BADGE, **KEPT}) == []


def test_a_merged_away_key_and_its_values_go_with_a_contacts_erasure(funnel: Funnel) -> None:
    keep = funnel.add(
        Contact(first_name="Una", email="una@k.example.com", phone="+15125550165", city="Oslo")
    )
    other = funnel.add(Contact(first_name="Unity", city="Zanzibar", phone="+15125550166"))
    merged = funnel.merge(keep, other)
    # The merged-away phone edited off the kept contact: only the snapshot still has it.
    funnel.update(merged.model_copy(update={"other_phones": frozenset()}))
    funnel.erase(keep)
    exported = json.dumps(funnel.export_person(keep.id))
    assert found(exported, {"a": "Unity", "b": "Zanzibar", "c": "5125550166"}) == []
    with pytest.raises(AvoidListedError) as err:
        funnel.add(Lead(phone="(512) 555-0166"))
    assert err.value.existing_id == keep.id


def test_no_byte_of_a_merged_away_record_is_left_in_the_sqlite_files(tmp_path: Path) -> None:
    path = str(tmp_path / "snap.db")
    repository = SqlRepository(f"sqlite:///{path}")
    funnel = Funnel(repository, clock=ManualClock(T0))
    keep = funnel.add(Lead(**KEPT))
    badge = funnel.add(Lead(**BADGE))
    funnel.merge(keep, badge)

    def scan() -> list[str]:
        data = b"".join(Path(f).read_bytes() for f in glob.glob(path + "*"))
        return [v for v in (*BADGE.values(), *KEPT.values()) if v.encode() in data]

    repository.compact()
    assert set(scan()) == {*BADGE.values(), *KEPT.values()}  # the scan finds them before
    funnel.erase(keep)
    repository.compact()
    repository.close()
    assert scan() == []


@pytest.mark.parametrize("model", [Lead, Contact])
def test_a_chain_of_merges_is_erased_and_exported_whole(
    funnel: Funnel, model: type[Lead] | type[Contact]
) -> None:
    """B merged into A, then A into C: both merge logs are C's person (the logs of the
    records merged into a record merged into C too). Erasing C scrubbed only C's own
    log, and left B's name, e-mail, phone and notes in the A<-B snapshot; exporting C
    left that log out."""
    b = funnel.add(
        model(first_name="Bartholomew", email="bq@b.example.com", phone="+15125550111",
              notes="B's secret")
    )  # fmt: skip
    a = funnel.add(model(first_name="Al", email="al@a.example.com"))
    c = funnel.add(model(first_name="Cy", email="cy@c.example.com"))
    funnel.merge(a, b)
    funnel.merge(c, a)
    exported = funnel.export_person(c.id)
    assert [m["merged_away"]["id"] for m in exported["merges"]] == [str(b.id), str(a.id)]
    funnel.erase(c)
    for log in funnel.repository.merges_of([a.id, b.id, c.id]):
        left = json.dumps(
            [log.other.model_dump(mode="json"), log.keep_before.model_dump(mode="json")]
        )
        for personal in ("Bartholomew", "bq@b.example.com", "15125550111", "B's secret", "Al"):
            assert personal not in left, (log.keep_id, personal)
    with pytest.raises(AvoidListedError):  # B's keys were suppressed with the rest
        funnel.add(Lead(first_name="Again", email="bq@b.example.com"))


def test_an_avoided_persons_merge_cannot_be_undone(funnel: Funnel) -> None:
    """DESIGN 12: the keys an avoided person ever held, merged-away ones included, stay
    refused. Unmerging an avoided keeper brought the record merged into it back with
    its keys free: capturable, callable and importable again."""
    stop = funnel.avoid(funnel.add(Lead(first_name="Stop", email="stop@x.example.com")))
    twin = funnel.add(Lead(first_name="Twin", email="twin@x.example.com", phone="+15125550104"))
    funnel.merge(stop, twin)
    with pytest.raises(PolicyError, match="avoid list: its merge cannot be undone"):
        funnel.unmerge(stop)
    with pytest.raises(AvoidListedError):
        funnel.capture(Lead(email="twin@x.example.com"))
    report = funnel.import_leads([{"phone": "+15125550104", "first_name": "x"}])
    assert (len(report.added), len(report.avoided)) == (0, 1)


def test_reading_or_acting_on_a_merged_away_id_names_the_record_that_holds_it(
    funnel: Funnel,
) -> None:
    keep = funnel.add(Lead(first_name="Keep", email="keep@x.example.com"))
    gone = funnel.add(Lead(first_name="Gone", email="gone@x.example.com"))
    funnel.merge(keep, gone)
    for call in (
        lambda: funnel.get(gone.id),
        lambda: funnel.get_lead(gone.id),
        lambda: funnel.touch(gone.id, "email", "no_answer"),
        lambda: funnel.unmerge(gone.id),
    ):
        with pytest.raises(NotFoundError, match=f"was merged into {keep.id}.*pass {keep.id}"):
            call()


def test_a_merge_whose_moved_deal_closed_since_cannot_be_undone(funnel: Funnel) -> None:
    """The deal a merge moved to the kept contact is won afterwards: unmerging gave it
    back to the other contact restored as a prospect, a person who paid but is no
    client (a deal lost as unqualified the same). Refused, nothing changed."""
    keep = funnel.add(Contact(first_name="Keep", email="keep@x.example.com"))
    own = funnel.set_appointment(keep)
    funnel.win(funnel.propose(funnel.sit(own)), amount=100, force=True)  # a client already
    other = funnel.add(Contact(first_name="Other", email="other@x.example.com"))
    deal = funnel.set_appointment(other)
    funnel.merge(keep, other)
    won = funnel.win(funnel.propose(funnel.sit(deal)), amount=5000, force=True)
    before = funnel.get_contact(keep.id)
    with pytest.raises(InvalidArgumentError, match=f"the deal {deal.id} that this merge"):
        funnel.unmerge(keep)
    assert funnel.get_contact(keep.id) == before
    assert funnel.get_opportunity(deal.id) == won


def test_similar_does_not_suggest_a_lead_that_is_one_person_with_it_already(
    funnel: Funnel,
) -> None:
    """Two converted people whose contacts were merged are one person: neither lead is
    suggested as a duplicate of the other (merge refuses them: converted)."""
    one = funnel.add(Lead(first_name="Dana", last_name="Whitfield", email="d@one.example.com"))
    two = funnel.add(Lead(first_name="Dana", last_name="Whitfield", email="d@two.example.com"))
    first = funnel.set_appointment(one, force=True).contact_id
    second = funnel.set_appointment(two, force=True).contact_id
    # Before the merge: two people; the other's contact is shown (its converted lead
    # is that contact now).
    assert [r.id for r in funnel.similar(one)] == [second]
    funnel.merge(first, second)
    assert funnel.similar(one) == []
    assert funnel.similar(two) == []
