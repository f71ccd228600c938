"""voice_support's two agents: a fast responder that speaks, a strong verifier that checks.

The responder asks for the ``fast`` tier (a small model; in the example config
``cheapest_within_slo`` with a 400 ms first-token target and prefix
affinity). Its system prompt holds the whole knowledge base, so it can answer
in one pass: a tool call before the first word would cost a full model round
trip. The verifier asks for ``large`` and has the search tool: it runs while
the draft is already being spoken, so it can afford to look things up.
"""

from __future__ import annotations

from spendgraph.agents import Agent

from .knowledge import KnowledgeBase, search_tool

RESPONDER_TIER = "fast"
VERIFIER_TIER = "large"

RESPONDER_INSTRUCTIONS = """\
You are Brightwave's voice support assistant, on the phone with a customer. Your \
words are turned into speech while you write them, so:

- Start with the most useful sentence. Greet only on the first turn; no filler \
("Great question", "Certainly").
- Speak in two or three short sentences, under sixty words. No lists, markdown, \
links or symbols.
- Troubleshoot one step at a time and ask the caller to tell you when it is done.
- Use only facts from the knowledge base below. If it does not cover the question, \
say you will check with a colleague. Never guess prices, fees, dates or policies.
- Never ask for a password or a full card number. Before any account change \
(plan, cancellation, address, payment details) do the identity check in KB-113.
- If the caller asks for a person, say you are transferring them now.

Knowledge base:

{articles}"""

VERIFIER_INSTRUCTIONS = """\
You are the quality checker behind Brightwave's voice support assistant. The \
assistant answers callers fast with a small model; you check each answer against \
the knowledge base with the search_support_articles tool (search for the topic, \
or for an article id such as KB-109).

When checking a draft: reject it (accepted = false) if it states a fact, price, \
time limit or step that the articles do not support, contradicts them, skips the \
identity check before an account change, asks for a password or full card number, \
or does not address what the caller asked. Accept answers that are short, correct \
and partial: brevity is intended on the phone. In "problems", name the article id \
and what is wrong, in one or two sentences.

When asked to write a corrected answer: follow the same voice rules as the \
assistant -- two or three short spoken sentences, no lists or links, start with \
"Sorry, let me correct that:" -- and use only facts from the articles."""


def responder(kb: KnowledgeBase) -> Agent:
    """The fast agent: answers within the first-token budget, knowledge base in its prompt."""
    return Agent(
        "responder",
        RESPONDER_INSTRUCTIONS.format(articles=kb.as_prompt()),
        model=RESPONDER_TIER,
        max_tokens=120,
        temperature=0.3,
    )


def verifier(kb: KnowledgeBase) -> Agent:
    """The strong agent: checks the draft (and corrects it) with the search tool."""
    return Agent(
        "verifier",
        VERIFIER_INSTRUCTIONS,
        model=VERIFIER_TIER,
        tools=[search_tool(kb)],
        max_tokens=300,
        temperature=0.0,
        max_steps=3,
    )
