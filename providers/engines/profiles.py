"""What each serving engine sends, accepts and exposes: one frozen profile per engine.

The profiles follow each server's own code (read at the paths below), not its
docs, because the differences that change a ledger row are in the code:

- vLLM: ``vllm/entrypoints/openai/engine/protocol.py`` (``StreamOptions``:
  ``include_usage`` defaults to true once ``stream_options`` is sent,
  ``continuous_usage_stats``; ``UsageInfo``), ``.../chat_completion/serving.py``
  (per-chunk usage without ``prompt_tokens_details``; the final ``choices: []``
  chunk carries ``prompt_tokens_details.cached_tokens`` only with
  ``--enable-prompt-tokens-details``, ``completion_tokens_details.reasoning_tokens``
  only with a reasoning parser), ``vllm/entrypoints/serve/tokenize/protocol.py``
  (``POST /tokenize`` takes ``messages`` or ``prompt``, answers ``count``,
  ``max_model_len``, ``tokens``), ``vllm/v1/metrics/loggers.py``
  (``vllm:prompt_tokens``, ``vllm:generation_tokens``, ``vllm:prefix_cache_hits``).
- SGLang: ``python/sglang/srt/entrypoints/openai/protocol.py`` (``UsageInfo``
  has a top-level ``reasoning_tokens``; ``StreamOptions.include_usage`` is
  false by default), ``.../usage_processor.py`` (``prompt_tokens_details`` only
  with ``--enable-cache-report`` and a non-zero count), ``.../serving_chat.py``
  (``continuous_usage_stats`` chunks carry prompt and completion tokens only),
  ``.../serving_tokenize.py`` (``POST /v1/tokenize`` takes a ``prompt`` string
  only: no chat template), ``python/sglang/srt/metrics/collector.py``
  (``sglang:prompt_tokens_total``, ``sglang:generation_tokens_total``,
  ``sglang:cached_tokens_total``).
- TensorRT-LLM: ``tensorrt_llm/serve/openai_protocol.py`` (every request model
  is ``extra="forbid"``: an unknown field fails the call; ``StreamOptions`` has
  ``include_usage`` (default true) and ``continuous_usage_stats``;
  ``POST /_internal/tokenize`` takes a ``prompt`` only and answers ``count``),
  ``tensorrt_llm/serve/postprocess_handlers.py`` (per-chunk and final usage
  both carry ``prompt_tokens_details.cached_tokens``; no reasoning count),
  ``tensorrt_llm/serve/openai_server.py`` (validation errors are HTTP 400;
  metrics at ``/prometheus/metrics``), ``tensorrt_llm/metrics/collector.py``
  (``trtllm_prompt_tokens_total``, ``trtllm_generation_tokens_total``,
  ``trtllm_prompt_cached_tokens_total``).
- Dynamo frontend: ``lib/runtime/src/metrics/prometheus_names.rs`` and
  ``lib/llm/src/http/service/metrics.rs`` (histograms
  ``dynamo_frontend_input_sequence_tokens``, ``..._output_sequence_tokens``,
  ``..._cached_tokens`` per request: their ``_sum`` is the running total).
- llama.cpp ``llama-server``: ``tools/server/server-task.cpp`` (usage in the
  final ``choices: []`` chunk when asked; ``timings`` with ``prompt_n``,
  ``cache_n``, ``predicted_n`` on the last chunk always; ``prompt_tokens_details``
  in recent builds), ``tools/server/server-context.cpp`` (``--metrics``:
  ``llamacpp:prompt_tokens_total`` counts prompt tokens *processed*, i.e. not
  served from the cache; ``llamacpp:tokens_predicted_total``; ``POST /tokenize``
  with ``content`` answers ``tokens``; ``POST /apply-template`` with ``messages``
  answers ``prompt``).
- llama-cpp-python: ``llama_cpp/server/app.py`` (``POST /extras/tokenize/count``
  with ``input`` answers ``count``; streams carry no usage; no metrics).
- Ollama: ``openai/openai.go`` and ``middleware/openai.go`` (usage with
  ``stream_options.include_usage`` only, prompt/completion/total and nothing
  else; no tokenizer endpoint, no Prometheus metrics).
- NIM: serves through its backend's OpenAI frontend; metrics at ``/v1/metrics``
  with unprefixed names. The backend varies, so only standard fields are sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from spendgraph.providers.engines.names import canonical_engine
from spendgraph.providers.usage import ImplausibleUsage, Usage, UsageSource

TokenizeStyle = Literal["vllm", "sglang", "trtllm", "llama-server", "llama-cpp-python"]
ReasoningField = Literal["details", "top_level", "none"]


@dataclass(frozen=True, slots=True)
class TokenizerApi:
    """A server's tokenizer endpoint: its path (from the server root) and shape.

    ``chat``: it takes ``messages`` and applies the model's chat template itself,
    so its count is the server's ``prompt_tokens``. Otherwise the prompt is
    rendered first (llama-server's ``template_path``, or ChatML locally).
    """

    style: TokenizeStyle
    path: str
    chat: bool = False
    template_path: str | None = None

    def text_body(self, model: str, text: str, *, special: bool) -> dict[str, Any]:
        """The request counting ``text`` (``special``: it is a rendered prompt)."""
        if self.style == "llama-server":
            return {"content": text, "add_special": special, "parse_special": special}
        if self.style == "llama-cpp-python":
            return {"input": text}
        if self.style == "sglang":
            return {"model": model, "prompt": text, "add_special_tokens": special}
        return {"model": model, "prompt": text}

    @staticmethod
    def count_of(answer: Mapping[str, Any] | None) -> int | None:
        """The token count in a tokenizer answer (``count``, else ``len(tokens)``)."""
        if not answer:
            return None
        count = answer.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return count
        tokens = answer.get("tokens")
        return len(tokens) if isinstance(tokens, list) else None


@dataclass(frozen=True, slots=True)
class MetricNames:
    """Where a server's Prometheus counters are and which samples hold token totals.

    ``prompt_uncached``: the prompt counter counts only tokens the server had to
    process (llama-server), not the whole prompt.
    """

    path: str
    prompt: str | None
    generation: str | None
    cached: str | None = None
    prompt_uncached: bool = False


@dataclass(frozen=True, slots=True)
class EngineProfile:
    """How to talk to one engine and how to read what it answers."""

    name: str
    # Sent as ``stream_options`` on streamed requests.
    stream_options: Mapping[str, bool] = field(
        default_factory=lambda: MappingProxyType({"include_usage": True})
    )
    # Per-chunk cumulative usage: a cut stream still ends with the server's count.
    continuous_usage: bool = False
    continuous_cached: bool = False  # per-chunk usage says how much was cached
    reasoning: ReasoningField = "details"
    # llama-server's ``timings`` (prompt_n, cache_n, predicted_n) count a call too.
    timings: bool = False
    # TensorRT-LLM fails a request with any field its models do not declare.
    forbids_unknown_fields: bool = False
    tokenizer: TokenizerApi | None = None
    metrics: MetricNames | None = None

    def request_extras(self, *, stream: bool) -> dict[str, Any]:
        """Fields this engine gets on top of the standard OpenAI request."""
        return {"stream_options": dict(self.stream_options)} if stream else {}

    def read_usage(self, usage: object, timings: object = None) -> Usage:
        """The call's usage from the server's ``usage`` object (and ``timings``).

        Raises :class:`ImplausibleUsage` when neither holds a believable count.
        """
        if usage is None:
            if self.timings and timings is not None:
                return usage_from_timings(timings)
            raise ImplausibleUsage("no usage")
        read = Usage.from_openai(usage)
        if self.reasoning == "top_level" and read.reasoning == 0:
            read = _with_reasoning(read, _field(usage, "reasoning_tokens"))
        if self.timings and read.input_cached == 0 and timings is not None:
            read = _with_timings_cache(read, timings)
        return read


def _field(value: object, name: str) -> object:
    if isinstance(value, Mapping):
        return value.get(name)
    extra = getattr(value, "model_extra", None) or {}
    return getattr(value, name, None) if name not in extra else extra[name]


def _whole(value: object, name: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ImplausibleUsage(f"{name} {value!r} is not a count")
    return value


def _with_reasoning(usage: Usage, raw: object) -> Usage:
    if raw is None:
        return usage
    reasoning = _whole(raw, "reasoning_tokens")
    if reasoning > usage.output:
        raise ImplausibleUsage(f"reasoning_tokens {reasoning} > completion_tokens {usage.output}")
    return Usage(usage.input_uncached, usage.input_cached, usage.output, reasoning, usage.source)


def usage_from_timings(timings: object) -> Usage:
    """llama-server's ``timings``: ``prompt_n`` processed + ``cache_n`` cached, ``predicted_n``."""
    processed = _whole(_field(timings, "prompt_n"), "timings.prompt_n")
    cached = _whole(_field(timings, "cache_n") or 0, "timings.cache_n")
    output = _whole(_field(timings, "predicted_n"), "timings.predicted_n")
    return Usage(processed, cached, output, 0, UsageSource.REPORTED)


def _with_timings_cache(usage: Usage, timings: object) -> Usage:
    try:
        cached = _whole(_field(timings, "cache_n") or 0, "timings.cache_n")
    except ImplausibleUsage:
        return usage
    if cached == 0 or cached > usage.prompt_tokens:
        return usage
    prompt = usage.prompt_tokens
    return Usage(prompt - cached, cached, usage.output, usage.reasoning, usage.source)


def _counters(path: str, prefix: str, cached: str | None) -> MetricNames:
    """Counters named ``<prefix>prompt_tokens_total``, ``<prefix>generation_tokens_total``."""
    return MetricNames(
        path,
        prompt=f"{prefix}prompt_tokens_total",
        generation=f"{prefix}generation_tokens_total",
        cached=None if cached is None else prefix + cached,
    )


_VLLM_METRICS = _counters("/metrics", "vllm:", "prefix_cache_hits_total")
_CONTINUOUS = MappingProxyType({"include_usage": True, "continuous_usage_stats": True})

PROFILES: Mapping[str, EngineProfile] = MappingProxyType(
    {
        "openai": EngineProfile("openai"),
        "vllm": EngineProfile(
            "vllm",
            stream_options=_CONTINUOUS,
            continuous_usage=True,
            tokenizer=TokenizerApi("vllm", "/tokenize", chat=True),
            metrics=_VLLM_METRICS,
        ),
        "sglang": EngineProfile(
            "sglang",
            stream_options=_CONTINUOUS,
            continuous_usage=True,
            reasoning="top_level",
            tokenizer=TokenizerApi("sglang", "/v1/tokenize"),
            metrics=_counters("/metrics", "sglang:", "cached_tokens_total"),
        ),
        "trtllm": EngineProfile(
            "trtllm",
            stream_options=_CONTINUOUS,  # both fields are declared by its StreamOptions
            continuous_usage=True,
            continuous_cached=True,
            reasoning="none",
            forbids_unknown_fields=True,
            tokenizer=TokenizerApi("trtllm", "/_internal/tokenize"),
            metrics=_counters("/prometheus/metrics", "trtllm_", "prompt_cached_tokens_total"),
        ),
        "dynamo": EngineProfile(
            "dynamo",
            metrics=MetricNames(
                "/metrics",
                prompt="dynamo_frontend_input_sequence_tokens_sum",
                generation="dynamo_frontend_output_sequence_tokens_sum",
                cached="dynamo_frontend_cached_tokens_sum",
            ),
        ),
        "nim": EngineProfile(
            "nim",
            metrics=_counters("/v1/metrics", "", None),
        ),
        "llama-server": EngineProfile(
            "llama-server",
            reasoning="none",
            timings=True,
            tokenizer=TokenizerApi("llama-server", "/tokenize", template_path="/apply-template"),
            metrics=MetricNames(
                "/metrics",
                prompt="llamacpp:prompt_tokens_total",
                generation="llamacpp:tokens_predicted_total",
                prompt_uncached=True,
            ),
        ),
        "llama-cpp-python": EngineProfile(
            "llama-cpp-python",
            reasoning="none",
            tokenizer=TokenizerApi("llama-cpp-python", "/extras/tokenize/count"),
        ),
        "ollama": EngineProfile("ollama", reasoning="none"),
        # The fleet simulator: plain OpenAI requests, vLLM's metric names.
        "sim": EngineProfile(
            "sim",
            metrics=_VLLM_METRICS,
        ),
    }
)
# Accepted names that behave like another engine.
_SAME_AS = {"llamacpp": "llama-cpp-python", "hosted": "openai", "other": "openai", "": "openai"}

# ``tokenize_api`` values (the override key) -> the engine whose endpoint they mean.
TOKENIZE_APIS = {
    "vllm": "vllm",
    "sglang": "sglang",
    "trtllm": "trtllm",
    "llama-server": "llama-server",
    "llamacpp": "llama-cpp-python",
    "llama-cpp-python": "llama-cpp-python",
}


def profile_for(engine: str) -> EngineProfile:
    """The profile of ``engine`` (any accepted spelling); plain OpenAI when unknown."""
    name = canonical_engine(engine)
    return PROFILES.get(_SAME_AS.get(name, name), PROFILES["openai"])


def tokenizer_for(tokenize_api: str) -> TokenizerApi | None:
    """The tokenizer endpoint a ``tokenize_api`` value names (``"none"``: none)."""
    engine = TOKENIZE_APIS.get(tokenize_api)
    return None if engine is None else PROFILES[engine].tokenizer
