"""``spendgraph.graph`` is the one module an app imports: agents, builders, App, runs."""

from __future__ import annotations

import inspect

import spendgraph.graph as facade
from spendgraph.graph import Agent, App, pipeline, run_graph
from spendgraph.providers.ledger.records import QueryStatus


def test_every_public_name_is_there_and_says_how_to_use_it():
    missing = [name for name in facade.__all__ if not hasattr(facade, name)]
    assert missing == []
    documented = [
        name
        for name in facade.__all__
        if (inspect.isclass(getattr(facade, name)) or inspect.isfunction(getattr(facade, name)))
        and not inspect.getdoc(getattr(facade, name))
    ]
    assert documented == []


# The whole app: one import line above, nothing else from spendgraph.
APP = App(
    name="notes",
    description="A scribe writes a note; a reviewer checks it.",
    build=lambda: pipeline(
        [
            Agent("scribe", "Write a short note.", max_tokens=24),
            Agent("reviewer", "Check the note.", max_tokens=24),
        ]
    ),
)


async def test_a_two_agent_app_from_the_facade_alone_runs(layer, ledger_rows):
    result = await run_graph(APP.build(), layer, "sore throat", options=APP.run_options())
    assert result.status is QueryStatus.OK
    assert [o.agent for o in result.outputs] == ["scribe", "reviewer"]
    assert result.answer == result.outputs[-1].content
    rows = ledger_rows(result)
    assert [row.agent_path for row in rows] == ["scribe", "reviewer"]
