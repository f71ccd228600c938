"""`spendgraph audit show` makes rows visible whose tokens are not the server's own report."""

from __future__ import annotations

import asyncio
import contextlib
import json

from budget_runs import endpoint_toml
from misbehaving_server import Misbehaviour, misbehaving_server
from sim_faults import fault

from spendgraph.providers import ChatRequest, ProviderLayer, parse_config
from spendgraph.providers.errors import NoEndpointAvailable

QUESTION = [{"role": "user", "content": "Is the harbor open?"}]


def _one_query(ledger, toml: str, request: ChatRequest) -> str:
    async def run() -> str:
        layer = ProviderLayer(parse_config(toml, source="t.toml", env={}), ledger, env={})
        try:
            async with layer.query() as scope:
                with contextlib.suppress(NoEndpointAvailable):  # every attempt was cut
                    await layer.chat(request)
        finally:
            await layer.aclose(close_ledger=False)
        return scope.id

    return asyncio.run(run())


def test_a_row_whose_usage_report_was_impossible_is_flagged(cli, ledger):
    with misbehaving_server(Misbehaviour(usage="negative")) as url:
        query = _one_query(ledger, endpoint_toml(url), ChatRequest(QUESTION, max_tokens=8))
    result = cli("audit", "show", query, "--ledger", ledger.url)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "ok: usage_rejected" in out and "usage estimated" in out
    assert "USAGE REJECTED: the server reported impossible usage; tokens estimated instead" in out
    assert "-100" not in out and "-50" not in out
    shown = json.loads(cli("audit", "show", query, "--ledger", ledger.url, "--json").stdout)
    (call,) = shown["calls"]
    assert (call["error_kind"], call["usage_source"]) == ("usage_rejected", "estimated")


def test_a_row_booked_at_its_upper_bound_says_so(cli, ledger, sim):
    toml = f"""
[routing]
max_retries = 0
[[endpoints]]
name = "b200"
base_url = "{sim.base_url}/r/b200-nvfp4-0/v1"
model = "sim-large"
serves = ["default"]
price = {{ input = 0.04, cached_input = 0.01, output = 0.16 }}
"""
    request = ChatRequest(QUESTION, max_tokens=32, extra_headers=fault("cut_after=0"))
    query = _one_query(ledger, toml, request)
    result = cli("audit", "show", query, "--ledger", ledger.url)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "error: stream_cut" in out and "32 output" in out and "usage upper_bound" in out
    assert "OUTPUT UPPER BOUND: the answer never arrived; max_tokens booked as its output" in out
