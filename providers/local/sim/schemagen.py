"""JSON values that validate against a JSON Schema, chosen deterministically.

Covers what structured-output schemas use in practice, including pydantic's
``model_json_schema()`` output: types (and type lists), ``enum``, ``const``,
objects with required and optional properties, nested objects, arrays with
``minItems``/``maxItems``/``uniqueItems``/``prefixItems``, ``anyOf``/``oneOf``
(the first branch, unless recursion must stop), ``allOf`` (merged), ``$ref``
to ``$defs``/``definitions`` (also recursive models), string ``format``,
``minLength``/``maxLength``/``pattern``, and numeric bounds and ``multipleOf``.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Mapping
from typing import Any

from spendgraph.providers.local.sim.regexgen import string_matching
from spendgraph.providers.local.sim.words import NOUNS, pick_words

# Past this nesting depth we stop recursing: optional properties are left out,
# arrays get their minimum length and nullable branches become null.
_MAX_DEPTH = 6
_FORMATS = {
    "date-time": lambda rng: (
        f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
    ),
    "date": lambda rng: f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    "time": lambda rng: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
    "duration": lambda rng: f"P{rng.randint(1, 30)}D",
    "email": lambda rng: f"{rng.choice(NOUNS)}@example.com",
    "idn-email": lambda rng: f"{rng.choice(NOUNS)}@example.com",
    "hostname": lambda rng: f"{rng.choice(NOUNS)}.example.com",
    "idn-hostname": lambda rng: f"{rng.choice(NOUNS)}.example.com",
    "uri": lambda rng: f"https://example.com/{rng.choice(NOUNS)}",
    "iri": lambda rng: f"https://example.com/{rng.choice(NOUNS)}",
    "uri-reference": lambda rng: f"/{rng.choice(NOUNS)}",
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "ipv4": lambda rng: f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
    "ipv6": lambda rng: f"fd00::{rng.randint(1, 0xFFFF):x}",
}


def generate_instance(schema: Any, rng: random.Random) -> Any:
    """A value valid against ``schema`` (a JSON Schema dict or boolean)."""
    return _Generator(schema, rng).value(schema, 0)


class _Generator:
    def __init__(self, root: Any, rng: random.Random):
        self.root = root
        self.rng = rng

    # -- schema plumbing

    def resolve(self, ref: str) -> Any:
        """A local ``$ref`` (``#`` or ``#/json/pointer``); anything else is the empty schema."""
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return {}
        return node

    def flatten(self, schema: Any) -> Any:
        """Follow ``$ref`` and merge ``allOf`` so one dict says what to produce."""
        for _ in range(32):  # a chain of refs, bounded against ref cycles
            if not isinstance(schema, Mapping) or "$ref" not in schema:
                break
            target = self.resolve(schema["$ref"])
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings} if isinstance(target, Mapping) else target
        if isinstance(schema, Mapping) and "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, self.flatten(part))
            return merged
        return schema

    # -- values

    def value(self, schema: Any, depth: int) -> Any:
        schema = self.flatten(schema)
        if schema is True or schema == {}:
            return self.rng.choice(NOUNS)
        if not isinstance(schema, Mapping):
            return None
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self.rng.choice(list(schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.value(self.branch(schema, key, depth), depth)
        kind = self.kind(schema, depth)
        return getattr(self, f"make_{kind}", self.make_string)(schema, depth)

    def branch(self, schema: Mapping[str, Any], key: str, depth: int) -> Any:
        options = list(schema[key])
        chosen: Any = options[0]
        if depth >= _MAX_DEPTH:  # stop recursing: prefer a null branch when there is one
            chosen = next((o for o in options if self.flatten(o) == {"type": "null"}), chosen)
        siblings = {k: v for k, v in schema.items() if k not in (key, "description", "title")}
        flat = self.flatten(chosen)
        return {**siblings, **flat} if isinstance(flat, Mapping) else flat

    def kind(self, schema: Mapping[str, Any], depth: int) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            concrete = [t for t in declared if t != "null"]
            if not concrete or (depth >= _MAX_DEPTH and "null" in declared):
                return "null"
            return concrete[0]
        if isinstance(declared, str):
            return declared
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "multipleOf")):
            return "number"
        return "string"

    def make_null(self, schema: Mapping[str, Any], depth: int) -> None:
        return None

    def make_boolean(self, schema: Mapping[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def make_object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = [name for name in schema.get("required", []) if isinstance(name, str)]
        result: dict[str, Any] = {}
        for name, subschema in properties.items():
            optional_kept = depth < _MAX_DEPTH and self.rng.random() < 0.7
            if name in required or optional_kept:
                result[name] = self.value(subschema, depth + 1)
        extra = schema.get("additionalProperties", True)
        for name in required:  # required names with no property schema
            if name not in result:
                result[name] = self.value(extra if isinstance(extra, Mapping) else {}, depth + 1)
        minimum = int(schema.get("minProperties", 0))
        for index in range(len(result), minimum):
            if extra is False:
                break
            result[f"{self.rng.choice(NOUNS)}_{index}"] = self.value(
                extra if isinstance(extra, Mapping) else {}, depth + 1
            )
        return result

    def make_array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        low = max(int(schema.get("minItems", 0)), len(prefix) if items is False else 0)
        high = int(schema.get("maxItems", low + 3))
        count = low if depth >= _MAX_DEPTH else self.rng.randint(low, max(low, min(high, low + 3)))
        values = [self.value(sub, depth + 1) for sub in prefix[:count]]
        seen = {_canonical(v) for v in values}
        unique = bool(schema.get("uniqueItems"))
        for _ in range(count * 8):  # enough tries to find distinct values
            if len(values) >= count:
                break
            item = self.value(items if items is not False else {}, depth + 1)
            if unique and _canonical(item) in seen:
                continue
            seen.add(_canonical(item))
            values.append(item)
        return values

    def make_string(self, schema: Mapping[str, Any], depth: int) -> str:
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", max(low, 40)))
        if isinstance(schema.get("pattern"), str):
            for _ in range(4):
                text = string_matching(schema["pattern"], self.rng)
                if text is not None and low <= len(text) <= high:
                    return text
        maker = _FORMATS.get(schema.get("format", ""))
        text = maker(self.rng) if maker else " ".join(pick_words(self.rng, self.rng.randint(1, 4)))
        while len(text) < low:
            text += " " + self.rng.choice(NOUNS)
        return text[:high]

    def make_integer(self, schema: Mapping[str, Any], depth: int) -> int:
        low, high = _bounds(schema, integer=True)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            first, last = math.ceil(low / step), math.floor(high / step)
            return self.rng.randint(first, max(first, last)) * step
        return self.rng.randint(int(low), int(max(low, high)))

    def make_number(self, schema: Mapping[str, Any], depth: int) -> float | int:
        low, high = _bounds(schema, integer=False)
        step = schema.get("multipleOf")
        if isinstance(step, (int, float)) and step > 0:
            return self.multiple_of(step, low, high)
        value = round(self.rng.uniform(low, high), 2)
        return min(max(value, low), high)

    def multiple_of(self, step: float, low: float, high: float) -> float | int:
        """A multiple of ``step`` in bounds that survives float division (0.3 / 0.1 does not)."""
        first, last = math.ceil(low / step), math.floor(high / step)
        for _ in range(20):
            value = round(self.rng.randint(first, max(first, last)) * step, 10)
            if value == int(value):
                value = int(value)
            quotient = value / step
            if quotient == int(quotient) and low <= value <= high:
                return value
        return first * step


def _bounds(schema: Mapping[str, Any], *, integer: bool) -> tuple[float, float]:
    """Inclusive bounds from minimum/maximum/exclusive*, both drafts' spellings."""
    epsilon = 1 if integer else 0.01
    low = schema.get("minimum")
    high = schema.get("maximum")
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if exclusive_low is True and low is not None:  # draft 4 boolean form
        low += epsilon
    elif isinstance(exclusive_low, (int, float)) and not isinstance(exclusive_low, bool):
        low = exclusive_low + epsilon if low is None else max(low, exclusive_low + epsilon)
    if exclusive_high is True and high is not None:
        high -= epsilon
    elif isinstance(exclusive_high, (int, float)) and not isinstance(exclusive_high, bool):
        high = exclusive_high - epsilon if high is None else min(high, exclusive_high - epsilon)
    if low is None:
        low = min(0, high - 100) if high is not None else 0
    if high is None:
        high = low + 100
    if integer:
        low, high = math.ceil(low), math.floor(high)
    return low, max(low, high)


def _merge(base: dict[str, Any], extra: Any) -> dict[str, Any]:
    """``allOf`` merge: union of properties and required, other keys overwritten."""
    if not isinstance(extra, Mapping):
        return base
    merged = {**base, **extra}
    if "properties" in base and "properties" in extra:
        merged["properties"] = {**base["properties"], **extra["properties"]}
    if "required" in base and "required" in extra:
        merged["required"] = list(dict.fromkeys([*base["required"], *extra["required"]]))
    return merged


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
