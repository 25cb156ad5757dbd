"""The cyclic garbage collector paused for bulk work (``_collector``), and left as the
application set it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from leadfunnel._collector import collector_paused


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.usefixtures("collector_on")
def test_the_collector_is_off_in_the_block_and_on_after_it_even_after_an_error() -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_collect_collects_only_when_the_collector_was_on() -> None:
    collected: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collected.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with collector_paused() as collect:
            collect(1)
        assert collected == [1]
        gc.disable()
        with collector_paused() as collect:
            collect(0)
            assert not gc.isenabled()
        assert collected == [1]  # the application turned it off: nothing collected
        assert not gc.isenabled()  # and it stays off
    finally:
        gc.callbacks.remove(count)
