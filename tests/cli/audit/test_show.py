"""`spendgraph audit show`: one query as a tree of agents and calls, with its totals."""

from __future__ import annotations

import json


def _flat(text: str) -> str:
    return " ".join(text.split())


def _block(out: str, start: str, lines: int = 3) -> str:
    """The ``lines`` lines of tree output starting at the first line containing ``start``."""
    all_lines = out.splitlines()
    index = next(i for i, line in enumerate(all_lines) if start in line)
    return _flat(" ".join(all_lines[index : index + lines]))


def test_tree_shows_agents_calls_and_totals(cli, known_ledger):
    result = cli("audit", "show", known_ledger.q1, "--ledger", known_ledger.url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert known_ledger.q1 in out
    assert "app research_chat · user ana · thread t1 · ok" in out
    # supervisor's own call (as `audit summary --by agent` counts it), then with the
    # researcher's two attempts nested under it.
    assert "supervisor 1 call, $0.000050 · with sub-agents 3 calls, $0.000530" in _flat(out)
    assert "researcher 2 calls, $0.000480" in _flat(out)
    assert out.index("supervisor") < out.index("researcher")
    first = _block(out, "b200-nvfp4-0")
    assert "B200 nvfp4 (sim) · sim-large" in first
    assert "ok · cost $0.000050 · TTFT 80 ms · latency 400 ms" in first
    assert "1,000 uncached / 200 cached / 100 output (40 reasoning) · usage reported" in first
    failed = _block(out, "h100-fp8-0")
    assert "error: server_error, HTTP 503 · cost $0" in failed
    assert "0 uncached / 0 cached / 0 output · no answer, no usage" in failed
    retried = _block(out, "attempt 2")
    assert "H100 fp8 (sim)" in retried and "cost $0.000480" in retried
    assert "2,000 uncached / 0 cached / 500 output" in retried
    totals = _flat(out[out.index("calls ") :])
    assert "calls 3" in totals
    assert "tokens 3,800 = 3,000 / 200 / 600 uncached/cached/output" in totals
    assert "cost $0.000530" in totals
    assert "first token 80 ms" in totals and "latency 2,000 ms" in totals


def test_unknown_cost_is_shown_as_unknown_never_zero(cli, known_ledger):
    result = cli("audit", "show", known_ledger.q2, "--ledger", known_ledger.url)
    assert result.exit_code == 0, result.output
    hosted = _block(result.stdout, "hosted-x")
    assert "other (hosted) · some-org/big-moe" in hosted
    assert "cost unknown" in hosted and "$0 " not in hosted
    assert "narrator 1 call, unknown · with sub-agents 2 calls, >= $0.000038" in _flat(
        result.stdout
    )
    assert "cost unknown ($0.000038 known, 1 unpriced call)" in _flat(result.stdout)


def test_cancelled_call_with_estimated_usage(cli, known_ledger):
    result = cli("audit", "show", known_ledger.q3, "--ledger", known_ledger.url)
    call = _block(result.stdout, "b200-nvfp4-0")
    assert "cancelled: cancelled · cost $0.000016" in call
    assert "usage estimated" in call
    assert "· cancelled ·" in result.stdout  # the query's own status


def test_a_refused_call_is_shown_as_never_sent(cli, refusals_ledger):
    result = cli("audit", "show", "5e5e", "--ledger", refusals_ledger)
    assert result.exit_code == 0, result.output
    out = result.stdout
    critic = _block(out, "critic", lines=4)
    assert "critic 1 call, $0" in critic
    assert "refused by the budget · cost $0" in critic
    assert "never sent, no tokens" in critic
    assert "usage reported" not in critic and "budget_denied" not in critic
    assert "calls 4 (1 failed, 2 refused)" in _flat(out)


def test_a_unique_prefix_is_enough(cli, known_ledger):
    result = cli("audit", "show", "1a2b3", "--ledger", known_ledger.url)
    assert result.exit_code == 0
    assert known_ledger.q1 in result.stdout


def test_an_ambiguous_prefix_lists_the_candidates(cli, known_ledger):
    result = cli("audit", "show", "1a2b", "--ledger", known_ledger.url)
    assert result.exit_code == 1
    message = _flat(result.stderr)
    assert "prefix '1a2b' is ambiguous" in message
    assert known_ledger.q1 in message and known_ledger.q2 in message


def test_unknown_query_id_exits_1(cli, known_ledger):
    result = cli("audit", "show", "ffff0000", "--ledger", known_ledger.url)
    assert result.exit_code == 1
    assert "no query 'ffff0000' in the ledger" in _flat(result.stderr)
    assert result.stdout == ""
    as_json = cli("audit", "show", "ffff0000", "--ledger", known_ledger.url, "--json")
    assert as_json.exit_code == 1 and as_json.stdout == ""


def test_unknown_query_in_an_empty_ledger(cli, empty_ledger):
    result = cli("audit", "show", "abc", "--ledger", empty_ledger)
    assert result.exit_code == 1
    assert "no query 'abc'" in result.stderr


def test_json_has_the_query_and_every_call(cli, known_ledger):
    result = cli("audit", "show", known_ledger.q1, "--ledger", known_ledger.url, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["query"]["id"] == known_ledger.q1
    assert payload["query"]["cost_usd"] == "0.00053"
    calls = payload["calls"]
    assert [call["agent_path"] for call in calls] == [
        "supervisor",
        "supervisor/researcher",
        "supervisor/researcher",
    ]
    assert [call["cost_usd"] for call in calls] == ["0.00005", "0", "0.00048"]
    assert [call["status"] for call in calls] == ["ok", "error", "ok"]
    failed = calls[1]
    assert (failed["error_kind"], failed["http_status"], failed["attempt"]) == (
        "server_error",
        503,
        1,
    )
    assert calls[2]["attempt"] == 2 and calls[2]["request_id"] == calls[1]["request_id"]
    first = calls[0]
    assert (first["endpoint"], first["hardware"], first["precision"], first["engine"]) == (
        "b200-nvfp4-0",
        "B200",
        "nvfp4",
        "sim",
    )
    assert (first["input_uncached"], first["input_cached"], first["output"]) == (1000, 200, 100)
    assert (first["ttft_ms"], first["latency_ms"], first["usage_source"]) == (
        80.0,
        400.0,
        "reported",
    )


def test_json_unknown_cost_is_null(cli, known_ledger):
    payload = json.loads(
        cli("audit", "show", known_ledger.q2, "--ledger", known_ledger.url, "--json").stdout
    )
    assert payload["query"]["cost_usd"] is None
    assert payload["query"]["unpriced_calls"] == 1
    assert [call["cost_usd"] for call in payload["calls"]] == [None, "0.000038"]


def test_totals_count_refusals_apart_from_failures(cli, refusals_ledger):
    result = cli("audit", "show", "5e5e", "--ledger", refusals_ledger)
    assert result.exit_code == 0, result.output
    assert "calls 4 (1 failed, 2 refused)" in _flat(result.stdout)
    assert "refused by the budget" in result.stdout
    payload = json.loads(cli("audit", "show", "5e5e", "--ledger", refusals_ledger, "--json").stdout)
    query = payload["query"]
    assert (query["calls"], query["failed_calls"], query["refused_calls"]) == (4, 1, 2)


def _overrun_ledger(tmp_path) -> tuple[str, str]:
    from decimal import Decimal

    from spendgraph.providers.ledger import Ledger
    from spendgraph.providers.ledger.records import (
        CallRecord,
        CallStatus,
        EndpointInfo,
        QueryRecord,
        QueryStatus,
    )
    from spendgraph.providers.usage import Usage

    path = str(tmp_path / "overrun.db")
    query = QueryRecord(app="a", budget_usd=Decimal("0.001"))
    call = CallRecord(
        endpoint=EndpointInfo(name="stub", model="m"),
        status=CallStatus.OK,
        usage=Usage(10, 0, 64),
        cost_usd=Decimal("0.000266"),
        price_version="v",
        query_id=query.id,
        overrun_usd=Decimal("0.000192"),
        overrun_tokens=48,
    )
    with Ledger.open(path) as ledger:
        ledger.submit_open_query(query)
        ledger.submit_call(call)
        ledger.submit_close_query(query.id, QueryStatus.BUDGET_EXHAUSTED)
        ledger.flush()
    return path, query.id


def test_an_overrunning_call_gets_its_overrun_line(cli, tmp_path):
    path, query_id = _overrun_ledger(tmp_path)
    result = cli("audit", "show", query_id, "--ledger", path)
    assert result.exit_code == 0, result.output
    assert "OVERRUN: $0.000192 and 48 tokens above its budget reservation" in _flat(result.output)
    assert "budget_exhausted" in result.output

    payload = json.loads(cli("audit", "show", query_id, "--ledger", path, "--json").stdout)
    (call,) = payload["calls"]
    assert call["overrun_usd"] == "0.000192" and call["overrun_tokens"] == 48
