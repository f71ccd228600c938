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
from typing import Any

from openai.types.chat import ChatCompletionChunk
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from spendgraph.durable.codec import (
    record_from_json,
    request_digest,
    request_to_json,
    result_from_json,
)
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
from spendgraph.providers.ledger.records import CallRecord


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
            "stream": stream,
        }
        try:
            data = await self._handle.execute_update(MODEL_CALL_UPDATE, args=[key, call])
        except WorkflowUpdateFailedError as exc:
            _count(scope, failed_attempts(exc.cause))
            raise provider_error(exc.cause) from exc
        result = result_from_json(data)
        _count(scope, result.attempts)
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


def _count(scope: QueryScope | None, records: tuple[CallRecord, ...]) -> None:
    if scope is not None:
        for record in records:
            scope.add(record)


def failed_attempts(cause: BaseException | None) -> tuple[CallRecord, ...]:
    """The rows of a call that failed (budget refusals too), as its error carried them."""
    if not isinstance(cause, ApplicationError):
        return ()
    for detail in cause.details:
        if isinstance(detail, dict) and "attempts" in detail:
            return tuple(record_from_json(r) for r in detail["attempts"])
    return ()


def provider_error(cause: BaseException | None) -> errors.ProviderError:
    """The provider error a failed model-call activity stands for (by its type name):
    a budget refusal stays :class:`BudgetExceeded`, so the graph wraps up gracefully."""
    if not isinstance(cause, ApplicationError):
        return errors.ProviderError(f"model call failed in the workflow: {cause}")
    found = error_of(cause)
    return found if isinstance(found, errors.ProviderError) else errors.ProviderError(str(found))


# The error types that come back as themselves (their constructors take a message).
_KNOWN = (
    errors.BudgetExceeded,
    errors.NoEndpointAvailable,
    errors.ProviderError,
    errors.LedgerError,
    errors.SpendgraphError,
)


def error_type(exc: errors.SpendgraphError) -> str:
    """The name an error travels under: its nearest class of the error tree
    (:mod:`spendgraph.providers.errors`), which the other side can rebuild."""
    for kind in type(exc).__mro__:
        if getattr(errors, kind.__name__, None) is kind:
            return kind.__name__
    return errors.SpendgraphError.__name__


def error_of(cause: ApplicationError) -> errors.SpendgraphError:
    """The spendgraph error an activity's or workflow's failure stands for, by type name:
    the nearest of the known types (a 502 stays a 502 at the front door)."""
    kind = getattr(errors, cause.type or "", None)
    for known in _KNOWN:
        if isinstance(kind, type) and issubclass(kind, known):
            return known(cause.message)
    return errors.SpendgraphError(cause.message)
