"""Strings that match a regular expression, for JSON Schema ``pattern``.

Structured outputs often constrain strings with a pattern (codes such as
ICD-10 ``^[A-Z]\\d{2}(\\.\\d{1,4})?$``). We walk the parse tree of Python's own
regex parser and emit one matching string, choosing branches, repeat counts
and characters with the caller's random generator. The parser module is
CPython's (``re._parser``); anything it cannot express here (look-arounds,
back-references) makes :func:`string_matching` return None and the caller
falls back to a plain string.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

try:  # CPython >= 3.11 keeps the parser here; it is stable but private.
    from re import _constants as _c
    from re import _parser as _parser
except ImportError:  # pragma: no cover - other interpreters
    _parser = None
    _c = None

_MAX_OPEN_REPEAT = 3  # how far past its minimum an open-ended repeat (*, +, {n,}) goes
_PRINTABLE = string.ascii_letters + string.digits + " "


class _Unsupported(Exception):
    pass


def _category(category: Any) -> str:
    if category is _c.CATEGORY_DIGIT:
        return string.digits
    if category is _c.CATEGORY_WORD:
        return string.ascii_letters + string.digits + "_"
    if category is _c.CATEGORY_SPACE:
        return " "
    if category is _c.CATEGORY_NOT_DIGIT:
        return string.ascii_letters
    if category is _c.CATEGORY_NOT_WORD:
        return " -."
    if category is _c.CATEGORY_NOT_SPACE:
        return string.ascii_letters + string.digits
    raise _Unsupported(str(category))


def _charset(items: list[tuple[Any, Any]], rng: random.Random) -> str:
    allowed: list[str] = []
    negate = False
    for op, value in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            allowed.append(chr(value))
        elif op is _c.RANGE:
            low, high = value
            allowed.extend(chr(code) for code in range(low, min(high, low + 200) + 1))
        elif op is _c.CATEGORY:
            allowed.extend(_category(value))
        else:
            raise _Unsupported(str(op))
    if negate:
        choices = [char for char in _PRINTABLE if char not in set(allowed)]
        return rng.choice(choices) if choices else "~"
    return rng.choice(allowed)


def _emit(tokens: Any, rng: random.Random) -> str:
    out: list[str] = []
    for op, value in tokens:
        if op is _c.LITERAL:
            out.append(chr(value))
        elif op is _c.NOT_LITERAL:
            out.append(rng.choice([c for c in string.ascii_letters if ord(c) != value]))
        elif op is _c.ANY:
            out.append(rng.choice(string.ascii_letters))
        elif op is _c.IN:
            out.append(_charset(value, rng))
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            low, high, body = value
            high = low + _MAX_OPEN_REPEAT if high is _c.MAXREPEAT else min(high, low + 10)
            out.extend(_emit(body, rng) for _ in range(rng.randint(low, high)))
        elif op is _c.SUBPATTERN:
            out.append(_emit(value[-1], rng))
        elif op is _c.BRANCH:
            out.append(_emit(rng.choice(value[1]), rng))
        elif op is _c.AT:
            continue  # anchors emit nothing; we generate whole strings
        else:
            raise _Unsupported(str(op))
    return "".join(out)


def string_matching(pattern: str, rng: random.Random, attempts: int = 5) -> str | None:
    """A string that ``re.search(pattern, s)`` accepts, or None if we cannot make one."""
    if _parser is None:
        return None
    try:
        parsed = _parser.parse(pattern)
        compiled = re.compile(pattern)
    except (re.error, RecursionError):
        return None
    for _ in range(attempts):
        try:
            candidate = _emit(parsed, rng)
        except (_Unsupported, IndexError, ValueError):
            return None
        if compiled.search(candidate):
            return candidate
    return None
