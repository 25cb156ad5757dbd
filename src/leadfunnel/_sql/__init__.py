"""The SQL adapter of the storage port: :class:`SqlRepository` and its schema."""

from __future__ import annotations

from ._repository import SqlRepository
from ._schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "SqlRepository"]
