"""Every span, metric and attribute name spendgraph emits, in one place.

The OpenTelemetry GenAI semantic conventions are in Development status: names
move between releases (``gen_ai.system`` became ``gen_ai.provider.name``, the
workflow span may fold into ``invoke_agent``). Following a rename is an edit
here. What the conventions lack lives under ``spendgraph.*``.

Checked against opentelemetry-semantic-conventions 0.66b2 (GenAI attributes and
metrics under ``opentelemetry.semconv._incubating``).
"""

from __future__ import annotations

from typing import Final

# The instrumentation scope (tracer and meter name).
SCOPE: Final = "spendgraph"

# -- operations (gen_ai.operation.name) and span names ------------------------
OP_CHAT: Final = "chat"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"


def span_name(operation: str, subject: str) -> str:
    """``{gen_ai.operation.name} {subject}`` (the model, agent, tool or app), as the
    conventions name spans; the bare operation when the subject is empty."""
    return f"{operation} {subject}" if subject else operation


# -- GenAI convention attributes -------------------------------------------------
OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_STREAM: Final = "gen_ai.request.stream"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"  # inclusive of cached tokens
CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"  # inclusive of reasoning tokens
REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
AGENT_NAME: Final = "gen_ai.agent.name"
WORKFLOW_NAME: Final = "gen_ai.workflow.name"
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_TYPE: Final = "gen_ai.tool.type"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"  # opt-in text only
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"  # opt-in text only
INPUT_MESSAGES: Final = "gen_ai.input.messages"  # opt-in text only
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"  # opt-in text only
TOKEN_TYPE: Final = "gen_ai.token.type"
TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"
ERROR_TYPE: Final = "error.type"
TOOL_TYPE_FUNCTION: Final = "function"
# Used as gen_ai.provider.name when an endpoint names no engine.
PROVIDER_UNKNOWN: Final = "openai_compatible"

# Every gen_ai.* name a span may carry that could hold prompt or completion text.
TEXT_ATTRIBUTES: Final = frozenset(
    {INPUT_MESSAGES, OUTPUT_MESSAGES, TOOL_CALL_ARGUMENTS, TOOL_CALL_RESULT}
)

# -- spendgraph attributes (what the conventions lack) ---------------------------
QUERY_ID: Final = "spendgraph.query.id"
APP: Final = "spendgraph.app"
AGENT_PATH: Final = "spendgraph.agent.path"
NODE: Final = "spendgraph.node"
TIER: Final = "spendgraph.tier"  # the model or tier the caller asked for
REQUEST_ID: Final = "spendgraph.request.id"  # groups the attempts of one logical call
ATTEMPT: Final = "spendgraph.attempt"
CALL_ID: Final = "spendgraph.call.id"  # the ledger Call row's id
CALL_STATUS: Final = "spendgraph.call.status"
ENDPOINT: Final = "spendgraph.endpoint"
HARDWARE: Final = "spendgraph.hardware"
PRECISION: Final = "spendgraph.precision"
ENGINE: Final = "spendgraph.engine"
USAGE_SOURCE: Final = "spendgraph.usage.source"
INPUT_UNCACHED_TOKENS: Final = "spendgraph.usage.input_uncached_tokens"
COST_USD: Final = "spendgraph.cost.usd"  # exact Decimal, as a string
COST_USD_DOUBLE: Final = "spendgraph.cost.usd_double"
PRICE_VERSION: Final = "spendgraph.price.version"
HTTP_STATUS: Final = "http.response.status_code"
QUERY_STATUS: Final = "spendgraph.query.status"
# The query's totals on its workflow span (not gen_ai.usage.*: a backend summing
# usage over a trace would count every token twice).
QUERY_CALLS: Final = "spendgraph.query.calls"
QUERY_INPUT_TOKENS: Final = "spendgraph.query.input_tokens"
QUERY_CACHED_INPUT_TOKENS: Final = "spendgraph.query.cache_read.input_tokens"
QUERY_OUTPUT_TOKENS: Final = "spendgraph.query.output_tokens"
QUERY_COST_USD: Final = "spendgraph.query.cost.usd"
QUERY_UNPRICED_CALLS: Final = "spendgraph.query.unpriced_calls"

# -- metrics -----------------------------------------------------------------------
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_COST: Final = "spendgraph.client.cost"

# The conventions' recommended histogram buckets.
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip

# Metric attributes are these only: each has few values (no query, thread, call or
# request ids), so a backend's series count stays bounded.
METRIC_ATTRIBUTES: Final = frozenset(
    {
        OPERATION_NAME,
        PROVIDER_NAME,
        REQUEST_MODEL,
        TOKEN_TYPE,
        ERROR_TYPE,
        APP,
        AGENT_PATH,
        ENDPOINT,
        HARDWARE,
        PRECISION,
    }
)
