"""`spendgraph endpoints check`: a real probe of each configured endpoint."""

from __future__ import annotations

import json
import socket

from spendgraph.providers.config import example_config_path

EXAMPLE = str(example_config_path())


def _closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _row(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(name + " "))


def test_check_every_example_endpoint_against_the_simulator(cli, sim):
    env = {"SPENDGRAPH_SIM_URL": sim.base_url}
    result = cli("endpoints", "check", "--config", EXAMPLE, "--json", env=env)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and len(payload["endpoints"]) == 12
    for endpoint in payload["endpoints"]:
        assert endpoint["ok"] and endpoint["reachable"] and endpoint["model_served"]
        assert endpoint["error_kind"] is None
        assert endpoint["ttft_ms"] is not None and endpoint["ttft_ms"] <= endpoint["latency_ms"]
        assert {"sim-large", "sim-small"} <= set(endpoint["served_models"])
    table = cli("endpoints", "check", "--config", EXAMPLE, env=env)
    assert table.exit_code == 0
    # The title holds the config's absolute path, so where rich wraps it depends on the checkout.
    assert "not recorded in the ledger" in " ".join(table.stdout.split())
    assert all(" OK" in _row(table.stdout, name) for name in ("b200-nvfp4-0", "h100-fp8-1"))


def test_check_reports_a_closed_port_and_exits_1(cli, sim, tmp_path):
    config = tmp_path / "two.toml"
    config.write_text(
        f"""
        [[endpoints]]
        name = "up"
        base_url = "{sim.replica_url("h100-fp8-0")}"
        model = "sim-large"

        [[endpoints]]
        name = "down"
        base_url = "http://127.0.0.1:{_closed_port()}/v1"
        model = "sim-large"

        [[endpoints]]
        name = "wrong-model"
        base_url = "{sim.replica_url("b200-fp8-0")}"
        model = "no-such-model"
        """
    )
    result = cli("endpoints", "check", "--config", str(config), "--json")
    assert result.exit_code == 1
    assert "2 of 3 endpoint(s) failed: down, wrong-model" in " ".join(result.stderr.split())
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    up, down, wrong = payload["endpoints"]
    assert up["ok"] and up["ttft_ms"] is not None
    assert (down["ok"], down["reachable"], down["error_kind"]) == (False, False, "connection")
    assert down["ttft_ms"] is None
    assert (wrong["reachable"], wrong["model_served"], wrong["error_kind"]) == (
        True,
        False,
        "model_not_served",
    )
    table = cli("endpoints", "check", "--config", str(config))
    assert table.exit_code == 1
    assert "FAIL connection" in _row(table.stdout, "down")
    assert " OK" in _row(table.stdout, "up")


def test_check_with_sim_starts_the_simulator_itself(cli):
    result = cli("endpoints", "check", "--sim", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and len(payload["endpoints"]) == 12
    assert payload["config"] == EXAMPLE


def test_a_stopped_server_is_named_with_a_hint(cli, tmp_path):
    port = _closed_port()
    config = tmp_path / "down.toml"
    config.write_text(
        f'[[endpoints]]\nname = "down"\nbase_url = "http://127.0.0.1:{port}/v1"\nmodel = "m"\n'
    )
    result = cli("endpoints", "check", "--config", str(config), "--json")
    assert result.exit_code == 1
    (down,) = json.loads(result.stdout)["endpoints"]
    assert down["error_kind"] == "connection"
    assert down["error"] == (
        f"nothing answers at http://127.0.0.1:{port}/v1; is the server running, "
        "and is base_url right?"
    )
    # The example config's endpoints point at the simulator's address: say how to start it.
    stopped = cli("endpoints", "check", "--config", EXAMPLE, env={"COLUMNS": "250"})
    assert stopped.exit_code == 1
    row = " ".join(_row(stopped.stdout, "b200-nvfp4-0").split())
    assert "nothing answers at http://127.0.0.1:8900/r/b200-nvfp4-0/v1" in row
    assert "start the simulator (`spendgraph serve sim`) or check with --sim" in row
