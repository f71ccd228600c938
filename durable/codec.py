"""What crosses Temporal: requests, results and ledger records as plain JSON values.

Temporal's payloads are JSON; the provider layer's types hold Decimals,
datetimes, enums and an ``openai`` response model. These functions turn them
into dicts and back, exactly (money stays a decimal string, never a float).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from openai.types.chat import ChatCompletion

from spendgraph.providers.chat import ChatRequest, ChatResult
from spendgraph.providers.ledger.records import CallRecord, CallStatus, EndpointInfo
from spendgraph.providers.usage import Usage, UsageSource


def request_to_json(request: ChatRequest) -> dict[str, Any]:
    """A request as JSON values (every field; its sequences become lists)."""
    return {
        "messages": [dict(m) for m in request.messages],
        "model": request.model,
        "tools": [dict(t) for t in request.tools] if request.tools else None,
        "tool_choice": request.tool_choice,
        "response_format": request.response_format,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "latency_target_ms": request.latency_target_ms,
        "affinity_key": request.affinity_key,
        "extra_headers": dict(request.extra_headers),
        "endpoint": request.endpoint,
        "request_id": request.request_id,
    }


def request_from_json(data: dict[str, Any]) -> ChatRequest:
    return ChatRequest(**data)


def request_digest(request: ChatRequest) -> str:
    """A stable hash of everything that makes the call what it is (the memo's key; the
    ledger's request id is where it was recorded, not what it asks)."""
    fields = {k: v for k, v in request_to_json(request).items() if k != "request_id"}
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def record_to_json(record: CallRecord) -> dict[str, Any]:
    """A ledger record as JSON values: Decimals as strings, datetimes as ISO 8601."""
    data = dataclasses.asdict(record)
    for key in ("cost_usd", "overrun_usd"):
        data[key] = None if data[key] is None else str(data[key])
    data["started_at"] = record.started_at.isoformat()
    data["status"] = record.status.value
    data["usage"]["source"] = record.usage.source.value
    return data


def record_from_json(data: dict[str, Any]) -> CallRecord:
    values = dict(data)
    values["endpoint"] = EndpointInfo(**values["endpoint"])
    usage = dict(values["usage"])
    usage["source"] = UsageSource(usage["source"])
    values["usage"] = Usage(**usage)
    values["status"] = CallStatus(values["status"])
    for key in ("cost_usd", "overrun_usd"):
        values[key] = None if values[key] is None else Decimal(values[key])
    values["started_at"] = datetime.fromisoformat(values["started_at"])
    return CallRecord(**values)


def result_to_json(result: ChatResult, extra: tuple[CallRecord, ...] = ()) -> dict[str, Any]:
    """A finished call: its response, and its attempts' records (``extra`` ones first)."""
    return {
        "response": result.response.model_dump(mode="json"),
        "attempts": [record_to_json(r) for r in (*extra, *result.attempts)],
    }


def result_from_json(data: dict[str, Any]) -> ChatResult:
    response = ChatCompletion.model_validate(data["response"])
    return ChatResult(response, tuple(record_from_json(r) for r in data["attempts"]))
