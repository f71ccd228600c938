"""Fault headers for the simulator and a routing section that retries fast (router/call tests)."""

from __future__ import annotations

import uuid

FAST_RETRY = """
[routing]
max_retries = 2
backoff_initial_s = 0.01
backoff_max_s = 0.05
breaker_min_attempts = 3
breaker_open_s = 60
"""


def fault(spec: str) -> dict[str, str]:
    """A per-request fault header, keyed uniquely so parallel tests never share counters."""
    return {"x-sim-fault": f"{spec};key={uuid.uuid4().hex}"}
