"""A replica's prefix cache: chained block hashes of prompt tokens, LRU-bounded.

Like vLLM's automatic prefix caching, the prompt is cut into full blocks of
``block_size`` tokens; each block's hash covers its tokens *and* the previous
block's hash, so one hash identifies a whole prefix. A new request reuses the
longest run of leading blocks already cached, and those tokens skip prefill.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from spendgraph.providers.tokens import (
    TOKENS_PER_MESSAGE,
    TOKENS_REPLY_PRIMER,
    encoding,
    message_text,
)


def prompt_token_ids(
    messages: Sequence[Mapping[str, Any]],
    encoding_name: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> list[int]:
    """The prompt as token ids, the same length as ``count_chat`` gives.

    Tool schemas come first (a chat template renders them into the system
    prompt, so they are part of the shared prefix), then each message framed
    by end-of-text markers standing in for the template's special tokens, then
    the reply primer.
    """
    enc = encoding(encoding_name)
    marker = enc.eot_token
    ids: list[int] = []
    if tools:
        ids += enc.encode(json.dumps(list(tools), sort_keys=True), disallowed_special=())
    for message in messages:
        ids.append(marker)
        ids += enc.encode(message_text(message), disallowed_special=())
        ids += [marker] * (TOKENS_PER_MESSAGE - 1)
    ids += [marker] * TOKENS_REPLY_PRIMER
    return ids


class PrefixCache:
    """Block-hash prefix cache of one replica. Used from the server's event loop only."""

    def __init__(self, capacity_blocks: int, block_size: int):
        self.capacity_blocks = capacity_blocks
        self.block_size = block_size
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def _hashes(self, token_ids: Sequence[int]) -> list[int]:
        hashes, parent = [], 0
        for start in range(0, len(token_ids) - self.block_size + 1, self.block_size):
            # Tuples of ints hash the same in every process (no hash randomisation).
            parent = hash((parent, tuple(token_ids[start : start + self.block_size])))
            hashes.append(parent)
        return hashes

    def lookup_and_insert(self, token_ids: Sequence[int]) -> int:
        """Cached tokens at the start of ``token_ids``; then cache all its full blocks.

        At least one prompt token is always computed (as vLLM does), so a
        repeated prompt reports its cached blocks minus one when it ends on a
        block boundary.
        """
        if self.capacity_blocks <= 0:
            return 0
        hashes = self._hashes(token_ids)
        hits = 0
        for block_hash in hashes:
            if block_hash not in self._blocks:
                break
            hits += 1
        # Touch hits and add misses tail first, so that under pressure a prompt's
        # tail is evicted before its prefix (as vLLM frees blocks in reverse).
        for block_hash in reversed(hashes):
            self._blocks.pop(block_hash, None)
            self._blocks[block_hash] = None
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
        usable = (len(token_ids) - 1) // self.block_size
        return min(hits, usable) * self.block_size
