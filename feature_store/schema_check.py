"""The JSON-schema subset our contracts use, checked the same way in Python and Rust.

serving-rs/src/schema.rs implements the same keywords with the same rules, so a sizing file or a
message is accepted by one side exactly when the other accepts it. Beyond JSON Schema, every number
must be finite (Python's json module reads NaN/Infinity; Rust refuses them). Keywords outside the
subset are an error, so a schema can't silently ask for a check neither side makes. The `jsonschema`
package is the independent oracle in the tests.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from typing import Any

from core.errors import ContractError
from core.resources import contracts_dir

KEYWORDS = frozenset(
    {
        "$schema", "$id", "$defs", "$ref", "title", "description", "type", "properties", "required",
        "additionalProperties", "propertyNames", "items", "minItems", "enum", "const", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "minLength", "pattern",
    }
)  # fmt: skip
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),  # a JSON integer literal, as serde_json
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


@cache
def load_schema(name: str) -> dict:
    """Read contracts/<name> once."""
    schema = json.loads((contracts_dir() / name).read_text())
    _check_keywords(schema, name)
    return schema


def _check_keywords(node: Any, where: str) -> None:
    if not isinstance(node, dict):
        return
    unknown = set(node) - KEYWORDS
    if unknown:
        raise ContractError(f"{where}: schema keywords {sorted(unknown)} are outside the checked subset")
    for key in ("properties", "$defs"):
        for name, sub in node.get(key, {}).items():
            _check_keywords(sub, f"{where}/{key}/{name}")
    for key in ("items", "additionalProperties", "propertyNames"):
        _check_keywords(node.get(key), f"{where}/{key}")


_BOUNDS = {
    "minimum": lambda x, b: x >= b,
    "maximum": lambda x, b: x <= b,
    "exclusiveMinimum": lambda x, b: x > b,
    "exclusiveMaximum": lambda x, b: x < b,
}


def errors(value: Any, schema: dict, root: dict | None = None, path: str = "") -> list[str]:
    """Return every violation of ``schema`` by ``value`` as 'path: message' (empty when valid)."""
    root = schema if root is None else root
    ref = schema.get("$ref")
    if ref is not None:
        return errors(value, root["$defs"][ref.removeprefix("#/$defs/")], root, path)
    here = path or "<root>"
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{here}: {value} is not a finite number"]
    t = schema.get("type")
    if t is not None:
        ok = any(_TYPES[x](value) for x in t) if t.__class__ is list else _TYPES[t](value)
        if not ok:
            types = t if isinstance(t, list) else [t]
            return [f"{here}: expected {' or '.join(types)}, got {type(value).__name__}"]
    out: list[str] = []
    if "const" in schema and not _same(value, schema["const"]):
        out.append(f"{here}: must be {schema['const']!r}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        out.append(f"{here}: {value!r} not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key in _BOUNDS.keys() & schema.keys():
            if not _BOUNDS[key](value, schema[key]):
                out.append(f"{here}: {value} violates {key} {schema[key]}")
    elif isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            out.append(f"{here}: shorter than {schema['minLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{here}: {value!r} does not match {schema['pattern']}")
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{here}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                out += errors(item, schema["items"], root, f"{path}/{i}".lstrip("/"))
    elif isinstance(value, dict):
        out += _object_errors(value, schema, root, path)
    return out


def _object_errors(value: dict, schema: dict, root: dict, path: str) -> list[str]:
    here = path or "<root>"
    out = [f"{here}: missing {k!r}" for k in schema.get("required", []) if k not in value]
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        sub = f"{path}/{key}".lstrip("/")
        if "propertyNames" in schema:
            out += errors(key, schema["propertyNames"], root, sub)
        if key in props:
            out += errors(item, props[key], root, sub)
        elif extra is False:
            out.append(f"{sub}: unknown field")
        elif isinstance(extra, dict):
            out += errors(item, extra, root, sub)
    return out


def _same(a: Any, b: Any) -> bool:
    """Equality as serde_json's Value has it: 1 and 1.0 differ, True is not 1."""
    if isinstance(a, (bool, int, float)) or isinstance(b, (bool, int, float)):
        return type(a) is type(b) and a == b
    return a == b


def check(value: Any, schema_name: str, source: str) -> None:
    """Raise ContractError naming ``source`` and every violation of contracts/<schema_name>."""
    problems = errors(value, load_schema(schema_name))
    if problems:
        raise ContractError(f"{source}: " + "; ".join(problems))
