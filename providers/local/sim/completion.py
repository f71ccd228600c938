"""What the simulated model answers: text, JSON or tool calls, deterministically.

The answer depends only on the request's content and the server seed, never
on the replica, timing or delivery (stream or not), so a retried or rerouted
request gets the same answer.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import tiktoken

from spendgraph.providers.local.sim.request import ChatRequest, ToolSpec
from spendgraph.providers.local.sim.schemagen import generate_instance
from spendgraph.providers.local.sim.words import NOUNS, sentence, topic_words
from spendgraph.providers.tokens import count_text, encoding

# Length of a free-text answer, in tokens, before max_tokens applies.
MIN_TEXT_TOKENS = 20
MAX_TEXT_TOKENS = 120
# Most tool calls in one answer (parallel tool calls).
MAX_PARALLEL_CALLS = 3


@dataclass(frozen=True)
class ToolCall:
    """One function call the model makes."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Piece:
    """One streamed fragment (content text or tool-call arguments) and the tokens it stands for.

    In a tool-call answer ``call`` is the index of the call the piece belongs to;
    ``opens`` marks the (text-less) piece that starts a call after the first,
    streamed as a chunk with that call's id and name.
    """

    text: str
    tokens: int
    call: int = 0
    opens: bool = False


@dataclass(frozen=True)
class Completion:
    """The whole answer, plus how it is cut into streamed pieces."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    completion_tokens: int
    pieces: tuple[Piece, ...]
    # Tokens the first chunk of a tool-call answer (first call's id and name) stands for.
    header_tokens: int = 0


def request_rng(request: ChatRequest, seed: int) -> random.Random:
    """The random generator of one request: its content hash plus the server seed."""
    return random.Random(f"{seed}:{request.request_hash}")


def complete(
    request: ChatRequest, encoding_name: str, seed: int, token_limit: int | None
) -> Completion:
    """The answer to ``request``; ``token_limit`` caps completion tokens (finish_reason length)."""
    rng = request_rng(request, seed)
    enc = encoding(encoding_name)
    tool = _chosen_tool(request, rng)
    if tool is not None:
        return _tool_completion(request, tool, rng, enc, token_limit)
    if request.format_kind == "json_schema":
        text = json.dumps(generate_instance(request.schema, rng))
    elif request.format_kind == "json_object":
        text = json.dumps(_json_object(rng, request.last_user_text))
    else:
        text = plain_text(rng, request.last_user_text, enc)
    return _text_completion(text, enc, token_limit)


def _chosen_tool(request: ChatRequest, rng: random.Random) -> ToolSpec | None:
    """Which tool to call, if any.

    "auto" calls a tool only while the conversation ends with a user message:
    once a tool result (or an assistant turn) follows, it answers in text, so
    agent tool loops terminate.
    """
    if not request.tools or request.tool_choice == "none":
        return None
    if request.tool_choice == "function":
        return next(tool for tool in request.tools if tool.name == request.tool_name)
    if request.tool_choice == "auto" and request.messages[-1].get("role") != "user":
        return None
    return rng.choice(request.tools)


def _more_tools(request: ChatRequest, first: ToolSpec, rng: random.Random) -> list[ToolSpec]:
    """The tools called in parallel with ``first``, each a different function.

    Only for ``"required"``/``"auto"`` with two or more tools and
    ``parallel_tool_calls`` not false: the answer then has
    ``min(len(tools), 2 + r)`` calls, ``r`` in {0, 1} drawn from the request's
    generator -- at least two calls, at most :data:`MAX_PARALLEL_CALLS`.
    """
    if request.tool_choice == "function" or not request.parallel_tool_calls:
        return []
    by_name = {tool.name: tool for tool in request.tools}
    others = [tool for name, tool in by_name.items() if name != first.name]
    if not others:
        return []
    count = min(len(by_name), 2 + rng.randrange(MAX_PARALLEL_CALLS - 1))
    return rng.sample(others, count - 1)


def plain_text(rng: random.Random, prompt_text: str, enc: tiktoken.Encoding) -> str:
    """English-ish sentences, some echoing topic words of ``prompt_text``, 20-120 tokens long."""
    target = rng.randint(MIN_TEXT_TOKENS, MAX_TEXT_TOKENS)
    topics = topic_words(prompt_text)
    sentences: list[str] = []
    tokens = 0
    while tokens < target:
        sentences.append(sentence(rng, topics))
        tokens += len(enc.encode(" " + sentences[-1]))
    return " ".join(sentences)


def _json_object(rng: random.Random, prompt_text: str) -> dict[str, object]:
    topics = topic_words(prompt_text) or [rng.choice(NOUNS)]
    return {
        "answer": sentence(rng, topics),
        "topic": topics[0],
        "confidence": round(rng.uniform(0.5, 1.0), 2),
        "keywords": rng.sample(NOUNS, 3),
    }


def _fit(text: str, limit: int | None, enc: tiktoken.Encoding) -> tuple[list[int], bool]:
    """``text`` as tokens, cut to at most ``limit`` tokens; and whether it was cut."""
    tokens = enc.encode(text, disallowed_special=())
    if limit is None or len(tokens) <= limit:
        return tokens, False
    keep = limit
    while True:  # re-encoding a cut text can merge differently; shrink until it fits
        tokens = enc.encode(enc.decode(tokens[:keep]), disallowed_special=())
        if len(tokens) <= limit or keep == 0:
            return tokens[:limit], True
        keep -= 1


def pieces(tokens: list[int], enc: tiktoken.Encoding) -> tuple[Piece, ...]:
    """One piece per token, merging tokens that only decode together (split UTF-8)."""
    out: list[Piece] = []
    pending, count = b"", 0
    for token in tokens:
        pending += enc.decode_single_token_bytes(token)
        count += 1
        try:
            text = pending.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.append(Piece(text, count))
        pending, count = b"", 0
    if pending:
        out.append(Piece(pending.decode("utf-8", "replace"), count))
    return tuple(out)


def _text_completion(text: str, enc: tiktoken.Encoding, limit: int | None) -> Completion:
    tokens, cut = _fit(text, limit, enc)
    split = pieces(tokens, enc)
    content = "".join(piece.text for piece in split)
    return Completion(
        content=content,
        tool_calls=(),
        finish_reason="length" if cut else "stop",
        completion_tokens=count_text(content, enc.name),
        pieces=split,
    )


def _tool_completion(
    request: ChatRequest,
    first: ToolSpec,
    rng: random.Random,
    enc: tiktoken.Encoding,
    limit: int | None,
) -> Completion:
    """One or more tool calls; ``limit`` caps their tokens together.

    Each call costs ``count_text(name + arguments)`` tokens. When the limit
    cuts a call's arguments the answer ends there (finish_reason "length");
    a later call that cannot fit its name and one argument token is left out
    (also "length").
    """
    call, split, total, header_tokens, cut = _one_call(first, 0, rng, enc, limit)
    calls = [call]
    for tool in [] if cut else _more_tools(request, first, rng):
        remaining = None if limit is None else limit - total
        if remaining is not None and remaining <= count_text(tool.name, enc.name):
            cut = True  # no room left for this call: the answer stops here
            break
        call, more, tokens, header, cut = _one_call(tool, len(calls), rng, enc, remaining)
        split.append(Piece("", header, call=len(calls), opens=True))
        split.extend(more)
        calls.append(call)
        total += tokens
        if cut:
            break
    return Completion(
        content=None,
        tool_calls=tuple(calls),
        finish_reason="length" if cut else "tool_calls",
        completion_tokens=total,
        pieces=tuple(split),
        header_tokens=header_tokens,
    )


def _one_call(
    tool: ToolSpec, index: int, rng: random.Random, enc: tiktoken.Encoding, limit: int | None
) -> tuple[ToolCall, list[Piece], int, int, bool]:
    """A call of ``tool``: the call, its argument pieces, its tokens, its header tokens, cut."""
    arguments = json.dumps(generate_instance(tool.parameters, rng))
    call_id = f"call_{rng.getrandbits(96):024x}"
    name_tokens = count_text(tool.name, enc.name)
    budget = None if limit is None else max(limit - name_tokens, 0)
    tokens, cut = _fit(arguments, budget, enc)
    split = [Piece(p.text, p.tokens, call=index) for p in pieces(tokens, enc)]
    arguments = "".join(piece.text for piece in split)
    # Completion tokens of a tool call: its name and arguments, as one text.
    total = count_text(tool.name + arguments, enc.name)
    call = ToolCall(id=call_id, name=tool.name, arguments=arguments)
    return call, split, total, max(total - len(tokens), 0), cut
