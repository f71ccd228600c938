"""dungeon end to end on the simulator: actions, NPCs, the ledger, budgets, resuming a game."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from spendgraph.cli.apps import load_app
from spendgraph.examples import dungeon
from spendgraph.examples.dungeon import APP, DungeonOptions, build_graph, game_spend
from spendgraph.examples.dungeon.graph import PAUSED
from spendgraph.examples.dungeon.world import ACTIONS, ATTITUDES, WorldMap
from spendgraph.graph import open_checkpointer, run_graph, thread_messages, with_checkpointer
from spendgraph.providers.ledger.records import CallStatus, QueryStatus

OPTIONS = APP.run_options()


@pytest.fixture
async def graph(tmp_path):
    """The dungeon graph with a checkpointer, so a thread's actions build on each other."""
    async with open_checkpointer(path=tmp_path / "threads.db") as saver:
        yield with_checkpointer(APP.build(), saver)


async def play(graph, layer, thread: str, *actions: str):
    """Run ``actions`` one after another in ``thread``; the results in order."""
    return [
        await run_graph(graph, layer, action, thread_id=thread, options=OPTIONS)
        for action in actions
    ]


async def test_a_plain_command_moves_the_player_and_only_the_narrator_is_called(
    graph, layer, ledger
):
    (result,) = await play(graph, layer, "g1", "go north")
    assert result.status is QueryStatus.OK and result.stop_reason == "done"
    world = result.state["world"]
    assert world["location"] == "inn" and world["turn"] == 1
    assert world["visited"] == ["crossroads", "inn"]
    assert result.state["ruling"]["ok"] is True
    ledger.flush()
    rows = ledger.calls_for_query(result.query_id)
    # "go north" is parsed in code: no game master call; the narrator is the large model.
    assert [(r.agent_path, r.endpoint.model) for r in rows] == [("narrator", "sim-large")]
    assert rows[0].endpoint.name.startswith("b200-nvfp4-")  # the cheapest pool for `large`
    narration, status = result.answer.rsplit("\n\n", 1)
    assert narration == result.outputs[-1].content
    cost = result.spend.describe()
    spent = f"this action {cost} · this game {cost} over 1 action(s)"
    assert status == f"_At the Pig & Lantern inn · turn 1 · {spent}_"
    assert ledger.query_summary(result.query_id).query.app == "dungeon"


async def test_free_text_goes_to_the_game_master_and_its_decision_is_checked(layer, ledger):
    graph = APP.build()
    (result,) = await play(graph, layer, "g2", "I wonder what that signpost says, maybe read it")
    ruling = result.state["ruling"]
    assert ruling["action"] in ACTIONS
    assert result.outputs[0].agent == "game_master"
    decision = result.outputs[0].parsed
    assert set(decision) == {"action", "direction", "item", "npc", "intent"}
    world = result.state["world"]
    places = WorldMap.load().locations
    assert world["location"] in places and world["turn"] == 1
    # Whatever the model proposed, a move only happens along an exit of the start.
    assert world["location"] in {"crossroads", *places["crossroads"].exits.values()}
    ledger.flush()
    paths = [r.agent_path for r in ledger.calls_for_query(result.query_id)]
    assert paths[0] == "game_master" and paths[-1] == "narrator"


async def test_talking_to_a_character_runs_their_agent_and_moves_their_attitude(
    graph, layer, ledger
):
    results = await play(graph, layer, "g3", "go north", "talk to Mara", "talk to mara")
    for result in results[1:]:
        assert [o.agent for o in result.outputs] == ["npc_mara", "narrator"]
        reply = result.state["npc_reply"]
        assert reply["npc"] == "mara" and reply["says"]
        assert result.state["world"]["attitudes"]["mara"] in ATTITUDES
    ledger.flush()
    rows = ledger.calls_for_query(results[1].query_id)
    assert [(r.agent_path, r.endpoint.model) for r in rows] == [
        ("npc_mara", "sim-small"),
        ("narrator", "sim-large"),
    ]


async def test_a_game_resumes_after_a_restart(layer, ledger, tmp_path):
    """The resume test: a fresh graph on a fresh checkpointer continues the thread."""
    threads = tmp_path / "threads.db"
    async with open_checkpointer(path=threads) as saver:
        first = await run_graph(
            with_checkpointer(APP.build(), saver), layer, "go north", thread_id="T", options=OPTIONS
        )
    assert first.state["world"]["location"] == "inn"

    # "Restart": nothing survives but the checkpoint file and the ledger.
    async with open_checkpointer(path=threads) as saver:
        graph = with_checkpointer(build_graph(), saver)
        second = await run_graph(graph, layer, "go down", thread_id="T", options=OPTIONS)
        history = await thread_messages(graph, "T")
        other = await run_graph(graph, layer, "go down", thread_id="U", options=OPTIONS)

    world = second.state["world"]
    # "down" only exists from the inn: the second action started where the first ended.
    assert second.state["ruling"] == {
        "action": "move",
        "ok": True,
        "summary": "The player goes down to the inn's cellar.",
        "npc": None,
    }
    assert world["location"] == "cellar" and world["turn"] == 2
    assert world["visited"] == ["crossroads", "inn", "cellar"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["content"] == "go north" and history[2]["content"] == "go down"
    assert "over 2 action(s)" in second.answer
    # Another thread is another game: it starts at the crossroads, where there is no "down".
    assert other.state["ruling"]["ok"] is False
    assert other.state["world"]["location"] == "crossroads" and other.state["world"]["turn"] == 1


async def test_a_games_cost_is_the_sum_of_its_actions_in_the_ledger(graph, layer, ledger):
    mine = await play(graph, layer, "mine", "look", "go north", "take the bread")
    await play(graph, layer, "theirs", "look")
    ledger.flush()
    game = game_spend(ledger, "mine", app="dungeon")
    assert game.actions == 3
    # The ledger's SQL sum over the thread is the runs' own running totals, added.
    assert game.spend == sum(r.spend for r in mine)
    assert game.spend.unpriced == 0 and game.spend.calls >= 3
    assert mine[-1].state["world"]["inventory"] == ["bread"]
    assert f"this game {game.spend.describe()} over 3 action(s)" in mine[-1].answer
    assert game_spend(ledger, "nobody").actions == 0


async def test_a_spent_budget_ends_the_action_gracefully(layer, ledger):
    options = APP.run_options(budget_usd=Decimal("0.000001"))
    result = await run_graph(APP.build(), layer, "go north", thread_id="poor", options=options)
    assert result.status is QueryStatus.BUDGET_EXHAUSTED
    assert result.stop_reason == "budget"
    # The move itself was decided in code; only its telling was cut short.
    assert result.answer.startswith(f"The player goes north to the Pig & Lantern inn. ({PAUSED})")
    assert result.state["world"]["location"] == "inn"
    ledger.flush()
    rows = ledger.calls_for_query(result.query_id)
    assert [r.status for r in rows] == [CallStatus.BUDGET_DENIED]
    assert ledger.query_summary(result.query_id).query.status is QueryStatus.BUDGET_EXHAUSTED


async def test_the_status_line_can_be_switched_off(layer):
    graph = build_graph(options=DungeonOptions(show_status=False))
    (result,) = await play(graph, layer, "quiet", "look")
    assert result.answer == result.outputs[-1].content
    assert result.state["messages"][-1] == {"role": "assistant", "content": result.answer}


async def test_the_narrators_story_so_far_stays_in_its_replicas_cache(graph, layer, ledger):
    """The narrator (large tier, prefix affinity in the example config) sees a story
    window cut at fixed points: most of each prompt is the previous one's prefix."""
    moves = ["look", "n", "d", "u", "s", "e", "n", "s", "w", "s", "n", "n"]
    results = await play(graph, layer, "long", *moves)
    ledger.flush()
    rows = [
        row
        for result in results
        for row in ledger.calls_for_query(result.query_id)
        if row.agent_path == "narrator"
    ]
    assert len(rows) == len(moves)
    cached = sum(row.usage.input_cached for row in rows)
    prompt = sum(row.usage.input_cached + row.usage.input_uncached for row in rows)
    assert cached / prompt > 0.45


async def test_a_copied_folder_is_a_users_own_game(tmp_path, layer):
    """Users build apps by copying an example: the copy runs with its own world file."""
    copy = tmp_path / "my_dungeon"
    shutil.copytree(
        Path(dungeon.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    world = copy / "world.toml"
    world.write_text(world.read_text().replace("the Pig & Lantern inn", "the Drowned Rat tavern"))
    app = load_app(str(copy))
    assert app.name == "dungeon" and app.build is not APP.build
    async with open_checkpointer(path=tmp_path / "threads.db") as saver:
        graph = with_checkpointer(app.build(), saver)
        result = await run_graph(graph, layer, "go north", thread_id="mine")
    assert "At the Drowned Rat tavern · turn 1" in result.answer
