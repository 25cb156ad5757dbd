"""Tools for testing code that uses leadfunnel, and for testing leadfunnel adapters.

* ``ManualClock``: time that moves only when told to;
* ``leads()``, ``contacts()``: hypothesis strategies of valid records, the awkward ones
  (no e-mail or phone, avoid-listed, merged before) drawn often; ``histories()`` and
  ``deal_histories()``: whole funnel histories, ``replay`` applies one to a funnel and
  ``reached`` says what it got to;
* ``assert_passed_through``, ``assert_history``, ``assert_report_counts``,
  ``assert_due``: assertions with readable failure messages;
* ``RepositoryContract``: the storage port's contract suite, for your own adapter.

The pytest plugin (installed with the package) adds ``clock``, ``funnel`` and
``make_funnel`` fixtures (``FunnelFactory`` is the type of ``make_funnel``). Strategies
and the contract need the ``testing`` extra (hypothesis, pytest); they are imported when
first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ._assertions import assert_due, assert_history, assert_passed_through, assert_report_counts
from ._clock import ManualClock

if TYPE_CHECKING:
    from .._clock import Clock
    from .._funnel import Funnel
    from ._contract import RepositoryContract
    from ._strategies import (
        FunnelStep,
        Keys,
        contacts,
        deal_histories,
        histories,
        leads,
        reached,
        register_strategies,
        replay,
    )

__all__ = [
    "FunnelFactory",
    "FunnelStep",
    "Keys",
    "ManualClock",
    "RepositoryContract",
    "assert_due",
    "assert_history",
    "assert_passed_through",
    "assert_report_counts",
    "contacts",
    "deal_histories",
    "histories",
    "leads",
    "reached",
    "register_strategies",
    "replay",
]


class FunnelFactory(Protocol):
    """The type of the pytest plugin's ``make_funnel`` fixture: each call returns a new
    ``Funnel`` on a new, empty store, so each hypothesis example gets its own.

    ``backend`` (``"memory"`` or ``"sqlite"``) and ``engine`` default to what the
    ``funnel`` fixture would get (the ``leadfunnel`` marker, ``--leadfunnel-backend``,
    the ``leadfunnel_engine`` fixture); ``clock`` to a new ``ManualClock`` at
    2026-01-05 09:00 UTC; other keywords go to ``Funnel`` (``cadence=``, ``router=``...).

    On SQLite each call creates a database file and its tables (70 to 100 ms, more on
    a busy machine; the first call in a process also imports SQLAlchemy): under
    ``@given``, turn hypothesis' deadline off (``@settings(deadline=None)``), or its
    default of 200 ms fails the first example with ``DeadlineExceeded``.

    >>> def test_every_example_starts_empty(make_funnel: FunnelFactory) -> None:
    ...     assert make_funnel().leads() == []
    """

    def __call__(
        self,
        *,
        backend: str | None = None,
        engine: Any = ...,
        clock: Clock | None = None,
        **options: Any,
    ) -> Funnel: ...


_LAZY = {
    "RepositoryContract": "_contract",
    "FunnelStep": "_strategies",
    "Keys": "_strategies",
    "contacts": "_strategies",
    "deal_histories": "_strategies",
    "histories": "_strategies",
    "leads": "_strategies",
    "reached": "_strategies",
    "register_strategies": "_strategies",
    "replay": "_strategies",
}


_CONTRACT = f"{__name__}._contract"


def __getattr__(name: str) -> Any:
    # RepositoryContract needs pytest and hypothesis (the ``testing`` extra): import it
    # only when asked for, so ManualClock works without them.
    module = _LAZY.get(name)
    if module is not None:
        from importlib import import_module

        full = f"{__name__}.{module}"
        if full == _CONTRACT:
            _rewrite_asserts()
        return getattr(import_module(full), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _rewrite_asserts() -> None:
    """Have pytest rewrite the contract's asserts, so that a failure shows the values
    compared: the plugin (``leadfunnel_pytest``) asks for it when pytest loads it, and
    this does for runs without it (``-p no:leadfunnel``, ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``).
    It must happen before the contract is first imported; outside pytest it does nothing.
    """
    import sys

    if _CONTRACT in sys.modules:
        return
    try:
        import pytest
    except ImportError:  # the contract's own import says what is missing
        return
    pytest.register_assert_rewrite(_CONTRACT)
