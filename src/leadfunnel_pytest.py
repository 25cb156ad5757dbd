"""The leadfunnel pytest plugin: ``clock`` and ``funnel`` fixtures for your tests.

Installed with leadfunnel (entry point ``pytest11``). Kept tiny and free of heavy
imports, so loading it costs nothing for test runs that never use leadfunnel.

Fixtures:

* ``clock``: a ``leadfunnel.testing.ManualClock`` at 2026-01-05 09:00 UTC;
* ``funnel``: a ``Funnel`` on that clock, in memory, or on a fresh SQLite file with
  ``--leadfunnel-backend=sqlite`` (or ``@pytest.mark.leadfunnel(backend="sqlite")``);
* ``leadfunnel_engine``: the qualification engine the ``funnel`` gets (``None``; override
  the fixture, or pass ``@pytest.mark.leadfunnel(engine=...)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

START = "2026-01-05T09:00:00+00:00"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leadfunnel")
    group.addoption(
        "--leadfunnel-backend",
        choices=("memory", "sqlite"),
        default="memory",
        help="where the `funnel` fixture stores: memory (default) or a fresh SQLite file",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "leadfunnel(engine=None, backend=None): configure the `funnel` fixture "
        "(a QualificationEngine; 'memory' or 'sqlite')",
    )


@pytest.fixture
def clock() -> Any:
    """A ManualClock at 2026-01-05 09:00 UTC; move it with ``clock.advance(days=1)``."""
    from datetime import datetime

    from leadfunnel.testing import ManualClock

    return ManualClock(datetime.fromisoformat(START))


@pytest.fixture
def leadfunnel_engine() -> Any:
    """The qualification engine of the ``funnel`` fixture; override to give one."""
    return None


@pytest.fixture
def funnel(
    request: pytest.FixtureRequest, clock: Any, leadfunnel_engine: Any, tmp_path: Path
) -> Iterator[Any]:
    """A Funnel on the ``clock``: in memory, or on SQLite (see the module docs)."""
    from leadfunnel import Funnel, InMemoryRepository, Repository

    marker = request.node.get_closest_marker("leadfunnel")
    options = dict(marker.kwargs) if marker else {}
    backend = options.get("backend") or request.config.getoption("--leadfunnel-backend")
    engine = options.get("engine", leadfunnel_engine)
    repository: Repository
    if backend == "sqlite":
        from leadfunnel import SqlRepository

        repository = SqlRepository(f"sqlite:///{tmp_path / 'leadfunnel-test.db'}")
    elif backend == "memory":
        repository = InMemoryRepository()
    else:
        raise pytest.UsageError(f"leadfunnel backend must be memory or sqlite, not {backend!r}")
    yield Funnel(repository, engine=engine, clock=clock)
    repository.close()
