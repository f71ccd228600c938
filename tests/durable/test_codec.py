"""What crosses Temporal comes back exactly: money as decimals, times, enums, the response."""

from __future__ import annotations

import json
from decimal import Decimal

from openai.types.chat import ChatCompletion

from spendgraph.durable.codec import (
    record_from_json,
    record_to_json,
    request_digest,
    request_from_json,
    request_to_json,
    result_from_json,
    result_to_json,
)
from spendgraph.providers.chat import ChatRequest, ChatResult
from spendgraph.providers.ledger.records import CallRecord, CallStatus, EndpointInfo
from spendgraph.providers.usage import Usage, UsageSource

RECORD = CallRecord(
    endpoint=EndpointInfo("b200-0", "sim-large", "B200", "nvfp4", "sim"),
    status=CallStatus.CUT_AT_BUDGET,
    usage=Usage(input_uncached=120, input_cached=40, output=7, source=UsageSource.ESTIMATED),
    cost_usd=Decimal("0.0000123456789"),
    price_version="v3",
    query_id="q1",
    agent_path="planner/skeptic",
    node="skeptic",
    ttft_ms=12.5,
    overrun_usd=Decimal("1E-9"),
)
RESPONSE = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "sim-large",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "hi"},
        }
    ],
}


def test_a_record_and_a_result_come_back_equal_through_json():
    data = json.loads(json.dumps(record_to_json(RECORD)))  # what a payload carries
    assert record_from_json(data) == RECORD
    result = ChatResult(ChatCompletion.model_validate(RESPONSE), (RECORD,))
    back = result_from_json(json.loads(json.dumps(result_to_json(result))))
    assert back.attempts == (RECORD,) and back.content == "hi" and back.finish_reason == "stop"


def test_a_request_round_trips_and_its_digest_ignores_where_it_is_recorded():
    request = ChatRequest(
        [{"role": "user", "content": "x"}],
        model="large",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        max_tokens=5,
    )
    assert request_from_json(json.loads(json.dumps(request_to_json(request)))) == request
    recorded = ChatRequest(request.messages, model="large", tools=request.tools, max_tokens=5,
                           request_id="r1")  # fmt: skip
    assert request_digest(recorded) == request_digest(request)
    assert request_digest(ChatRequest(request.messages, model="large")) != request_digest(request)
