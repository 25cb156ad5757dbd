"""Tools for testing code that uses leadfunnel, and for testing leadfunnel adapters.

``ManualClock`` makes time explicit; more tools arrive with the testing toolkit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._clock import ManualClock

if TYPE_CHECKING:
    from ._contract import RepositoryContract

__all__ = ["ManualClock", "RepositoryContract"]


def __getattr__(name: str) -> Any:
    # RepositoryContract needs pytest and hypothesis (the ``testing`` extra): import it
    # only when asked for, so ManualClock works without them.
    if name == "RepositoryContract":
        from ._contract import RepositoryContract

        return RepositoryContract
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
