"""Fixtures for the fleet simulator tests: running simulators and real openai clients."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from spendgraph.providers.local.sim.server import RunningSimulator, run_simulator

# A one-replica-per-profile fleet small enough to reason about in tests.
TINY_FLEET = """
[models.tiny]
max_model_len = 8192

[profiles.TEST]
hardware = "H100"
precision = "fp8"
prefill_tokens_per_s = {prefill}
ttft_base_ms = {base_ms}
inter_token_ms = {itl_ms}
max_seqs = {max_seqs}
cache_blocks = {cache_blocks}
block_size = 16
price_input = "0.20"
price_cached_input = "0.05"
price_output = "0.20"

[[replicas]]
name = "r"
count = 2
profile = "TEST"
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    """The shipped fleet at time scale 0, shared by a test module."""
    with run_simulator(time_scale=0.0, seed=0) as running:
        yield running


@pytest.fixture
def make_client(sim: RunningSimulator) -> Iterator[Callable[..., openai.OpenAI]]:
    """``make_client(replica, server=None, **options)``: an ``openai.OpenAI`` on one replica.

    ``replica=None`` targets the fleet-wide URL; ``server`` defaults to the shared ``sim``.
    """
    clients: list[openai.OpenAI] = []

    def make(replica: str | None = "h100-fp8-0", server: RunningSimulator | None = None, **kw):
        target = server or sim
        base_url = target.replica_url(replica) if replica else target.v1_url
        options = {"api_key": "x", "max_retries": 0, "timeout": 30.0, **kw}
        client = openai.OpenAI(base_url=base_url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    """A client on replica ``h100-fp8-0`` of the shared simulator."""
    return make_client()


@pytest.fixture
def fleet_file(tmp_path: Path) -> Callable[[str], Path]:
    """``fleet_file(toml_text)``: write a fleet file and return its path."""
    counter = iter(range(1_000))

    def write(text: str) -> Path:
        path = tmp_path / f"fleet-{next(counter)}.toml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def tiny_sim(fleet_file: Callable[[str], Path]) -> Iterator[Callable[..., RunningSimulator]]:
    """``tiny_sim(time_scale=0, seed=0, extra="", **profile)``: a fresh two-replica fleet."""
    with ExitStack() as stack:

        def start(time_scale: float = 0.0, seed: int = 0, extra: str = "", **profile: float):
            figures = {
                "prefill": 10_000,
                "base_ms": 50,
                "itl_ms": 10,
                "max_seqs": 16,
                "cache_blocks": 1_000,
                **profile,
            }
            path = fleet_file(TINY_FLEET.format(**figures) + textwrap.dedent(extra))
            return stack.enter_context(run_simulator(path, time_scale=time_scale, seed=seed))

        yield start


@dataclass(frozen=True)
class Scrape:
    """One scrape of /metrics, parsed by prometheus_client."""

    samples: tuple[tuple[str, dict[str, str], float], ...]

    def sum(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            value
            for sample, sample_labels, value in self.samples
            if sample == name and labels.items() <= sample_labels.items()
        )


@pytest.fixture
def metrics() -> Callable[[RunningSimulator], Scrape]:
    """``metrics(sim)``: scrape a simulator's /metrics over HTTP."""

    def scrape(sim: RunningSimulator) -> Scrape:
        text = httpx.get(f"{sim.base_url}/metrics").text
        return Scrape(
            tuple(
                (sample.name, dict(sample.labels), sample.value)
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            )
        )

    return scrape
