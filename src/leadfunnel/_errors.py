"""The exception tree of leadfunnel.

Every error the library raises on purpose derives from :class:`LeadFunnelError`, and
each also derives from the builtin a caller would already be catching, so existing
``except LookupError`` or ``except ValueError`` clauses keep working::

    LeadFunnelError (Exception)
    ├── InvalidArgumentError (ValueError)     a bad argument: enum value, grouping, naive
    │                                         datetime, a record merged into itself...
    ├── InvalidTransitionError (ValueError)   a trigger not allowed from the current state
    ├── NotFoundError (LookupError)           no record with that id
    ├── DuplicateError (ValueError)           same e-mail or phone as a stored record
    │   └── AvoidListedError                  ... and that record is on the avoid list
    ├── ConcurrencyError (RuntimeError)       a stale copy: someone saved a newer version
    ├── PolicyError (PermissionError)         the channel policy forbids this touch
    ├── ConfigError (ValueError)              a bad engine, rule, cadence or routing config
    ├── RuleError                             a qualification rule raised, or answered
    │                                         something other than a Verdict
    └── StorageError (RuntimeError)           the database failed (locked, gone, full...)

Input validation is pydantic's job: a bad field on a model raises
``pydantic.ValidationError`` naming the field, and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "AvoidListedError",
    "ConcurrencyError",
    "ConfigError",
    "DuplicateError",
    "InvalidArgumentError",
    "InvalidTransitionError",
    "LeadFunnelError",
    "NotFoundError",
    "PolicyError",
    "RuleError",
    "StorageError",
]


class LeadFunnelError(Exception):
    """Base class of every error leadfunnel raises on purpose.

    Errors pickle and copy with their message and attributes, whatever their
    constructor takes (a worker process's error reaches its pool, a task queue stores
    it): they are rebuilt without calling ``__init__`` again.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(
    cls: type[LeadFunnelError], args: tuple[Any, ...], state: dict[str, Any]
) -> LeadFunnelError:
    """``cls``'s error with ``args`` and attributes ``state``, its ``__init__`` not run
    (which takes other arguments than the message it made)."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class InvalidArgumentError(LeadFunnelError, ValueError):
    """An argument the method cannot take; the message lists what it can take."""


class InvalidTransitionError(LeadFunnelError, ValueError):
    """A trigger that the subject's current state does not allow.

    ``state``, ``trigger`` and ``allowed`` (the triggers allowed from ``state``) say what
    went wrong and what could be done instead. Nothing was changed. ``allowed`` is
    ``None`` where no trigger is the way out (a new lead given a status it cannot start
    in): the message then leaves the triggers out, and ``.allowed`` is empty.
    """

    def __init__(
        self,
        subject: str,
        state: str,
        trigger: str,
        allowed: Iterable[str] | None,
        hint: str = "",
    ) -> None:
        self.subject = subject
        self.state = state
        self.trigger = trigger
        self.allowed = () if allowed is None else tuple(allowed)
        message = f"cannot {trigger!r} {_article(subject)} {subject} in state {state!r}"
        if allowed is not None:
            choices = ", ".join(self.allowed) if self.allowed else "none"
            message += f"; triggers allowed from {state!r}: {choices}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


class NotFoundError(LeadFunnelError, LookupError):
    """No stored record has the given id.

    ``found`` replaces the message's first part (what was not found), ``message`` the
    whole message (a record found, with nothing of the kind asked for: an unmerge with
    no merge to undo)."""

    def __init__(
        self,
        id: UUID | str,
        kind: str = "record",
        found: str | None = None,
        *,
        message: str | None = None,
    ) -> None:
        self.id = id
        self.kind = kind
        what = f"no {kind} with id {id}" if found is None else found
        super().__init__(
            message
            or f"{what}; check the id, or list records with "
            "funnel.leads(), funnel.contacts() or funnel.opportunities()"
        )


class DuplicateError(LeadFunnelError, ValueError):
    """The record has the same e-mail or phone as a stored lead or contact.

    ``existing_id`` is the id of the stored record and ``key`` the matching key
    (``email:...`` or ``phone:...``). Update or merge the existing record instead.
    The message names the kind of key, never its value: exceptions end up in logs,
    which must not carry personal data (``key`` has it, for the program that caught
    the error).
    """

    def __init__(self, existing_id: UUID, key: str, message: str | None = None) -> None:
        self.existing_id = existing_id
        self.key = key
        super().__init__(
            message
            or (
                f"a record with the same {_key_kind(key)} already exists: {existing_id}; "
                "update or merge it instead of adding again"
            )
        )


def _key_kind(key: str) -> str:
    """What an identity key is, without its value: ``e-mail`` for ``email:...``."""
    kind = key.partition(":")[0]
    return {"email": "e-mail", "phone": "phone"}.get(kind, kind)


class AvoidListedError(DuplicateError):
    """The record matches someone on the avoid list; they must never be marketed to."""

    def __init__(self, existing_id: UUID, key: str) -> None:
        super().__init__(
            existing_id,
            key,
            f"the {_key_kind(key)} matches avoid-listed record {existing_id}; "
            "this person must not be added or marketed to again",
        )


class ConcurrencyError(LeadFunnelError, RuntimeError):
    """A write based on a stale copy: the stored record has moved on since it was read."""

    def __init__(
        self,
        id: UUID,
        expected: int,
        found: int | None = None,
        *,
        message: str | None = None,
        retryable: bool = True,
    ) -> None:
        self.id = id
        self.expected = expected
        self.found = found
        #: Whether re-reading the record and trying again can succeed (the facade's own
        #: retries stop at once when it cannot).
        self.retryable = retryable
        if message is None:
            stored = f"version {found}" if found is not None else "a newer version"
            message = (
                f"record {id} was changed by someone else (you had version {expected}, the "
                f"store has {stored}); re-read it with funnel.get() and apply your change again"
            )
        super().__init__(message)

    @classmethod
    def of_insert(cls, id: UUID, kind: str, found: int) -> ConcurrencyError:
        """A new record whose ``id`` the store holds already, as a ``kind`` at version
        ``found``: not retryable (trying again meets the same record)."""
        return cls(
            id,
            0,
            found,
            message=f"a new record's id {id} is already stored ({a_kind(kind)}, at "
            f"version {found}); a new record needs an id of its own: leave id out to have one "
            "made, or change the stored record instead (funnel.update())",
            retryable=False,
        )

    @classmethod
    def of_clock(
        cls, id: UUID, kind: str, expected: int, at: datetime, last: datetime
    ) -> ConcurrencyError:
        """A change of record ``id`` (a ``kind``, read at version ``expected``) dated
        ``at`` by the funnel clock, which another writer's change, dated ``last``,
        overtook after the clock was read: retryable (tried again, it is dated by the
        clock again, after ``last``)."""
        return cls(
            id,
            expected,
            None,
            message=f"{kind} {id} was changed at {last.isoformat()} by another writer, "
            f"after this change read the clock ({at.isoformat()}): stored as it is, it "
            "would come before what it follows. Try the change again: it is then dated "
            "by the clock again",
        )

    @classmethod
    def of_twins(cls, id: UUID, first_kind: str, kind: str) -> ConcurrencyError:
        """Two new records of one change, a ``first_kind`` and a ``kind``, with one
        ``id``: not retryable (the change is the same again)."""
        return cls(
            id,
            0,
            None,
            message=f"two new records of one change have the id {id} ({a_kind(first_kind)} "
            f"and {a_kind(kind)}); each new record needs an id of its own: leave id out to "
            "have one made",
            retryable=False,
        )

    @classmethod
    def of_touches(cls, id: UUID, read: int, found: int) -> ConcurrencyError:
        """A change decided on ``read`` touches of subject ``id``, which has ``found``
        now: another follow-up was logged in between (``expected`` and ``found`` are
        these counts)."""
        return cls(
            id,
            read,
            found,
            message=f"{id} had {read} touches when this change was checked against them "
            f"and has {found} now (someone logged a follow-up in between); check it again "
            "and retry",
        )


class PolicyError(LeadFunnelError, PermissionError):
    """The channel policy forbids this touch; the message says why."""


class ConfigError(LeadFunnelError, ValueError):
    """A configuration (engine, rule, profile, cadence, routing, storage URL) is wrong."""


class RuleError(LeadFunnelError):
    """A qualification rule failed on a lead: it raised (the exception is the
    ``__cause__``) or returned something other than a ``Verdict``. ``rule``,
    ``profile`` and ``lead_id`` say where; nothing was changed."""

    def __init__(self, rule: str, profile: str, lead_id: UUID, problem: str) -> None:
        self.rule = rule
        self.profile = profile
        self.lead_id = lead_id
        super().__init__(
            f"rule {rule!r} of profile {profile!r} failed on lead {lead_id}: {problem}; "
            "fix the rule (a rule answers Verdict.passed/failed/unknown, and should answer "
            "unknown, not raise, when data is missing)"
        )


class StorageError(LeadFunnelError, RuntimeError):
    """The database failed to do what was asked (unreachable, locked too long, full...).

    Raised by storage adapters in place of their driver's exceptions (kept as
    ``__cause__``); nothing of the failed change was stored. Retry, or check the database.

    ``of_value`` is ``True`` when the database refused a value of the change (too long
    for its column, a constraint or trigger of its own) rather than failed itself: the
    same change fails again, while other changes store. An import rejects such a row
    alone; any other ``StorageError`` stops it, since no row could be stored.
    """

    def __init__(self, message: str, *, of_value: bool = False) -> None:
        super().__init__(message)
        self.of_value = of_value


def a_kind(kind: str) -> str:
    """``kind`` (``"lead"``, ``"opportunity"``...) with its article: ``"an opportunity"``."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"
