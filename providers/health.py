"""Endpoint health: a circuit breaker per endpoint, and server-imposed rate limits.

The breaker is *closed* while an endpoint works. It counts attempts and
failures in a sliding window (a ring of ``BUCKETS`` time buckets, so one
update is O(1) and nothing is allocated per attempt) and *opens* when, with at
least ``min_attempts`` in the window, the failures reach ``failure_rate`` of
them. A rate rather than a run of failures in a row: under concurrency a run
mixes many requests, and 30% transient errors would trip it all the time.

An open endpoint gets no traffic for ``open_s``; then it is *half-open*: the
next checkout is let through as the one probe, and every other request keeps
skipping the endpoint until the probe's verdict. A success closes the breaker
with an empty window; a failure opens it again. A probe that never reports
(its call was cancelled or refused before any HTTP) is given up after
``open_s`` and the next request probes instead.

A burst is counted once: every state change stamps ``changed_at``, and the
outcome of an attempt that *started* before it is ignored. So the in-flight
requests failing right after the burst that opened the breaker neither extend
the open time nor reopen it after a probe closed it, and the stragglers of an
old outage cannot decide a half-open probe. (Coalescing concurrent failures
while the breaker is closed was considered and rejected: it would count
failures and not successes once, so a busy endpoint failing 90% of its
requests would read as healthy.)

Rate limits are separate from health: a 429 whose Retry-After exceeds what a
call may wait marks the endpoint *limited* until then; it is skipped by every
call, and its breaker is left alone (the server answered).
"""

from __future__ import annotations

from enum import Enum

# Buckets per window: the window slides in steps of window_s / BUCKETS.
BUCKETS = 10


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class EndpointHealth:
    """One endpoint's breaker and rate limit; every method takes the router's ``now``."""

    __slots__ = (
        "_bucket_s",
        "_failed",
        "_head",
        "_total",
        "attempts",
        "changed_at",
        "failure_rate",
        "failures",
        "limited_until",
        "min_attempts",
        "open_s",
        "open_until",
        "probe_at",
        "state",
        "tripped",
    )

    def __init__(self, *, failure_rate: float, min_attempts: int, window_s: float, open_s: float):
        self.failure_rate = failure_rate
        self.min_attempts = min_attempts
        self.open_s = open_s
        self._bucket_s = window_s / BUCKETS
        self._total = [0] * BUCKETS  # attempts per bucket
        self._failed = [0] * BUCKETS  # failures per bucket
        self._head = 0  # absolute number of the newest bucket
        self.attempts = 0  # in the window
        self.failures = 0
        self.state = CLOSED
        self.changed_at = float("-inf")
        self.open_until = 0.0
        self.probe_at: float | None = None  # when the half-open probe was let through
        self.tripped = (0, 0)  # (failures, attempts) that last opened the breaker
        self.limited_until = 0.0

    # -- admission ---------------------------------------------------------

    def usable(self, now: float) -> bool:
        """Whether a new request may go here (without claiming the probe)."""
        if now < self.limited_until:
            return False
        state = self.state
        if state is CLOSED:
            return True
        if state is OPEN:
            return now >= self.open_until
        return self.probe_at is None or now - self.probe_at >= self.open_s

    def admit(self, now: float) -> None:
        """A request was sent here: past an open breaker's time, it is the half-open probe."""
        if self.state is not CLOSED:
            if self.state is OPEN:
                self._change(HALF_OPEN, now)
            self.probe_at = now

    # -- outcomes ----------------------------------------------------------

    def success(self, now: float, started: float) -> None:
        if started < self.changed_at:
            return  # began before the last state change: says nothing about this one
        if self.state is not CLOSED:
            self._close(now)
            return
        self._total[self._bucket(now)] += 1
        self.attempts += 1

    def failure(self, now: float, started: float) -> None:
        if started < self.changed_at:
            return
        if self.state is not CLOSED:
            self._open(now)  # the probe failed
            return
        index = self._bucket(now)
        self._total[index] += 1
        self._failed[index] += 1
        self.attempts += 1
        self.failures += 1
        if self.attempts >= self.min_attempts and self.failures >= (
            self.failure_rate * self.attempts
        ):
            self._open(now)

    def neutral(self, now: float, started: float) -> None:
        """An attempt that says nothing about health (a 400, a cancel): frees the probe."""
        if started >= self.changed_at and self.state is HALF_OPEN:
            self.probe_at = None

    def rate_limit(self, until: float) -> None:
        self.limited_until = max(self.limited_until, until)

    # -- explanations ------------------------------------------------------

    def recovers_at(self, now: float) -> float:
        """When a request may next be sent here (``now`` if it may already)."""
        at = self.limited_until
        if self.state is OPEN:
            at = max(at, self.open_until)
        elif self.state is HALF_OPEN and self.probe_at is not None:
            at = max(at, self.probe_at + self.open_s)
        return max(at, now)

    def why_unusable(self, now: float) -> str:
        """Why :meth:`usable` is false, and when that may change."""
        wait = self.recovers_at(now) - now
        if now < self.limited_until:
            return f"rate-limited by its server (Retry-After), usable again in {wait:.1f} s"
        failed, attempts = self.tripped
        if self.state is OPEN:
            return (
                f"circuit open after {failed} of {attempts} attempts failed; "
                f"a probe may go in {wait:.1f} s"
            )
        return f"circuit half-open, its probe request in flight (at most {wait:.1f} s more)"

    # -- internals ---------------------------------------------------------

    def _bucket(self, now: float) -> int:
        """The ring index for ``now``, clearing the buckets that slid out of the window."""
        bucket = int(now / self._bucket_s)
        gap = bucket - self._head
        if gap > 0:
            for step in range(1, min(gap, BUCKETS) + 1):
                index = (self._head + step) % BUCKETS
                self.attempts -= self._total[index]
                self.failures -= self._failed[index]
                self._total[index] = self._failed[index] = 0
            self._head = bucket
        return self._head % BUCKETS

    def _open(self, now: float) -> None:
        if self.state is CLOSED:
            self.tripped = (self.failures, self.attempts)
        self._change(OPEN, now)
        self.open_until = now + self.open_s

    def _close(self, now: float) -> None:
        self._change(CLOSED, now)
        self._total = [0] * BUCKETS
        self._failed = [0] * BUCKETS
        self.attempts = self.failures = 0

    def _change(self, state: BreakerState, now: float) -> None:
        self.state = state
        self.changed_at = now
        self.probe_at = None
