"""Engine dialects: a replica answers like vLLM, SGLang, TensorRT-LLM, Dynamo, NIM,
llama-server, llama-cpp-python, Ollama or plain OpenAI.

Each dialect copies what its engine's server code does where a client's token
accounting can tell the difference (the sources are listed in
``spendgraph/providers/engines/profiles.py``, which the client side follows; this
module is written from the same reading but shares no code with it, so a test
of a profile against its dialect checks one against the other):

- when a stream carries usage (``stream_options.include_usage``, its default once
  ``stream_options`` is sent, never), and per-chunk cumulative usage
  (``continuous_usage_stats``);
- where cached and reasoning tokens appear (``prompt_tokens_details`` always,
  only when non-zero, only at the end, never; ``completion_tokens_details`` or
  SGLang's top-level ``reasoning_tokens``; llama-server's ``timings``);
- which request fields are refused (TensorRT-LLM's request models forbid extras);
- the tokenizer endpoint and the metric names and path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from spendgraph.providers.engines.names import EngineName

# One dialect per engine profile, by the same names.
DialectName = EngineName
Cached = Literal["always", "nonzero", "final", "never"]
Reasoning = Literal["details", "top_level", "none"]
Tokenize = Literal["vllm", "sglang", "trtllm", "llama-server", "llama-cpp-python"]
DEFAULT_DIALECT: DialectName = "vllm"

# TensorRT-LLM's ChatCompletionRequest fields (tensorrt_llm/serve/openai_protocol.py);
# anything else is "Extra inputs are not permitted" there.
TRTLLM_REQUEST_FIELDS = frozenset(
    {
        *("messages", "model", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs"),
        *("max_completion_tokens", "max_tokens", "n", "presence_penalty", "response_format"),
        *("seed", "stop", "stream", "stream_options", "temperature", "top_p", "tools"),
        *("tool_choice", "parallel_tool_calls", "user", "reasoning_effort", "thinking"),
        *("thinking_token_budget", "prompt_ignore_length", "best_of", "use_beam_search"),
        *("top_k", "top_p_min", "min_p", "repetition_penalty", "length_penalty"),
        *("early_stopping", "stop_token_ids", "include_stop_str_in_output", "ignore_eos"),
        *("min_tokens", "skip_special_tokens", "spaces_between_special_tokens"),
        *("truncate_prompt_tokens", "lora_request", "echo", "add_generation_prompt"),
        *("add_special_tokens", "documents", "chat_template", "chat_template_kwargs"),
        *("media_io_kwargs", "disaggregated_params", "conversation_params", "cache_salt"),
        *("priority", "mm_processor_kwargs"),
    }
)
TRTLLM_STREAM_OPTIONS = frozenset({"include_usage", "continuous_usage_stats"})


@dataclass(frozen=True)
class Dialect:
    """How one engine reports usage, counts tokens and exposes metrics."""

    name: DialectName
    include_usage_default: bool = False  # include_usage when stream_options omits it
    stream_usage: bool = True  # False: streams never carry usage (llama-cpp-python)
    continuous: bool = False  # honours stream_options.continuous_usage_stats
    continuous_cached: bool = False  # per-chunk usage carries prompt_tokens_details
    cached: Cached = "always"
    reasoning: Reasoning = "details"
    timings: bool = False  # llama-server's timings on the last chunk
    forbid_unknown: bool = False  # TensorRT-LLM
    chatml_prompt: bool = False  # the prompt is counted as its ChatML rendering
    tokenize: Tokenize | None = None
    metrics_path: str | None = None

    def wants_usage(self, stream_options: Mapping[str, Any] | None) -> bool:
        """Whether a stream with these ``stream_options`` ends with a usage chunk."""
        if not self.stream_usage or stream_options is None:
            return False
        value = stream_options.get("include_usage")
        return self.include_usage_default if value is None else bool(value)

    def wants_continuous(self, stream_options: Mapping[str, Any] | None) -> bool:
        """Whether every chunk carries cumulative usage."""
        return (
            self.continuous
            and self.wants_usage(stream_options)
            and bool((stream_options or {}).get("continuous_usage_stats"))
        )

    def unknown_fields(self, body: Mapping[str, Any]) -> list[str]:
        """Request fields this engine refuses (only TensorRT-LLM refuses any)."""
        if not self.forbid_unknown:
            return []
        unknown = sorted(set(body) - TRTLLM_REQUEST_FIELDS)
        options = body.get("stream_options")
        if isinstance(options, Mapping):
            unknown += [f"stream_options.{k}" for k in sorted(set(options) - TRTLLM_STREAM_OPTIONS)]
        return unknown


DIALECTS: Mapping[str, Dialect] = {
    "vllm": Dialect(
        "vllm",
        include_usage_default=True,
        continuous=True,
        tokenize="vllm",
        metrics_path="/metrics",
    ),
    "sglang": Dialect(
        "sglang",
        continuous=True,
        cached="nonzero",
        reasoning="top_level",
        tokenize="sglang",
        metrics_path="/metrics",
    ),
    "trtllm": Dialect(
        "trtllm",
        include_usage_default=True,
        continuous=True,
        continuous_cached=True,
        reasoning="none",
        forbid_unknown=True,
        tokenize="trtllm",
        metrics_path="/prometheus/metrics",
    ),
    "dynamo": Dialect("dynamo", cached="final", metrics_path="/metrics"),
    "nim": Dialect("nim", include_usage_default=True, metrics_path="/v1/metrics"),
    "llama-server": Dialect(
        "llama-server",
        reasoning="none",
        timings=True,
        chatml_prompt=True,
        tokenize="llama-server",
        metrics_path="/metrics",
    ),
    "llama-cpp-python": Dialect(
        "llama-cpp-python",
        stream_usage=False,
        cached="never",
        reasoning="none",
        chatml_prompt=True,
        tokenize="llama-cpp-python",
    ),
    "ollama": Dialect("ollama", cached="never", reasoning="none"),
    "openai": Dialect("openai"),
}


@dataclass(frozen=True)
class Counts:
    """What one answer used: prompt (cached part included), output (reasoning included)."""

    prompt: int
    cached: int
    completion: int
    reasoning: int = 0


def usage_payload(dialect: Dialect, counts: Counts, *, final: bool) -> dict[str, Any]:
    """The ``usage`` object this dialect sends: the final one, or a per-chunk one."""
    usage: dict[str, Any] = {
        "prompt_tokens": counts.prompt,
        "completion_tokens": counts.completion,
        "total_tokens": counts.prompt + counts.completion,
    }
    details = final or dialect.continuous_cached
    if details and _shows_cached(dialect.cached, counts.cached):
        usage["prompt_tokens_details"] = {"cached_tokens": counts.cached}
    if dialect.reasoning == "top_level":
        usage["reasoning_tokens"] = counts.reasoning
    elif dialect.reasoning == "details" and (counts.reasoning or dialect.name == "openai"):
        usage["completion_tokens_details"] = {"reasoning_tokens": counts.reasoning}
    return usage


def _shows_cached(rule: Cached, cached: int) -> bool:
    if rule == "never":
        return False
    return cached > 0 if rule == "nonzero" else True


def timings_payload(counts: Counts) -> dict[str, Any]:
    """llama-server's ``timings``: ``prompt_n`` is what it processed, ``cache_n`` what it reused."""
    return {
        "cache_n": counts.cached,
        "prompt_n": counts.prompt - counts.cached,
        "prompt_ms": 0.0,
        "predicted_n": counts.completion,
        "predicted_ms": 0.0,
    }
