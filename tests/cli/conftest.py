"""CLI fixtures: typer's runner with a fixed terminal, and a ledger with known contents.

The known ledger is written through the real :class:`Ledger` (so the audit
reads exactly what the provider layer would have recorded). Its figures are
chosen so every total can be checked by hand; prices are the example
config's: B200 NVFP4 $0.04 / $0.01 / $0.08 and H100 FP8 $0.16 / $0.04 / $0.32
per million uncached / cached / output tokens.

    query app            user status    agent path             endpoint tokens unc/cach/out cost
    Q1    research_chat  ana  ok         supervisor             b200     1000/200/100  0.00005
                                         supervisor/researcher  h100     0/0/0         0 (503)
                                         supervisor/researcher  h100     2000/0/500    0.00048
    Q2    dungeon        bob  ok         narrator               hosted   500/0/300     unknown
                                         narrator/npc           b200     400/600/200   0.000038
    Q3    research_chat  bob  cancelled  supervisor             b200     300/0/50      0.000016
    Q4    voice_support  ana  ok         voice/draft            h100     100/900/20    0.0000584
    --    (no query)                     (no agent)             b200     100/0/10      0.0000048

(The 503 is attempt 1 of the researcher's request, the 0.00048 call its
attempt 2; Q3's call was cancelled and its usage estimated.) ``refusals_ledger``
holds one more query whose budget refused two calls after one failed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from spendgraph.cli.main import app
from spendgraph.providers.ledger import (
    CallRecord,
    CallStatus,
    EndpointInfo,
    Ledger,
    QueryRecord,
    QueryStatus,
    redact_url,
)
from spendgraph.providers.usage import Usage, UsageSource

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
B200 = EndpointInfo("b200-nvfp4-0", "sim-large", "B200", "nvfp4", "sim")
H100 = EndpointInfo("h100-fp8-0", "sim-large", "H100", "fp8", "sim")
HOSTED = EndpointInfo("hosted-x", "some-org/big-moe", "other", "", "hosted")

Q1 = "1a2b3c4d" + "0" * 24
Q2 = "1a2b9999" + "0" * 24  # shares the prefix 1a2b with Q1
Q3 = "3c3c3c3c" + "0" * 24
Q4 = "4d4d4d4d" + "0" * 24

TERMINAL_ENV = {
    "NO_COLOR": "1",
    "COLUMNS": "120",
    "TERM": "dumb",
    # None unsets: the developer's own ledger or config must never leak in.
    "SPENDGRAPH_LEDGER": None,
    "SPENDGRAPH_CONFIG": None,
    "SPENDGRAPH_SIM_URL": None,
}
POSTGRES_ENV = "SPENDGRAPH_TEST_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _call(query_id: str | None, seconds: float, **fields: Any) -> CallRecord:
    defaults: dict[str, Any] = {
        "endpoint": B200,
        "status": CallStatus.OK,
        "price_version": "example",
        "query_id": query_id,
        "started_at": _at(seconds),
        "stream": True,
    }
    return CallRecord(**{**defaults, **fields})


def _known_rows() -> tuple[
    list[QueryRecord], list[CallRecord], list[tuple[str, QueryStatus, float]]
]:
    day = 86_400.0
    queries = [
        QueryRecord(app="research_chat", user="ana", thread_id="t1", started_at=_at(0), id=Q1),
        QueryRecord(app="dungeon", user="bob", thread_id="g1", started_at=_at(day), id=Q2),
        QueryRecord(
            app="research_chat", user="bob", thread_id="t2", started_at=_at(2 * day), id=Q3
        ),
        QueryRecord(
            app="voice_support", user="ana", thread_id="v1", started_at=_at(2 * day + 3600), id=Q4
        ),
    ]
    calls = [
        _call(Q1, 0.1, agent_path="supervisor", usage=Usage(1000, 200, 100, 40),
              cost_usd=Decimal("0.00005"), ttft_ms=80.0, latency_ms=400.0, request_id="r1"),
        _call(Q1, 0.5, agent_path="supervisor/researcher", endpoint=H100, status=CallStatus.ERROR,
              usage=Usage(), cost_usd=Decimal(0), error_kind="server_error", http_status=503,
              latency_ms=50.0, request_id="r2"),
        _call(Q1, 0.6, agent_path="supervisor/researcher", endpoint=H100,
              usage=Usage(2000, 0, 500), cost_usd=Decimal("0.00048"), ttft_ms=150.0,
              latency_ms=1200.0, request_id="r2", attempt=2),
        _call(Q2, day + 0.1, agent_path="narrator", endpoint=HOSTED, usage=Usage(500, 0, 300),
              cost_usd=None, price_version="unknown", ttft_ms=300.0, latency_ms=2000.0),
        _call(Q2, day + 2.2, agent_path="narrator/npc", usage=Usage(400, 600, 200),
              cost_usd=Decimal("0.000038"), ttft_ms=60.0, latency_ms=500.0),
        _call(Q3, 2 * day + 0.1, agent_path="supervisor", status=CallStatus.CANCELLED,
              usage=Usage(300, 0, 50, source=UsageSource.ESTIMATED),
              cost_usd=Decimal("0.000016"), error_kind="cancelled", ttft_ms=70.0,
              latency_ms=800.0),
        _call(Q4, 2 * day + 3600.1, agent_path="voice/draft", endpoint=H100,
              usage=Usage(100, 900, 20), cost_usd=Decimal("0.0000584"), ttft_ms=90.0,
              latency_ms=300.0),
        _call(None, 3 * day, usage=Usage(100, 0, 10), cost_usd=Decimal("0.0000048")),
    ]  # fmt: skip
    closes = [
        (Q1, QueryStatus.OK, 2.0),
        (Q2, QueryStatus.OK, day + 3.0),
        (Q3, QueryStatus.CANCELLED, 2 * day + 1.0),
        (Q4, QueryStatus.OK, 2 * day + 3600.5),
    ]
    return queries, calls, closes


def write_known_ledger(url: str) -> None:
    """Record the table in the module docstring into the ledger at ``url``."""
    queries, calls, closes = _known_rows()
    with Ledger.open(url) as ledger:
        for query in queries:
            ledger.submit_open_query(query)
        for call in calls:
            ledger.submit_call(call)
        for query_id, status, seconds in closes:
            ledger.submit_close_query(query_id, status, finished_at=_at(seconds))
        ledger.flush()


@pytest.fixture(scope="session")
def known_ledger(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A SQLite ledger with the known contents; read-only for tests (shared by the session)."""
    path = tmp_path_factory.mktemp("known") / "ledger.db"
    write_known_ledger(str(path))
    return SimpleNamespace(path=path, url=str(path), q1=Q1, q2=Q2, q3=Q3, q4=Q4)


REFUSED_QUERY = "5e5e5e5e" + "0" * 24


@pytest.fixture
def refusals_ledger(tmp_path) -> str:
    """One query: a 503, its successful retry, then two calls the budget refused."""
    path = str(tmp_path / "refusals.db")
    denied = {"status": CallStatus.BUDGET_DENIED, "usage": Usage(), "cost_usd": Decimal(0)}
    calls = [
        _call(REFUSED_QUERY, 0.1, agent_path="writer", status=CallStatus.ERROR, usage=Usage(),
              cost_usd=Decimal(0), error_kind="server_error", http_status=503),
        _call(REFUSED_QUERY, 0.2, agent_path="writer", usage=Usage(1000, 0, 100),
              cost_usd=Decimal("0.000048"), attempt=2),
        _call(REFUSED_QUERY, 0.3, agent_path="writer", error_kind="budget_denied", **denied),
        _call(REFUSED_QUERY, 0.4, agent_path="critic", error_kind="budget_denied", **denied),
    ]  # fmt: skip
    with Ledger.open(path) as ledger:
        ledger.submit_open_query(QueryRecord(app="research_chat", id=REFUSED_QUERY, started_at=T0))
        for call in calls:
            ledger.submit_call(call)
        ledger.submit_close_query(REFUSED_QUERY, QueryStatus.BUDGET_EXHAUSTED, finished_at=_at(1))
        ledger.flush()
    return path


@pytest.fixture
def empty_ledger(tmp_path) -> str:
    """A ledger that exists but holds nothing."""
    path = tmp_path / "empty.db"
    Ledger.open(str(path)).close()
    return str(path)


@pytest.fixture
def postgres_ledger() -> Iterator[str]:
    """A PostgreSQL ledger URL with the known contents, in a schema of its own."""
    server = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
    try:
        with psycopg.connect(server, connect_timeout=5):
            pass
    except psycopg.Error as exc:
        pytest.fail(f"this test needs PostgreSQL at {redact_url(server)}: {exc}", pytrace=False)
    schema = f"spendgraph_cli_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in server else "?"
    url = f"{server}{separator}options=-csearch_path%3D{schema}"
    try:
        write_known_ledger(url)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


class Cli:
    """Runs ``spendgraph`` commands in-process with a fixed, colourless 120-column terminal."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return self.runner.invoke(
            app, list(args), env={**TERMINAL_ENV, **(env or {})}, catch_exceptions=False
        )


@pytest.fixture
def cli(tmp_path, monkeypatch) -> Cli:
    """The runner, in an empty working directory (no stray ./spendgraph.toml or .db)."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return Cli()
