"""Reading the TOML files that configure rules, cadences and routing."""

from __future__ import annotations

import tomllib
from os import PathLike
from pathlib import Path
from typing import Any

from ._errors import ConfigError

__all__ = ["read_toml"]


def read_toml(path: str | PathLike[str], what: str) -> dict[str, Any]:
    """The table in the TOML file at ``path``, or a :class:`ConfigError` that names
    ``what`` the file is for (``"rules file"``...), the file, and what went wrong."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"cannot read {what} {str(file)!r}: it does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {str(file)!r} is not valid TOML: {exc}") from None
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConfigError(f"cannot read {what} {str(file)!r}: {reason}") from None
