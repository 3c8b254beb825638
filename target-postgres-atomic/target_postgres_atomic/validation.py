"""Per-record checks at C speed: msgspec decodes each record against a type built from its schema.

The check runs while PostgreSQL is busy parsing the previous chunk of COPY data, so it costs
little wall time. With `validate_records`, the whole JSON schema is checked too: compiled
once per SCHEMA (fastjsonschema) on the general path; on the typed path only where its strict
decode (plus the nested checks here) checks all the schema says (`typed_path_refusal`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from operator import itemgetter
from types import NoneType
from typing import Any, Union

import fastjsonschema
import msgspec
from fastjsonschema.draft07 import CodeGeneratorDraft07

from target_postgres_atomic.columns import json_types
from target_postgres_atomic.errors import BadRecordError, SchemaError, missing_key
from target_postgres_atomic.spec import TableSpec

_PYTHON_TYPES: dict[str, Any] = {
    "integer": int,
    "number": float,
    "string": str,
    "boolean": bool,
    "object": dict,
    "array": list,
}
# msgspec cannot name a field with these; such (rare) properties are not checked here.
UNNAMEABLE = re.compile(r'[\\"\x00-\x1f]')
_MISSING = re.compile(r"missing required field `(?P<field>.*)`")
_AT = re.compile(r" - at `\$\.(?P<field>.*)`$")
CHECKED_FORMATS = frozenset(CodeGeneratorDraft07.FORMAT_REGEXS) | {"regex"}
"""Formats the compiled validator checks (others, such as `singer.decimal`, pass)."""
# Times without an offset are read in the server's time zone (as singer-sdk SQL taps send a
# `timestamp without time zone`); the typed decode takes RFC 3339 with an offset only.
_TIME = r"[0-2]\d:[0-5]\d:[0-6]\d(\.\d+)?([Zz]|[+-][0-2]\d(:?[0-5]\d)?)?"
_LENIENT_FORMATS = {
    "date-time": rf"^\d{{4}}-[01]\d-[0-3]\d[Tt ]{_TIME}$",
    "time": rf"^{_TIME}$",
}
_MSGSPEC_TYPE = re.compile(r"`([a-z| ]+)`")
_JSON_NAMES = {
    "int": "integer",
    "float": "number",
    "str": "string",
    "bool": "boolean",
    "dict": "object",
    "object": "object",
    "array": "array",
    "null": "null",
}


def _json_names(problem: str) -> str:
    """msgspec's "Expected `int | null`, got `str`" in JSON Schema words."""

    def name(match: re.Match[str]) -> str:
        return " or ".join(_JSON_NAMES.get(p.strip(), p.strip()) for p in match[1].split("|"))

    return _MSGSPEC_TYPE.sub(name, problem[:1].lower() + problem[1:])


def _undecodable(stream: str, seq: int, raw: bytes, exc: Exception) -> BadRecordError:
    """Invalid UTF-8 inside a record: name the top-level field that holds it."""
    try:
        record = json.loads(raw.decode("utf-8", "surrogateescape"))
    except ValueError:
        record = None
    return BadRecordError(stream, seq, unencodable_field(record), f"not valid UTF-8 ({exc})")


def unencodable_field(record: Any) -> str | None:
    """The top-level field of a record (parsed leniently) holding invalid UTF-8 or a lone
    surrogate escape, which neither msgspec nor PostgreSQL accept."""
    if not isinstance(record, dict):
        return None
    return next((k for k, v in record.items() if _has_surrogate(k) or _has_surrogate(v)), None)


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def _python_type(prop: Any, *, check_types: bool) -> Any:
    kinds = json_types(prop) if check_types and isinstance(prop, dict) else []
    options = [_PYTHON_TYPES[k] for k in dict.fromkeys(kinds) if k in _PYTHON_TYPES]
    if not options:
        return Any
    union = options[0]
    for option in options[1:]:
        union = union | option
    return union


def json_text_properties(spec: TableSpec) -> set[str]:
    """Properties declared only as objects or arrays: without type checks, a string in one
    is taken as the JSON text it holds (as pipelinewise-target-postgres loads it)."""
    found = set()
    for name, prop in spec.properties.items():
        kinds = set(json_types(prop)) if isinstance(prop, dict) else set()
        if kinds and kinds <= {"object", "array"}:
            found.add(name)
    return found


def _with_json_text(raw: bytes, texts: dict[str, str]) -> bytes:
    """The record with each string of `texts` that is an object's or array's JSON text
    replaced by that JSON (kept as written: numbers keep every digit); others stay strings."""
    parsed = {}
    for name, text in texts.items():
        if text.lstrip()[:1] not in ("{", "["):
            continue
        try:
            msgspec.json.decode(text)
        except msgspec.DecodeError:
            continue
        parsed[name] = msgspec.Raw(text.encode())
    if not parsed:
        return raw
    record = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
    return msgspec.json.encode({**record, **parsed})


ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "readOnly",
        "writeOnly",
        "deprecated",
        "contentMediaType",
        "contentEncoding",
    }
)
"""Keywords that constrain nothing."""
_TOP_LEVEL = frozenset({"type", "properties", "$schema", "$id", "definitions", "$defs"})
_NESTED = ("properties", "items", "additionalProperties")
_TYPED_FORMATS = frozenset({"date-time", "date"})
"""Formats the typed decode checks itself (RFC 3339 datetimes with an offset, dates)."""


def typed_path_refusal(spec: TableSpec) -> str | None:
    """Why the typed fast path would not check all the stream's schema says (the keyword and
    where), or None when its strict decode of types is the whole validation: then it may run
    without the compiled validator. Decided once per SCHEMA."""
    schema = spec.record_schema
    for keyword, value in schema.items():
        if keyword in _TOP_LEVEL or keyword in ANNOTATIONS:
            continue
        if keyword == "additionalProperties" and value in (True, {}):
            continue
        if keyword == "required" and isinstance(value, list) and set(value) <= set(spec.keys):
            continue  # keys are required fields of the typed struct
        return keyword
    nested = checked_nested_properties(spec)
    for name, prop in spec.properties.items():
        if not isinstance(prop, dict):
            return f"{name}: not a schema object"
        if name in nested:
            continue
        for keyword, value in prop.items():
            if keyword in ANNOTATIONS or keyword == "type":
                continue
            if keyword == "format" and (value in _TYPED_FORMATS or value not in CHECKED_FORMATS):
                continue
            if keyword in _NESTED and _unconstrained(keyword, value):
                continue
            return f"{name}: {keyword}"
    return None


def _unconstrained(keyword: str, value: Any) -> bool:
    """A nested schema keyword (`properties`, `items`...) that lets every value through."""
    if keyword == "properties":
        schemas = list(value.values()) if isinstance(value, dict) else [None]
    else:
        schemas = value if isinstance(value, list) else [value]
    return all(s is True or (isinstance(s, dict) and s.keys() <= ANNOTATIONS) for s in schemas)


def checked_nested_properties(spec: TableSpec) -> set[str]:
    """Objects and arrays (jsonb, raw bytes on the typed path) with rules inside: the typed
    path checks each against its own compiled schema (`nested_checker`)."""
    found = set()
    for name, prop in spec.properties.items():
        kinds = set(json_types(prop)) if isinstance(prop, dict) else set()
        if kinds and kinds <= {"object", "array"} and not prop.keys() <= {"type"} | ANNOTATIONS:
            found.add(name)
    return found


def _compiled(spec: TableSpec, schema: Any) -> Callable[[Any], Any]:
    try:
        return fastjsonschema.compile(schema, formats=_LENIENT_FORMATS)
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        problem = f"the schema is not valid JSON Schema: {exc}"
        raise SchemaError(spec.stream, spec.schema_line, problem) from None


def _breach(
    stream: str, seq: int, exc: fastjsonschema.JsonSchemaValueException, at: str
) -> BadRecordError:
    """The rule a record breaks, with the field path (`items[2].price`) below `at`."""
    name = exc.name or "data"
    path = at + name.removeprefix("data")
    problem = f"{exc.message.removeprefix(name).strip()} ({exc.rule})"
    if exc.rule == "required" and isinstance(exc.value, dict):
        missing = [p for p in exc.rule_definition or () if p not in exc.value]
        path = ".".join(filter(None, (path, *missing[:1])))
        problem = "the schema requires this property (required), the record lacks it"
    return BadRecordError(stream, seq, path.removeprefix(".") or None, problem)


def schema_validator(spec: TableSpec) -> Callable[[int, bytes], None]:
    """The stream's whole JSON schema, compiled once: raises a BadRecordError naming the
    field path when a record breaks any of its rules."""
    validate = _compiled(spec, dict(spec.record_schema))
    stream = spec.stream

    def check(seq: int, raw: bytes) -> None:
        try:
            validate(msgspec.json.decode(raw))
        except fastjsonschema.JsonSchemaValueException as exc:
            raise _breach(stream, seq, exc, "") from None

    return check


_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}


def _strict_type(schema: Any, depth: int = 0) -> Any:
    """A msgspec type accepting only values `schema` accepts (maybe fewer: then the compiled
    validator decides), for schemas of types alone; None for any other schema."""
    if schema is True or (isinstance(schema, dict) and schema.keys() <= ANNOTATIONS):
        return Any
    if not isinstance(schema, dict) or not schema.keys() <= {"type", *_NESTED[:2], *ANNOTATIONS}:
        return None
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not isinstance(kinds, list) or not kinds or depth > 8:
        return None
    options: list[Any] = []
    for kind in kinds:
        if kind == "null" or kind in _SCALARS:
            options.append(None if kind == "null" else _SCALARS[kind])
        elif (
            kind == "array"
            and (item := _strict_type(schema.get("items", {}), depth + 1)) is not None
        ):
            options.append(list[item])  # type: ignore[valid-type]
        elif kind == "object" and (struct := _strict_struct(schema, depth)) is not None:
            options.append(struct)
        else:
            return None
    return Union[tuple(options)]  # noqa: UP007 (built at run time)


def _strict_struct(schema: dict[str, Any], depth: int) -> Any:
    properties = schema.get("properties", {})
    if not isinstance(properties, dict) or any(map(UNNAMEABLE.search, properties)):
        return None
    fields: list[Any] = []
    for index, prop in enumerate(properties.values()):
        kind = _strict_type(prop, depth + 1)
        if kind is None:
            return None
        fields.append((f"f{index}", kind, None))  # absent is fine (no `required` here)
    rename = {f"f{index}": name for index, name in enumerate(properties)}
    return msgspec.defstruct("Nested", fields, rename=rename, kw_only=True)


def nested_checker(
    spec: TableSpec, sources: list[str]
) -> Callable[[int, tuple[Any, ...]], None] | None:
    """For the typed path: checks each raw object or array value (`sources[i]` is the
    property of typed value i) against its property's schema; None if none has rules inside.
    A msgspec decode checks schemas of types alone at C speed; what it refuses, or any other
    schema, the compiled validator judges. A JSON null passes, as in the typed decode
    (absent and null look alike there)."""
    nested = checked_nested_properties(spec)
    checks = []
    for index, name in enumerate(sources):
        if name in nested:
            prop = spec.properties[name]
            strict = _strict_type(prop)
            # A JSON null passes here, as in the typed decode (see the docstring).
            decode = msgspec.json.Decoder(Union[strict, None] if strict else NoneType).decode  # noqa: UP007
            checks.append((index, name, decode, _compiled(spec, dict(prop))))
    if not checks:
        return None
    stream = spec.stream

    def check(seq: int, values: tuple[Any, ...]) -> None:
        for index, name, decode, validate in checks:
            try:
                decode(values[index])
            except msgspec.ValidationError:
                try:
                    validate(msgspec.json.decode(values[index]))
                except fastjsonschema.JsonSchemaValueException as exc:
                    raise _breach(stream, seq, exc, name) from None

    return check


_KIND_TYPES: dict[frozenset[int], Any] = {
    frozenset(b"-0123456789"): Union[int, float],  # noqa: UP007 (a runtime type)
    frozenset(b"{"): dict[str, msgspec.Raw],
    frozenset(b"["): list[msgspec.Raw],
    frozenset(b"{["): Union[dict[str, msgspec.Raw], list[msgspec.Raw]],  # noqa: UP007
}
"""For a raw value's allowed first bytes: a msgspec type taking exactly the JSON values that
start so (its JSON kind), decoding no deeper than needed."""


def chunk_checker(
    spec: TableSpec,
    sources: list[str],
    kinds: tuple[tuple[int, frozenset[int]], ...],
    *,
    offset: int,
    nested: bool,
) -> Callable[[list[tuple[Any, ...]]], bool] | None:
    """For the typed path: checks a chunk of rows with one msgspec decode per checked column
    (the column's values joined into one JSON array), instead of a few Python calls per row.
    It passes exactly when every row passes the kind checks (`kinds`: value index, allowed
    first bytes) and, with `nested`, the rules inside objects and arrays (`nested_checker`);
    when it fails, the caller checks row by row to find and name the row. Values are at
    `offset + index` in a row. None when some rule needs the compiled validator."""
    inside = checked_nested_properties(spec) if nested else set()
    allowed = dict(kinds)
    decoders: list[tuple[int, Callable[[bytes], Any]]] = []
    for index, name in enumerate(sources):
        if name in inside:
            # The strict type of a property with a type implies its kind check.
            if (strict := _strict_type(spec.properties[name])) is None:
                return None
            kind: Any = strict
        elif index in allowed:
            kind = _KIND_TYPES[allowed[index]]
        else:
            continue
        decoders.append((offset + index, msgspec.json.Decoder(list[Union[kind, None]]).decode))  # noqa: UP007

    def check(rows: list[tuple[Any, ...]]) -> bool:
        try:
            for column, decode in decoders:
                decode(b"[%b]" % b",".join(map(itemgetter(column), rows)))
        except (msgspec.DecodeError, RecursionError):
            return False
        return True

    return check


def record_checker(spec: TableSpec, *, check_types: bool) -> Callable[[int, bytes], bytes]:
    """A function that raises a BadRecordError naming the field when a record breaks `spec`,
    else returns the record to stage (JSON text decoded, without type checks)."""
    fields: list[Any] = []
    rename: dict[str, str] = {}
    json_text = set() if check_types else json_text_properties(spec)
    text_attributes: dict[str, str] = {}
    for index, (name, prop) in enumerate(spec.properties.items()):
        if UNNAMEABLE.search(name):
            continue
        attribute = f"f{index}"
        rename[attribute] = name
        if name in json_text:
            text_attributes[attribute] = name
        python_type = _python_type(prop, check_types=check_types)
        if name in spec.keys:
            key_type = (
                python_type if python_type is not Any else int | float | str | bool | dict | list
            )
            fields.append((attribute, key_type))
        elif python_type is Any:
            fields.append((attribute, Any, None))
        else:
            fields.append((attribute, python_type | None, None))
    # kw_only: a required key may follow optional properties (schemas list columns in any order).
    record_type = msgspec.defstruct(
        "Record", fields, rename=rename, forbid_unknown_fields=False, kw_only=True
    )
    decode = msgspec.json.Decoder(record_type).decode
    stream, keys = spec.stream, set(spec.keys)
    validate = schema_validator(spec) if check_types else None

    def check(seq: int, raw: bytes) -> bytes:
        try:
            record = decode(raw)
        except msgspec.DecodeError as exc:
            if not isinstance(exc, msgspec.ValidationError):
                raise _undecodable(stream, seq, raw, exc) from None
            message = str(exc)
            if found := _MISSING.search(message):
                raise missing_key(stream, seq, found.group("field")) from None
            at = _AT.search(message)
            field = at.group("field") if at else None
            if field in keys and "got `null`" in message:
                raise missing_key(stream, seq, field) from None
            problem = message[: at.start()] if at else message
            raise BadRecordError(stream, seq, field, _json_names(problem)) from None
        if validate is not None:
            validate(seq, raw)
        texts = {
            name: value
            for attribute, name in text_attributes.items()
            if isinstance(value := getattr(record, attribute), str)
        }
        return _with_json_text(raw, texts) if texts else raw

    return check
