"""The dungeon's world: its fixed map (``world.toml``) and the state each game changes.

Two halves:

* :class:`WorldMap` -- what never changes while playing: locations and their
  exits, items, characters. Loaded from ``world.toml`` (package data) and
  checked for consistency once, so a typo in the data fails at start-up with
  the file and key named, not in the middle of a game.
* the *world state* -- what a game changes: where the player is, what they
  carry, what lies where, how each character feels about the player, the turn
  number. It is plain JSON data (a dict) so it lives in the graph state and
  the checkpointer saves it with the game's thread.

Models never change the world state directly. The game master proposes a
:class:`Decision` (its output schema lists only known ids), and
:func:`apply_decision` checks it against the map and the current state: only
legal moves happen, everything else becomes a refusal the narrator tells.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

ACTIONS = ("look", "move", "take", "drop", "talk", "use", "wait")
ATTITUDES = {-2: "hostile", -1: "wary", 0: "neutral", 1: "friendly", 2: "devoted"}
MIN_ATTITUDE, MAX_ATTITUDE = min(ATTITUDES), max(ATTITUDES)
WORLD_FILE = "world.toml"


class WorldError(ValueError):
    """The world data is inconsistent (names the file and the key)."""


@dataclass(frozen=True, slots=True)
class Location:
    id: str
    name: str
    description: str
    exits: Mapping[str, str]  # direction -> location id
    needs: Mapping[str, str]  # direction -> item id the player must carry
    items: tuple[str, ...]  # what lies here when a game starts


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    name: str
    description: str
    portable: bool = True


@dataclass(frozen=True, slots=True)
class Npc:
    id: str
    name: str
    location: str
    attitude: int
    persona: str


@dataclass(frozen=True, slots=True)
class WorldMap:
    """The fixed world: locations, items and characters by id, and the starting location."""

    start: str
    locations: Mapping[str, Location]
    items: Mapping[str, Item]
    npcs: Mapping[str, Npc]

    @classmethod
    def load(cls) -> WorldMap:
        """The world shipped with this example (``world.toml`` next to this module)."""
        text = resources.files(__package__).joinpath(WORLD_FILE).read_text(encoding="utf-8")
        return cls.parse(text, source=WORLD_FILE)

    @classmethod
    def parse(cls, text: str, *, source: str = "<world>") -> WorldMap:
        """A world from TOML text; :class:`WorldError` if it refers to anything unknown."""
        try:
            data = tomllib.loads(text)
            world = cls(
                start=data["start"],
                locations=_frozen({k: _location(k, v) for k, v in data["locations"].items()}),
                items=_frozen({k: _item(k, v) for k, v in data.get("items", {}).items()}),
                npcs=_frozen({k: _npc(k, v) for k, v in data.get("npcs", {}).items()}),
            )
        except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raise WorldError(f"{source}: cannot read the world: {problem}") from None
        problems = world.problems()
        if problems:
            raise WorldError(f"{source}: " + "; ".join(problems))
        return world

    def problems(self) -> list[str]:
        """Every reference to an unknown location, item or direction."""
        found = [] if self.start in self.locations else [f"start: unknown location {self.start!r}"]
        for place in self.locations.values():
            where = f"locations.{place.id}"
            found += [
                f"{where}.exits.{d}: unknown location {to!r}"
                for d, to in place.exits.items()
                if to not in self.locations
            ]
            found += [
                f"{where}.needs.{d}: no such exit, or unknown item {item!r}"
                for d, item in place.needs.items()
                if d not in place.exits or item not in self.items
            ]
            found += [
                f"{where}.items: unknown item {i!r}" for i in place.items if i not in self.items
            ]
        for npc in self.npcs.values():
            if npc.location not in self.locations:
                found.append(f"npcs.{npc.id}.location: unknown location {npc.location!r}")
            if npc.attitude not in ATTITUDES:
                found.append(f"npcs.{npc.id}.attitude: must be between -2 and 2")
        return found

    def directions(self) -> tuple[str, ...]:
        """Every direction word some exit uses (the game master's choices for a move)."""
        return tuple(sorted({d for place in self.locations.values() for d in place.exits}))

    def npcs_at(self, location: str) -> list[Npc]:
        return [npc for npc in self.npcs.values() if npc.location == location]


def _frozen(mapping: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(mapping)


def _location(key: str, data: Mapping[str, Any]) -> Location:
    return Location(
        id=key,
        name=data["name"],
        description=data["description"],
        exits=_frozen(dict(data.get("exits", {}))),
        needs=_frozen(dict(data.get("needs", {}))),
        items=tuple(data.get("items", ())),
    )


def _item(key: str, data: Mapping[str, Any]) -> Item:
    return Item(key, data["name"], data["description"], bool(data.get("portable", True)))


def _npc(key: str, data: Mapping[str, Any]) -> Npc:
    return Npc(key, data["name"], data["location"], int(data.get("attitude", 0)), data["persona"])


# -- the game master's proposal ------------------------------------------------


class Decision(BaseModel):
    """What the game master makes of the player's input (the ids come from the world)."""

    action: str
    direction: str | None
    item: str | None
    npc: str | None
    intent: str


def decision_model(world: WorldMap) -> type[BaseModel]:
    """The game master's output schema, with this world's ids as enums.

    Listing the ids in the schema means a server with constrained decoding
    (vLLM, SGLang, TensorRT-LLM guided JSON) can only produce known ids; the
    code still checks every decision against the current state. The returned
    class parses into the same fields as :class:`Decision`.
    """

    def choice(values: tuple[str, ...], what: str) -> Any:
        kind = Literal[values] if values else str  # type: ignore[valid-type]
        return (kind | None, Field(description=what))

    return create_model(
        "GameMasterDecision",
        __doc__="The one action the player's input amounts to.",
        action=(Literal[ACTIONS], Field(description="the kind of action")),  # type: ignore[valid-type]
        direction=choice(world.directions(), "for move: the exit's direction, else null"),
        item=choice(tuple(world.items), "for take, drop, use: the item's id, else null"),
        npc=choice(tuple(world.npcs), "for talk (or using an item on someone): their id"),
        intent=(str, Field(description="the player's intention in a few plain words")),
    )


# -- the state a game changes ----------------------------------------------------


def new_game(world: WorldMap) -> dict[str, Any]:
    """The world state at the start of a game."""
    return {
        "location": world.start,
        "inventory": [],
        "items": {place.id: list(place.items) for place in world.locations.values()},
        "attitudes": {npc.id: npc.attitude for npc in world.npcs.values()},
        "visited": [world.start],
        "turn": 0,
    }


@dataclass(frozen=True, slots=True)
class Ruling:
    """What the code made of a decision: done (``ok``) or refused, in words for the narrator."""

    action: str
    ok: bool
    summary: str
    npc: str | None = None  # the character this action involves, if they are here

    def to_state(self) -> dict[str, Any]:
        return {"action": self.action, "ok": self.ok, "summary": self.summary, "npc": self.npc}


def apply_decision(
    world: WorldMap, state: Mapping[str, Any], decision: Decision
) -> tuple[dict[str, Any], Ruling]:
    """The world state after ``decision`` (a new dict) and the ruling on it.

    Only legal changes happen: a move needs an exit that way (and any item it
    needs), a take needs a portable item lying here, a drop or use an item at
    hand, a talk someone who is here. The turn counter always advances.
    """
    new = copy.deepcopy(dict(state))
    new["turn"] = int(new.get("turn", 0)) + 1
    handler = _HANDLERS.get(decision.action, _look)
    ruling = handler(world, new, decision)
    npc = decision.npc
    if npc in world.npcs and world.npcs[npc].location == new["location"] and ruling.npc is None:
        ruling = Ruling(ruling.action, ruling.ok, ruling.summary, npc)
    return new, ruling


def _move(world: WorldMap, state: dict[str, Any], decision: Decision) -> Ruling:
    here = world.locations[state["location"]]
    direction = decision.direction or ""
    if direction not in here.exits:
        ways = ", ".join(here.exits) or "none"
        return Ruling("move", False, f"There is no way {direction or 'there'}; exits: {ways}.")
    needed = here.needs.get(direction)
    if needed and needed not in state["inventory"]:
        item = world.items[needed].name
        return Ruling("move", False, f"Going {direction} needs {item}, which the player lacks.")
    target = world.locations[here.exits[direction]]
    state["location"] = target.id
    if target.id not in state["visited"]:
        state["visited"].append(target.id)
    return Ruling("move", True, f"The player goes {direction} to {target.name}.")


def _take(world: WorldMap, state: dict[str, Any], decision: Decision) -> Ruling:
    item_id, here = decision.item, state["items"].setdefault(state["location"], [])
    if item_id not in here:
        return Ruling("take", False, "There is no such thing here to take.")
    item = world.items[item_id]
    if not item.portable:
        return Ruling("take", False, f"{item.name.capitalize()} cannot be carried.")
    here.remove(item_id)
    state["inventory"].append(item_id)
    return Ruling("take", True, f"The player takes {item.name}.")


def _drop(world: WorldMap, state: dict[str, Any], decision: Decision) -> Ruling:
    item_id = decision.item
    if item_id not in state["inventory"]:
        return Ruling("drop", False, "The player carries no such thing.")
    state["inventory"].remove(item_id)
    state["items"].setdefault(state["location"], []).append(item_id)
    return Ruling("drop", True, f"The player drops {world.items[item_id].name}.")


def _use(world: WorldMap, state: dict[str, Any], decision: Decision) -> Ruling:
    item_id = decision.item
    at_hand = state["inventory"] + state["items"].get(state["location"], [])
    if item_id not in at_hand:
        return Ruling("use", False, "The player has no such thing at hand.")
    return Ruling("use", True, f"The player uses {world.items[item_id].name}: {decision.intent}.")


def _talk(world: WorldMap, state: dict[str, Any], decision: Decision) -> Ruling:
    npc = world.npcs.get(decision.npc or "")
    if npc is None or npc.location != state["location"]:
        return Ruling("talk", False, "Nobody by that name is here.")
    return Ruling("talk", True, f"The player speaks to {npc.name}.", npc=npc.id)


def _look(world: WorldMap, state: dict[str, Any], decision: Decision) -> Ruling:
    action = decision.action if decision.action in ACTIONS else "look"
    return Ruling(action, True, f"The player takes a moment ({decision.intent}).")


_HANDLERS = {"move": _move, "take": _take, "drop": _drop, "use": _use, "talk": _talk}


def adjust_attitude(state: Mapping[str, Any], npc: str, change: int) -> dict[str, Any]:
    """The world state with ``npc``'s attitude moved by ``change``, kept within the scale."""
    new = copy.deepcopy(dict(state))
    current = int(new["attitudes"].get(npc, 0))
    new["attitudes"][npc] = max(MIN_ATTITUDE, min(MAX_ATTITUDE, current + change))
    return new


def describe_scene(world: WorldMap, state: Mapping[str, Any]) -> str:
    """The current scene as the models see it: place, exits, items, people, inventory.

    Ids are given in brackets so the game master can answer with them.
    """
    here = world.locations[state["location"]]
    exits = "; ".join(
        f"{d} [{d}] to {world.locations[to].name}"
        + (f" (needs {world.items[here.needs[d]].name})" if d in here.needs else "")
        for d, to in here.exits.items()
    )
    lying = [world.items[i] for i in state["items"].get(here.id, [])]
    people = [
        f"{npc.name} [{npc.id}], {ATTITUDES[state['attitudes'].get(npc.id, 0)]} to the player"
        for npc in world.npcs_at(here.id)
    ]
    carried = [world.items[i] for i in state["inventory"]]
    return "\n".join(
        [
            f"Location: {here.name}. {here.description}",
            f"Exits: {exits or 'none'}",
            "Items here: " + (", ".join(f"{i.name} [{i.id}]" for i in lying) or "nothing"),
            "People here: " + ("; ".join(people) or "nobody"),
            "The player carries: "
            + (", ".join(f"{i.name} [{i.id}]" for i in carried) or "nothing"),
            f"Turn: {state.get('turn', 0)}",
        ]
    )
