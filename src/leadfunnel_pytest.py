"""The leadfunnel pytest plugin: ``clock``, ``funnel`` and ``make_funnel`` fixtures.

Installed with leadfunnel (entry point ``pytest11``). Kept tiny and free of heavy
imports, so loading it costs nothing for test runs that never use leadfunnel.

Fixtures:

* ``clock``: a ``leadfunnel.testing.ManualClock`` at 2026-01-05 09:00 UTC;
* ``funnel``: a ``Funnel`` on that clock, in memory, or on a fresh SQLite file with
  ``--leadfunnel-backend=sqlite`` (or ``@pytest.mark.leadfunnel(backend="sqlite")``);
* ``make_funnel``: a factory of such funnels, one per call, each on its own new store
  and its own clock: the one to use under hypothesis' ``@given``, where a
  function-scoped fixture would be shared by every example (hypothesis refuses it with
  its ``function_scoped_fixture`` health check). A funnel made inside an example is
  closed when the example ends; one made outside, when the test ends;
* ``leadfunnel_engine``: the qualification engine both give their funnels (``None``;
  override the fixture, or pass ``@pytest.mark.leadfunnel(engine=...)``).

The ``leadfunnel`` marker takes the keywords ``backend`` and ``engine`` only: another
keyword (a typo such as ``bakend=``) or a positional argument is a ``pytest.UsageError``
when a test using the fixtures runs, rather than ignored.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# The contract suite is asserts in a module of the package, which pytest rewrites only
# in test modules and conftest files: registered here, so that a failing contract test
# shows the values it compared. pytest imports this plugin before any conftest or test
# module (so before anything imports the contract); ``leadfunnel.testing`` registers it
# too, for runs that load no plugin.
pytest.register_assert_rewrite("leadfunnel.testing._contract")

if TYPE_CHECKING:
    from leadfunnel import Clock, Funnel, QualificationEngine, Repository
    from leadfunnel.testing import FunnelFactory, ManualClock

START = "2026-01-05T09:00:00+00:00"
BACKENDS = ("memory", "sqlite")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leadfunnel")
    group.addoption(
        "--leadfunnel-backend",
        choices=BACKENDS,
        default="memory",
        help="where the `funnel` and `make_funnel` fixtures store: memory (default) "
        "or a fresh SQLite file",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "leadfunnel(backend=None, engine=None): configure the `funnel` and `make_funnel` "
        "fixtures ('memory' or 'sqlite'; a QualificationEngine); other keywords and "
        "positional arguments are refused",
    )


def _start_clock() -> ManualClock:
    from datetime import datetime

    from leadfunnel.testing import ManualClock

    return ManualClock(datetime.fromisoformat(START))


@pytest.fixture
def clock() -> ManualClock:
    """A ManualClock at 2026-01-05 09:00 UTC; move it with ``clock.advance(days=1)``."""
    return _start_clock()


@pytest.fixture
def leadfunnel_engine() -> QualificationEngine | None:
    """The qualification engine of the ``funnel`` fixture; override to give one."""
    return None


#: The keywords the ``leadfunnel`` marker takes.
MARKER_KEYWORDS = ("backend", "engine")


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The keywords of the test's closest ``leadfunnel`` marker. Every marker on the
    test, its class and its module is checked: a misspelt keyword or a positional
    argument would otherwise be ignored, and the test would run in memory while its
    author believes it runs on SQLite."""
    markers = list(request.node.iter_markers("leadfunnel"))
    for marker in markers:
        _check_marker(marker)
    return dict(markers[0].kwargs) if markers else {}


def _check_marker(marker: pytest.Mark) -> None:
    """Refuse a ``leadfunnel`` marker with a positional argument or a keyword it does
    not take, with a ``pytest.UsageError`` naming the keywords it takes."""
    accepted = ", ".join(MARKER_KEYWORDS)
    if marker.args:
        given = ", ".join(repr(arg) for arg in marker.args)
        raise pytest.UsageError(
            f"@pytest.mark.leadfunnel takes keywords only, not {given}: name each, as "
            f"in @pytest.mark.leadfunnel(backend='sqlite'); its keywords are {accepted}"
        )
    unknown = [name for name in marker.kwargs if name not in MARKER_KEYWORDS]
    if unknown:
        import difflib

        name = unknown[0]
        close = difflib.get_close_matches(name, MARKER_KEYWORDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise pytest.UsageError(
            f"@pytest.mark.leadfunnel got {name}={marker.kwargs[name]!r}, which it does "
            f"not take{hint}; its keywords are {accepted}"
        )


def _repository(backend: str, folder: Path) -> Repository:
    if backend == "sqlite":
        from leadfunnel import SqlRepository

        return SqlRepository(f"sqlite:///{folder / 'leadfunnel-test.db'}")
    if backend == "memory":
        from leadfunnel import InMemoryRepository

        return InMemoryRepository()
    raise pytest.UsageError(f"leadfunnel backend must be memory or sqlite, not {backend!r}")


@pytest.fixture
def funnel(
    request: pytest.FixtureRequest,
    clock: ManualClock,
    leadfunnel_engine: QualificationEngine | None,
    tmp_path: Path,
) -> Iterator[Funnel]:
    """A Funnel on the ``clock``: in memory, or on SQLite (see the module docs)."""
    from leadfunnel import Funnel

    options = _options(request)
    backend = options.get("backend") or request.config.getoption("--leadfunnel-backend")
    engine = options.get("engine", leadfunnel_engine)
    repository = _repository(backend, tmp_path)
    yield Funnel(repository, engine=engine, clock=clock)
    repository.close()


# --- make_funnel --------------------------------------------------------------------
#
# Hypothesis refuses a function-scoped fixture named by a @given test, so make_funnel is
# session-scoped. What depends on the test (its marker, its leadfunnel_engine) is read
# through the test's own request, which a small autouse fixture files for the tests that
# use make_funnel.

_UNSET: Any = object()


@dataclass
class _Test:
    """The running test that uses ``make_funnel``, and the stores made for it."""

    request: pytest.FixtureRequest | None
    opened: list[tuple[Repository, Path]] = field(default_factory=list)

    def close(self) -> None:
        while self.opened:
            _close(*self.opened.pop())


def _close(repository: Repository, folder: Path) -> None:
    repository.close()
    shutil.rmtree(folder, ignore_errors=True)


_CURRENT = pytest.StashKey[_Test]()


def _in_example() -> bool:
    """Whether a hypothesis example is running (hypothesis may not be installed)."""
    try:
        from hypothesis.control import currently_in_test_context
    except ImportError:
        return False
    return currently_in_test_context()


@pytest.fixture(autouse=True)
def _leadfunnel_current_test(request: pytest.FixtureRequest) -> Iterator[None]:
    if "make_funnel" not in request.fixturenames:
        yield
        return
    _options(request)  # a marker it does not take fails the test's setup, not its body
    test = _Test(request)
    request.config.stash[_CURRENT] = test
    try:
        yield
    finally:
        del request.config.stash[_CURRENT]
        test.close()


@pytest.fixture(scope="session")
def make_funnel(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FunnelFactory]:
    """Make a new Funnel on a new store per call: ``make_funnel()`` (see the module docs).

    Keywords: ``backend`` (``"memory"`` or ``"sqlite"``), ``engine``, ``clock`` (default:
    a new ManualClock at 2026-01-05 09:00 UTC), and anything ``Funnel`` takes.
    """
    from leadfunnel import Funnel

    config = request.config
    outside = _Test(None)  # stores made with no test running (by a wider fixture)

    def make(
        *,
        backend: str | None = None,
        engine: Any = _UNSET,
        clock: Clock | None = None,
        **options: Any,
    ) -> Funnel:
        test = config.stash.get(_CURRENT, outside)
        marked = _options(test.request) if test.request is not None else {}
        if backend is None:
            backend = marked.get("backend") or config.getoption("--leadfunnel-backend")
        if engine is _UNSET:
            engine = marked.get("engine", _UNSET)
        if engine is _UNSET:
            engine = (
                test.request.getfixturevalue("leadfunnel_engine")
                if test.request is not None
                else None
            )
        folder = tmp_path_factory.mktemp("leadfunnel", numbered=True)
        repository = _repository(str(backend), folder)
        made = Funnel(repository, engine=engine, clock=clock or _start_clock(), **options)
        if _in_example():
            from hypothesis.control import cleanup

            cleanup(lambda: _close(repository, folder))
        else:
            test.opened.append((repository, folder))
        return made

    yield make
    outside.close()
