"""The dungeon's graph: one player action is one run (one ledger query).

::

    begin -> game_master -> [npc_<id>] -> narrator -> finish

* ``begin`` (code) starts a new world on a game's first action. (The
  per-action keys are marked ``PER_QUERY`` in :class:`DungeonState`: each run
  starts them afresh, while ``world`` carries over.)
* ``game_master`` (an agent with a structured output) turns the input into
  one :class:`.world.Decision`; code applies it
  to the world state if it is legal (:func:`apply_decision`).
* ``npc_<id>`` (one agent per character) answers when the action involves a
  character who is present; its attitude change is clamped in code.
* ``narrator`` (the large model) writes what the player reads.
* ``finish`` (code) settles the answer, adds it to the game's history and,
  by default, a status line: place, turn, this action's and this game's cost.

The world state is a key of the graph state (``world``), so the
checkpointer saves it with the thread: ``spendgraph chat --app dungeon
--thread mygame`` resumes the game where it was, after any restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from spendgraph.agents import Agent, AgentOutputError
from spendgraph.graph import (
    FINISH_NODE,
    PER_QUERY,
    GraphState,
    PerQuery,
    RunContext,
    exhausted,
    guarded,
    output_of,
    take_turn,
)
from spendgraph.providers.context import current_query
from spendgraph.providers.ledger.records import QueryStatus

from .agents import NpcReply, game_master, narrator, npc_agents
from .commands import parse_command
from .costs import game_spend
from .world import (
    Decision,
    Ruling,
    WorldMap,
    adjust_attitude,
    apply_decision,
    describe_scene,
    new_game,
)

BEGIN, GAME_MASTER, NARRATOR = "begin", "game_master", "narrator"
# The answer when the budget stops an action before the narrator speaks.
PAUSED = "The story holds its breath: this action ran out of budget before it could be told."


@dataclass(frozen=True, slots=True)
class DungeonOptions:
    """``history_limit``: earlier messages the game master and narrator see (the story so
    far); ``show_status``: end each answer with a status line -- where the player is,
    the turn, and what this action and this game have cost."""

    history_limit: int = 12
    show_status: bool = True
    recursion_limit: int = 12

    def __post_init__(self) -> None:
        if self.history_limit < 0:
            raise ValueError("history_limit must be 0 or more")


class DungeonState(GraphState, total=False):
    """The graph state plus the game: ``world`` persists across actions (checkpointed
    with the thread); the other keys describe the current action only."""

    world: dict[str, Any]
    ruling: Annotated[dict[str, Any] | None, PER_QUERY]
    npc_reply: Annotated[dict[str, Any] | None, PER_QUERY]
    narration: Annotated[str, PerQuery("")]


def build_graph(
    world: WorldMap | None = None, options: DungeonOptions | None = None
) -> CompiledStateGraph:
    """The compiled dungeon graph (no checkpointer: the runner attaches one)."""
    world = world or WorldMap.load()
    options = options or DungeonOptions()
    master, teller, npcs = game_master(world), narrator(), npc_agents(world)
    graph = StateGraph(DungeonState, context_schema=RunContext)
    graph.add_node(BEGIN, _begin(world))
    graph.add_node(GAME_MASTER, guarded(master, _decide(master, world, options)))
    for npc_id, agent in npcs.items():
        graph.add_node(agent.name, guarded(agent, _speak(agent, npc_id, world)))
    graph.add_node(NARRATOR, guarded(teller, _narrate(teller, world, options)))
    graph.add_node(FINISH_NODE, _finish(world, options))
    graph.add_edge(START, BEGIN)
    graph.add_edge(BEGIN, GAME_MASTER)
    npc_nodes = [agent.name for agent in npcs.values()]
    graph.add_conditional_edges(GAME_MASTER, _after_ruling, [*npc_nodes, NARRATOR, FINISH_NODE])
    for name in npc_nodes:
        graph.add_conditional_edges(name, _unless_exhausted(NARRATOR), [NARRATOR, FINISH_NODE])
    graph.add_edge(NARRATOR, FINISH_NODE)
    graph.add_edge(FINISH_NODE, END)
    compiled = graph.compile(name="dungeon")
    return compiled.with_config(recursion_limit=options.recursion_limit)


def _begin(world: WorldMap):
    async def begin(state: DungeonState) -> dict[str, Any]:
        return {"world": state.get("world") or new_game(world)}

    return begin


def _history(state: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
    """The story so far: at most ``limit`` earlier messages, without this action's input.

    The window is cut at fixed points (multiples of ``limit // 2`` messages)
    instead of sliding by one message per action: a sliding window changes the
    prompt's beginning every action, so neither the replica's prefix cache nor
    the affinity key (derived from the conversation's opening) would ever match
    the previous action's. Cut this way, the opening stays put for several
    actions in a row; the model sees between ``limit // 2`` and ``limit`` messages.
    """
    messages = list(state.get("messages") or [])[:-1]  # the last one is this action's input
    if limit <= 0:
        return []
    step = max(2, limit // 2 // 2 * 2)  # even: keep the player's and the narrator's turns paired
    overflow = max(0, len(messages) - limit)
    start = -(-overflow // step) * step  # the first cut point that leaves at most `limit`
    return messages[start:]


def _decide(agent: Agent, world: WorldMap, options: DungeonOptions):
    async def body(state: DungeonState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        update: dict[str, Any] = {}
        decision = parse_command(world, state.get("input", ""))
        if decision is None:  # not a plain command: ask the model
            scene = describe_scene(world, state["world"])
            request = f"Scene:\n{scene}\n\nThe player says: {state.get('input', '')}"
            history = _history(state, options.history_limit)
            messages = [*history, {"role": "user", "content": request}]
            decision, update = await _model_decision(runtime, agent, messages)
        new_world, ruling = apply_decision(world, state["world"], decision)
        return {**update, "world": new_world, "ruling": ruling.to_state()}

    return body


async def _model_decision(
    runtime: Runtime[RunContext], agent: Agent, messages: list[dict[str, Any]]
) -> tuple[Decision, dict[str, Any]]:
    """The game master model's decision, and the state update recording its turn."""
    try:
        turn = await take_turn(runtime, agent, messages)
    except AgentOutputError as exc:
        # An unreadable decision is a harmless "look": the game goes on.
        output = {"agent": agent.name, "path": agent.name, "content": exc.content}
        look = Decision(action="look", direction=None, item=None, npc=None, intent="look around")
        return look, {"steps": 1, "outputs": [output]}
    decision = Decision.model_validate(turn.parsed.model_dump())
    return decision, {"steps": 1, "outputs": [output_of(turn)]}


def _speak(agent: Agent, npc_id: str, world: WorldMap):
    npc = world.npcs[npc_id]

    async def body(state: DungeonState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ruling = state.get("ruling") or {}
        request = (
            f"Scene:\n{describe_scene(world, state['world'])}\n\n"
            f"The player says or does: {state.get('input', '')}\n"
            f"What happens: {ruling.get('summary', '')}\n\nReply as {npc.name}."
        )
        try:
            turn = await take_turn(runtime, agent, [{"role": "user", "content": request}])
        except AgentOutputError:
            return {"steps": 1}  # a character lost for words; the narrator carries on
        reply: NpcReply = turn.parsed
        return {
            "steps": 1,
            "outputs": [output_of(turn)],
            "npc_reply": {"npc": npc_id, "name": npc.name, **reply.model_dump()},
            "world": adjust_attitude(state["world"], npc_id, reply.attitude_change),
        }

    return body


def _narrate(agent: Agent, world: WorldMap, options: DungeonOptions):
    async def body(state: DungeonState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ruling = state.get("ruling") or {}
        parts = [f"The player: {state.get('input', '')}", f"Ruling: {ruling.get('summary', '')}"]
        reply = state.get("npc_reply")
        if reply:
            parts.append(f'{reply["name"]} replies: "{reply["says"]}"')
        parts.append(f"Scene now:\n{describe_scene(world, state['world'])}")
        request = {"role": "user", "content": "\n".join(parts)}
        turn = await take_turn(runtime, agent, [*_history(state, options.history_limit), request])
        return {"steps": 1, "outputs": [output_of(turn)], "narration": turn.content}

    return body


async def _after_ruling(state: DungeonState) -> str:
    if exhausted(state):
        return FINISH_NODE
    npc = (state.get("ruling") or {}).get("npc")
    return f"npc_{npc}" if npc else NARRATOR


def _unless_exhausted(target: str):
    async def route(state: DungeonState) -> str:
        return FINISH_NODE if exhausted(state) else target

    return route


def _finish(world: WorldMap, options: DungeonOptions):
    async def finish(
        state: DungeonState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        narration = state.get("narration") or _fallback(state)
        update: dict[str, Any] = {
            "status": QueryStatus.OK.value,
            "stop_reason": "done",
            "answer": narration,
        }
        # The history keeps the story only; the status line is for the player's eyes.
        update["messages"] = [{"role": "assistant", "content": narration}]
        if options.show_status and isinstance(runtime.context, RunContext):
            thread_id = config.get("configurable", {}).get("thread_id", "")
            line = await _status_line(world, state, runtime.context, thread_id)
            update["answer"] = f"{narration}\n\n{line}"
        return update

    return finish


def _fallback(state: Mapping[str, Any]) -> str:
    """No narration (the budget ran out): say what the game decided, if it got that far."""
    ruling = Ruling(**state["ruling"]) if state.get("ruling") else None
    return f"{ruling.summary} ({PAUSED})" if ruling else PAUSED


async def _status_line(
    world: WorldMap, state: Mapping[str, Any], context: RunContext, thread_id: str
) -> str:
    """``At <place> · turn n · this action $x · this game $y over n actions``.

    Both costs are read from the provider layer's accounting: this action's
    from the open query, the game's from the ledger rows of the thread's queries.
    """
    game_state = state.get("world") or new_game(world)
    parts = [
        f"At {world.locations[game_state['location']].name}",
        f"turn {game_state.get('turn', 0)}",
    ]
    scope = current_query()
    if scope is not None:
        ledger = context.layer.ledger
        await ledger.aflush()
        game = await asyncio.to_thread(game_spend, ledger, thread_id, app=scope.app)
        parts.append(f"this action {scope.spend.describe()}")
        parts.append(f"this game {game.spend.describe()} over {game.actions} action(s)")
    return "_" + " · ".join(parts) + "_"
