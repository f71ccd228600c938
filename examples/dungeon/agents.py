"""The dungeon's agents: a game master, one agent per character, and the narrator.

Each agent asks for a *tier*, not a model, so the config decides where it
runs: the narrator writes most of the tokens and gets ``large`` (meant for a
big mixture-of-experts model on the cheapest capable pool -- Blackwell NVFP4
in the example config); the game master only classifies the input into a
small JSON object (``default``); the characters speak a line or two each
(``small``). Change a tier here to move an agent to other hardware.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from spendgraph.agents import Agent

from .world import WorldMap, decision_model

NARRATOR_TIER = "large"
GAME_MASTER_TIER = "default"
NPC_TIER = "small"
# The narration streams, so the player waits only for its first token. A tier
# with policy "cheapest_within_slo" honours this target; "cheapest" ignores it.
NARRATOR_LATENCY_TARGET_MS = 1500

GAME_MASTER_INSTRUCTIONS = """\
You are the game master of a text adventure. You do not tell the story; you decide \
what the player's input amounts to, as ONE action, and answer with JSON only.

Actions:
- look: the player looks around or examines something (also anything you cannot map).
- move: the player goes somewhere. Set "direction" to one of the exits listed in the \
scene (for "go to the inn", pick the exit that leads there).
- take / drop: set "item" to the item's id in brackets.
- use: the player uses an item they carry or that lies here; set "item" (and "npc" \
when they use it on or give it to someone here).
- talk: the player speaks to someone; set "npc" to the id of a person who is here.
- wait: the player does nothing in particular.

Rules: use only ids that appear in brackets in the scene. Never invent exits, items or \
people. Fields that do not apply are null. "intent" restates the player's intention in \
a few plain words. The game's code checks your decision; if it is impossible the \
player is told so, so do not refuse actions yourself."""

NARRATOR_INSTRUCTIONS = """\
You are the narrator of a dark-fairytale text adventure. Write in the second person, \
present tense ("You push the door..."), two to four sentences, vivid but brief.

You are given the player's action, the game's ruling on it, any character's reply, \
and the scene as it now is. Narrate exactly what the ruling says happened: if the \
ruling refuses the action, tell the player in-world why it does not work. Quote a \
character's reply as they said it. Mention only exits, items and people listed in \
the scene -- never invent new ones, never grant items the player does not have. End \
with one concrete detail that invites the next action. Plain prose: no lists, no \
headings, no game-mechanics words like "ruling" or "inventory"."""

NPC_INSTRUCTIONS = """\
You play {name} in a text adventure. Stay in character at all times.

Who you are: {persona}

Answer with JSON: "says" is what you say to the player -- one to three sentences, \
spoken words only, in your own voice; "attitude_change" is how this exchange changes \
your feeling towards the player: 1 warmer, -1 colder, 0 unchanged. You only know what \
your character knows and what you see in the scene. Your current attitude towards the \
player is given in the scene; let it colour how you speak."""


class NpcReply(BaseModel):
    """A character's answer: a spoken line and how their attitude to the player moves."""

    says: str = Field(description="what the character says, one to three sentences")
    attitude_change: int = Field(ge=-1, le=1, description="1 warmer, -1 colder, 0 unchanged")


def game_master(world: WorldMap) -> Agent:
    """Classifies the player's input into one validated action (structured output)."""
    return Agent(
        "game_master",
        GAME_MASTER_INSTRUCTIONS,
        model=GAME_MASTER_TIER,
        output=decision_model(world),
        max_tokens=160,
        temperature=0.0,
    )


def narrator() -> Agent:
    """Writes the prose the player reads: the only agent whose text is the answer."""
    return Agent(
        "narrator",
        NARRATOR_INSTRUCTIONS,
        model=NARRATOR_TIER,
        max_tokens=300,
        temperature=0.8,
        latency_target_ms=NARRATOR_LATENCY_TARGET_MS,
    )


def npc_agents(world: WorldMap) -> dict[str, Agent]:
    """One agent per character, by character id (agent names: ``npc_<id>``)."""
    return {
        npc.id: Agent(
            f"npc_{npc.id}",
            NPC_INSTRUCTIONS.format(name=npc.name, persona=npc.persona),
            model=NPC_TIER,
            output=NpcReply,
            max_tokens=160,
            temperature=0.9,
        )
        for npc in world.npcs.values()
    }
