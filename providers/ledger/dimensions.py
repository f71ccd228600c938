"""What audits group calls by, as SQL: one place for the scan and the rollup to agree on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, ColumnElement, String, literal_column

from spendgraph.providers.ledger.sqltypes import utc_day
from spendgraph.providers.ledger.tables import CALL, QUERY
from spendgraph.providers.ledger.views import GroupBy

# Calls with the query they belong to (NULL columns for calls outside any query).
CALLS_WITH_QUERY = CALL.outerjoin(QUERY, CALL.c.query_id == QUERY.c.id)

GROUP_KEYS: dict[GroupBy, ColumnElement[Any]] = {
    GroupBy.AGENT: CALL.c.agent_path,
    GroupBy.ENDPOINT: CALL.c.endpoint,
    GroupBy.MODEL: CALL.c.model,
    GroupBy.HARDWARE: CALL.c.hardware,
    GroupBy.APP: QUERY.c.app,
    GroupBy.USER: QUERY.c.user,
    GroupBy.TENANT: QUERY.c.tenant,
    GroupBy.DAY: utc_day(CALL.c.started_at),
}

# The rollup's name for "all calls, one group" (a summary's total, its query count).
TOTAL = "*"


def dimension_key(dimension: GroupBy | str) -> ColumnElement[Any]:
    """The SQL value a call is grouped by for ``dimension`` (:data:`TOTAL`: one group)."""
    if dimension == TOTAL:
        return literal_column("''", String())
    return GROUP_KEYS[GroupBy(dimension)]


def of_query(key: ColumnElement[Any]) -> bool:
    """True when ``key`` is a column of the query a call belongs to (``query`` is joined)."""
    return isinstance(key, Column) and key.table is QUERY


def is_constant(key: ColumnElement[Any]) -> bool:
    """True for :data:`TOTAL`'s key: nothing to GROUP BY (PostgreSQL refuses a constant)."""
    return not isinstance(key, Column) and not key.get_children()
