"""`spendgraph audit queries`: one line per query, filters, sorts, and every ledger error."""

from __future__ import annotations

import json
from pathlib import Path

from spendgraph.cli.formats import LOWER_BOUND_NOTE


def _ids(result) -> list[str]:
    return [query["id"] for query in json.loads(result.stdout)["queries"]]


def test_table_lists_every_query_newest_first(cli, known_ledger):
    result = cli("audit", "queries", "--ledger", known_ledger.url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    positions = [out.index(query_id[:8]) for query_id in ("4d4d4d4d", "3c3c3c3c", "1a2b9999")]
    assert positions == sorted(positions)
    assert out.index("1a2b9999") < out.index("1a2b3c4d")
    q1_line = next(line for line in out.splitlines() if "1a2b3c4d" in line)
    cells = ("2025-03-01 12:00:00", "research_chat", "ana", "ok", "3 (1 failed)", "3,800")
    for cell in (*cells, "$0.000530", "2,000 ms"):
        assert cell in q1_line
    # The TTFT column is the first to go on a narrow terminal; a wider one shows it.
    wide = cli("audit", "queries", "--ledger", known_ledger.url, env={"COLUMNS": "140"})
    assert "80 ms" in next(line for line in wide.stdout.splitlines() if "1a2b3c4d" in line)
    q2_line = next(line for line in out.splitlines() if "1a2b9999" in line)
    # One call of Q2 has no price: its known part is a lower bound, never a total.
    assert ">= $0.000038" in q2_line
    assert LOWER_BOUND_NOTE in " ".join(out.split())
    assert "cancelled" in next(line for line in out.splitlines() if "3c3c3c3c" in line)


def test_json_has_exact_totals_and_unknown_costs_as_null(cli, known_ledger):
    result = cli("audit", "queries", "--ledger", known_ledger.url, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["truncated"] is False and payload["sort"] == "time"
    by_id = {query["id"]: query for query in payload["queries"]}
    q1 = by_id[known_ledger.q1]
    assert (q1["app"], q1["user"], q1["status"], q1["calls"]) == ("research_chat", "ana", "ok", 3)
    assert q1["tokens"] == {
        "input_uncached": 3000,
        "input_cached": 200,
        "output": 600,
        "reasoning": 40,
        "total": 3800,
    }
    assert (q1["cost_usd"], q1["unpriced_calls"]) == ("0.00053", 0)
    assert (q1["first_token_ms"], q1["latency_ms"]) == (80.0, 2000.0)
    assert q1["started_at"] == "2025-03-01T12:00:00+00:00"
    q2 = by_id[known_ledger.q2]
    assert (q2["cost_usd"], q2["cost_known_usd"], q2["unpriced_calls"]) == (None, "0.000038", 1)
    assert by_id[known_ledger.q3]["status"] == "cancelled"
    assert by_id[known_ledger.q4]["cost_usd"] == "0.0000584"


def test_sorts(cli, known_ledger):
    k = known_ledger
    by_cost = cli("audit", "queries", "--ledger", k.url, "--sort", "cost", "--json")
    assert _ids(by_cost) == [k.q1, k.q4, k.q2, k.q3]
    by_tokens = cli("audit", "queries", "--ledger", k.url, "--sort", "tokens", "--json")
    assert _ids(by_tokens) == [k.q1, k.q2, k.q4, k.q3]  # 3,800 / 2,000 / 1,020 / 350
    table = cli("audit", "queries", "--ledger", k.url, "--sort", "cost")
    assert "costliest first" in table.stdout


def test_filters(cli, known_ledger):
    k = known_ledger
    base = ("audit", "queries", "--ledger", k.url, "--json")
    assert set(_ids(cli(*base, "--app", "research_chat"))) == {k.q1, k.q3}
    assert set(_ids(cli(*base, "--user", "ana"))) == {k.q1, k.q4}
    # A bare --until date includes that whole day.
    assert _ids(cli(*base, "--since", "2025-03-02", "--until", "2025-03-02")) == [k.q2]
    assert _ids(cli(*base, "--since", "2025-03-03T12:30:00")) == [k.q4]
    # 13:00+01:00 is 12:00 UTC: Q3 started exactly then (--since is inclusive).
    assert _ids(cli(*base, "--since", "2025-03-03T13:00:00+01:00")) == [k.q4, k.q3]
    assert _ids(cli(*base, "--thread", "g1")) == [k.q2]
    assert _ids(cli(*base, "--thread", "t1", "--app", "dungeon")) == []
    filters = json.loads(cli(*base, "--app", "dungeon").stdout)["filters"]
    assert filters == {"since": None, "until": None, "app": "dungeon", "user": None, "thread": None}


def test_limit_cuts_the_list_and_says_so(cli, known_ledger):
    result = cli("audit", "queries", "--ledger", known_ledger.url, "--limit", "2", "--json")
    payload = json.loads(result.stdout)
    assert len(payload["queries"]) == 2 and payload["truncated"] is True
    table = cli("audit", "queries", "--ledger", known_ledger.url, "--limit", "2")
    assert "showing the first 2 queries" in table.stdout
    everything = cli("audit", "queries", "--ledger", known_ledger.url, "--limit", "0", "--json")
    assert len(json.loads(everything.stdout)["queries"]) == 4


def test_bad_since_is_a_usage_error_not_a_traceback(cli, known_ledger):
    result = cli("audit", "queries", "--ledger", known_ledger.url, "--since", "last tuesday")
    assert result.exit_code == 2
    assert "Invalid value for '--since'" in result.stderr
    assert "7d" in result.stderr
    assert "Traceback" not in result.output


def test_since_after_until_is_refused(cli, known_ledger):
    result = cli(
        "audit",
        "queries",
        "--ledger",
        known_ledger.url,
        "--since",
        "2025-03-05",
        "--until",
        "2025-03-01",
    )
    assert result.exit_code == 1
    assert "--since" in result.stderr and "must be before --until" in result.stderr


def test_missing_ledger_is_one_clear_error_and_creates_nothing(cli, tmp_path):
    missing = tmp_path / "nowhere.db"
    result = cli("audit", "queries", "--ledger", str(missing))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no ledger at")
    assert "spendgraph chat" in result.stderr
    assert not missing.exists()


def test_default_ledger_is_spendgraph_db_in_the_working_directory(cli):
    result = cli("audit", "summary")
    assert result.exit_code == 1
    assert "spendgraph.db" in result.stderr
    assert list(Path.cwd().iterdir()) == []  # the cli fixture's empty directory


def test_ledger_from_the_environment(cli, known_ledger):
    result = cli("audit", "queries", "--json", env={"SPENDGRAPH_LEDGER": known_ledger.url})
    assert len(json.loads(result.stdout)["queries"]) == 4


def test_a_file_that_is_not_a_ledger(cli, tmp_path):
    empty_file = tmp_path / "blank.db"
    empty_file.touch()
    result = cli("audit", "queries", "--ledger", str(empty_file))
    assert result.exit_code == 1
    assert "holds no ledger" in result.stderr
    assert "Traceback" not in result.output


def test_empty_ledger_says_so_and_succeeds(cli, empty_ledger):
    table = cli("audit", "queries", "--ledger", empty_ledger)
    assert table.exit_code == 0
    assert "is empty: no queries recorded yet" in table.stderr
    as_json = cli("audit", "queries", "--ledger", empty_ledger, "--json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["queries"] == []


def test_filters_matching_nothing_are_not_an_empty_ledger(cli, known_ledger):
    result = cli("audit", "queries", "--ledger", known_ledger.url, "--app", "nope")
    assert result.exit_code == 0
    assert "no queries match the filters" in result.stderr


def test_postgres_ledger(cli, postgres_ledger):
    result = cli("audit", "queries", "--ledger", postgres_ledger, "--sort", "cost", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert "postgresql" in payload["ledger"]
    costs = [(query["cost_usd"], query["cost_known_usd"]) for query in payload["queries"]]
    assert costs == [
        ("0.00053", "0.00053"),
        ("0.0000584", "0.0000584"),
        (None, "0.000038"),
        ("0.000016", "0.000016"),
    ]


def test_show_tree_reads_postgres_too(cli, postgres_ledger):
    result = cli("audit", "show", "4d4d", "--ledger", postgres_ledger)
    assert result.exit_code == 0, result.output
    assert "voice" in result.stdout and "$0.0000584" in result.stdout


def test_budget_refusals_are_counted_apart_from_failures(cli, refusals_ledger):
    # Wide enough for every column: on 120 the calls column is the third to go.
    table = cli("audit", "queries", "--ledger", refusals_ledger, env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    assert "4 (1 failed, 2 refused)" in table.stdout
    payload = json.loads(cli("audit", "queries", "--ledger", refusals_ledger, "--json").stdout)
    [query] = payload["queries"]
    assert (query["calls"], query["failed_calls"], query["refused_calls"]) == (4, 1, 2)
    assert (query["status"], query["cost_usd"]) == ("budget_exhausted", "0.000048")
