"""A change dated by the funnel clock that another writer's change overtakes between
the clock's reading and the change's commit (a concurrency audit): it used to be
stored dated before what it follows (a deal lost before it was sat, a touch of a person
before the person came to be), because a move dated at or after the clock's reading
was let through as if what it followed were dated ahead of the clock. It is dated by
the clock again instead; a change given its own ``at=`` is refused as before."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from conftest import T0, person
from leadfunnel import (
    Contact,
    Funnel,
    InvalidArgumentError,
    Lead,
    LeadStatus,
    Opportunity,
    Repository,
)
from leadfunnel.testing import ManualClock

HALF_PAST = T0 + timedelta(minutes=30)
ONE = T0 + timedelta(hours=1)
TWO = T0 + timedelta(hours=2)


class _Overtaken:
    """A clock overtaken once :meth:`overtaken_by` is called: after ``skip`` readings
    (which answer ``T0``), each of its next readings runs one of ``changes`` (another
    writer's, as if this thread were paused right after reading the clock) and answers
    ``HALF_PAST``; every reading after those answers ``TWO``."""

    def __init__(self) -> None:
        self._changes: list[Callable[[], object]] = []
        self._skip = 0
        self._overtaken = False

    def overtaken_by(self, *changes: Callable[[], object], skip: int = 0) -> None:
        self._changes, self._skip = list(changes), skip

    def now(self) -> datetime:
        if self._skip or not (self._changes or self._overtaken):
            self._skip = max(self._skip - 1, 0)
            return T0
        if not self._changes:
            return TWO
        self._changes.pop(0)()
        self._overtaken = True
        return HALF_PAST


def _overtaken(repository: Repository, *changes: Callable[[], object], skip: int = 0) -> Funnel:
    """A funnel whose clock ``changes`` overtake after ``skip`` more readings."""
    clock = _Overtaken()
    funnel = Funnel(repository, clock=clock)
    clock.overtaken_by(*changes, skip=skip)
    return funnel


def _sat_meanwhile(repository: Repository, funnel: Funnel) -> tuple[Funnel, Opportunity]:
    """A booked deal, and a funnel whose next clock reading another writer's sit of
    that deal (at ``ONE``) overtakes."""
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    other = Funnel(repository, clock=ManualClock(ONE))
    return _overtaken(repository, lambda: other.sit(deal)), deal


def test_a_move_overtaken_after_reading_the_clock_is_dated_after_what_it_follows(
    repository: Repository, funnel: Funnel
) -> None:
    late, deal = _sat_meanwhile(repository, funnel)
    lost = late.lose(deal, reason="no_decision")

    assert lost.closed_at == TWO
    names = [(e.name, e.at) for e in funnel.history(lost) if e.name in ("sit", "lose")]
    assert names == [("sit", ONE), ("lose", TWO)]


def test_a_move_given_its_own_date_before_what_overtook_it_is_refused(
    repository: Repository, funnel: Funnel
) -> None:
    late, deal = _sat_meanwhile(repository, funnel)
    with pytest.raises(InvalidArgumentError, match="before the opportunity's last change"):
        late.lose(deal, reason="no_decision", at=HALF_PAST)
    assert funnel.get_opportunity(deal.id).stage == "appointment_sat"


def test_a_touch_of_a_person_who_came_to_be_after_the_clock_was_read_is_dated_after(
    repository: Repository, funnel: Funnel
) -> None:
    newcomer = Lead(**person(2))
    other = Funnel(repository, clock=ManualClock(ONE))
    late = _overtaken(repository, lambda: other.add(newcomer))
    touch = late.touch(newcomer.id, "call", "no_answer")

    assert touch.at == TWO
    assert [t.at for t in funnel.touches(newcomer.id)] == [TWO]


def test_a_change_dated_ahead_of_the_clock_still_holds_back_no_move_made_now(
    repository: Repository, funnel: Funnel
) -> None:
    """What the check that was too wide is for (an ``at=`` ahead of the clock: a typo,
    a simulation) still holds: the clock, read again, is still before it."""
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    ahead = T0 + timedelta(days=400)
    funnel.sit(deal, at=ahead)
    lost = Funnel(repository, clock=ManualClock(HALF_PAST)).lose(deal, reason="no_decision")
    assert lost.stage == "lost"
    (event,) = [e for e in funnel.history(lost) if e.name == "lose"]
    assert event.at == HALF_PAST


def test_a_booking_of_a_contact_who_came_to_be_after_the_clock_was_read_is_dated_after(
    repository: Repository, funnel: Funnel
) -> None:
    newcomer = Contact(first_name="Al", email="al@example.com")
    other = Funnel(repository, clock=ManualClock(ONE))
    late = _overtaken(repository, lambda: other.add(newcomer))
    deal = late.set_appointment(newcomer.id)
    assert deal.created_at == TWO


def test_an_imported_avoid_overtaken_after_reading_the_clock_is_dated_after(
    repository: Repository, funnel: Funnel
) -> None:
    """The import reads the clock when it starts, and again for its avoid rows: once
    for them all, and once for each of those whose commit lost a race. An edit of the
    person right after that last reading used to leave the avoid dated before it."""
    ann = funnel.add(Lead(**person(1)))
    other = Funnel(repository, clock=ManualClock(ONE))

    def edit() -> None:
        other.update(other.get_lead(ann.id).model_copy(update={"notes": "called"}))

    late = _overtaken(repository, edit, edit, skip=1)
    report = late.import_leads([{"email": ann.email, "status": "avoid"}])

    assert [issue.row for issue in report.avoided] == [1]
    assert funnel.get_lead(ann.id).status is LeadStatus.AVOID
    (avoid,) = [e for e in funnel.history(ann) if e.name == "avoid"]
    assert avoid.at == TWO


# --- a second review: capture, merge and unmerge --------------------------------------


def test_a_capture_of_a_person_stored_after_the_clock_was_read_is_dated_after(
    repository: Repository, funnel: Funnel
) -> None:
    """A form sent twice: the other request stores the person after this one read the
    clock; this capture's event came first in the person's history, before anybody."""
    other = Funnel(repository, clock=ManualClock(ONE))
    late = _overtaken(repository, lambda: other.capture(Lead(**person(1), notes="first")))
    got = late.capture_result(Lead(**person(1), notes="second"))

    assert not got.new
    assert [(e.name, e.at) for e in funnel.history(got.record)] == [
        ("capture", ONE),
        ("capture", TWO),
    ]
    # Given its own date before the person was stored (forms processed out of order),
    # taken: the person's own inquiry says they were there.
    past = Funnel(repository, clock=ManualClock(TWO)).capture(Lead(**person(1)), at=HALF_PAST)
    assert past.id == got.record.id


def test_a_merge_overtaken_by_the_record_it_merges_is_dated_after_it(
    repository: Repository, funnel: Funnel
) -> None:
    keep = funnel.add(Lead(**person(1)))
    newcomer = Lead(**person(2))
    other = Funnel(repository, clock=ManualClock(ONE))
    merged = _overtaken(repository, lambda: other.add(newcomer)).merge(keep, newcomer.id)

    assert merged.updated_at == TWO
    assert [(e.name, e.at) for e in funnel.history(keep)][-1] == ("merge", TWO)

    late = funnel.add(Lead(**person(3)), at=ONE)
    # Given its own date before the record it merges changed (by a clock past it), refused.
    with pytest.raises(InvalidArgumentError, match="a merge is dated at or after what it merges"):
        Funnel(repository, clock=ManualClock(TWO)).merge(keep, late, at=HALF_PAST)


def _merged_contacts(funnel: Funnel) -> tuple[Contact, Opportunity]:
    """Two contacts, each with a deal, the second merged into the first: the first, and
    the deal the unmerge gives back."""
    booked = []
    for n in (1, 2):
        lead = funnel.add(Lead(**person(n)))
        funnel.qualify(lead, force=True)
        booked.append(funnel.set_appointment(lead))
    kept = funnel.get_contact(booked[0].contact_id)
    funnel.merge(kept, funnel.get_contact(booked[1].contact_id))
    return funnel.get_contact(kept.id), booked[1]


def test_an_unmerge_overtaken_by_a_change_of_a_deal_it_gives_back_is_dated_after_it(
    repository: Repository, funnel: Funnel
) -> None:
    kept, deal = _merged_contacts(funnel)
    other = Funnel(repository, clock=ManualClock(ONE))
    _overtaken(repository, lambda: other.sit(deal.id)).unmerge(kept)

    given_back = funnel.get_opportunity(deal.id)
    assert given_back.updated_at == TWO  # never back before the sit
    # So a move dated between the sit and the unmerge is refused (by a clock past both).
    past_both = Funnel(repository, clock=ManualClock(TWO + timedelta(hours=1)))
    with pytest.raises(InvalidArgumentError, match="before the opportunity's last change"):
        past_both.lose(deal.id, reason="no_decision", at=T0 + timedelta(minutes=45))


def test_an_unmerge_given_a_date_before_a_change_of_a_deal_it_gives_back_is_refused(
    repository: Repository, funnel: Funnel
) -> None:
    kept, deal = _merged_contacts(funnel)
    funnel.sit(deal.id, at=ONE)
    later = Funnel(repository, clock=ManualClock(TWO))  # (the sit is not ahead of its clock)
    with pytest.raises(InvalidArgumentError, match=f"last change of deal {deal.id}"):
        later.unmerge(kept, at=HALF_PAST)
    assert funnel.unmerge(kept, at=TWO).id == kept.id


def test_an_unmerge_never_comes_before_the_merge_it_undoes_even_one_ahead_of_the_clock(
    funnel: Funnel,
) -> None:
    """The first review's fix let the check through for a merge dated ahead of the
    clock, as for a move: the unmerge then came first in history, the restored record's
    ``updated_at`` went back."""
    a, b = funnel.add(Lead(**person(1))), funnel.add(Lead(**person(2)))
    funnel.merge(a, b, at=T0 + timedelta(days=400))
    with pytest.raises(InvalidArgumentError, match="an unmerge is dated at or after its merge"):
        funnel.unmerge(a)


def test_an_unmerge_follows_a_change_dated_ahead_of_the_clock_from_before_its_merge(
    funnel: Funnel,
) -> None:
    """A third review: a record edited ``at=`` 2062 by mistake, then merged into by the
    clock, could not be unmerged until 2062 (the check was against the record's last
    change, not the merge's date)."""
    a, b = funnel.add(Lead(**person(1))), funnel.add(Lead(**person(2)))
    funnel.update(a.model_copy(update={"notes": "typo"}), at=T0 + timedelta(days=13000))
    funnel.merge(a, b)
    restored = funnel.unmerge(a)
    assert restored.updated_at == T0 + timedelta(days=13000)  # never back


def test_a_touch_counts_the_records_merged_into_the_lead_a_contact_was_converted_from(
    funnel: Funnel,
) -> None:
    """A third review: the person behind a contact is as old as the oldest record
    merged into the lead it was converted from (docs/api.md), not that lead's own
    creation."""
    older = funnel.add(Lead(**person(2)), at=T0 - timedelta(hours=2))
    lead = funnel.add(Lead(**person(1)))
    funnel.merge(lead, older)
    funnel.qualify(lead, force=True)
    contact_id = funnel.set_appointment(lead).contact_id
    assert contact_id is not None
    touch = funnel.touch(contact_id, "call", "no_answer", at=T0 - timedelta(hours=1))
    assert touch.at == T0 - timedelta(hours=1)


# --- a fourth review: what a merge moves, what an unmerge re-points ---------------------


def test_a_merge_is_dated_at_or_after_the_touches_and_deals_of_what_it_merges(
    funnel: Funnel,
) -> None:
    """A touch or a booking changes no ``updated_at``: a merge dated between them and
    the absorbed record's last edit was taken, and keep's history read the absorbed
    person's touch after the merge that removed them."""
    keep = funnel.add(Lead(**person(1)))
    gone = funnel.add(Lead(**person(2)))
    funnel.touch(gone, "call", "no_answer", at=T0 + timedelta(hours=4))
    later = Funnel(funnel.repository, clock=ManualClock(T0 + timedelta(hours=6)))
    with pytest.raises(InvalidArgumentError, match="or of what it holds"):
        later.merge(keep, gone, at=T0 + timedelta(hours=2))
    assert later.merge(keep, gone, at=T0 + timedelta(hours=5)).id == keep.id


def test_an_unmerge_is_dated_at_or_after_a_deal_booked_on_the_kept_record_since(
    funnel: Funnel,
) -> None:
    """A contact without a lead takes the lead of the contact merged into it; a deal
    booked on it since takes that lead too, and the unmerge gives it back its own:
    dated before its booking, the deal's history read the unmerge first."""
    kept = funnel.add(Contact(first_name="Al", email="al@keep.example.com"))
    lead = funnel.add(Lead(**person(2)))
    funnel.qualify(lead, force=True)
    booked = funnel.set_appointment(lead)
    assert booked.contact_id is not None
    funnel.merge(kept, funnel.get_contact(booked.contact_id), at=T0 + timedelta(hours=1))
    later = Funnel(funnel.repository, clock=ManualClock(T0 + timedelta(hours=6)))
    later.set_appointment(kept, at=T0 + timedelta(hours=3))
    with pytest.raises(InvalidArgumentError, match="the deals and leads it gives back"):
        later.unmerge(kept, at=T0 + timedelta(hours=2))
    assert later.unmerge(kept, at=T0 + timedelta(hours=4)).id == kept.id


# --- a fifth review -------------------------------------------------------------------


def test_a_merge_overtaken_is_dated_again_even_if_what_it_merges_holds_a_date_ahead(
    repository: Repository, funnel: Funnel
) -> None:
    """The merge checked only the latest of what it moves: a touch dated ahead of the
    clock let everything through, an edit that overtook the merge included."""
    keep, gone = funnel.add(Lead(**person(1))), funnel.add(Lead(**person(2)))
    funnel.touch(gone, "call", "no_answer", at=T0 + timedelta(days=400))
    other = Funnel(repository, clock=ManualClock(ONE))

    def edit() -> None:
        other.update(other.get_lead(gone.id).model_copy(update={"notes": "called"}))

    _overtaken(repository, edit).merge(keep, gone)
    (merge,) = [e for e in funnel.history(keep) if e.name == "merge"]
    assert merge.at == TWO


def test_a_merge_and_an_unmerge_are_dated_at_or_after_the_leads_they_re_point(
    repository: Repository, funnel: Funnel
) -> None:
    contacts = []
    for n in (1, 2):
        lead = funnel.add(Lead(**person(n)))
        funnel.qualify(lead, force=True)
        contacts.append(funnel.get_contact(funnel.set_appointment(lead).contact_id))
    first, second = contacts
    assert second.lead_id is not None
    later = Funnel(repository, clock=ManualClock(T0 + timedelta(hours=10)))
    converted = later.get_lead(second.lead_id)
    later.update(converted.model_copy(update={"notes": "x"}), at=T0 + timedelta(hours=5))
    with pytest.raises(InvalidArgumentError, match="a merge is dated at or after"):
        later.merge(first, second, at=T0 + timedelta(hours=3))
    later.merge(first, second, at=T0 + timedelta(hours=6))
    then = T0 + timedelta(hours=8)
    later.update(later.get_lead(second.lead_id).model_copy(update={"notes": "y"}), at=then)
    with pytest.raises(InvalidArgumentError, match="the deals and leads it gives back"):
        later.unmerge(first, at=T0 + timedelta(hours=7))
