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
from contextlib import suppress
from typing import Literal
from urllib.parse import unquote

import sqlalchemy as sa

__all__ = ["LoaderLock", "lock_path", "running", "take"]

_SUFFIX = "-lfload"
#: The locks this process holds: a child made by ``fork`` (a multiprocessing worker
#: started inside a block) closes its copies, so that the lock never outlives the loader.
_HELD: set[LoaderLock] = set()
_ATTEMPTS = 5  # (a loader unlinking its file as we open it: open the new one)


class LoaderLock:
    """A held loader lock: the open file and which file it is."""

    def __init__(self, fd: int, path: str, identity: tuple[int, int]) -> None:
        self.fd, self.path, self.identity = fd, path, identity

    def release(self) -> None:
        """Remove the file (if it is still this one) and let the lock go."""
        _HELD.discard(self)
        with suppress(OSError):
            found = os.stat(self.path)
            if (found.st_dev, found.st_ino) == self.identity:
                os.unlink(self.path)  # while held: the next loader makes a new one
        os.close(self.fd)  # (closing lets the lock go)


def lock_path(url: sa.URL) -> str | None:
    """The lock file of the SQLite store at ``url``, as an absolute path (the process
    may change directory while it loads); ``None`` for an in-memory database."""
    database = url.database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI (``?uri=true``)
        if url.query.get("mode") == "memory":
            return None
        database = unquote(database[len("file:") :].partition("?")[0])
        if database.startswith("//"):  # file://host/path: the path
            database = "/" + database[2:].partition("/")[2]
        if not database or database == ":memory:":
            return None
    return os.path.abspath(database) + _SUFFIX


def take(path: str | None) -> LoaderLock | Literal[False] | None:
    """The loader's lock on ``path``; ``False`` if it is held (a load under way, in
    this process or another); ``None`` where there is nothing to lock."""
    if path is None:
        return None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    for _ in range(_ATTEMPTS):
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
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:
            os.close(fd)
            return None  # no flock on this file system
        identity = _same_file(fd, path)
        if identity is None:
            os.close(fd)  # the loader that held it removed it meanwhile: try the new one
            continue
        lock = LoaderLock(fd, path, identity)
        _HELD.add(lock)
        return lock
    return None


def running(path: str | None) -> bool:
    """Whether a loader holds the lock on ``path`` (without making the file)."""
    if path is None:
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return False
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False  # no file: no loader
        try:
            # Shared: two openings asking at once do not take each other for a loader.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
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
    for lock in list(_HELD):
        with suppress(OSError):
            os.close(lock.fd)  # the child's copy only: the parent keeps its lock
    _HELD.clear()


if hasattr(os, "register_at_fork"):  # pragma: no branch - not on Windows
    os.register_at_fork(after_in_child=_forget_in_child)
