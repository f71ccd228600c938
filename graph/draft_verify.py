"""``draft_and_verify``: a fast agent drafts within a latency target, a strong agent checks it.

The draft call is always streamed (its tokens can be shown while the strong
model works, and its time to first token is measured) and routed with the
latency target, so the router picks an endpoint that meets it. A
:class:`DraftReady` event is emitted as soon as the draft is complete --
before verification starts. The strong agent answers with a verdict
(``accepted``, ``problems``); if it rejects the draft, it writes a corrected
answer. Both the draft and the verdict are kept in the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from spendgraph.agents.agent import Agent
from spendgraph.agents.errors import AgentOutputError
from spendgraph.graph.build import (
    GraphOptions,
    check_names,
    check_no_output,
    compile_graph,
    require_agent,
)
from spendgraph.graph.errors import GraphBuildError
from spendgraph.graph.events import DraftReady, VerdictReady
from spendgraph.graph.nodes import (
    FINISH_NODE,
    RunContext,
    exhausted,
    finish_node,
    guarded,
    output_of,
    prompt,
    take_turn,
)
from spendgraph.graph.state import PER_QUERY, GraphState, PerQuery, state_keys

BUILDER = "draft_and_verify"


class DraftVerifyState(GraphState, total=False):
    """A draft-and-verify graph's state: the fast agent's ``draft`` and the strong
    agent's ``verdict`` (``accepted``, ``problems``; ``None`` until it is given)."""

    draft: Annotated[str, PerQuery("")]
    verdict: Annotated[dict[str, Any] | None, PER_QUERY]


class Verdict(BaseModel):
    """The strong agent's check of a draft."""

    accepted: bool = Field(description="true if the draft is correct and complete as it stands")
    problems: str = Field(description="what is wrong with the draft; empty when accepted")


@dataclass(frozen=True, slots=True)
class DraftVerifyOptions(GraphOptions):
    """``correct``: write a corrected answer when the draft is rejected (else keep the draft)."""

    correct: bool = True


def draft_and_verify(
    fast: Agent,
    strong: Agent,
    latency_target_ms: float,
    *,
    options: DraftVerifyOptions | None = None,
) -> CompiledStateGraph:
    """A graph where ``fast`` drafts within ``latency_target_ms`` and ``strong`` verifies.

    The answer is the draft when accepted (or when the verdict is unreadable or
    the budget ran out), else the strong agent's correction; the state is
    :class:`DraftVerifyState` (read ``result.state["draft"]``). Raises
    :class:`GraphBuildError` for non-Agents, equal names, a non-positive
    latency target, or a strong agent that already has an output schema.
    """
    options = options or DraftVerifyOptions()
    graph = StateGraph(DraftVerifyState, context_schema=RunContext)
    entry = add_draft_and_verify(
        graph, fast, strong, latency_target_ms, then=FINISH_NODE, options=options
    )
    graph.add_node(FINISH_NODE, finish_node(_draft_answer))
    graph.add_edge(START, entry)
    graph.add_edge(FINISH_NODE, END)
    return compile_graph(graph, name=BUILDER, recursion_limit=options.recursion(8))


def add_draft_and_verify(
    graph: StateGraph,
    fast: Agent,
    strong: Agent,
    latency_target_ms: float,
    *,
    then: str,
    options: DraftVerifyOptions | None = None,
) -> str:
    """Add the draft-and-verify steps to an app's own ``graph`` (its state extends
    :class:`DraftVerifyState`); they end in the node ``then``, which settles the
    answer (``state["answer"]`` if corrected, else ``state["draft"]``) and adds it
    to the history. Returns the node to enter them by.

    The steps run in the app's graph itself, not as a graph inside one of its
    nodes: a nested graph sets up a second LangGraph run (about 1 ms of CPU)
    before its first call -- silence on a phone line.
    """
    options = options or DraftVerifyOptions()
    drafter = require_agent(BUILDER, "fast agent", fast)
    checker = require_agent(BUILDER, "strong agent", strong)
    target = _check(drafter, checker, latency_target_ms, options, graph.state_schema)
    drafter = drafter.replace(latency_target_ms=target)
    correct_node = f"{checker.name}_correct"
    graph.add_node(drafter.name, guarded(drafter, _draft(drafter, target, options)))
    graph.add_node(checker.name, guarded(checker, _verify(checker, options)))
    graph.add_node(correct_node, guarded(checker, _correct(checker, correct_node, options)))
    graph.add_conditional_edges(
        drafter.name, _unless_exhausted(checker.name, then), [checker.name, then]
    )
    graph.add_conditional_edges(
        checker.name, _after_verdict(correct_node, then, options), [correct_node, then]
    )
    graph.add_edge(correct_node, then)
    return drafter.name


def _check(
    fast: Agent, strong: Agent, target: Any, options: DraftVerifyOptions, state: type
) -> float:
    options.check(BUILDER)
    missing = sorted(state_keys(DraftVerifyState) - state_keys(state))
    if missing:
        raise GraphBuildError(
            f"{BUILDER}: the graph's state {state.__name__} lacks {', '.join(missing)}; "
            "derive it from DraftVerifyState"
        )
    if isinstance(target, bool) or not isinstance(target, int | float) or not target > 0:
        raise GraphBuildError(
            f"{BUILDER}: latency_target_ms must be a positive number of milliseconds, "
            f"got {target!r}"
        )
    check_names(BUILDER, (fast, strong), state)
    if fast.name == f"{strong.name}_correct":
        raise GraphBuildError(f"{BUILDER}: the fast agent may not be named {fast.name!r}")
    check_no_output(BUILDER, "strong agent", strong, "its verdict schema is built in")
    return float(target)


def _draft(fast: Agent, target: float, options: DraftVerifyOptions):
    async def body(state: DraftVerifyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        messages = prompt(state, history_limit=options.history_limit)
        turn = await take_turn(runtime, fast, messages, stream=True)
        ttft = next((c.ttft_ms for c in turn.calls if c.ttft_ms is not None), None)
        within = None if ttft is None else ttft <= target
        runtime.stream_writer(DraftReady(fast.name, turn.content, ttft, target, within))
        return {"draft": turn.content, "outputs": [output_of(turn)], "steps": 1}

    return body


def _verify(strong: Agent, options: DraftVerifyOptions):
    checking = strong.replace(output=Verdict)
    note = (
        "Check the draft answer below against the request. Set accepted=true only if it is "
        "correct and complete; otherwise list the problems."
    )

    async def body(state: DraftVerifyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        work = [{"agent": "draft", "content": state.get("draft") or ""}]
        messages = prompt(state, history_limit=options.history_limit, work=work, note=note)
        try:
            turn = await take_turn(runtime, checking, messages)
        except AgentOutputError as exc:
            verdict = {"accepted": None, "problems": f"unreadable verdict: {exc}"}
            update: dict[str, Any] = {"steps": 1}
        else:
            verdict = turn.parsed.model_dump()
            update = {"steps": 1, "outputs": [output_of(turn)]}
        runtime.stream_writer(VerdictReady(strong.name, verdict["accepted"], verdict["problems"]))
        return {**update, "verdict": verdict}

    return body


def _correct(strong: Agent, node: str, options: DraftVerifyOptions):
    async def body(state: DraftVerifyState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        verdict = state.get("verdict") or {}
        work = [{"agent": "draft", "content": state.get("draft") or ""}]
        task = f"The draft was rejected: {verdict.get('problems') or 'no reason given'}. " + (
            "Write the corrected answer."
        )
        messages = prompt(state, history_limit=options.history_limit, work=work, task=task)
        turn = await take_turn(runtime, strong, messages, node=node)
        return {"outputs": [output_of(turn, task=task)], "answer": turn.content, "steps": 1}

    return body


def _unless_exhausted(target: str, then: str):
    async def route(state: DraftVerifyState) -> str:
        return then if exhausted(state) else target

    return route


def _after_verdict(correct_node: str, then: str, options: DraftVerifyOptions):
    async def route(state: DraftVerifyState) -> str:
        verdict = state.get("verdict") or {}
        rejected = verdict.get("accepted") is False
        if rejected and options.correct and not exhausted(state):
            return correct_node
        return then

    return route


def _draft_answer(state: Mapping[str, Any]) -> str:
    return state.get("draft") or ""
