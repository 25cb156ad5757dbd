"""The cyclic garbage collector, paused for bulk work."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[Callable[[int], None]]:
    """The cyclic garbage collector off for the block, and as it was after it.

    Bulk work (validating rows, judging pages of leads, listing follow-ups, importing
    SQLAlchemy) makes many objects and few or no cycles: the collector, run every few
    hundred allocations, would walk them again and again for nothing. The block is
    given ``collect(generation)``, which collects that generation at once, where its
    work leaves cyclic garbage behind; it does nothing if the collector was off when
    the block began (an application that turned it off keeps it off).
    """
    enabled = gc.isenabled()

    def collect(generation: int) -> None:
        if enabled:
            gc.collect(generation)

    gc.disable()
    try:
        yield collect
    finally:
        if enabled:
            gc.enable()
