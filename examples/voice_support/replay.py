"""Replay a scripted call and read back, from the ledger, what the prefix cache did.

``benchmarks/voice_cache.py`` and the tests use this to compare prefix
affinity ON and OFF on one pool; you can use it the same way on your own
endpoints (build a provider layer on your config and call :func:`replay_call`).

Every figure comes from the ledger's rows: per turn, the responder's call
(the one the caller waits for) with its replica, prompt tokens, cached prompt
tokens and time to first token, plus the totals of all the turn's calls.

"Affinity OFF" is :class:`SpreadingLayer`: each request goes to a replica
picked at random, as a plain load balancer in front of the pool would do. The
router's own policies are no fair baseline here: with identical replicas
``cheapest`` always picks the first one (one call stays on one replica by
accident, and every call piles onto it), and ``fastest`` herds onto whichever
replica answered fastest last.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from langgraph.graph.state import CompiledStateGraph

from spendgraph.graph import RunOptions, run_graph
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import SpendgraphConfig, parse_config
from spendgraph.providers.gateway import ChatStream, ProviderLayer
from spendgraph.providers.ledger.records import CallRecord, CallStatus
from spendgraph.providers.spend import Spend

SCRIPT_FILE = "call_script.txt"
RESPONDER = "responder"


def caller_turns() -> tuple[str, ...]:
    """The scripted caller's 20 turns (``call_script.txt``, one per line)."""
    text = resources.files(__package__).joinpath(SCRIPT_FILE).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@dataclass(frozen=True, slots=True)
class Pool:
    """A pool of identical replicas serving both tiers: ``fast`` on ``small_model``,
    ``large`` on ``large_model``. Prices are USD per million (input, cached, output)."""

    name: str = "blackwell-nvfp4"
    replicas: tuple[str, ...] = tuple(f"b200-nvfp4-{i}" for i in range(4))
    hardware: str = "B200"
    precision: str = "nvfp4"
    large_price: tuple[str, str, str] = ("0.04", "0.01", "0.08")
    small_price: tuple[str, str, str] = ("0.01", "0.0025", "0.05")
    large_model: str = "sim-large"
    small_model: str = "sim-small"


def pool_config(
    base_url: str, pool: Pool = Pool(), *, prefix_affinity: bool = True
) -> SpendgraphConfig:
    """A config with only ``pool``: tiers ``fast`` (400 ms target) and ``large``.

    ``base_url`` is the simulator's (``http://HOST:PORT``). With ``prefix_affinity``
    each call's agents keep to one replica each (the key is the call's thread and
    the agent; see README.md).
    """
    blocks = []
    for replica in pool.replicas:
        for model, tier, price in (
            (pool.large_model, "large", pool.large_price),
            (pool.small_model, "fast", pool.small_price),
        ):
            suffix = "" if tier == "large" else "-small"
            blocks.append(
                f'[[endpoints]]\nname = "{replica}{suffix}"\n'
                f'base_url = "{base_url}/r/{replica}/v1"\nmodel = "{model}"\n'
                f'serves = ["{tier}"]\npool = "{pool.name}{suffix}"\n'
                f'hardware = "{pool.hardware}"\nprecision = "{pool.precision}"\nengine = "sim"\n'
                f"price = {{ input = {price[0]}, cached_input = {price[1]}, "
                f"output = {price[2]} }}\n"
            )
    affinity = f"prefix_affinity = {str(prefix_affinity).lower()}"
    tiers = (
        '[tiers.fast]\npolicy = "cheapest_within_slo"\nlatency_target_ms = 400\n'
        f'{affinity}\n\n[tiers.large]\npolicy = "cheapest"\n{affinity}\n'
    )
    return parse_config("\n".join([*blocks, tiers]), source=f"pool {pool.name}", env={})


class SpreadingLayer(ProviderLayer):
    """Prefix affinity OFF, the way a plain load balancer does it: every request
    goes to a replica picked at random, whatever conversation it belongs to.

    It gives each request a fresh affinity key; on a tier with prefix affinity
    the router's rendezvous hashing then spreads requests evenly (and
    deterministically: the keys are numbered) over the pool's replicas.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._numbers = itertools.count()

    def _spread(self, request: ChatRequest) -> ChatRequest:
        return dataclasses.replace(request, affinity_key=f"request-{next(self._numbers)}")

    async def chat(self, request: ChatRequest):
        return await super().chat(self._spread(request))

    def stream(self, request: ChatRequest) -> ChatStream:
        return super().stream(self._spread(request))


@dataclass(frozen=True, slots=True)
class TurnStats:
    """One turn of the call, from its ledger rows.

    ``replica``, ``draft_prompt``, ``draft_cached`` and ``ttft_ms`` describe the
    responder's call (what the caller waits for); ``spend`` covers every call
    of the turn.
    """

    turn: int
    replica: str
    draft_prompt: int
    draft_cached: int
    ttft_ms: float | None
    spend: Spend


def turn_stats(turn: int, rows: Sequence[CallRecord]) -> TurnStats:
    """A turn's figures from its query's ledger rows."""
    ok = [row for row in rows if row.status is CallStatus.OK]
    draft = next(row for row in ok if row.agent_path == RESPONDER)
    return TurnStats(
        turn=turn,
        replica=draft.endpoint.name,
        draft_prompt=draft.usage.input_uncached + draft.usage.input_cached,
        draft_cached=draft.usage.input_cached,
        ttft_ms=draft.ttft_ms,
        spend=Spend.of_calls(rows),
    )


async def replay_call(
    graph: CompiledStateGraph,
    layer: ProviderLayer,
    turns: Sequence[str],
    *,
    thread_id: str,
    options: RunOptions | None = None,
) -> list[TurnStats]:
    """Run ``turns`` as one call (one thread; ``graph`` needs a checkpointer), one query
    per turn, and read each turn's figures back from the ledger."""
    stats = []
    for number, text in enumerate(turns, start=1):
        result = await run_graph(graph, layer, text, thread_id=thread_id, options=options)
        await layer.ledger.aflush()
        rows = await asyncio.to_thread(layer.ledger.calls_for_query, result.query_id)
        stats.append(turn_stats(number, rows))
    return stats


def cache_fraction(stats: Sequence[TurnStats], *, responder_only: bool = True) -> float:
    """Sum of cached prompt tokens / sum of prompt tokens (the responder's, or all calls')."""
    if responder_only:
        cached, prompt = sum(s.draft_cached for s in stats), sum(s.draft_prompt for s in stats)
    else:
        spend = total_spend(stats)
        cached, prompt = spend.input_cached, spend.input_tokens
    return cached / prompt if prompt else 0.0


def total_spend(stats: Sequence[TurnStats]) -> Spend:
    """What the whole call spent (every call of every turn)."""
    return sum((s.spend for s in stats), Spend())
