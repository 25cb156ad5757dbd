"""``leadfunnel.testing`` without the ``testing`` extra (audit of the testing toolkit):
``from leadfunnel.testing import *`` brings the clock and the assertions instead of
failing; asking for a name that needs hypothesis (or pytest) says what to install; and
``dir()`` lists the names imported on first use. Each check runs in a process of its
own, in which imports of the missing packages fail as they would were they absent."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import leadfunnel.testing

_BLOCK = """
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Absent())
"""

_LAZY = [
    "FunnelStep",
    "Keys",
    "RepositoryContract",
    "contacts",
    "deal_histories",
    "histories",
    "leads",
    "reached",
    "register_strategies",
    "replay",
]
_EAGER = [
    "FunnelFactory",
    "ManualClock",
    "assert_due",
    "assert_history",
    "assert_passed_through",
    "assert_report_counts",
]


def _run(blocked: set[str], script: str, first: str = "") -> str:
    """Run ``script`` in a new process in which ``blocked`` cannot be imported, after
    ``first``."""
    code = _BLOCK.format(blocked=sorted(blocked)) + first + textwrap.dedent(script)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("how", ["finder", "sys.modules"])
def test_star_import_without_hypothesis_brings_the_clock_and_the_assertions(how: str) -> None:
    hide = "import sys; sys.modules['hypothesis'] = None\n" if how == "sys.modules" else ""
    out = _run(
        {"hypothesis"} if how == "finder" else set(),
        """
        from datetime import datetime, timezone
        from leadfunnel.testing import *
        import leadfunnel.testing as testing
        from leadfunnel import Funnel, Lead

        funnel = Funnel(clock=ManualClock(datetime(2026, 1, 5, tzinfo=timezone.utc)))
        lead = funnel.capture(Lead(email="ann@acme.example.com"))
        assert_history(funnel, lead, ["capture"])
        assert_passed_through(funnel, lead, ["raw"])
        print(sorted(testing.__all__))
        print(sorted(n for n in dir(testing) if not n.startswith("_")))
        print(any(m == "hypothesis" or m.startswith("hypothesis.") for m in sys.modules
                  if sys.modules[m] is not None))
        """,
        first=hide,
    )
    exported, listed, imported = out.splitlines()
    assert exported == str(_EAGER)
    assert all(name in listed for name in _EAGER)
    assert not any(f"'{name}'" in listed for name in _LAZY), listed
    assert imported == "False"


def test_a_name_that_needs_hypothesis_says_to_install_the_extra() -> None:
    out = _run(
        {"hypothesis", "pytest", "_pytest"},
        f"""
        import leadfunnel.testing as testing

        for name in {_LAZY!r}:
            try:
                getattr(testing, name)
            except ModuleNotFoundError as error:
                print(name, "|", error.name, "|", error)
            else:
                print(name, "| imported")
        try:
            from leadfunnel.testing import leads
        except ImportError as error:
            print("from-import |", error)
        """,
    )
    lines = dict(line.split(" | ", 1) for line in out.splitlines())
    for name in _LAZY:
        assert name in lines, out
        assert "leadfunnel[testing]" in lines[name], lines[name]
        assert f"leadfunnel.testing.{name} needs hypothesis" in lines[name], lines[name]
        assert lines[name].startswith("hypothesis |"), lines[name]
    assert "hypothesis and pytest" in lines["RepositoryContract"]
    assert "leadfunnel[testing]" in lines["from-import"]


def test_without_pytest_only_the_contract_is_left_out() -> None:
    out = _run(
        {"pytest", "_pytest"},
        """
        import leadfunnel.testing as testing
        from leadfunnel.testing import *

        print("RepositoryContract" in testing.__all__, "leads" in testing.__all__)
        print(leads is testing.leads)
        try:
            testing.RepositoryContract
        except ModuleNotFoundError as error:
            print(error)
        """,
    )
    first, second, third = out.splitlines()
    assert first == "False True"
    assert second == "True"
    assert "RepositoryContract needs pytest" in third
    assert "leadfunnel[testing]" in third


def test_with_the_extra_everything_is_exported_and_listed() -> None:
    assert sorted(leadfunnel.testing.__all__) == sorted(_EAGER + _LAZY)
    assert set(_EAGER + _LAZY) <= set(dir(leadfunnel.testing))
    out = _run(
        set(),
        """
        from leadfunnel.testing import *
        print(leads.__name__, RepositoryContract.__name__, ManualClock.__name__)
        """,
    )
    assert out.split() == ["leads", "RepositoryContract", "ManualClock"]
