"""One served query: run the app's graph for a request, as a whole answer or as SSE frames.

A streamed answer starts only once there is something to say (the first token
of the app's answering agent, or the end of the query), so a query its budget
refuses outright is still an HTTP error (402) and not a 200 with an empty stream.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from spendgraph.agents.events import TokenDelta
from spendgraph.graph.app import App
from spendgraph.graph.events import BudgetExhausted, RunFinished, RunStarted
from spendgraph.graph.run import RunOptions, RunResult, stream_graph
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import QueryStatus
from spendgraph.serve.metrics import ServeMetrics
from spendgraph.serve.protocol import (
    ChunkMaker,
    CompletionRequest,
    QueryReport,
    completion,
    error_body,
    finish_reason,
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the tenant and user an API key (or the request) names."""

    tenant: str = ""
    user: str = ""


# Runs one query somewhere else (on durable workers): (text, thread id, options) -> its
# events, as ``stream_graph`` yields them, ending with RunFinished.
QueryEngine = Callable[[str, str, RunOptions], AsyncIterator[Any]]


@dataclass(frozen=True, slots=True)
class ServedApp:
    """An app as the front door runs it: its graph compiled with the worker's checkpointer,
    or (``engine``) the queries run elsewhere, e.g. as Temporal workflows."""

    app: App
    graph: CompiledStateGraph | None = None
    engine: QueryEngine | None = None

    def events(self, layer: ProviderLayer, text: str, thread_id: str, options: RunOptions):
        """The run's events: on its engine, or the graph in this process."""
        if self.engine is not None:
            return self.engine(text, thread_id, options)
        assert self.graph is not None
        return stream_graph(self.graph, layer, text, thread_id=thread_id, options=options)


class QueryRefused(Exception):
    """The query's budget refused it before it produced anything (HTTP 402)."""

    def __init__(self, message: str, report: QueryReport):
        super().__init__(message)
        self.report = report


def thread_key(caller: Caller, thread_id: str) -> str:
    """The checkpoint thread of a client's thread id: one tenant can never open another's."""
    return f"{caller.tenant}:{thread_id}" if caller.tenant else thread_id


def client_thread(caller: Caller, key: str) -> str:
    prefix = f"{caller.tenant}:"
    return key[len(prefix) :] if caller.tenant and key.startswith(prefix) else key


def report_of(result: RunResult, caller: Caller) -> QueryReport:
    return QueryReport(
        query_id=result.query_id,
        thread_id=client_thread(caller, result.thread_id),
        status=result.status.value,
        spend=result.spend,
        agents=result.spend_by_agent(),
    )


class QueryRun:
    """Runs one request's query and records it in the front door's metrics."""

    def __init__(
        self,
        layer: ProviderLayer,
        served: ServedApp,
        request: CompletionRequest,
        caller: Caller,
        metrics: ServeMetrics,
    ):
        self.served = served
        self.request = request
        self.caller = caller
        self._layer = layer
        self._metrics = metrics
        self._refusal = ""
        self.query_id = ""  # known once the query is open
        self.thread_id = ""
        # Without a stream nobody reads the tokens as they come: plain calls are cheaper.
        self._options = served.app.run_options(
            user=caller.user or request.user or None,
            tenant=caller.tenant or None,
            stream_tokens=request.stream,
        )
        # A new conversation gets its id here, so it is namespaced like a continued one.
        self._thread = thread_key(caller, request.thread_id or uuid.uuid4().hex)

    async def _events(self) -> AsyncIterator[Any]:
        app = self.served.app.name
        with self._metrics.in_flight(app):
            events = self.served.events(self._layer, self.request.text, self._thread, self._options)
            async for event in events:
                if isinstance(event, RunStarted):
                    self.query_id = event.query_id
                    self.thread_id = client_thread(self.caller, event.thread_id)
                elif isinstance(event, BudgetExhausted) and not self._refusal:
                    self._refusal = event.message
                if isinstance(event, RunFinished):
                    self._metrics.observe(app, event.result)
                yield event

    def _finished(self, result: RunResult) -> QueryReport:
        report = report_of(result, self.caller)
        refused = result.status is QueryStatus.BUDGET_EXHAUSTED and not result.answer
        if refused:
            raise QueryRefused(self._refusal or result.stop_reason or "budget exhausted", report)
        return report

    async def answer(self) -> tuple[dict[str, Any], QueryReport]:
        """Run the query to its end: the ``chat.completion`` body and the report."""
        async for event in self._events():
            if isinstance(event, RunFinished):
                result = event.result
                report = self._finished(result)
                body = completion(
                    self.served.app.name, result.answer, finish_reason(result.status), report
                )
                return body, report
        raise RuntimeError("the run ended without RunFinished")  # stream_graph always ends so

    async def frames(self) -> AsyncIterator[bytes]:
        """The SSE frames of the streamed answer; the first comes when there is content."""
        answer_agent = self.served.app.answer_agent
        chunks: ChunkMaker | None = None
        sent: list[str] = []
        async for event in self._events():
            if isinstance(event, RunStarted):
                chunks = ChunkMaker(self.served.app.name, event.query_id, int(time.time()))
            elif isinstance(event, TokenDelta) and event.agent == answer_agent and event.text:
                assert chunks is not None
                yield _frame(chunks.delta(event.text, first=not sent))
                sent.append(event.text)
            elif isinstance(event, RunFinished):
                assert chunks is not None
                async for frame in self._closing_frames(chunks, event.result, "".join(sent)):
                    yield frame

    async def _closing_frames(
        self, chunks: ChunkMaker, result: RunResult, streamed: str
    ) -> AsyncIterator[bytes]:
        report = self._finished(result) if not streamed else report_of(result, self.caller)
        rest = _unsent(result.answer, streamed)
        if rest or not streamed:
            yield _frame(chunks.delta(rest, first=not streamed))
        extension = None if self.request.include_usage else report.extension()
        yield _frame(chunks.finish(finish_reason(result.status), extension))
        if self.request.include_usage:
            yield _frame(chunks.usage(report))
        yield b"data: [DONE]\n\n"


def _unsent(answer: str, streamed: str) -> str:
    """What of the final answer the client has not seen: all of it if nothing was
    streamed, the tail if the streamed text starts it, else nothing (a stream
    cannot be taken back; the extension's status tells what happened)."""
    if not streamed:
        return answer
    return answer[len(streamed) :] if answer.startswith(streamed) else ""


def error_frame(message: str, code: str) -> bytes:
    """An SSE ``error`` event: the ``openai`` client raises it as an APIError."""
    return _frame(error_body(message, code=code, kind="server_error"))


def _frame(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
