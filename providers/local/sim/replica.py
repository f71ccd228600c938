"""One simulated replica at run time: its queue, prefix cache and timing model."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from spendgraph.providers.local.sim.dialect_metrics import ReplicaTotals
from spendgraph.providers.local.sim.dialects import DIALECTS, Dialect
from spendgraph.providers.local.sim.fleet import Fleet, ReplicaSpec
from spendgraph.providers.local.sim.metrics import SimMetrics
from spendgraph.providers.local.sim.prefix_cache import PrefixCache, prompt_token_ids
from spendgraph.providers.local.sim.request import ChatRequest
from spendgraph.providers.tokens import chatml_prompt_text, count_chat, encoding


class FifoGate:
    """At most ``capacity`` holders at once; the rest wait, admitted first come, first served."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def acquire(self) -> None:
        """Wait for a free place."""
        if self.active < self.capacity and not self._waiters:
            self.active += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the place was handed to us just as we were cancelled
            elif waiter in self._waiters:  # release() may already have dropped it
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Free a place, handing it straight to the longest waiter if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.active -= 1


@dataclass(frozen=True)
class Prefill:
    """The prompt side of one request on one replica."""

    prompt_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class Timing:
    """Simulated seconds (before the server's time scale applies)."""

    ttft: float
    inter_token: float


class Replica:
    """Run-time state of one replica. Used from the server's event loop only."""

    def __init__(self, spec: ReplicaSpec, fleet: Fleet, metrics: SimMetrics):
        self.spec = spec
        self.fleet = fleet
        self.metrics = metrics
        self.cache = PrefixCache(spec.profile.cache_blocks, spec.profile.block_size)
        self.gate = FifoGate(spec.profile.max_seqs)
        self.dialect: Dialect = DIALECTS[spec.dialect]
        self.totals = ReplicaTotals()  # what its engine's own metrics count
        for model in spec.models:  # exported as zeros before the first request
            self.totals.of(model)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def load(self) -> int:
        """Requests running plus waiting: what least-loaded dispatch compares."""
        return self.gate.active + self.gate.waiting

    def serves(self, model: str) -> bool:
        return model in self.spec.models

    @asynccontextmanager
    async def slot(self, model: str) -> AsyncIterator[None]:
        """Hold one of the replica's sequence places (queueing first if all are taken)."""
        waiting = self.metrics.waiting.labels(self.name, model)
        waiting.inc()
        try:
            await self.gate.acquire()
        finally:
            waiting.dec()
        running = self.metrics.running.labels(self.name, model)
        running.inc()
        try:
            yield
        finally:
            running.dec()
            self.gate.release()

    def count_prompt(self, request: ChatRequest) -> int:
        """Prompt tokens: as the provider layer counts them, or (llama.cpp dialects)
        as the tokens of the prompt's ChatML rendering."""
        if self.dialect.chatml_prompt:
            return len(self._chatml_ids(request))
        tools = list(request.raw_tools) or None
        return count_chat(request.messages, self.spec.profile.encoding, tools=tools)

    def _chatml_ids(self, request: ChatRequest) -> list[int]:
        text = chatml_prompt_text(request.messages)
        return encoding(self.spec.profile.encoding).encode(text, disallowed_special=())

    def prefill(self, request: ChatRequest) -> Prefill:
        """Count the prompt, look it up in (and add it to) the prefix cache, record metrics."""
        prompt_tokens = self.count_prompt(request)
        if self.dialect.chatml_prompt:
            ids = self._chatml_ids(request)
        else:
            ids = prompt_token_ids(request.messages, self.spec.profile.encoding, request.raw_tools)
        cached = min(self.cache.lookup_and_insert(ids), prompt_tokens)
        totals = self.totals.of(request.model)
        totals.requests += 1
        totals.prompt += prompt_tokens
        totals.cached += cached
        labels = (self.name, request.model)
        self.metrics.prompt_tokens.labels(*labels).inc(prompt_tokens)
        self.metrics.cache_queries.labels(*labels).inc(prompt_tokens)
        self.metrics.cache_hits.labels(*labels).inc(cached)
        return Prefill(prompt_tokens, cached)

    def timing(self, model: str, prefill: Prefill) -> Timing:
        """TTFT = base + uncached prompt / prefill rate; then the inter-token latency.

        The model's ``time_factor`` scales prefill and decode (a small model is
        faster on the same hardware); the base is engine overhead and is not scaled.
        """
        profile = self.spec.profile
        factor = self.fleet.models[model].time_factor
        uncached = prefill.prompt_tokens - prefill.cached_tokens
        prefill_s = uncached / profile.prefill_tokens_per_s * factor
        return Timing(
            ttft=profile.ttft_base_ms / 1000 + prefill_s,
            inter_token=profile.inter_token_ms / 1000 * factor,
        )

    def max_model_len(self, model: str) -> int:
        return self.fleet.models[model].max_model_len
