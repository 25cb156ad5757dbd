"""Reading the files the commands are given: the TOML files that configure rules,
cadences and routing, and lists of people."""

from __future__ import annotations

import codecs
from os import PathLike
from pathlib import Path
from typing import Any

from ._errors import ConfigError

__all__ = ["read_text", "read_toml"]


def read_toml(path: str | PathLike[str], what: str) -> dict[str, Any]:
    """The table in the TOML file at ``path``, or a :class:`ConfigError` that names
    ``what`` the file is for (``"rules file"``...), the file, and what went wrong.

    The file is UTF-8, with or without the byte-order mark Windows Notepad writes (TOML
    itself allows none: the mark is no part of the text)."""
    import tomllib  # imported on first need: a command that reads no file skips it

    text = read_text(path, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {str(path)!r} is not valid TOML: {exc}") from None


def read_text(path: str | PathLike[str], what: str) -> str:
    """The text of the UTF-8 file at ``path`` (a byte-order mark left out), or a
    :class:`ConfigError` that names ``what`` the file is for, the file, and what went
    wrong: missing, unreadable, UTF-16 (Notepad's "Unicode") or another encoding."""
    if not isinstance(path, (str, PathLike)):
        raise ConfigError(
            f"the {what} is a path (a str or a pathlib.Path), not {type(path).__name__}"
        )
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"cannot read {what} {str(file)!r}: it does not exist") from None
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConfigError(f"cannot read {what} {str(file)!r}: {reason}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        saved = (
            'it is UTF-16 (Notepad\'s "Unicode")'
            if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
            else f"it is not UTF-8 (byte 0x{data[exc.start]:02X} on line {line})"
        )
        raise ConfigError(
            f"{what} {str(file)!r} cannot be read: {saved}; save it as UTF-8 and try again"
        ) from None
