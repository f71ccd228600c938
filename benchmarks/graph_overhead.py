"""Graph and agent overhead: spendgraph's builders vs a hand-written LangGraph graph, same calls.

Starts the fleet simulator (one replica, time scale 0 by default: the server
answers at once, so the client side is all there is) and runs the same model
calls per query three ways, each query opening one ledger Query through the
provider layer and writing a row per call:

(a) ``direct``: the calls made by hand through the provider layer, no graph;
(b) ``langgraph``: a hand-written LangGraph ``StateGraph`` whose nodes call the
    provider layer directly;
(c) ``spendgraph``: the builders (``pipeline``, ``fanout``) with Agent turns,
    run with ``run_graph``.

Two shapes: a pipeline of 3 agents (3 calls) and a fan-out of 12 specialists
via ``Send`` plus a planner and a synthesizer (14 calls). The queries of a
round run in blocks of ``--block`` (at concurrency 32: 32), the three ways
one after another in a shuffled order per block, so a slow spell of the
machine lands on all three alike; the ratios b/a and c/b are the medians of
the per-block ratios (with c/b's quartiles, to show the noise).

    python benchmarks/graph_overhead.py --queries 128 --rounds 5

Reports the median per-query wall time at concurrency 1 and 32, the paired
ratios c/b (target <= 1.05) and b/a, and the client process's CPU per query of each
way (the simulator runs in its own process), which is steadier than wall time
on a busy machine: ``c-b`` is what spendgraph's graph and agent layers add.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import operator
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from overhead import CONFIG, MODEL, REPLICA, free_port, start_simulator
from rich.console import Console
from rich.table import Table

from spendgraph.agents import Agent
from spendgraph.graph import FanoutOptions, RunOptions, fanout, pipeline, run_graph
from spendgraph.graph.fanout import plan_model
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import parse_config
from spendgraph.providers.context import agent_scope
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger

SPECIALISTS = 12
STAGES = 3
MAX_TOKENS = 24
PLAN_TOKENS = 2048
QUESTION = "Summarise why per-query cost accounting matters for agent apps."

Query = Callable[[ProviderLayer], Any]


# -- the agents (c) runs, and the requests (a) and (b) send for them ------------------


def pipeline_agents() -> list[Agent]:
    return [
        Agent(f"stage{i}", f"Stage {i}: improve the answer.", model=MODEL, max_tokens=MAX_TOKENS)
        for i in range(STAGES)
    ]


def fanout_agents() -> tuple[Agent, list[Agent], Agent]:
    planner = Agent("planner", "Plan the research.", model=MODEL, max_tokens=PLAN_TOKENS)
    team = [
        Agent(f"spec{i}", f"Specialist {i}: answer briefly.", model=MODEL, max_tokens=MAX_TOKENS)
        for i in range(SPECIALISTS)
    ]
    writer = Agent("writer", "Combine the answers.", model=MODEL, max_tokens=MAX_TOKENS)
    return planner, team, writer


def request(agent: Agent, content: str, response_format: dict | None = None) -> ChatRequest:
    """What a hand-written node sends: the agent's system prompt and one user message."""
    return ChatRequest(
        messages=[
            {"role": "system", "content": agent.instructions},
            {"role": "user", "content": content},
        ],
        model=agent.model,
        max_tokens=agent.max_tokens,
        response_format=response_format,
    )


class Shapes:
    """The calls of one query of each shape, prepared once (as a hand-written app would)."""

    def __init__(self) -> None:
        self.stages = pipeline_agents()
        self.planner, self.team, self.writer = fanout_agents()
        self.by_name = {agent.name: agent for agent in self.team}
        plan = FanoutOptions(min_tasks=SPECIALISTS, max_tasks=SPECIALISTS)
        graph = fanout(self.planner, self.team, self.writer, options=plan)
        # The planner's response_format as the builder makes it: the same request bytes.
        schema = plan_model([a.name for a in self.team], SPECIALISTS, SPECIALISTS)
        self.plan_format = self.planner.replace(output=schema).schema.response_format()
        self.spendgraph_fanout = graph
        self.spendgraph_pipeline = pipeline(self.stages)

    async def stage(self, layer: ProviderLayer, agent: Agent, content: str) -> str:
        with agent_scope(agent.name):
            return (await layer.chat(request(agent, content))).content

    async def plan(self, layer: ProviderLayer) -> list[dict[str, Any]]:
        with agent_scope(self.planner.name):
            result = await layer.chat(request(self.planner, QUESTION, self.plan_format))
        return json.loads(result.content)["tasks"]

    async def specialist(self, layer: ProviderLayer, task: dict[str, Any]) -> str:
        with agent_scope(self.planner.name), agent_scope(task["specialist"]):
            agent = self.by_name[task["specialist"]]
            return (await layer.chat(request(agent, task["question"]))).content


# -- (a) direct ------------------------------------------------------------------------


def direct(shapes: Shapes, shape: str) -> Query:
    async def run_pipeline(layer: ProviderLayer) -> None:
        async with layer.query(app="bench"):
            outputs: list[str] = []
            for agent in shapes.stages:
                work = "\n\n".join([QUESTION, *outputs])
                outputs.append(await shapes.stage(layer, agent, work))

    async def run_fanout(layer: ProviderLayer) -> None:
        async with layer.query(app="bench"):
            tasks = await shapes.plan(layer)
            answers = await asyncio.gather(*(shapes.specialist(layer, t) for t in tasks))
            await shapes.stage(layer, shapes.writer, QUESTION + "\n\n" + "\n\n".join(answers))

    return run_pipeline if shape == "pipeline" else run_fanout


# -- (b) hand-written LangGraph ---------------------------------------------------------


class BareState(TypedDict, total=False):
    input: str
    plan: list[dict[str, Any]]
    outputs: Annotated[list[str], operator.add]
    answer: str


def bare_pipeline(shapes: Shapes):
    graph = StateGraph(BareState)
    names = [agent.name for agent in shapes.stages]
    for agent in shapes.stages:

        async def node(state: BareState, config, agent=agent) -> dict[str, Any]:
            return await _stage_node(shapes, agent, state, config)

        graph.add_node(agent.name, node)
    graph.add_edge(START, names[0])
    for here, there in itertools.pairwise(names):
        graph.add_edge(here, there)
    graph.add_edge(names[-1], END)
    return graph.compile()


async def _stage_node(shapes, agent, state, config) -> dict[str, Any]:
    layer = config["configurable"]["layer"]
    work = "\n\n".join([state["input"], *state.get("outputs", [])])
    return {"outputs": [await shapes.stage(layer, agent, work)]}


def bare_fanout(shapes: Shapes):
    async def plan(state: BareState, config) -> dict[str, Any]:
        return {"plan": await shapes.plan(config["configurable"]["layer"])}

    def dispatch(state: BareState) -> list[Send]:
        return [Send(task["specialist"], {"task": task}) for task in state["plan"]]

    async def synthesize(state: BareState, config) -> dict[str, Any]:
        layer = config["configurable"]["layer"]
        work = "\n\n".join([state["input"], *state["outputs"]])
        return {"answer": await shapes.stage(layer, shapes.writer, work)}

    graph = StateGraph(BareState)
    graph.add_node("planner", plan)
    for agent in shapes.team:

        async def answer(payload: dict, config) -> dict[str, Any]:
            layer = config["configurable"]["layer"]
            return {"outputs": [await shapes.specialist(layer, payload["task"])]}

        graph.add_node(agent.name, answer)
        graph.add_edge(agent.name, "writer")
    graph.add_node("writer", synthesize)
    graph.add_edge(START, "planner")
    graph.add_conditional_edges("planner", dispatch, [a.name for a in shapes.team])
    graph.add_edge("writer", END)
    return graph.compile()


def langgraph(shapes: Shapes, shape: str) -> Query:
    graph = bare_pipeline(shapes) if shape == "pipeline" else bare_fanout(shapes)

    async def run(layer: ProviderLayer) -> None:
        async with layer.query(app="bench"):
            config = {"configurable": {"layer": layer}}
            await graph.ainvoke({"input": QUESTION, "outputs": []}, config)

    return run


# -- (c) spendgraph ---------------------------------------------------------------------


def spendgraph(shapes: Shapes, shape: str) -> Query:
    graph = shapes.spendgraph_pipeline if shape == "pipeline" else shapes.spendgraph_fanout
    options = RunOptions(app="bench", stream_tokens=False)  # plain calls, like (a) and (b)

    async def run(layer: ProviderLayer) -> None:
        await run_graph(graph, layer, QUESTION, options=options)

    return run


WAYS = {"direct": direct, "langgraph": langgraph, "spendgraph": spendgraph}


async def timed_queries(query: Query, layer, total: int, concurrency: int) -> list[float]:
    """Per-query wall times of ``total`` queries run by ``concurrency`` workers."""
    latencies: list[float] = []
    remaining = iter(range(total))

    async def worker():
        for _ in remaining:
            start = time.perf_counter()
            await query(layer)
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def measure(url: str, args, ledger_path: Path) -> dict[tuple[str, int], dict]:
    config = parse_config(CONFIG.format(url=url, replica=REPLICA, model=MODEL), source="bench")
    ledger = Ledger.open(f"sqlite:///{ledger_path}")
    layer = ProviderLayer(config, ledger, env={})
    shapes = Shapes()
    order = random.Random(0)
    results: dict[tuple[str, int], dict] = {}
    for shape in args.shapes.split(","):
        queries = {way: make(shapes, shape) for way, make in WAYS.items()}
        for concurrency in (1, 32):
            block = max(args.block, concurrency)
            blocks = max(1, max(args.queries, concurrency) // block)
            for query in queries.values():  # warm-up: imports, pools, first compile paths
                await timed_queries(query, layer, concurrency, concurrency)
            runs: dict[str, list[float]] = {way: [] for way in WAYS}
            cpu: dict[str, list[float]] = {way: [] for way in WAYS}
            means: dict[str, list[float]] = {way: [] for way in WAYS}
            for _ in range(args.rounds * blocks):
                ways = list(queries.items())
                order.shuffle(ways)  # no way always runs first, or right after another
                for way, query in ways:
                    ledger.flush()  # the ledger's writer thread counts to the block that made rows
                    gc.collect()  # each block starts with the same heap: no full collection owed
                    start = time.process_time()
                    latencies = await timed_queries(query, layer, block, concurrency)
                    ledger.flush()
                    cpu[way].append((time.process_time() - start) / block)
                    runs[way] += latencies
                    means[way].append(statistics.fmean(latencies))
            results[(shape, concurrency)] = {"wall": runs, "cpu": cpu, "blocks": means}
    await layer.aclose()
    return results


def paired(cell: dict, over: str, under: str) -> tuple[float, float, float]:
    """Median and quartiles of ``over``/``under`` per block, each pair run back to back:
    a slower or faster spell of the machine moves both halves of a pair alike."""
    ratios = [a / b for a, b in zip(cell["blocks"][over], cell["blocks"][under], strict=True)]
    if len(ratios) < 4:
        median = statistics.median(ratios)
        return median, median, median
    low, median, high = statistics.quantiles(ratios, n=4)
    return median, low, high


def report(results: dict[tuple[str, int], dict]) -> None:
    table = Table(title="Per-query wall time: direct calls / hand-written LangGraph / spendgraph")
    columns = ("shape", "conc.", "direct ms", "langgraph ms", "spendgraph ms", "b/a", "c/b")
    for column in (*columns, "c/b quartiles", "cpu ms/query a / b / c", "cpu c-b ms"):
        table.add_column(column, justify="right")
    for (shape, concurrency), cell in results.items():
        med = {way: statistics.median(times) * 1000 for way, times in cell["wall"].items()}
        cpu = {way: statistics.median(times) * 1000 for way, times in cell["cpu"].items()}
        b_a, c_b = paired(cell, "langgraph", "direct"), paired(cell, "spendgraph", "langgraph")
        table.add_row(
            shape,
            str(concurrency),
            f"{med['direct']:.2f}",
            f"{med['langgraph']:.2f}",
            f"{med['spendgraph']:.2f}",
            f"{b_a[0]:.3f}",
            f"{c_b[0]:.3f}",
            f"{c_b[1]:.3f}-{c_b[2]:.3f}",
            " / ".join(f"{cpu[way]:.2f}" for way in WAYS),
            f"{cpu['spendgraph'] - cpu['langgraph']:+.2f}",
        )
    Console(width=200).print(table)
    Console(width=200).print(
        "target: c/b <= 1.05 at concurrency 1 and 32 (b/a, c/b: medians of per-block ratios)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=128, help="queries per round (>= conc.)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per cell")
    parser.add_argument(
        "--block", type=int, default=8, help="queries per block (at least the concurrency)"
    )
    parser.add_argument("--time-scale", type=float, default=0.0, help="simulator time scale")
    parser.add_argument("--shapes", default="pipeline,fanout", help="pipeline,fanout")
    args = parser.parse_args()
    port = free_port()
    simulator = start_simulator(port, args.time_scale)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"http://127.0.0.1:{port}"
            results = asyncio.run(measure(url, args, Path(tmp) / "bench.db"))
    finally:
        simulator.terminate()
        simulator.wait(10)
    report(results)


if __name__ == "__main__":
    main()
