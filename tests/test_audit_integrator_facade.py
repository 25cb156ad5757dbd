"""The facade as a new integrator meets it (an audit): dates given with ``at=``,
``Funnel(...)``'s arguments, ``history`` of an id the store does not hold, a touch's
date, and the subject types of the triggers."""

from __future__ import annotations

import inspect
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

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
    Opportunity,
    PolicyError,
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
    assert isinstance(avoided, Lead)
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
        ({"router": _OwnEngine()}, r"has no assign\(\) or backup_for\(\) method"),
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


# --- 4. a touch is dated at or after its person came to be ------------------------------


def test_a_touch_dated_before_its_person_was_stored_is_refused(
    funnel: Funnel, clock: ManualClock
) -> None:
    """Right after capture, a call dated 30 days back was taken, and the lead's history
    then began with a touch of nobody, before its capture."""
    lead = funnel.capture(Lead(**person(1)))
    with pytest.raises(InvalidArgumentError, match=r"is before lead .* came to be") as err:
        funnel.touch(lead, "call", "no_answer", at=clock.now() - timedelta(days=30))
    assert "give a later at=" in str(err.value)
    assert funnel.touches(lead) == []
    assert [e.name for e in funnel.history(lead)] == ["capture"]

    # A call logged late (after the capture, before now) is fine, as the docs say.
    clock.advance(days=2)
    late = funnel.touch(lead, "call", "no_answer", at=clock.now() - timedelta(days=1))
    assert funnel.touches(lead) == [late]


def test_a_late_touch_counts_from_when_the_person_came_to_be(
    funnel: Funnel, clock: ManualClock
) -> None:
    """A converted lead's contact is the same person: a call logged late on the contact,
    dated after the lead's capture, is taken; so is an opt-out dated before the person
    was stored (an old list's unsubscribe), which must be honoured whenever given."""
    lead = funnel.capture(Lead(**person(1)))
    captured = clock.now()
    clock.advance(days=10)
    funnel.qualify(lead, force=True)
    contact_id = funnel.set_appointment(lead).contact_id
    funnel.touch(contact_id, "call", "connected", at=captured + timedelta(days=1))
    with pytest.raises(InvalidArgumentError, match="came to be"):
        funnel.touch(contact_id, "call", "connected", at=captured - timedelta(days=1))

    other = funnel.capture(Lead(**person(2)))
    funnel.touch(other, "email", "opted_out", at=datetime(2020, 1, 1, tzinfo=UTC))
    assert "email" in funnel.get_lead(other.id).opt_outs


def test_a_touch_made_now_is_taken_on_a_person_dated_ahead_of_the_clock(
    funnel: Funnel, clock: ManualClock
) -> None:
    """As a move (1): a record added ``at=`` ahead of the clock holds back no touch made
    now."""
    lead = funnel.add(Lead(**person(1), status="raw"), at=TYPO)
    funnel.touch(lead, "call", "no_answer")
    assert len(funnel.touches(lead)) == 1


# --- 5. the triggers' subject types name the kind they move -----------------------------


@pytest.mark.parametrize(
    ("methods", "kinds"),
    [
        # A contact passes type checks (capture() returns Lead | Contact), a deal not.
        (("farm", "respond", "qualify", "disqualify"), {Lead, Contact, UUID, str}),
        (
            ("sit", "propose", "send_contract", "win", "lose", "reschedule"),
            {Opportunity, UUID, str},
        ),
        (("touch", "set_appointment", "erase"), {Lead, Contact, UUID, str}),
    ],
)
def test_a_trigger_takes_the_kind_of_record_it_moves(
    methods: tuple[str, ...], kinds: set[type]
) -> None:
    """Every trigger took ``Lead | Contact | Opportunity | UUID | str``, so type checkers
    let ``funnel.qualify(deal)`` and ``funnel.sit(lead)`` through (they fail only when
    run)."""
    for name in methods:
        hints = typing.get_type_hints(getattr(Funnel, name))
        first = next(p for p in inspect.signature(getattr(Funnel, name)).parameters if p != "self")
        assert set(typing.get_args(hints[first])) == kinds, name


@pytest.mark.parametrize("mirrored", [False, True])
def test_another_funnels_clock_does_not_leak_into_a_call(mirrored: bool) -> None:
    """A subscriber adding to a second funnel (another clock, years back) in the middle
    of ``qualify_all(at=...)`` must not change what the rest of the run is checked
    against: a move dated before its lead's last change and before the clock is refused
    either way (found by a review: with the mirror, the lead was qualified on a date
    before its last change)."""
    engine = QualificationEngine.from_dict(
        {"profiles": [{"name": "p", "rules": [{"rule": "niche", "industries": ["IT"]}]}]}
    )
    funnel = Funnel(engine=engine, clock=ManualClock(datetime(2030, 1, 1, tzinfo=UTC)))
    mirror = Funnel(clock=ManualClock(datetime(2020, 1, 1, tzinfo=UTC)))
    funnel.add(Lead(email="one@x.example.com", industry="IT"))
    late = funnel.add(Lead(email="two@y.example.com", industry="IT"))
    edited = late.model_copy(update={"city": "Paris"})
    funnel.update(edited, at=datetime(2030, 1, 20, tzinfo=UTC))  # ahead of the clock
    assert isinstance(funnel.clock, ManualClock)
    funnel.clock.advance(days=9)  # now 2030-01-10
    if mirrored:

        def copy(_: object) -> None:
            mirror.add(Lead(email=f"m{len(mirror.leads())}@z.example.com"))

        funnel.subscribe(copy)
    with pytest.raises(InvalidArgumentError, match="before the lead's last change"):
        funnel.qualify_all(at=datetime(2030, 1, 5, tzinfo=UTC), page_size=1)
    stored = funnel.get(late.id)
    assert isinstance(stored, Lead)
    assert stored.status is LeadStatus.RAW
    assert [e.name for e in funnel.history(late.id)] == ["add", "update"]


@pytest.mark.parametrize("days_back", [0, 30])
def test_a_deal_given_a_touch_is_told_it_takes_none_whatever_its_date(
    funnel: Funnel, days_back: int
) -> None:
    """Not that its date is too early (found by a review: a touch dated before the
    deal was made said "give a later at=", which could never help)."""
    lead = funnel.add(Lead(**person(1)))
    funnel.qualify(lead, force=True, reason="fits")
    deal = funnel.set_appointment(lead)
    at = funnel.clock.now() - timedelta(days=days_back)
    with pytest.raises(PolicyError, match="not deals"):
        funnel.touch(deal.id, "call", "connected", at=at)
