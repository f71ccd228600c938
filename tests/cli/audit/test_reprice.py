"""`spendgraph audit reprice --on NAME`: recorded token buckets x another price, exactly.

Every expected figure below is worked out by hand from the known ledger's
buckets (see conftest.py) and the target's rates per million tokens.
"""

from __future__ import annotations

import json
from decimal import Decimal

from spendgraph.providers.config import example_config_path

EXAMPLE = str(example_config_path())

# Hopper pool `hopper-h100-fp8` of the example config: $0.16 uncached, $0.04 cached, $0.32 output.
#   Q1 supervisor  1,000 x 0.16 + 200 x 0.04 + 100 x 0.32 = 160 + 8 + 32   = 200   -> $0.0002
#      503 error   0 tokens                                                       -> $0
#      researcher  2,000 x 0.16 + 500 x 0.32             = 320 + 160       = 480   -> $0.00048
#                                                   Q1 = $0.00068 (actual $0.00053)
#   Q2 narrator      500 x 0.16 + 300 x 0.32             = 80 + 96         = 176   -> $0.000176
#      npc           400 x 0.16 + 600 x 0.04 + 200 x 0.32 = 64 + 24 + 64   = 152   -> $0.000152
#                                                   Q2 = $0.000328 (actual unknown: unpriced call)
#   Q3               300 x 0.16 + 50 x 0.32              = 48 + 16         = 64    -> $0.000064
#   Q4               100 x 0.16 + 900 x 0.04 + 20 x 0.32 = 16 + 36 + 6.4   = 58.4  -> $0.0000584
#   no query         100 x 0.16 + 10 x 0.32              = 16 + 3.2        = 19.2  -> $0.0000192
HOPPER_Q1 = "0.00068"
HOPPER_Q2 = "0.000328"
HOPPER_TOTAL = "0.0011496"  # 0.00068 + 0.000328 + 0.000064 + 0.0000584 + 0.0000192
ACTUAL_PRICED = "0.0006472"  # every recorded cost; the narrator's is unknown
HOPPER_PRICED = "0.0009736"  # HOPPER_TOTAL - 0.000176 (the narrator call)


def _reprice(cli, ledger, *args: str) -> dict:
    result = cli("audit", "reprice", "--ledger", ledger.url, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_hopper_pool_per_query_and_total(cli, known_ledger):
    payload = _reprice(cli, known_ledger, "--on", "hopper-h100-fp8", "--config", EXAMPLE)
    target = payload["target"]
    assert (target["name"], target["kind"], target["hardware"]) == (
        "hopper-h100-fp8",
        "pool",
        "H100",
    )
    assert target["price_per_million"]["input_uncached"] == "0.16"
    assert target["price_per_million"]["input_cached"] == "0.04"
    assert target["price_per_million"]["output"] == "0.32"
    queries = {row["query_id"]: row for row in payload["queries"]}
    assert payload["queries_total"] == 5 and payload["truncated"] is False

    q1 = queries[known_ledger.q1]
    assert (q1["calls"], q1["failed_calls"], q1["refused_calls"]) == (3, 1, 0)  # the 503
    assert q1["tokens"]["total"] == 3800
    assert q1["actual"]["cost_usd"] == "0.00053"
    assert Decimal(q1["repriced"]["cost_usd"]) == Decimal(HOPPER_Q1)
    assert Decimal(q1["difference_usd"]) == Decimal("0.00015")
    # 0.00068 / 0.00053 = 1.28301886..., to 6 places.
    assert q1["ratio"] == "1.283019"

    q2 = queries[known_ledger.q2]
    assert Decimal(q2["repriced"]["cost_usd"]) == Decimal(HOPPER_Q2)
    assert q2["actual"]["cost_usd"] is None and q2["actual"]["unpriced_calls"] == 1
    assert q2["ratio"] is None and q2["difference_usd"] is None
    # Like for like on its one priced call: 0.000152 vs 0.000038.
    assert q2["priced_calls"]["calls"] == 1
    assert Decimal(q2["priced_calls"]["repriced_usd"]) == Decimal("0.000152")
    assert Decimal(q2["priced_calls"]["ratio"]) == Decimal(4)

    assert Decimal(queries[known_ledger.q3]["repriced"]["cost_usd"]) == Decimal("0.000064")
    assert Decimal(queries[known_ledger.q4]["repriced"]["cost_usd"]) == Decimal("0.0000584")
    assert Decimal(queries[known_ledger.q4]["ratio"]) == Decimal(1)  # it ran on H100 already
    assert Decimal(queries[None]["repriced"]["cost_usd"]) == Decimal("0.0000192")

    total = payload["total"]
    assert Decimal(total["repriced"]["cost_usd"]) == Decimal(HOPPER_TOTAL)
    assert total["actual"]["cost_usd"] is None
    assert total["actual"]["cost_known_usd"] == ACTUAL_PRICED
    assert total["ratio"] is None
    priced = total["priced_calls"]
    assert priced["calls"] == 7
    assert Decimal(priced["actual_usd"]) == Decimal(ACTUAL_PRICED)
    assert Decimal(priced["repriced_usd"]) == Decimal(HOPPER_PRICED)
    # 0.0009736 / 0.0006472 = 1.50432632...
    assert priced["ratio"] == "1.504326"


def test_blackwell_nvfp4_profile_for_one_app(cli, known_ledger):
    # Simulator profile B200-NVFP4: $0.05 uncached, $0.01 cached, $0.05 output.
    #   Q1 1,000 x 0.05 + 200 x 0.01 + 100 x 0.05 = 57  and  2,000 x 0.05 + 500 x 0.05 = 125
    #      -> $0.000182 against $0.00053: ratio 0.343396...
    #   Q3 300 x 0.05 + 50 x 0.05 = 17.5 -> $0.0000175 against $0.000016: ratio 1.09375
    #   total $0.0001995 against $0.000546: ratio 0.3653846...
    payload = _reprice(cli, known_ledger, "--on", "b200-nvfp4", "--app", "research_chat")
    assert (payload["target"]["name"], payload["target"]["kind"]) == ("B200-NVFP4", "profile")
    queries = {row["query_id"]: row for row in payload["queries"]}
    assert set(queries) == {known_ledger.q1, known_ledger.q3}
    q1, q3 = queries[known_ledger.q1], queries[known_ledger.q3]
    assert Decimal(q1["repriced"]["cost_usd"]) == Decimal("0.000182")
    assert q1["ratio"] == "0.343396"
    assert Decimal(q1["difference_usd"]) == Decimal("-0.000348")
    assert Decimal(q3["repriced"]["cost_usd"]) == Decimal("0.0000175")
    assert Decimal(q3["ratio"]) == Decimal("1.09375")
    total = payload["total"]
    assert total["actual"]["cost_usd"] == "0.000546"
    assert Decimal(total["repriced"]["cost_usd"]) == Decimal("0.0001995")
    assert total["ratio"] == "0.365385"


def test_repricing_on_the_price_a_call_ran_at_gives_back_its_cost(cli, known_ledger):
    # Q2's npc call ran on b200-nvfp4-0; its unpriced narrator call gets a price:
    # 500 x 0.04 + 300 x 0.08 = 20 + 24 = 44 -> $0.000044.
    payload = _reprice(
        cli, known_ledger, "--on", "b200-nvfp4-0", "--config", EXAMPLE, "--app", "dungeon"
    )
    assert payload["target"]["kind"] == "endpoint"
    (q2,) = payload["queries"]
    assert q2["priced_calls"]["actual_usd"] == q2["priced_calls"]["repriced_usd"] == "0.000038"
    assert Decimal(q2["repriced"]["cost_usd"]) == Decimal("0.000082")


def test_table_shows_actual_repriced_and_ratio(cli, known_ledger):
    result = cli(
        "audit", "reprice", "--on", "hopper-h100-fp8", "--config", EXAMPLE,
        "--ledger", known_ledger.url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Re-priced on pool hopper-h100-fp8 (H100 fp8)" in out
    assert "at $0.16 uncached / $0.04 cached / $0.32 output per 1M tokens" in out
    q1 = next(line for line in out.splitlines() if "1a2b3c4d" in line)
    for cell in ("3,000 / 200 / 600", "$0.000530", "$0.000680", "+$0.000150", "1.28x"):
        assert cell in q1
    q2 = next(line for line in out.splitlines() if "1a2b9999" in line)
    assert ">= $0.000038" in q2 and "$0.000328" in q2 and "n/a" in q2
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert ">= $0.0006472" in total and "$0.0011496" in total
    flat = " ".join(out.split())
    assert "1 call(s) have no recorded cost" in flat
    assert "Calls priced on both sides (7 of 8): $0.0006472 actual, $0.0009736" in flat
    assert "ratio 1.50x, 50.4% more expensive" in flat


def test_table_headline_when_everything_is_priced(cli, known_ledger):
    result = cli(
        "audit", "reprice", "--on", "B200-NVFP4", "--app", "research_chat",
        "--ledger", known_ledger.url,
    )  # fmt: skip
    flat = " ".join(result.stdout.split())
    assert "All 4 call(s): $0.000546 actual, $0.0001995 on B200-NVFP4" in flat
    assert "ratio 0.37x, 63.5% cheaper" in flat


def test_limit_keeps_the_total_over_everything(cli, known_ledger):
    payload = _reprice(cli, known_ledger, "--on", "H100-FP8", "--limit", "1")
    assert len(payload["queries"]) == 1 and payload["truncated"] is True
    assert payload["total"]["calls"] == 8


def test_unknown_target_lists_every_valid_name(cli, known_ledger):
    result = cli(
        "audit", "reprice", "--on", "hopper-h100", "--config", EXAMPLE,
        "--ledger", known_ledger.url,
    )  # fmt: skip
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "unknown reprice target 'hopper-h100'" in message
    assert "did you mean" in message
    assert "b200-nvfp4-0" in message and "h100-fp8-1" in message  # endpoints
    assert "blackwell-nvfp4" in message and "hopper-h200-fp8" in message  # pools
    assert "H100-FP8" in message and "GB200-NVFP4" in message  # profiles


def test_unknown_target_without_config(cli, known_ledger):
    result = cli("audit", "reprice", "--on", "hopper-h100-fp8", "--ledger", known_ledger.url)
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "no config found; pass --config FILE" in message
    assert "B200-NVFP4" in message


def test_pool_with_different_prices_and_unpriced_endpoint(cli, known_ledger, tmp_path):
    config = tmp_path / "mixed.toml"
    config.write_text(
        """
        [[endpoints]]
        name = "a"
        base_url = "http://127.0.0.1:1/v1"
        model = "m"
        pool = "mixed"
        price = { input = 0.1, cached_input = 0.01, output = 0.2 }

        [[endpoints]]
        name = "b"
        base_url = "http://127.0.0.1:1/v1"
        model = "m"
        pool = "mixed"
        price = { input = 0.2, cached_input = 0.02, output = 0.4 }

        [[endpoints]]
        name = "free-for-all"
        base_url = "http://127.0.0.1:1/v1"
        model = "m"
        """
    )
    base = ("audit", "reprice", "--config", str(config), "--ledger", known_ledger.url)
    mixed = cli(*base, "--on", "mixed")
    assert mixed.exit_code == 1
    assert "pool 'mixed' have different prices" in " ".join(mixed.stderr.split())
    unpriced = cli(*base, "--on", "free-for-all")
    assert unpriced.exit_code == 1
    assert "'free-for-all' has no price" in " ".join(unpriced.stderr.split())


def test_missing_ledger(cli, tmp_path):
    result = cli("audit", "reprice", "--on", "H100-FP8", "--ledger", str(tmp_path / "x.db"))
    assert result.exit_code == 1 and "no ledger at" in result.stderr


def test_a_profile_takes_the_configs_price_for_its_hardware(cli, known_ledger):
    # The example config prices B200 NVFP4 (sim-large) at $0.04 / $0.01 / $0.08, not the
    # simulator's $0.05 / $0.01 / $0.05: the same figures as `--on blackwell-nvfp4`.
    by_profile = _reprice(cli, known_ledger, "--on", "B200-NVFP4", "--config", EXAMPLE)
    by_pool = _reprice(cli, known_ledger, "--on", "blackwell-nvfp4", "--config", EXAMPLE)
    target = by_profile["target"]
    assert (target["kind"], target["priced_by"]) == (
        "profile",
        "config price of pool blackwell-nvfp4",
    )
    assert target["price_per_million"] == by_pool["target"]["price_per_million"]
    assert by_profile["total"]["repriced"] == by_pool["total"]["repriced"]
    without = _reprice(cli, known_ledger, "--on", "B200-NVFP4")
    assert without["target"]["priced_by"] == "simulator"
    assert without["target"]["price_per_million"]["output"] == "0.05"


def test_free_calls_are_left_out_of_the_ratio(cli, tmp_path):
    # One call on B200 NVFP4 at $0.04 / $0.01 / $0.08 and one on a $0/hour CPU: on the
    # H100 pool ($0.16 / $0.04 / $0.32, four times the B200 rates) the priced call costs
    # exactly 4x; the free one adds its H100 cost to the total but to no ratio.
    from datetime import UTC, datetime

    from spendgraph.providers.ledger import (
        CallRecord,
        CallStatus,
        EndpointInfo,
        Ledger,
        QueryRecord,
        QueryStatus,
    )
    from spendgraph.providers.usage import Usage

    at = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    b200 = EndpointInfo("b200-nvfp4-0", "sim-large", "B200", "nvfp4", "sim")
    cpu = EndpointInfo("embedded", "smollm2", "cpu", "q4", "llamacpp")
    query = "f0f0f0f0" + "0" * 24
    path = str(tmp_path / "free.db")
    with Ledger.open(path) as ledger:
        ledger.submit_open_query(QueryRecord(app="mixed", id=query, started_at=at))
        # 1,000 x 0.04 + 100 x 0.08 = 48 -> $0.000048; on H100: 160 + 32 = 192 -> $0.000192
        ledger.submit_call(
            CallRecord(b200, CallStatus.OK, Usage(1000, 0, 100), Decimal("0.000048"), "v", query)
        )
        # free; on H100: 500 x 0.16 + 50 x 0.32 = 96 -> $0.000096
        ledger.submit_call(
            CallRecord(cpu, CallStatus.OK, Usage(500, 0, 50), Decimal(0), "v", query)
        )
        ledger.submit_close_query(query, QueryStatus.OK, finished_at=at)
        ledger.flush()
    args = ("audit", "reprice", "--on", "hopper-h100-fp8", "--config", EXAMPLE, "--ledger", path)
    payload = json.loads(cli(*args, "--json").stdout)
    total = payload["total"]
    assert Decimal(total["repriced"]["cost_usd"]) == Decimal("0.000288")
    assert total["ratio"] == "4" and total["priced_calls"]["ratio"] == "4"
    assert total["free_calls"] == {"calls": 1, "repriced_usd": "0.000096"}
    result = cli(*args)
    assert result.exit_code == 0, result.output
    footer = next(line for line in result.stdout.splitlines() if line.strip().startswith("total"))
    assert "4.00x" in footer
    flat = " ".join(result.stdout.split())
    assert "All 2 call(s): $0.000048 actual, $0.000288 on hopper-h100-fp8" in flat
    assert "ratio 4.00x, 300.0% more expensive over the 1 that cost something" in flat
    assert "1 call(s) ran at a known $0" in flat and "$0.000096 on hopper-h100-fp8" in flat
