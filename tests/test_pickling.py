"""What an application hands to other processes pickles: leadfunnel's errors (a worker
pool sends its worker's error back; a task queue stores it) and qualification engines
(sent to workers that judge leads). Errors whose constructor takes more than the
message could not be unpickled, and a worker's DuplicateError broke its whole pool;
an engine held closures."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadfunnel import (
    AvoidListedError,
    ConcurrencyError,
    ConfigError,
    DuplicateError,
    Funnel,
    InvalidArgumentError,
    InvalidTransitionError,
    Lead,
    LeadFunnelError,
    NotFoundError,
    PolicyError,
    Profile,
    QualificationEngine,
    RuleError,
    StorageError,
)
from leadfunnel.rules import FAIL, BaseRule, Niche, Verdict
from leadfunnel.testing import leads

ID = UUID("0190f7a2-5c3e-7b8a-9d4e-3f2a1b0c9d8e")

ERRORS: list[LeadFunnelError] = [
    DuplicateError(ID, "email:pat@acme.example.com"),
    AvoidListedError(ID, "phone:+15125550134"),
    InvalidTransitionError("lead", "raw", "farm", ["qualify", "disqualify"], "a hint"),
    NotFoundError(ID, "lead"),
    NotFoundError(ID, "lead", found="a contact, not a lead"),
    ConcurrencyError(ID, 3, 4),
    ConcurrencyError.of_touches(ID, 1, 2),
    RuleError("crm_score", "msp", ID, "KeyError: 'crm_score'"),
    StorageError("the database is locked", of_value=True),
    ConfigError("profile 'msp': bad"),
    PolicyError("raw leads get no direct mail"),
    InvalidArgumentError("limit=-1: give a whole number"),
]


class _AppError(DuplicateError):
    """An application's own error on leadfunnel's, with a constructor of its own."""

    def __init__(self, existing_id: UUID, key: str, ticket: int) -> None:
        super().__init__(existing_id, key)
        self.ticket = ticket


@pytest.mark.parametrize("error", [*ERRORS, _AppError(ID, "email:a@b.example.com", 7)], ids=repr)
@pytest.mark.parametrize(
    "again",
    [lambda e: pickle.loads(pickle.dumps(e)), copy.copy, copy.deepcopy],
    ids=["pickle", "copy", "deepcopy"],
)
def test_an_error_comes_back_whole(error: LeadFunnelError, again: object) -> None:
    back = again(error)  # type: ignore[operator]
    assert type(back) is type(error)
    assert str(back) == str(error)  # NotFoundError's message came back doubled
    assert back.args == error.args
    assert vars(back) == vars(error)  # existing_id, key, state, allowed, of_value...


def _add_twice(email: str) -> None:
    funnel = Funnel()
    funnel.add(Lead(email=email))
    funnel.add(Lead(email=email))


def test_a_workers_duplicate_reaches_the_pool_as_a_duplicate_error() -> None:
    """Before, the pool broke (BrokenProcessPool) instead of handing back the error."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        future = pool.submit(_add_twice, "pat@acme.example.com")
        with pytest.raises(DuplicateError, match="same e-mail already exists") as err:
            future.result(timeout=60)
    assert err.value.key == "email:pat@acme.example.com"
    assert isinstance(err.value.existing_id, UUID)


class _Endpoints(BaseRule):
    """A plugin rule, defined where pickle finds it (module level)."""

    name = "endpoints"

    def evaluate(self, lead: Lead) -> Verdict:
        if lead.employees is None:
            return Verdict.unknown("no head count", missing=["employees"])
        return Verdict.passed("big") if lead.employees >= 20 else Verdict.failed("small")


RULES = {
    "profiles": [
        {
            "name": "msp",
            "rules": [
                {"rule": "niche", "industries": ["IT Services", "Managed Services"]},
                {"rule": "authority", "titles": ["ceo", "owner"]},
                {"rule": "geography", "countries": ["US"], "regions": ["TX", "CA"], "hard": True},
                {"rule": "money", "min_annual_revenue": 500_000, "weight": 2},
                {"rule": "need", "services": ["backup"]},
                {"rule": "source", "allowed": ["webinar", "referral"]},
                {"rule": "company_size", "min_employees": 5, "max_employees": 500},
                {"rule": "field", "field": "city", "in": ["Austin", "Dallas"]},
            ],
        },
        {"name": "dental", "rules": [{"rule": "niche", "industries": ["Dental"]}]},
    ]
}


def _engine() -> QualificationEngine:
    engine = QualificationEngine.from_dict(RULES)
    return QualificationEngine([*engine.profiles, Profile("big", [_Endpoints(hard=True)])])


@settings(max_examples=60, deadline=None)
@given(lead=leads(), copier=st.sampled_from([pickle.dumps, copy.deepcopy]))
def test_an_engine_judges_alike_once_pickled(lead: Lead, copier: object) -> None:
    engine = _engine()
    made = copier(engine)  # type: ignore[operator]
    again = pickle.loads(made) if isinstance(made, bytes) else made
    assert again.evaluate(lead).to_dict() == engine.evaluate(lead).to_dict()
    assert again.evaluate(lead).verdicts == engine.evaluate(lead).verdicts  # the reasons too


def test_an_engine_from_a_rules_file_pickles(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[profiles]]\nname = "msp"\n[[profiles.rules]]\nrule = "authority"\ntitles = ["ceo"]\n',
        encoding="utf-8",
    )
    engine = pickle.loads(pickle.dumps(QualificationEngine.from_toml(path)))
    lead = Lead(title="Owner/CEO", email=f"{uuid4().hex}@acme.example.com")
    assert engine.evaluate(lead).qualified


class _SizedNiche(Niche):
    """A built-in rule's subclass with state of its own, set outside the dataclass."""

    def __init__(self, industries: list[str], *, min_employees: int) -> None:
        super().__init__(industries)
        self.min_employees = min_employees

    def check(self, lead: Lead) -> int:
        if (lead.employees or 0) < self.min_employees:
            return FAIL
        return super().check(lead)


def test_a_subclass_of_a_built_in_rule_keeps_its_own_state_once_pickled() -> None:
    """Its own attribute was lost (only the dataclass's arguments travelled), and the
    unpickled engine qualified a lead the original refused."""
    engine = QualificationEngine([Profile("p", [_SizedNiche(["IT"], min_employees=50)])])
    again = pickle.loads(pickle.dumps(engine))
    small = Lead(industry="IT", employees=10)
    assert engine.evaluate(small).qualified is False
    assert again.evaluate(small).qualified is False
    assert again.profiles[0].rules[0].min_employees == 50
