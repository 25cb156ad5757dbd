"""Records as JSON documents: walking a model's core schema, writing a record's document
(what the SQL adapter stores), and reading stored documents back into models without
repeating the write-time checks.

:func:`schema_nodes` walks a pydantic core schema the one way every reader of it here
does (the SQL adapter deciding how to dump a model, the port refusing a model whose dump
would lose a field): every schema in it, nested models', dataclasses', typed dicts' and
definitions' included, each with the class and the dotted field it belongs to.

:func:`document_of` writes a record's document. It lives here, with the reading, and not
in the SQL adapter: the port checks, for every store alike, that what a record holds
reads back from its document (see :func:`reread_fields`).

Every value a store holds went through the model's validation on its way in: blank
strings became ``None``, text with control characters was refused, e-mail addresses,
countries and phone numbers were normalised. Reading a document back runs the model's
validation again, and leadfunnel's own checks and normalisers are Python functions that
pydantic-core calls field by field: about a fifth of what validating a stored lead
costs, spent proving again what was proved when it was written.

:func:`stored_validator` gives a validator for the same model without those functions;
everything else (types, enums, lengths, bounds, sets, an application's own validators
on its subclass) is checked as before, so a document that no longer fits the model is
still an error. It reads lax, whatever the model's or a field's ``strict``: a document
holds a date or a UUID as text, which a strict python-mode validation refuses, and what
it holds was validated, strictly if so declared, when it was written.

Documents hold each field under its name, never its alias (see :func:`document_of`):
they are read by name only, whatever the model's own config says, so a field's alias
can never be mistaken for another field's name.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import pydantic
import pydantic_core
from pydantic_core import CoreConfig, SchemaValidator, from_json

from ._models import WRITE_CHECKS, field_keys

__all__ = [
    "FIELD_SCHEMAS",
    "SchemaNode",
    "document_of",
    "document_value",
    "json_data",
    "reads_alike_as_json",
    "reread_fields",
    "schema_nodes",
    "stored_aliases",
    "stored_json_validator",
    "stored_validator",
]

_M = TypeVar("_M", bound=pydantic.BaseModel)
_set = object.__setattr__


# --- walking a core schema ------------------------------------------------------------

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
    core = model.__pydantic_core_schema__
    if not isinstance(core, dict):  # a model not built yet (defer_build): no schema to walk
        model.model_rebuild()
        core = model.__pydantic_core_schema__
    stack: list[tuple[Any, str, str]] = [(core, name, name)]
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


# --- writing documents: what a record's JSON holds ------------------------------------
#
# A document is the record's JSON dump by field name, without its computed fields
# (derived, and no input the model takes), and without the ``None`` of a field whose
# default is ``None`` (a missing field reads back as its default): leaving those out
# shrinks a lead's document by a quarter. A ``None`` where the default is something
# else is written, at every depth: left out, it would read back as the default.

_WRAPPERS = frozenset(
    {"default", "function-before", "function-after", "function-wrap", "custom-error", "definitions"}
)
#: pydantic 2.12 and later leave computed fields out at every depth; before, only the
#: model's own are left out (a nested model's ignores them when read, unless it forbids
#: extra keys).
_LEAVES_OUT_COMPUTED = (
    "exclude_computed_fields" in inspect.signature(pydantic.BaseModel.model_dump_json).parameters
)


def _kind(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")  # (a mapping of fields may hold a field named "type")
    return kind if isinstance(kind, str) else None


def _may_be_none(schema: Any, refs: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    """Whether a value of the core schema ``schema`` may be ``None`` (when in doubt,
    yes): ``X | None``, ``Literal[..., None]``, ``Any``, a plain validator's..."""
    if not isinstance(schema, dict):
        return True
    kind = _kind(schema)
    if kind in ("none", "nullable", "any", "function-plain"):
        return True
    if kind == "literal":
        return None in schema.get("expected", ())
    if kind == "union":
        choices = schema.get("choices", ())
        return any(_may_be_none(c[0] if isinstance(c, tuple) else c, refs, seen) for c in choices)
    if kind == "tagged-union":
        return any(_may_be_none(c, refs, seen) for c in schema.get("choices", {}).values())
    if kind in _WRAPPERS:
        return _may_be_none(schema.get("schema"), refs, seen)
    if kind == "lax-or-strict":
        return any(_may_be_none(schema.get(k), refs, seen) for k in ("lax_schema", "strict_schema"))
    if kind == "json-or-python":
        return any(
            _may_be_none(schema.get(k), refs, seen) for k in ("json_schema", "python_schema")
        )
    if kind == "chain":
        steps = schema.get("steps") or [None]
        return _may_be_none(steps[-1], refs, seen)
    if kind == "definition-ref":
        ref = schema.get("schema_ref")
        if not isinstance(ref, str) or ref in seen:
            return not isinstance(ref, str)
        return _may_be_none(refs.get(ref), refs, seen | {ref})
    return False


def _leaves_none_out(field: dict[str, Any], refs: dict[str, Any]) -> bool:
    """Whether a document may leave out the field of the core schema ``field`` when it
    is ``None``: its default is ``None``, or it never is ``None``."""
    inner = field.get("schema")
    if (
        isinstance(inner, dict)
        and _kind(inner) == "default"
        and "default_factory" not in inner
        and inner.get("default", ...) is None
    ):
        return True
    return not _may_be_none(inner, refs)


@functools.cache  # per model class: subclasses too
def _skip_none(model: type[pydantic.BaseModel]) -> bool:
    """Whether ``exclude_none`` writes ``model``'s documents as they must be: every field
    that may hold ``None``, the model's and those of every model, dataclass and typed
    dict in its fields, defaults to ``None`` (leadfunnel's own models do). pydantic
    leaves ``None`` out at every depth."""
    nodes = list(schema_nodes(model))
    refs = {n.schema["ref"]: n.schema for n in nodes if isinstance(n.schema.get("ref"), str)}
    return all(_leaves_none_out(n.schema, refs) for n in nodes if n.kind in FIELD_SCHEMAS)


@functools.cache
def _computed(model: type[pydantic.BaseModel]) -> bool:
    """Whether ``model`` or a model in its fields has a computed field."""
    return any(node.schema.get("computed_fields") for node in schema_nodes(model))


@functools.cache
def _dump_options(model: type[pydantic.BaseModel]) -> Mapping[str, Any]:
    """What a document's dump of ``model`` is given, besides ``exclude_none``: by name,
    without computed fields, and a ``Json[...]`` field as the JSON text it reads."""
    options: dict[str, Any] = {"by_alias": False}
    if any(node.kind == "json" for node in schema_nodes(model)):
        options["round_trip"] = True
    if _computed(model):
        if _LEAVES_OUT_COMPUTED:
            options["exclude_computed_fields"] = True
        else:
            options["exclude"] = set(model.model_computed_fields)
    return MappingProxyType(options)


@functools.cache
def _none_defaults(model: Any) -> frozenset[str]:
    """The fields of ``model`` (a pydantic model or a dataclass) whose default is
    ``None``: those a document leaves out at ``None``."""
    if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
        return frozenset(
            name
            for name, info in model.model_fields.items()
            if info.default is None and info.default_factory is None
        )
    return frozenset(
        f.name
        for f in dataclasses.fields(model)
        if f.default is None and f.default_factory is dataclasses.MISSING
    )


def _without_none_defaults(value: Any, dumped: Any) -> None:
    """Take out of ``dumped`` (the JSON data of ``value``) the ``None`` of each field
    whose default is ``None``, in ``value`` and every model or dataclass it holds; the
    ``None`` of any other field stays. What cannot be matched with its value (a
    serialiser's own shape, a dict's keys that are no text) keeps its ``None``: longer,
    never wrong."""
    if type(dumped) is dict:
        fields: Iterable[tuple[str, Any]] | None = None
        if isinstance(value, pydantic.BaseModel):
            fields = value.__dict__.items()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
        if fields is not None:
            names = _none_defaults(value.__class__)
            for name, item in fields:
                if name not in dumped:
                    continue
                if item is None:
                    if name in names:
                        del dumped[name]
                else:
                    _without_none_defaults(item, dumped[name])
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str) and key in dumped:
                    _without_none_defaults(item, dumped[key])
    elif type(dumped) is list and isinstance(value, (list, tuple)) and len(value) == len(dumped):
        for item, data in zip(value, dumped, strict=True):
            _without_none_defaults(item, data)


def json_data(model: pydantic.BaseModel) -> dict[str, Any]:
    """``model``'s document as data (see :func:`document_of`)."""
    skip = _skip_none(type(model))
    data = model.model_dump(mode="json", exclude_none=skip, **_dump_options(type(model)))
    if not skip:
        _without_none_defaults(model, data)
    return data


def _document_writer(model: type[pydantic.BaseModel]) -> Callable[[Any], str]:
    options = _dump_options(model)
    if _skip_none(model):
        # leadfunnel's own models, and most of an application's: pydantic alone.
        return functools.partial(model.model_dump_json, exclude_none=True, **options)

    def write(record: pydantic.BaseModel) -> str:
        return pydantic_core.to_json(json_data(record)).decode()

    return write


_WRITERS: dict[type[pydantic.BaseModel], Callable[[Any], str]] = {}


def document_of(model: pydantic.BaseModel) -> str:
    # By field name, even for a model that dumps by alias (``serialize_by_alias``): the
    # stored validator reads names, and where= filters look fields up by name.
    write = _WRITERS.get(type(model))
    if write is None:
        write = _WRITERS[type(model)] = _document_writer(type(model))
    return write(model)


def document_value(model: type[pydantic.BaseModel], name: str, value: Any) -> Any:
    """``value`` of the field ``name`` as :func:`document_of` writes it into a document
    of ``model`` (JSON mode, by name, and without the ``None`` fields of nested models
    where the documents leave them out): what a ``where=`` filter on a list, dict or
    nested model compares with."""
    record = model.__new__(model)  # the one field, as a stored document's validation sets it
    set_attribute = object.__setattr__
    set_attribute(record, "__dict__", {name: value})
    set_attribute(record, "__pydantic_fields_set__", {name})
    set_attribute(record, "__pydantic_extra__", None)
    set_attribute(record, "__pydantic_private__", None)
    options = {**_dump_options(model), "include": {name}}
    options.pop("exclude", None)  # (include= leaves the model's computed fields out)
    skip = _skip_none(model)
    dumped = record.model_dump(mode="json", exclude_none=skip, **options)[name]
    if not skip:
        _without_none_defaults(value, dumped)
    return dumped


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
    a JSON branch of its own. (Strictness does not matter: documents are read lax.)
    leadfunnel's own models read alike; a model that does not is read from the parsed
    text, as every store reads it."""
    return not any(node.kind in _OTHERWISE_IN_JSON for node in schema_nodes(model))


@functools.cache
def _strict_somewhere(model: type[pydantic.BaseModel]) -> bool:
    """Whether ``model``, or a field, model, dataclass or typed dict in it, is strict."""
    for node in schema_nodes(model):
        if node.schema.get("strict") is True:
            return True
        config = node.schema.get("config") if node.kind in _CLASSES else None
        if isinstance(config, dict) and config.get("strict"):
            return True
    return bool(model.model_config.get("strict"))


def stored_validator(model: type[_M]) -> Callable[[Any], _M]:
    """A validator of ``model`` for documents a store wrote: it gives a ``model``
    instance, as ``model.model_validate`` does, without leadfunnel's write-time checks
    and normalisers (see the module's docstring).

    pydantic-core reuses a model class's own validator wherever its schema names the
    class, so the fields are validated here by their own schema and the instance is
    put together as ``model_construct`` does. A model that does more than validate its
    fields (an ``after`` model validator, ``model_post_init``, private attributes) is
    validated by ``model.model_validate``, in full. Either way, by field name only, and
    lax: a strict model or field takes its date or UUID from the document's text
    (pydantic-core's ``strict=False`` given at call time overrides the model's, the
    field's and nested classes' ``strict``)."""
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
    # Only a model strict somewhere is given strict=False: leadfunnel's own are not, and
    # their reads pass nothing more.
    lax: dict[str, Any] = {"strict": False} if _strict_somewhere(model) else {}
    if (
        schema.get("type") != "model"
        or schema.get("custom_init")
        or schema.get("root_model")
        or model.__pydantic_post_init__ is not None
        or model.__private_attributes__
    ):
        whole: Callable[[Any], _M] = functools.partial(
            model.model_validate, by_alias=False, by_name=True, **lax
        )
        if not reads_alike_as_json(model):
            return whole, lambda text: whole(from_json(text))
        return whole, functools.partial(
            model.model_validate_json, by_alias=False, by_name=True, **lax
        )
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

    read_data: Callable[..., Any] = fields.validate_python
    read_text: Callable[..., Any] = fields.validate_json
    if lax:
        read_data = functools.partial(read_data, **lax)
        read_text = functools.partial(read_text, **lax)
    from_data = built(read_data)
    if not reads_alike_as_json(model):
        return from_data, lambda text: from_data(from_json(text))
    return from_data, built(read_text)


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


# --- what a document reads back as ----------------------------------------------------
#
# A JSON document holds a UUID, a date and a str alike (as text), a set and a list alike
# (as an array), a Decimal as text that a float reads too: where a field's type admits
# several, a store reads back the member its validation picks from the JSON, which need
# not be the one the record holds (the in-memory store keeps the object itself). The port
# reads such records back from their documents before they are stored (see
# ``check_portable`` in ``_repository``): the schemas below tell which fields need it.

#: Schemas under which a value may read back from its document as another value: a
#: union and the schemas with branches of their own (what the text fits first), a
#: validator or serialiser of the application's that replaces pydantic's (what it writes
#: is read by what it validates), and an arbitrary class (``is-instance``: JSON has no
#: form of it).
_MAY_READ_OTHERWISE = frozenset(
    {
        "union",
        "tagged-union",
        "json-or-python",
        "lax-or-strict",
        "function-plain",
        "function-wrap",
        "is-instance",
        "is-subclass",
        "callable",
    }
)
_UNIONS = frozenset({"union", "tagged-union"})
_OWN_SERIALISERS = frozenset({"function-plain", "function-wrap"})


def _reads_otherwise(
    schema: Any, refs: Mapping[str, Any], unions: bool, seen: frozenset[str] = frozenset()
) -> bool:
    """Whether ``schema`` (a part of a core schema; ``refs`` its definitions) holds one of
    :data:`_MAY_READ_OTHERWISE` (only a union, if ``unions``) or a serialiser function."""
    if isinstance(schema, (list, tuple)):
        return any(_reads_otherwise(item, refs, unions, seen) for item in schema)
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")  # (a mapping of fields may hold a field named "type")
    if kind == "definition-ref":
        ref = schema.get("schema_ref")
        if not isinstance(ref, str) or ref not in refs:
            return not unions  # not found: read it back to be sure
        return ref not in seen and _reads_otherwise(refs[ref], refs, unions, seen | {ref})
    if isinstance(kind, str) and kind in (_UNIONS if unions else _MAY_READ_OTHERWISE):
        return True
    serialiser = schema.get("serialization")
    if not unions and isinstance(serialiser, dict) and serialiser.get("type") in _OWN_SERIALISERS:
        return True
    return any(
        _reads_otherwise(value, refs, unions, seen)
        for key, value in schema.items()
        if key not in _NOT_SCHEMA and key != "serialization"
    )


@functools.cache
def reread_fields(model: type[pydantic.BaseModel]) -> Mapping[str, bool]:
    """The fields of ``model`` whose value may read back from the record's document (see
    :func:`document_of`, :func:`stored_validator`) as another value than it holds, each
    with whether a union is why (else a validator or serialiser of the application's,
    or an arbitrary class). Empty for leadfunnel's own models, and for most of an
    application's: only these are read back before they are stored."""
    nodes = list(schema_nodes(model))  # (builds a deferred model's schema)
    refs = {n.schema["ref"]: n.schema for n in nodes if isinstance(n.schema.get("ref"), str)}
    everything = MappingProxyType(dict.fromkeys(model.model_fields, False))
    configs = [model.model_config, *(n.schema.get("config") for n in nodes)]
    if any(
        isinstance(c, Mapping)
        and c.get("ser_json_bytes", "utf8") != c.get("val_json_bytes", "utf8")
        for c in configs
    ):
        return everything  # bytes written in one encoding, read in another
    schema: Any = model.__pydantic_core_schema__
    seen: set[str] = set()
    # Down to the model's fields, through definitions and the model's own validators.
    while isinstance(schema, dict) and schema.get("type") != "model-fields":
        kind = schema.get("type")
        if kind == "definition-ref":
            ref = schema.get("schema_ref")
            if not isinstance(ref, str) or ref in seen or ref not in refs:
                return everything
            seen.add(ref)
            schema = refs[ref]
            continue
        if kind in ("function-plain", "function-wrap") or (
            kind == "model" and _reads_otherwise(schema.get("serialization"), refs, False)
        ):
            return everything  # a model validator or serialiser of its own: read it all
        schema = schema.get("schema")
    fields = schema.get("fields") if isinstance(schema, dict) else None
    if not isinstance(fields, dict):
        return everything
    found = {
        name: _reads_otherwise(field, refs, True)
        for name, field in fields.items()
        if _reads_otherwise(field, refs, False)
    }
    return MappingProxyType(found)


def read_back(record: _M) -> _M:
    """``record`` as a store reads it back from its document: written by
    :func:`document_of`, parsed, and validated by :func:`stored_validator` (as the SQL
    stores read a model that does not read alike as JSON, see
    :func:`reads_alike_as_json`; PostgreSQL's driver gives the document parsed)."""
    return stored_validator(type(record))(from_json(document_of(record)))
