"""``funnel.import_leads`` for migrations: creation dates, contacts, carried-over
statuses, and rows the store refuses alone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from conftest import T0, person
from leadfunnel import (
    ChangeSet,
    Contact,
    Event,
    Funnel,
    ImportReport,
    InMemoryRepository,
    Lead,
    PolicyError,
    SqlRepository,
    StorageError,
)
from leadfunnel.testing import ManualClock

MARCH = datetime(2024, 3, 5, 14, 22, tzinfo=UTC)


def history(funnel: Funnel, subject: Any) -> list[tuple[str, str | None, str | None, datetime]]:
    return [(e.name, e.source, e.dest, e.at) for e in funnel.history(subject)]


def test_a_row_s_creation_date_dates_the_record_and_its_history(funnel: Funnel) -> None:
    report = funnel.import_leads(
        [
            person(1, created_at=MARCH),
            person(2, created_at="2024-02-10T08:15:00.000Z"),
            person(3),  # no date: the import's
        ],
        actor="migration",
    )
    one, two, three = (funnel.get_lead(i) for i in report.added)
    assert (one.created_at, one.updated_at, one.status_at) == (MARCH, MARCH, MARCH)
    assert history(funnel, one) == [("import", None, "raw", MARCH)]
    assert funnel.history(one)[0].actor == "migration"
    assert two.created_at == datetime(2024, 2, 10, 8, 15, tzinfo=UTC)
    assert funnel.history(two)[0].at == two.created_at
    assert three.created_at == three.status_at == T0
    since, until = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)
    assert funnel.report(since=since, until=until).steps["raw"].count == 1
    assert funnel.report(by="month").groups["2024-02"].steps["raw"].count == 1
    assert [x.id for x in funnel.leads(created_since=since, created_until=until)] == [one.id]


def test_a_lead_object_keeps_a_creation_date_it_was_given(funnel: Funnel) -> None:
    dated, undated = Lead(**person(1), created_at=MARCH), Lead(**person(2))
    report = funnel.import_leads([dated, undated])
    assert report.added == [dated.id, undated.id]
    assert funnel.get_lead(dated.id).created_at == MARCH
    assert funnel.get_lead(undated.id).created_at == T0  # its default "now" was no choice


def test_a_creation_date_without_a_zone_or_in_the_future_is_refused(funnel: Funnel) -> None:
    report = funnel.import_leads(
        [
            person(1, created_at=datetime(2024, 3, 5, 14, 22)),
            person(2, created_at=T0 + timedelta(hours=1)),
            person(3, created_at=T0),
        ]
    )
    assert [(i.row, i.reason) for i in report.rejected] == [
        (1, "created_at: Input should have timezone info"),
        (
            2,
            "created_at: 2026-03-02T10:00:00+00:00 is later than the import "
            "(2026-03-02T09:00:00+00:00); check the date, and the zone its time was read "
            "in (leadfunnel import --timezone)",
        ),
    ]
    assert len(report.added) == 1


def test_rows_with_a_type_become_contacts(funnel: Funnel) -> None:
    report = funnel.import_leads(
        [
            person(1, type="client", created_at=MARCH),
            person(2),
            Contact(**person(3), type="prospect"),
            person(4, type="client", email=person(2)["email"]),  # the same person as row 2
            person(5, type=""),  # blank: a lead
        ],
        status="suspect",  # for lead rows only
    )
    assert str(report) == "4 added (2 as contacts), 1 duplicates, 0 avoided, 0 rejected"
    client, lead, prospect, blank = report.added
    assert report.contacts == [client, prospect]
    assert funnel.get_contact(client).type == "client"
    assert funnel.get_contact(client).created_at == MARCH
    assert history(funnel, client) == [("import", None, "client", MARCH)]
    assert funnel.get_contact(prospect).type == "prospect"
    assert funnel.get_lead(lead).status == funnel.get_lead(blank).status == "suspect"
    assert report.duplicates[0].existing_id == lead
    assert funnel.due(at=T0 + timedelta(days=1)) != []  # the prospect is followed up
    assert client not in {item.subject_id for item in funnel.due(at=T0 + timedelta(days=30))}


def test_a_contact_matching_the_avoid_list_is_avoided(funnel: Funnel) -> None:
    avoided = funnel.import_leads([person(1, status="avoid")]).added[0]
    report = funnel.import_leads([person(2, type="client", phone=None, email=person(1)["email"])])
    assert [(i.row, i.existing_id) for i in report.avoided] == [(1, avoided)]


def test_an_imported_avoid_list_avoids_the_people_it_names_that_are_stored(
    funnel: Funnel,
) -> None:
    """A do-not-contact list imported with status avoid puts the people already stored
    on the avoid list (their contact and open deals too, as avoid() does), instead of
    calling them duplicates and leaving them callable; new people are added avoided."""
    lead = funnel.add(Lead(**person(1)))
    converted = funnel.add(Lead(**person(2)))
    funnel.qualify(converted, force=True)
    deal = funnel.set_appointment(converted)
    listed = [
        {"email": lead.email},
        {"email": person(2)["email"].upper()},  # the contact it became holds the key now
        {"email": "new@dnc.example.com"},
        {"email": "new@dnc.example.com"},  # twice in the file
        {"email": "not an e-mail"},
    ]
    report = funnel.import_leads(listed, status="avoid", actor="compliance")
    assert [(i.row, i.existing_id) for i in report.avoided] == [
        (1, lead.id),
        (2, deal.contact_id),
        (4, report.added[0]),
    ]
    assert "now on the avoid list" in report.avoided[0].reason
    assert (len(report.added), report.duplicates, len(report.rejected)) == (1, [], 1)
    assert funnel.get_lead(lead.id).status == "avoid"
    assert funnel.get_contact(deal.contact_id).type == "avoid"
    assert funnel.get_opportunity(deal.id).stage == "lost"
    assert funnel.history(lead)[-1].actor == "compliance"
    # A row that is not avoided still only names a duplicate.
    again = funnel.import_leads([{"email": "someone@else.example.com"}])
    repeat = funnel.import_leads([{"email": "someone@else.example.com"}])
    assert [i.existing_id for i in repeat.duplicates] == again.added


def test_a_duplicate_row_s_opt_outs_are_added_to_the_person_stored(funnel: Funnel) -> None:
    """Next week's export, where someone has unsubscribed, is a duplicate of what is
    stored: the row is not stored, but its opt-outs are (never taken away), on the lead
    or on the contact a converted lead became, with an ``update`` event; so is a repeat
    within one file. Erased and avoided people get nothing more."""
    lead = funnel.add(Lead(**person(1)))
    converted = funnel.add(Lead(**person(2), opt_outs={"sms"}))
    funnel.qualify(converted, force=True)
    contact = funnel.get_contact(funnel.set_appointment(converted).contact_id)
    avoided = funnel.avoid(funnel.add(Lead(**person(3))))
    report = funnel.import_leads(
        [
            {"email": str(lead.email).upper(), "opt_outs": ["email", "call"]},
            {"email": person(2)["email"], "opt_outs": ["call"]},  # held by the contact now
            {"email": person(3)["email"], "opt_outs": ["email"]},
            {"email": "new@x.example.com"},
            {"email": "new@x.example.com", "opt_outs": ["sms"]},  # a repeat in the file
            {"email": lead.email, "opt_outs": []},  # says nothing: takes nothing back
        ],
        actor="sync",
    )
    assert [(i.row, i.existing_id) for i in report.duplicates] == [
        (1, lead.id),
        (2, contact.id),
        (5, report.added[0]),
        (6, lead.id),
    ]
    assert [i.row for i in report.avoided] == [3]
    assert report.duplicates[0].reason.endswith("its opt-outs (call, email) were added to it")
    assert "opt-outs" not in report.duplicates[3].reason
    assert funnel.get_lead(lead.id).opt_outs == {"email", "call"}
    assert funnel.get_contact(contact.id).opt_outs == {"sms", "call"}
    assert funnel.get_lead(converted.id).opt_outs == {"sms"}  # the key's holder gets it
    assert funnel.get_lead(report.added[0]).opt_outs == {"sms"}
    assert funnel.get_lead(avoided.id).opt_outs == set()
    last = funnel.history(lead)[-1]
    assert (last.name, last.actor, last.data) == ("update", "sync", {"fields": ["opt_outs"]})
    assert funnel.get_lead(lead.id).version == lead.version + 1
    # The same rows again: nothing left to add, nothing written.
    again = funnel.import_leads([{"email": lead.email, "opt_outs": ["email"]}])
    assert "opt-outs" not in again.duplicates[0].reason
    assert funnel.get_lead(lead.id).version == lead.version + 1
    with pytest.raises(PolicyError):
        funnel.touch(lead, "call", "no_answer")


def test_an_erased_person_s_duplicate_row_adds_no_opt_outs(funnel: Funnel) -> None:
    lead = funnel.add(Lead(**person(1)))
    funnel.erase(lead, suppress=False)
    report = funnel.import_leads([{"email": lead.email, "opt_outs": ["email"]}])
    assert len(report.added) == 1  # an erased person holds no keys: a new lead
    assert funnel.get_lead(report.added[0]).opt_outs == {"email"}


def test_carried_over_statuses_show_the_steps_the_lead_took(funnel: Funnel) -> None:
    rows = [
        person(1, status="qualified", created_at=MARCH),
        person(2, status="unqualified", created_at=MARCH),
        person(3, status="converted"),
    ]
    refused = funnel.import_leads(rows[:2])
    assert [i.row for i in refused.rejected] == [1, 2]
    assert "pass carry_over=True" in refused.rejected[0].reason

    report = funnel.import_leads(rows, carry_over=True)
    qualified, unqualified = (funnel.get_lead(i) for i in report.added)
    assert qualified.status == "qualified"
    assert "sweet-spot" in qualified.tags  # as every qualified lead is
    assert qualified.status_at == MARCH
    assert history(funnel, qualified) == [
        ("import", None, "raw", MARCH),
        ("import", "raw", "qualified", MARCH),
    ]
    assert unqualified.status == "unqualified"
    assert report.rejected[0].reason.startswith("status: 'converted' cannot be imported")
    steps = funnel.report().steps
    assert (steps["raw"].count, steps["qualified"].count) == (2, 1)
    assert funnel.report().checks["unqualified_share"].value == 0.5
    assert [item.id for item in funnel.rep_list("never_booked", at=T0)] == [qualified.id]


class Refusing(InMemoryRepository):
    """A store that refuses any change holding a lead called "Poison", as a database
    refuses a value it cannot hold; or, once ``down``, fails at everything."""

    def __init__(self) -> None:
        super().__init__()
        self.commits = 0
        self.down_after: int | None = None

    def commit(self, changes: ChangeSet) -> list[Event]:
        self.commits += 1
        if self.down_after is not None and self.commits > self.down_after:
            raise StorageError("the database failed: server closed the connection")
        if any(getattr(r, "first_name", None) == "Poison" for r in changes.inserts):
            raise StorageError(
                "the database refused a value: too long for type varchar(200)", of_value=True
            )
        return super().commit(changes)

    def get_many(self, ids: Iterable[UUID]) -> Any:
        if self.down_after is not None and self.commits > self.down_after:
            raise StorageError("the database failed: server closed the connection")
        return super().get_many(ids)


def test_a_row_the_store_refuses_is_rejected_alone() -> None:
    repository = Refusing()
    funnel = Funnel(repository, clock=ManualClock(T0))
    rows = [person(n, first_name="Poison" if n in (37, 90) else f"P{n}") for n in range(100)]
    report = funnel.import_leads(rows, chunk_size=64)
    assert [i.row for i in report.rejected] == [38, 91]
    assert report.rejected[0].reason == (
        "the store refused this row: the database refused a value: too long for type varchar(200)"
    )
    assert len(report.added) == 98
    assert {x.id for x in funnel.leads()} == set(report.added)
    # Found by halving, not by a commit per row: 2 chunks, about 2 log2(64) for each.
    assert repository.commits <= 2 + 2 * 2 * 6


def test_a_store_that_stops_answering_stops_the_import_with_what_was_stored() -> None:
    repository = Refusing()
    repository.down_after = 2
    funnel = Funnel(repository, clock=ManualClock(T0))
    seen: list[tuple[int, int]] = []

    def progress(report: ImportReport) -> None:
        seen.append((report.total, len(report.added)))

    with pytest.raises(StorageError, match="server closed the connection"):
        funnel.import_leads([person(n) for n in range(50)], chunk_size=20, on_progress=progress)
    assert seen == [(20, 20), (40, 40), (40, 40)]  # the last one: on the way out
    assert len(funnel.leads()) == 40
    assert repository.commits == 3  # the failing chunk, once: no row blamed


def test_a_person_another_writer_stored_meanwhile_is_a_duplicate_alone() -> None:
    class Racing(InMemoryRepository):
        def find_keys(self, keys: Iterable[str]) -> dict[str, UUID]:
            return {}  # as if read before the other writer committed

    funnel = Funnel(Racing(), clock=ManualClock(T0))
    other = funnel.add(Lead(**person(5)))
    report = funnel.import_leads([person(n) for n in range(10)])
    assert [(i.row, i.existing_id) for i in report.duplicates] == [(6, other.id)]
    assert len(report.added) == 9
    # Its opt-outs too are the stored person's, as for a duplicate found stored (two
    # imports racing lost them).
    again = funnel.import_leads([person(5, opt_outs=["email"])])
    assert again.duplicates[0].reason.endswith("its opt-outs (email) were added to it")
    assert funnel.get_lead(other.id).opt_outs == {"email"}


def test_a_real_database_error_on_one_row_fails_neither_its_chunk_nor_the_import(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    funnel = Funnel(SqlRepository(url), clock=ManualClock(T0))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON lf_leads WHEN NEW.doc LIKE '%poison@%' "
            "BEGIN SELECT RAISE(ABORT, 'this database refuses poison'); END"
        )
    engine.dispose()
    rows = [person(n) for n in range(30)]
    rows[12]["email"] = "poison@x.example.com"
    report = funnel.import_leads(rows, chunk_size=10)
    assert [i.row for i in report.rejected] == [13]
    assert "this database refuses poison" in report.rejected[0].reason
    assert len(report.added) == 29
    assert len(funnel.leads()) == 29


def test_a_store_that_cannot_write_stops_the_import_rather_than_reject_every_row(
    tmp_path: Path,
) -> None:
    """A read-only database refuses every write: the import raises the store's error (the
    command line: one line, status 2) instead of reporting each row rejected, after
    isolating them one by one, and exiting as if the file were at fault."""
    path = tmp_path / "f.db"
    writable = SqlRepository(f"sqlite:///{path}")
    Funnel(writable).add(Lead(**person(1)))
    writable.close()
    read_only = SqlRepository(sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true"))
    try:
        with pytest.raises(StorageError, match="readonly database") as err:
            Funnel(read_only).import_leads([person(n) for n in range(2, 40)])
        assert not err.value.of_value
        assert len(read_only.leads()) == 1
    finally:
        read_only.close()


def test_a_change_an_import_makes_to_a_stored_person_is_dated_when_it_is_made(
    funnel: Funnel, clock: ManualClock
) -> None:
    """New records are dated with the import; adding a duplicate row's opt-outs to a
    person stored before is dated when it is done, after an edit the application
    committed meanwhile (dated with the import's start, it came first in history)."""
    stored = funnel.add(Lead(**person(1)))
    start = clock.advance(minutes=1)

    def app_edits(report: ImportReport) -> None:
        if len(report.added) == 1:  # after the first chunk: the app edits the person
            clock.advance(minutes=5)
            funnel.update(funnel.get_lead(stored.id).model_copy(update={"notes": "x"}))

    report = funnel.import_leads(
        [person(2), {"email": stored.email, "opt_outs": ["sms"]}],
        chunk_size=1,
        on_progress=app_edits,
    )
    assert funnel.get_lead(report.added[0]).created_at == start
    edit, opted = funnel.history(stored)[-2:]
    assert (edit.name, opted.name, opted.data) == ("update", "update", {"fields": ["opt_outs"]})
    assert edit.at <= opted.at == funnel.get_lead(stored.id).updated_at
    assert edit.position < opted.position
