"""Measured prompt counts, remembered so a conversation is not re-counted every turn.

A thread's next turn repeats its whole history. Where the prompt is rendered
before counting (ChatML for llama-cpp-python), each message's rendered segment
is counted on its own -- a chat template's special tokens separate segments,
so their counts add up -- and only segments not seen before go to the server.
Where the server renders the prompt itself (vLLM's ``/tokenize`` with
``messages``), whole-prompt counts are kept, keyed by a hash of the messages.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

# Entries per endpoint: a few thousand hashes and counts, well under a megabyte.
DEFAULT_ENTRIES = 4096


def prompt_key(messages: Sequence[Mapping[str, Any]], tools: Any = None) -> str:
    """A stable hash of a prompt (messages and tools)."""
    text = json.dumps([list(messages), tools], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class MeasuredCounts:
    """Token counts a server measured, by prompt or segment key: a bounded LRU.

    Unlike :mod:`spendgraph.providers.count_cache` (local tiktoken counts), each
    entry here cost a round trip to one endpoint, so it lives with that endpoint.
    Used from one event loop.
    """

    def __init__(self, entries: int = DEFAULT_ENTRIES):
        self._entries = entries
        self._counts: OrderedDict[str, int] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> int | None:
        count = self._counts.get(key)
        if count is None:
            self.misses += 1
            return None
        self.hits += 1
        self._counts.move_to_end(key)
        return count

    def put(self, key: str, count: int) -> None:
        self._counts[key] = count
        self._counts.move_to_end(key)
        while len(self._counts) > self._entries:
            self._counts.popitem(last=False)

    def __len__(self) -> int:
        return len(self._counts)


def chatml_segments(text: str) -> list[str]:
    """A rendered ChatML prompt cut at each ``<|im_start|>`` (the segments' counts add up)."""
    marker = "<|im_start|>"
    parts = text.split(marker)
    head = [parts[0]] if parts[0] else []
    return head + [marker + part for part in parts[1:]]
