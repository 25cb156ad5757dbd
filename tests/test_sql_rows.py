"""What the SQL adapter writes for an update: ``changed_row`` against ``record_row``.

An update whose previous version the store read whole is written from the fields that
changed (``changed_row``) instead of the whole row (``record_row``): the two must never
disagree on a column, or a column would keep a stale value while the document moves on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from leadfunnel import (
    Contact,
    ContactType,
    Funnel,
    Lead,
    LeadStatus,
    LostReason,
    Opportunity,
    Profile,
    QualificationEngine,
    SqlRepository,
    Stage,
)
from leadfunnel._models import updated
from leadfunnel._sql import _repository as sql_repository
from leadfunnel._sql import _rows as rows
from leadfunnel._sql import _schema as schema
from leadfunnel.rules import Geography
from leadfunnel.testing import ManualClock, contacts, leads

_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_DEALS = [
    Opportunity(contact_id=uuid4(), owner="ana", amount="1200.50", appointment_at=_AT),
    Opportunity(
        contact_id=uuid4(),
        lead_id=uuid4(),
        owner="bo",
        setter="cy",
        stage="lost",
        lost_reason="price",
        lost_note="too dear",
        closed_at=_AT + timedelta(days=3),
    ),
    Opportunity(contact_id=uuid4(), stage="won", amount="99", closed_at=_AT),
]


def _records(kind: str) -> st.SearchStrategy[Any]:
    if kind == "lead":
        return leads()
    if kind == "contact":
        return contacts()
    return st.sampled_from(_DEALS)


#: Values of the fields the drawn records seldom vary (every lead drawn is unassigned,
#: most are raw): each a column of its own.
_OTHERS: dict[str, list[Any]] = {
    "status": list(LeadStatus),
    "status_at": [None, _AT, _AT + timedelta(microseconds=1)],
    "profile": [None, "us-smb", "msp-owner"],
    "contact_id": [None, uuid4()],
    "lead_id": [None, uuid4()],
    "erased_at": [None, _AT],
    "owner": [None, "ana", "bo"],
    "source": [None, "web", "Web"],
    "type": list(ContactType),
    "stage": list(Stage),
    "lost_reason": [None, *LostReason],
    "closed_at": [None, _AT],
    "appointment_at": [None, _AT],
    "setter": [None, "cy"],
    "version": [1, 2, 3],
    "updated_at": [_AT, _AT + timedelta(days=1)],
    "created_at": [_AT, _AT - timedelta(days=400)],
}


@settings(max_examples=400)
@given(st.data())
def test_the_columns_of_an_update_are_those_the_whole_row_changes(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["lead", "contact", "opportunity"]))
    before = data.draw(_records(kind), label="before")
    other = data.draw(_records(kind), label="other")
    fields = sorted(type(before).model_fields)
    names = data.draw(st.sets(st.sampled_from(fields)), label="names")
    changes = {name: getattr(other, name) for name in names}
    for name in data.draw(st.sets(st.sampled_from(sorted(set(fields) & set(_OTHERS))))):
        changes[name] = data.draw(st.sampled_from(_OTHERS[name]), label=name)
    names |= set(changes)
    after = updated(before, changes)
    partial = rows.changed_row(before, after)
    old, new = rows.record_row(before), rows.record_row(after)
    moved = {name for name in names if getattr(before, name) != getattr(after, name)}
    if moved & rows._DERIVED:
        assert partial is None  # the traits' keys or the opt-outs: the whole row
        return
    assert partial is not None
    differing = {column for column in new if column != "doc" and new[column] != old[column]}
    assert set(partial) - {"doc"} == differing
    assert ("doc" in partial) == bool(moved)
    for column, value in partial.items():
        assert value == new[column], column


def test_a_record_of_another_class_is_written_whole() -> None:
    class Mine(Lead):
        pass

    lead = Lead(last_name="Rivera")
    assert rows.changed_row(lead, Mine.model_validate(lead.model_dump())) is None


def test_plain_columns_are_fields_of_their_name() -> None:
    for kind, model in (("lead", Lead), ("contact", Contact), ("opportunity", Opportunity)):
        assert rows._PLAIN[kind] <= set(model.model_fields)
        assert not rows._PLAIN[kind] & rows._DERIVED


@pytest.fixture
def store(tmp_path: Any) -> SqlRepository:
    return SqlRepository(f"sqlite:///{tmp_path / 'rows.db'}")


def test_a_bulk_qualify_writes_its_moves_without_making_whole_rows(
    store: SqlRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = QualificationEngine([Profile("us", [Geography(countries=["US"], hard=True)])])
    funnel = Funnel(store, engine=engine, clock=ManualClock(_AT))
    people = [
        funnel.capture(Lead(last_name=f"R{i}", country="US" if i % 2 else "FR", source="web"))
        for i in range(6)
    ]
    made: list[Any] = []
    whole = rows.record_row

    def noted(record: Any) -> dict[str, Any]:
        made.append(record)
        return whole(record)

    monkeypatch.setattr(sql_repository, "record_row", noted)
    counts = funnel.qualify_all()
    assert counts["qualified"] == 3
    assert counts["unqualified"] == 3
    assert made == []  # each move written from what changed
    # ...and the columns say what the documents say.
    assert {lead.id for lead in funnel.leads(status=LeadStatus.QUALIFIED)} == {
        p.id for p in people if p.country == "US"
    }
    with store._engine.connect() as conn:
        stored = {row.id: row._asdict() for row in conn.execute(sa.select(schema.leads))}
    for person in people:
        lead = store.get(person.id)
        assert isinstance(lead, Lead)
        assert lead.version == person.version + 1
        assert lead.profile == ("us" if person.country == "US" else None)
        columns = rows.record_row(lead)
        del columns["doc"]
        assert {name: stored[lead.id][name] for name in columns} == columns
        assert lead.status is (
            LeadStatus.QUALIFIED if person.country == "US" else LeadStatus.UNQUALIFIED
        )
