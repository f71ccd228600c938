"""``spendgraph endpoints check``: is each configured endpoint up, and does it serve its model?

Each endpoint gets, concurrently with the others, ``GET /v1/models`` and one
tiny streamed chat completion (``max_tokens=2``), timed to the first token.

These checks are deliberately *not* recorded in the ledger. The ledger
answers "what did this end-user query cost"; a health probe belongs to no
query, costs a handful of tokens, and recording it would put phantom spend
into every audit and re-price. It also means ``check`` works without a
writable ledger. So the probes use the endpoint's own ``openai`` client
(:class:`~spendgraph.providers.endpoint.Endpoint`) and its error mapping, not
the router, which records every attempt.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

import openai
import typer
from rich.console import Console
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.cli.console import Output
from spendgraph.cli.endpoints.source import EndpointsSimOption, endpoints_config
from spendgraph.cli.options import ConfigOption, JsonOption, handled_errors
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.config import EndpointConfig, SpendgraphConfig
from spendgraph.providers.endpoint import Endpoint, map_sdk_error
from spendgraph.providers.errors import (
    AuthenticationFailed,
    BadRequest,
    ConfigError,
    EndpointError,
)

PROBE_MAX_TOKENS = 2
_PROBE_MESSAGES = [{"role": "user", "content": "Reply with the single word OK."}]


def command(
    config: ConfigOption = None,
    sim: EndpointsSimOption = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each request.")
    ] = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Call every endpoint at once (model list + one tiny streamed completion).

    Reports reachability, whether the model is served, and the time to first
    token. Exit code 1 if any endpoint fails. Not recorded in the ledger.
    """
    out = Output(json_mode=as_json)
    with handled_errors(out), endpoints_config(config, sim) as loaded:
        results = asyncio.run(check_all(loaded.endpoints, timeout_s=timeout))
    if out.json_mode:
        out.emit_json(
            {
                "config": loaded.source,
                "ok": all(result.ok for result in results),
                "endpoints": [
                    result_json(result, endpoint)
                    for result, endpoint in zip(results, loaded.endpoints, strict=True)
                ],
            }
        )
    else:
        out.print(check_table(out.console, loaded, results))
    failed = [result.name for result in results if not result.ok]
    if failed:
        out.error(f"{len(failed)} of {len(results)} endpoint(s) failed: {', '.join(failed)}")
        raise typer.Exit(1)


@dataclass(frozen=True)
class CheckResult:
    """What probing one endpoint found. ``ok`` when nothing failed."""

    name: str
    base_url: str
    model: str
    reachable: bool = False
    model_served: bool | None = None  # None: the server has no model list to ask
    served_models: tuple[str, ...] = field(default_factory=tuple)
    ttft_ms: float | None = None
    latency_ms: float | None = None
    error_kind: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_kind is None


async def check_all(
    configs: Sequence[EndpointConfig], *, timeout_s: float, env: Mapping[str, str] = os.environ
) -> list[CheckResult]:
    """Probe every endpoint at once; results in config order."""
    return list(
        await asyncio.gather(*(check_endpoint(c, timeout_s=timeout_s, env=env) for c in configs))
    )


async def check_endpoint(
    config: EndpointConfig, *, timeout_s: float, env: Mapping[str, str] = os.environ
) -> CheckResult:
    """Probe one endpoint: its model list, then one tiny streamed completion."""
    result = CheckResult(config.name, config.base_url, config.model)
    try:
        endpoint = Endpoint(config, env=env)
    except ConfigError as exc:  # e.g. its API key variable is not set
        return replace(result, error_kind="config", error=str(exc))
    client = endpoint.client.with_options(timeout=timeout_s)
    try:
        # Bounded as a whole too: a server that trickles bytes never hits a read timeout.
        async with asyncio.timeout(timeout_s * 3):
            result = await _probe_models(client, config, result)
            if result.ok and result.model_served is not False:
                result = await _probe_completion(client, config, result)
    except TimeoutError:
        result = replace(result, error_kind="timeout", error=f"no answer within {timeout_s * 3:g}s")
    finally:
        await endpoint.aclose()
    return result


async def _probe_models(
    client: openai.AsyncOpenAI, config: EndpointConfig, result: CheckResult
) -> CheckResult:
    try:
        page = await client.models.list()
    except openai.OpenAIError as exc:
        error = map_sdk_error(exc, config.name)
        if isinstance(error, BadRequest):
            # It answered, it just has no (or a different) model list: still try a completion.
            return replace(result, reachable=True)
        reachable = isinstance(error, AuthenticationFailed) or error.status_code is not None
        return _failed(replace(result, reachable=reachable), error)
    served = tuple(model.id for model in page.data)
    result = replace(
        result, reachable=True, served_models=served, model_served=config.model in served
    )
    if not result.model_served:
        listed = ", ".join(served) or "none"
        return replace(
            result,
            error_kind="model_not_served",
            error=f"the server does not list model {config.model!r} (it lists: {listed})",
        )
    return result


async def _probe_completion(
    client: openai.AsyncOpenAI, config: EndpointConfig, result: CheckResult
) -> CheckResult:
    started = time.perf_counter()
    first_token: float | None = None
    try:
        stream = await client.chat.completions.create(
            model=config.model,
            messages=_PROBE_MESSAGES,  # type: ignore[arg-type]
            max_tokens=PROBE_MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for chunk in stream:
                if first_token is None and _has_token(chunk):
                    first_token = time.perf_counter()
    except openai.OpenAIError as exc:
        return _failed(replace(result, reachable=True), map_sdk_error(exc, config.name))
    except Exception as exc:  # a transport error mid-stream, as Endpoint maps it
        return _failed(result, map_sdk_error(exc, config.name))
    finished = time.perf_counter()
    return replace(
        result,
        reachable=True,
        ttft_ms=None if first_token is None else (first_token - started) * 1000,
        latency_ms=(finished - started) * 1000,
    )


def _has_token(chunk: Any) -> bool:
    """True for a chunk that carries generated text, reasoning or a tool call."""
    for choice in chunk.choices or ():
        delta = choice.delta
        if delta is not None and (
            delta.content or getattr(delta, "reasoning_content", None) or delta.tool_calls
        ):
            return True
    return False


def _failed(result: CheckResult, error: EndpointError) -> CheckResult:
    # The result already names the endpoint; drop the error's own "endpoint 'x': ".
    message = str(error).removeprefix(f"endpoint {result.name!r}: ")
    if not result.reachable and error.kind == "connection":
        message = _unreachable(result.base_url)
    return replace(result, error_kind=error.kind, error=message)


# The fleet simulator's address in the example config (``spendgraph serve sim``).
_SIM_ADDRESS = "127.0.0.1:8900"


def _unreachable(base_url: str) -> str:
    """Nothing answered at ``base_url``: say where, and what usually starts it."""
    if _SIM_ADDRESS in base_url:
        return (
            f"nothing answers at {base_url}; start the simulator (`spendgraph serve sim`) "
            "or check with --sim"
        )
    return f"nothing answers at {base_url}; is the server running, and is base_url right?"


def result_json(result: CheckResult, config: EndpointConfig) -> dict[str, Any]:
    return {
        "name": result.name,
        "base_url": result.base_url,
        "model": result.model,
        "pool": config.pool,
        "hardware": config.hardware or None,
        "ok": result.ok,
        "reachable": result.reachable,
        "model_served": result.model_served,
        "served_models": list(result.served_models),
        "ttft_ms": _rounded(result.ttft_ms),
        "latency_ms": _rounded(result.latency_ms),
        "error_kind": result.error_kind,
        "error": result.error,
    }


def _rounded(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 1)


def check_table(console: Console, config: SpendgraphConfig, results: list[CheckResult]) -> Table:
    columns = [
        Col("endpoint"),
        Col("model", drop=2),
        Col("reachable"),
        Col("model served", drop=3),
        Col("TTFT", number=True),
        Col("latency", number=True, drop=1),
        Col("result"),
    ]
    rows = [_check_row(result) for result in results]
    title = f"Endpoint check ({fmt.label(config.source)}; not recorded in the ledger)"
    return fitted_table(console, title, columns, rows)


def _check_row(result: CheckResult) -> tuple[str, ...]:
    outcome = "[green]OK[/]" if result.ok else f"[red]FAIL[/] {fmt.label(result.error_kind)}"
    if result.error:
        outcome += f": {fmt.label(result.error)}"
    return (
        fmt.label(result.name),
        fmt.label(result.model),
        "yes" if result.reachable else "[red]no[/]",
        {True: "yes", False: "no", None: "?"}[result.model_served],
        fmt.millis(result.ttft_ms),
        fmt.millis(result.latency_ms),
        outcome,
    )
