"""The fact-finder's library: Markdown documents searched with BM25, plus a glossary.

``corpus.md`` holds the documents (each starts with a ``## id: Title``
heading); ``glossary.json`` maps terms to one-line definitions. Replace both
with your own material. BM25 in a few lines of Python is plenty for a few
hundred documents; for more, put a real search index behind the same tool
functions (see tools.py).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path

HERE = Path(__file__).parent
CORPUS_FILE = HERE / "corpus.md"
GLOSSARY_FILE = HERE / "glossary.json"
_HEADING = re.compile(r"^## ([a-z0-9][a-z0-9-]*): (.+)$", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "is",
        "it", "its", "of", "on", "or", "so", "that", "the", "their", "this", "to", "was",
        "what", "when", "which", "why", "with",
    }
)  # fmt: skip
# BM25's usual constants: term-frequency saturation and length normalisation.
_K1, _B = 1.5, 0.75


def terms(text: str) -> list[str]:
    """Lower-case words of ``text`` without stopwords."""
    return [word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]


@dataclass(frozen=True, slots=True)
class Document:
    """One document of the corpus."""

    id: str
    title: str
    text: str

    def paragraphs(self) -> list[str]:
        return [p.strip() for p in self.text.split("\n\n") if p.strip()]


@dataclass(frozen=True, slots=True)
class Hit:
    """A search result: the document, its score and its best-matching paragraph."""

    document: Document
    score: float
    snippet: str


@dataclass(frozen=True, slots=True)
class Corpus:
    """Documents with a BM25 index built once, when the corpus is created."""

    documents: tuple[Document, ...]
    _counts: tuple[Counter[str], ...] = field(init=False, repr=False, compare=False)
    _idf: Mapping[str, float] = field(init=False, repr=False, compare=False)
    _avg_len: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        counts = tuple(Counter(terms(f"{d.title} {d.text}")) for d in self.documents)
        total = len(counts)
        frequency = Counter(term for count in counts for term in count)
        idf = {t: math.log(1 + (total - n + 0.5) / (n + 0.5)) for t, n in frequency.items()}
        object.__setattr__(self, "_counts", counts)
        object.__setattr__(self, "_idf", idf)
        object.__setattr__(self, "_avg_len", sum(c.total() for c in counts) / max(total, 1))

    @classmethod
    def load(cls, path: Path = CORPUS_FILE) -> Corpus:
        """Parse ``## id: Title`` sections of a Markdown file; text before the first is ignored."""
        text = path.read_text(encoding="utf-8")
        headings = list(_HEADING.finditer(text))
        if not headings:
            raise ValueError(f"{path}: no '## id: Title' headings, so no documents")
        ends = [h.start() for h in headings[1:]] + [len(text)]
        documents = tuple(
            Document(h[1], h[2].strip(), text[h.end() : end].strip())
            for h, end in zip(headings, ends, strict=True)
        )
        ids = Counter(d.id for d in documents)
        if twice := sorted(i for i, n in ids.items() if n > 1):
            raise ValueError(f"{path}: document ids must be unique: {', '.join(twice)}")
        return cls(documents)

    def get(self, doc_id: str) -> Document | None:
        return next((d for d in self.documents if d.id == doc_id.strip()), None)

    def search(self, query: str, limit: int = 3) -> list[Hit]:
        """The ``limit`` best documents for ``query`` by BM25 (only those sharing a term)."""
        wanted = set(terms(query))
        scored = []
        for document, counts in zip(self.documents, self._counts, strict=True):
            score = sum(self._term_score(term, counts) for term in wanted)
            if score > 0:
                scored.append((score, document))
        scored.sort(key=lambda pair: -pair[0])
        return [Hit(doc, round(score, 2), _snippet(doc, wanted)) for score, doc in scored[:limit]]

    def _term_score(self, term: str, counts: Counter[str]) -> float:
        frequency = counts.get(term, 0)
        if not frequency:
            return 0.0
        norm = _K1 * (1 - _B + _B * counts.total() / self._avg_len)
        return self._idf[term] * frequency * (_K1 + 1) / (frequency + norm)


def _snippet(document: Document, wanted: set[str]) -> str:
    """The paragraph of ``document`` that mentions the most query terms."""
    return max(document.paragraphs(), key=lambda p: len(wanted & set(terms(p))), default="")


@dataclass(frozen=True, slots=True)
class Glossary:
    """Term -> one-line definition, looked up without regard to case."""

    entries: Mapping[str, str]

    @classmethod
    def load(cls, path: Path = GLOSSARY_FILE) -> Glossary:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError(f"{path}: expected one JSON object of term -> definition strings")
        return cls({term.lower(): definition for term, definition in data.items()})

    def define(self, term: str) -> str | None:
        return self.entries.get(term.strip().lower())

    def close_terms(self, term: str, count: int = 3) -> list[str]:
        return get_close_matches(term.strip().lower(), list(self.entries), n=count, cutoff=0.6)
