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
first asked for. Without the extra, the rest works (``from leadfunnel.testing import *``
brings the clock and the assertions), and asking for a name that needs it is a
``ModuleNotFoundError`` that says what to install.
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

#: What each lazily imported module needs of the ``testing`` extra.
_NEEDS = {"_strategies": ("hypothesis",), "_contract": ("hypothesis", "pytest")}

_CONTRACT = f"{__name__}._contract"
_INSTALL = "pip install 'leadfunnel[testing]' (in a checkout of leadfunnel: '.[testing]')"


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (hypothesis takes a
    tenth of a second or more)."""
    import sys
    from importlib.util import find_spec

    if module in sys.modules:
        return sys.modules[module] is not None  # None: imports of it are blocked
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _absent(module: str) -> list[str]:
    """What ``module`` (one of ``_NEEDS``) needs that is not installed."""
    return [needed for needed in _NEEDS[module] if not _installed(needed)]


if not TYPE_CHECKING:
    # ``from leadfunnel.testing import *`` asks for every name of ``__all__``: without
    # the extra it brings the clock and the assertions, and leaves out what needs it,
    # rather than fail as a whole. Type checkers see the whole list above.
    __all__ = [name for name in __all__ if name not in _LAZY or not _absent(_LAZY[name])]


def __getattr__(name: str) -> Any:
    # RepositoryContract needs pytest and hypothesis (the ``testing`` extra): import it
    # only when asked for, so ManualClock works without them.
    module = _LAZY.get(name)
    if module is not None:
        absent = _absent(module)
        if absent:
            raise ModuleNotFoundError(
                f"leadfunnel.testing.{name} needs {' and '.join(absent)}, which "
                f"{'is' if len(absent) == 1 else 'are'} not installed: install "
                f"leadfunnel's testing extra, {_INSTALL}",
                name=absent[0],
            )
        from importlib import import_module

        full = f"{__name__}.{module}"
        if full == _CONTRACT:
            _rewrite_asserts()
        return getattr(import_module(full), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names are listed (those whose dependencies are installed), as
    # ``__all__`` lists them, though not yet imported.
    return sorted(set(globals()) | set(__all__))


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
