"""Multi-agent graphs over the provider layer: everything an app imports, from one module.

Define agents (:class:`Agent`), put them in a graph -- a builder
(:func:`pipeline`, :func:`supervisor`, :func:`fanout`,
:func:`draft_and_verify`) or a LangGraph ``StateGraph`` of your own -- and run
it for one user input with :func:`run_graph` (or stream its events with
:func:`stream_graph`): each run is one ledger query. :class:`App` packages a
graph for ``spendgraph run``/``spendgraph chat``; :func:`with_checkpointer`
gives a graph a saver (:func:`open_checkpointer`) so conversation threads
persist.

A hand-written graph's nodes use the parts the builders use:
``StateGraph(GraphState, context_schema=RunContext)``; in a node,
:func:`take_turn` runs an agent on :func:`prompt`'s messages and
:func:`output_of` records the turn; :func:`guarded` wraps the node so a budget
refusal ends the run gracefully (route on :func:`exhausted`); the graph ends in
``FINISH_NODE`` (:func:`finish_node`), which settles the answer
(:func:`last_output` by default). Keys of your own state that describe one
query are marked :data:`PER_QUERY` (see :class:`PerQuery`).

>>> from spendgraph.graph import Agent, App, pipeline
>>> app = App(
...     name="notes",
...     description="A scribe writes a note, a reviewer checks it.",
...     build=lambda: pipeline([Agent("scribe", "Write a note."), Agent("reviewer", "Review it.")]),
... )
"""

from spendgraph.agents import Agent
from spendgraph.graph.app import App
from spendgraph.graph.build import FINISH, GraphOptions
from spendgraph.graph.draft_verify import (
    DraftVerifyOptions,
    DraftVerifyState,
    Verdict,
    add_draft_and_verify,
    draft_and_verify,
)
from spendgraph.graph.errors import GraphBuildError
from spendgraph.graph.events import (
    AgentFinished,
    AgentStarted,
    BudgetExhausted,
    BudgetThreshold,
    CallSpent,
    DraftReady,
    GraphEvent,
    Routed,
    RunEvent,
    RunFinished,
    RunStarted,
    TokenDelta,
    ToolCallFinished,
    ToolCallStarted,
    VerdictReady,
)
from spendgraph.graph.fanout import FanoutOptions, FanoutState, fanout
from spendgraph.graph.nodes import (
    FINISH_NODE,
    RunContext,
    exhausted,
    finish_node,
    guarded,
    last_output,
    output_of,
    prompt,
    take_turn,
)
from spendgraph.graph.persist import open_checkpointer, with_checkpointer
from spendgraph.graph.pipeline import pipeline
from spendgraph.graph.run import RunOptions, RunResult, run_graph, stream_graph, thread_messages
from spendgraph.graph.state import PER_QUERY, AgentOutput, GraphState, PerQuery
from spendgraph.graph.supervisor import SupervisorOptions, SupervisorState, supervisor

__all__ = [
    "FINISH",
    "FINISH_NODE",
    "PER_QUERY",
    "Agent",
    "AgentFinished",
    "AgentOutput",
    "AgentStarted",
    "App",
    "BudgetExhausted",
    "BudgetThreshold",
    "CallSpent",
    "DraftReady",
    "DraftVerifyOptions",
    "DraftVerifyState",
    "FanoutOptions",
    "FanoutState",
    "GraphBuildError",
    "GraphEvent",
    "GraphOptions",
    "GraphState",
    "PerQuery",
    "Routed",
    "RunContext",
    "RunEvent",
    "RunFinished",
    "RunOptions",
    "RunResult",
    "RunStarted",
    "SupervisorOptions",
    "SupervisorState",
    "TokenDelta",
    "ToolCallFinished",
    "ToolCallStarted",
    "Verdict",
    "VerdictReady",
    "add_draft_and_verify",
    "draft_and_verify",
    "exhausted",
    "fanout",
    "finish_node",
    "guarded",
    "last_output",
    "open_checkpointer",
    "output_of",
    "pipeline",
    "prompt",
    "run_graph",
    "stream_graph",
    "supervisor",
    "take_turn",
    "thread_messages",
    "with_checkpointer",
]
