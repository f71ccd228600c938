"""Records to row parameters and back: the one place that maps fields to columns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from spendgraph.providers.ledger.records import (
    BudgetEventRecord,
    CallRecord,
    CallStatus,
    EndpointInfo,
    QueryRecord,
    QueryStatus,
)
from spendgraph.providers.ledger.sqltypes import check_decimal, femto_of
from spendgraph.providers.usage import Usage, UsageSource


def storable_text(text: str | None) -> str | None:
    """``text`` with NUL characters as U+FFFD, on every backend.

    PostgreSQL text cannot hold NUL: a server (or a caller) putting one in an
    answer or an error would otherwise fail the call's row (a call left
    unaccounted) or the query's close (a query left running)."""
    if text is None or "\x00" not in text:
        return text
    return text.replace("\x00", "\ufffd")


def call_params(record: CallRecord) -> dict[str, Any]:
    """Column values of the ``call`` row for ``record``; raises on a bad cost."""
    endpoint, usage = record.endpoint, record.usage
    cost = None if record.cost_usd is None else check_decimal(record.cost_usd)
    return {
        "id": record.id,
        "query_id": record.query_id,
        "request_id": record.request_id,
        "attempt": record.attempt,
        "agent_path": record.agent_path,
        "node": record.node,
        "endpoint": endpoint.name,
        "model": endpoint.model,
        "hardware": endpoint.hardware,
        "precision": endpoint.precision,
        "engine": endpoint.engine,
        "stream": record.stream,
        "started_at": record.started_at,
        "ttft_ms": record.ttft_ms,
        "latency_ms": record.latency_ms,
        "input_uncached": usage.input_uncached,
        "input_cached": usage.input_cached,
        "output": usage.output,
        "reasoning": usage.reasoning,
        "usage_source": str(usage.source),
        "status": str(record.status),
        "error_kind": record.error_kind,
        "http_status": record.http_status,
        "price_version": record.price_version,
        "cost_usd": cost,
        "cost_femto": femto_of(cost),
        "folded": record.folded,
        # Text only when the record carries it (the query opted in).
        "prompt_text": storable_text(record.prompt_text),
        "completion_text": storable_text(record.completion_text),
        "overrun_usd": None if record.overrun_usd is None else check_decimal(record.overrun_usd),
        "overrun_tokens": record.overrun_tokens,
    }


def query_params(record: QueryRecord) -> dict[str, Any]:
    """Column values of a freshly opened ``query`` row for ``record``."""
    return {
        "id": record.id,
        "app": record.app,
        "thread_id": record.thread_id,
        "user": record.user,
        "tenant": record.tenant,
        "started_at": record.started_at,
        "finished_at": None,
        "status": str(QueryStatus.RUNNING),
        "budget_usd": None if record.budget_usd is None else check_decimal(record.budget_usd),
        "budget_tokens": record.budget_tokens,
        "store_text": record.store_text,
        # The preview is user text: kept only when the query opted in.
        "input_preview": storable_text(record.input_preview) if record.store_text else None,
        "error": None,
    }


def budget_event_params(record: BudgetEventRecord) -> dict[str, Any]:
    """Column values of the ``budget_event`` row for ``record``."""
    return {
        "id": record.id,
        "at": record.at,
        "scope": record.scope,
        "scope_id": record.scope_id,
        "period": record.period,
        "period_start": record.period_start,
        "threshold": check_decimal(record.threshold),
        "unit": record.unit,
        "spent": check_decimal(record.spent),
        "limit": check_decimal(record.limit),
        "query_id": record.query_id,
    }


def close_params(
    query_id: str, status: QueryStatus, error: str | None, finished_at: datetime
) -> dict[str, Any]:
    """Bind values for the ``close`` UPDATE (names prefixed: they may not clash with columns)."""
    return {
        "b_id": query_id,
        "b_status": str(status),
        "b_error": storable_text(error),  # may quote a server's words
        "b_finished_at": finished_at,
    }


def call_from_row(row: Mapping[str, Any]) -> CallRecord:
    """The :class:`CallRecord` a ``call`` row holds."""
    return CallRecord(
        id=row["id"],
        endpoint=EndpointInfo(
            name=row["endpoint"],
            model=row["model"],
            hardware=row["hardware"],
            precision=row["precision"],
            engine=row["engine"],
        ),
        status=CallStatus(row["status"]),
        usage=Usage(
            input_uncached=row["input_uncached"],
            input_cached=row["input_cached"],
            output=row["output"],
            reasoning=row["reasoning"],
            source=UsageSource(row["usage_source"]),
        ),
        cost_usd=row["cost_usd"],
        price_version=row["price_version"],
        query_id=row["query_id"],
        agent_path=row["agent_path"],
        node=row["node"],
        request_id=row["request_id"],
        attempt=row["attempt"],
        stream=bool(row["stream"]),
        started_at=row["started_at"],
        ttft_ms=row["ttft_ms"],
        latency_ms=row["latency_ms"],
        error_kind=row["error_kind"],
        http_status=row["http_status"],
        prompt_text=row["prompt_text"],
        completion_text=row["completion_text"],
        overrun_usd=row["overrun_usd"],
        overrun_tokens=row["overrun_tokens"],
        folded=row["folded"],
    )
