"""Prometheus metrics under vLLM's names, in a registry owned by one server.

Names follow vLLM's ``/metrics`` so dashboards and the provider layer's
calibration read the simulator like a real engine: gauges
``vllm:num_requests_running`` / ``vllm:num_requests_waiting`` and counters
``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``,
``vllm:prefix_cache_queries_total``, ``vllm:prefix_cache_hits_total`` (both in
tokens, as vLLM counts them) and ``vllm:request_success_total``, labelled by
``replica`` and ``model_name``. Token counters match the usage clients receive;
a stream cut by a fault counts the tokens actually sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LABELS = ("replica", "model_name")
_TTFT_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8)


class SimMetrics:
    """All metrics of one simulator server (its own registry, never the global one)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.running = Gauge("vllm:num_requests_running", "Requests running.", _LABELS, registry=r)
        self.waiting = Gauge("vllm:num_requests_waiting", "Requests queued.", _LABELS, registry=r)
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prefill tokens.", _LABELS, registry=r)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generated tokens.", _LABELS, registry=r
        )
        self.cache_queries = Counter(
            "vllm:prefix_cache_queries", "Prompt tokens looked up.", _LABELS, registry=r
        )
        self.cache_hits = Counter(
            "vllm:prefix_cache_hits", "Prompt tokens found cached.", _LABELS, registry=r
        )
        self.success = Counter(
            "vllm:request_success",
            "Finished requests.",
            (*_LABELS, "finished_reason"),
            registry=r,
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Simulated time to first token (before time scaling).",
            _LABELS,
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.faults = Counter(
            "sim:faults_injected", "Injected faults.", ("replica", "kind"), registry=r
        )
        for replica, model in pairs:  # export zeros before the first request
            for family in (self.running, self.waiting, self.prompt_tokens, self.generation_tokens):
                family.labels(replica, model)
            self.cache_queries.labels(replica, model)
            self.cache_hits.labels(replica, model)

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
