"""The deal stages: an opportunity moves from an appointment set to won or lost.

``sit``, ``propose``, ``send_contract``, ``win``, ``lose`` and ``reschedule`` move one
opportunity along the :data:`~leadfunnel._lifecycle.OPPORTUNITY` lifecycle; winning makes
its contact a client, losing for ``unqualified`` or ``avoid`` moves the contact too, and
an avoided contact's other open deals are closed in the same change.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import pydantic

from ._changes import _field_adapter, checked, event, load, member, moved, require_aware
from ._enums import ContactType, LostReason, Stage
from ._errors import InvalidArgumentError
from ._leads import unfit
from ._lifecycle import CONTACT, OPPORTUNITY
from ._models import Contact, Opportunity
from ._privacy import suppress_former_keys
from ._repository import ChangeSet, Repository

__all__ = ["lose", "lose_open_deals", "move_deal", "reschedule", "win"]

_CONTACT_TRIGGER_OF_LOSS = {LostReason.UNQUALIFIED: "disqualify", LostReason.AVOID: "avoid"}


def move_deal(
    repository: Repository,
    deal_id: UUID,
    trigger: str,
    *,
    now: datetime,
    actor: str | None,
    reason: str | None,
    force: bool = False,
    data: dict[str, Any] | None = None,
    contact_trigger: str | None = None,
    **changes: Any,
) -> Opportunity:
    """Fire ``trigger`` on the deal (and ``contact_trigger`` on its contact) and commit.
    A deal (or contact) of an application's class is validated as it (its validators
    run on the moved record); one it refuses is an
    :class:`~leadfunnel.InvalidTransitionError`, and nothing is stored."""
    deal: Opportunity = load(repository, deal_id, Opportunity)
    source = deal.stage.value
    dest = OPPORTUNITY.move(source, trigger, force=force)
    if dest in ("won", "lost"):
        changes["closed_at"] = now
    changes["stage"] = Stage(dest)
    after = moved(deal, now, changes, trigger)
    change_set = ChangeSet(
        updates=[after],
        events=[event(after, trigger, source, dest, now, actor, reason, data)],
    )
    if contact_trigger is not None:
        _move_contact(repository, deal.contact_id, contact_trigger, now, actor, reason, change_set)
    repository.commit(change_set)
    return after


def win(
    repository: Repository,
    deal_id: UUID,
    *,
    amount: Decimal | int | float | str | None,
    force: bool,
    now: datetime,
    actor: str | None,
    reason: str | None,
) -> Opportunity:
    """Closed won; the contact becomes a client. ``amount`` is read as the registered
    deal class reads its ``amount`` field (an application's may allow more decimals)."""
    changes: dict[str, Any] = {}
    if amount is not None:
        changes["amount"] = _money(
            cast(type[Opportunity], repository.models["opportunity"]), amount
        )
    return move_deal(
        repository,
        deal_id,
        "win",
        now=now,
        actor=actor,
        reason=reason,
        force=force,
        data={"amount": str(changes["amount"])} if changes else None,
        contact_trigger="win",
        **changes,
    )


def lose(
    repository: Repository,
    deal_id: UUID,
    *,
    reason: LostReason | str,
    note: str | None,
    now: datetime,
    actor: str | None,
) -> Opportunity:
    """Closed lost for ``reason``; ``unqualified`` and ``avoid`` move the contact too."""
    lost = member(LostReason, reason, "reason")
    note = checked(repository.models["opportunity"], "lost_note", note)
    return move_deal(
        repository,
        deal_id,
        "lose",
        now=now,
        actor=actor,
        reason=note or lost.value,
        data={"lost_reason": lost.value},
        contact_trigger=_CONTACT_TRIGGER_OF_LOSS.get(lost),
        lost_reason=lost,
        lost_note=note,
    )


def reschedule(
    repository: Repository,
    deal_id: UUID,
    *,
    appointment_at: datetime,
    now: datetime,
    actor: str | None,
    reason: str | None,
) -> Opportunity:
    """Move a set appointment to a new time."""
    appointment_at = require_aware(appointment_at, "appointment_at")
    deal: Opportunity = load(repository, deal_id, Opportunity)
    data = {
        "from": deal.appointment_at.isoformat() if deal.appointment_at else None,
        "to": appointment_at.isoformat(),
    }
    return move_deal(
        repository,
        deal_id,
        "reschedule",
        now=now,
        actor=actor,
        reason=reason,
        data=data,
        appointment_at=appointment_at,
    )


def lose_open_deals(
    repository: Repository,
    contact: Contact,
    now: datetime,
    actor: str | None,
    reason: str | None,
    changes: ChangeSet,
) -> None:
    """Close ``contact``'s open deals as lost, reason ``avoid``, into ``changes`` (those
    it does not change already). The commit fails if the contact has another number of
    deals by then (``deals_read``): a deal booked in between, which changes no version,
    is closed too when the change is tried again, never left open on an avoided
    person."""
    changing = {record.id for record in changes.updates}
    deals = repository.opportunities(contact_id=contact.id)
    changes.deals_read[contact.id] = len(deals)
    for deal in deals:
        if not deal.is_open or deal.id in changing:
            continue
        source = deal.stage.value
        dest = OPPORTUNITY.move(source, "lose")
        lost = moved(
            deal,
            now,
            {"stage": Stage(dest), "lost_reason": LostReason.AVOID, "closed_at": now},
            "lose",
        )
        changes.updates.append(lost)
        changes.events.append(
            event(
                lost,
                "lose",
                source,
                dest,
                now,
                actor,
                reason or LostReason.AVOID.value,
                {"lost_reason": LostReason.AVOID.value},
            )
        )


def _move_contact(
    repository: Repository,
    contact_id: UUID,
    trigger: str,
    now: datetime,
    actor: str | None,
    reason: str | None,
    changes: ChangeSet,
) -> None:
    contact = repository.get_many([contact_id]).get(contact_id)
    if not isinstance(contact, Contact):
        return
    source = contact.type.value
    if not CONTACT.can(source, trigger):
        return  # a client stays a client, an avoided contact stays avoided
    dest = CONTACT.move(source, trigger)
    if dest == source:
        return
    fields: dict[str, Any] = {"type": ContactType(dest)}
    if dest == ContactType.UNQUALIFIED:
        fields.update(unfit(contact))
    after = moved(contact, now, fields, trigger)
    changes.updates.append(after)
    changes.events.append(event(after, trigger, source, dest, now, actor, reason))
    if dest == ContactType.AVOID:
        lose_open_deals(repository, after, now, actor, reason, changes)
        # As avoid() does: the keys the person edited away before stay avoided too.
        suppress_former_keys(repository, contact.id, changes)


def _money(model: type[Opportunity], value: Any) -> Any:
    """``value`` as ``model``'s ``amount`` field reads it (its type and constraints: an
    application's class may allow more decimals, or fewer); else an
    :class:`~leadfunnel.InvalidArgumentError` saying what it accepts."""
    try:
        checked = _field_adapter(model, "amount").validate_python(value)
    except pydantic.ValidationError as exc:
        field, base = model.model_fields["amount"], Opportunity.model_fields["amount"]
        own = (field.annotation, field.metadata) == (base.annotation, base.metadata)
        accepted = (
            "a number of at least 0 with at most two decimal places"
            if own
            else f"an amount {model.__name__}.amount accepts"
        )
        raise InvalidArgumentError(
            f"amount={value!r} is not a valid amount: {exc.errors()[0]['msg']}; give {accepted}"
        ) from None
    return checked
