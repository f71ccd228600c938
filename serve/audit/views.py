"""What the audit app serves, as JSON-ready dicts, and how a view says "no such thing".

The shapes belong to the ``audit`` commands' ``--json`` output, which the
CLI defines; the CLI hands the app one :class:`AuditViews` built from those
same functions, so a page and a command never disagree on a number or a key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spendgraph.providers.errors import SpendgraphError
from spendgraph.providers.ledger import GroupBy, GroupTotal, LedgerFilter, QuerySort

Json = dict[str, Any]


class QueryNotFound(SpendgraphError):
    """No query has this id, nor starts with it (HTTP 404)."""


class AmbiguousQuery(SpendgraphError):
    """Several queries start with this prefix (HTTP 400)."""


class BadTarget(SpendgraphError):
    """No endpoint, pool or profile to re-price on has this name (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class AuditViews:
    """One callable per JSON endpoint; each reads the ledger and returns a JSON-ready dict.

    ``meta()``: the ledger's URL, the config, the pools and the default filters.
    ``summary(filters, by)``: ``audit summary --by BY --json``.
    ``summary_of(filters, by, groups, queries)``: the same JSON for groups already read
    (their distinct ``queries``), as the spend-over-time buckets need.
    ``queries(filters, sort, limit)``: ``audit queries --sort SORT --limit N --json``.
    ``show(query_id)``: ``audit show ID --json`` (a unique prefix works; raises
    :class:`QueryNotFound` or :class:`AmbiguousQuery`).
    ``reprice(filters, on, limit)``: ``audit reprice --on ON --json`` (raises :class:`BadTarget`).
    ``whatif(filters, limit)``: ``reprice`` on every pool of the config, side by side.
    """

    meta: Callable[[], Json]
    summary: Callable[[LedgerFilter, GroupBy], Json]
    summary_of: Callable[[LedgerFilter, GroupBy, list[GroupTotal], int], Json]
    queries: Callable[[LedgerFilter, QuerySort, int], Json]
    show: Callable[[str], Json]
    reprice: Callable[[LedgerFilter, str, int], Json]
    whatif: Callable[[LedgerFilter, int], Json]
