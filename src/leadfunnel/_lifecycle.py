"""The two lifecycles of the funnel, defined once with ``transitions``.

A lead moves through :class:`LeadStatus` and an opportunity through :class:`Stage`.
Each lifecycle is one module-level ``transitions.Machine`` with no model attached: its
definitions are the single source of truth, and everything else is derived from them:

* :func:`move` validates a trigger with a lookup table built from the machine's own
  events (a dict lookup per move instead of a trigger call on a bound model, and no
  per-record registration, which ``transitions`` makes quadratic);
* routes that need ``force=True`` are the transitions with the ``forced`` condition;
* the triggers listed in :class:`InvalidTransitionError` come from the same table;
* :func:`diagram` draws the same definitions as Mermaid text, with a separate
  diagram-only machine built on demand.

Records never carry a machine: the state stays a plain ``str`` enum field on the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transitions import Machine

from ._enums import ContactType, LeadStatus, Stage
from ._errors import ConfigError, InvalidTransitionError

__all__ = ["EVENT_NAMES", "FUNNEL_STEPS", "TIMED_STEPS", "Lifecycle", "diagram", "funnel_steps"]

_FORCED = "forced"

_LEAD_STATES = [s.value for s in LeadStatus]
_LEAD_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "farm", "source": "suspect", "dest": "farm_list"},
    {"trigger": "respond", "source": ["suspect", "farm_list"], "dest": "raw"},
    {"trigger": "qualify", "source": ["raw", "unqualified"], "dest": "qualified"},
    {"trigger": "disqualify", "source": ["farm_list", "raw", "qualified"], "dest": "unqualified"},
    {"trigger": "convert", "source": "qualified", "dest": "converted"},
    # A referral who called in can be booked before anyone qualified them.
    {"trigger": "convert", "source": "raw", "dest": "converted", "conditions": _FORCED},
    {
        "trigger": "avoid",
        "source": [s for s in _LEAD_STATES if s != "avoid"],
        "dest": "avoid",
    },
]

_OPEN_STAGES = ["appointment_set", "appointment_sat", "proposing", "contract_sent"]
_STAGE_STATES = [s.value for s in Stage]
_STAGE_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "sit", "source": "appointment_set", "dest": "appointment_sat"},
    {"trigger": "propose", "source": "appointment_sat", "dest": "proposing"},
    {"trigger": "send_contract", "source": "proposing", "dest": "contract_sent"},
    {"trigger": "win", "source": "contract_sent", "dest": "won"},
    # A deal closed on the spot, without a formal contract step.
    {"trigger": "win", "source": "proposing", "dest": "won", "conditions": _FORCED},
    {"trigger": "lose", "source": _OPEN_STAGES, "dest": "lost"},
    {"trigger": "reschedule", "source": "appointment_set", "dest": "appointment_set"},
]

# Contacts have no funnel of their own; their type changes by what happens to their
# deals, and by ``avoid``.
_CONTACT_STATES = [t.value for t in ContactType]
_CONTACT_TRANSITIONS: list[dict[str, Any]] = [
    # Anyone who has paid us is a client (DESIGN 1 and 3): a contact that one deal
    # made unqualified (lost as unqualified) becomes one when another deal is won.
    {"trigger": "win", "source": [t for t in _CONTACT_STATES if t != "avoid"], "dest": "client"},
    {"trigger": "disqualify", "source": "prospect", "dest": "unqualified"},
    {
        "trigger": "avoid",
        "source": [t for t in _CONTACT_STATES if t != "avoid"],
        "dest": "avoid",
    },
]


@dataclass(frozen=True, slots=True)
class _Route:
    dest: str
    forced: bool


class Lifecycle:
    """One lifecycle: its ``transitions`` machine and the lookup table derived from it."""

    def __init__(
        self,
        subject: Literal["lead", "contact", "opportunity"],
        states: Sequence[str],
        transitions: list[dict[str, Any]],
        initial: str,
    ) -> None:
        self.subject = subject
        self.states = tuple(states)
        self.initial = initial
        self._definitions = transitions
        self.machine = Machine(
            model=None,
            states=list(states),
            transitions=transitions,
            initial=initial,
            auto_transitions=False,
            send_event=False,
        )
        # (state, trigger) -> routes, cheapest first (unforced before forced).
        table: dict[tuple[str, str], tuple[_Route, ...]] = {}
        for trigger, event in self.machine.events.items():
            for source, candidates in event.transitions.items():
                routes = [
                    _Route(
                        dest=source if t.dest is None else t.dest,
                        forced=any(c.func == _FORCED for c in t.conditions),
                    )
                    for t in candidates
                ]
                routes.sort(key=lambda r: r.forced)
                table[(source, trigger)] = tuple(routes)
        self._table = table
        self._allowed: dict[str, tuple[str, ...]] = {
            state: tuple(
                sorted({trig for (src, trig) in table if src == state}, key=self.triggers.index)
            )
            for state in self.states
        }

    @property
    def triggers(self) -> list[str]:
        """Every trigger of the lifecycle, in definition order."""
        return list(self.machine.events)

    def allowed(self, state: str) -> tuple[str, ...]:
        """The triggers allowed from ``state`` (with or without ``force``)."""
        return self._allowed.get(state, ())

    def can(self, state: str, trigger: str, *, force: bool = False) -> bool:
        """Whether ``trigger`` is allowed from ``state``."""
        routes = self._table.get((state, trigger), ())
        return any(force or not r.forced for r in routes)

    def move(self, state: str, trigger: str, *, force: bool = False) -> str:
        """The state ``trigger`` leads to from ``state``, or :class:`InvalidTransitionError`."""
        routes = self._table.get((state, trigger))
        if routes is not None:
            for route in routes:
                if force or not route.forced:
                    return route.dest
            raise InvalidTransitionError(
                self.subject,
                state,
                trigger,
                self.allowed(state),
                hint=f"{trigger!r} from {state!r} needs force=True",
            )
        if trigger not in self.machine.events:
            raise ConfigError(
                f"{trigger!r} is not a {self.subject} trigger; "
                f"the triggers are: {', '.join(self.triggers)}"
            )
        raise InvalidTransitionError(self.subject, state, trigger, self.allowed(state))

    def forced_routes(self) -> list[tuple[str, str, str]]:
        """``(trigger, source, dest)`` of every route that needs ``force=True``."""
        return [
            (trigger, source, route.dest)
            for (source, trigger), routes in self._table.items()
            for route in routes
            if route.forced
        ]

    def diagram(self) -> str:
        """The lifecycle as a Mermaid ``stateDiagram-v2``."""
        from transitions.extensions.diagrams import GraphMachine

        class _Holder:
            pass

        labelled = []
        for definition in self._definitions:
            d = dict(definition)
            if d.pop("conditions", None) == _FORCED:
                # A diagram has no condition to evaluate; show the route's requirement.
                d["trigger"] = f"{d['trigger']} (force)"
            labelled.append(d)
        title = f"{self.subject} lifecycle"
        graph = GraphMachine(
            model=None,
            states=list(self.states),
            transitions=labelled,
            initial=self.initial,
            auto_transitions=False,
            graph_engine="mermaid",
            title=title,
            show_conditions=False,
        )
        holder = _Holder()
        graph.add_model(holder)
        text: str = holder.get_graph().draw(None)  # type: ignore[attr-defined]
        # transitions writes the bare title as front matter; Mermaid reads "title: ...".
        text = text.replace(f"---\n{title}\n---", f"---\ntitle: {title}\n---", 1)
        return _strip_highlighting(text)


def _strip_highlighting(mermaid: str) -> str:
    # The mermaid engine paints the holder's current state as "active": meaningless for
    # a definition diagram, and it makes the output depend on the holder.
    lines = [
        line.rstrip()
        for line in mermaid.splitlines()
        if not line.strip().startswith(("classDef ", "Class "))
    ]
    return "\n".join(lines).strip() + "\n"


LEAD = Lifecycle("lead", _LEAD_STATES, _LEAD_TRANSITIONS, initial="raw")
OPPORTUNITY = Lifecycle("opportunity", _STAGE_STATES, _STAGE_TRANSITIONS, "appointment_set")
CONTACT = Lifecycle("contact", _CONTACT_STATES, _CONTACT_TRANSITIONS, initial="prospect")

_BY_NAME = {"lead": LEAD, "opportunity": OPPORTUNITY, "contact": CONTACT}


#: The steps of the sales funnel, in order. ``raw`` and ``qualified`` count leads; the
#: later steps count opportunities.
FUNNEL_STEPS: tuple[str, ...] = (
    "raw",
    "qualified",
    "appointment_set",
    "appointment_sat",
    "proposing",
    "contract_sent",
    "won",
)
_OPPORTUNITY_STEPS = FUNNEL_STEPS[2:]
#: The states a lead disqualified from counts as one of the raw leads it was.
_WAS_RAW = frozenset({"raw", "qualified"})
#: What a lead reaches when it becomes qualified other than from raw.
_RAW_AND_QUALIFIED = ("raw", "qualified")

#: The milestones time in stage is measured between: ``TIMED_STEPS[i]`` to
#: ``TIMED_STEPS[i + 1]`` (raw -> qualified -> appointment set -> sat -> won).
TIMED_STEPS: tuple[str, ...] = ("raw", "qualified", "appointment_set", "appointment_sat", "won")

#: Every name a funnel gives its events (``Event.name``): the triggers of the three
#: lifecycles, and the changes that move no state or make a record. An event consumer
#: compares against these (a misspelt ``"won"`` would match nothing); ``docs/events.md``
#: says what each records.
EVENT_NAMES: frozenset[str] = frozenset(
    {
        *LEAD.triggers,
        *CONTACT.triggers,
        *OPPORTUNITY.triggers,
        "add",
        "capture",
        "import",
        "update",
        "touch",
        "set_appointment",
        "merge",
        "unmerge",
        "erase",
    }
)


def funnel_steps(subject: str, source: str | None, dest: str | None) -> tuple[str, ...]:
    """The funnel steps a move from ``source`` to ``dest`` brings its subject to.

    A move that skips a step reaches it too, at the same moment: a forced conversion of
    a raw lead reaches ``qualified``; a forced win from ``proposing`` reaches
    ``contract_sent`` and ``won``; a lead that arrives qualified (stored or imported as
    such) or is qualified again from unqualified reaches ``raw`` with ``qualified``, so
    that a qualified lead is always one of the raw leads (one disqualified from a farm
    list was never raw; one that was raw before keeps its first arrival there, which
    time in stage and the follow-up cadence read). An event that moves nothing reaches
    nothing.

    Besides the steps of :data:`FUNNEL_STEPS`, a raw or qualified lead that is
    disqualified reaches the ``unqualified`` milestone, which reports count as a share
    of raw leads: a suspect or farm-list lead disqualified was never raw, and does not.
    """
    if source == dest or dest is None:
        return ()
    if subject == "lead":
        if dest == "qualified":
            return ("qualified",) if source == "raw" else _RAW_AND_QUALIFIED
        if dest == "raw":
            return ("raw",)
        if dest == "unqualified":
            return ("unqualified",) if source in _WAS_RAW else ()
        if dest == "converted" and source == "raw":
            return ("qualified",)
        return ()
    if subject == "opportunity" and dest in _OPPORTUNITY_STEPS:
        end = _OPPORTUNITY_STEPS.index(dest) + 1
        start = _OPPORTUNITY_STEPS.index(source) + 1 if source in _OPPORTUNITY_STEPS else 0
        return _OPPORTUNITY_STEPS[min(start, end - 1) : end]
    return ()


def diagram(lifecycle: Literal["lead", "opportunity", "contact"] = "lead") -> str:
    """The lifecycle of a lead or an opportunity as Mermaid text.

    >>> print(diagram("opportunity"))  # doctest: +ELLIPSIS
    ---
    ...
    """
    try:
        return _BY_NAME[lifecycle].diagram()
    except KeyError:
        raise ConfigError(
            f"no lifecycle named {lifecycle!r}; choose 'lead' or 'opportunity'"
        ) from None
