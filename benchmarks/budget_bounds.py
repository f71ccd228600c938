"""Budget bounds against misbehaving servers: how far a query can overshoot its budget.

Each case is 50 concurrent calls in one ``layer.query(budget_usd=...)`` against
a stub server on loopback (tests/support/misbehaving_server.py): its tokenizer
counting 1.5x tiktoken (with and without a ``/tokenize`` endpoint), or it
ignoring ``max_tokens`` (4x), streamed and not; and whether a price with
``cached_input`` above ``input`` loads. Runs in a few seconds.

    python benchmarks/budget_bounds.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from budget_runs import endpoint_toml, run_query
from misbehaving_server import Misbehaviour, misbehaving_server

from spendgraph.providers.config import parse_config
from spendgraph.providers.ledger import Ledger

CASES = (
    ("tokenizer 1.5x, server has /tokenize", Misbehaviour(scale=1.5), "vllm"),
    ("tokenizer 1.5x, no tokenizer endpoint", Misbehaviour(scale=1.5), "none"),
    ("ignores max_tokens (4x)", Misbehaviour(overgen=4), "none"),
)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Ledger.open(f"sqlite:///{tmp}/l.db") as ledger:
        for label, how, api in CASES:
            with misbehaving_server(how) as url:
                for stream in (False, True):
                    spend = await run_query(
                        endpoint_toml(url, tokenize_api=api), ledger, stream=stream
                    )
                    print(spend.line(f"{label}, {'streamed' if stream else 'non-streamed'}"))
    rates = "input = 1.0\ncached_input = 37.0\noutput = 4.0"
    try:
        parse_config(endpoint_toml("http://127.0.0.1:1", rates=rates), source="budget.toml", env={})
        print("cached_input 37 > input 1: accepted by the loader")
    except Exception as exc:
        print(f"cached_input 37 > input 1: refused: {exc}")


if __name__ == "__main__":
    asyncio.run(main())
