"""The lock a SQLite store's loader holds while it has indexes put off.

A :meth:`SqlRepository.loading` block that drops indexes (see ``schema.DEFERRABLE``)
holds an advisory lock (``flock``, exclusive) on a file beside the database,
``<database>-lfload``, until it has built them again. The system lets the lock go when
the process ends, however it ends: an opening of the store that finds indexes missing
asks :func:`running`, and builds them only when no loader holds it (a load that stopped
half-way is mended; one under way is left to build its own). Where ``fcntl`` is missing
(Windows), or the file system has no ``flock``, there is no lock: :func:`take` gives
``None`` and :func:`running` says no, so an opening builds whatever is missing.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import suppress
from typing import Literal
from urllib.parse import unquote

import sqlalchemy as sa

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None  # type: ignore[assignment]

__all__ = ["LoaderLock", "lock_path", "running", "take"]

_SUFFIX = "-lfload"
#: The locks this process holds: a child made by ``fork`` (a multiprocessing worker
#: started inside a block) closes its copies, so that the lock never outlives the loader.
_HELD: set[LoaderLock] = set()
_ATTEMPTS = 5  # (a loader unlinking its file as we open it: open the new one)
#: Held while a lock's file is opened and locked, and across ``fork``: a child made by
#: another thread meanwhile would get a copy of a descriptor not yet in ``_HELD``.
_GUARD = threading.Lock()


class LoaderLock:
    """A held loader lock: the open file and which file it is."""

    def __init__(self, fd: int, path: str, identity: tuple[int, int]) -> None:
        self.fd, self.path, self.identity = fd, path, identity
        self.pid = os.getpid()

    @property
    def mine(self) -> bool:
        """Whether this process took it (not a child made by ``fork`` since)."""
        return self.pid == os.getpid() and self.fd >= 0

    def release(self) -> None:
        """Remove the file (if it is still this one) and let the lock go; in a child
        made by ``fork``, nothing (the lock is its parent's)."""
        if not self.mine:
            return
        _HELD.discard(self)
        with suppress(OSError):
            found = os.stat(self.path)
            if (found.st_dev, found.st_ino) == self.identity:
                os.unlink(self.path)  # while held: the next loader makes a new one
        os.close(self.fd)  # (closing lets the lock go)


def lock_path(url: sa.URL) -> str | None:
    """The lock file of the SQLite store at ``url``, by the file's real path (the
    process may change directory while it loads; a symbolic link names the same file);
    ``None`` for an in-memory database."""
    database = url.database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:") and url.query.get("uri") == "true":  # a URI
        if url.query.get("mode") == "memory":
            return None
        database = unquote(database[len("file:") :].partition("?")[0])
        if database.startswith("//"):  # file://host/path: the path
            database = "/" + database[2:].partition("/")[2]
        if not database or database == ":memory:":
            return None
    return os.path.realpath(database) + _SUFFIX


def take(path: str | None) -> LoaderLock | Literal[False] | None:
    """The loader's lock on ``path``; ``False`` if it is held (a load under way, in
    this process or another); ``None`` where there is nothing to lock."""
    if path is None or _fcntl is None:
        return None
    outcome: LoaderLock | str | None = None
    for _ in range(_ATTEMPTS):
        with _GUARD:
            outcome = _take_once(path)
        if outcome is _BUSY:
            time.sleep(0.01)  # an opening asking (a shared lock, for a moment)?
        elif outcome is not _REPLACED:
            return outcome  # type: ignore[return-value]
    return False if outcome is _BUSY else None


#: What one try of :func:`take` found instead of a lock: the lock held, or the file
#: replaced (removed by the loader that held it, as it was being opened).
_BUSY, _REPLACED = "busy", "replaced"


def _take_once(path: str) -> LoaderLock | str | None:
    """One try of :func:`take`: the lock, ``_BUSY``, ``_REPLACED``, or ``None`` (no
    lock to be had here)."""
    assert _fcntl is not None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        try:  # made by another user: flock needs no write access
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
    except OSError:
        return None  # a folder that cannot be written to: no lock to share
    try:
        _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return _BUSY
    except OSError:
        os.close(fd)
        return None  # no flock on this file system
    identity = _same_file(fd, path)
    if identity is None:
        os.close(fd)  # the loader that held it removed it meanwhile: try the new one
        return _REPLACED
    lock = LoaderLock(fd, path, identity)
    _HELD.add(lock)
    return lock


def running(path: str | None) -> bool:
    """Whether a loader holds the lock on ``path`` (without making the file)."""
    if path is None or _fcntl is None:
        return False
    for _ in range(_ATTEMPTS):
        with _GUARD:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                return False  # no file: no loader
            try:
                # Shared: two openings asking at once do not take each other for a loader.
                _fcntl.flock(fd, _fcntl.LOCK_SH | _fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            except OSError:
                return False  # no flock on this file system
            else:
                if _same_file(fd, path) is not None:
                    return False
                # (the file was replaced meanwhile: a new loader's; ask it)
            finally:
                os.close(fd)
    return False


def _same_file(fd: int, path: str) -> tuple[int, int] | None:
    """The identity of the file open at ``fd`` if it is still the one at ``path``."""
    try:
        opened, named = os.fstat(fd), os.stat(path)
    except OSError:
        return None
    if (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
        return None
    return (opened.st_dev, opened.st_ino)


def _forget_in_child() -> None:
    global _GUARD
    _GUARD = threading.Lock()  # (held by the parent's fork: never released here)
    for lock in list(_HELD):
        with suppress(OSError):
            os.close(lock.fd)  # the child's copy only: the parent keeps its lock
        lock.fd = -1
    _HELD.clear()


if hasattr(os, "register_at_fork"):  # pragma: no branch - not on Windows
    os.register_at_fork(
        before=lambda: _GUARD.acquire(),
        after_in_parent=lambda: _GUARD.release(),
        after_in_child=_forget_in_child,
    )
