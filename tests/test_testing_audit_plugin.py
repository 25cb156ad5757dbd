"""The pytest plugin's ``leadfunnel`` marker refuses what it does not take (audit of the
testing toolkit): a misspelt keyword or a positional argument was ignored, and the test
ran in memory while its author believed it ran on SQLite."""

from __future__ import annotations

import pytest

from conftest import runpytest_here

pytest_plugins = ["pytester"]

USER_TESTS = """
import pytest
from leadfunnel import Funnel, SqlRepository


@pytest.mark.leadfunnel(bakend="sqlite")
def test_typo_keyword(funnel: Funnel) -> None:
    assert isinstance(funnel.repository, SqlRepository)


@pytest.mark.leadfunnel("sqlite")
def test_positional(funnel: Funnel) -> None:
    assert isinstance(funnel.repository, SqlRepository)


@pytest.mark.leadfunnel(bakend="sqlite")
def test_typo_keyword_with_make_funnel(make_funnel) -> None:
    assert isinstance(make_funnel().repository, SqlRepository)


@pytest.mark.leadfunnel(backend="sqlite", engine=None)
def test_right(funnel: Funnel, make_funnel) -> None:
    assert isinstance(funnel.repository, SqlRepository)
    assert isinstance(make_funnel().repository, SqlRepository)


@pytest.mark.leadfunnel(colour="red")
class TestMarkedClass:
    @pytest.mark.leadfunnel(backend="sqlite")  # the class's marker is checked too
    def test_in_a_marked_class(self, funnel: Funnel) -> None:
        assert isinstance(funnel.repository, SqlRepository)


def test_unmarked(funnel: Funnel) -> None:
    assert type(funnel.repository).__name__ == "InMemoryRepository"
"""


def test_a_marker_with_a_keyword_it_does_not_take_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked=USER_TESTS)
    result = runpytest_here(pytester, "-q", "-p", "no:cacheprovider", "-rfE")
    result.assert_outcomes(passed=2, errors=4)
    out = result.stdout.str()
    assert (
        "UsageError: @pytest.mark.leadfunnel got bakend='sqlite', which it does not take "
        "(did you mean 'backend'?); its keywords are backend, engine" in out
    )
    assert "takes keywords only, not 'sqlite'" in out
    assert "leadfunnel got colour='red'" in out
    for test in (
        "test_typo_keyword ",
        "test_positional ",
        "test_typo_keyword_with_make_funnel ",
        "test_in_a_marked_class ",
    ):
        assert (
            f"ERROR test_marked.py::{test}".replace("::test_in", "::TestMarkedClass::test_in")
            in out
        )


def test_the_marker_is_described_with_its_keywords(pytester: pytest.Pytester) -> None:
    result = runpytest_here(pytester, "--markers")
    assert "@pytest.mark.leadfunnel(backend=None, engine=None)" in result.stdout.str()
