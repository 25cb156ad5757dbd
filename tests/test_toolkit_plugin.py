"""The pytest plugin's ``make_funnel``: a fresh funnel per hypothesis example, with the
``funnel`` fixture's options, that hypothesis' health checks accept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import runpytest_here

pytest_plugins = ["pytester"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # The plugin as it is in the source tree (an editable install may hold a copy made
    # when it was installed: see the report of issue 20), checked by runpytest_here.
    return runpytest_here(pytester, "-q", "-p", "no:cacheprovider", "-rfE", *args)


USER_TESTS = """
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadfunnel import Funnel, Lead, LeadStatus, Profile, QualificationEngine
from leadfunnel.rules import Geography
from leadfunnel.testing import FunnelFactory, deal_histories, leads, replay

US = QualificationEngine([Profile("us", [Geography(["US"], hard=True)])])
FILES = []


@settings(max_examples=15, deadline=None)
@given(people=st.lists(leads(status="raw"), max_size=4))
def test_every_example_gets_an_empty_funnel(make_funnel: FunnelFactory, people):
    funnel = make_funnel()
    assert funnel.leads() == []  # nothing left over from an earlier example
    for lead in people:
        funnel.add(lead)
    assert len(funnel.leads()) == len(people)
    assert funnel.clock.now().isoformat() == "2026-01-05T09:00:00+00:00"
    funnel.clock.advance(days=3)  # each funnel has its own clock


def test_the_backend_option_decides_the_store(make_funnel, request):
    wanted = request.config.getoption("--leadfunnel-backend")
    assert type(make_funnel().repository).__name__ == (
        "SqlRepository" if wanted == "sqlite" else "InMemoryRepository"
    )
    assert type(make_funnel(backend="memory").repository).__name__ == "InMemoryRepository"


@pytest.mark.leadfunnel(backend="sqlite", engine=US)
@settings(max_examples=5, deadline=None)
@given(history=deal_histories(max_deals=2))
def test_the_marker_configures_it_and_sqlite_files_go_with_their_example(make_funnel, history):
    for path in FILES:
        assert not path.exists()  # the earlier examples' stores are closed and removed
    funnel = make_funnel()
    assert funnel.engine is US
    replay(funnel, history)
    assert funnel.opportunities()
    FILES.append(Path(funnel.repository.url.database))
    assert FILES[-1].exists()


def test_the_sqlite_files_are_gone():
    assert len(FILES) == 5
    assert not any(path.exists() for path in FILES)


class TestOverriddenEngine:
    @pytest.fixture
    def leadfunnel_engine(self):
        return US

    @settings(max_examples=5, deadline=None)
    @given(lead=leads(status="raw", country="FR"))
    def test_the_engine_fixture_is_used(self, make_funnel, lead):
        funnel = make_funnel()
        assert funnel.engine is US
        assert not funnel.qualify(funnel.add(lead)).qualified
        assert make_funnel(engine=None).engine is None


@pytest.fixture
def booked(make_funnel):
    # A fixture may make funnels too: closed when the test ends.
    funnel = make_funnel(backend="sqlite")
    lead = funnel.capture(Lead(email="ann@acme.example.com"))
    funnel.set_appointment(lead, force=True)
    return funnel


def test_a_fixture_made_funnel_lives_for_the_test(booked):
    assert booked.opportunities()[0].stage == "appointment_set"


@settings(max_examples=3, deadline=None)
@given(lead=leads())
def test_the_funnel_fixture_is_refused_under_given(funnel, lead):
    funnel.add(lead)
"""


def test_make_funnel_serves_given_tests_a_fresh_funnel_per_example(
    pytester: pytest.Pytester,
) -> None:
    # On the configured backend (the default, memory, serves the docs' example below).
    pytester.makepyfile(test_user=USER_TESTS)
    result = run(pytester, "--leadfunnel-backend=sqlite")
    result.assert_outcomes(passed=6, failed=1)
    # The one failure is the function-scoped `funnel` under @given: why make_funnel exists.
    result.stdout.fnmatch_lines(
        [
            "*test_the_funnel_fixture_is_refused_under_given' uses a function-scoped "
            "fixture 'funnel'*",
            "FAILED test_user.py::test_the_funnel_fixture_is_refused_under_given*",
        ]
    )


def test_the_docs_given_example_runs_and_shows_what_it_reached(
    pytester: pytest.Pytester,
) -> None:
    page = (Path(__file__).parent.parent / "docs" / "testing.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```python\n(# test_properties\.py.*?)```", page, re.DOTALL)
    pytester.makepyfile(test_properties=example)
    result = run(pytester, "--hypothesis-show-statistics")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_every_won_deal_was_sat:*",
            "*Events:*",
            "*%, replay reached: appointment_sat",
            "*%, replay reached: won",
        ]
    )
