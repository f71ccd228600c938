"""``spendgraph budgets set|remove|show|reconcile`` on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from pg_schema import fresh_schema_url

from spendgraph.providers.budgets import (
    Allowance,
    HoldRequest,
    Period,
    PostgresBudgetStore,
    ScopeKey,
    ScopeKind,
    period_start,
)
from spendgraph.providers.ledger import Ledger, new_sequential_id, utcnow


@pytest.fixture
def sqlite_ledger(tmp_path) -> str:
    return str(tmp_path / "ledger.db")


@pytest.fixture
def pg_ledger_url() -> Iterator[str]:
    with fresh_schema_url("spendgraph_cli_budgets") as url:
        Ledger.open(url).close()
        yield url


def acme_month() -> ScopeKey:
    return ScopeKey(ScopeKind.TENANT, "acme", Period.MONTH, period_start(Period.MONTH, utcnow()))


def test_set_show_and_remove_on_sqlite(cli, sqlite_ledger):
    stored = cli(
        "budgets", "set", "--scope", "tenant", "--id", "acme", "--period", "month",
        "--usd", "100", "--ledger", sqlite_ledger,
    )  # fmt: skip
    assert stored.exit_code == 0, stored.output
    assert "$100 per month for tenant 'acme'" in stored.output
    assert cli(
        "budgets", "set", "--scope", "user", "--period", "day", "--tokens", "5000",
        "--ledger", sqlite_ledger,
    ).exit_code == 0  # fmt: skip
    shown = cli("budgets", "show", "--ledger", sqlite_ledger)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    acme = next(line for line in lines if "acme" in line).split()
    assert acme[:4] == ["tenant", "acme", "month", acme_month().period_start.strftime("%Y-%m")]
    assert acme[4:] == ["$100", "$0", "–", "$100.000000"]  # held: in a process's memory on SQLite
    assert any(line.split()[:3] == ["user", "each", "day"] for line in lines)
    payload = json.loads(cli("budgets", "show", "--json", "--ledger", sqlite_ledger).stdout)
    assert payload["shared_store"] is False
    assert [(limit["scope"], limit["id"]) for limit in payload["limits"]] == [
        ("tenant", "acme"),
        ("user", None),
    ]
    assert payload["limits"][0]["left"] == {"usd": "100", "tokens": None}
    removed = cli(
        "budgets", "remove", "--scope", "tenant", "--id", "acme", "--period", "month",
        "--ledger", sqlite_ledger,
    )  # fmt: skip
    assert removed.exit_code == 0 and "removed" in removed.output
    payload = json.loads(cli("budgets", "show", "--json", "--ledger", sqlite_ledger).stdout)
    assert [limit["scope"] for limit in payload["limits"]] == ["user"]


def test_setting_again_replaces_the_limit(cli, sqlite_ledger):
    for usd in ("100", "250"):
        cli("budgets", "set", "--scope", "app", "--id", "shop", "--period", "day",
            "--usd", usd, "--ledger", sqlite_ledger)  # fmt: skip
    payload = json.loads(cli("budgets", "show", "--json", "--ledger", sqlite_ledger).stdout)
    assert [(limit["id"], limit["usd"]) for limit in payload["limits"]] == [("shop", "250")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "tenant", "--id", "acme", "--usd", "1"], "--period day or month is needed"),
        (["--scope", "tenant", "--period", "month", "--usd", "-1"], "must be > 0"),
        (["--scope", "tenant", "--period", "month", "--usd", "lots"], "'lots' is not an amount"),
        (["--scope", "tenant", "--period", "month"], "needs usd and/or tokens"),
        (["--scope", "user", "--period", "query", "--usd", "1"], "period 'query' goes with"),
    ],
)
def test_a_bad_limit_is_one_line_and_exit_1(cli, sqlite_ledger, args, message):
    result = cli("budgets", "set", *args, "--ledger", sqlite_ledger)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_removing_a_limit_that_is_not_there_fails(cli, sqlite_ledger):
    Ledger.open(sqlite_ledger).close()
    result = cli(
        "budgets", "remove", "--scope", "tenant", "--id", "acme", "--period", "month",
        "--ledger", sqlite_ledger,
    )  # fmt: skip
    assert result.exit_code == 1 and "no stored limit for tenant 'acme' per month" in result.stderr


def test_show_does_not_create_a_ledger(cli, tmp_path):
    missing = tmp_path / "nowhere.db"
    result = cli("budgets", "show", "--ledger", str(missing))
    assert result.exit_code == 1 and "no ledger at" in result.stderr
    assert not missing.exists()


async def test_show_and_reconcile_on_postgres(cli, pg_ledger_url):
    assert cli(
        "budgets", "set", "--scope", "tenant", "--id", "acme", "--period", "month",
        "--usd", "1", "--tokens", "1000", "--ledger", pg_ledger_url,
    ).exit_code == 0  # fmt: skip
    with Ledger.open(pg_ledger_url) as ledger:
        store = PostgresBudgetStore.for_engine(ledger.engine)
        allowance = Allowance(acme_month(), usd=Decimal(1), tokens=1000)
        soon, later = utcnow() + timedelta(seconds=3), utcnow() + timedelta(minutes=5)
        settled = await store.reserve(
            HoldRequest(new_sequential_id(), (allowance,), Decimal("0.3"), 100, later)
        )
        await store.settle(settled, usd=Decimal("0.25"), tokens=80)
        await store.reserve(
            HoldRequest(new_sequential_id(), (allowance,), Decimal("0.1"), 50, later)
        )
        stray = HoldRequest(new_sequential_id(), (allowance,), Decimal("0.2"), 10, soon)
        await store.reserve(stray)
        await store.aclose()
    payload = json.loads(cli("budgets", "show", "--json", "--ledger", pg_ledger_url).stdout)
    (acme,) = payload["limits"]
    assert payload["shared_store"] is True
    assert acme["spent"] == {"usd": "0.25", "tokens": 80}
    assert acme["held"] == {"usd": "0.3", "tokens": 60}
    table = cli("budgets", "show", "--ledger", pg_ledger_url).output
    assert "1,000 tok" in table and "$0.250000" in table
    # Once the stray hold expired, it counts no more; reconcile releases it (no call row).
    await asyncio.sleep((stray.expires_at - utcnow()).total_seconds() + 0.1)
    payload = json.loads(cli("budgets", "show", "--json", "--ledger", pg_ledger_url).stdout)
    assert payload["limits"][0]["held"] == {"usd": "0.1", "tokens": 50}
    assert payload["limits"][0]["left"] == {"usd": "0.65", "tokens": 870}
    done = json.loads(cli("budgets", "reconcile", "--json", "--ledger", pg_ledger_url).stdout)
    assert (done["settled"], done["released"]) == (0, 1)
