"""The research panel: a planner, twelve specialists and a synthesizer.

Each specialist's first instruction line is what the planner sees about it
(``fanout`` lists the panel in the planner's prompt), so keep it a one-line
job description. Tiers: planner and synthesizer ask for ``large`` (planning
and writing the final answer are the hard parts), specialists for
``default``; map both in spendgraph.toml.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from spendgraph.agents import Agent, Tool
from spendgraph.graph import FanoutOptions

from .tools import ResearchTools

# A chat user waits for the answer, but a research answer may take a few
# seconds: these targets matter on tiers routed by cheapest_within_slo.
SPECIALIST_LATENCY_MS = 8_000.0
LEAD_LATENCY_MS = 15_000.0
# A specialist with tools gets at most this many model calls per turn (the
# last one without tools, so it must answer): it bounds a tool loop's cost.
MAX_TOOL_STEPS = 3
# Output caps. Besides bounding answers they size each call's budget
# reservation (prompt + max_tokens at the output price), so a tight cap lets a
# budget fund more of the fan-out at once.
PLANNER_MAX_TOKENS = 900
SPECIALIST_MAX_TOKENS = 350
SYNTHESIZER_MAX_TOKENS = 700

SPECIALIST_RULES = """\
Answer only your sub-question, in at most 120 words, starting with the answer itself.
Use your tools when you have them and cite library documents by id in [brackets].
Say plainly when you are unsure or the library does not cover it. Never invent figures."""

PLANNER_INSTRUCTIONS = """\
You are the research lead. Break the user's question into focused sub-questions and give
each one to the specialist best placed to answer it.
- Assign between {low} and {high} sub-questions, at most one per specialist. The panel
  works in parallel: breadth costs money, not time, so skip a specialist only when it has
  nothing real to add.
- Each sub-question must stand on its own: a specialist sees the user's question and its
  own sub-question, not the others.
- Send look-ups to the fact_finder, any arithmetic (with its numbers) to the calculator,
  and the claim most likely to be wrong to the skeptic.
Answer with the JSON object the schema describes."""

SYNTHESIZER_INSTRUCTIONS = """\
You are the editor. Write the final answer to the user's question from the specialists'
answers above.
- Open with the direct answer in one or two sentences.
- Then the supporting points, merging overlaps. Keep every figure with its source: a
  document id in [brackets] or the specialist who computed it.
- Where specialists disagree, or the skeptic raised a doubt, say so and say which view the
  evidence favours.
- Leave out what does not answer the question. At most 250 words, in Markdown.
- End with a line "Sources:" listing the document ids cited."""

# name, one-line role (the planner's menu), how to do the job
_PANEL: tuple[tuple[str, str, str], ...] = (
    (
        "fact_finder",
        "Finds facts in the research library and quotes them with document ids.",
        "Search the library, read the most relevant document if the passage is not enough, "
        "and report the facts that answer the sub-question with their [ids].",
    ),
    (
        "calculator",
        "Does the arithmetic: prices, unit conversions, ratios and totals, with a calculator.",
        "Write the computation out, run every number through the calculate tool, and give "
        "the result with its units. State each input number and where it came from.",
    ),
    (
        "code_explainer",
        "Explains code, formulas and configuration snippets step by step.",
        "Walk through the formula or code in order, say what each part does and why, and "
        "point out the usual mistake people make with it.",
    ),
    (
        "skeptic",
        "Challenges assumptions and names what could make the answer wrong.",
        "Name the weakest assumption behind the question or the likely answer, what evidence "
        "would settle it, and how large the error could be.",
    ),
    (
        "historian",
        "Puts the topic in historical context: how it developed and what changed.",
        "Give the short timeline that matters for the question, from the library where it "
        "covers it, and say which change explains today's situation.",
    ),
    (
        "economist",
        "Analyses costs, prices, incentives and trade-offs.",
        "Identify who pays for what, what drives the cost, and the trade-off a decision "
        "maker faces. Use the calculator for any figure.",
    ),
    (
        "statistician",
        "Judges numbers and measurements: percentiles, variance, sample sizes, fair comparisons.",
        "Say whether the numbers involved are measured fairly and comparably, what spread to "
        "expect, and what a sound measurement would look like.",
    ),
    (
        "ethicist",
        "Raises ethical, privacy, fairness and environmental considerations.",
        "Name the one or two considerations that matter most for this question and a "
        "practical way to address each.",
    ),
    (
        "glossary",
        "Defines the technical terms the question and the answers rely on.",
        "Pick the two to four terms a reader must know, look each up, and define it in one line.",
    ),
    (
        "summarizer",
        "Summarises the library's background on the topic in three bullet points.",
        "Search the library and condense what it says about the topic into three bullets "
        "with [ids].",
    ),
    (
        "engineer",
        "Explains how it works in practice: hardware, serving software and deployment.",
        "Describe the mechanism that drives the answer (memory, bandwidth, batching, "
        "caching...) and what an operator would configure or measure.",
    ),
    (
        "forecaster",
        "Estimates where the numbers are heading and what would change the picture.",
        "Give the likely direction over the next year or two, the main driver, and the "
        "signal that would prove the forecast wrong. Label it as an estimate.",
    ),
)


@dataclass(frozen=True, slots=True)
class Panel:
    """Everyone ``fanout`` needs: the planner, the specialists and the synthesizer."""

    planner: Agent
    specialists: tuple[Agent, ...]
    synthesizer: Agent


def make_panel(tools: ResearchTools, options: FanoutOptions) -> Panel:
    """The agents, with tools handed to the specialists that use them.

    ``options`` bounds the planner's task list; its instructions quote the bounds.
    """
    toolbox: dict[str, Sequence[Tool]] = {
        "fact_finder": (tools.search_corpus, tools.read_document),
        "calculator": (tools.calculate,),
        "historian": (tools.search_corpus,),
        "economist": (tools.search_corpus, tools.calculate),
        "statistician": (tools.calculate,),
        "glossary": (tools.define_term,),
        "summarizer": (tools.search_corpus,),
        "engineer": (tools.search_corpus,),
    }
    specialists = tuple(
        Agent(
            name,
            f"{role}\n\n{method}\n\n{SPECIALIST_RULES}",
            model="default",
            tools=toolbox.get(name, ()),
            max_tokens=SPECIALIST_MAX_TOKENS,
            temperature=0.3,
            latency_target_ms=SPECIALIST_LATENCY_MS,
            max_steps=MAX_TOOL_STEPS,
        )
        for name, role, method in _PANEL
    )
    low, high = options.task_bounds(len(specialists))
    planner = Agent(
        "planner",
        PLANNER_INSTRUCTIONS.format(low=low, high=high),
        model="large",
        max_tokens=PLANNER_MAX_TOKENS,
        temperature=0.0,
        latency_target_ms=LEAD_LATENCY_MS,
    )
    synthesizer = Agent(
        "synthesizer",
        SYNTHESIZER_INSTRUCTIONS,
        model="large",
        max_tokens=SYNTHESIZER_MAX_TOKENS,
        temperature=0.3,
        latency_target_ms=LEAD_LATENCY_MS,
    )
    return Panel(planner, specialists, synthesizer)
