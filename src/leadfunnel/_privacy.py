"""Privacy: erase a person's personal data at once, and answer an access request.

:func:`erase` scrubs a person (the lead, the contact converted from it, and the leads
converted into that contact) in one commit: the personal fields become ``None``, touch
notes, event reasons and any event data naming the person are blanked, the person's
merge snapshots (both sides of each merge) lose every personal field, open deals are
lost, and the identity keys leave the key index, kept (with ``suppress=True``) only as
keyed hashes on the suppression list so the person stays avoided: those held now, those
in merge snapshots, and those edited away before. What reports count (states, sources,
owners, every event and funnel step) stays, so every report reads the same before and
after.

:func:`export_person` gathers everything stored about a person as JSON-ready data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from ._changes import bump, erased, event, load, retrying
from ._enums import LostReason, Stage
from ._errors import PolicyError
from ._lifecycle import OPPORTUNITY
from ._models import (
    DEFAULT_PHONE_REGION,
    Contact,
    Event,
    Lead,
    Opportunity,
    Text,
    email_keys,
    identity_keys,
    is_avoided,
    personal_fields,
)
from ._repository import ChangeSet, MergeLog, Repository, Suppression
from ._results import Serialised, model_data
from ._suppression import DROPPED_KEYS, RETURNED_KEYS, Suppressor, dropped_digests

__all__ = ["Erasure", "erase", "export_person", "suppress_former_keys"]

_P = TypeVar("_P", bound=Lead | Contact)


@dataclass(frozen=True, slots=True)
class Erasure(Serialised):
    """What :meth:`Funnel.erase` did: the records scrubbed, whether the person stays
    suppressed, and when."""

    subject_ids: tuple[UUID, ...]
    suppressed: bool
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """``{"subject_ids": [...], "suppressed": bool, "at": ISO 8601}``."""
        return {
            "subject_ids": [str(id) for id in self.subject_ids],
            "suppressed": self.suppressed,
            "at": self.at.isoformat(),
        }


@retrying
def erase(
    repository: Repository,
    subject_id: UUID,
    *,
    suppress: bool,
    suppressor: Suppressor,
    now: datetime,
    actor: str | None,
    reason: str | None,
    phone_region: str = DEFAULT_PHONE_REGION,
) -> Erasure:
    """Scrub the person ``subject_id`` belongs to, in one commit (see the module). An
    erasure that lost a race (the person was touched, captured or booked while it read
    them) reads them again (``retrying``). ``phone_region`` is the funnel's: phones
    written without their country code in ``reason`` are read in it."""
    people = _person(repository, subject_id, erased=False)
    ids = {record.id for record in people}
    logs, ids = _merges_into(repository, ids)
    # The merge snapshots are the person too (either side of each merge): what they
    # hold is scrubbed from data, and the keys in them suppressed, like the records'.
    snapshots = [s for log in logs for s in _snapshots_of(log, ids)]
    if not suppress and any(is_avoided(r) for r in people):
        raise PolicyError(
            f"{people[0].kind} {people[0].id} is on the avoid list, which keeps its "
            "e-mails and phones refused for good; erase it with suppress=True (the "
            "default; the CLI without --keep-nothing)"
        )
    keys = [key for record in (*people, *snapshots) for key in identity_keys(record)]
    changes = ChangeSet()
    lost_reason = LostReason.AVOID if suppress else LostReason.OTHER
    deals = [d for r in people if isinstance(r, Contact) for d in _deals_of(repository, r)]
    histories = {subject: repository.history(subject) for subject in (*ids, *(d.id for d in deals))}
    # Digests of keys the person edited away: those keys are known only so.
    former = dropped_digests(e for history in histories.values() for e in history)
    texts = _Personal.of([*people, *snapshots], keys, former, suppressor.digest, phone_region)
    reason = _redacted(reason, texts)
    for record in people:
        scrubbed = erased(_scrub_record(record), now, erased_at=now)
        changes.updates.append(scrubbed)
        state = scrubbed.status.value if isinstance(scrubbed, Lead) else scrubbed.type.value
        changes.events.append(
            event(scrubbed, "erase", state, state, now, actor, reason, {"suppressed": suppress})
        )
    for deal in deals:
        changes.updates.append(_closed(deal, lost_reason, now, actor, reason, changes))
    for subject, history in histories.items():
        # What was read is what is scrubbed: an event, touch or deal added in between
        # (a capture, a touch, a booking change no version) fails the commit, and the
        # erasure reads again (retrying), rather than leave it unscrubbed.
        changes.events_read[subject] = len(history)
        for stored in history:
            clean = _scrub_event(stored, texts)
            if clean != stored:
                changes.rewrites.append(clean)
    for subject in ids:
        touches = repository.touches(subject)
        changes.touches_read[subject] = len(touches)
        for logged in touches:
            if logged.note is not None:
                changes.rewrites.append(logged.model_copy(update={"note": None}))
    for record in people:
        if isinstance(record, Contact):
            changes.deals_read[record.id] = sum(1 for d in deals if d.contact_id == record.id)
    for log in logs:
        changes.rewrite_merges.append(_scrub_merge(log, ids))
    if suppress:
        changes.suppress = suppressor.suppress(keys, subject_id)
        known = {s.digest for s in changes.suppress}
        changes.suppress += [
            Suppression(d, subject_id) for d in dict.fromkeys(former) if d not in known
        ]
    repository.commit(changes)
    return Erasure(tuple(sorted(ids)), suppress, now)


def export_person(repository: Repository, subject_id: UUID) -> dict[str, Any]:
    """Everything stored about the person ``subject_id`` belongs to, JSON-ready."""
    people = _person(repository, subject_id, erased=True)
    ids = [record.id for record in people]
    deals = [d for r in people if isinstance(r, Contact) for d in _deals_of(repository, r)]
    subjects = [*ids, *(d.id for d in deals)]
    logs, _ = _merges_into(repository, set(ids))
    return {
        "records": _records(repository, [*people, *deals]),
        "touches": [model_data(t) for i in ids for t in repository.touches(i)],
        "events": [model_data(e) for i in subjects for e in repository.history(i)],
        "merges": [_merge(repository, log) for log in logs],
    }


def _records(repository: Repository, records: list[Any]) -> list[dict[str, Any]]:
    """``records`` as exported, each with the application's fields a funnel without
    its classes reads past: stored, so exported (as stored: JSON values)."""
    extras = repository.stored_extras(records)
    return [{**_record(record), **extras.get(record.id, {})} for record in records]


def suppress_former_keys(
    repository: Repository,
    subject_id: UUID,
    changes: ChangeSet,
    *,
    on_behalf_of: UUID | None = None,
) -> None:
    """Add to ``changes`` the suppression of every identity key the person
    ``subject_id`` belongs to edited away before (on the lead, the contact it became,
    and the records merged into either, whose history moved with them; not those an
    unmerge gave back to another record, see :func:`dropped_digests`): an avoided
    person stays avoided under the keys it held, not only those it holds now. The
    suppressions name ``on_behalf_of`` (default ``subject_id``): the avoided record a
    person merged into it became.

    The records whose history was read and that ``changes`` leaves alone become
    ``checks``: an edit of one committed meanwhile (dropping one more key) fails the
    change, which is retried, rather than let that key escape the avoid list."""
    people: list[Lead | Contact] = _person(repository, subject_id, erased=False)
    digests = dropped_digests(e for r in people for e in repository.history(r.id))
    known = {item.digest for item in changes.suppress}
    holder = subject_id if on_behalf_of is None else on_behalf_of
    changes.suppress += [Suppression(d, holder) for d in digests if d not in known]
    covered = {r.id for r in (*changes.updates, *changes.deletes, *changes.checks)}
    changes.checks.extend(r for r in people if r.id not in covered)


def _person(repository: Repository, subject_id: UUID, *, erased: bool = True) -> list[Any]:
    """The lead or contact ``subject_id``, and its other selves: the contact a lead was
    converted into, the leads converted into a contact."""
    # (A record merged away is a NotFoundError naming the record that holds its data.)
    record: Lead | Contact = load(repository, subject_id, (Lead, Contact), erased=erased)
    contact_id = record.contact_id if isinstance(record, Lead) else record.id
    found: dict[UUID, Lead | Contact] = {record.id: record}
    if contact_id is not None:
        contact = repository.get_many([contact_id]).get(contact_id)
        if isinstance(contact, Contact):
            found[contact.id] = contact
            # The leads converted into it: its own, and those of contacts merged into it
            # (each left a deal behind, naming its lead).
            deals = _deals_of(repository, contact)
            lead_ids = {i for i in (contact.lead_id, *(d.lead_id for d in deals)) if i}
            for lead in repository.get_many(lead_ids).values():
                if isinstance(lead, Lead) and lead.contact_id == contact.id:
                    found[lead.id] = lead
    return sorted(found.values(), key=lambda r: (r.kind != "lead", r.created_at, r.id))


def _deals_of(repository: Repository, contact: Contact) -> list[Opportunity]:
    return repository.opportunities(contact_id=contact.id)


def _closed(
    deal: Opportunity,
    lost_reason: LostReason,
    now: datetime,
    actor: str | None,
    reason: str | None,
    changes: ChangeSet,
) -> Opportunity:
    """The deal with its free text blanked, and lost (with its event) if it was open."""
    if not deal.is_open:
        return bump(deal, now, **_blank_deal(deal))
    source = deal.stage.value
    dest = OPPORTUNITY.move(source, "lose")
    lost = bump(
        deal,
        now,
        stage=Stage(dest),
        lost_reason=lost_reason,
        closed_at=now,
        **_blank_deal(deal),
    )
    data = {"lost_reason": lost_reason.value}
    changes.events.append(event(lost, "lose", source, dest, now, actor, reason, data))
    return lost


#: An e-mail address in free text: a run of characters without spaces or the
#: punctuation that brackets an address (``<zq@example.com>``, ``mailto:...``), with one
#: ``@`` inside. Broad on purpose: what it takes that is no address is blanked too.
_EMAIL = re.compile(r"[^\s<>()\[\]{},;:\"'`@]+@[^\s<>()\[\]{},;:\"'`@]+")
#: A run of digits written as a phone number may be: with spaces, dots, dashes,
#: slashes and brackets between them, a plus or bracket before (one line).
_DIGIT_RUN = re.compile(r"[+(]?\d[\d \t\u00a0().\-/]*\d")
#: A national number shorter than this is not looked for inside longer digit runs.
_SHORTEST_NUMBER = 6
#: What stands for a value erased from a text.
_ERASED = "[erased]"


@dataclass(frozen=True, slots=True)
class _Personal:
    """What an erasure looks for in text: the person's personal values.

    ``words``: the values of their personal fields (names, company, e-mails, ...) as
    whole words, any case, so that a first name "Al" does not match "qualified".
    ``keys`` and ``former``: their identity keys, and the digests of keys they edited
    away (kept only so), by which an e-mail or phone found in a text, written any way,
    is told to be theirs. ``numbers``: their phones' national numbers, found inside any
    digit run (``00 1 512 555 0177``)."""

    words: re.Pattern[str] | None
    keys: frozenset[str]
    former: frozenset[str]
    digest: Callable[[str], str]
    region: str
    numbers: tuple[str, ...]

    @classmethod
    def of(
        cls,
        people: Iterable[Lead | Contact],
        keys: Iterable[str],
        former: Iterable[str],
        digest: Callable[[str], str],
        region: str,
    ) -> _Personal:
        texts: set[str] = set()
        for record in people:
            for name in personal_fields(type(record)):
                value = getattr(record, name)
                values = value if isinstance(value, (frozenset, set, list, tuple)) else (value,)
                texts.update(str(v).strip() for v in values if v is not None and str(v).strip())
        words = None
        if texts:
            alternatives = "|".join(re.escape(t) for t in sorted(texts, key=len, reverse=True))
            words = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        keys = frozenset(keys)
        phones = sorted(k.partition(":")[2] for k in keys if k.startswith("phone:"))
        numbers = tuple(n for n in map(_national, phones) if len(n) >= _SHORTEST_NUMBER)
        return cls(words, keys, frozenset(former), digest, region, numbers)

    def _theirs(self, key: str) -> bool:
        """Whether the identity ``key`` is one the person holds or held."""
        return key in self.keys or bool(self.former and self.digest(key) in self.former)

    def _email(self, text: str) -> bool:
        return any(self._theirs(k) for k in email_keys(text.strip(".").lower()))

    def _phone(self, text: str) -> bool:
        """Whether the digit run ``text`` holds one of the person's phones."""
        digits = "".join(c for c in text if c.isdigit())
        if any(number in digits for number in self.numbers):
            return True
        if not self.former:
            return False
        e164 = _e164(text, self.region)
        return e164 is not None and self._theirs(f"phone:{e164}")

    def mentions(self, text: str) -> bool:
        """Whether ``text`` holds one of the person's values, written any way."""
        if self.words is not None and self.words.search(text):
            return True
        if "@" in text and any(self._email(m.group()) for m in _EMAIL.finditer(text)):
            return True
        return any(self._phone(m.group()) for m in _DIGIT_RUN.finditer(text))

    def redacted(self, text: str) -> str:
        """``text`` (free text) with every e-mail address and phone number in it
        replaced, whoever's (the person may have written from an address never stored,
        and the ones they edited away are kept only as digests), and so is any other
        value of theirs: their phones written any way, their personal fields' values."""
        text = _EMAIL.sub(_ERASED, text)
        text = _phones_replaced(text, self.region)
        text = _DIGIT_RUN.sub(lambda m: _ERASED if self._phone(m.group()) else m.group(), text)
        if self.words is not None:
            text = self.words.sub(_ERASED, text)
        return text


def _national(e164: str) -> str:
    """The national significant number of an E.164 phone (``5125550177``)."""
    import phonenumbers

    try:
        return str(phonenumbers.national_significant_number(phonenumbers.parse(e164)))
    except phonenumbers.NumberParseException:
        return e164.lstrip("+")


def _e164(text: str, region: str) -> str | None:
    """The phone number ``text`` as E.164, read in ``region``; ``None`` for no number."""
    import phonenumbers

    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _phones_replaced(text: str, region: str) -> str:
    """``text`` with every valid phone number in it (any way it is written, a national
    one read in ``region``) replaced; dates, ticket numbers and the like stay."""
    import phonenumbers

    matcher = phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.VALID)
    pieces: list[str] = []
    end = 0
    for match in matcher:
        pieces += [text[end : match.start], _ERASED]
        end = match.end
    return "".join(pieces) + text[end:] if pieces else text


def _mentions(value: Any, texts: _Personal) -> bool:
    if isinstance(value, str):
        return not _is_instant(value) and texts.mentions(value)
    if isinstance(value, dict):
        return any(_mentions(v, texts) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_mentions(v, texts) for v in value)
    return False


def _is_instant(text: str) -> bool:
    """Whether ``text`` is an ISO 8601 date and time with its offset, as leadfunnel
    writes the times in event data (a rescheduled appointment's ``from`` and ``to``,
    which reports read): no personal text, though a postcode of 2026 is a word of
    ``2026-03-02T10:00:00+00:00``. Scrubbing it would change reports already made."""
    if len(text) < 20 or text[4:5] != "-" or "T" not in text:
        return False
    try:
        return datetime.fromisoformat(text).utcoffset() is not None
    except ValueError:
        return False


def _scrub(value: Any, texts: _Personal) -> Any:
    """``value`` with every string that mentions the person replaced by ``None``."""
    if isinstance(value, str):
        return None if _mentions(value, texts) else value
    if isinstance(value, dict):
        return {k: _scrub(v, texts) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, texts) for v in value]
    return value


def _explains(value: Any) -> bool:
    """Whether ``value`` (event data) holds a rule's explanation: a text under the key
    ``reason`` in a nested entry (a qualification's verdicts)."""
    if isinstance(value, dict):
        return any((k == "reason" and isinstance(v, str)) or _explains(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_explains(v) for v in value)
    return False


def _unexplained(value: Any) -> Any:
    """``value`` with every explanation (see :func:`_explains`) replaced by ``None``."""
    if isinstance(value, dict):
        return {
            k: None if k == "reason" and isinstance(v, str) else _unexplained(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_unexplained(v) for v in value]
    return value


def _redacted(text: str | None, texts: _Personal) -> str | None:
    """The erasure's own reason, kept (it says why the data went) with the person's
    values in it blanked, and every e-mail address and phone number:
    ``"Art. 17 request from [erased] <[erased]>"``. Cut to the longest reason an event
    holds, should the blanks have made it longer."""
    if text is None:
        return None
    return texts.redacted(text)[:_REASON_LENGTH]


def _longest(annotated: Any) -> int:
    """The ``max_length`` of an ``Annotated`` text type."""
    for meta in annotated.__metadata__:
        for constraint in getattr(meta, "metadata", ()):
            longest = getattr(constraint, "max_length", None)
            if isinstance(longest, int):
                return longest
    raise AssertionError(annotated)  # pragma: no cover - Text has one


_REASON_LENGTH = _longest(Text)


def _scrub_event(stored: Event, texts: _Personal) -> Event:
    # A reason is free text: it goes, whatever it says (it may name the person in a
    # way no field does). Data is structured: only what mentions the person goes.
    changes: dict[str, Any] = {}
    if stored.reason is not None and stored.name != "erase":
        changes["reason"] = None
    data = stored.data
    if data.get("notes") is not None:
        # A capture's message, kept where the record's notes were not overwritten: free
        # text, like a reason, it goes whatever it says.
        data = {**data, "notes": None}
    if DROPPED_KEYS in data or RETURNED_KEYS in data:
        # Suppressed by the erasure, or (suppress=False) to be kept nowhere; and the
        # digests an unmerge gave back, which only told those apart.
        data = {k: v for k, v in data.items() if k not in (DROPPED_KEYS, RETURNED_KEYS)}
    if _mentions(data, texts):
        data = _scrub(data, texts)
    if _explains(data):
        # A rule's explanation quotes the values it judged ("title 'Head of Sales' names
        # none of owner"), which may be values the person no longer holds: they go.
        data = _unexplained(data)
    if data is not stored.data:
        changes["data"] = data
    return stored.model_copy(update=changes) if changes else stored


def _scrub_record(record: _P) -> _P:
    blank: dict[str, Any] = dict.fromkeys(personal_fields(type(record)))
    blank.update(other_emails=frozenset(), other_phones=frozenset())
    return record.model_copy(update=blank)  # type: ignore[return-value]  # same class


def _blank_deal(deal: Opportunity) -> dict[str, Any]:
    """What erasure blanks on the person's deal: its note of why it was lost, and the
    application's own fields marked :data:`~leadfunnel.Personal`."""
    return {"lost_note": None, **dict.fromkeys(personal_fields(type(deal)))}


def _merges_into(repository: Repository, ids: set[UUID]) -> tuple[list[MergeLog], set[UUID]]:
    """The merge logs of the person whose records are ``ids``, chains followed: a record
    merged into one of them is the same person, and so are the records merged into it
    before (B into A, then A into C: C's person holds A's and B's snapshots); and
    ``ids`` with those merged-away records' ids added. Oldest first."""
    known = set(ids)
    found: dict[UUID, MergeLog] = {}
    while True:
        logs = [log for log in repository.merges_of(known) if log.id not in found]
        found.update((log.id, log) for log in logs)
        more = {log.other.id for log in logs if log.keep_id in known} - known
        if not more:
            return sorted(found.values(), key=lambda log: (log.at, log.id)), known
        known |= more


def _snapshots_of(log: MergeLog, ids: Collection[UUID]) -> list[Lead | Contact]:
    """The snapshots in ``log`` of the person whose records are ``ids``: both, when the
    merge kept one of them (the merged-away record was the same person); else the
    merged-away one, if it is one of them."""
    if log.keep_id in ids:
        return [log.keep_before, log.other]
    return [log.other] if log.other.id in ids else []


def _scrub_merge(log: MergeLog, ids: Collection[UUID]) -> MergeLog:
    # Every personal field of the person's snapshots goes, whatever it holds: the
    # merged-away record's names, notes or city need not match anything kept.
    keep_before, other = log.keep_before, log.other
    scrub = _snapshots_of(log, ids)
    if any(s is keep_before for s in scrub):
        keep_before = _scrub_record(keep_before)
    if any(s is other for s in scrub):
        other = _scrub_record(other)
    deals = tuple(d.model_copy(update=_blank_deal(d)) for d in log.opportunities_before)
    return MergeLog(
        log.id,
        log.keep_id,
        log.at,
        keep_before,
        other,
        log.keep_version,
        log.touch_ids,
        log.event_ids,
        deals,
    )


def _record(record: Lead | Contact | Opportunity) -> dict[str, Any]:
    return {"kind": record.kind, **model_data(record)}


def _merge(repository: Repository, log: MergeLog) -> dict[str, Any]:
    keep, other, *deals = _records(
        repository, [log.keep_before, log.other, *log.opportunities_before]
    )
    return {
        "id": str(log.id),
        "at": log.at.isoformat(),
        "keep": keep,
        "merged_away": other,
        "touch_ids": [str(i) for i in log.touch_ids],
        "event_ids": [str(i) for i in log.event_ids],
        "deals": deals,
    }
