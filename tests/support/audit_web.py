"""What the audit web app's tests share: a ledger of real runs, the CLI's ``--json``, and
how amounts read on a page (tests/serve/audit).

The ledger is written the way users write theirs: research_chat and dungeon
run on the fleet simulator through the real provider layer. Its B200 NVFP4
replicas answer 30% of requests with a 503 (so some calls are retried), and
one research_chat query gets a budget too small for its fan-out (so some
calls are refused); one query runs on an endpoint without a price.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from typer.testing import CliRunner

from spendgraph.cli.main import app as cli_app
from spendgraph.examples import dungeon, research_chat
from spendgraph.graph import run_graph
from spendgraph.providers import ChatRequest, ProviderLayer
from spendgraph.providers.config import example_config_path, parse_config
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.local.sim.fleet import default_fleet_path, parse_fleet
from spendgraph.providers.local.sim.layer import simulator_config
from spendgraph.providers.local.sim.server import run_simulator_async

EXAMPLE = str(example_config_path())
# research_chat's planner, a few specialists, then refusals (the planner alone needs ~$0.00003).
SMALL_BUDGET = Decimal("0.0001")
CLI_ENV = {
    "NO_COLOR": "1",
    "COLUMNS": "120",
    "TERM": "dumb",
    "SPENDGRAPH_LEDGER": None,
    "SPENDGRAPH_CONFIG": None,
}


def faulty_fleet():
    """The shipped fleet, its B200 NVFP4 replicas failing 30% of requests with a 503."""
    text = default_fleet_path().read_text()
    text = text.replace(
        'profile = "B200-NVFP4"\n', 'profile = "B200-NVFP4"\n[replicas.faults]\nrate_503 = 0.3\n', 1
    )
    return parse_fleet(text, source="faulty_fleet.toml")


# A hosted endpoint nobody priced (on the simulator): its calls' cost is unknown, never $0.
UNPRICED_TOML = """
[[endpoints]]
name = "hosted-unpriced"
base_url = "{sim}/r/h200-fp8-0/v1"
model = "sim-large"
serves = ["default"]
hardware = "other"
engine = "hosted"
"""
UNPRICED_APP = "hosted_trial"


async def record_runs(ledger_url: str) -> None:
    """Real queries into ``ledger_url``: a full research_chat, a budget-starved one, a
    dungeon action, and one query on an endpoint without a price."""
    async with run_simulator_async(faulty_fleet(), time_scale=0.0, seed=0) as sim:
        with Ledger.open(ledger_url) as ledger:
            layer = ProviderLayer(simulator_config(sim), ledger)
            try:
                await _apps(layer)
            finally:
                await layer.aclose(close_ledger=False)
            config = parse_config(UNPRICED_TOML.format(sim=sim.base_url), source="unpriced.toml")
            unpriced = ProviderLayer(config, ledger, env={})
            try:
                async with unpriced.query(app=UNPRICED_APP):
                    question = [{"role": "user", "content": "What does a B200 cost per hour?"}]
                    await unpriced.chat(ChatRequest(question, max_tokens=24))
            finally:
                await unpriced.aclose(close_ledger=False)
            await ledger.aflush()


async def _apps(layer: ProviderLayer) -> None:
    chat = research_chat.APP
    await run_graph(chat.build(), layer, chat.samples[0], options=chat.run_options())
    starved = chat.run_options(budget_usd=SMALL_BUDGET)
    await run_graph(chat.build(), layer, chat.samples[1], options=starved)
    game = dungeon.APP
    await run_graph(game.build(), layer, "look around", thread_id="g1", options=game.run_options())


def cli_json(*args: str) -> Any:
    """``spendgraph ARGS --json``, parsed (it must succeed)."""
    result = CliRunner().invoke(cli_app, [*args, "--json"], env=CLI_ENV, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def shown_money(cost: dict[str, Any]) -> str:
    """How a cost_json object reads on a page (and in the CLI's tables, without rounding)."""
    if not cost["unpriced_calls"]:
        return usd_text(cost["cost_usd"])
    if Decimal(cost["cost_known_usd"]) == 0:
        return "unknown"
    return "≥ " + usd_text(cost["cost_known_usd"])


def usd_text(amount: str | None) -> str:
    if amount is None:
        return "unknown"
    return f"-${amount[1:]}" if amount.startswith("-") else f"${amount}"


def shown_calls(row: dict[str, Any]) -> str:
    notes = [
        f"{row[key]} {word}"
        for key, word in (("failed_calls", "failed"), ("refused_calls", "refused"))
        if row[key]
    ]
    return f"{row['calls']} ({', '.join(notes)})" if notes else str(row["calls"])
