"""voice_support's knowledge base and agents, without a model."""

from __future__ import annotations

import pytest

from spendgraph.agents import Tool
from spendgraph.examples.voice_support import SupportOptions
from spendgraph.examples.voice_support.agents import responder, verifier
from spendgraph.examples.voice_support.knowledge import KnowledgeBase, search_tool, terms
from spendgraph.examples.voice_support.replay import caller_turns

KB = KnowledgeBase.load()


def test_the_shipped_articles_load():
    assert len(KB.articles) == 14
    assert [a.id for a in KB.articles] == [f"KB-{n}" for n in range(101, 115)]
    article = KB.get("kb-101")
    assert article is not None and article.title == "Restarting the router"
    assert "reboot" in article.tags and article.body.startswith("Unplug the router's power")
    assert "Tags:" not in article.body and "\n" not in article.body


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("router light blinking orange", "KB-101"),
        ("forgot the admin password, reset button", "KB-102"),
        ("change wifi password", "KB-103"),
        ("outage compensation credit", "KB-105"),
        ("why is my first bill higher", "KB-106"),
        ("cancel early termination fee", "KB-109"),
        ("send the router back", "KB-111"),
        ("block sites for the children at bedtime", "KB-114"),
        ("what does KB-113 say", "KB-113"),
    ],
)
def test_search_finds_the_right_article_first(query, first):
    assert KB.search(query)[0].id == first


def test_search_tool_is_a_typed_tool_that_never_fails():
    tool = Tool.from_function(search_tool(KB))
    assert tool.name == "search_support_articles"
    assert set(tool.openai_schema()["function"]["parameters"]["properties"]) == {"query", "limit"}
    tool_fn = search_tool(KB)
    found = tool_fn("router blinking orange", 1)
    assert found.startswith("KB-101 | Restarting the router\n") and "KB-102" not in found
    assert found.count("KB-1") >= 1 and len(tool_fn("router", 99).split("\n\n")) <= 5
    missing = tool_fn("quiet harbor garden", 3)  # simulator-style nonsense
    assert missing.startswith("No article matches") and "KB-114 Parental controls" in missing


def test_terms_drop_stopwords_and_plurals():
    assert terms("What are the Fees for routers?") == ["fee", "router"]


def test_the_responder_knows_every_article_and_the_verifier_can_search():
    fast, strong = responder(KB), verifier(KB)
    assert fast.model == "fast" and strong.model == "large"
    assert all(a.id in fast.instructions for a in KB.articles)
    assert not fast.tools  # no lookup before the first spoken word
    assert [t.name for t in strong.tools] == ["search_support_articles"]


def test_the_scripted_call_has_twenty_turns():
    turns = caller_turns()
    assert len(turns) == 20 and all(t.strip() == t and t for t in turns)


def test_articles_without_headings_are_refused():
    with pytest.raises(ValueError, match="no articles found"):
        KnowledgeBase.parse("just some text")


def test_options_refuse_nonsense():
    with pytest.raises(ValueError, match="escalate_after"):
        SupportOptions(escalate_after=0)
    with pytest.raises(ValueError, match="history_limit"):
        SupportOptions(history_limit=-1)
