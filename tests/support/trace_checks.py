"""Checks that a query's exported span tree matches its ledger rows (shared by telemetry tests)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from otlp_receiver import Span

from spendgraph.providers.ledger.records import CallRecord
from spendgraph.providers.telemetry import names as n

CLIENT = 3  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_CLIENT
INTERNAL = 1


def query_spans(spans: list[Span], query_id: str) -> list[Span]:
    """Every span of the trace whose workflow span is ``query_id``'s."""
    (root,) = [
        s
        for s in spans
        if s.attributes.get(n.OPERATION_NAME) == n.OP_INVOKE_WORKFLOW
        and s.attributes.get(n.QUERY_ID) == query_id
    ]
    return [s for s in spans if s.trace_id == root.trace_id]


def check_query_trace(
    spans: list[Span], rows: list[CallRecord], *, app: str, turns: bool = True
) -> dict[str, Span]:
    """Assert the tree is the ledger's: one root workflow span, one CLIENT ``chat`` span per
    Call row (same id, tokens, cost), each under its agent turn's span (``turns``: the
    calls were made by agent turns, not bare ``agent_scope`` blocks); returns spans by id."""
    by_id = {s.span_id: s for s in spans}
    (root,) = [s for s in spans if not s.parent_id]
    assert root.name == f"invoke_workflow {app}" and root.kind == INTERNAL
    assert root.attributes[n.APP] == app
    assert all(s.parent_id in by_id for s in spans if s is not root)  # one connected tree

    chats = [s for s in spans if s.attributes.get(n.OPERATION_NAME) == n.OP_CHAT]
    assert len(chats) == len(rows)
    assert all(s.kind == CLIENT for s in chats)
    chat_of = {s.attributes[n.CALL_ID]: s for s in chats}
    assert set(chat_of) == {row.id for row in rows}
    for row in rows:
        span, usage = chat_of[row.id], row.usage
        attributes = span.attributes
        assert span.name == f"chat {row.endpoint.model}"
        assert attributes[n.INPUT_TOKENS] == usage.input_uncached + usage.input_cached
        assert attributes[n.CACHE_READ_INPUT_TOKENS] == usage.input_cached
        assert attributes[n.OUTPUT_TOKENS] == usage.output
        assert attributes[n.REASONING_OUTPUT_TOKENS] == usage.reasoning
        assert attributes[n.USAGE_SOURCE] == usage.source.value
        assert attributes[n.ENDPOINT] == row.endpoint.name
        assert attributes[n.HARDWARE] == row.endpoint.hardware
        assert attributes[n.PRECISION] == row.endpoint.precision
        assert attributes[n.PRICE_VERSION] == row.price_version
        assert attributes[n.AGENT_PATH] == row.agent_path
        assert attributes[n.QUERY_ID] == row.query_id
        assert attributes[n.REQUEST_MODEL] == row.endpoint.model
        assert attributes[n.PROVIDER_NAME] == row.endpoint.engine
        if row.cost_usd is None:
            assert n.COST_USD not in attributes
        else:
            assert Decimal(attributes[n.COST_USD]) == row.cost_usd
            assert attributes[n.COST_USD_DOUBLE] == float(row.cost_usd)
        parent = by_id[span.parent_id]
        if turns and row.agent_path:  # an agent's call hangs under that agent's turn
            assert parent.attributes[n.OPERATION_NAME] == n.OP_INVOKE_AGENT
            assert parent.attributes[n.AGENT_PATH] == row.agent_path
            assert parent.name == f"invoke_agent {row.agent_path.rsplit('/', 1)[-1]}"

    # Retries and fallbacks of one logical call are siblings.
    parents = {}
    for span in chats:
        parents.setdefault(span.attributes[n.REQUEST_ID], set()).add(span.parent_id)
    assert all(len(found) == 1 for found in parents.values())

    # The workflow span's totals are the ledger's sums.
    totals = root.attributes
    assert totals[n.QUERY_CALLS] == len(rows)
    assert totals[n.QUERY_INPUT_TOKENS] == sum(r.usage.prompt_tokens for r in rows)
    assert totals[n.QUERY_CACHED_INPUT_TOKENS] == sum(r.usage.input_cached for r in rows)
    assert totals[n.QUERY_OUTPUT_TOKENS] == sum(r.usage.output for r in rows)
    known = sum((r.cost_usd for r in rows if r.cost_usd is not None), Decimal(0))
    assert Decimal(totals[n.QUERY_COST_USD]) == known
    return by_id


def check_tools(spans: list[Span], tool_names: list[str]) -> None:
    """One ``execute_tool`` span per tool call that ran, each under an agent's turn."""
    by_id = {s.span_id: s for s in spans}
    tools = [s for s in spans if s.attributes.get(n.OPERATION_NAME) == n.OP_EXECUTE_TOOL]
    assert Counter(s.attributes[n.TOOL_NAME] for s in tools) == Counter(tool_names)
    for span in tools:
        assert span.name == f"execute_tool {span.attributes[n.TOOL_NAME]}"
        assert by_id[span.parent_id].attributes[n.OPERATION_NAME] == n.OP_INVOKE_AGENT


def text_attributes(spans: list[Span]) -> set[str]:
    """The text-bearing attribute names found on any span."""
    return {key for s in spans for key in s.attributes if key in n.TEXT_ATTRIBUTES}
