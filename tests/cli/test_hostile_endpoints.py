"""The CLI against hostile servers: a bad 200, a hung endpoint, an echoed key, a password in
a URL -- each a non-zero exit with one clear line, no traceback, no secret anywhere."""

from __future__ import annotations

import json
import time

import pytest
from hostile_server import ANSWER, hostile_server

KEY = "sk-proj-cliHOSTILE0123456789abcdef"
ENV = {"HOSTILE_KEY": KEY}


@pytest.fixture(scope="module")
def hostile():
    with hostile_server(trickle_s=1.0) as server:
        yield server


def write_config(tmp_path, *urls: str, timeout: str = "2", retries: int = 1) -> str:
    """One endpoint per URL, the first cheapest (so the later ones are its fallbacks)."""
    entries = [
        f"""
[[endpoints]]
name = "ep{index}"
base_url = "{url}"
model = "m"
serves = ["default"]
api_key_env = "HOSTILE_KEY"
timeout_s = {timeout}
price = {{ input = {index + 1}, cached_input = {index + 1}, output = {index + 1} }}
"""
        for index, url in enumerate(urls)
    ]
    routing = (
        f"[routing]\nmax_retries = {retries}\nbackoff_initial_s = 0.01\nbackoff_max_s = 0.01\n"
    )
    path = tmp_path / "hostile.toml"
    path.write_text(routing + "".join(entries))
    return str(path)


def assert_one_error_line(result, *expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    flat = " ".join(result.stderr.split())  # the console wraps long lines
    for part in expected:
        assert part in flat, flat
    assert "(no answer)" not in result.stdout


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("html", "text/html instead of an event stream: 502 Bad Gateway"),
        ("invalid_json", "HTTP 200 with invalid JSON"),
        ("no_finish", "the stream ended before its finish chunk"),
    ],
)
def test_run_fails_with_one_line_on_a_malformed_answer(cli, tmp_path, hostile, mode, expected):
    config = write_config(tmp_path, hostile.url(mode))
    result = cli(
        "run", "chat", "hi", "--config", config, "--ledger", str(tmp_path / "l.db"), env=ENV
    )
    assert_one_error_line(result, expected)


def test_run_falls_back_past_a_malformed_answer(cli, tmp_path, hostile):
    config = write_config(tmp_path, hostile.url("html"), hostile.url("ok"))
    ledger = str(tmp_path / "l.db")
    result = cli("run", "chat", "hi", "--config", config, "--ledger", ledger, "--json", env=ENV)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["answer"] == ANSWER and payload["status"] == "ok"
    assert payload["calls"] == 3  # the page twice (one retry), then the fallback


def test_run_on_a_hung_endpoint_returns_within_its_deadlines(cli, tmp_path, hostile):
    config = write_config(tmp_path, hostile.url("trickle"), timeout="1")
    started = time.perf_counter()
    result = cli(
        "run", "chat", "hi", "--config", config, "--ledger", str(tmp_path / "l.db"), env=ENV
    )
    held = time.perf_counter() - started
    assert_one_error_line(result, "no first token within 1 s")
    assert held < 3 * 2 * 1.0 + 5  # two attempts of 1 s, plus the command's own start


def test_an_echoed_key_appears_in_no_output_or_audit(cli, tmp_path, hostile):
    config = write_config(tmp_path, hostile.url("echo_401"))
    ledger = str(tmp_path / "l.db")
    run = cli("run", "chat", "hi", "--config", config, "--ledger", ledger, env=ENV)
    assert_one_error_line(run, "HTTP 401: Incorrect API key provided: Bearer [redacted]")
    queries = cli("audit", "queries", "--json", "--ledger", ledger)
    assert queries.exit_code == 0, queries.output
    (query,) = json.loads(queries.stdout)["queries"]
    assert query["status"] == "error" and "Bearer [redacted]" in query["error"]
    show = cli("audit", "show", query["id"], "--ledger", ledger)
    show_json = cli("audit", "show", query["id"], "--ledger", ledger, "--json")
    check = cli("endpoints", "check", "--config", config, env=ENV)
    assert check.exit_code == 1 and "auth" in check.stdout
    for result in (run, queries, show, show_json, check):
        assert KEY not in result.output and KEY[:10] not in result.output


def test_a_password_in_a_base_url_is_refused_by_name(cli, tmp_path):
    config = write_config(tmp_path, "http://admin:hunter2secret@127.0.0.1:9/v1")
    result = cli("endpoints", "list", "--config", config, env=ENV)
    assert_one_error_line(result, "key 'endpoints[0] (ep0).base_url': credentials in the URL")
    assert "hunter2secret" not in result.output
