"""Reading stored documents back into models without repeating the write-time checks.

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
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import pydantic
from pydantic_core import CoreConfig, SchemaValidator

from .._models import WRITE_CHECKS, field_keys

__all__ = ["stored_aliases", "stored_validator"]

_M = TypeVar("_M", bound=pydantic.BaseModel)
_set = object.__setattr__


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


def stored_validator(model: type[_M]) -> Callable[[Any], _M]:
    """A validator of ``model`` for documents a store wrote: it gives a ``model``
    instance, as ``model.model_validate`` does, without leadfunnel's write-time checks
    and normalisers (see the module's docstring).

    pydantic-core reuses a model class's own validator wherever its schema names the
    class, so the fields are validated here by their own schema and the instance is
    put together as ``model_construct`` does. A model that does more than validate its
    fields (an ``after`` model validator, ``model_post_init``, private attributes) is
    validated by ``model.model_validate``, in full. Either way, by field name only."""
    schema = model.__pydantic_core_schema__
    if (
        schema.get("type") != "model"
        or schema.get("custom_init")
        or schema.get("root_model")
        or model.__pydantic_post_init__ is not None
        or model.__private_attributes__
    ):
        return functools.partial(model.model_validate, by_alias=False, by_name=True)
    config = (schema.get("config") or CoreConfig()).copy()
    config["validate_by_alias"], config["validate_by_name"] = False, True
    fields = SchemaValidator(_without_write_checks(schema["schema"]), config)
    validate_fields = fields.validate_python
    new = model.__new__

    def validate(data: Any) -> _M:
        values, extra, fields_set = validate_fields(data)
        record = new(model)
        _set(record, "__dict__", values)
        _set(record, "__pydantic_fields_set__", fields_set)
        _set(record, "__pydantic_extra__", extra)
        _set(record, "__pydantic_private__", None)
        return record

    return validate


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
