"""Conversion: an appointment is set, so the lead becomes a contact and a deal opens.

A qualified lead (a raw one with ``force=True``) is converted into a prospect
:class:`~leadfunnel.Contact` carrying every person field of the lead; an existing contact
(a prospect or client; an unqualified one with ``force=True``) just gets a new
:class:`~leadfunnel.Opportunity` at ``appointment_set``.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TypeVar
from uuid import UUID

import pydantic

from ._changes import checked, created, event, load, moved, refuse_before, registered
from ._enums import ContactType, LeadStatus, Stage
from ._errors import ConfigError, InvalidTransitionError
from ._lifecycle import LEAD
from ._models import Contact, Lead, Opportunity, _Person, _Stored
from ._repository import ChangeSet, Repository

_C = TypeVar("_C", bound=Contact)

__all__ = ["check_opportunity_model", "set_appointment"]

# The person fields a conversion copies from the lead onto its new contact: every field
# leads and contacts share, bar the stored record's own (id, timestamps, version).
_PERSON_FIELDS = tuple(name for name in _Person.model_fields if name not in _Stored.model_fields)


def set_appointment(
    repository: Repository,
    subject_id: UUID,
    *,
    contact_model: type[Contact] = Contact,
    opportunity_model: type[Opportunity] = Opportunity,
    appointment_at: datetime | None,
    owner: str | None,
    setter: str | None,
    force: bool,
    now: datetime,
    actor: str | None,
    reason: str | None,
) -> Opportunity:
    """Book an appointment on a lead or contact: open an opportunity (see module). A
    deal of an application's class is validated as it (see
    :func:`~leadfunnel._changes.registered`), and that class must be one a trigger can
    make (:func:`check_opportunity_model`)."""
    check_opportunity_model(opportunity_model)
    owner = checked(opportunity_model, "owner", owner)
    setter = checked(opportunity_model, "setter", setter)
    record: Lead | Contact = load(repository, subject_id, (Lead, Contact))
    changes = ChangeSet()
    if isinstance(record, Lead):
        contact = _convert(record, contact_model, owner, force, now, actor, reason, changes)
        lead_id: UUID | None = record.id
    else:
        contact = record
        _check_bookable(contact, force)
        # As a lead's conversion dated before its last change is (see ``moved``): the
        # deal's history, and the reports' time in stage, would start before the person
        # it is with.
        refuse_before(
            now,
            contact.created_at,
            contact,
            f"contact {contact.id} was created",
            "an appointment is booked at or after the contact came to be",
        )
        lead_id = contact.lead_id
        changes.checks.append(contact)  # not avoided or disqualified in the meantime
    opportunity = created(
        opportunity_model,
        now,
        contact_id=contact.id,
        lead_id=lead_id,
        owner=owner if owner is not None else contact.owner,
        setter=setter,
        stage=Stage.APPOINTMENT_SET,
        appointment_at=appointment_at,
        amount=None,
        lost_reason=None,
        lost_note=None,
        closed_at=None,
    )
    opportunity = registered(opportunity, "set_appointment", record)
    changes.inserts.append(opportunity)
    changes.events.append(
        event(
            opportunity,
            "set_appointment",
            None,
            "appointment_set",
            now,
            actor,
            reason,
            {"contact_id": str(contact.id)},
        )
    )
    repository.commit(changes)
    return opportunity


def _convert(
    record: Lead,
    contact_model: type[Contact],
    owner: str | None,
    force: bool,
    now: datetime,
    actor: str | None,
    reason: str | None,
    changes: ChangeSet,
) -> Contact:
    """Add to ``changes`` the lead's conversion into a new prospect contact; return it."""
    source = record.status.value
    if record.contact_id is not None:
        raise InvalidTransitionError(
            "lead",
            source,
            "convert",
            LEAD.allowed(source),
            hint=f"it became contact {record.contact_id}: set the appointment on it",
        )
    dest = LEAD.move(source, "convert", force=force)
    carried = {name: getattr(record, name) for name in _carried(type(record), contact_model)}
    if owner is not None:
        carried["owner"] = owner
    contact = created(
        contact_model,
        now,
        type=ContactType.PROSPECT,
        lead_id=record.id,
        **carried,
    )
    if contact_model is not Contact:
        contact = _validated(contact, record)
    lead = moved(
        record,
        now,
        {"status": LeadStatus(dest), "status_at": now, "contact_id": contact.id},
        "set_appointment",
    )
    changes.updates.append(lead)
    changes.inserts.append(contact)
    changes.events.append(
        event(lead, "convert", source, dest, now, actor, reason, {"contact_id": str(contact.id)})
    )
    changes.events.append(
        event(
            contact,
            "convert",
            None,
            contact.type.value,
            now,
            actor,
            reason,
            {"lead_id": str(lead.id)},
        )
    )
    return contact


def _validated(contact: _C, lead: Lead) -> _C:
    """``contact``, an application's own contact model made from ``lead``'s fields,
    validated whole: a custom field the lead holds may not suit the contact model's
    field of that name (another type, a tighter bound), and the model's own
    validators run. A :class:`~leadfunnel.ConfigError` names the fields (never their
    values: they may be personal data)."""
    model = type(contact)
    try:
        return model.model_validate(dict(contact.__dict__))
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False)
        lacking = [
            str(error["loc"][0])
            for error in errors
            if error["type"] == "missing"
            and len(error["loc"]) == 1
            and str(error["loc"][0]) not in type(lead).model_fields
        ]
        if lacking and len(lacking) == len(errors):
            fields = ", ".join(f"{model.__name__}.{name}" for name in lacking)
            one = len(lacking) == 1
            raise ConfigError(
                f"lead {lead.id} cannot become a {model.__name__}: {fields} "
                f"{'is' if one else 'are'} required (no default), and "
                f"{type(lead).__name__} has no such field for the conversion to copy: give "
                f"{'it' if one else 'each'} a default (`{lacking[0]}: str | None = None`, or "
                "a value), then set the value on the new contact with funnel.update()"
            ) from None
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'the contact'}: {error['msg']}"
            for error in errors
        )
        raise ConfigError(
            f"lead {lead.id} ({type(lead).__name__}) cannot become a {model.__name__}: "
            f"{problems}. A conversion copies the custom fields both models declare: make "
            f"{model.__name__}'s accept what {type(lead).__name__}'s hold, or name them "
            "differently"
        ) from None


#: What a conversion never copies, whatever the models declare: the stored record's own
#: fields, and each kind's state and links (the lead's status, its profile and the
#: contact it became; the contact's type and the lead it came from).
_NOT_CARRIED = frozenset(
    {*_Stored.model_fields, "status", "status_at", "profile", "contact_id", "type", "lead_id"}
)


@functools.cache
def _carried(lead_model: type[Lead], contact_model: type[Contact]) -> tuple[str, ...]:
    """The fields a conversion copies: every person field, and every other field both
    models declare (the application's own, and a lead's ``campaign``, ``needs`` or
    ``interest`` when the contact model declares one of that name too), but a state or
    a link (``_NOT_CARRIED``). A field only leads have stays there."""
    own = tuple(
        name
        for name in lead_model.model_fields
        if name in contact_model.model_fields
        and name not in _NOT_CARRIED
        and name not in _PERSON_FIELDS
    )
    return _PERSON_FIELDS + own


#: The fields ``set_appointment`` gives a new deal (besides id, times and version).
_FILLED = frozenset(
    {
        "contact_id",
        "lead_id",
        "owner",
        "setter",
        "stage",
        "appointment_at",
        "amount",
        "lost_reason",
        "lost_note",
        "closed_at",
        *_Stored.model_fields,
    }
)


@functools.cache
def check_opportunity_model(model: type[Opportunity]) -> None:
    """Refuse, with a :class:`~leadfunnel.ConfigError`, a deal class that
    ``set_appointment`` cannot make: one with a required field (no default) of the
    application's own. Deals are opened by ``set_appointment`` alone, which fills
    leadfunnel's fields, never the application's: such a class could hold no deal.
    (A funnel checks its ``opportunity_model`` when it is made.)"""
    if model is Opportunity or not isinstance(model, type) or not issubclass(model, Opportunity):
        return  # leadfunnel's own, or no class at all (which use_models refuses)
    required = [
        name
        for name, info in model.model_fields.items()
        if info.is_required() and name not in _FILLED
    ]
    if required:
        fields = ", ".join(f"{model.__name__}.{name}" for name in required)
        one = len(required) == 1
        raise ConfigError(
            f"{fields} {'is' if one else 'are'} required (no default), and "
            "set_appointment() opens every deal without a value for "
            f"{'it' if one else 'them'} (it fills leadfunnel's fields only): give "
            f"{'it' if one else 'each'} a default (`{required[0]}: str | None = None`, or "
            "a value), then set the value on the open deal with funnel.update()"
        )


def _check_bookable(contact: Contact, force: bool) -> None:
    state = contact.type.value
    if state in ("prospect", "client") or (force and state == "unqualified"):
        return
    raise InvalidTransitionError(
        "contact",
        state,
        "set_appointment",
        (),
        hint="appointments are for prospects and clients"
        + ("; pass force=True to book an unqualified contact" if state == "unqualified" else ""),
    )
