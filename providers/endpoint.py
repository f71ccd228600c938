"""One OpenAI-compatible endpoint: its client, its error mapping, its token counter.

This is the boundary with the ``openai`` SDK: every SDK or transport exception
leaves this module as a :mod:`spendgraph.providers.errors` type. The SDK's own
retries are off (``max_retries=0``) because the router retries itself, so that
every HTTP attempt becomes its own ledger row.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spendgraph.providers import errors
from spendgraph.providers.config import EndpointConfig
from spendgraph.providers.ledger.records import EndpointInfo
from spendgraph.providers.tokens import chatml_prompt_text, count_chat, count_text
from spendgraph.providers.usage import Price


def map_sdk_error(exc: BaseException, endpoint: str) -> errors.EndpointError:
    """Translate an ``openai``/transport exception into our error tree."""
    if isinstance(exc, errors.EndpointError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return errors.EndpointTimeout("request timed out", endpoint=endpoint)
    if isinstance(exc, openai.APIConnectionError):
        return errors.EndpointConnectionError(f"connection failed: {exc}", endpoint=endpoint)
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, endpoint)
    # Anything else raised while reading a response body (a peer that closed
    # mid-stream surfaces as the transport's protocol error).
    return errors.StreamCut(f"response ended early: {type(exc).__name__}", endpoint=endpoint)


def _status_error(exc: openai.APIStatusError, endpoint: str) -> errors.EndpointError:
    status = exc.status_code
    message = f"HTTP {status}: {_server_message(exc)}"
    if status == 429:
        retry_after = _retry_after(exc.response.headers)
        return errors.RateLimited(
            message, endpoint=endpoint, status_code=status, retry_after=retry_after
        )
    if status >= 500:
        return errors.ServerError(message, endpoint=endpoint, status_code=status)
    if status in (401, 403):
        return errors.AuthenticationFailed(message, endpoint=endpoint, status_code=status)
    return errors.BadRequest(message, endpoint=endpoint, status_code=status)


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
    return exc.message


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _server_root(base_url: str) -> str:
    """``http://host:port/r/x/v1`` -> ``http://host:port/r/x``: where vLLM/llama.cpp extras live."""
    parts = urlsplit(base_url.rstrip("/"))
    path = parts.path[: -len("/v1")] if parts.path.endswith("/v1") else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class Endpoint:
    """A configured endpoint with its pooled ``AsyncOpenAI`` client."""

    def __init__(
        self,
        config: EndpointConfig,
        *,
        env: Mapping[str, str] = os.environ,
        http_client: Any = None,
    ):
        """``http_client`` lets many endpoints share one connection pool (and one TLS
        context, which costs ~55 ms to build per client); the owner closes it."""
        self.config = config
        self.name = config.name
        self.price: Price = config.price.to_price() if config.price else Price.unknown()
        self.info = EndpointInfo(
            name=config.name,
            model=config.model,
            hardware=config.hardware,
            precision=config.precision,
            engine=config.engine,
        )
        self._root = _server_root(config.base_url)
        self.client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key(env),
            timeout=config.timeout_s,
            max_retries=0,
            http_client=http_client,
        )
        self._owns_http_client = http_client is None

    async def complete(self, body: dict[str, Any]) -> ChatCompletion:
        """One non-streamed HTTP attempt."""
        try:
            return await self.client.chat.completions.create(**body)
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, self.name) from exc

    async def open_stream(self, body: dict[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        """Start one streamed HTTP attempt; iterate the result for chunks."""
        try:
            stream = await self.client.chat.completions.create(**body)
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, self.name) from exc
        return _mapped_chunks(stream, self.name)

    async def count_prompt(self, messages: Sequence[Mapping[str, Any]], tools: Any) -> int | None:
        """Exact prompt tokens from the server's tokenizer endpoint, or None if it has none."""
        api = self.config.tokenize_api
        if api == "vllm":
            body = {"model": self.config.model, "messages": list(messages)}
            answer = await self._post_extra("/tokenize", body)
            return int(answer["count"]) if answer and "count" in answer else None
        if api == "llamacpp":
            # llama-cpp-python has no endpoint that applies the chat template, so
            # render it here: ChatML as SmolLM2 (the embedded model) uses it.
            # Exact for that model; for other ChatML models off by the default
            # system prompt at most.
            text = chatml_prompt_text(messages)
            answer = await self._post_extra("/extras/tokenize/count", {"input": text})
            return int(answer["count"]) if answer and "count" in answer else None
        return None

    async def count_output(self, text: str) -> int | None:
        """Exact tokens of generated text from the server's tokenizer, if it has one."""
        if self.config.tokenize_api == "vllm":
            answer = await self._post_extra(
                "/tokenize", {"model": self.config.model, "prompt": text}
            )
            return int(answer["count"]) if answer and "count" in answer else None
        if self.config.tokenize_api == "llamacpp":
            answer = await self._post_extra("/extras/tokenize/count", {"input": text})
            return int(answer["count"]) if answer and "count" in answer else None
        return None

    def estimate_prompt(self, messages: Sequence[Mapping[str, Any]], tools: Any) -> int:
        """Prompt tokens counted locally with this endpoint's tiktoken encoding."""
        return count_chat(messages, self.config.tokenizer, tools=tools)

    def estimate_text(self, text: str) -> int:
        return count_text(text, self.config.tokenizer)

    async def _post_extra(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        try:
            answer = await self.client.post(self._root + path, body=body, cast_to=object)
        except openai.OpenAIError:
            return None  # counting is best effort; the caller falls back to tiktoken
        return answer if isinstance(answer, dict) else None

    async def aclose(self) -> None:
        if self._owns_http_client:
            await self.client.close()


async def _mapped_chunks(stream: Any, endpoint: str) -> AsyncIterator[ChatCompletionChunk]:
    try:
        async for chunk in stream:
            yield chunk
    except Exception as exc:
        # Besides the SDK's errors, the transport's own (a peer closing mid-body)
        # arrive here; map_sdk_error sorts them without us importing that library.
        raise map_sdk_error(exc, endpoint) from exc
    finally:
        await stream.close()
