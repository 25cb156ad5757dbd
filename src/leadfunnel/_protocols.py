"""What the use cases need of the application's collaborators.

The funnel is configured with a qualification engine and, optionally, a router; both are
structural protocols, so anything with the right methods will do. They live here, below
every use case, so that no module has to import the facade (or another use case) to name
them.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._enums import LeadStatus
from ._models import Contact, Lead
from ._qualification import QualificationResult, lead_field, shown_name
from ._repository import when_stored

__all__ = ["Engine", "Router", "assign_owner", "routing_data"]


class Router(Protocol):
    """Assigns an owner to a new lead, and names who backs an owner up.

    A router that counts what it gives may also offer ``reserve(lead)`` (see
    :func:`assign_owner`), ``arrival_data(lead)`` (see :func:`routing_data`) and
    ``count_given(lead)``, as ``RoutingRules`` does."""

    def assign(self, lead: Lead) -> str | None:
        """The owner for a new lead, or ``None`` to leave it unassigned."""
        ...

    def backup_for(self, owner: str | None, lead: Lead | Contact | None = None) -> str | None:
        """Who takes over an overdue follow-up of ``owner``'s."""
        ...


class Engine(Protocol):
    """What ``Funnel`` needs of a qualification engine."""

    def evaluate(self, lead: Lead) -> QualificationResult:
        """Judge ``lead`` without changing anything."""
        ...


#: The statuses a lead is called in (the cadence's): only a lead that arrives in one,
#: or comes to be in one by responding, is routed. A suspect, farm-list, unqualified or
#: avoided lead is worked by campaigns and drip e-mail: it takes no owner's turn or
#: capacity.
_CALLED = frozenset({LeadStatus.RAW, LeadStatus.QUALIFIED})


def assign_owner(router: Router | None, lead: Lead) -> Lead:
    """``lead`` with the owner ``router`` gives it, unless it has one already (which a
    router that counts owners' days, as ``RoutingRules`` does, then counts: called
    only for a lead about to be stored, just before the commit that stores it). A
    lead that is not to be called (see ``_CALLED``) is left as it is.

    A router with ``reserve(lead) -> (owner, settle)`` (``RoutingRules``) counts the
    lead only once that commit is kept: ``settle`` is handed to the store
    (:func:`~leadfunnel._repository.when_stored`), which calls it with ``False`` if the
    commit fails or its transaction rolls back, giving the owner's capacity and turn
    back. Call it inside :func:`~leadfunnel._repository.settled_by_commit` with the
    commit, so that a failure before the commit (here too) gives them back as well."""
    if router is None or lead.status not in _CALLED:
        return lead
    reserve = getattr(router, "reserve", None)
    if reserve is not None:
        owner, settle = reserve(lead)
        if settle is not None:
            when_stored(lead.id, settle)
    elif lead.owner is not None:
        count_given = getattr(router, "count_given", None)
        if count_given is not None:
            count_given(lead)
        return lead
    else:
        owner = router.assign(lead)
    if lead.owner is not None or owner is None:
        return lead
    # A custom router's answer (RoutingRules checks its names when it is built).
    given = owner
    owner = lead_field(
        "owner",
        given,
        lambda problem: (
            f"the router {type(router).__name__} gave the owner {shown_name(given)}, "
            f"which a lead cannot hold ({problem}); fix the router's owner names"
        ),
    )
    return lead if owner is None else lead.model_copy(update={"owner": owner})


def routing_data(router: Router | None, lead: Lead | Contact) -> dict[str, Any]:
    """What the event recording the arrival of ``lead`` (or its response, when a
    response routed it) records of its routing, once :func:`assign_owner` handled it:
    a router that counts owners' days (``RoutingRules.arrival_data``) names the owner
    and day the lead counts against, so that a process that restarts counts it again
    (``RoutingRules.attach``). Empty otherwise."""
    arrival_data = getattr(router, "arrival_data", None)
    return {} if arrival_data is None else dict(arrival_data(lead))
