"""Retry timing for tenacity: exponential backoff with jitter, honouring Retry-After."""

from __future__ import annotations

import random

from tenacity import RetryCallState
from tenacity.stop import stop_base

from spendgraph.providers.config import RoutingConfig
from spendgraph.providers.errors import EndpointError


class BackoffWait:
    """Wait before the next attempt: the server's Retry-After if it sent one, else
    ``initial * 2**n`` capped at ``max``, with up to ``jitter`` of it randomised."""

    def __init__(self, routing: RoutingConfig, *, rng: random.Random | None = None):
        self._routing = routing
        self._rng = rng or random.Random()

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, EndpointError) and error.retry_after is not None:
            return min(error.retry_after, self._routing.retry_after_max_s)
        routing = self._routing
        base = min(
            routing.backoff_initial_s * 2 ** (state.attempt_number - 1), routing.backoff_max_s
        )
        return base * (1 - routing.backoff_jitter * self._rng.random())


class StopRetryingEndpoint(stop_base):
    """Stop retrying an endpoint once it cools down, or when it asks for a longer
    wait than ``retry_after_max_s`` (the next endpoint is better than stalling)."""

    def __init__(self, router, endpoint, routing: RoutingConfig):
        self._router = router
        self._endpoint = endpoint
        self._routing = routing

    def __call__(self, state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        retry_after = error.retry_after if isinstance(error, EndpointError) else None
        if retry_after is not None and retry_after > self._routing.retry_after_max_s:
            return True
        return self._router.cooling(self._endpoint)
