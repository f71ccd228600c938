"""The circuit breaker as a unit: times are passed in, nothing sleeps."""

from __future__ import annotations

import random

from spendgraph.providers.health import CLOSED, HALF_OPEN, OPEN, EndpointHealth


def breaker(**overrides) -> EndpointHealth:
    settings = {"failure_rate": 0.5, "min_attempts": 10, "window_s": 10.0, "open_s": 30.0}
    return EndpointHealth(**(settings | overrides))


def test_a_failure_rate_below_the_threshold_never_opens():
    health, rng = breaker(min_attempts=40), random.Random(0)
    for step in range(5000):  # 30% transient failures, five minutes of traffic
        now = 100.0 + step * 0.06
        if rng.random() < 0.3:
            health.failure(now, now - 0.01)
        else:
            health.success(now, now - 0.01)
        assert health.state is CLOSED


def test_opens_only_with_enough_attempts_in_the_window():
    health = breaker()
    for step in range(9):
        health.failure(100.0 + step * 0.01, 100.0)
    assert health.state is CLOSED  # 9 of 9 failed, but 9 < min_attempts
    health.failure(100.1, 100.0)
    assert health.state is OPEN and not health.usable(100.2)
    assert "circuit open after 10 of 10 attempts failed" in health.why_unusable(100.2)


def test_old_attempts_slide_out_of_the_window():
    health = breaker()
    for step in range(9):
        health.failure(100.0 + step * 0.01, 100.0)
    health.failure(111.0, 110.9)  # the nine earlier failures are older than window_s
    assert health.state is CLOSED and health.attempts == 1


def test_successes_keep_it_closed():
    health = breaker()
    for step in range(100):
        now = 100.0 + step * 0.01
        (health.failure if step % 3 == 0 else health.success)(now, now)
    assert health.state is CLOSED and health.failures == 34 and health.attempts == 100


def test_the_rest_of_a_burst_is_counted_once():
    health = breaker()
    for _ in range(10):  # the burst that opens it
        health.failure(100.0, 99.9)
    opened_until = health.open_until
    for _ in range(30):  # requests in flight with the burst fail later: ignored
        health.failure(100.5, 99.95)
    assert health.open_until == opened_until


def test_half_open_lets_one_probe_through_and_its_success_closes():
    health = breaker()
    for _ in range(10):
        health.failure(100.0, 99.9)
    assert not health.usable(129.9) and health.usable(130.0)
    health.admit(130.0)
    assert health.state is HALF_OPEN and not health.usable(130.0)  # one probe at a time
    health.failure(130.1, 99.95)  # a straggler of the outage does not decide it
    assert health.state is HALF_OPEN
    health.success(130.2, 130.0)
    assert health.state is CLOSED and health.usable(130.2) and health.attempts == 0


def test_a_failed_probe_opens_it_again():
    health = breaker()
    for _ in range(10):
        health.failure(100.0, 99.9)
    health.admit(130.0)
    health.failure(130.1, 130.0)
    assert health.state is OPEN and health.open_until == 160.1


def test_a_probe_that_never_reports_is_replaced_after_open_s():
    health = breaker()
    for _ in range(10):
        health.failure(100.0, 99.9)
    health.admit(130.0)
    assert not health.usable(159.9) and health.usable(160.0)
    health.neutral(130.5, 130.0)  # a neutral verdict (a 400, a cancel) frees the probe at once
    assert health.usable(130.5)


def test_a_rate_limit_is_skipped_until_it_ends_and_leaves_the_breaker_alone():
    health = breaker()
    health.rate_limit(160.0)
    assert not health.usable(159.0) and health.usable(160.0)
    assert health.state is CLOSED
    assert "rate-limited" in health.why_unusable(100.0)
    assert health.recovers_at(100.0) == 160.0
