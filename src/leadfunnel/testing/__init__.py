"""Tools for testing code that uses leadfunnel, and for testing leadfunnel adapters.

* ``ManualClock``: time that moves only when told to;
* ``leads()``, ``contacts()``, ``histories()``: hypothesis strategies of valid records and
  of whole funnel histories (``replay`` applies one to a funnel);
* ``assert_passed_through``, ``assert_history``, ``assert_report_counts``,
  ``assert_due``: assertions with readable failure messages;
* ``RepositoryContract``: the storage port's contract suite, for your own adapter.

The pytest plugin (installed with the package) adds ``clock`` and ``funnel`` fixtures.
Strategies and the contract need the ``testing`` extra (hypothesis, pytest); they are
imported when first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._assertions import assert_due, assert_history, assert_passed_through, assert_report_counts
from ._clock import ManualClock

if TYPE_CHECKING:
    from ._contract import RepositoryContract
    from ._strategies import FunnelStep, contacts, histories, leads, register_strategies, replay

__all__ = [
    "FunnelStep",
    "ManualClock",
    "RepositoryContract",
    "assert_due",
    "assert_history",
    "assert_passed_through",
    "assert_report_counts",
    "contacts",
    "histories",
    "leads",
    "register_strategies",
    "replay",
]

_LAZY = {
    "RepositoryContract": "_contract",
    "FunnelStep": "_strategies",
    "contacts": "_strategies",
    "histories": "_strategies",
    "leads": "_strategies",
    "register_strategies": "_strategies",
    "replay": "_strategies",
}


def __getattr__(name: str) -> Any:
    # RepositoryContract needs pytest and hypothesis (the ``testing`` extra): import it
    # only when asked for, so ManualClock works without them.
    module = _LAZY.get(name)
    if module is not None:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
