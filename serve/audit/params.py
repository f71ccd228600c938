"""Query-string parameters of the audit app's JSON endpoints, checked: a bad one is a 400.

Filters are the ``audit`` commands' (``since``, ``until``, ``app``, ``user``,
``thread``); one that is absent keeps the value ``audit serve`` was started
with, an empty one clears it. Times are ISO 8601 dates or datetimes (naive:
UTC); a bare date as ``until`` includes that day, as on the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from spendgraph.providers.ledger import LedgerFilter

FILTERS = ("since", "until", "app", "user", "thread")
_Choice = TypeVar("_Choice", bound=StrEnum)
_DATE_ONLY = len("2025-03-01")


class BadParameter(ValueError):
    """A query-string parameter the endpoint does not take, or a value it cannot use."""

    def __init__(self, parameter: str, value: str, expected: str) -> None:
        self.parameter = parameter
        self.value = value
        super().__init__(f"bad parameter {parameter}={value!r}: {expected}")


def only(query: Mapping[str, str], allowed: Iterable[str]) -> Mapping[str, str]:
    """``query`` itself, once every parameter in it is one of ``allowed``."""
    names = tuple(allowed)
    for name, value in query.items():
        if name not in names:
            raise BadParameter(name, value, f"unknown parameter; this endpoint takes {names}")
    return query


def filters(query: Mapping[str, str], defaults: LedgerFilter) -> LedgerFilter:
    """The ledger filter the parameters ask for, on top of the served defaults."""
    since = _when(query, "since", defaults.since, end_of_day=False)
    until = _when(query, "until", defaults.until, end_of_day=True)
    if since is not None and until is not None and since >= until:
        raise BadParameter("since", query.get("since", since.isoformat()), "must be before until")
    return dataclasses.replace(
        defaults,
        since=since,
        until=until,
        app=_text(query, "app", defaults.app),
        user=_text(query, "user", defaults.user),
        thread_id=_text(query, "thread", defaults.thread_id),
    )


def choice(query: Mapping[str, str], name: str, kind: type[_Choice], default: _Choice) -> _Choice:
    """One member of ``kind`` by its value."""
    value = query.get(name)
    if value is None:
        return default
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise BadParameter(name, value, f"expected one of {allowed}") from None


def count(query: Mapping[str, str], name: str, default: int) -> int:
    """A whole number >= 0 (a ``limit``: 0 means all)."""
    value = query.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise BadParameter(name, value, "expected a whole number >= 0 (0: all)")
    return int(value)


def required(query: Mapping[str, str], name: str) -> str:
    value = (query.get(name) or "").strip()
    if not value:
        raise BadParameter(name, query.get(name, ""), "required")
    return value


def _text(query: Mapping[str, str], name: str, default: str | None) -> str | None:
    if name not in query:
        return default
    return query[name].strip() or None


def _when(
    query: Mapping[str, str], name: str, default: datetime | None, *, end_of_day: bool
) -> datetime | None:
    if name not in query:
        return default
    text = query[name].strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadParameter(
            name, text, "expected an ISO 8601 date or datetime (2025-03-01, 2025-03-01T12:00Z)"
        ) from None
    if end_of_day and len(text) == _DATE_ONLY:
        parsed += timedelta(days=1)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
