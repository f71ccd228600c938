"""Failed calls under transient 5xx errors: the circuit breaker must not make them worse.

One endpoint on the in-process fleet simulator (time scale 0) fails a random
fraction ``p`` of attempts with a 503 (the ``x-sim-fault: status=503;rate=p``
header). ``--callers`` concurrent callers make ``--calls`` calls each with the
default breaker settings. With ``max_retries`` retries a call fails only when
every attempt does, so retries alone give ``p ** (max_retries + 1)`` failed
calls and ``(1 - p**a) / (1 - p)`` attempts per call; the table shows both
next to what was measured.

    python benchmarks/transient_faults.py --calls 300 --callers 20 --rates 0.1,0.3
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.config import parse_config
from spendgraph.providers.errors import NoEndpointAvailable
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.local.sim.server import run_simulator_async

CONFIG = """
[routing]
max_retries = {max_retries}
backoff_initial_s = 0.001
backoff_max_s = 0.005

[[endpoints]]
name = "only"
base_url = "{sim}/r/b200-nvfp4-0/v1"
model = "sim-large"
serves = ["default"]
price = {{ input = 0.04, cached_input = 0.01, output = 0.08 }}
"""
MESSAGES = [{"role": "user", "content": "Count the attempts of this call."}]


async def measure(sim_url: str, ledger: Ledger, rate: float, args) -> tuple[float, float, str]:
    """Failed fraction, attempts per call and the breaker's final state at one fault rate."""
    text = CONFIG.format(max_retries=args.max_retries, sim=sim_url)
    layer = ProviderLayer(parse_config(text, source="bench.toml", env={}), ledger, env={})
    headers = {"x-sim-fault": f"status=503;rate={rate};key={uuid.uuid4().hex}"}
    pending = iter(range(args.calls))
    failed = attempts = 0

    async def caller():
        nonlocal failed, attempts
        for _ in pending:
            request = ChatRequest(messages=MESSAGES, max_tokens=4, extra_headers=headers)
            try:
                made = len((await layer.chat(request)).attempts)  # awaited before the +=
            except NoEndpointAvailable as exc:
                failed, made = failed + 1, len(exc.attempts)
            attempts += made

    try:
        await asyncio.gather(*(caller() for _ in range(args.callers)))
        state = layer.router.health(layer.endpoints["only"]).state.value
    finally:
        await layer.aclose(close_ledger=False)
    return failed / args.calls, attempts / args.calls, state


async def main(args) -> None:
    table = Table(title=f"{args.calls} calls, {args.callers} callers, {args.max_retries} retries")
    for column in ("5xx rate", "failed", "p^attempts", "attempts/call", "expected", "breaker"):
        table.add_column(column, justify="right")
    tries = args.max_retries + 1
    with (
        tempfile.TemporaryDirectory() as tmp,
        Ledger.open(f"sqlite:///{Path(tmp) / 'l.db'}") as ledger,
    ):
        async with run_simulator_async(time_scale=0.0, seed=args.seed) as sim:
            for rate in args.rates:
                failed, per_call, state = await measure(sim.base_url, ledger, rate, args)
                table.add_row(
                    f"{rate:.0%}",
                    f"{failed:.2%}",
                    f"{rate**tries:.2%}",
                    f"{per_call:.2f}",
                    f"{(1 - rate**tries) / (1 - rate):.2f}",
                    state,
                )
    Console().print(table)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--callers", type=int, default=20)
    parser.add_argument("--max-retries", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rates", type=lambda text: [float(r) for r in text.split(",")], default=[0.1, 0.3]
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
