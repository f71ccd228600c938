"""The embedded SmolLM2 endpoint, for real: llama-cpp-python's server on loopback.

One server serves the module; the lifecycle tests start their own. Every
generation is a few tokens at temperature 0 so the file stays quick on 2 cores.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from spendgraph.providers.config import SpendgraphConfig
from spendgraph.providers.errors import EmbeddedModelUnavailable, EmbeddedServerError
from spendgraph.providers.local.embedded import (
    ENDPOINT_NAME,
    MODEL_ALIAS,
    EmbeddedServer,
    embedded_endpoint_config,
    model_path,
)
from spendgraph.providers.tokens import chatml_prompt_text

QUESTION = [{"role": "user", "content": "Name one colour."}]
WITH_SYSTEM = [
    {"role": "system", "content": "Answer in one word."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]


@pytest.fixture(scope="module")
def server():
    with EmbeddedServer() as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0) as sdk:
        yield sdk


def count_tokens(server: EmbeddedServer, text: str) -> int:
    answer = httpx.post(
        server.root_url + "/extras/tokenize/count", json={"input": text}, trust_env=False
    )
    answer.raise_for_status()
    return answer.json()["count"]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone: it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


@pytest.mark.local_model
def test_model_path_is_the_gguf_file():
    path = model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with path.open("rb") as handle:
        assert handle.read(4) == b"GGUF"


@pytest.mark.local_model
def test_models_lists_the_alias(server, client):
    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
    assert MODEL_ALIAS in [model.id for model in client.models.list()]


@pytest.mark.local_model
@pytest.mark.parametrize("messages", [QUESTION, WITH_SYSTEM], ids=["no-system", "system"])
def test_non_streamed_usage_matches_the_tokenizer(server, client, messages):
    answer = client.chat.completions.create(
        model=MODEL_ALIAS, messages=messages, max_tokens=6, temperature=0
    )
    usage = answer.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # The chat template counts: the bare message text is fewer tokens.
    assert count_tokens(server, chatml_prompt_text(messages)) == usage.prompt_tokens
    assert count_tokens(server, "".join(m["content"] for m in messages)) < usage.prompt_tokens
    assert count_tokens(server, answer.choices[0].message.content) == usage.completion_tokens


@pytest.mark.local_model
def test_streamed_answer_has_content_but_no_usage(client):
    stream = client.chat.completions.create(
        model=MODEL_ALIAS,
        messages=QUESTION,
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    # llama-cpp-python ignores stream_options: streamed calls must be counted.
    # If this starts failing, the server now reports usage: read it instead.
    assert [c.usage for c in chunks if c.usage is not None] == []


@pytest.mark.local_model
def test_tokenize_count_endpoint(server):
    short = count_tokens(server, "hello world")
    longer = count_tokens(server, "hello world, and hello again to the whole wide world")
    assert 0 < short < longer
    assert count_tokens(server, "<|im_start|>") == 1  # special tokens are parsed
    # It lives beside /v1, not under it.
    missing = httpx.post(
        server.base_url + "/extras/tokenize/count", json={"input": "x"}, trust_env=False
    )
    assert missing.status_code == 404


@pytest.mark.local_model
def test_a_concurrent_request_does_not_cut_a_stream(server, client):
    stream = client.chat.completions.create(
        model=MODEL_ALIAS, messages=QUESTION, max_tokens=24, temperature=0, stream=True
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = next(iter(stream))
        # Queued behind the stream's lock; with interrupt_requests on it would end it.
        meanwhile = pool.submit(count_tokens, server, "hello")
        rest = list(stream)
        assert meanwhile.result(timeout=30) > 0
    assert first.choices[0].delta.role == "assistant"
    assert rest[-1].choices[0].finish_reason in ("stop", "length")


@pytest.mark.local_model
def test_endpoint_config_validates_with_a_known_zero_price(server):
    config = SpendgraphConfig.model_validate({"endpoints": [server.endpoint_config()]})
    endpoint = config.endpoint(ENDPOINT_NAME)
    assert endpoint.base_url == server.base_url and endpoint.model == MODEL_ALIAS
    assert config.endpoints_for("default") == [endpoint]
    assert (endpoint.hardware, endpoint.engine, endpoint.tokenize_api) == (
        "cpu",
        "llamacpp",
        "llamacpp",
    )
    price = endpoint.resolved_price()
    assert price.known and price.input_uncached == price.output == Decimal(0)


def test_endpoint_config_derives_a_price_from_cpu_dollars_per_hour():
    entry = embedded_endpoint_config(
        "http://127.0.0.1:1/v1", gpu_hour_usd="0.036", output_tokens_per_s=100.0
    )
    endpoint = SpendgraphConfig.model_validate({"endpoints": [entry]}).endpoints[0]
    # $0.036/h at 100 tokens/s = 360,000 tokens/h -> $0.10 per million output tokens.
    assert endpoint.resolved_price().output == Decimal("0.1")


@pytest.mark.local_model
async def test_async_use_stops_cleanly_and_ignores_stray_settings(tmp_path):
    # A user's shell may export API_KEY/PORT/HOST; the server must not pick them up.
    env = {**os.environ, "API_KEY": "secret", "PORT": "1", "HOST": "192.0.2.1"}
    server = EmbeddedServer(env=env, log_path=tmp_path / "server.log", startup_timeout_s=20)
    async with server:
        pid = server.pid
        async with httpx.AsyncClient(trust_env=False) as http:
            models = await http.get(server.base_url + "/models")
        assert models.status_code == 200  # no key demanded, listening where we said
    assert pid is not None and not alive(pid)
    assert not server.running and server.pid is None
    assert "Uvicorn running on" in (tmp_path / "server.log").read_text()


@pytest.mark.local_model
def test_a_failed_start_reports_the_server_log():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = EmbeddedServer(port=taken.getsockname()[1], startup_timeout_s=20)
        with pytest.raises(EmbeddedServerError, match="already in use") as failure:
            server.start()
    assert "address already in use" in failure.value.log_tail.lower()
    assert server.pid is None and server.log_path is None  # reaped, temp log removed


@pytest.mark.local_model
def test_server_dies_with_its_parent(tmp_path):
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from spendgraph.providers.local.embedded import EmbeddedServer
        server = EmbeddedServer(log_path=Path({str(tmp_path / "server.log")!r})).start()
        print(server.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()  # no cleanup code runs in the parent
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    assert wait_gone(child), f"server {child} outlived its parent"


def run_cli(code: str, **popen) -> subprocess.Popen:
    """A tiny typer app with only ``serve local`` registered, in a subprocess."""
    prelude = "import typer\nfrom spendgraph.cli.serve_local import register\n"
    app = "app = typer.Typer()\nregister(app)\napp(['--port', '0'])\n"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    return subprocess.Popen(
        [sys.executable, "-c", code + prelude + app], env=env, text=True, **popen
    )


@pytest.mark.local_model
def test_serve_local_runs_until_ctrl_c():
    cli = run_cli("", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        banner = cli.stdout.readline()
        assert f"serving {MODEL_ALIAS} at http://127.0.0.1:" in banner
        pid = int(banner.rsplit("pid ", 1)[1].rstrip(")\n"))
        assert alive(pid)
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=15) == 0
    finally:
        cli.kill()
        cli.wait()
        _, stderr = cli.communicate()
    assert "Traceback" not in stderr
    assert wait_gone(pid)


def test_serve_local_without_llama_cpp_says_how_to_install():
    # Shadow the module in the child only: find_spec() then reports it missing.
    cli = run_cli(
        "import sys\nsys.modules['llama_cpp'] = None\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, stderr = cli.communicate(timeout=30)
    assert cli.returncode == 1
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -e ".[local]"' in stderr
    assert "--sim" in stderr and "--config" in stderr
    assert "Traceback" not in stderr


def test_unavailable_error_names_what_is_missing():
    error = EmbeddedModelUnavailable(["llama_cpp"])
    assert error.missing == ("llama_cpp",)
    assert "llama_cpp" in str(error) and "--sim" in str(error)
