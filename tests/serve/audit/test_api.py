"""The audit app's JSON endpoints are the audit commands' ``--json`` output, and say what
is wrong with a bad request."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from audit_web import EXAMPLE, cli_json
from loopback_server import serve_in_thread

from spendgraph.cli.audit.serve import audit_views
from spendgraph.providers.ledger import Ledger, LedgerFilter, QueryRecord
from spendgraph.serve.audit import audit_app


def get(served, path: str, **params: str) -> httpx.Response:
    return httpx.get(served.url + path, params=params, timeout=60)


@pytest.mark.parametrize("by", ["app", "agent", "endpoint", "hardware", "day"])
def test_summary_is_audit_summary_json(served, by):
    answer = get(served, "/api/summary", by=by)
    assert answer.status_code == 200
    assert answer.json() == cli_json("audit", "summary", "--by", by, "--ledger", served.path)


def test_queries_and_show_are_audit_queries_and_show_json(served):
    listed = get(served, "/api/queries", sort="cost", limit="0").json()
    expected = cli_json(
        "audit", "queries", "--sort", "cost", "--limit", "0", "--ledger", served.path
    )
    assert listed == expected and len(listed["queries"]) == 4
    for query in listed["queries"]:
        prefix = query["id"][:6]  # a unique prefix works, as in `audit show`
        shown = get(served, f"/api/queries/{prefix}").json()
        assert shown == cli_json("audit", "show", query["id"], "--ledger", served.path)
        assert len(shown["calls"]) == query["calls"]


def test_filters_apply_as_on_the_command_line(served):
    answer = get(served, "/api/queries", app="dungeon", until="2999-01-01").json()
    expected = cli_json(
        "audit", "queries", "--app", "dungeon", "--until", "2999-01-01", "--ledger", served.path
    )
    assert answer == expected and [q["app"] for q in answer["queries"]] == ["dungeon"]


def test_reprice_is_audit_reprice_json(served):
    for target in ("hopper-h100-fp8", "B200-NVFP4", "b200-fp8-0"):
        answer = get(served, "/api/reprice", on=target, limit="0").json()
        expected = cli_json(
            "audit", "reprice", "--on", target, "--limit", "0", "--config", EXAMPLE,
            "--ledger", served.path,
        )  # fmt: skip
        assert answer == expected


def test_whatif_is_audit_reprice_on_every_pool(served):
    answer = get(served, "/api/whatif").json()
    pools = [payload["target"]["name"] for payload in answer["pools"]]
    assert pools[:4] == ["blackwell-nvfp4", "blackwell-fp8", "hopper-h200-fp8", "hopper-h100-fp8"]
    for payload in answer["pools"]:
        name = payload["target"]["name"]
        expected = cli_json(
            "audit", "reprice", "--on", name, "--config", EXAMPLE, "--ledger", served.path
        )
        assert payload == expected
    # The seed's tokenomics: Hopper costs 4x NVFP4, Blackwell FP8 2x, for the same tokens.
    totals = {
        p["target"]["name"]: Decimal(p["total"]["repriced"]["cost_usd"]) for p in answer["pools"]
    }
    assert totals["hopper-h100-fp8"] == 4 * totals["blackwell-nvfp4"]
    assert totals["blackwell-fp8"] == 2 * totals["blackwell-nvfp4"]


def test_timeline_buckets_partition_the_summary(served):
    whole = get(served, "/api/summary", by="agent").json()["total"]
    timeline = get(served, "/api/timeline", by="agent").json()
    buckets = timeline["buckets"]
    assert buckets and timeline["width_s"] >= 1
    totals = [bucket["summary"]["total"] for bucket in buckets]
    assert sum(t["calls"] for t in totals) == whole["calls"]
    assert sum(t["tokens"]["total"] for t in totals) == whole["tokens"]["total"]
    assert sum(Decimal(t["cost_known_usd"]) for t in totals) == Decimal(whole["cost_known_usd"])
    # A bucket is `audit summary` over its own window (the last one is open at the end).
    first = buckets[0]
    expected = cli_json(
        "audit", "summary", "--by", "agent", "--until", first["end"], "--ledger", served.path
    )
    assert first["summary"] == expected


@pytest.mark.parametrize(
    ("path", "params", "parameter", "value"),
    [
        ("/api/summary", {"by": "colour"}, "by", "colour"),
        ("/api/timeline", {"by": "day"}, "by", "day"),
        ("/api/queries", {"sort": "size"}, "sort", "size"),
        ("/api/queries", {"limit": "-1"}, "limit", "-1"),
        ("/api/queries", {"limit": "ten"}, "limit", "ten"),
        ("/api/summary", {"since": "yesterday"}, "since", "yesterday"),
        ("/api/summary", {"since": "2025-03-02", "until": "2025-03-01"}, "since", "2025-03-02"),
        ("/api/summary", {"colour": "red"}, "colour", "red"),
        ("/api/reprice", {}, "on", ""),
        ("/api/reprice", {"on": "tpu-v9"}, "on", None),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(served, path, params, parameter, value):
    answer = get(served, path, **params)
    assert answer.status_code == 400
    body = answer.json()
    assert body["parameter"] == parameter and body["error"]
    if value is not None:
        assert body["value"] == value and repr(value) in body["error"]
    else:
        assert "unknown reprice target 'tpu-v9'" in body["error"]


def test_a_parameter_given_twice_is_a_400(served):
    answer = httpx.get(f"{served.url}/api/summary?by=app&by=agent", timeout=30)
    assert answer.status_code == 400
    assert answer.json()["parameter"] == "by" and "given more than once" in answer.json()["error"]


def test_an_unknown_query_is_a_404(served):
    answer = get(served, "/api/queries/zzzz")
    assert answer.status_code == 404 and "no query 'zzzz'" in answer.json()["error"]
    assert answer.json()["parameter"] == "query_id"
    assert get(served, "/api/queries/").status_code == 404  # the empty prefix names none
    assert get(served, "/api/nothing").status_code == 404


def test_an_ambiguous_prefix_is_a_400_listing_the_matches(tmp_path):
    path = str(tmp_path / "two.db")
    with Ledger.open(path) as ledger:
        for query_id in ("1a2b" + "a" * 28, "1a2b" + "b" * 28):
            ledger.submit_open_query(QueryRecord(app="x", id=query_id))
        ledger.flush()
    with (
        Ledger.open(path, create=False) as ledger,
        serve_in_thread(
            lambda _url: audit_app(ledger, audit_views(ledger, LedgerFilter(), None))
        ) as url,
    ):
        answer = httpx.get(f"{url}/api/queries/1a2b", timeout=30)
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert "ambiguous" in error and "1a2b" + "a" * 28 in error and "1a2b" + "b" * 28 in error
        assert httpx.get(f"{url}/api/queries/1a2ba", timeout=30).status_code == 200


def test_read_only_and_loopback_only(served):
    before = _rows(served.path)
    assert httpx.post(served.url + "/api/summary", timeout=10).status_code == 405
    for path in ("/api/summary", "/api/whatif", "/api/timeline", "/api/queries"):
        assert get(served, path).status_code == 200
    assert _rows(served.path) == before
    # A page elsewhere that rebinds its name to 127.0.0.1 gets nothing.
    rebound = httpx.get(served.url + "/api/summary", headers={"Host": "attacker.example"})
    assert rebound.status_code == 400 and "loopback only" in rebound.json()["error"]


def _rows(path: str) -> tuple[int, list[str]]:
    with Ledger.open(path, create=False) as ledger:
        calls = sum(1 for _ in ledger.iter_calls())
        return calls, [q.query.status.value for q in ledger.list_queries(limit=None)]


def test_the_page_and_its_assets_come_from_this_origin_only(served):
    page = get(served, "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    for asset in (
        "app.js",
        "nav.js",
        "util.js",
        "spend.js",
        "queries.js",
        "query.js",
        "whatif.js",
        "style.css",
    ):
        served_asset = get(served, f"/assets/{asset}")
        assert served_asset.status_code == 200, asset
        # The one URL in them is SVG's XML namespace, a name that is never fetched.
        text = served_asset.text.replace('"http://www.w3.org/2000/svg"', "")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, asset
    assert "http://" not in page.text and "https://" not in page.text
