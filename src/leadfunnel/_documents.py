"""Records as JSON documents: walking a model's core schema, and reading stored
documents back into models without repeating the write-time checks.

:func:`schema_nodes` walks a pydantic core schema the one way every reader of it here
does (the SQL adapter deciding how to dump a model, the port refusing a model whose dump
would lose a field): every schema in it, nested models', dataclasses', typed dicts' and
definitions' included, each with the class and the dotted field it belongs to.

Every value a store holds went through the model's validation on its way in: blank
strings became ``None``, text with control characters was refused, e-mail addresses,
countries and phone numbers were normalised. Reading a document back runs the model's
validation again, and leadfunnel's own checks and normalisers are Python functions that
pydantic-core calls field by field: about a fifth of what validating a stored lead
costs, spent proving again what was proved when it was written.

:func:`stored_validator` gives a validator for the same model without those functions;
everything else (types, enums, lengths, bounds, sets, an application's own validators
on its subclass) is checked as before, so a document that no longer fits the model is
still an error.

Documents hold each field under its name, never its alias (see ``document_of`` in
``_rows``): they are read by name only, whatever the model's own config says, so a
field's alias can never be mistaken for another field's name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import pydantic
from pydantic_core import CoreConfig, SchemaValidator, from_json

from ._models import WRITE_CHECKS, field_keys

__all__ = [
    "FIELD_SCHEMAS",
    "SchemaNode",
    "reads_alike_as_json",
    "schema_nodes",
    "stored_aliases",
    "stored_json_validator",
    "stored_validator",
]

_M = TypeVar("_M", bound=pydantic.BaseModel)
_set = object.__setattr__


# --- walking a core schema ----------------------------------------------------------

#: Keys of a schema whose values are no schema (a class, a function, a default, a
#: literal's values...), and a model's computed fields (derived: no document holds
#: them, no input reads them): not searched.
_NOT_SCHEMA = frozenset(
    {"cls", "function", "metadata", "config", "default", "expected", "computed_fields"}
)
#: The schemas of one field of a model, a dataclass or a typed dict.
FIELD_SCHEMAS = frozenset({"model-field", "dataclass-field", "typed-dict-field"})
#: The schemas holding fields (a mapping by name, or a dataclass's list).
_FIELD_HOLDERS = frozenset({"model-fields", "typed-dict", "dataclass-args"})
_CLASSES = frozenset({"model", "dataclass", "typed-dict"})


class SchemaNode:
    """One schema met by :func:`schema_nodes`: the ``schema`` (a dict of pydantic-core),
    its ``kind`` (its ``"type"``, or ``None``), the ``owner`` (the name of the model,
    dataclass or typed dict it is in) and the ``field`` it describes or is in, named
    after the class that declares it (``"Site.vendor"`` for the ``vendor`` of a model
    ``Site`` in a field of ``MyLead``; a nested class's own schema keeps the field of
    the outer class it is in, ``"MyLead.site"``; the model's name alone above any
    field)."""

    __slots__ = ("field", "kind", "owner", "schema")

    def __init__(self, schema: dict[str, Any], owner: str, field: str) -> None:
        kind = schema.get("type")  # (a mapping of fields may hold a field named "type")
        self.schema = schema
        self.kind = kind if isinstance(kind, str) else None
        self.owner = owner
        self.field = field


def schema_nodes(model: type[pydantic.BaseModel]) -> Iterator[SchemaNode]:
    """Every schema in ``model``'s core schema, depth first: its own, its fields', and
    those of the models, dataclasses, typed dicts and definitions in them. A field's
    schema (kind in :data:`FIELD_SCHEMAS`) comes with the field's dotted name."""
    name = model.__name__
    stack: list[tuple[Any, str, str]] = [(model.__pydantic_core_schema__, name, name)]
    while stack:
        schema, owner, field = stack.pop()
        if isinstance(schema, (list, tuple)):
            stack.extend((item, owner, field) for item in reversed(schema))
            continue
        if not isinstance(schema, dict):
            continue
        node = SchemaNode(schema, owner, field)
        cls = schema.get("cls")
        if node.kind in _CLASSES and isinstance(cls, type):
            owner = node.owner = cls.__name__
        yield node
        fields = schema.get("fields") if node.kind in _FIELD_HOLDERS else None
        named = (
            fields.items()
            if isinstance(fields, dict)
            else ((declared.get("name"), declared) for declared in fields or ())
        )
        inner = [(declared, owner, f"{owner}.{name}") for name, declared in named]
        inner.extend(
            (value, owner, field)
            for key, value in schema.items()
            if key not in _NOT_SCHEMA and not (key == "fields" and fields is not None)
        )
        stack.extend(reversed(inner))  # met in the order they are declared


# --- reading documents back -----------------------------------------------------------


def _plain(function: Any) -> Any:
    return getattr(function, "__func__", function)  # a classmethod validator's function


_FUNCTION_SCHEMAS = frozenset({"function-before", "function-after"})
#: Keys of a schema that hold no schema: kept as they are (in a mapping of fields, a
#: field of such a name keeps its checks: slower to read, never wrong).
_AS_IS = frozenset({"cls", "function", "serialization", "metadata", "config"})


def _without_write_checks(schema: Any) -> Any:
    """``schema`` (a pydantic-core schema, or a part of one) with each validator function
    of ``WRITE_CHECKS`` replaced by the schema it wraps."""
    if isinstance(schema, list):
        return [_without_write_checks(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")  # (a mapping of fields may have a field named "type")
    if isinstance(kind, str) and kind in _FUNCTION_SCHEMAS:
        function = schema.get("function")
        found = function.get("function") if isinstance(function, dict) else None
        if callable(found) and _plain(found) in WRITE_CHECKS:
            return _without_write_checks(schema["schema"])
    return {
        key: value if key in _AS_IS else _without_write_checks(value)
        for key, value in schema.items()
    }


#: Schemas that JSON mode reads otherwise than python mode reads the parsed JSON: a
#: union takes a JSON string as an exact match for a UUID, a date, a time or bytes
#: (python mode keeps the ``str`` of ``UUID | str``), and a schema with a JSON branch of
#: its own may read it otherwise.
_OTHERWISE_IN_JSON = frozenset({"union", "tagged-union", "json-or-python", "lax-or-strict"})


@functools.cache
def reads_alike_as_json(model: type[pydantic.BaseModel]) -> bool:
    """Whether validating a stored document's JSON text in pydantic's JSON mode gives
    what validating the parsed document in python mode gives: no union, no schema with
    a JSON branch of its own, nothing strict (JSON mode takes a date or a UUID as text,
    which a strict python mode refuses). leadfunnel's own models read alike; a model
    that does not is read from the parsed text, as every store reads it."""
    for node in schema_nodes(model):
        if node.kind in _OTHERWISE_IN_JSON or node.schema.get("strict"):
            return False
        config = node.schema.get("config") if node.kind in _CLASSES else None
        if isinstance(config, dict) and config.get("strict"):
            return False
    return not model.model_config.get("strict")


def stored_validator(model: type[_M]) -> Callable[[Any], _M]:
    """A validator of ``model`` for documents a store wrote: it gives a ``model``
    instance, as ``model.model_validate`` does, without leadfunnel's write-time checks
    and normalisers (see the module's docstring).

    pydantic-core reuses a model class's own validator wherever its schema names the
    class, so the fields are validated here by their own schema and the instance is
    put together as ``model_construct`` does. A model that does more than validate its
    fields (an ``after`` model validator, ``model_post_init``, private attributes) is
    validated by ``model.model_validate``, in full. Either way, by field name only."""
    return _stored_validators(model)[0]


def stored_json_validator(model: type[_M]) -> Callable[[str | bytes], _M]:
    """:func:`stored_validator` for a document as JSON text: validated in pydantic's
    JSON mode, straight from the text (no dict of it is built), as pydantic reads back
    what ``model_dump_json`` wrote, where that reads alike (see
    :func:`reads_alike_as_json`); else the text is parsed and validated as data."""
    return _stored_validators(model)[1]


@functools.cache  # per model class (both are built at once: one schema walk)
def _stored_validators(
    model: type[_M],
) -> tuple[Callable[[Any], _M], Callable[[str | bytes], _M]]:
    schema = model.__pydantic_core_schema__
    if (
        schema.get("type") != "model"
        or schema.get("custom_init")
        or schema.get("root_model")
        or model.__pydantic_post_init__ is not None
        or model.__private_attributes__
    ):
        whole: Callable[[Any], _M] = functools.partial(
            model.model_validate, by_alias=False, by_name=True
        )
        if not reads_alike_as_json(model):
            return whole, lambda text: whole(from_json(text))
        return whole, functools.partial(model.model_validate_json, by_alias=False, by_name=True)
    config = (schema.get("config") or CoreConfig()).copy()
    config["validate_by_alias"], config["validate_by_name"] = False, True
    fields = SchemaValidator(_without_write_checks(schema["schema"]), config)
    new = model.__new__

    def built(validate_fields: Callable[[Any], Any]) -> Callable[[Any], _M]:
        def validate(data: Any) -> _M:
            values, extra, fields_set = validate_fields(data)
            record = new(model)
            _set(record, "__dict__", values)
            _set(record, "__pydantic_fields_set__", fields_set)
            _set(record, "__pydantic_extra__", extra)
            _set(record, "__pydantic_private__", None)
            return record

        return validate

    from_data = built(fields.validate_python)
    if not reads_alike_as_json(model):
        return from_data, lambda text: from_data(from_json(text))
    return from_data, built(fields.validate_json)


@functools.cache
def stored_aliases(model: type[pydantic.BaseModel]) -> Mapping[str, str]:
    """The keys, other than field names, under which a document may hold a field of
    ``model``, each with the field's name: its serialisation alias (a model that dumps
    by alias once had its documents written so) and the aliases it is read by (see
    :func:`~leadfunnel._models.field_keys`). A field's name always means that field."""
    found = {key: name for key, name in field_keys(model).items() if key != name}
    for name, info in model.model_fields.items():
        if info.serialization_alias is not None:
            found.setdefault(info.serialization_alias, name)
    return MappingProxyType({k: v for k, v in found.items() if k not in model.model_fields})
