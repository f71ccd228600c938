"""One replica's token counters in its engine's metric names, at its engine's path.

The fleet-wide ``/metrics`` keeps vLLM's names for every replica (see
:mod:`.metrics`); ``/r/<replica>/<path>`` answers in the replica's dialect:

=============  =====================  =========================================
dialect        path                   prompt / generation / cached
=============  =====================  =========================================
vllm           /metrics               vllm:prompt_tokens_total, vllm:generation_tokens_total,
                                      vllm:prefix_cache_hits_total
sglang         /metrics               sglang:prompt_tokens_total, sglang:generation_tokens_total,
                                      sglang:cached_tokens_total
trtllm         /prometheus/metrics    trtllm_prompt_tokens_total, trtllm_generation_tokens_total,
                                      trtllm_prompt_cached_tokens_total
dynamo         /metrics               dynamo_frontend_{input_sequence,output_sequence,cached}_tokens
                                      histograms (their _sum)
nim            /v1/metrics            prompt_tokens_total, generation_tokens_total
llama-server   /metrics               llamacpp:prompt_tokens_total (processed: uncached only),
                                      llamacpp:tokens_predicted_total
=============  =====================  =========================================
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class ModelTotals:
    """Running token totals of one model on one replica."""

    requests: int = 0
    prompt: int = 0
    cached: int = 0
    generation: int = 0


@dataclass
class ReplicaTotals:
    """Token totals by model, as the replica's engine would count them."""

    models: dict[str, ModelTotals] = field(default_factory=dict)

    def of(self, model: str) -> ModelTotals:
        return self.models.setdefault(model, ModelTotals())


def _line(name: str, labels: dict[str, str], value: float) -> str:
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{text}}} {value:g}"


def _counter(name: str, series: list[tuple[dict[str, str], float]]) -> Iterator[str]:
    base = name.removesuffix("_total")
    yield f"# HELP {base} Token counter."
    yield f"# TYPE {base} counter"
    for labels, value in series:
        yield _line(name, labels, value)


def _histogram(name: str, series: list[tuple[dict[str, str], float, int]]) -> Iterator[str]:
    yield f"# HELP {name} Tokens per request."
    yield f"# TYPE {name} histogram"
    for labels, total, count in series:
        yield _line(f"{name}_bucket", {**labels, "le": "+Inf"}, count)
        yield _line(f"{name}_sum", labels, total)
        yield _line(f"{name}_count", labels, count)


def render(dialect: str, totals: ReplicaTotals) -> str | None:
    """The exposition text of ``totals`` in ``dialect``'s names; None: it has no metrics."""
    rows = sorted(totals.models.items())

    def series(label: str, pick) -> list[tuple[dict[str, str], float]]:
        return [({label: model}, pick(t)) for model, t in rows]

    lines: list[str] = []
    if dialect in ("vllm", "sglang", "trtllm", "nim"):
        prefix = {"vllm": "vllm:", "sglang": "sglang:", "trtllm": "trtllm_", "nim": ""}[dialect]
        cached = {
            "vllm": "prefix_cache_hits_total",
            "sglang": "cached_tokens_total",
            "trtllm": "prompt_cached_tokens_total",
        }.get(dialect)
        label = "model_name"
        lines += _counter(f"{prefix}prompt_tokens_total", series(label, lambda t: t.prompt))
        lines += _counter(f"{prefix}generation_tokens_total", series(label, lambda t: t.generation))
        if cached is not None:
            lines += _counter(f"{prefix}{cached}", series(label, lambda t: t.cached))
    elif dialect == "llama-server":
        lines += _counter(
            "llamacpp:prompt_tokens_total", [({}, sum(t.prompt - t.cached for _, t in rows))]
        )
        lines += _counter(
            "llamacpp:tokens_predicted_total", [({}, sum(t.generation for _, t in rows))]
        )
    elif dialect == "dynamo":
        for name, pick in (
            ("input_sequence_tokens", lambda t: t.prompt),
            ("output_sequence_tokens", lambda t: t.generation),
            ("cached_tokens", lambda t: t.cached),
        ):
            data = [({"model": m}, pick(t), t.requests) for m, t in rows]
            lines += _histogram(f"dynamo_frontend_{name}", data)
    else:
        return None
    return "\n".join(lines) + "\n"
