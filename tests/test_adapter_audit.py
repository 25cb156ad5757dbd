"""What an integrator writing an adapter meets (an audit that wrote one and broke it on
purpose): a feed whose ``events(after=N)`` also gives position N is said to be wrong,
never read for ever."""

from __future__ import annotations

import pytest

from leadfunnel import Event, Funnel, InMemoryRepository, Lead, StorageError
from leadfunnel.storage import Repository


class _OffByOne(InMemoryRepository):
    """A feed that gives back the event at ``after`` too, with the port's own
    ``last_position`` (which reads the feed)."""

    def events(self, *, after: int = 0, limit: int | None = None) -> list[Event]:
        return super().events(after=max(after - 1, 0), limit=limit)

    last_position = Repository.last_position


def test_a_feed_that_gives_back_its_cursor_is_refused_not_read_for_ever() -> None:
    repository = _OffByOne()
    funnel = Funnel(repository)
    funnel.add(Lead(first_name="Ana"))
    funnel.add(Lead(first_name="Bo"))
    with pytest.raises(StorageError) as refused:
        repository.last_position()
    assert str(refused.value) == (
        "_OffByOne.events(after=2) returned an event at position 2: it must return only "
        "the events after position 2 (position > after), in position order"
    )


def test_the_default_last_position_reads_the_whole_feed() -> None:
    class Plain(InMemoryRepository):
        last_position = Repository.last_position

    funnel = Funnel(Plain())
    assert funnel.repository.last_position() == 0
    for n in range(3):
        funnel.add(Lead(first_name=f"P{n}"))
    assert funnel.repository.last_position() == 3
