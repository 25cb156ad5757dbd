"""The suppression list: people who must never be added again, kept only as keyed hashes.

An identity key (``email:pat@acme.example.com``, ``phone:+15125550134``, normalised as
the dedupe keys are) becomes a :class:`~leadfunnel.Suppression` digest, HMAC-SHA256 under
a secret. A plain SHA-256 of an e-mail is reversed by hashing a list of e-mails; an HMAC
is not, as long as the secret is not in the same hands as the database. The secret is
the application's (``Funnel(suppression_secret=...)`` or the environment variable
``LEADFUNNEL_SUPPRESSION_SECRET``), else one the store makes and keeps for itself: that
one blocks re-adding just as well but sits beside the digests, so whoever copies the
whole database can test guesses against them.

An avoided person stays avoided under every key they ever held. The keys they hold now
are claimed in the key index; an ``update`` event that takes keys off a record keeps
their digests (``data["dropped_keys"]``, never the keys themselves), so that
avoiding or erasing the person later suppresses those too. An ``unmerge`` gives the
record merged away its keys back: the digests of those among them that the kept
record's history had dropped (``data["returned_keys"]`` of the kept record's
``unmerge`` event) are another person's again, no longer the kept person's former keys,
unless a later edit drops them again.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Iterable
from uuid import UUID

from ._errors import ConfigError
from ._models import Contact, Event, Lead, identity_keys
from ._repository import Repository, Suppression

__all__ = ["DROPPED_KEYS", "RETURNED_KEYS", "SECRET_VARIABLE", "Suppressor", "dropped_digests"]

#: The environment variable that holds the suppression secret when none is passed.
SECRET_VARIABLE = "LEADFUNNEL_SUPPRESSION_SECRET"

#: Where an ``update`` event's data lists the digests of the identity keys the edit
#: took off its record: what the person held before, kept for the avoid list.
DROPPED_KEYS = "dropped_keys"


#: Where the kept record's ``unmerge`` event lists the digests of the keys that the
#: unmerge gave back to the record merged away and that the kept record's history had
#: dropped (under :data:`DROPPED_KEYS`): the other person's keys, not the kept one's.
RETURNED_KEYS = "returned_keys"


def dropped_digests(events: Iterable[Event]) -> list[str]:
    """The digests ``events`` recorded of keys edited away (see :data:`DROPPED_KEYS`)
    and not given back to another record since (see :data:`RETURNED_KEYS`), each once.

    Read in commit order (``position``): a key dropped, given back by an unmerge, then
    dropped again (merged in again, edited away) counts."""
    found: dict[str, None] = {}
    for stored in sorted(events, key=lambda e: e.position):
        for digest in _listed(stored, RETURNED_KEYS):
            found.pop(digest, None)
        found.update(dict.fromkeys(_listed(stored, DROPPED_KEYS)))
    return list(found)


def _listed(stored: Event, name: str) -> list[str]:
    """The digests ``stored``'s data lists under ``name``."""
    digests = stored.data.get(name)
    return [d for d in digests if isinstance(d, str)] if isinstance(digests, list) else []


def fingerprint(secret: bytes) -> str:
    """What a store keeps of the suppression secret: enough to tell it from another
    secret, nothing to recover it by (an HMAC of a fixed text under it)."""
    return hmac.digest(secret, b"leadfunnel suppression secret fingerprint", "sha256").hex()


class Suppressor:
    """Digests identity keys under the configured secret, and looks them up.

    The secret is resolved on first use: the one given, else ``$LEADFUNNEL_SUPPRESSION_
    SECRET``, else the repository's own (:meth:`Repository.suppression_secret`).
    """

    def __init__(self, repository: Repository, secret: str | bytes | None = None) -> None:
        self._repository = repository
        self._given = secret.encode() if isinstance(secret, str) else secret
        self._secret: bytes | None = None
        self._fingerprint = ""  # the secret's, once it is resolved
        self._source = "the secret given to Funnel(suppression_secret=...)"
        self._lock = threading.Lock()

    def _key(self) -> bytes:
        if self._secret is not None:
            return self._secret
        # Resolved without holding this lock: asking the store takes the store's own
        # lock, which a thread inside a transaction() holds while it waits for this one
        # (a deadlock of the in-memory store). Threads resolving at once find the same
        # secret (the store makes its own once); the first to finish keeps it.
        secret, source = self._given, "the secret given to Funnel(suppression_secret=...)"
        if secret is None:
            from_env = os.environ.get(SECRET_VARIABLE)
            if from_env:
                secret, source = from_env.encode(), f"${SECRET_VARIABLE}"
            else:
                secret, source = self._repository.suppression_secret(), "the store's own secret"
        found = fingerprint(secret)
        # A read only (this may run inside a commit): the fingerprint is kept when
        # something hashed under the secret is first stored.
        stored = self._repository.suppression_fingerprint()
        with self._lock:
            if self._secret is None:
                self._source, self._fingerprint = source, found
                self._compare(stored)
                self._secret = secret
            return self._secret

    def _keep_fingerprint(self) -> None:
        """Have the store keep the fingerprint of the secret before anything hashed
        under it is stored (called outside commits, as a change is made). Asked each
        time, not remembered: a ``transaction()`` block that rolls back takes the
        fingerprint it kept with it."""
        self._key()
        self._compare(self._repository.keep_suppression_fingerprint(self._fingerprint))

    def _compare(self, stored: str | None) -> None:
        if stored is not None and not hmac.compare_digest(stored, self._fingerprint):
            raise ConfigError(
                f"this store's suppression list was written under another secret than "
                f"{self._source}: erased and avoided people would not be recognised, and "
                "could be added again. Open the store with the same secret everywhere: "
                f"Funnel(suppression_secret=...) or ${SECRET_VARIABLE} (the command line "
                "reads only the variable)"
            )

    def digest(self, key: str) -> str:
        """The hex HMAC-SHA256 of one identity key (``email:...`` or ``phone:...``)."""
        return hmac.digest(self._key(), key.encode(), "sha256").hex()

    def suppress(self, keys: Iterable[str], record_id: UUID) -> list[Suppression]:
        """The suppressions that keep ``keys`` avoided, on behalf of ``record_id``."""
        return [Suppression(digest, record_id) for digest in self.digests(keys)]

    def digests(self, keys: Iterable[str]) -> list[str]:
        """The digests of ``keys``, each once, in order, to be stored (suppressions, or
        the keys an edit took off a record): the store keeps the secret's fingerprint
        first."""
        self._keep_fingerprint()
        return [self.digest(key) for key in dict.fromkeys(keys)]

    def banned(self, keys: Iterable[str]) -> dict[str, UUID]:
        """Which of ``keys`` are suppressed, each with the record that keeps it so.

        For many keys at once (an import's chunk): nothing is hashed while the store
        holds no suppression at all (most stores, most of the time: an import of a
        million rows would hash two million keys for nothing)."""
        wanted = list(keys)
        if not wanted or not self._repository.any_suppressed():
            return {}
        return self._lookup(wanted)

    def match(self, person: Lead | Contact) -> tuple[str, UUID] | None:
        """The first identity key of ``person`` on the suppression list, and the record
        that keeps it there; ``None`` if there is none."""
        keys = identity_keys(person)
        # A person's one or two keys: hashing them costs less than asking first
        # whether anything is suppressed at all (a query of its own).
        banned = self._lookup(keys)
        return next(((key, banned[key]) for key in keys if key in banned), None)

    def _lookup(self, keys: Iterable[str]) -> dict[str, UUID]:
        digests = {self.digest(key): key for key in keys}
        if not digests:
            return {}
        found = self._repository.suppressed(digests)
        return {digests[digest]: record_id for digest, record_id in found.items()}
