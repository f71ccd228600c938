"""The provider layer a graph sees while it runs on a worker: each call is the workflow's.

:class:`WorkflowLayer` stands in for :class:`~spendgraph.providers.gateway.ProviderLayer`
in ``run_graph`` (the graph and agent code are unchanged). ``query()`` opens no
ledger row (the workflow did); ``chat``/``stream`` send the request to the
workflow's ``model_call`` update under a deterministic key -- the request's
digest and how many identical requests this run made before -- so a re-run of
the graph after a crash asks for the same keys and gets the finished calls'
outcomes back without running them again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from openai.types.chat import ChatCompletionChunk
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from spendgraph.durable.codec import request_digest, request_to_json, result_from_json
from spendgraph.durable.names import MODEL_CALL_UPDATE
from spendgraph.durable.spec import QuerySpec
from spendgraph.providers import errors
from spendgraph.providers.chat import ChatRequest, ChatResult
from spendgraph.providers.context import (
    QueryScope,
    current_agent_path,
    current_node,
    current_query,
    query_context,
)
from spendgraph.providers.gateway import ProviderLayer


class WorkflowLayer:
    """Model calls through the query's workflow; everything else from the worker's layer."""

    def __init__(self, inner: ProviderLayer, handle: WorkflowHandle, spec: QuerySpec):
        self.inner = inner
        self.config = inner.config
        self.ledger = inner.ledger
        self._handle = handle
        self._spec = spec
        self._seen: Counter[str] = Counter()

    @asynccontextmanager
    async def query(self, **_labels: Any) -> AsyncIterator[QueryScope]:
        """The workflow's query as the current scope (its row is opened and closed there)."""
        spec = self._spec
        scope = QueryScope(
            spec.query_id,
            budget=None,  # held by each model call's activity
            store_text=bool(spec.store_text),
            app=spec.app,
            thread_id=spec.thread_id,
            user=spec.user,
            tenant=spec.tenant,
        )
        with query_context(scope):
            yield scope

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Run ``request`` once for this query (or get the outcome it already had)."""
        return await self.call(request, stream=False)

    async def call(self, request: ChatRequest, *, stream: bool) -> ChatResult:
        """The call through the workflow; ``stream``: its worker publishes the deltas."""
        digest = request_digest(request)
        key = f"{digest}#{self._seen[digest]}"
        self._seen[digest] += 1
        scope = current_query()
        call = {
            "key": key,
            "spec": self._spec.to_json(),
            "request": request_to_json(request),
            "agent_path": current_agent_path(),
            "node": current_node(),
            "remaining": _remaining(self._spec, scope),
            "stream": stream,
        }
        try:
            data = await self._handle.execute_update(MODEL_CALL_UPDATE, args=[key, call])
        except WorkflowUpdateFailedError as exc:
            raise provider_error(exc.cause) from exc
        result = result_from_json(data)
        if scope is not None:
            for record in result.attempts:
                scope.add(record)
        return result

    def stream(self, request: ChatRequest) -> _WholeAnswer:
        """The call, streamed by the worker that makes it to the query's Redis channel
        (see :mod:`spendgraph.durable.stream`); here its answer arrives as one chunk."""
        return _WholeAnswer(self, request)


class _WholeAnswer:
    """``async with layer.stream(r) as chunks: async for chunk in chunks`` over a finished call."""

    def __init__(self, layer: WorkflowLayer, request: ChatRequest):
        self._layer = layer
        self._request = request
        self.result: ChatResult | None = None

    async def __aenter__(self) -> _WholeAnswer:
        self.result = await self._layer.call(self._request, stream=True)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        assert self.result is not None
        response = self.result.response
        yield ChatCompletionChunk.model_validate(
            {
                "id": response.id,
                "object": "chat.completion.chunk",
                "created": response.created or int(time.time()),
                "model": response.model,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": self.result.content},
                        "finish_reason": self.result.finish_reason,
                    }
                ],
            }
        )


def _remaining(spec: QuerySpec, scope: QueryScope | None) -> dict[str, Any]:
    """What is left of the query's own budget before this call (the activity holds it)."""
    spend = scope.spend if scope is not None else None
    usd = spec.budget
    if usd is not None and spend is not None:
        usd = max(Decimal(0), usd - spend.known_cost)
    tokens = spec.budget_tokens
    if tokens is not None and spend is not None:
        used = spend.input_uncached + spend.input_cached + spend.output
        tokens = max(0, tokens - used)
    return {"usd": None if usd is None else str(usd), "tokens": tokens}


def provider_error(cause: BaseException | None) -> errors.ProviderError:
    """The provider error a failed model-call activity stands for (by its type name):
    a budget refusal stays :class:`BudgetExceeded`, so the graph wraps up gracefully."""
    if not isinstance(cause, ApplicationError):
        return errors.ProviderError(f"model call failed in the workflow: {cause}")
    kind = getattr(errors, cause.type or "", None)
    for known in (errors.BudgetExceeded, errors.NoEndpointAvailable):
        if isinstance(kind, type) and issubclass(kind, known):
            return known(cause.message)
    return errors.ProviderError(cause.message)
