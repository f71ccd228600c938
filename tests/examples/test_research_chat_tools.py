"""research_chat's tools: the safe calculator, the corpus search and the glossary."""

from __future__ import annotations

import math

import pytest

from spendgraph.examples.research_chat.calculator import (
    MAX_EXPRESSION_CHARS,
    CalculationError,
    evaluate,
    format_number,
)
from spendgraph.examples.research_chat.corpus import Corpus, Glossary
from spendgraph.examples.research_chat.tools import calculate, make_tools

CORPUS = Corpus.load()
GLOSSARY = Glossary.load()


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ** 10", 1024),
        ("2 ^ 10", 1024),  # what people (and models) type for powers
        ("-3 + +4", 1),
        ("7 // 2 + 7 % 2", 4),
        ("5.40 / (30000 * 3600) * 1e6", 0.05),
        ("(3 * 0.16 + 0.32) / 4", 0.2),
        ("sqrt(16) + abs(-2) + max(1, 5) + min(3, 4) + round(2.6)", 4 + 2 + 5 + 3 + 3),
        ("log10(1000) + ceil(0.2) + floor(1.8)", 5),
        ("pi", math.pi),
    ],
)
def test_the_calculator_evaluates_arithmetic(expression, value):
    assert evaluate(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('true')", "not a known function"),
        ("().__class__", "not allowed"),
        ("open('/etc/passwd')", "not a known function"),
        ("x + 1", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("[1, 2][0]", "not allowed"),
        ("1 < 2", "not allowed"),
        ("'a' * 3", "not allowed"),
        ("True + 1", "not allowed"),
        ("round(2.5, ndigits=1)", "not a known function"),
        ("9 ** 9 ** 9", "exponents above"),
        ("10 ** 400", "too large"),
        ("(-8) ** 0.5", "not a real number"),
        ("1 / 0", "cannot compute"),
        ("sqrt(-1)", "cannot compute"),
        ("min()", "cannot compute"),
        ("1 +", "not an arithmetic expression"),
        ("", "empty"),
        ("1+" * MAX_EXPRESSION_CHARS + "1", "longer than"),
    ],
)
def test_the_calculator_refuses_everything_else(expression, message):
    with pytest.raises(CalculationError, match=message):
        evaluate(expression)


def test_the_calculator_tool_answers_in_text():
    assert calculate("5.40 / (30000 * 3600) * 1e6") == "5.40 / (30000 * 3600) * 1e6 = 0.05"
    assert calculate("steady model").startswith("error: ")
    assert format_number(2.0) == "2" and format_number(1 / 3) == "0.333333333333"


def test_the_corpus_search_ranks_relevant_documents_first():
    assert len(CORPUS.documents) >= 12
    assert CORPUS.search("NVFP4 quantization accuracy")[0].document.id == "quantization"
    assert CORPUS.search("prefix cache hit conversation")[0].document.id == "kv-cache"
    assert CORPUS.search("price of a GPU hour")[0].document.id == "cost-derivation"
    hit = CORPUS.search("Jevons paradox")[0]
    assert hit.document.id == "history" and "Jevons" in hit.snippet
    assert CORPUS.search("the of and") == [] and CORPUS.search("zzzz") == []
    assert len(CORPUS.search("tokens", limit=2)) == 2


def test_the_tools_read_documents_and_define_terms():
    tools = make_tools(CORPUS, GLOSSARY)
    search = tools.search_corpus.function
    assert search("speculative decoding", limit=1).startswith("[speculative-decoding]")
    assert "No document matches" in search("zzzz")
    read = tools.read_document.function
    assert read("moe").startswith("[moe] Mixture-of-experts models")
    assert "Known ids: pricing-basics" in read("nope")
    define = tools.define_term.function
    assert define("TTFT").startswith("TTFT: Time to first token")
    assert "Close terms: prefix cache" in define("prefix caches")
    schema = tools.search_corpus.openai_schema()["function"]
    assert schema["name"] == "search_corpus" and "query" in schema["parameters"]["properties"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# no documents here\n", "no '## id: Title' headings"),
        ("## a: One\n\nx\n\n## a: Two\n\ny\n", "unique: a"),
    ],
)
def test_a_broken_corpus_names_the_problem(tmp_path, text, message):
    path = tmp_path / "corpus.md"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        Corpus.load(path)
