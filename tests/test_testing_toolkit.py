"""leadfunnel.testing: strategies, assertions and the pytest plugin, as users use them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import leadfunnel
from conftest import new_sqlite_url, runpytest_here
from leadfunnel import (
    Contact,
    Funnel,
    InMemoryRepository,
    Lead,
    LeadStatus,
    Profile,
    QualificationEngine,
    SqlRepository,
)
from leadfunnel.rules import Geography, Niche
from leadfunnel.testing import (
    FunnelStep,
    ManualClock,
    assert_due,
    assert_history,
    assert_passed_through,
    assert_report_counts,
    contacts,
    histories,
    leads,
    replay,
)

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _plugin_from_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses import the plugin from the source tree, not from a copy an editable
    install may have made of it (hatch's force-include copies the file)."""
    source = str(Path(leadfunnel.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)


START = datetime(2026, 1, 5, 9, tzinfo=UTC)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


ADDABLE = (LeadStatus.SUSPECT, LeadStatus.FARM_LIST, LeadStatus.RAW, LeadStatus.AVOID)


@FAST
@given(st.lists(leads(), min_size=1, max_size=8))
def test_drawn_leads_are_valid_distinct_and_addable(drawn: list[Lead]) -> None:
    funnel = Funnel()
    for lead in drawn:
        assert lead.status in ADDABLE
        if lead.erased_at is None:  # somebody, even without keys
            assert None not in (lead.first_name, lead.company)
        funnel.add(lead)  # never a DuplicateError: every person has their own keys
    assert len(funnel.leads()) == len(drawn)


@FAST
@given(leads(status="raw", source="webinar", missing=False))
def test_constraints_fix_fields(lead: Lead) -> None:
    assert lead.status == LeadStatus.RAW
    assert lead.source == "webinar"
    assert lead.email is not None
    assert lead.country is not None


ENGINE = QualificationEngine([Profile("us-it", [Niche(["IT Services"]), Geography(["US"])])])


@FAST
@given(leads(fits=ENGINE))
def test_fits_gives_leads_the_engine_qualifies(lead: Lead) -> None:
    assert ENGINE.evaluate(lead).qualified


@FAST
@given(contacts(type="client"))
def test_contacts(contact: Contact) -> None:
    funnel = Funnel()
    stored = funnel.add(contact)
    assert stored.type == "client"


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=histories(max_steps=20))
def test_a_history_replays_alike_in_memory_and_on_sqlite(
    history: list[FunnelStep], tmp_path_factory: pytest.TempPathFactory
) -> None:
    memory = Funnel(InMemoryRepository(), clock=ManualClock(START))
    path = tmp_path_factory.mktemp("history") / "f.db"
    sql = Funnel(SqlRepository(new_sqlite_url(path)), clock=ManualClock(START))
    replay(memory, history)
    replay(sql, history)
    counts = {n: s.count for n, s in memory.report().steps.items()}
    assert counts == {n: s.count for n, s in sql.report().steps.items()}
    assert [lead.status for lead in memory.leads()] == [lead.status for lead in sql.leads()]


def test_history_steps_add_respond_and_qualify_by_the_engine() -> None:
    fit = Lead(email="ann@acme.example.com", status="suspect", industry="IT Services", country="US")
    misfit = Lead(email="bo@shop.example.com", industry="Retail", country="US")
    funnel = Funnel(engine=ENGINE, clock=ManualClock(START))
    history = [
        FunnelStep("add", kwargs=(("lead", fit),)),
        FunnelStep("respond", 0, advance=timedelta(days=2)),
        FunnelStep("capture", kwargs=(("lead", misfit),)),
        FunnelStep("qualify", 0),
        FunnelStep("qualify", 1),
        FunnelStep("sit", 0),  # no deal yet: skipped, not raised
    ]
    assert replay(funnel, history) == [fit.id, misfit.id]
    assert_passed_through(funnel, fit, ["suspect", "raw", "qualified"])
    assert funnel.get_lead(fit.id).profile == "us-it"
    assert funnel.get_lead(fit.id).status_at == START + timedelta(days=2)
    assert funnel.get_lead(misfit.id).status != "qualified"
    assert repr(history[1]) == "respond(#0)"
    without_engine = Funnel(clock=ManualClock(START))
    replay(without_engine, history)  # qualify needs an engine: skipped
    assert without_engine.get_lead(fit.id).status == "raw"


def test_assertions_pass_and_fail_readably() -> None:
    clock = ManualClock(START)
    funnel = Funnel(clock=clock)
    lead = funnel.capture(Lead(email="pat@acme.example.com"))
    funnel.qualify(lead, force=True)
    assert_passed_through(funnel, lead, ["raw", "qualified"])
    assert_history(funnel, lead, ["capture", "qualify"])
    assert_report_counts(funnel.report(), {"raw": 1, "qualified": 1, "won": 0})
    assert_due(funnel, lead, at=clock.now() + timedelta(days=3))
    with pytest.raises(
        AssertionError, match=r"path was raw -> qualified; 'won'|path was raw -> qualified"
    ):
        assert_passed_through(funnel, lead, ["raw", "won"])
    with pytest.raises(
        AssertionError, match=r"expected history \['capture'\], got \['capture', 'qualify'\]"
    ):
        assert_history(funnel, lead, ["capture"])
    with pytest.raises(AssertionError, match="qualified: expected 2, counted 1"):
        assert_report_counts(funnel.report(), {"qualified": 2})
    with pytest.raises(AssertionError, match="no step 'booked'; its steps are raw, qualified"):
        assert_report_counts(funnel.report(), {"booked": 1})
    with pytest.raises(AssertionError, match="not to be due"):
        assert_due(funnel, lead, at=clock.now() + timedelta(days=3), due=False)


def test_assertions_never_pass_by_having_nothing_to_check() -> None:
    clock = ManualClock(START)
    funnel = Funnel(clock=clock)
    lead = funnel.capture(Lead(email="pat@acme.example.com"))
    funnel.qualify(lead, force=True)
    unknown = uuid.uuid4()
    no_record = f"the funnel has no record {unknown} "
    # An unknown id fails, whatever is expected of it.
    with pytest.raises(AssertionError, match=no_record):
        assert_history(funnel, unknown, [])
    with pytest.raises(AssertionError, match=no_record):
        assert_passed_through(funnel, unknown, ["raw"])
    with pytest.raises(AssertionError, match=no_record):
        assert_due(funnel, unknown, due=False)
    with pytest.raises(AssertionError, match=no_record):
        assert_due(funnel, [lead, str(unknown)])
    # A misspelt state is named as such, not reported as a state never reached.
    with pytest.raises(AssertionError, match=r"there is no state 'qualifed'; the states are "):
        assert_passed_through(funnel, lead, ["raw", "qualifed"])
    assert_passed_through(funnel, lead, [LeadStatus.RAW, "qualified"])  # members too
    # Nothing to check is a mistake in the test, not a pass.
    with pytest.raises(ValueError, match="at least one state"):
        assert_passed_through(funnel, lead, [])
    with pytest.raises(ValueError, match="at least one step"):
        assert_report_counts(funnel.report(), {})
    with pytest.raises(ValueError, match="at least one subject"):
        assert_due(funnel, [])
    assert_history(funnel, lead.id, ("capture", "qualify"))  # any sequence of names


def test_a_leads_path_goes_on_through_its_contact_and_deal() -> None:
    clock = ManualClock(START)
    funnel = Funnel(clock=clock)
    lead = funnel.capture(Lead(email="pat@acme.example.com"))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead, setter="sue")
    for step in (funnel.sit, funnel.propose, funnel.send_contract, funnel.win):
        clock.advance(days=1)
        step(deal)
    contact_id = funnel.get_lead(lead.id).contact_id
    assert contact_id is not None
    assert_passed_through(funnel, lead, ["raw", "qualified", "appointment_set", "won", "client"])
    assert_passed_through(funnel, contact_id, ["prospect", "appointment_set", "won", "client"])
    assert_passed_through(funnel, deal, ["appointment_set", "proposing", "won"])
    with pytest.raises(AssertionError) as caught:
        assert_passed_through(funnel, lead, ["raw", "won", "qualified"])
    assert str(caught.value) == (
        "expected the subject to pass through raw -> won -> qualified, but its path was "
        "raw -> qualified -> converted -> prospect -> appointment_set -> appointment_sat -> "
        "proposing -> contract_sent -> won -> client; 'qualified' never came after 'won'"
    )
    with pytest.raises(AssertionError, match=r"path was appointment_set -> .* -> won; 'lost'"):
        assert_passed_through(funnel, deal, ["appointment_set", "lost"])


USER_TEST = """
from hypothesis import given, settings
from leadfunnel import Lead, LeadStatus
from leadfunnel.testing import leads


def test_capture_and_qualify(funnel, clock):
    lead = funnel.capture(Lead(email="pat@acme.example.com"))
    clock.advance(hours=2)
    funnel.qualify(lead, force=True)
    assert funnel.get(lead.id).status == LeadStatus.QUALIFIED
    assert funnel.history(lead)[-1].at == clock.now()


@settings(max_examples=5, deadline=None)
@given(lead=leads(status="suspect"))
def test_suspects_farm(lead):
    from datetime import datetime, timezone
    from leadfunnel import Funnel
    from leadfunnel.testing import ManualClock
    funnel = Funnel(clock=ManualClock(datetime(2026, 1, 5, tzinfo=timezone.utc)))
    assert funnel.farm(funnel.add(lead)).status == LeadStatus.FARM_LIST


def test_backend(funnel, request):
    name = type(funnel.repository).__name__
    assert name == request.config.getoption("--leadfunnel-backend").replace(
        "memory", "InMemoryRepository").replace("sqlite", "SqlRepository")
"""


@pytest.mark.slow  # scheduled first: see conftest
def test_a_users_test_file_runs_with_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    # In a process of its own, as a user runs it: the plugin loaded afresh, by pytest.
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    on_sqlite = runpytest_here(
        pytester, "-q", "-p", "no:cacheprovider", "--leadfunnel-backend=sqlite"
    )
    on_sqlite.assert_outcomes(passed=3)


LOSSY_ADAPTER = """
from leadfunnel import InMemoryRepository, Repository
from leadfunnel.testing import RepositoryContract


class ForgetsKeys(InMemoryRepository):
    def find_keys(self, keys):
        return {}


class TestForgetsKeys(RepositoryContract):
    def create_repository(self) -> Repository:
        return ForgetsKeys()
"""


@pytest.mark.parametrize(
    "plugin", [(), ("-p", "no:leadfunnel")], ids=["with-the-plugin", "without-it"]
)
def test_a_failing_contract_test_shows_the_values_it_compared(
    pytester: pytest.Pytester, plugin: tuple[str, ...]
) -> None:
    """pytest rewrites the asserts of test modules only: the contract's are registered
    for rewriting by the plugin, and by ``leadfunnel.testing`` when no plugin runs, so a
    failure says what the adapter gave instead of a bare ``AssertionError``."""
    pytester.makepyfile(test_lossy=LOSSY_ADAPTER)
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", *plugin, "-k", "test_keys_are_claimed_and_found"
    )
    result.assert_outcomes(failed=1, deselected=result.parseoutcomes()["deselected"])
    result.stdout.fnmatch_lines(["E * assert {} == {*", "E * Right contains 3 more items:*"])
    result.stdout.no_fnmatch_line("*Module already imported so cannot be rewritten*")


def test_registered_strategies_serve_from_type() -> None:
    from leadfunnel import Contact
    from leadfunnel.testing import register_strategies

    register_strategies()

    @FAST
    @given(st.from_type(Lead), st.from_type(Contact))
    def drawn(lead: Lead, contact: Contact) -> None:
        assert lead.status in ADDABLE
        assert lead.company is not None or lead.erased_at is not None
        assert contact.company is not None or contact.erased_at is not None
        if lead.email is not None and contact.email is not None:
            assert lead.email != contact.email

    drawn()


def test_hypothesis_registers_the_strategies_through_the_entry_point() -> None:
    draw = "print(st.from_type(Lead).filter(lambda lead: lead.email).example().email)\n"
    hypothesis_first = "from hypothesis import strategies as st\nfrom leadfunnel import Lead\n"
    # Importing the strategies first imports hypothesis from inside them, which runs the
    # entry point in the middle of their import: that must work too.
    strategies_first = "import leadfunnel.testing._strategies\n" + hypothesis_first
    for script in (hypothesis_first + draw, strategies_first + draw):
        found = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert found.endswith(".example.com")  # drawn by leadfunnel.testing.leads()
    off = subprocess.run(
        [sys.executable, "-c", "import sys, hypothesis; print('leadfunnel' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HYPOTHESIS_NO_PLUGINS": "1"},
    )
    assert off.stdout.strip() == "False"


@pytest.mark.slow  # scheduled first: see conftest
def test_the_docs_plugin_example_runs_with_the_plugin(pytester: pytest.Pytester) -> None:
    page = (Path(__file__).parent.parent / "docs" / "testing.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```python\n(# test_my_funnel\.py.*?)```", page, re.DOTALL)
    pytester.makepyfile(test_my_funnel=example)
    for backend in ("memory", "sqlite"):
        result = runpytest_here(
            pytester, "-q", "-p", "no:cacheprovider", f"--leadfunnel-backend={backend}"
        )
        result.assert_outcomes(passed=1)


MARKERS = """
import pytest
from leadfunnel import Lead, LeadStatus, Profile, QualificationEngine
from leadfunnel.rules import Geography

US = QualificationEngine([Profile("us", [Geography(["US"], hard=True)])])


@pytest.mark.leadfunnel(backend="sqlite")
def test_marked_sqlite(funnel):
    assert type(funnel.repository).__name__ == "SqlRepository"
    lead = funnel.capture(Lead(email="ann@acme.example.com", country="US"))
    assert funnel.get(lead.id).email == "ann@acme.example.com"


@pytest.mark.leadfunnel(engine=US)
def test_marked_engine(funnel, clock):
    assert funnel.clock is clock
    lead = funnel.capture(Lead(email="bo@acme.example.com", country="US"))
    assert funnel.qualify(lead).qualified
    assert funnel.get(lead.id).status == LeadStatus.QUALIFIED


def test_default_has_no_engine(funnel):
    assert type(funnel.repository).__name__ == "InMemoryRepository"
    lead = funnel.capture(Lead(email="cy@acme.example.com", country="US"))
    assert funnel.qualify(lead, force=True).qualified


class TestOverride:
    @pytest.fixture
    def leadfunnel_engine(self):
        return US

    def test_overridden_engine(self, funnel):
        lead = funnel.capture(Lead(email="di@acme.example.com", country="FR"))
        assert not funnel.qualify(lead).qualified


@pytest.mark.leadfunnel(backend="postgres")
def test_unknown_backend(funnel):
    pass
"""


def test_the_marker_and_the_engine_fixture_configure_the_funnel(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_markers=MARKERS)
    result = runpytest_here(pytester, "-q", "-p", "no:cacheprovider", "-rE")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*leadfunnel backend must be memory or sqlite, not 'postgres'*"])


def test_loading_the_plugin_imports_no_leadfunnel() -> None:
    code = (
        "import sys, leadfunnel_pytest; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'leadfunnel'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
