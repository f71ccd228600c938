"""Serving one chat completion: faults, queueing, prefill, paced output.

:class:`SimulatedResponse` is a raw ASGI response rather than a Starlette
``StreamingResponse`` because a cut fault must end the HTTP exchange *without*
completing it (no final chunk, no ``[DONE]``, connection closed), which the
ready-made responses cannot express.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.types import Message, Receive, Scope, Send

from spendgraph.providers.local.sim import payloads
from spendgraph.providers.local.sim.apierror import ApiError
from spendgraph.providers.local.sim.completion import Completion, complete
from spendgraph.providers.local.sim.dialects import Counts, Dialect, timings_payload, usage_payload
from spendgraph.providers.local.sim.faults import Fault
from spendgraph.providers.local.sim.fleet import StreamUsage
from spendgraph.providers.local.sim.replica import Prefill, Replica, Timing
from spendgraph.providers.local.sim.request import ChatRequest
from spendgraph.providers.local.sim.state import SimState

REPLICA_HEADER = "x-sim-replica"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A validated request bound to its replica, fault and usage mode."""

    state: SimState
    replica: Replica
    request: ChatRequest
    fault: Fault
    stream_usage: StreamUsage


@dataclass(frozen=True)
class _Output:
    """A generated answer on its way out."""

    ids: payloads.ResponseIds
    prefill: Prefill
    timing: Timing
    completion: Completion
    started: float  # event-loop time the replica started on it
    dialect: Dialect
    reasoning: int = 0  # hidden reasoning tokens before the visible answer

    @property
    def total_tokens(self) -> int:
        """Completion tokens in all: the visible answer and the reasoning before it."""
        return self.completion.completion_tokens + self.reasoning

    def counts(self, completion_tokens: int | None = None) -> Counts:
        tokens = self.total_tokens if completion_tokens is None else completion_tokens
        prefill = self.prefill
        return Counts(prefill.prompt_tokens, prefill.cached_tokens, tokens, self.reasoning)

    def usage(self, completion_tokens: int | None = None) -> dict[str, Any]:
        """The final usage object (a per-chunk one with ``completion_tokens`` so far)."""
        counts = self.counts(completion_tokens)
        if self.dialect.name == "vllm":  # the simulator's original shape, details included
            body = payloads.usage(counts.prompt, counts.cached, counts.completion)
            body["completion_tokens_details"]["reasoning_tokens"] = counts.reasoning
            return body
        return usage_payload(self.dialect, counts, final=True)


class SimulatedResponse:
    """The ASGI response of one chat completion (stream or not)."""

    def __init__(self, job: Job):
        self.job = job
        self.headers = {REPLICA_HEADER: job.replica.name}
        self._sent_tokens = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        # Stop working on a request as soon as its client goes away.
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
            try:
                await self._respond(scope, receive, tracked_send)
            except OSError:
                pass  # the client vanished mid-write; nothing left to tell it
            except Exception:  # a simulator bug: never a traceback to the client
                log.exception("simulated response failed")
                if not started:
                    error = ApiError(500, "The simulator failed to process the request.")
                    await error.response(self.headers)(scope, receive, send)
            finally:
                group.cancel_scope.cancel()

    # -- steps

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        job, fault = self.job, self.job.fault
        metrics = job.state.metrics
        if fault.delay > 0:
            metrics.faults.labels(job.replica.name, "delay").inc()
            await asyncio.sleep(fault.delay)  # real seconds: meant to trip client timeouts
        if fault.status is not None:
            metrics.faults.labels(job.replica.name, str(fault.status)).inc()
            await _fault_error(fault).response(self.headers)(scope, receive, send)
            return
        model = job.request.model
        loop = asyncio.get_running_loop()
        queued_at = loop.time()
        async with job.replica.slot(model):
            output = self._generate(loop.time(), loop.time() - queued_at)
            try:
                if job.request.stream:
                    await self._stream(send, output)
                else:
                    await self._whole(send, output)
            finally:
                # What a cut or abandoned response still cost the replica.
                metrics.generation_tokens.labels(job.replica.name, model).inc(self._sent_tokens)
                job.replica.totals.of(model).generation += self._sent_tokens

    def _generate(self, started: float, queued_s: float) -> _Output:
        job = self.job
        replica, request = job.replica, job.request
        prefill = replica.prefill(request)
        timing = replica.timing(request.model, prefill)
        room = replica.max_model_len(request.model) - prefill.prompt_tokens
        limit = room if request.max_tokens is None else min(request.max_tokens, room)
        # Reasoning comes first and counts against max_tokens; one visible token is left.
        reasoning = min(job.state.fleet.models[request.model].reasoning_tokens, max(limit - 1, 0))
        profile = replica.spec.profile
        completion = complete(request, profile.encoding, job.state.options.seed, limit - reasoning)
        scale = job.state.options.time_scale
        simulated_queue = queued_s / scale if scale > 0 else 0.0
        job.state.metrics.ttft.labels(replica.name, request.model).observe(
            simulated_queue + timing.ttft
        )
        fingerprint = f"fp_sim_{profile.name.lower()}"
        ids = payloads.ResponseIds.new(request.model, fingerprint)
        return _Output(ids, prefill, timing, completion, started, replica.dialect, reasoning)

    async def _until(self, output: _Output, simulated_s: float) -> None:
        """Sleep until ``simulated_s`` after the replica started (scaled); always yield."""
        scale = self.job.state.options.time_scale
        delay = output.started + simulated_s * scale - asyncio.get_running_loop().time()
        await asyncio.sleep(max(delay, 0.0) if scale > 0 else 0)

    def _finished(self, output: _Output) -> None:
        self._sent_tokens = output.total_tokens
        labels = (self.job.replica.name, self.job.request.model)
        self.job.state.metrics.success.labels(*labels, output.completion.finish_reason).inc()

    async def _whole(self, send: Send, output: _Output) -> None:
        completion = output.completion
        await self._until(
            output, output.timing.ttft + completion.completion_tokens * output.timing.inter_token
        )
        payload = payloads.completion_body(output.ids, completion, output.usage())
        if output.dialect.timings:
            payload["timings"] = timings_payload(output.counts())
        body = json.dumps(payload).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.encode(), v.encode()) for k, v in self.headers.items()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if self.job.fault.cut_after is not None:
            # Half a body, then return without finishing: the server closes the connection.
            self.job.state.metrics.faults.labels(self.job.replica.name, "cut").inc()
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            self._sent_tokens = output.total_tokens
            return
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self._finished(output)

    def _usage_field(self, output: _Output, tokens_so_far: int) -> Any:
        mode, dialect = self.job.stream_usage, output.dialect
        options = self.job.request.stream_options
        if mode == "cumulative":
            return output.usage(tokens_so_far)
        if mode != "final":
            return payloads.OMIT
        if dialect.wants_continuous(options):
            return usage_payload(dialect, output.counts(tokens_so_far), final=False)
        if dialect.name in ("vllm", "openai") and self.job.request.include_usage:
            return None  # OpenAI sends "usage": null on every chunk but the last
        return payloads.OMIT

    def _wants_final_usage(self, dialect: Dialect) -> bool:
        mode, request = self.job.stream_usage, self.job.request
        if mode == "final":
            return dialect.wants_usage(request.stream_options)
        return request.include_usage and mode != "never"

    async def _stream(self, send: Send, output: _Output) -> None:
        completion, ids, timing = output.completion, output.ids, output.timing
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            *((k.encode(), v.encode()) for k, v in self.headers.items()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def emit(payload: Any) -> None:
            await send(
                {"type": "http.response.body", "body": payloads.sse(payload), "more_body": True}
            )

        await self._until(output, timing.ttft)
        generated = completion.header_tokens + output.reasoning
        first = payloads.first_delta(completion)
        await emit(payloads.chunk(ids, first, usage_=self._usage_field(output, generated)))
        self._sent_tokens = generated
        cut_after = self.job.fault.cut_after
        for index, piece in enumerate(completion.pieces):
            if cut_after is not None and index >= cut_after:
                break
            await self._until(output, timing.ttft + generated * timing.inter_token)
            generated += piece.tokens
            delta = payloads.piece_delta(completion, piece)
            await emit(payloads.chunk(ids, delta, usage_=self._usage_field(output, generated)))
            self._sent_tokens = generated
        if cut_after is not None:
            self.job.state.metrics.faults.labels(self.job.replica.name, "cut").inc()
            return  # no finish chunk, no usage, no [DONE]: the connection just closes
        await self._finish_stream(emit, send, output)

    async def _finish_stream(self, emit: Any, send: Send, output: _Output) -> None:
        completion, dialect = output.completion, output.dialect
        usage_field = self._usage_field(output, output.total_tokens)
        last = [payloads.chunk(output.ids, {}, completion.finish_reason, usage_=usage_field)]
        if self._wants_final_usage(dialect):
            last.append(payloads.chunk(output.ids, None, usage_=output.usage()))
        if dialect.timings:  # llama-server: on the last chunk, asked or not
            last[-1]["timings"] = timings_payload(output.counts())
        for chunk in last:
            await emit(chunk)
        await send({"type": "http.response.body", "body": payloads.SSE_DONE, "more_body": False})
        self._finished(output)


def _fault_error(fault: Fault) -> ApiError:
    status = fault.status or 500
    if status == 429:
        retry_after = fault.retry_after if fault.retry_after is not None else 1.0
        return ApiError(
            429,
            "Rate limit reached (simulated fault). Please retry after the Retry-After interval.",
            code="rate_limit_exceeded",
            headers={"retry-after": f"{retry_after:g}"},
        )
    messages = {
        500: "The server had an error while processing your request (simulated fault).",
        503: "The server is overloaded or not ready yet (simulated fault).",
    }
    return ApiError(status, messages.get(status, f"Simulated fault: HTTP {status}."))


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
