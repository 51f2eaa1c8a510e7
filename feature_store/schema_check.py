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
from collections.abc import Callable
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


@cache
def compiled(name: str) -> Callable[[Any], bool]:
    """contracts/<name> as a ``validator``, compiled once."""
    return validator(load_schema(name))


def validator(schema: dict) -> Callable[[Any], bool]:
    """``schema`` compiled to a predicate: ``validator(s)(v)`` is ``not errors(v, s)``, many times faster.

    For hot paths (the signal sink checks every Signal): call ``errors`` only for the message of a
    value this refuses. The schema becomes the source of one Python function (``_Source``), with the
    checks of objects, arrays, numbers and strings inlined and loops over arrays; a value that is
    not of JSON's exact type there (a bool, a subclass) and the rarer keywords take ``_predicate``.
    """
    return _Source(schema).function()


def _predicate(schema: dict, root: dict | None = None, _refs: dict | None = None) -> Callable[[Any], bool]:
    """``schema`` as a tree of closures, keyword by keyword with ``errors``' rules: ``validator``'s general case.

    JSON's exact types (int, float, str) take a short path, anything else (bool, subclasses) the
    general one.
    """
    root = schema if root is None else root
    refs: dict[str, Callable[[Any], bool]] = {} if _refs is None else _refs
    ref = schema.get("$ref")
    if ref is not None:
        name = ref.removeprefix("#/$defs/")
        if name not in refs:
            later: list[Callable[[Any], bool]] = []  # a recursive $ref calls through this until compiled
            refs[name] = lambda v: later[0](v)
            later.append(_predicate(root["$defs"][name], root, refs))
            refs[name] = later[0]
        return refs[name]
    t = schema.get("type")
    types = [_TYPES[x] for x in (t if isinstance(t, list) else [t])] if t is not None else []
    const, enum = schema.get("const", _ABSENT), schema.get("enum")
    bounds = [(_BOUNDS[k], schema[k]) for k in _BOUNDS if k in schema]
    min_length, min_items = schema.get("minLength", 0), schema.get("minItems", 0)
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
    items = _predicate(schema["items"], root, refs) if "items" in schema else None
    required = schema.get("required", [])
    props = {k: _predicate(v, root, refs) for k, v in schema.get("properties", {}).items()}
    names = _predicate(schema["propertyNames"], root, refs) if "propertyNames" in schema else None
    extra = schema.get("additionalProperties", True)
    extra_check = _predicate(extra, root, refs) if isinstance(extra, dict) else None

    def bounds_ok(v: int | float) -> bool:
        for ok, b in bounds:
            if not ok(v, b):
                return False
        return True

    def text_ok(v: str) -> bool:
        return len(v) >= min_length and (pattern is None or pattern.search(v) is not None)

    def elements_ok(v: list) -> bool:
        if len(v) < min_items:
            return False
        if items is not None:
            for x in v:
                if not items(x):
                    return False
        return True

    def members_ok(v: dict) -> bool:
        for k in required:
            if k not in v:
                return False
        for key, item in v.items():
            if names is not None and not names(key):
                return False
            sub = props.get(key)
            if sub is not None:
                if not sub(item):
                    return False
            elif extra is False or (extra_check is not None and not extra_check(item)):
                return False
        return True

    def check(v: Any) -> bool:
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if types and not any(f(v) for f in types):
            return False
        if const is not _ABSENT and not _same(v, const):
            return False
        if enum is not None and not any(_same(v, e) for e in enum):
            return False
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return bounds_ok(v)
        if isinstance(v, str):
            return text_ok(v)
        if isinstance(v, list):
            return elements_ok(v)
        if isinstance(v, dict):
            return members_ok(v)
        return True

    # JSON's exact types skip the general dispatch; anything else (bool, subclasses) takes it.
    keywords = schema.keys() - _ANNOTATIONS
    if t in ("number", "integer") and keywords <= {"type", *_BOUNDS}:
        integer = t == "integer"

        def number(v: Any) -> bool:
            c = v.__class__
            if c is float:
                if integer or not math.isfinite(v):
                    return False
            elif c is not int:
                return check(v)
            return bounds_ok(v)

        return number
    if t == "string" and keywords <= {"type", "minLength", "pattern"}:
        return lambda v: text_ok(v) if v.__class__ is str else check(v)
    if t == "object" and not keywords & {"const", "enum"}:
        return lambda v: members_ok(v) if v.__class__ is dict else check(v)
    if t == "array" and keywords <= {"type", "items", "minItems"}:
        return lambda v: elements_ok(v) if v.__class__ is list else check(v)
    return check


_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})
_ABSENT = object()


class _Source:
    """A schema written out as the source of one predicate ``check(v)``, then compiled.

    Each node becomes statements that ``return False`` on a violation. Objects, arrays, numbers,
    strings and string enums are inlined for JSON's exact types; everything else, and every value
    of another type at such a node, calls that node's ``_predicate`` (bound as ``P<n>``), so the
    rules stay ``errors``' own. A recursive ``$ref`` calls its definition's ``_predicate`` too.
    """

    def __init__(self, root: dict) -> None:
        self.root = root
        self.names: dict[str, Any] = {"isfinite": math.isfinite, "ABSENT": _ABSENT}
        self.refs: dict[str, Callable[[Any], bool]] = {}
        self.count = 0

    def function(self) -> Callable[[Any], bool]:
        lines = ["def check(v):", *self.node(self.root, "v", 1, ()), "    return True"]
        code = compile("\n".join(lines), f"<schema {self.root.get('$id', '')}>", "exec")
        exec(code, self.names)  # the source is ours, written from the schema's keywords above
        return self.names["check"]

    def bind(self, value: Any) -> str:
        self.count += 1
        name = f"P{self.count}"
        self.names[name] = value
        return name

    def fresh(self) -> str:
        self.count += 1
        return f"x{self.count}"

    @staticmethod
    def unless(condition: str, pad: str) -> list[str]:
        """``return False`` unless ``condition`` holds (nothing to check when it is empty)."""
        return [f"{pad}if not ({condition}):", f"{pad}    return False"] if condition else [f"{pad}pass"]

    def general(self, node: dict, var: str, pad: str) -> list[str]:
        return [f"{pad}if not {self.bind(_predicate(node, self.root, self.refs))}({var}):", f"{pad}    return False"]

    def node(self, node: dict, var: str, depth: int, seen: tuple[str, ...]) -> list[str]:
        pad = "    " * depth
        ref = node.get("$ref")
        if ref is not None:
            name = ref.removeprefix("#/$defs/")
            if name in seen:  # recursion: no inlining, a call
                return self.general(node, var, pad)
            return self.node(self.root["$defs"][name], var, depth, (*seen, name))
        t, keywords = node.get("type"), node.keys() - _ANNOTATIONS

        def otherwise() -> list[str]:  # a value of another type (a bool, a subclass) takes the general check
            return [f"{pad}else:", *self.general(node, var, pad + "    ")]

        if t in ("number", "integer") and keywords <= {"type", *_BOUNDS}:
            bounds = " and ".join(f"{var} {_OPS[k]} {node[k]!r}" for k in _BOUNDS if k in node)
            as_float = "False" if t == "integer" else " and ".join(filter(None, [f"isfinite({var})", bounds]))
            return [
                f"{pad}if {var}.__class__ is int:",
                *self.unless(bounds, pad + "    "),
                f"{pad}elif {var}.__class__ is float:",
                *self.unless(as_float, pad + "    "),
                *otherwise(),
            ]
        if t == "string" and keywords <= {"type", "minLength", "pattern"}:
            checks = [f"len({var}) >= {int(node['minLength'])}"] if node.get("minLength", 0) else []
            if "pattern" in node:
                checks.append(f"{self.bind(re.compile(node['pattern']))}.search({var}) is not None")
            return [f"{pad}if {var}.__class__ is str:", *self.unless(" and ".join(checks), pad + "    "), *otherwise()]
        if keywords == {"enum"} and all(isinstance(e, str) for e in node["enum"]):
            allowed = self.bind(frozenset(node["enum"]))
            return [f"{pad}if {var}.__class__ is str:", *self.unless(f"{var} in {allowed}", pad + "    "), *otherwise()]
        if t == "array" and keywords <= {"type", "items", "minItems"}:
            lines = [f"{pad}if {var}.__class__ is list:"]
            if node.get("minItems", 0):
                lines += [f"{pad}    if len({var}) < {int(node['minItems'])}:", f"{pad}        return False"]
            if "items" in node:
                item = self.fresh()
                lines += [f"{pad}    for {item} in {var}:", *self.node(node["items"], item, depth + 2, seen)]
            return [*lines, *([] if len(lines) > 1 else [f"{pad}    pass"]), *otherwise()]
        if t == "object" and keywords <= {"type", "properties", "required", "additionalProperties"}:
            return [f"{pad}if {var}.__class__ is dict:", *self.members(node, var, depth + 1, seen), *otherwise()]
        return self.general(node, var, pad)

    def members(self, node: dict, var: str, depth: int, seen: tuple[str, ...]) -> list[str]:
        pad = "    " * depth
        props, required = node.get("properties", {}), node.get("required", [])
        extra = node.get("additionalProperties", True)
        lines: list[str] = []
        if required:
            lines += [f"{pad}if not {var}.keys() >= {self.bind(frozenset(required))}:", f"{pad}    return False"]
        known = self.bind(frozenset(props))
        if extra is False:
            lines += [f"{pad}if not {known}.issuperset({var}):", f"{pad}    return False"]
        elif isinstance(extra, dict):
            key, item = self.fresh(), self.fresh()
            lines += [
                f"{pad}for {key}, {item} in {var}.items():",
                f"{pad}    if {key} not in {known}:",
                *self.node(extra, item, depth + 2, seen),
            ]
        for name, sub in props.items():
            item = self.fresh()
            if name in required:
                lines += [f"{pad}{item} = {var}[{name!r}]", *self.node(sub, item, depth, seen)]
            else:
                lines += [
                    f"{pad}{item} = {var}.get({name!r}, ABSENT)",
                    f"{pad}if {item} is not ABSENT:",
                    *self.node(sub, item, depth + 1, seen),
                ]
        return lines or [f"{pad}pass"]


_OPS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


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
