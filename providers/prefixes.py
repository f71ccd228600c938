"""What an endpoint has been sent before: an estimate of a prompt's cached prefix.

A row without a usage report -- a cut stream, a server that never reports usage
when streaming, a report rejected as impossible -- still had part of its prompt
served from the server's prefix cache, and booking all of it as uncached input
overstates the cost and understates the cache hits. What the server had cached
is not knowable from the client, so it is estimated from what this endpoint
was sent before: each prompt is remembered, when it is sent, as the chain of
its message prefixes; a prompt starting with messages sent earlier is predicted
to hit them, in whole cache blocks. Their length in tokens is the server's own
count when one of its answers covered exactly that prefix (the previous turn of
a conversation), else a share of this prompt's count by characters.

Servers evict, and some cache nothing: every report that does carry
``cached_tokens`` for a prompt extending one the server had answered before it
was sent is compared with what was predicted, and estimates are scaled by the
share of those predictions that came true. (A prefix still in flight when the
prompt was sent may or may not have been computed first: which of two racing
prompts a server takes first is not knowable, so those do not calibrate.) Until
an endpoint has shown a cache hit its estimate is 0: no row is booked a hit the
endpoint never made. A prompt the server never took (a 429, a refused
connection) is forgotten again.

Keys use Python's ``hash`` (cheap for the same ``str`` objects turn after turn;
the table lives in one process only).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# vLLM's default KV-cache block: prefix caches hit in whole blocks.
BLOCK_TOKENS = 16
# Message prefixes remembered per endpoint (a few hundred conversations).
CAPACITY = 8192
# Weight of one report in the running share of predictions that came true.
CALIBRATION_ALPHA = 0.05
# A report this close below a prediction confirms it: the prediction's length was
# split by characters, the server cut it at a block or a template token.
NEAR_MISS_TOKENS = 2 * BLOCK_TOKENS
_FRAMING_CHARS = 12  # a message's role markers, in characters


@dataclass(frozen=True, slots=True)
class PromptKeys:
    """One prompt as the chain of its message prefixes: a key and a character offset each."""

    keys: tuple[int, ...]
    ends: tuple[int, ...]  # characters from the prompt's start to the end of each message
    tools_bytes: int = 0  # the tool schemas' JSON (ASCII: characters are bytes)

    @classmethod
    def of(
        cls, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
    ) -> PromptKeys:
        # Tool schemas come first: templates render them into the system prompt.
        tools_text = json.dumps(list(tools), sort_keys=True) if tools else ""
        key, end = hash(tools_text), len(tools_text)
        keys, ends = [], []
        for message in messages:
            identity = _identity(message)
            key = hash((key, identity))
            end += len(identity[1] or "") + _FRAMING_CHARS
            keys.append(key)
            ends.append(end)
        return cls(tuple(keys), tuple(ends), len(tools_text))


def _identity(message: Mapping[str, Any]) -> tuple[str, str | None]:
    content = message.get("content")
    if isinstance(content, str) and set(message) <= {"role", "content"}:
        return str(message.get("role", "")), content
    return str(message.get("role", "")), json.dumps(message, sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class SentPrompt:
    """A prompt as it was sent: the longest prefix sent before it, and the keys it added."""

    prompt: PromptKeys
    match: int  # index of the last message of the longest prefix sent before; -1: none
    known: int | None  # that prefix's tokens, when an answer covering exactly it had come
    added: tuple[int, ...]


class PrefixMemory:
    """The prompts one endpoint was sent, and how often predicted prefixes were cached."""

    def __init__(self, capacity: int = CAPACITY):
        self._capacity = capacity
        # prefix key -> the server's token count of exactly that prefix (None: not known)
        self._tokens: OrderedDict[int, int | None] = OrderedDict()
        self._lock = threading.Lock()
        self._predicted = 0.0  # running sums of predicted hits, and of the part that came true
        self._confirmed = 0.0
        self._seen_hit = False  # whether the endpoint ever reported a cache hit

    def sent(self, prompt: PromptKeys) -> SentPrompt:
        """``prompt`` is being sent: what it can hit, and remember it."""
        with self._lock:
            match = next(
                (i for i in reversed(range(len(prompt.keys))) if prompt.keys[i] in self._tokens),
                -1,
            )
            known = self._tokens[prompt.keys[match]] if match >= 0 else None
            added = tuple(key for key in prompt.keys if key not in self._tokens)
            for key in prompt.keys:
                self._tokens.setdefault(key, None)
                self._tokens.move_to_end(key)
            self._evict()
        return SentPrompt(prompt, match, known, added)

    def predicted(self, sent: SentPrompt, prompt_tokens: int) -> int:
        """Tokens of ``sent``'s prompt the server could have found cached, in whole blocks.

        At most ``prompt_tokens - 1``: a server computes at least one prompt token.
        """
        if sent.match < 0 or prompt_tokens <= 0:
            return 0
        prompt, tokens = sent.prompt, sent.known
        if tokens is None:  # answered since it was sent?
            with self._lock:
                tokens = self._tokens.get(prompt.keys[sent.match])
        if tokens is None:  # no answer covered exactly that prefix: split this prompt's count
            tokens = prompt_tokens * prompt.ends[sent.match] // (prompt.ends[-1] or 1)
        return min(tokens, prompt_tokens - 1) // BLOCK_TOKENS * BLOCK_TOKENS

    def estimate(self, sent: SentPrompt, prompt_tokens: int) -> int:
        """Cached tokens to book for ``sent`` when the server did not say."""
        predicted = self.predicted(sent, prompt_tokens)
        with self._lock:
            if self._predicted > 0:
                share = self._confirmed / self._predicted
            else:
                share = 1.0 if self._seen_hit else 0.0
        return min(predicted, round(predicted * share))

    def answered(self, sent: SentPrompt, prompt_tokens: int, reported_cached: int | None) -> None:
        """The server took ``sent``: ``prompt_tokens`` long by its count (or ours), with
        ``reported_cached`` tokens cached by its report (None: it did not say)."""
        if reported_cached is not None:
            settled = sent.known is not None  # not a race with a prompt in flight
            self._calibrate(self.predicted(sent, prompt_tokens) if settled else 0, reported_cached)
        if sent.prompt.keys:
            with self._lock:
                self._tokens[sent.prompt.keys[-1]] = prompt_tokens
                self._evict()

    def unanswered(self, sent: SentPrompt) -> None:
        """The server never took ``sent`` (refused, unreachable): forget what it added."""
        with self._lock:
            for key in sent.added:
                if self._tokens.get(key, 0) is None:
                    del self._tokens[key]

    def _evict(self) -> None:
        while len(self._tokens) > self._capacity:  # the least recently sent first
            self._tokens.popitem(last=False)

    def _calibrate(self, predicted: int, reported_cached: int) -> None:
        keep = 1 - CALIBRATION_ALPHA
        with self._lock:
            self._seen_hit = self._seen_hit or reported_cached > 0
            if predicted <= 0:
                return  # a hit nobody predicted says nothing about the predictions
            confirmed = min(predicted, reported_cached)
            if reported_cached >= predicted - NEAR_MISS_TOKENS:
                confirmed = predicted
            self._predicted = self._predicted * keep + predicted
            self._confirmed = self._confirmed * keep + confirmed
