"""Duplicates: find the likely ones, merge two into one, and undo a merge exactly.

``add`` refuses exact duplicates (same e-mail or phone); :func:`similar` finds what it
cannot refuse (same company e-mail domain, same company, a close name). A merge keeps
one record, fills its empty fields from the other, moves the other's touches, deals and
history onto it and keeps a merge log, from which :func:`unmerge` restores both.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from ._changes import MANAGED, bump, event, fill_from, load, refuse_before, refuse_overtaken
from ._enums import ContactType, LeadStatus
from ._errors import (
    InvalidArgumentError,
    InvalidTransitionError,
    NotFoundError,
    PolicyError,
)
from ._leads import SWEET_SPOT
from ._lifecycle import LEAD
from ._models import Contact, Lead, Opportunity, identity_keys, is_avoided, new_id, state_of
from ._privacy import suppress_former_keys
from ._repository import ChangeSet, MergeLog, Move, Repository, fold_name
from ._suppression import RETURNED_KEYS, Suppressor, dropped_digests

__all__ = ["FREE_MAIL_DOMAINS", "merge", "similar", "unmerge"]

#: Free-mail providers: sharing one of these domains says nothing about a company.
FREE_MAIL_DOMAINS = frozenset(
    {
        "aol.com",
        "gmail.com",
        "googlemail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "hotmail.com",
        "hotmail.co.uk",
        "icloud.com",
        "live.com",
        "mac.com",
        "mail.com",
        "mail.ru",
        "me.com",
        "msn.com",
        "outlook.com",
        "proton.me",
        "protonmail.com",
        "qq.com",
        "web.de",
        "yahoo.co.uk",
        "yahoo.com",
        "yandex.ru",
        "zoho.com",
    }
)


#: The most people of each kind sharing a clue that ``similar`` scores (oldest first):
#: enough for a CRM with a thousand Smiths, at about 50 us a candidate when saturated.
_CANDIDATES = 2_000


def similar(
    repository: Repository,
    subject_id: UUID,
    *,
    free_mail_domains: frozenset[str],
    limit: int | None,
) -> list[Lead | Contact]:
    """Likely duplicates of the subject, best first (each clue adds to the score)."""
    record: Lead | Contact = load(repository, subject_id, (Lead, Contact))
    domain = record.email.rpartition("@")[2].lower() if record.email else None
    if domain in free_mail_domains:
        domain = None
    # Among leads and contacts both: a new lead from a client's company is flagged
    # against that contact. The record's own other self (the lead it came from, the
    # contact it became) is no duplicate.
    # So are the other leads converted into the same contact (two people's contacts
    # merged since: one person now).
    linked = {getattr(record, "contact_id", None), getattr(record, "lead_id", None)}
    linked.discard(None)
    candidates = [
        other
        for kind in ("lead", "contact")
        for other in repository.people_like(
            email_domain=domain,
            company=record.company,
            last_name=record.last_name,
            kind=kind,
            limit=_CANDIDATES,
        )
        if other.id not in linked
        and record.id not in (getattr(other, "contact_id", None), getattr(other, "lead_id", None))
        and getattr(other, "contact_id", None) not in linked
    ]
    # A converted lead's person is its contact now: the contact is the one to show (and
    # the one a merge can take), once, whichever of the two shared the clue.
    shown = {other.id for other in candidates}
    contacts = {
        other.contact_id
        for other in candidates
        if isinstance(other, Lead) and other.contact_id is not None
    }
    found = repository.get_many(contacts - shown) if contacts - shown else {}
    candidates = [
        other
        for other in candidates
        if not (isinstance(other, Lead) and other.contact_id is not None)
    ] + [
        other for other in found.values() if isinstance(other, Contact) and other.erased_at is None
    ]
    # Names and companies compared as the store finds them (case, accents, spaces and
    # punctuation aside: see trait_key), but whole.
    name = fold_name(record.full_name)
    company = fold_name(record.company) if record.company else None
    scored: list[tuple[float, Lead | Contact]] = []
    for other in candidates:
        if other.id == record.id:
            continue
        # The name weighs most: the same person under the same name (a badge scan, a
        # second inquiry) is likelier a duplicate than a colleague sharing the company's
        # e-mail domain or its name, who is most often someone else.
        score = 0.0
        if domain and other.email and other.email.rpartition("@")[2].lower() == domain:
            score += 0.25
        if company and other.company and company == fold_name(other.company):
            score += 0.2
        other_name = fold_name(other.full_name)
        if name and other_name:
            ratio = difflib.SequenceMatcher(None, name, other_name).ratio()
            if ratio >= 0.8:
                score += 0.5 * ratio
        if score > 0:  # any one clue makes a likely duplicate
            scored.append((score, other))
    scored.sort(key=lambda pair: -pair[0])
    return [other for _, other in scored[:limit]]


def merge(
    repository: Repository,
    keep_id: UUID,
    other_id: UUID,
    *,
    now: datetime,
    actor: str | None,
    reason: str | None,
) -> Lead | Contact:
    """Merge ``other`` into ``keep``; return the merged ``keep``."""
    kept: Lead | Contact = load(repository, keep_id, (Lead, Contact))
    gone: Lead | Contact = load(repository, other_id, (Lead, Contact))
    _check_mergeable(kept, gone)
    field_name = "contact_id" if isinstance(gone, Contact) else "lead_id"
    deals = (
        repository.opportunities(contact_id=gone.id)
        if isinstance(gone, Contact)
        else repository.opportunities(lead_id=gone.id)
    )
    gone_touches, gone_events = repository.touches(gone.id), repository.history(gone.id)
    gone_leads = _leads_of(repository, gone, gone.id, deals)
    # What the merge moves to keep, and their histories, would read changes of the
    # record (its edits, touches, events, its deals' and its lead's changes) after the
    # merge removed it. Each date after the merge's is checked on its own: one dated
    # ahead of the clock lets only itself through.
    dates = {gone.updated_at, *(r.updated_at for r in (*deals, *gone_leads))}
    dates.update(touch.at for touch in gone_touches)
    dates.update(event.at for event in gone_events)
    for last in sorted(d for d in dates if d > now):
        refuse_before(
            now,
            last,
            gone,
            f"a change of {gone.kind} {gone.id} or of what it holds",
            "a merge is dated at or after what it merges",
        )
    if is_avoided(kept) and not is_avoided(gone) and any(d.is_open for d in deals):
        raise PolicyError(
            f"{kept.kind} {kept.id} is on the avoid list and {gone.kind} {gone.id} has "
            f"open deals: avoid {gone.id} first (that closes them as lost), then merge"
        )
    filled = merge_changes(kept, gone)
    merged = bump(kept, now, **filled)
    touches = tuple(t.id for t in gone_touches)
    events = tuple(e.id for e in gone_events)
    moved_deals = [bump(d, now, **{field_name: kept.id}) for d in deals]
    # The lead that became ``other`` now points at ``keep``: no dangling contact_id.
    moved_leads = [bump(lead, now, contact_id=kept.id) for lead in gone_leads]
    changes = ChangeSet(
        updates=[merged, *moved_deals, *moved_leads],
        deletes=[gone],
        moves=[Move(touches, events, kept.id)],
        # What was read of ``other`` is what moves: a touch, capture or booking on it
        # committed in between (none changes its version) fails the merge, which reads
        # again (``retrying``), rather than be left pointing at a deleted record.
        touches_read={gone.id: len(touches)},
        events_read={gone.id: len(events)},
        deals_read={gone.id: len(deals)},
        add_merge=MergeLog(
            id=new_id(),
            keep_id=kept.id,
            at=now,
            keep_before=kept,
            other=gone,
            keep_version=merged.version,
            touch_ids=touches,
            event_ids=events,
            opportunities_before=tuple(deals),
        ),
    )
    if is_avoided(kept):
        # The avoided person now includes ``other``: the keys it edited away before
        # (its history moves here) stay avoided, as when the merge comes first and the
        # avoidance after (which reads them from keep's history). Kept on keep's behalf.
        suppress_former_keys(repository, gone.id, changes, on_behalf_of=kept.id)
    other = {"other_id": str(gone.id)}
    fields = {**other, "fields": sorted(filled)}
    changes.events.append(
        event(merged, "merge", state_of(kept), state_of(merged), now, actor, reason, fields)
    )
    # One event per changed record: each re-pointed deal and lead says where it went.
    for deal in moved_deals:
        stage = deal.stage.value
        data = {field_name: str(kept.id), **other}
        changes.events.append(event(deal, "merge", stage, stage, now, actor, reason, data))
    for lead in moved_leads:
        status = lead.status.value
        data = {"contact_id": str(kept.id), **other}
        changes.events.append(event(lead, "merge", status, status, now, actor, reason, data))
    repository.commit(changes)
    return merged


def _refuse_given_back_before(record: Opportunity | Lead, now: datetime) -> None:
    """An :class:`InvalidArgumentError` for an unmerge dated ``now`` that gives
    ``record`` (a deal, or a converted lead) back to another person before its last
    change: its history (and a deal's time in stage) would read the change after the
    unmerge (unless that change is dated ahead of the clock, see
    :func:`~leadfunnel._changes.ahead_of_clock`)."""
    refuse_before(
        now,
        record.updated_at,
        record,
        f"the last change of {'deal' if isinstance(record, Opportunity) else 'lead'} {record.id}",
        "an unmerge is dated at or after the deals and leads it gives back",
    )


def unmerge(
    repository: Repository,
    keep_id: UUID,
    *,
    suppressor: Suppressor,
    now: datetime,
    actor: str | None,
    reason: str | None,
) -> Lead | Contact:
    """Undo the last merge into ``keep``; return ``keep`` as it was before it."""
    kept: Lead | Contact = load(repository, keep_id, (Lead, Contact))
    log = repository.last_merge(kept.id)
    if log is None:
        raise _no_merge(kept)
    if now < log.at:
        # Its history would read the unmerge before the merge it undoes (and a move
        # dated between them would pass the check of moved()), whatever the clock says.
        refuse_overtaken(now, log.at, kept)
        raise InvalidArgumentError(
            f"at={now.isoformat()} is before the merge it undoes ({log.at.isoformat()}): "
            "an unmerge is dated at or after its merge, whatever the funnel's clock says; "
            f"give an at= at or after {log.at.isoformat()}"
        )
    refuse_before(
        now,
        kept.updated_at,
        kept,
        f"the {kept.kind}'s last change",
        "an unmerge is dated at or after what it undoes",
    )
    if kept.version != log.keep_version:
        # Later merges into keep, since undone, bumped its version and changed
        # nothing else: compare with what this merge made, not with its version.
        made = log.keep_before.model_copy(update=merge_changes(log.keep_before, log.other))
        ignore = {"version", "updated_at"}
        now_fields, made_fields = kept.model_dump(exclude=ignore), made.model_dump(exclude=ignore)
        if now_fields != made_fields:
            changed = sorted(n for n in now_fields if now_fields[n] != made_fields.get(n))
            raise _changed_since_merge(kept, log.other, changed)
    if is_avoided(kept):
        # The record merged in would come back with keys the avoid list refuses (every
        # key an avoided person ever held stays refused, merged-away ones included:
        # DESIGN 12), a person not avoided holding avoided keys.
        raise PolicyError(
            f"{kept.kind} {kept.id} is on the avoid list: its merge cannot be undone, as "
            "every e-mail and phone it holds, those of the records merged into it "
            "included, stays refused"
        )
    restored = log.keep_before.model_copy(
        update={"version": kept.version + 1, "updated_at": max(now, kept.updated_at)}
    )
    current = repository.get_many(o.id for o in log.opportunities_before)
    closed = [
        before.id
        for before in log.opportunities_before
        if before.is_open
        and (now_deal := current.get(before.id)) is not None
        and isinstance(now_deal, Opportunity)
        and not now_deal.is_open
    ]
    if closed:
        # Its contact's type follows from how it closed (won: a client; lost as
        # unqualified or avoid): given back to a contact restored as it was before,
        # the deal and the person would disagree.
        raise InvalidArgumentError(
            f"cannot unmerge {kept.kind} {kept.id}: the deal{'s' if len(closed) > 1 else ''} "
            f"{', '.join(map(str, closed))} that this merge moved to it closed since, and "
            f"{log.other.kind} {log.other.id} would come back as it was before, not as the "
            f"person that deal made: split the two by hand instead: {_by_hand(kept, log.other)}"
        )
    deals = []
    for before in log.opportunities_before:
        now_deal = current.get(before.id)
        if not isinstance(now_deal, Opportunity):
            continue  # no longer stored: nothing to give back
        _refuse_given_back_before(now_deal, now)
        deals.append(
            before.model_copy(
                update={
                    **{n: getattr(now_deal, n) for n in type(before).model_fields},
                    "contact_id": before.contact_id,
                    "lead_id": before.lead_id,
                    "version": now_deal.version + 1,
                    "updated_at": max(now, now_deal.updated_at),
                }
            )
        )
    deals_read: dict[UUID, int] = {}
    if (
        isinstance(kept, Contact)
        and isinstance(restored, Contact)
        and kept.lead_id != restored.lead_id
    ):
        # The merge gave keep the other's lead: a deal booked on keep since took that
        # lead as its own, and goes back to keep's (the person it was booked with).
        given = {o.id for o in log.opportunities_before}
        booked = repository.opportunities(contact_id=kept.id)
        deals_read[kept.id] = len(booked)  # a booking in between fails the unmerge
        for deal in booked:
            if deal.id in given or deal.lead_id != kept.lead_id:
                continue
            _refuse_given_back_before(deal, now)
            deals.append(bump(deal, now, lead_id=restored.lead_id))
    leads = _leads_of(repository, log.other, kept.id, log.opportunities_before)
    for lead in leads:
        _refuse_given_back_before(lead, now)
    leads = [bump(lead, now, contact_id=log.other.id) for lead in leads]
    changes = ChangeSet(
        updates=[restored, *deals, *leads],
        inserts=[log.other],
        moves=[Move(log.touch_ids, log.event_ids, log.other.id)],
        remove_merge=log.id,
        deals_read=deals_read,
        read={kept.id: kept},
    )
    state, other_state = state_of(restored), state_of(log.other)
    data: dict[str, Any] = {"other_id": str(log.other.id)}
    returned = _returned_digests(repository, kept, log, suppressor)
    if returned:
        data[RETURNED_KEYS] = returned
    changes.events.append(event(restored, "unmerge", state, state, now, actor, reason, data))
    # One event per changed record: the restored duplicate and each deal given back.
    changes.events.append(
        event(
            log.other,
            "unmerge",
            other_state,
            other_state,
            now,
            actor,
            reason,
            {"keep_id": str(restored.id)},
        )
    )
    for deal in deals:
        stage = deal.stage.value
        data = {
            "contact_id": str(deal.contact_id),
            "lead_id": str(deal.lead_id) if deal.lead_id else None,
        }
        changes.events.append(event(deal, "unmerge", stage, stage, now, actor, reason, data))
    for lead in leads:
        status = lead.status.value
        data = {"contact_id": str(log.other.id)}
        changes.events.append(event(lead, "unmerge", status, status, now, actor, reason, data))
    repository.commit(changes)
    return restored


def _returned_digests(
    repository: Repository, kept: Lead | Contact, log: MergeLog, suppressor: Suppressor
) -> list[str]:
    """The digests of the keys the unmerge gives back to ``log.other`` that ``kept``'s
    own history dropped (an edit took one of them off, another put it back, as the
    merge left it): ``other``'s keys again, they must not count as ``kept``'s former
    keys (an avoidance or erasure of ``kept`` would suppress them, and refuse ``other``'s
    person). Only digests the history holds already: none is stored anew."""
    moving = set(log.event_ids)  # other's own history, which goes back with it
    former = set(dropped_digests(e for e in repository.history(kept.id) if e.id not in moving))
    if not former:
        return []
    given = dict.fromkeys(suppressor.digest(key) for key in identity_keys(log.other))
    return [digest for digest in given if digest in former]


def _no_merge(kept: Lead | Contact) -> NotFoundError:
    """The error of an unmerge of a record with no merge to undo (the id is right)."""
    # Not NotFoundError's advice to check the id: the record was found.
    return NotFoundError(
        kept.id,
        "merge into record",
        message=f"{kept.kind} {kept.id} has no merge to undo: no record was merged into "
        "it, or every merge into it was undone already. unmerge() takes the record "
        f"another was merged into (merge's keep); funnel.history({kept.id}) lists its "
        "merge and unmerge events",
    )


def merge_changes(keep: Lead | Contact, other: Lead | Contact) -> dict[str, Any]:
    """What merging ``other`` into ``keep`` changes on ``keep``."""
    changes = fill_from(keep, other)
    # other's own e-mail and phone stay keys of the person, as other_emails/other_phones
    # when keep has (or just took) different ones.
    email = changes.get("email", keep.email)
    if other.email is not None and other.email.lower() != (email or "").lower():
        changes["other_emails"] = changes.get("other_emails", keep.other_emails) | {other.email}
    phone = changes.get("phone", keep.phone)
    if other.phone is not None and other.phone != phone:
        changes["other_phones"] = changes.get("other_phones", keep.other_phones) | {other.phone}
    if (
        isinstance(keep, Contact)
        and isinstance(other, Contact)
        and keep.lead_id is None
        and other.lead_id is not None
    ):
        changes["lead_id"] = other.lead_id  # keep is now the contact that lead became
    if (
        isinstance(keep, Contact)
        and isinstance(other, Contact)
        and other.type is ContactType.CLIENT
        and keep.type not in (ContactType.CLIENT, ContactType.AVOID)
    ):
        # A client is anyone who has paid us, and stays one (DESIGN 1, 3): the person
        # keep now is has, whatever keep's own deals say. (Avoided stays avoided.)
        changes["type"] = ContactType.CLIENT
    tags = changes.get("tags", keep.tags)
    if SWEET_SPOT in tags - keep.tags and not _in_sweet_spot(keep, changes):
        # The sweet spot is a judgment of keep's own state: a lead not qualified, or a
        # contact found unqualified, does not take it from the record merged into it.
        changes["tags"] = tags - {SWEET_SPOT}
        if changes["tags"] == keep.tags:
            del changes["tags"]
    return changes


def _in_sweet_spot(keep: Lead | Contact, changes: dict[str, Any]) -> bool:
    if isinstance(keep, Lead):
        return keep.status is LeadStatus.QUALIFIED
    return changes.get("type", keep.type) is not ContactType.UNQUALIFIED


def _changed_since_merge(
    kept: Lead | Contact, other: Lead | Contact, changed: list[str]
) -> InvalidArgumentError:
    # Not a ConcurrencyError: nobody holds a stale copy, and reading again changes
    # nothing. The fields are named, never their values (no personal data in errors).
    # A field the funnel's triggers manage (its state) cannot be put back by an edit.
    moved = [name for name in changed if name in MANAGED[kept.kind]]
    undo = (
        f"Its {', '.join(moved)} moved by a trigger since, which no edit undoes: split the "
        "two by hand instead"
        if moved
        else "Put the fields back as the merge left them and unmerge, or split the two by hand"
    )
    return InvalidArgumentError(
        f"cannot unmerge {kept.kind} {kept.id}: it changed after {other.kind} {other.id} "
        f"was merged into it ({', '.join(changed)}), and unmerge puts both records back "
        f"exactly as they were before the merge, which would undo those changes. {undo}: "
        + _by_hand(kept, other)
    )


def _by_hand(kept: Lead | Contact, other: Lead | Contact) -> str:
    """How to split two merged records when unmerge cannot."""
    return (
        f"take {other.id}'s e-mail and phone off {kept.id} with update() (other_emails, "
        "other_phones) and add that person again"
        + (
            " (not while the record is on the avoid list, which keeps those refused)"
            if is_avoided(kept)
            else ""
        )
    )


def _check_mergeable(kept: Lead | Contact, gone: Lead | Contact) -> None:
    if kept.id == gone.id:
        raise InvalidArgumentError(
            f"cannot merge {kept.kind} {kept.id} into itself; pass two different records"
        )
    if kept.kind != gone.kind:
        raise InvalidArgumentError(
            f"cannot merge a {gone.kind} into a {kept.kind}: merges take two records of "
            f"one kind; update the {kept.kind} with what the {gone.kind} adds instead"
        )
    for record in (kept, gone):
        if isinstance(record, Lead) and record.contact_id is not None:
            raise InvalidTransitionError(
                "lead",
                record.status.value,
                "merge",
                LEAD.allowed(record.status.value),
                hint=(
                    f"lead {record.id} was converted into contact {record.contact_id}, which "
                    "is its person now; merge that contact with another contact (merges take "
                    "two records of one kind), or update it with what a lead adds"
                ),
            )
    if is_avoided(gone) and not is_avoided(kept):
        raise PolicyError(
            f"{gone.kind} {gone.id} is on the avoid list: avoid {kept.id} first, "
            "or merge the other way round"
        )


def _leads_of(
    repository: Repository,
    contact: Lead | Contact,
    pointing_at: UUID,
    deals: Iterable[Opportunity],
) -> list[Lead]:
    """The leads converted into ``contact`` (directly, or into a contact merged into
    it: each left a deal) whose ``contact_id`` is ``pointing_at``."""
    if not isinstance(contact, Contact):
        return []
    ids = {i for i in (contact.lead_id, *(d.lead_id for d in deals)) if i is not None}
    return [
        lead
        for lead in repository.get_many(ids).values()
        if isinstance(lead, Lead) and lead.contact_id == pointing_at
    ]
