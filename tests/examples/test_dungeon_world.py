"""dungeon's rules without a model: the world data, validated decisions, plain commands."""

from __future__ import annotations

import pytest

from spendgraph.examples.dungeon.agents import game_master
from spendgraph.examples.dungeon.commands import parse_command
from spendgraph.examples.dungeon.graph import _history
from spendgraph.examples.dungeon.world import (
    Decision,
    WorldError,
    WorldMap,
    adjust_attitude,
    apply_decision,
    decision_model,
    describe_scene,
    new_game,
)

WORLD = WorldMap.load()


def decide(action: str, **fields: str | None) -> Decision:
    values = {"direction": None, "item": None, "npc": None, "intent": "test", **fields}
    return Decision(action=action, **values)


def at(location: str, *carrying: str) -> dict:
    state = new_game(WORLD)
    state["location"] = location
    state["inventory"] = list(carrying)
    return state


def test_the_shipped_world_is_consistent():
    assert WORLD.problems() == []
    assert WORLD.start == "crossroads"
    assert {"north", "south", "east", "west", "up", "down", "in", "out"} == set(WORLD.directions())
    assert [npc.id for npc in WORLD.npcs_at("inn")] == ["mara"]


def test_a_world_referring_to_unknown_places_is_refused_with_the_key_named():
    text = """
start = "hall"
[locations.hall]
name = "hall"
description = "A hall."
exits = { north = "nowhere" }
items = ["ghost"]
[npcs.bob]
name = "Bob"
location = "attic"
persona = "Bob."
"""
    with pytest.raises(WorldError) as caught:
        WorldMap.parse(text, source="my_world.toml")
    message = str(caught.value)
    assert message.startswith("my_world.toml: ")
    assert "locations.hall.exits.north: unknown location 'nowhere'" in message
    assert "locations.hall.items: unknown item 'ghost'" in message
    assert "npcs.bob.location: unknown location 'attic'" in message
    with pytest.raises(WorldError, match=r"my\.toml: cannot read the world"):
        WorldMap.parse("start = 1", source="my.toml")


def test_the_game_masters_schema_lists_only_known_ids():
    schema = game_master(WORLD).schema.schema
    props = schema["properties"]
    assert set(schema["required"]) == {"action", "direction", "item", "npc", "intent"}
    enums = {
        name: next(o["enum"] for o in props[name]["anyOf"] if "enum" in o)
        for name in ("direction", "item", "npc")
    }
    assert set(enums["direction"]) == set(WORLD.directions())
    assert set(enums["item"]) == set(WORLD.items)
    assert set(enums["npc"]) == set(WORLD.npcs)
    parsed = decision_model(WORLD).model_validate(
        {"action": "move", "direction": "north", "item": None, "npc": None, "intent": "go"}
    )
    assert Decision.model_validate(parsed.model_dump()).direction == "north"


@pytest.mark.parametrize(
    ("state", "decision", "ok", "summary", "location"),
    [
        (at("crossroads"), decide("move", direction="north"), True, "goes north", "inn"),
        (at("crossroads"), decide("move", direction="up"), False, "no way up", "crossroads"),
        (
            at("cave_mouth"),
            decide("move", direction="in"),
            False,
            "needs a brass lantern",
            "cave_mouth",
        ),
        (at("cave_mouth", "lantern"), decide("move", direction="in"), True, "goes in", "deep_cave"),
        (at("inn"), decide("take", item="bread"), True, "takes a loaf of bread", "inn"),
        (at("inn"), decide("take", item="lantern"), False, "no such thing here", "inn"),
        (
            at("deep_cave"),
            decide("take", item="iron_chest"),
            False,
            "cannot be carried",
            "deep_cave",
        ),
        (at("inn"), decide("drop", item="rope"), False, "carries no such thing", "inn"),
        (at("inn"), decide("talk", npc="goblin"), False, "Nobody by that name", "inn"),
        (at("inn"), decide("use", item="rusty_key"), False, "no such thing at hand", "inn"),
        (at("inn"), decide("dance"), True, "takes a moment", "inn"),
    ],
)
def test_decisions_are_checked_against_the_world(state, decision, ok, summary, location):
    new, ruling = apply_decision(WORLD, state, decision)
    assert ruling.ok is ok and summary in ruling.summary
    assert new["location"] == location and new["turn"] == state["turn"] + 1
    assert state["turn"] == 0  # the old state is never changed in place


def test_items_move_between_the_room_and_the_player():
    taken, _ = apply_decision(WORLD, at("inn"), decide("take", item="bread"))
    assert taken["inventory"] == ["bread"] and "bread" not in taken["items"]["inn"]
    taken["location"] = "crossroads"
    dropped, ruling = apply_decision(WORLD, taken, decide("drop", item="bread"))
    assert ruling.ok and dropped["inventory"] == []
    assert dropped["items"]["crossroads"] == ["walking_stick", "bread"]


def test_an_action_involving_someone_present_addresses_them():
    _, ruling = apply_decision(
        WORLD, at("cave_mouth", "bread"), decide("use", item="bread", npc="goblin")
    )
    assert ruling.ok and ruling.npc == "goblin"
    _, ruling = apply_decision(WORLD, at("inn"), decide("look", npc="goblin"))
    assert ruling.npc is None  # the goblin is not at the inn


def test_attitudes_stay_on_the_scale():
    state = new_game(WORLD)
    assert adjust_attitude(state, "goblin", -1)["attitudes"]["goblin"] == -2
    assert adjust_attitude(state, "mara", 1)["attitudes"]["mara"] == 1
    assert state["attitudes"]["mara"] == 0


def test_the_scene_names_ids_in_brackets():
    scene = describe_scene(WORLD, at("cave_mouth", "bread"))
    assert "in [in] to the deep cave (needs a brass lantern)" in scene
    assert "Snitch the goblin [goblin], hostile to the player" in scene
    assert "The player carries: a loaf of bread [bread]" in scene


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n", ("move", "north", None, None)),
        ("Go North!", ("move", "north", None, None)),
        ("climb down", ("move", "down", None, None)),
        ("in", ("move", "in", None, None)),
        ("take the key", ("take", None, "rusty_key", None)),
        ("pick up lantern", ("take", None, "lantern", None)),
        ("drop the loaf", ("drop", None, "bread", None)),
        ("talk to Mara", ("talk", None, None, "mara")),
        ("speak with the hermit", ("talk", None, None, "hermit")),
        ("look", ("look", None, None, None)),
    ],
)
def test_plain_commands_need_no_model(text, expected):
    decision = parse_command(WORLD, text)
    assert decision is not None
    assert (decision.action, decision.direction, decision.item, decision.npc) == expected


@pytest.mark.parametrize(
    "text",
    ["go to the inn", "take", "take the sword", "ask Mara about her brother", "north east", ""],
)
def test_anything_else_goes_to_the_game_master(text):
    assert parse_command(WORLD, text) is None


@pytest.mark.parametrize(
    ("earlier", "first_kept"),
    [(0, None), (8, 0), (12, 0), (14, 6), (16, 6), (18, 6), (20, 12), (24, 12), (26, 18)],
)
def test_the_story_window_is_cut_at_fixed_points(earlier, first_kept):
    """With limit 12 the window starts at a multiple of 6 messages, so its beginning (and
    the replica's cached prefix) stays the same for three actions in a row."""
    messages = [{"role": "user", "content": str(i)} for i in range(earlier)]
    window = _history({"messages": [*messages, {"role": "user", "content": "now"}]}, 12)
    assert len(window) <= 12
    assert (window[0]["content"] if window else None) == (
        None if first_kept is None else str(first_kept)
    )
    assert _history({"messages": [*messages, {"role": "user", "content": "now"}]}, 0) == []
