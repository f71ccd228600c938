"""Routing through the real simulator: policies, retries, fallback, breaker, concurrency."""

from __future__ import annotations

import asyncio
import random

import pytest
from sim_faults import FAST_RETRY, fault

from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.errors import BadRequest, NoEndpointAvailable
from spendgraph.providers.health import CLOSED, OPEN
from spendgraph.providers.ledger.records import CallStatus
from spendgraph.providers.local.sim.server import run_simulator_async
from spendgraph.providers.router import RouteRequest
from spendgraph.providers.tokens import count_chat, recipe_bounds

MESSAGES = [{"role": "user", "content": "Route me somewhere sensible."}]


def priced(name: str, replica: str, price_in: str, extra: str = "", price_out: str = "0.2") -> str:
    return f"""
    [[endpoints]]
    name = "{name}"
    base_url = "{{sim}}/r/{replica}/v1"
    model = "sim-large"
    serves = ["default"]
    price = {{ input = {price_in}, cached_input = 0.01, output = {price_out} }}
    {extra}
    """


async def test_cheapest_policy_picks_the_cheapest_endpoint(make_layer):
    layer = make_layer(
        priced("dear", "h100-fp8-0", "0.5") + priced("cheap", "b200-nvfp4-0", "0.02")
    )
    result = await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4))
    assert result.call.endpoint.name == "cheap"


async def test_a_pinned_request_goes_to_its_endpoint_whatever_the_policy(make_layer):
    layer = make_layer(
        priced("dear", "h100-fp8-0", "0.5") + priced("cheap", "b200-nvfp4-0", "0.02")
    )
    pinned = await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4, endpoint="dear"))
    assert pinned.call.endpoint.name == "dear"
    with pytest.raises(NoEndpointAvailable, match=r"'cheep'.*did you mean 'cheap'"):
        await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4, endpoint="cheep"))


async def test_retries_then_succeeds_with_one_row_per_attempt(make_layer, ledger):
    layer = make_layer(FAST_RETRY + priced("only", "b200-nvfp4-0", "0.02"))
    request = ChatRequest(
        messages=MESSAGES, max_tokens=4, extra_headers=fault("status=503;times=2")
    )
    async with layer.query() as scope:
        result = await layer.chat(request)
    ledger.flush()
    rows = sorted(ledger.calls_for_query(scope.id), key=lambda r: r.attempt)
    assert [(r.attempt, r.status, r.http_status) for r in rows] == [
        (1, CallStatus.ERROR, 503),
        (2, CallStatus.ERROR, 503),
        (3, CallStatus.OK, None),
    ]
    assert {r.request_id for r in rows} == {result.call.request_id}
    assert [r.error_kind for r in rows] == ["server_error", "server_error", None]


async def test_rate_limit_honours_retry_after(make_layer, ledger):
    layer = make_layer(FAST_RETRY + priced("only", "b200-nvfp4-0", "0.02"))
    request = ChatRequest(
        messages=MESSAGES, max_tokens=4, extra_headers=fault("status=429;retry_after=0.3;times=1")
    )
    async with layer.query() as scope:
        result = await layer.chat(request)
    ledger.flush()
    first, second = sorted(ledger.calls_for_query(scope.id), key=lambda r: r.attempt)
    assert first.error_kind == "rate_limited" and first.http_status == 429
    waited = (second.started_at - first.started_at).total_seconds()
    assert waited >= 0.3  # the server's Retry-After, not our 10 ms backoff
    assert result.call.status is CallStatus.OK


async def test_falls_back_to_the_next_endpoint_and_cools_the_failing_one(make_layer, ledger):
    layer = make_layer(
        FAST_RETRY + priced("flaky", "b200-nvfp4-0", "0.02") + priced("steady", "h200-fp8-0", "0.1")
    )
    request = ChatRequest(
        messages=MESSAGES, max_tokens=4, extra_headers=fault("status=500;times=3")
    )
    async with layer.query() as scope:
        result = await layer.chat(request)
        assert result.call.endpoint.name == "steady"
        assert layer.router.cooling(layer.endpoints["flaky"])
        # While flaky cools down, requests go straight to steady.
        again = await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4))
        assert again.attempts[0].endpoint.name == "steady"
    ledger.flush()
    rows = ledger.calls_for_query(scope.id)
    assert [r.endpoint.name for r in sorted(rows, key=lambda r: r.started_at)] == [
        "flaky",
        "flaky",
        "flaky",
        "steady",
        "steady",
    ]


async def test_bad_request_surfaces_at_once_as_a_typed_error(make_layer, ledger):
    layer = make_layer(
        FAST_RETRY + priced("a", "b200-nvfp4-0", "0.02") + priced("b", "h200-fp8-0", "0.1")
    )
    async with layer.query() as scope:
        with pytest.raises(BadRequest, match="400"):
            await layer.chat(ChatRequest(messages=[{"content": "no role"}], max_tokens=4))
    ledger.flush()
    (row,) = ledger.calls_for_query(scope.id)
    assert row.error_kind == "bad_request" and row.http_status == 400


async def test_timeout_is_retried_and_recorded(make_layer, ledger):
    layer = make_layer(
        FAST_RETRY.replace("max_retries = 2", "max_retries = 0")
        + priced("slow", "b200-nvfp4-0", "0.02", extra="timeout_s = 0.3")
        + priced("ok", "h200-fp8-0", "0.1")
    )
    request = ChatRequest(messages=MESSAGES, max_tokens=4, extra_headers=fault("delay=5;times=1"))
    async with layer.query() as scope:
        result = await layer.chat(request)
    ledger.flush()
    rows = sorted(ledger.calls_for_query(scope.id), key=lambda r: r.started_at)
    assert [(r.endpoint.name, r.error_kind) for r in rows] == [("slow", "timeout"), ("ok", None)]
    assert result.call.endpoint.name == "ok"


async def test_everything_failing_raises_no_endpoint_available(make_layer, ledger):
    layer = make_layer(FAST_RETRY + priced("only", "b200-nvfp4-0", "0.02"))
    with pytest.raises(NoEndpointAvailable, match="every endpoint"):
        await layer.chat(
            ChatRequest(messages=MESSAGES, max_tokens=4, extra_headers=fault("status=503"))
        )


@pytest.mark.parametrize("on_limit", ["overflow", "wait"])
async def test_concurrency_limit(make_layer, ledger, on_limit):
    limit = "max_concurrency = 2"
    # Time scale 0.2 makes each call last long enough (tens of ms) to overlap.
    async with run_simulator_async(time_scale=0.2) as slow:
        await _run_concurrency_case(make_layer, on_limit, limit, slow.base_url)


async def _run_concurrency_case(make_layer, on_limit, limit, url):
    layer = make_layer(
        f'[routing]\non_limit = "{on_limit}"\n'
        + priced("small", "b200-nvfp4-0", "0.02", extra=limit)
        + priced("big", "h200-fp8-0", "0.1"),
        sim_url=url,
    )
    peak = 0

    async def one():
        nonlocal peak
        result = await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=20))
        peak = max(peak, layer.router.stats["small"].in_flight)
        return result.call.endpoint.name

    async def watch():
        nonlocal peak
        for _ in range(200):
            peak = max(peak, layer.router.stats["small"].in_flight)
            await asyncio.sleep(0.002)

    names, _ = await asyncio.gather(asyncio.gather(*(one() for _ in range(6))), watch())
    assert peak <= 2
    if on_limit == "overflow":
        assert "big" in names and names.count("small") >= 2
    else:
        assert names == ["small"] * 6


def timed(name: str, replica: str, price_in: str, serves: str = '"voice"') -> str:
    return f"""
    [[endpoints]]
    name = "{name}"
    base_url = "{{sim}}/r/{replica}/v1"
    model = "sim-large"
    serves = [{serves}]
    price = {{ input = {price_in}, cached_input = 0.01, output = 0.2 }}
    """


async def stream_once(layer, target_ms: float | None = None) -> str:
    request = ChatRequest(
        messages=MESSAGES, model="voice", max_tokens=3, latency_target_ms=target_ms
    )
    async with layer.stream(request) as chunks:
        async for _ in chunks:
            pass
    return chunks.result.call.endpoint.name


@pytest.mark.parametrize("policy", ["fastest", "cheapest_within_slo"])
async def test_observed_ttft_steers_speed_aware_policies(make_layer, policy):
    # At time scale 0.5 the H100 profile's first token takes ~75 ms and the
    # B200 NVFP4 one's ~30 ms; the H100 is priced cheaper.
    tier = f'[tiers.voice]\npolicy = "{policy}"\n'
    async with run_simulator_async(time_scale=0.5) as slow:
        layer = make_layer(
            tier
            + timed("hopper", "h100-fp8-0", "0.02")
            + timed("blackwell", "b200-nvfp4-0", "0.05"),
            sim_url=slow.base_url,
        )
        # Unobserved endpoints look fast, so under a target nobody meets each is
        # tried once (cheapest first), and then both have been observed.
        first, second = await stream_once(layer, 1), await stream_once(layer, 1)
        assert {first, second} == {"hopper", "blackwell"}
        hopper, blackwell = (layer.router.stats[n].ttft_ms for n in ("hopper", "blackwell"))
        assert hopper > blackwell
        # A target between the two: only blackwell meets it.
        target = (hopper + blackwell) / 2
        assert [await stream_once(layer, target) for _ in range(3)] == ["blackwell"] * 3


async def test_within_slo_prefers_the_cheapest_endpoint_that_meets_the_target(make_layer):
    tier = '[tiers.voice]\npolicy = "cheapest_within_slo"\nlatency_target_ms = 500\n'
    async with run_simulator_async(time_scale=0.2) as slow:
        layer = make_layer(
            tier
            + timed("hopper", "h100-fp8-0", "0.02")
            + timed("blackwell", "b200-nvfp4-0", "0.05"),
            sim_url=slow.base_url,
        )
        names = [await stream_once(layer) for _ in range(4)]
    assert names == ["hopper"] * 4  # both meet 500 ms, so the cheaper one wins every time


def replica(name: str, index: int, extra: str = "") -> str:
    return f"""
    [[endpoints]]
    name = "{name}-{index}"
    base_url = "{{sim}}/r/b200-nvfp4-{index}/v1"
    model = "sim-large"
    pool = "{name}"
    serves = ["chat"]
    price = {{ input = 0.04, cached_input = 0.01, output = 0.08 }}
    {extra}
    """


AFFINITY = "[tiers.chat]\nprefix_affinity = true\n" + "".join(replica("nvfp4", i) for i in range(4))


def conversation(index: int, turns: int) -> list[list[dict[str, str]]]:
    """The prompts of each turn of one scripted conversation."""
    messages = [{"role": "system", "content": f"Support policy {index}. " * 200}]
    prompts = []
    for turn in range(turns):
        messages = [*messages, {"role": "user", "content": f"Question {turn} of chat {index}?"}]
        prompts.append(messages)
        messages = [*messages, {"role": "assistant", "content": f"Answer {turn}."}]
    return prompts


async def test_prefix_affinity_keeps_a_conversation_on_one_replica(make_layer):
    layer = make_layer(AFFINITY)
    homes = {}
    for chat in range(6):
        names = set()
        for prompt in conversation(chat, 4):
            result = await layer.chat(ChatRequest(messages=prompt, model="chat", max_tokens=4))
            names.add(result.call.endpoint.name)
        assert len(names) == 1  # every turn of a conversation on one replica
        homes[chat] = names.pop()
    assert len(set(homes.values())) > 1  # different conversations spread over the pool


async def test_prefix_affinity_moves_on_when_the_replica_cools_down(make_layer):
    layer = make_layer(FAST_RETRY + AFFINITY)
    first, second = conversation(0, 2)
    home = (await layer.chat(ChatRequest(messages=first, model="chat", max_tokens=4))).call
    failing = ChatRequest(
        messages=second,
        model="chat",
        max_tokens=4,
        extra_headers=fault(f"status=503;replica=b200-nvfp4-{home.endpoint.name[-1]}"),
    )
    result = await layer.chat(failing)
    assert result.call.endpoint.name != home.endpoint.name
    assert layer.router.cooling(layer.endpoints[home.endpoint.name])


async def test_equal_prices_spread_concurrent_requests_least_loaded_first(make_layer):
    # Four equally priced replicas, no affinity: concurrent requests must not all
    # queue on the first one.
    pool = "".join(replica("nvfp4", i) for i in range(4)).replace('pool = "nvfp4"', "")
    async with run_simulator_async(time_scale=0.2) as slow:
        layer = make_layer(pool, sim_url=slow.base_url)
        request = ChatRequest(messages=MESSAGES, model="chat", max_tokens=20)
        results = await asyncio.gather(*(layer.chat(request) for _ in range(8)))
    used = [r.call.endpoint.name for r in results]
    assert len(set(used)) == 4 and all(used.count(name) == 2 for name in set(used))


# -- the circuit breaker and long Retry-After ----------------------------------------

CALLERS, CALLS = 20, 300


def breaker_routing(max_retries: int = 2, **breaker: object) -> str:
    keys = "".join(f"breaker_{key} = {value}\n" for key, value in breaker.items())
    return (
        f"[routing]\nmax_retries = {max_retries}\nbackoff_initial_s = 0.001\n"
        f"backoff_max_s = 0.005\n{keys}"
    )


async def run_calls(layer, headers: dict[str, str]) -> list[object]:
    """CALLS calls from CALLERS concurrent callers; each call's result or exception."""
    outcomes: list[object] = []
    pending = iter(range(CALLS))

    async def caller():
        for _ in pending:
            try:
                request = ChatRequest(messages=MESSAGES, max_tokens=4, extra_headers=headers)
                outcomes.append(await layer.chat(request))
            except NoEndpointAvailable as exc:
                outcomes.append(exc)

    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return outcomes


async def test_transient_errors_under_concurrency_fail_no_more_than_retries_allow(
    make_layer, ledger
):
    # 30% of attempts fail at random; four attempts per call leave 0.3**4 = 0.8%
    # of calls failed. The old consecutive-failure cooldown failed 86% of them.
    layer = make_layer(breaker_routing(max_retries=3) + priced("only", "b200-nvfp4-0", "0.02"))
    async with layer.query() as scope:
        outcomes = await run_calls(layer, fault("status=503;rate=0.3"))
    failed = sum(isinstance(o, NoEndpointAvailable) for o in outcomes)
    assert len(outcomes) == CALLS and failed / CALLS < 0.03
    assert layer.router.health(layer.endpoints["only"]).state is CLOSED
    ledger.flush()
    rows = ledger.calls_for_query(scope.id)
    errors = sum(r.status is CallStatus.ERROR for r in rows)
    assert 0.2 < errors / len(rows) < 0.4  # every attempt is a row; about 30% of them failed


async def test_a_dead_endpoint_stops_getting_traffic_once_its_breaker_opens(make_layer, ledger):
    layer = make_layer(
        breaker_routing(open_s=60)
        + priced("dead", "b200-nvfp4-0", "0.02")
        + priced("steady", "h200-fp8-0", "0.1")
    )
    async with layer.query() as scope:
        outcomes = await run_calls(layer, fault("status=503;replica=b200-nvfp4-0"))
    assert not [o for o in outcomes if isinstance(o, Exception)]
    dead = layer.router.health(layer.endpoints["dead"])
    assert dead.state is OPEN
    ledger.flush()
    rows = [r for r in ledger.calls_for_query(scope.id) if r.endpoint.name == "dead"]
    # min_attempts (40) to open it, plus at most one in-flight attempt per caller;
    # without the breaker all 900 attempts would have gone there.
    assert len(rows) <= 40 + CALLERS


async def wait_until_usable(layer, name: str) -> None:
    for _ in range(500):
        if not layer.router.cooling(layer.endpoints[name]):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name} never became usable")


async def test_half_open_probes_with_one_request_and_recovers(make_layer, ledger):
    layer = make_layer(
        breaker_routing(min_attempts=3, open_s=0.05)
        + priced("flaky", "b200-nvfp4-0", "0.02")
        + priced("steady", "h200-fp8-0", "0.1")
    )
    flaky = layer.router.health(layer.endpoints["flaky"])
    down = fault("status=503;replica=b200-nvfp4-0")
    first = await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4, extra_headers=down))
    assert first.call.endpoint.name == "steady" and flaky.state is OPEN
    await wait_until_usable(layer, "flaky")
    # Still down: the probe (one attempt, no retries at an open breaker) fails, it reopens.
    probed = await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4, extra_headers=down))
    assert [a.endpoint.name for a in probed.attempts] == ["flaky", "steady"]
    assert flaky.state is OPEN
    await wait_until_usable(layer, "flaky")
    healed = await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4))
    assert [a.endpoint.name for a in healed.attempts] == ["flaky"] and flaky.state is CLOSED


LONG_WAIT = "[routing]\nretry_after_max_s = 1\n"


async def test_a_long_retry_after_falls_back_and_later_calls_skip_the_endpoint(make_layer, ledger):
    layer = make_layer(
        LONG_WAIT + priced("limited", "b200-nvfp4-0", "0.02") + priced("other", "h200-fp8-0", "0.1")
    )
    limited = fault("status=429;retry_after=60;replica=b200-nvfp4-0")
    result = await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4, extra_headers=limited))
    assert [(a.endpoint.name, a.error_kind) for a in result.attempts] == [
        ("limited", "rate_limited"),
        ("other", None),
    ]
    assert layer.router.cooling(layer.endpoints["limited"])
    assert layer.router.health(layer.endpoints["limited"]).state is CLOSED  # not a failure
    later = await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4))
    assert [a.endpoint.name for a in later.attempts] == ["other"]


async def test_a_long_retry_after_with_no_other_endpoint_names_the_wait(make_layer, ledger):
    layer = make_layer(LONG_WAIT + priced("only", "b200-nvfp4-0", "0.02"))
    limited = fault("status=429;retry_after=60")
    with pytest.raises(NoEndpointAvailable, match=r"rate-limited .*usable again in (59|60)\.\d s"):
        await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4, extra_headers=limited))
    async with layer.query() as scope:
        with pytest.raises(NoEndpointAvailable, match=r"no candidate endpoint is usable: 'only'"):
            await layer.chat(ChatRequest(messages=MESSAGES, max_tokens=4))
    ledger.flush()
    assert ledger.calls_for_query(scope.id) == []  # skipped without an HTTP attempt


# -- ranking by the prompt's byte bounds (no count when they rank alike) ---------


def long_conversation(words: int, question: str = "What does it say?") -> list[dict]:
    rng = random.Random(words)
    vocabulary = ("ledger", "budget", "café", "Zürich", "—", "2026", "token", "the", "GPU")
    report = " ".join(rng.choice(vocabulary) for _ in range(words))
    return [
        {"role": "system", "content": "You answer questions about the report."},
        {"role": "user", "content": "The report:\n\n" + report},
        {"role": "assistant", "content": "Read it. Ask away."},
        {"role": "user", "content": question},
    ]


def route(layer, messages, bounds) -> tuple[list[str], int]:
    counted = []

    def prompt_tokens() -> int:
        counted.append(1)
        return count_chat(messages)

    request = RouteRequest(
        model="default", prompt_tokens=prompt_tokens, max_tokens=16, prompt_bounds=bounds
    )
    return [e.name for e in layer.router.plan(request)], len(counted)


async def test_ranking_needs_no_count_when_the_bounds_rank_alike(make_layer):
    layer = make_layer(
        priced("dear", "h100-fp8-0", "0.5") + priced("cheap", "b200-nvfp4-0", "0.02")
    )
    messages = long_conversation(4000)
    with_bounds, counts = route(layer, messages, lambda: recipe_bounds(messages))
    assert counts == 0
    assert with_bounds == route(layer, messages, None)[0] == ["cheap", "dear"]


async def test_ranking_counts_when_the_order_depends_on_the_prompt(make_layer):
    # Cheap input, dear output against the reverse: which is cheaper turns on the
    # prompt's length, and the bounds straddle the point where they cross.
    layer = make_layer(
        priced("cheap_in", "h100-fp8-0", "0.01", price_out="10")
        + priced("cheap_out", "b200-nvfp4-0", "1", price_out="0.01")
    )
    crossing = (160 - 0.16) / 0.99  # tokens where 0.01 P + 10 x 16 == 1 P + 0.01 x 16
    straddled = []
    for words in (10, 200, 4000):
        messages = long_conversation(words)
        low, high = recipe_bounds(messages)
        with_bounds, counts = route(layer, messages, lambda m=messages: recipe_bounds(m))
        assert with_bounds == route(layer, messages, None)[0]
        straddled.append(low < crossing < high)
        assert (counts > 0) == straddled[-1]
    assert True in straddled and False in straddled
