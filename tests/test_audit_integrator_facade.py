"""The facade as a new integrator meets it (an audit): dates given with ``at=``,
``Funnel(...)``'s arguments, ``history`` of an id the store does not hold, a touch's
date, and the subject types of the triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import T0, person
from leadfunnel import (
    CadencePolicy,
    ConfigError,
    Contact,
    Funnel,
    InMemoryRepository,
    InvalidArgumentError,
    Lead,
    LeadStatus,
    QualificationEngine,
    QualificationResult,
)
from leadfunnel.testing import ManualClock

#: A year mistyped: 2062 for 2026.
TYPO = datetime(2062, 3, 2, 9, tzinfo=UTC)


# --- 1. a change dated ahead of the clock holds back no move made now -----------------


def test_a_change_dated_ahead_of_the_clock_does_not_block_moves_made_now(
    funnel: Funnel, clock: ManualClock
) -> None:
    """``qualify(at=2062)`` (a typo for 2026) made every later move without ``at=``
    fail with "give a later at=, or leave it out", although at= was left out: the
    lead could not even be avoided (DESIGN 3: avoid works from any state)."""
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True, at=TYPO)
    avoided = funnel.avoid(lead)
    assert avoided.status is LeadStatus.AVOID
    (event,) = [e for e in funnel.history(lead) if e.name == "avoid"]
    assert event.at == clock.now()

    # An edit or a new record dated ahead holds nothing back either.
    edited = funnel.capture(Lead(**person(2)))
    funnel.update(edited.model_copy(update={"notes": "typo"}), at=TYPO)
    assert funnel.qualify(edited, force=True).status is LeadStatus.QUALIFIED
    deal = funnel.set_appointment(edited)
    assert funnel.sit(deal).stage == "appointment_sat"
    added = funnel.add(Lead(**person(3)), at=TYPO)
    assert funnel.avoid(added).status is LeadStatus.AVOID


def test_a_move_dated_before_both_the_last_change_and_the_clock_is_still_refused(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True, at=TYPO)
    with pytest.raises(InvalidArgumentError, match="before the lead's last change") as err:
        funnel.disqualify(lead, at=clock.now() - timedelta(days=1))
    # Leaving at= out does work now: the advice is true.
    assert "leave it out" in str(err.value)
    assert funnel.get_lead(lead.id).status is LeadStatus.QUALIFIED
    assert funnel.disqualify(lead).status is LeadStatus.UNQUALIFIED


# --- 2. Funnel(...) checks its arguments -----------------------------------------------


_IT = QualificationEngine.from_dict(
    {"profiles": [{"name": "it", "rules": [{"rule": "niche", "industries": ["IT Services"]}]}]}
)


class _OwnEngine:
    """An integrator's engine: anything with ``evaluate(lead)`` (DESIGN 5)."""

    def evaluate(self, lead: Lead) -> QualificationResult:
        return _IT.evaluate(lead)


class _OwnRouter:
    """An integrator's router: ``assign`` and ``backup_for``."""

    def assign(self, lead: Lead) -> str | None:
        return "ana"

    def backup_for(self, owner: str | None, lead: Lead | Contact | None = None) -> str | None:
        return None


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"repository": "sqlite:///x.db"}, r"repository=\.\.\.\) was given a str: .*SqlRepository"),
        ({"repository": Path("x.db")}, r"was given a pathlib\.\w*Path: .*SqlRepository\(that URL"),
        (
            {"repository": InMemoryRepository},
            r"given the class InMemoryRepository: pass an instance, InMemoryRepository\(",
        ),
        ({"repository": object()}, r"given an object: .*subclass of leadfunnel\.Repository"),
        (
            {"engine": {"profiles": []}},
            r"engine=\.\.\.\) was given a dict: pass QualificationEngine\.from_dict",
        ),
        ({"engine": "rules.toml"}, r"given a str: pass QualificationEngine\.from_toml\(path\)"),
        ({"engine": QualificationEngine}, r"the class QualificationEngine: pass an instance"),
        ({"engine": object()}, r"given an object: .*has no evaluate\(\) method"),
        (
            {"cadence": {"lead_touches": 3}},
            r"cadence=\.\.\.\) .* dict: pass CadencePolicy\.from_dict",
        ),
        ({"cadence": CadencePolicy}, r"the class CadencePolicy: pass an instance"),
        ({"cadence": 2}, r"cadence=\.\.\.\) was given an int: pass a CadencePolicy"),
        (
            {"router": {"groups": []}},
            r"router=\.\.\.\) was given a dict: pass RoutingRules\.from_dict",
        ),
        ({"router": "routing.toml"}, r"given a str: pass RoutingRules\.from_toml\(path\)"),
        ({"router": _OwnEngine()}, r"has no assign or backup_for\(\) method"),
        (
            {"clock": datetime(2026, 3, 2, tzinfo=UTC)},
            r"clock=\.\.\.\) was given a datetime .*, not a clock: .*ManualClock\(that datetime\)",
        ),
        ({"clock": ManualClock}, r"the class ManualClock, not a clock: pass an instance"),
    ],
)
def test_funnel_refuses_what_it_cannot_use_when_it_is_made(
    arguments: dict[str, Any], says: str
) -> None:
    """``Funnel("sqlite:///x.db")`` failed with "'str' object has no attribute 'models'",
    the class ``InMemoryRepository`` with a TypeError, a dict given for the engine,
    cadence or router only on the first qualify, due or capture (an AttributeError),
    and a datetime given for the clock said its now() was naive."""
    with pytest.raises(ConfigError, match=says) as err:
        Funnel(**arguments)
    assert "x.db" not in str(err.value)  # what was given is named by its type


def test_an_integrators_own_engine_router_and_adapter_are_still_taken() -> None:
    class Adapter(InMemoryRepository):
        pass

    clock = ManualClock(T0)
    funnel = Funnel(Adapter(), engine=_OwnEngine(), router=_OwnRouter(), clock=clock)
    lead = funnel.capture(Lead(**person(1)))
    assert lead.owner == "ana"
    assert funnel.qualify(lead).status is LeadStatus.QUALIFIED
    assert Funnel(cadence=CadencePolicy(lead_touches=3)).cadence.lead_touches == 3
