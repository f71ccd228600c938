"""Plain commands ("go north", "take the key", "talk to Mara") understood without a model.

The cheapest model call is the one not made: when the player types a classic
adventure command, the game master's decision is read straight from the words
and only the narrator (and a character, if addressed) runs. Anything else --
"ask the innkeeper about her brother" -- goes to the game master model.
"""

from __future__ import annotations

import re

from .world import Decision, WorldMap

ABBREVIATIONS = {"n": "north", "s": "south", "e": "east", "w": "west", "u": "up", "d": "down"}
MOVE_VERBS = ("go", "walk", "run", "head", "climb")
TAKE_VERBS = ("take", "get", "grab", "pick up")
DROP_VERBS = ("drop", "put down", "leave")
TALK_VERBS = ("talk to", "speak to", "speak with", "talk with", "greet")
LOOK_WORDS = ("look", "l", "look around")
FILLER = {"the", "a", "an", "some", "to", "with", "of"}


def parse_command(world: WorldMap, text: str) -> Decision | None:
    """The decision a plain command stands for, or None when it needs the game master."""
    words = re.sub(r"[^a-z ]", " ", text.lower()).split()
    phrase = " ".join(words)
    if phrase in LOOK_WORDS:
        return _decision("look", intent="look around")
    direction = _direction(world, words)
    if direction is not None:
        return _decision("move", direction=direction, intent=f"go {direction}")
    for action, verbs in (("take", TAKE_VERBS), ("drop", DROP_VERBS)):
        rest = _after_verb(phrase, verbs)
        item = _one_match(rest, _item_words(world)) if rest is not None else None
        if item is not None:
            return _decision(action, item=item, intent=f"{action} {item}")
    rest = _after_verb(phrase, TALK_VERBS)
    npc = _one_match(rest, _npc_words(world)) if rest is not None else None
    if npc is not None:
        return _decision("talk", npc=npc, intent=f"talk to {npc}")
    return None


def _decision(action: str, **fields: str) -> Decision:
    values = {"direction": None, "item": None, "npc": None, "intent": "", **fields}
    return Decision(action=action, **values)


def _direction(world: WorldMap, words: list[str]) -> str | None:
    """``north``, ``n``, ``go north``, ``climb down``: a bare or verb-led direction word."""
    if words and words[0] in MOVE_VERBS:
        words = words[1:]
    if len(words) != 1:
        return None
    word = ABBREVIATIONS.get(words[0], words[0])
    return word if word in world.directions() else None


def _after_verb(phrase: str, verbs: tuple[str, ...]) -> str | None:
    for verb in verbs:
        if phrase == verb or phrase.startswith(verb + " "):
            return phrase[len(verb) :].strip()
    return None


def _one_match(rest: str, vocabulary: dict[str, set[str]]) -> str | None:
    """The one id whose words include every word of ``rest`` (``the key`` -> rusty_key)."""
    wanted = set(rest.split()) - FILLER
    if not wanted:
        return None
    hits = [key for key, words in vocabulary.items() if wanted <= words]
    return hits[0] if len(hits) == 1 else None


def _item_words(world: WorldMap) -> dict[str, set[str]]:
    return {i.id: set(i.id.split("_")) | set(i.name.lower().split()) for i in world.items.values()}


def _npc_words(world: WorldMap) -> dict[str, set[str]]:
    return {
        n.id: {n.id, *re.sub(r"[^a-z ]", " ", n.name.lower()).split()} for n in world.npcs.values()
    }
