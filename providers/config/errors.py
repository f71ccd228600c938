"""Turning TOML and pydantic failures into one readable :class:`ConfigError`.

The configuration models live in the other modules of this package; this one only
knows how to *report* what is wrong with them: the key path a user can find in
their file (``endpoints[1] (b200-nvfp4-0).price.output``), what was expected and
what was found -- never the value of anything that looks like a secret.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import types
from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from spendgraph.providers.errors import ConfigError

# A key whose name has one of these words as a ``_``-separated part never has
# its value echoed (``api_key_env``, ``access_token``...). Plural "tokens" is
# deliberately not here: ``input_tokens_per_s`` is a count, not a credential.
_SECRET_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "credential", "credentials"}
    | {"auth", "authorization", "bearer"}
)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_URL_USERINFO = re.compile(r"(?<=//)[^/@\s]*@")
_MAX_SHOWN = 60


class Problem(NamedTuple):
    """One thing wrong with a config: where (a key path, or ``None``) and what."""

    key: str | None
    message: str

    def __str__(self) -> str:
        return f"key {self.key!r}: {self.message}" if self.key else self.message


class InvalidConfig(ConfigError):
    """A config file is invalid; ``problems`` lists everything found, in file order.

    Still one exception: with a single problem the message reads like any
    ``ConfigError`` (``FILE, key 'K': expected ...``); with several, each gets
    its own line under ``FILE: N problems:``.
    """

    def __init__(self, problems: Sequence[Problem], *, source: str | None):
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            (only,) = self.problems
            super().__init__(only.message, source=source, key=only.key)
        else:
            lines = "\n".join(f"  - {problem}" for problem in self.problems)
            super().__init__(f"{len(self.problems)} problems:\n{lines}", source=source)


# -- showing values -----------------------------------------------------------


def is_secret_key(key: str) -> bool:
    """Whether a key's value must never appear in a message (``api_key_env``, ``token``...)."""
    return any(part in _SECRET_WORDS for part in key.lower().replace("-", "_").split("_"))


def show(value: Any) -> str:
    """A value as it would look in TOML, shortened, with URL credentials masked."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (float, Decimal)) and not math.isfinite(value):
        return str(value).lower()  # TOML spells them nan, inf, -inf
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a bound of 0.0 reads better as 0
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, str):
        text = _URL_USERINFO.sub("***@", value)
        if len(text) > _MAX_SHOWN:
            text = text[: _MAX_SHOWN - 3] + "..."
        return json.dumps(text, ensure_ascii=False)
    return describe(value)


def describe(value: Any) -> str:
    """A value with its TOML type, for "expected X, got Y" messages."""
    if isinstance(value, bool):
        return show(value)
    if isinstance(value, int):
        return f"an integer {value}"
    if isinstance(value, (float, Decimal)):
        return f"a number {show(value)}" if math.isfinite(value) else show(value)
    if isinstance(value, str):
        return f"a string {show(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime, date, time)):
        return f"a date/time {value.isoformat()}"
    return f"a {type(value).__name__}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- key paths ----------------------------------------------------------------


def toml_key(name: str) -> str:
    """A table key as written in TOML: bare when possible, else quoted."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def endpoint_key(index: int, name: object) -> str:
    """``endpoints[1] (b200-nvfp4-0)``: the index a parser reports plus the name a user searches."""
    label = f"endpoints[{index}]"
    if isinstance(name, str) and name:
        shown = name if len(name) <= _MAX_SHOWN else name[: _MAX_SHOWN - 3] + "..."
        label += f" ({shown})"
    return label


def format_key(loc: Sequence[str | int], raw: Any) -> str:
    """Render a pydantic location as a key path, naming list items by their ``name``."""
    text = ""
    node = raw
    for item in loc:
        if isinstance(item, int):
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
            name = node.get("name") if isinstance(node, dict) else None
            if text == "endpoints":
                text = endpoint_key(item, name)
            else:
                text += f"[{item}]"
        else:
            text += ("." if text else "") + toml_key(item)
            node = node.get(item) if isinstance(node, dict) else None
    return text


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def annotation_at(root: type[BaseModel], loc: Sequence[str | int]) -> Any:
    """The (unwrapped) type declared at ``loc`` below ``root``, or ``None`` if unknown."""
    annotation: Any = root
    for item in loc:
        annotation = _unwrap(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(item) if isinstance(item, str) else None
            if field is None:
                return None
            annotation = field.annotation
        elif origin is list and isinstance(item, int):
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    return _unwrap(annotation)


# -- pydantic errors ----------------------------------------------------------

_TYPE_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "decimal_type": "a number",
    "decimal_parsing": "a number",
    "is_instance_of": "a number",  # strict Decimal fields: the only is-instance check we use
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def problems_from_validation_error(
    exc: ValidationError,
    raw: Any,
    root: type[BaseModel],
    *,
    hidden_keys: Collection[str] = (),
) -> list[Problem]:
    """One :class:`Problem` per pydantic error, with key paths into ``raw`` (the parsed TOML).

    ``hidden_keys`` are top-level fields of ``root`` that a file may not set
    (they are left out of "expected one of" lists).
    """
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        problems.append(
            Problem(format_key(loc, raw) or None, _message(error, loc, root, hidden_keys))
        )
    return problems


def _message(error: Any, loc: tuple, root: type[BaseModel], hidden_keys: Collection[str]) -> str:
    kind = error["type"]
    secret = any(isinstance(part, str) and is_secret_key(part) for part in loc)
    got = "" if secret else f", got {describe(error['input'])}"
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return unknown_key_message(str(loc[-1]), annotation_at(root, loc[:-1]), hidden_keys)
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "list_type" and isinstance(error["input"], dict) and isinstance(loc[-1], str):
        # The classic slip: [endpoints] (one table) where [[endpoints]] was meant.
        name = loc[-1]
        return f"expected an array of tables (write [[{name}]], two brackets), got a table [{name}]"
    if kind in _TYPE_EXPECTED:
        return f"expected {_TYPE_EXPECTED[kind]}{got}"
    if kind in _BOUNDS:
        name, op = _BOUNDS[kind]
        number = "an integer" if annotation_at(root, loc) is int else "a number"
        shown = "" if secret else f", got {show(error['input'])}"
        return f"expected {number} {op} {show(ctx[name])}{shown}"
    if kind == "finite_number":
        return f"expected a finite number{got}"
    if kind == "literal_error":
        return f"expected one of {ctx['expected']}{got}"
    if kind == "too_short":
        return f"expected at least {ctx['min_length']} item(s), got an empty array"
    if kind == "string_too_short":
        return "expected a non-empty string"
    return str(error["msg"])


def unknown_key_message(key: str, model: Any, hidden_keys: Collection[str] = ()) -> str:
    """ "unknown key (did you mean ...?); expected one of: ..." -- never echoing the value."""
    message = "unknown key"
    allowed: list[str] = []
    if isinstance(model, type) and issubclass(model, BaseModel):
        allowed = [name for name in model.model_fields if name not in hidden_keys]
        message += did_you_mean(key, allowed)
    if is_secret_key(key):
        message += (
            "; secrets do not belong in the config file: put the key in an environment "
            "variable and set api_key_env to that variable's name"
        )
    if allowed:
        message += f"; expected one of: {', '.join(allowed)}"
    return message


# -- TOML syntax errors -------------------------------------------------------

# Hints for tomllib's terse reasons, keyed by the reason it gives.
_TOML_HINTS = {
    "Invalid value": "strings need quotes; numbers, true/false, arrays and tables do not",
    "Cannot overwrite a value": "is a key set twice?",
}
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


def toml_problem(exc: Exception) -> Problem:
    """A ``tomllib.TOMLDecodeError`` as a problem that names the line and column."""
    text = str(exc)
    match = _TOML_POSITION.search(text)
    reason = text[: match.start()] if match else text
    hint = _TOML_HINTS.get(reason)
    reason = reason[:1].lower() + reason[1:] + (f" ({hint})" if hint else "")
    if match and match.group(1):
        where = f"line {match.group(1)}, column {match.group(2)}"
    else:
        where = "end of file"
    return Problem(None, f"{where}: not valid TOML: {reason}")
