"""``spendgraph run`` exports its query's trace when the standard OTEL_* variables say where."""

from __future__ import annotations

import json

from otlp_receiver import otlp_receiver
from trace_checks import check_query_trace, query_spans

from spendgraph.providers.ledger import Ledger


def test_run_exports_the_query_trace_to_the_otlp_endpoint_in_the_environment(cli, tmp_path):
    ledger = tmp_path / "run.db"
    with otlp_receiver() as (url, received):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "cli-run"}
        args = ("run", "voice_support", "Where is my order?", "--sim", "--json")
        result = cli(*args, "--ledger", str(ledger), env=env)
        assert result.exit_code == 0, result.output
        spans, points = received.snapshot()  # the layer's close exported everything
    query_id = json.loads(result.stdout)["query_id"]
    with Ledger.open(str(ledger)) as opened:
        rows = opened.calls_for_query(query_id)
    traced = query_spans(spans, query_id)
    check_query_trace(traced, rows, app="voice_support")
    assert {s.service for s in traced} == {"cli-run"}
    assert points  # metrics went out at shutdown too
