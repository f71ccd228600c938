"""Token counts remembered per process, so a conversation's history is counted once.

Counting costs tiktoken about 0.2-0.4 µs per token -- 20-60 ms for a prompt of
100k tokens -- and a thread re-sends its whole history every turn, to every
endpoint the router weighs. The counting functions of
:mod:`spendgraph.providers.tokens`, :mod:`.templates` and :mod:`.harmony` look
each text they would encode up here first, keyed on the text itself (never on
an object's identity: a message edited in place is a new key, so never a
stale count). What is cached, and why it adds up exactly:

- OpenAI's recipe counts each message on its own (its text, plus a fixed
  framing), so a message's count is cached whole: a new turn costs only its
  new messages. Tool schemas are one text (their JSON), cached the same way.
- The model families' templates are *not* additive per message: Llama 3.1
  moves the first user message into the tool block, Qwen groups consecutive
  tool results into one turn, Qwen3 drops earlier ``<think>`` blocks depending
  on where the last query is, harmony drops analysis turns before the last
  final answer. What is additive is one level down: a tokenizer encodes the
  text between two special tokens on its own (Hugging Face tokenizers split on
  added tokens first; harmony encodes each text piece alone), so those pieces
  are cached. A message rendered the same way as last turn is a hit; one
  rendered differently is a different piece, counted once.

Texts shorter than :data:`MIN_CHARS` are counted directly (a lookup costs what
encoding them does). The cache of a process is :func:`process_counts`: made on
first use, bounded in entries and in characters held, thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import lru_cache

# Bounds of the process's cache: entries, and characters of the texts its keys
# hold (about 4M tokens of prose; a key holds its text so that a hit is an exact
# match, not a hash that could collide).
MAX_ENTRIES = 16_384
MAX_CHARS = 16_000_000
MIN_CHARS = 256


class CountCache:
    """A bounded LRU of token counts keyed by what was counted (thread-safe).

    ``max_entries=0`` stores nothing: every count is computed (the uncached baseline).
    """

    __slots__ = ("_chars", "_counts", "_lock", "hits", "max_chars", "max_entries", "min_chars")

    def __init__(
        self, max_entries: int = MAX_ENTRIES, max_chars: int = MAX_CHARS, min_chars: int = MIN_CHARS
    ):
        self.max_entries, self.max_chars, self.min_chars = max_entries, max_chars, min_chars
        self._counts: OrderedDict[Hashable, tuple[int, int]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()
        self.hits = 0  # lookups answered from the cache (for tests and benchmarks)

    def __len__(self) -> int:
        return len(self._counts)

    @property
    def chars(self) -> int:
        """Characters of the texts the cached keys hold."""
        return self._chars

    def count(self, key: Hashable, chars: int, compute: Callable[[], int]) -> int:
        """The count stored under ``key`` (a text of ``chars`` characters), else ``compute()``'s,
        stored. Computed outside the lock: two threads may both count a new text, alike."""
        if chars < self.min_chars or self.max_entries <= 0:
            return compute()
        with self._lock:
            found = self._counts.get(key)
            if found is not None:
                self._counts.move_to_end(key)
                self.hits += 1
                return found[0]
        counted = compute()
        if chars <= self.max_chars:  # a text above the bound alone would evict everything
            with self._lock:
                if key not in self._counts:
                    self._counts[key] = (counted, chars)
                    self._chars += chars
                    self._evict()
        return counted

    def _evict(self) -> None:
        while len(self._counts) > self.max_entries or self._chars > self.max_chars:
            _, (_, chars) = self._counts.popitem(last=False)
            self._chars -= chars

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._chars = 0


@lru_cache(maxsize=1)
def process_counts() -> CountCache:
    """This process's count cache, made on first use (bounds: :data:`MAX_ENTRIES`,
    :data:`MAX_CHARS`)."""
    return CountCache()
