"""The lifecycles: one ``transitions`` definition each, and everything derived from it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from transitions import Machine, MachineError

import leadfunnel
from leadfunnel import (
    FUNNEL_STEPS,
    ConfigError,
    ContactType,
    Funnel,
    InvalidTransitionError,
    Lead,
    LeadStatus,
    Stage,
)
from leadfunnel._lifecycle import CONTACT, LEAD, OPPORTUNITY, Lifecycle, funnel_steps

# DESIGN.md section 3, written out independently of the implementation.
LEAD_CONTRACT: dict[tuple[str, str], str] = {
    ("suspect", "farm"): "farm_list",
    ("suspect", "respond"): "raw",
    ("farm_list", "respond"): "raw",
    ("raw", "qualify"): "qualified",
    ("unqualified", "qualify"): "qualified",
    ("farm_list", "disqualify"): "unqualified",
    ("raw", "disqualify"): "unqualified",
    ("qualified", "disqualify"): "unqualified",
    ("qualified", "convert"): "converted",
    **{(s.value, "avoid"): "avoid" for s in LeadStatus if s is not LeadStatus.AVOID},
}
LEAD_FORCED = {("raw", "convert"): "converted"}

OPEN = ("appointment_set", "appointment_sat", "proposing", "contract_sent")
STAGE_CONTRACT: dict[tuple[str, str], str] = {
    ("appointment_set", "sit"): "appointment_sat",
    ("appointment_sat", "propose"): "proposing",
    ("proposing", "send_contract"): "contract_sent",
    ("contract_sent", "win"): "won",
    ("appointment_set", "reschedule"): "appointment_set",
    **{(s, "lose"): "lost" for s in OPEN},
}
STAGE_FORCED = {("proposing", "win"): "won"}

LIFECYCLES = [
    pytest.param(LEAD, LEAD_CONTRACT, LEAD_FORCED, id="lead"),
    pytest.param(OPPORTUNITY, STAGE_CONTRACT, STAGE_FORCED, id="opportunity"),
]


@pytest.mark.parametrize(("lifecycle", "contract", "forced"), LIFECYCLES)
def test_every_state_and_trigger_follows_the_contract(
    lifecycle: Lifecycle, contract: dict[tuple[str, str], str], forced: dict[tuple[str, str], str]
) -> None:
    for state in lifecycle.states:
        for trigger in lifecycle.triggers:
            key = (state, trigger)
            if key in contract:
                assert lifecycle.move(state, trigger) == contract[key]
                assert lifecycle.move(state, trigger, force=True) == contract[key]
                assert lifecycle.can(state, trigger)
            elif key in forced:
                assert not lifecycle.can(state, trigger)
                assert lifecycle.can(state, trigger, force=True)
                assert lifecycle.move(state, trigger, force=True) == forced[key]
                with pytest.raises(InvalidTransitionError, match="needs force=True"):
                    lifecycle.move(state, trigger)
            else:
                assert not lifecycle.can(state, trigger, force=True)
                with pytest.raises(InvalidTransitionError):
                    lifecycle.move(state, trigger, force=True)


def test_the_states_are_the_enums() -> None:
    assert LEAD.states == tuple(s.value for s in LeadStatus)
    assert OPPORTUNITY.states == tuple(s.value for s in Stage)
    assert CONTACT.states == tuple(t.value for t in ContactType)
    assert LEAD.triggers == ["farm", "respond", "qualify", "disqualify", "convert", "avoid"]
    assert OPPORTUNITY.triggers == ["sit", "propose", "send_contract", "win", "lose", "reschedule"]


class _Probe:
    """A naive ``transitions`` model: the way the library is *not* used at run time."""

    def __init__(self, force: bool) -> None:
        self.force = force

    def forced(self) -> bool:
        return self.force


def _naive_move(lifecycle: Lifecycle, state: str, trigger: str, force: bool) -> str | None:
    probe = _Probe(force)
    Machine(
        model=probe,
        states=list(lifecycle.states),
        transitions=lifecycle._definitions,
        initial=state,
        auto_transitions=False,
    )
    try:
        moved = probe.trigger(trigger)  # type: ignore[attr-defined]
    except MachineError:
        return None
    return probe.state if moved else None  # type: ignore[attr-defined]


@pytest.mark.parametrize("lifecycle", [LEAD, OPPORTUNITY, CONTACT], ids=lambda x: x.subject)
def test_the_lookup_table_agrees_with_transitions_itself(lifecycle: Lifecycle) -> None:
    """The derived table answers exactly as a machine bound to a model would."""
    for state in lifecycle.states:
        for trigger in lifecycle.triggers:
            for force in (False, True):
                expected = _naive_move(lifecycle, state, trigger, force)
                assert lifecycle.can(state, trigger, force=force) == (expected is not None)
                if expected is None:
                    with pytest.raises(InvalidTransitionError):
                        lifecycle.move(state, trigger, force=force)
                else:
                    assert lifecycle.move(state, trigger, force=force) == expected


def test_forced_routes_come_from_the_definitions() -> None:
    assert LEAD.forced_routes() == [("convert", "raw", "converted")]
    assert OPPORTUNITY.forced_routes() == [("win", "proposing", "won")]
    assert CONTACT.forced_routes() == []


@pytest.mark.parametrize(("lifecycle", "contract", "forced"), LIFECYCLES)
def test_allowed_lists_every_trigger_with_a_route_in_definition_order(
    lifecycle: Lifecycle, contract: dict[tuple[str, str], str], forced: dict[tuple[str, str], str]
) -> None:
    for state in lifecycle.states:
        expected = [t for t in lifecycle.triggers if (state, t) in contract or (state, t) in forced]
        assert list(lifecycle.allowed(state)) == expected
    assert lifecycle.allowed("no-such-state") == ()


def test_the_allowed_lists_of_the_contract() -> None:
    assert LEAD.allowed("raw") == ("qualify", "disqualify", "convert", "avoid")
    assert LEAD.allowed("converted") == ("avoid",)
    assert LEAD.allowed("avoid") == ()
    assert OPPORTUNITY.allowed("appointment_set") == ("sit", "lose", "reschedule")
    assert OPPORTUNITY.allowed("won") == ()
    assert CONTACT.allowed("client") == ("win", "avoid")


def test_an_illegal_move_names_state_trigger_and_allowed_triggers() -> None:
    with pytest.raises(InvalidTransitionError) as err:
        OPPORTUNITY.move("appointment_set", "win")
    assert err.value.state == "appointment_set"
    assert err.value.trigger == "win"
    assert err.value.allowed == ("sit", "lose", "reschedule")
    message = str(err.value)
    assert "'win'" in message
    assert "'appointment_set'" in message
    assert "sit, lose, reschedule" in message
    assert isinstance(err.value, ValueError)

    with pytest.raises(InvalidTransitionError) as err:
        LEAD.move("avoid", "respond")
    assert "triggers allowed from 'avoid': none" in str(err.value)

    with pytest.raises(InvalidTransitionError) as err:
        LEAD.move("raw", "convert")
    assert "needs force=True" in str(err.value)
    assert "convert" in err.value.allowed


def test_an_unknown_trigger_is_a_config_error_listing_the_triggers() -> None:
    with pytest.raises(ConfigError, match="'sit' is not a lead trigger") as err:
        LEAD.move("raw", "sit")
    assert "farm, respond, qualify, disqualify, convert, avoid" in str(err.value)


# --- diagrams ---------------------------------------------------------------------------

_EDGE = re.compile(r"^\s*(\w+) --> (\w+): (\w+)( \(force\))?$")


def _edges(mermaid: str) -> set[tuple[str, str, str, bool]]:
    found = set()
    for line in mermaid.splitlines():
        match = _EDGE.match(line)
        if match:
            found.add((match[1], match[2], match[3], bool(match[4])))
    return found


@pytest.mark.parametrize(
    ("name", "contract", "forced", "initial"),
    [
        ("lead", LEAD_CONTRACT, LEAD_FORCED, "raw"),
        ("opportunity", STAGE_CONTRACT, STAGE_FORCED, "appointment_set"),
    ],
)
def test_diagram_draws_every_route_of_the_contract_as_mermaid(
    name: Any,
    contract: dict[tuple[str, str], str],
    forced: dict[tuple[str, str], str],
    initial: str,
) -> None:
    text = leadfunnel.diagram(name)
    lines = text.splitlines()
    assert lines[:4] == ["---", f"title: {name} lifecycle", "---", "stateDiagram-v2"]
    assert f"[*] --> {initial}" in text
    expected = {(s, d, t, False) for (s, t), d in contract.items()}
    expected |= {(s, d, t, True) for (s, t), d in forced.items()}
    assert _edges(text) == expected
    states = LEAD.states if name == "lead" else OPPORTUNITY.states
    for state in states:
        assert f'state "{state}" as {state}' in text
    # A definition diagram highlights no "current" state.
    assert "classDef" not in text
    assert text.endswith("\n")
    assert leadfunnel.diagram(name) == text


def test_diagram_defaults_to_the_lead_and_refuses_unknown_names() -> None:
    assert leadfunnel.diagram() == leadfunnel.diagram("lead")
    assert "prospect --> client: win" in leadfunnel.diagram("contact")
    with pytest.raises(ConfigError, match="choose 'lead' or 'opportunity'"):
        leadfunnel.diagram("deal")  # type: ignore[arg-type]


# --- no machine on the records ----------------------------------------------------------


def test_records_never_carry_a_machine_and_nothing_is_registered() -> None:
    funnel = Funnel()
    lead = funnel.add(Lead(first_name="Pat", email="pat@acme.example.com"))
    assert isinstance(lead, Lead)
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    funnel.sit(deal)
    for lifecycle in (LEAD, OPPORTUNITY, CONTACT):
        assert lifecycle.machine.models == []
    stored = funnel.get(lead.id)
    assert not hasattr(stored, "trigger")
    assert not hasattr(stored, "state")
    assert set(stored.model_dump()) == set(Lead.model_fields)
    assert isinstance(stored.model_dump_json(), str)


# --- funnel steps -----------------------------------------------------------------------


def test_funnel_steps_are_in_order() -> None:
    assert FUNNEL_STEPS == (
        "raw",
        "qualified",
        "appointment_set",
        "appointment_sat",
        "proposing",
        "contract_sent",
        "won",
    )


@pytest.mark.parametrize(
    ("subject", "source", "dest", "steps"),
    [
        ("lead", None, "raw", ("raw",)),
        ("lead", "suspect", "raw", ("raw",)),
        ("lead", "raw", "qualified", ("qualified",)),
        ("lead", None, "qualified", ("raw", "qualified")),  # stored or imported qualified
        ("lead", "unqualified", "qualified", ("raw", "qualified")),
        ("lead", "farm_list", "unqualified", ()),
        ("lead", "raw", "unqualified", ("unqualified",)),
        ("lead", "qualified", "converted", ()),
        ("lead", "raw", "converted", ("qualified",)),
        ("lead", "raw", "raw", ()),
        ("opportunity", None, "appointment_set", ("appointment_set",)),
        ("opportunity", "appointment_set", "appointment_set", ()),
        ("opportunity", "appointment_set", "appointment_sat", ("appointment_sat",)),
        ("opportunity", "proposing", "won", ("contract_sent", "won")),
        ("opportunity", "contract_sent", "won", ("won",)),
        ("opportunity", "proposing", "lost", ()),
        ("contact", None, "prospect", ()),
    ],
)
def test_funnel_steps_of_a_move(
    subject: str, source: str | None, dest: str, steps: tuple[str, ...]
) -> None:
    assert funnel_steps(subject, source, dest) == steps
