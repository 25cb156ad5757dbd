"""One JSON shape per result type, whichever way it is serialised.

Every result leadfunnel hands back (a report, a qualification result, an import
report, a rep list, a follow-up, an erasure...) has ``to_dict()``: its documented JSON
shape, plain data ``json.dumps`` takes as it is. ``to_json()`` dumps that dict, and so
does pydantic, through the core schema below: a FastAPI endpoint annotated with a
result type, or ``TypeAdapter(FunnelReport).dump_python(report, mode="json")``, gives
the same shape from the same code path. (FastAPI's ``jsonable_encoder`` walks a
dataclass's fields itself: annotate the endpoint, or return ``result.to_dict()``.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = ["Serialised", "model_data"]


def model_data(model: BaseModel) -> dict[str, Any]:
    """``model.model_dump(mode="json")`` by field name (never an alias, even for a
    model that dumps by alias: exports, rules and ``where=`` name fields so) with every
    set (``tags``, ``opt_outs``, ``other_emails``..., an application's own set fields) a
    sorted list: a set's order follows string hashing, which changes from process to
    process, and the same record must give the same JSON every time."""
    data: dict[str, Any] = _sorted_sets(model, model.model_dump(mode="json", by_alias=False))
    return data


def _sorted_sets(value: Any, dumped: Any) -> Any:
    """``dumped`` (the JSON data of ``value``) with the lists that were sets sorted."""
    if isinstance(value, (set, frozenset)) and isinstance(dumped, list):
        try:
            return sorted(dumped)
        except TypeError:  # items of mixed types: in the order of their JSON text
            return sorted(dumped, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, BaseModel) and isinstance(dumped, dict):
        fields = type(value).model_fields
        return {
            name: _sorted_sets(getattr(value, name), item) if name in fields else item
            for name, item in dumped.items()
        }
    if isinstance(value, Mapping) and isinstance(dumped, dict) and len(value) == len(dumped):
        # Keys may have become text (UUIDs, enums); the order is kept.
        return {
            key: _sorted_sets(item, data)
            for item, (key, data) in zip(value.values(), dumped.items(), strict=True)
        }
    if isinstance(value, (list, tuple)) and isinstance(dumped, list) and len(value) == len(dumped):
        return [_sorted_sets(item, data) for item, data in zip(value, dumped, strict=True)]
    return dumped


class Serialised:
    """The mixin of result types: ``to_dict()`` is the shape, the rest follows from it."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data: its documented shape."""
        raise NotImplementedError  # pragma: no cover - every result type defines it

    def to_json(self, *, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # Serialising (FastAPI response models, TypeAdapter) goes through to_dict;
        # validating accepts an instance as it is (a result is made by the library).
        return core_schema.is_instance_schema(
            cls,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: value.to_dict(), when_used="always"
            ),
        )
