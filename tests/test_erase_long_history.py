"""Erasing a person with a long history: every touch and event is scrubbed, in a few
statements however long the history (one ``executemany`` per table on SQL, each
subject's rows indexed once in memory)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from conftest import person
from leadfunnel import Funnel, Lead, NotFoundError, Repository, SqlRepository, Touch
from leadfunnel.storage import ChangeSet
from leadfunnel.testing import ManualClock

SECRET = "Zelda asked for Marfa prices"


def _statements(repository: Repository) -> list[str]:
    """The SQL statements ``repository`` runs from now on (none for memory)."""
    seen: list[str] = []
    if isinstance(repository, SqlRepository):

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            seen.append(statement)

        sa.event.listen(repository.engine, "before_cursor_execute", count)
    return seen


def _history_of(funnel: Funnel, lead: Lead, touches: int) -> Lead:
    """``lead`` after ``touches`` noted touches, each a minute apart."""
    for n in range(touches):
        funnel.touch(lead, "email", "no_answer", note=f"{SECRET} #{n}")
        assert isinstance(funnel.clock, ManualClock)
        funnel.clock.advance(minutes=1)
    stored = funnel.repository.get(lead.id)
    assert isinstance(stored, Lead)
    return stored


@pytest.mark.parametrize("touches", [1, 300])
def test_an_erasure_scrubs_a_long_history_in_a_bounded_number_of_statements(
    funnel: Funnel, touches: int
) -> None:
    lead = funnel.add(Lead(**person(1)))
    lead = _history_of(funnel, lead, touches)
    repository = funnel.repository
    history = repository.history(lead.id)
    assert len(repository.touches(lead.id)) == touches
    seen = _statements(repository)

    funnel.erase(lead)

    assert all(t.note is None for t in repository.touches(lead.id))
    assert [t.id for t in repository.touches(lead.id)] == [
        t.id for t in sorted(repository.touches(lead.id), key=lambda t: (t.at, t.id))
    ]
    after = repository.history(lead.id)
    # Every event kept its place; none says the secret any more.
    assert [(e.id, e.position) for e in after[: len(history)]] == [
        (e.id, e.position) for e in history
    ]
    assert all(e.subject_id == lead.id for e in after)
    assert SECRET not in repr(after) + repr(repository.touches(lead.id))
    if isinstance(repository, SqlRepository):
        # Reads, locks and one write per table: nothing per touch (300 touches ran 300
        # UPDATEs before).
        assert len(seen) < 60, len(seen)
        rewrites = [s for s in seen if s.lstrip().upper().startswith("UPDATE LF_TOUCHES")]
        assert len(rewrites) <= 1, rewrites


def test_a_rewrite_of_a_touch_no_row_holds_is_refused_and_stores_nothing(
    repository: Repository,
) -> None:
    funnel = Funnel(repository)
    lead = funnel.add(Lead(**person(2)))
    kept = funnel.touch(lead, "email", "no_answer", note="first")
    ghost = Touch.model_validate({**kept.model_dump(), "id": Lead().id, "note": None})
    scrubbed = kept.model_copy(update={"note": None})
    with pytest.raises(NotFoundError) as raised:
        repository.commit(ChangeSet(rewrites=[scrubbed, ghost]))
    assert raised.value.id == ghost.id
    assert [t.note for t in repository.touches(lead.id)] == ["first"]
