"""The support knowledge base: short articles from ``articles.md``, and a search tool over them.

The articles serve twice. The whole set goes into the voice assistant's
system prompt (:meth:`KnowledgeBase.as_prompt`): it is the same for every
call, so the replica's prefix cache holds it and the first spoken word never
waits for a lookup. The verifier, which is not in a hurry, searches it
(:func:`search_tool`) to check a draft against the exact wording.

Search is plain keyword scoring (rarer words weigh more, title and tags
count double) -- no embeddings, no index to build, nothing to download.
Replace :meth:`KnowledgeBase.search` with your own retrieval when the
knowledge base outgrows a prompt.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources

ARTICLES_FILE = "articles.md"
MAX_RESULTS = 5
_HEADING = re.compile(r"^## (KB-\d+) \| (.+)$", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]+")
# Words too common to say anything about which article fits.
_COMMON = """a an and are as at be by can do does for from how i if in is it its me my no not
of on or our so that the their there this to up we what when where which who why will with
you your"""
_STOPWORDS = frozenset(_COMMON.split())


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    title: str
    tags: str
    body: str

    def text(self) -> str:
        return f"{self.id} | {self.title}\n{self.body}"


def terms(text: str) -> list[str]:
    """Search terms of ``text``: lower-case words without stopwords, crudely de-pluralized."""
    words = (w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS)
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    """Support articles by id, searchable by keywords."""

    articles: tuple[Article, ...]

    @classmethod
    def load(cls) -> KnowledgeBase:
        """The articles shipped with this example (``articles.md`` next to this module)."""
        text = resources.files(__package__).joinpath(ARTICLES_FILE).read_text(encoding="utf-8")
        return cls.parse(text)

    @classmethod
    def parse(cls, text: str) -> KnowledgeBase:
        """Articles from markdown: ``## KB-<n> | <title>``, an optional ``Tags:`` line, the body."""
        heads = list(_HEADING.finditer(text))
        if not heads:
            raise ValueError(
                "no articles found: each starts with a '## KB-<number> | <title>' line"
            )
        articles = []
        for head, following in zip(heads, [*heads[1:], None], strict=True):
            chunk = text[head.end() : following.start() if following else len(text)].strip()
            tags, _, body = chunk.partition("\n") if chunk.startswith("Tags:") else ("", "", chunk)
            body = " ".join(body.split())
            articles.append(
                Article(head[1], head[2].strip(), tags.removeprefix("Tags:").strip(), body)
            )
        return cls(tuple(articles))

    def get(self, article_id: str) -> Article | None:
        return next((a for a in self.articles if a.id == article_id.upper()), None)

    def as_prompt(self) -> str:
        """Every article, one paragraph each: the knowledge part of a system prompt."""
        return "\n\n".join(article.text() for article in self.articles)

    def search(self, query: str, limit: int = 3) -> list[Article]:
        """The best ``limit`` articles for ``query`` (an article id matches itself first)."""
        exact = [a for a in self.articles if a.id.lower() in query.lower()]
        wanted = set(terms(query))
        scores = {a.id: _score(a, wanted, self._rarity()) for a in self.articles}
        ranked = sorted(
            (a for a in self.articles if scores[a.id] > 0 and a not in exact),
            key=lambda a: scores[a.id],
            reverse=True,
        )
        return [*exact, *ranked][:limit]

    def _rarity(self) -> dict[str, float]:
        """Inverse document frequency of each term: rare words say more about a match."""
        counts = Counter(t for a in self.articles for t in set(terms(_all_text(a))))
        total = len(self.articles)
        return {term: math.log((1 + total) / (1 + n)) + 1 for term, n in counts.items()}


def _all_text(article: Article) -> str:
    return f"{article.title} {article.tags} {article.body}"


def _score(article: Article, wanted: Iterable[str], rarity: dict[str, float]) -> float:
    body = set(terms(article.body))
    heading = set(terms(f"{article.title} {article.tags}"))
    return sum(rarity.get(t, 0) * ((t in body) + 2 * (t in heading)) for t in wanted)


def search_tool(kb: KnowledgeBase) -> Callable[[str, int], str]:
    """The knowledge base as an agent tool (a plain typed function with a docstring)."""

    def search_support_articles(query: str, limit: int = 3) -> str:
        """Search Brightwave's support articles and return the best matches in full.

        Args:
            query: keywords or an article id, e.g. "router blinking orange" or "KB-109".
            limit: how many articles to return (1 to 5).
        """
        found = kb.search(query, max(1, min(MAX_RESULTS, limit)))
        if not found:
            titles = "; ".join(f"{a.id} {a.title}" for a in kb.articles)
            return f"No article matches {query!r}. Articles: {titles}."
        return "\n\n".join(article.text() for article in found)

    return search_support_articles
