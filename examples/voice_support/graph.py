"""voice_support's graph: draft-and-verify, plus escalation to a human.

::

    START -(escalated earlier)-> handoff -> END
          -(otherwise)---------> responder -> verifier [-> verifier_correct] -> review -> END

* ``responder``, ``verifier`` and ``verifier_correct`` are the draft-and-verify
  steps (:func:`~spendgraph.graph.add_draft_and_verify`), added to this graph
  itself rather than run as a graph inside one node (which cost a second
  LangGraph run, ~1 ms, before the caller's first request): the responder
  drafts within the latency target (its draft is what the caller hears first),
  the verifier checks it and, if it is wrong, writes a correction. Its events
  (tokens, :class:`DraftReady`, :class:`VerdictReady`) reach the run's stream,
  so a terminal shows the draft as it streams.
* ``review`` (code) counts rejected drafts in this call. A rejected draft
  means the caller already heard a wrong answer; after ``escalate_after``
  of them the call goes to a human: the answer says so, and ``support`` in
  the state records it (``escalated``, ``ticket``, ``reason``). The run's
  ``stop_reason`` is then ``escalated``.
* ``handoff`` (code) answers every later turn of an escalated call without a
  model call: a person has the call now.

``support`` persists with the thread (the checkpointer saves it), so an
escalated call stays escalated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from spendgraph.graph import (
    DraftVerifyOptions,
    DraftVerifyState,
    RunContext,
    add_draft_and_verify,
)
from spendgraph.providers.ledger.records import QueryStatus

from .agents import responder, verifier
from .knowledge import KnowledgeBase

REVIEW, HANDOFF = "review", "handoff"
ESCALATED = "escalated"
TRANSFER = (
    "I'm sorry I didn't get that right. I'm transferring you to a colleague now, who can "
    "see this conversation. Your reference is {ticket}."
)
WAITING = "A colleague has this call now and will be with you shortly. Your reference is {ticket}."
# Said when the budget stopped the turn before any answer existed.
UNANSWERED = (
    "I'm sorry, I can't answer that right now. Could you say it again, or ask for a colleague?"
)


@dataclass(frozen=True, slots=True)
class SupportOptions:
    """How the voice assistant runs.

    ``latency_target_ms``: the responder's time-to-first-token target (routing
    picks an endpoint that meets it). ``escalate_after``: rejected drafts in one
    call before a human takes over (None: never -- e.g. for scripted replays).
    ``history_limit``: earlier messages each agent sees. 80 holds a whole call of
    up to 40 turns, so each turn's prompt extends the previous one and finds it
    all in the prefix cache; a longer call's history is cut at fixed points (the
    framework moves the window's start in steps of half the limit), which misses
    the cache once per cut only. A smaller limit is cheaper on long calls but
    caches less (measured in README.md).
    """

    latency_target_ms: float = 400.0
    escalate_after: int | None = 2
    history_limit: int = 80

    def __post_init__(self) -> None:
        if self.escalate_after is not None and self.escalate_after < 1:
            raise ValueError("escalate_after must be at least 1 (or None: never escalate)")
        if self.history_limit < 0:
            raise ValueError("history_limit must be 0 or more")


class SupportState(DraftVerifyState, total=False):
    """The draft-and-verify state (``draft``, ``verdict``: this turn's) plus ``support``:
    this call's rejections and escalation, kept across the call's turns (not per-query)."""

    support: dict[str, Any]


def build_graph(
    kb: KnowledgeBase | None = None, options: SupportOptions | None = None
) -> CompiledStateGraph:
    """The compiled voice_support graph (no checkpointer: the runner attaches one)."""
    kb = kb or KnowledgeBase.load()
    options = options or SupportOptions()
    graph = StateGraph(SupportState, context_schema=RunContext)
    assist = add_draft_and_verify(
        graph,
        responder(kb),
        verifier(kb),
        options.latency_target_ms,
        then=REVIEW,
        options=DraftVerifyOptions(history_limit=options.history_limit),
    )
    graph.add_node(REVIEW, _review(options))
    graph.add_node(HANDOFF, _handoff)
    graph.add_conditional_edges(START, _route(assist), [assist, HANDOFF])
    graph.add_edge(REVIEW, END)
    graph.add_edge(HANDOFF, END)
    return graph.compile(name="voice_support").with_config(recursion_limit=8)


def _route(assist: str):
    async def route(state: SupportState) -> str:
        return HANDOFF if (state.get("support") or {}).get(ESCALATED) else assist

    return route


def _review(options: SupportOptions):
    async def review(state: SupportState) -> dict[str, Any]:
        support = _support(state)
        verdict = state.get("verdict") or {}
        if verdict.get("accepted") is False:  # None (unreadable) is not held against the draft
            support["rejections"] += 1
        answer = state.get("answer") or state.get("draft") or UNANSWERED
        limit = options.escalate_after
        if limit is not None and support["rejections"] >= limit:
            support.update(escalated=True, ticket=_ticket(state), reason=_reason(support, verdict))
            answer = f"{answer} {TRANSFER.format(ticket=support['ticket'])}".strip()
        # `status` is sticky: a budget refusal earlier in the run stays the query's status.
        update: dict[str, Any] = {"support": support, "answer": answer}
        update["status"] = QueryStatus.OK.value
        update["stop_reason"] = ESCALATED if support[ESCALATED] else "done"
        update["messages"] = [{"role": "assistant", "content": answer}]
        return update

    return review


async def _handoff(state: SupportState) -> dict[str, Any]:
    answer = WAITING.format(ticket=_support(state)["ticket"])
    return {
        "answer": answer,
        "status": QueryStatus.OK.value,
        "stop_reason": ESCALATED,
        "messages": [{"role": "assistant", "content": answer}],
    }


def _support(state: Mapping[str, Any]) -> dict[str, Any]:
    """This call's support record (a copy, safe to change)."""
    record = {"rejections": 0, ESCALATED: False, "ticket": None, "reason": ""}
    return {**record, **(state.get("support") or {})}


def _ticket(state: Mapping[str, Any]) -> str:
    """A reference the caller can quote; the query id ties it to the ledger."""
    return "HUM-" + (state.get("query_id") or "unknown")[:8].upper()


def _reason(support: Mapping[str, Any], verdict: Mapping[str, Any]) -> str:
    problems = verdict.get("problems") or "no reason given"
    return f"{support['rejections']} drafts rejected in this call; last: {problems}"
