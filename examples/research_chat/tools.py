"""The specialists' tools: plain typed functions with docstrings, bound to the loaded data.

The model reads each docstring to decide when to call the tool, and the
argument schema comes from the type hints. A tool answers problems in text
("no document ...") instead of raising: the model can then try again.
"""

from __future__ import annotations

from dataclasses import dataclass

from spendgraph.agents import Tool

from .calculator import CalculationError, evaluate, format_number
from .corpus import Corpus, Glossary

MAX_RESULTS = 5


@dataclass(frozen=True, slots=True)
class ResearchTools:
    """The tools, each a :class:`Tool` closed over the corpus or glossary it reads."""

    search_corpus: Tool
    read_document: Tool
    define_term: Tool
    calculate: Tool


def make_tools(corpus: Corpus, glossary: Glossary) -> ResearchTools:
    """Tools over ``corpus`` and ``glossary``."""

    def search_corpus(query: str, limit: int = 3) -> str:
        """Search the research library and return the best documents with a matching passage.

        Args:
            query: keywords or a short question, e.g. "NVFP4 cost per token"
            limit: how many documents to return (1-5)
        """
        hits = corpus.search(query, limit=max(1, min(limit, MAX_RESULTS)))
        if not hits:
            return f"No document matches {query!r}. Try other keywords."
        return "\n\n".join(f"[{h.document.id}] {h.document.title}\n{h.snippet}" for h in hits)

    def read_document(doc_id: str) -> str:
        """Read one whole document of the research library by its id (as shown in [brackets]).

        Args:
            doc_id: the document id, e.g. "pricing-basics"
        """
        document = corpus.get(doc_id)
        if document is None:
            known = ", ".join(d.id for d in corpus.documents)
            return f"No document {doc_id!r}. Known ids: {known}"
        return f"[{document.id}] {document.title}\n\n{document.text}"

    def define_term(term: str) -> str:
        """Look up the one-line definition of a technical term in the glossary.

        Args:
            term: the term, e.g. "TTFT" or "prefix cache"
        """
        definition = glossary.define(term)
        if definition is not None:
            return f"{term}: {definition}"
        close = glossary.close_terms(term)
        hint = f" Close terms: {', '.join(close)}." if close else ""
        return f"{term!r} is not in the glossary.{hint}"

    return ResearchTools(
        search_corpus=Tool.from_function(search_corpus),
        read_document=Tool.from_function(read_document),
        define_term=Tool.from_function(define_term),
        calculate=Tool.from_function(calculate),
    )


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly; use it for every number you compute.

    Supports + - * / // % ** (or ^), parentheses, pi, e and the functions
    abs, round, min, max, sqrt, log, log10, exp, ceil, floor.

    Args:
        expression: e.g. "5.40 / (30000 * 3600) * 1e6"
    """
    try:
        return f"{expression.strip()} = {format_number(evaluate(expression))}"
    except CalculationError as exc:
        return f"error: {exc}"
