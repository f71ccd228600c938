"""Bad values on the command line and in the config: one clear error naming what and where,
a non-zero exit, never a traceback -- and ``audit`` finds the ledger ``run`` writes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from spendgraph.cli.main import app

TERMINAL_ENV = {"NO_COLOR": "1", "COLUMNS": "120", "TERM": "dumb", "SPENDGRAPH_CONFIG": None}


def flat(text: str) -> str:
    """The console wraps long lines (and typer boxes its usage errors): compare words."""
    return " ".join(text.replace("│", " ").split())


def assert_clean_failure(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return flat(result.stderr)


# -- --budget-usd ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "expected an amount in USD like 0.05, got 'abc'"),
        ("-1", "expected an amount in USD above 0, got '-1'"),
        ("0", "expected an amount in USD above 0, got '0'"),
        ("nan", "expected a finite amount in USD, got 'nan'"),
        ("inf", "expected a finite amount in USD, got 'inf'"),
        ("-Infinity", "expected a finite amount in USD, got '-Infinity'"),
    ],
)
def test_a_bad_budget_is_refused_before_anything_runs(cli, tmp_path, value, expected):
    ledger = tmp_path / "budget.db"
    result = cli(
        "run", "research_chat", "--sim", "--ledger", str(ledger), f"--budget-usd={value}", "hi"
    )
    message = assert_clean_failure(result, code=2)  # a usage error, like any bad option
    assert "Invalid value for '--budget-usd'" in message and expected in message
    assert not ledger.exists()  # no query was run (and blamed on the ledger)


def test_chat_budget_command_refuses_bad_amounts_and_goes_on(cli, tmp_path):
    result = CliRunner().invoke(
        app,
        ["chat", "--sim", "--sim-time-scale", "0", "--ledger", str(tmp_path / "c.db")],
        input="/budget nan\n/budget inf\n/budget -1\n/budget abc\n/budget 0.01\n",
        env=TERMINAL_ENV,
        catch_exceptions=False,
    )
    assert result.exit_code == 0 and "Traceback" not in result.output
    errors = flat(result.stderr)
    for value in ("nan", "inf", "-1", "abc"):
        assert f"/budget needs a positive USD amount (or 'off'), got '{value}'" in errors
    assert "budget $0.01 per query" in result.stdout


# -- prices ---------------------------------------------------------------------

ENDPOINT = """
[[endpoints]]
name = "b200-x"
base_url = "http://127.0.0.1:9/v1"
model = "m"
"""


@pytest.mark.parametrize(
    ("price", "key", "expected"),
    [
        ("{ input = 1e308, output = 1 }", "price.input", "expected a number <= 1000000"),
        ("{ input = 1, output = 1e308 }", "price.output", "expected a number <= 1000000"),
        (
            "{ gpu_hour_usd = 1, input_tokens_per_s = 1e-300, output_tokens_per_s = 1 }",
            "price",
            "the derived input rate",
        ),
        ("{ input = nan, output = 1 }", "price.input", "nan"),
    ],
)
def test_an_impossible_price_is_refused_at_load(cli, tmp_path, price, key, expected):
    config = tmp_path / "prices.toml"
    config.write_text(ENDPOINT + f"price = {price}\n")
    for args in (["endpoints", "list"], ["endpoints", "list", "--json"]):
        message = assert_clean_failure(cli(*args, "--config", str(config)))
        assert message.startswith(f"error: {config}, key 'endpoints[0] (b200-x).{key}'")
        assert expected in message


def test_the_largest_allowed_price_lists(cli, tmp_path):
    config = tmp_path / "prices.toml"
    config.write_text(ENDPOINT + "price = { input = 1000000, output = 1000000 }\n")
    result = cli("endpoints", "list", "--config", str(config), "--json")
    assert result.exit_code == 0, result.output
    price = json.loads(result.stdout)["endpoints"][0]["price_per_million"]
    assert price["input_uncached"] == price["output"] == "1000000"


# -- [ledger] url ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://spend@db/x", "unsupported ledger database 'mysql'"),
        ("sqlite://", "the ledger needs a file, not an in-memory database"),
        ("not a url://", "not a valid ledger URL"),
    ],
)
@pytest.mark.parametrize(
    "command", [["run", "dungeon", "hi"], ["audit", "queries"], ["threads", "list"]]
)
def test_a_bad_ledger_url_names_the_file_and_key(cli, tmp_path, url, expected, command):
    config = tmp_path / "bad-ledger.toml"
    config.write_text(ENDPOINT + f'\n[ledger]\nurl = "{url}"\n')
    message = assert_clean_failure(cli(*command, "--config", str(config)))
    assert message.startswith(f"error: {config}, key 'ledger.url': {expected}")


def test_a_ledger_url_in_a_missing_directory_names_where_it_came_from(cli, tmp_path):
    config = tmp_path / "far-ledger.toml"
    config.write_text(ENDPOINT + f'\n[ledger]\nurl = "{tmp_path}/no/such/dir/x.db"\n')
    for command in (["audit", "queries"], ["threads", "list"]):
        message = assert_clean_failure(cli(*command, "--config", str(config)))
        assert f"(the ledger named by {config}, key 'ledger.url')" in message


# -- audit follows [ledger] url as run does -----------------------------------


@pytest.fixture
def configured_ledger(tmp_path, known_ledger):
    """The known ledger and a config naming it; its endpoint's key variable is NOT set:
    reading a ledger needs no API key."""
    config = tmp_path / "team.toml"
    ledger = f'\n[ledger]\nurl = "{known_ledger.path}"\n'
    config.write_text(ENDPOINT + 'api_key_env = "UNSET_KEY"\n' + ledger)
    return known_ledger.path, config


def _audited(result) -> tuple[str, int]:
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    return payload["ledger"], len(payload["queries"])


def test_audit_reads_the_ledger_the_config_names(cli, configured_ledger):
    path, config = configured_ledger
    ledger, queries = _audited(cli("audit", "queries", "--config", str(config), "--json"))
    assert ledger == f"sqlite:///{path}" and queries == 4


def test_audit_finds_the_config_as_run_does(cli, configured_ledger, tmp_path):
    path, config = configured_ledger
    by_env = cli("audit", "queries", "--json", env={"SPENDGRAPH_CONFIG": str(config)})
    assert _audited(by_env) == (f"sqlite:///{path}", 4)
    (tmp_path / "cwd" / "spendgraph.toml").write_text(config.read_text())  # the cli's cwd
    assert _audited(cli("audit", "queries", "--json")) == (f"sqlite:///{path}", 4)


def test_ledger_option_beats_the_config(cli, configured_ledger, empty_ledger):
    _, config = configured_ledger
    result = cli("audit", "queries", "--config", str(config), "--ledger", empty_ledger, "--json")
    assert _audited(result) == (f"sqlite:///{empty_ledger}", 0)


def test_reprice_shares_its_config_with_the_ledger_lookup(cli, configured_ledger, tmp_path):
    path, _ = configured_ledger
    config = tmp_path / "reprice.toml"  # reprice reads the endpoints too: no unset key here
    config.write_text(ENDPOINT + f'\n[ledger]\nurl = "{path}"\n')
    result = cli("audit", "reprice", "--on", "B200-NVFP4", "--config", str(config), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ledger"] == f"sqlite:///{path}"


@pytest.mark.parametrize(
    ("threads", "key", "expected"),
    [
        ("threads = 5", "threads", "expected a table"),
        ('[threads]\nencryption_key_env = "sk-live key"', "threads.encryption_key_env",
         "expected the NAME of an environment variable"),
        ("[threads]\nencrypt = true", "threads.encrypt", "unknown key"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", [["audit", "queries"], ["threads", "list"]])
def test_a_bad_threads_table_names_the_file_and_key(cli, tmp_path, threads, key, expected, command):
    config = tmp_path / "bad-threads.toml"
    config.write_text(threads + "\n" + ENDPOINT)
    message = assert_clean_failure(cli(*command, "--config", str(config)))
    assert message.startswith(f"error: {config}, key '{key}': {expected}")
    assert "sk-live" not in message
