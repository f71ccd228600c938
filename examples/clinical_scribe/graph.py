"""The graph: scribe -> coder -> evidence check (code, no model) -> reviewer -> report.

Built from the same parts as :func:`spendgraph.graph.pipeline` (``take_turn``,
the ``guarded`` budget wrapper, the ``finish`` node) because a plain pipeline
cannot run a step of ordinary code between two agents, and because each
agent here gets exactly the context it needs instead of every earlier output:
the transcript once per agent, the note as text, the checked codes.

Privacy: nothing here logs, and the query's ``store_text`` (off in this app's
defaults) keeps prompts and completions out of the ledger. The transcript does
live in the graph state -- see README.md, "Where patient text goes".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from spendgraph.agents import Agent, AgentOutputError
from spendgraph.graph import (
    FINISH_NODE,
    AgentOutput,
    GraphState,
    RunContext,
    exhausted,
    finish_node,
    guarded,
    output_of,
    take_turn,
)

from .agents import make_team
from .codes import CodeTable
from .evidence import CodeCheck, check_suggestions, transcript_sentences
from .report import CHECK, CODER, SCRIBE, check_of, note_of, parsed_of, render_report
from .schemas import coding_schema, review_schema, suggestions_of

NAME = "clinical_scribe"


def build(table: CodeTable | None = None) -> CompiledStateGraph:
    """The compiled graph (no checkpointer), coding from ``table`` (default: codes.csv)."""
    table = table or CodeTable.load()
    team = make_team(table)
    graph = StateGraph(GraphState, context_schema=RunContext)
    graph.add_node(SCRIBE, guarded(team.scribe, _scribe(team.scribe)))
    graph.add_node(CODER, guarded(team.coder, _coder(team.coder, table)))
    graph.add_node(CHECK, _check(table))
    graph.add_node(team.reviewer.name, guarded(team.reviewer, _reviewer(team.reviewer)))
    graph.add_node(FINISH_NODE, finish_node(render_report))
    graph.add_edge(START, SCRIBE)
    # After a budget refusal no further agent starts: straight to the report.
    graph.add_conditional_edges(SCRIBE, _next_unless_exhausted(CODER), [CODER, FINISH_NODE])
    graph.add_conditional_edges(CODER, _next_unless_exhausted(CHECK), [CHECK, FINISH_NODE])
    graph.add_edge(CHECK, team.reviewer.name)
    graph.add_edge(team.reviewer.name, FINISH_NODE)
    graph.add_edge(FINISH_NODE, END)
    return graph.compile(name=NAME).with_config(recursion_limit=12)


def _next_unless_exhausted(follower: str):
    async def route(state: GraphState) -> str:
        return FINISH_NODE if exhausted(state) else follower

    return route


async def _stage(runtime: Runtime[RunContext], agent: Agent, content: str) -> dict[str, Any]:
    """One agent turn as a state update; an answer that misses its schema is kept unparsed.

    The report then says which stage was unreadable instead of the run failing:
    a small or badly configured model should still give a partial result.
    """
    messages = [{"role": "user", "content": content}]
    try:
        turn = await take_turn(runtime, agent, messages)
    except AgentOutputError as exc:
        output = AgentOutput(agent=agent.name, path=agent.name, content=exc.content).to_state()
        return {"outputs": [output], "steps": 1}
    return {"outputs": [output_of(turn)], "steps": 1}


def _transcript(state: Mapping[str, Any]) -> str:
    return f"Visit transcript:\n{state.get('input') or ''}"


def _note_text(state: Mapping[str, Any]) -> str:
    note = note_of(state)
    return f"SOAP note:\n{note.to_text() if note else '(the scribe wrote no usable note)'}"


def _scribe(scribe: Agent):
    async def body(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        return await _stage(runtime, scribe, _transcript(state))

    return body


def _coder(coder: Agent, table: CodeTable):
    async def body(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        transcript = state.get("input") or ""
        # The schema's evidence enum is this visit's sentences: see schemas.py.
        visit_coder = coder.replace(output=coding_schema(table, transcript_sentences(transcript)))
        content = f"{_transcript(state)}\n\n{_note_text(state)}"
        return await _stage(runtime, visit_coder, content)

    return body


def _check(table: CodeTable):
    async def body(state: GraphState) -> dict[str, Any]:
        suggestions = suggestions_of(parsed_of(state, CODER))
        check = check_suggestions(suggestions, table, state.get("input") or "")
        output = AgentOutput(
            agent=CHECK, path=CHECK, content=_check_summary(check), parsed=check.to_json()
        )
        return {"outputs": [output.to_state()]}

    return body


def _check_summary(check: CodeCheck) -> str:
    """One line about the check, naming codes and problems only (no patient text)."""
    summary = f"{len(check.codes)} code(s) checked, {len(check.flagged)} flagged"
    details = [f"{c.code} ({'; '.join(c.problems)})" for c in check.flagged]
    details += check.problems
    return f"{summary}: {', '.join(details)}" if details else summary


def _reviewer(reviewer: Agent):
    async def body(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        check = check_of(state) or CodeCheck(())
        visit_reviewer = reviewer.replace(output=review_schema([c.code for c in check.codes]))
        content = (
            f"{_transcript(state)}\n\n{_note_text(state)}\n\n"
            f"Suggested codes with the automatic check:\n{check.describe()}"
        )
        return await _stage(runtime, visit_reviewer, content)

    return body
