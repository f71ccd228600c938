"""``spendgraph serve app``: agent apps behind an OpenAI-compatible HTTP front door.

The parent process checks everything it can (apps, ledger, workers vs SQLite),
starts the fleet simulator once for ``--sim``, and hands uvicorn a factory;
each worker process opens its own provider layer, ledger connection and
thread checkpointer from the same :class:`ServeSpec` (passed in the
environment, since uvicorn's workers are fresh interpreters). SIGTERM and
Ctrl-C drain: no new requests, in-flight ones get ``--drain-s`` seconds, then
the rest are cancelled (their calls recorded as cancelled) and the ledger is flushed.
With ``--engine temporal`` the queries run as workflows on ``spendgraph worker``
processes instead (see ``cli/serve_temporal.py``); the HTTP side is the same.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import make_url

from spendgraph.cli.apps import load_app
from spendgraph.cli.console import Output
from spendgraph.cli.options import CommandError, ConfigOption, LedgerOption, handled_errors
from spendgraph.cli.run import SimOption, SimScaleOption
from spendgraph.cli.runtime import Target, open_session, require_tiers, resolve_config
from spendgraph.cli.serve_temporal import TemporalServe, check_reachable, open_engines
from spendgraph.cli.worker import (
    AddressOption,
    EngineOption,
    NamespaceOption,
    RedisOption,
    TaskQueueOption,
    check_engine,
    exiting_at_once,
)
from spendgraph.graph import with_checkpointer
from spendgraph.providers.config import CONFIG_ENV
from spendgraph.providers.ledger import Ledger, redact_url, resolve_ledger_url
from spendgraph.providers.ledger.keys import list_keys

SPEC_ENV = "SPENDGRAPH_SERVE_SPEC"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True, slots=True)
class ServeSpec:
    """Everything a worker needs to build the same front door as its siblings."""

    apps: tuple[str, ...]
    config: str | None = None
    ledger: str | None = None
    sim: bool = False
    sim_url: str | None = None
    require_keys: bool = True
    # Set: queries run as workflows on Temporal workers (see cli/serve_temporal.py).
    temporal: TemporalServe | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSpec:
        data = json.loads(text)
        temporal = data.get("temporal")
        temporal = TemporalServe(**temporal) if temporal else None
        return cls(**{**data, "apps": tuple(data["apps"]), "temporal": temporal})

    def target(self) -> Target:
        config = Path(self.config) if self.config else None
        return Target(config=config, sim=self.sim, ledger=self.ledger, sim_url=self.sim_url)


def worker_app():
    """The uvicorn factory each worker calls: the front door for the spec in the environment."""
    from spendgraph.serve import FrontDoorOptions, front_door

    spec = ServeSpec.from_json(os.environ[SPEC_ENV])
    return front_door(lambda: open_backend(spec), FrontDoorOptions(require_keys=spec.require_keys))


@asynccontextmanager
async def open_backend(spec: ServeSpec) -> AsyncIterator:
    """The provider layer and compiled graphs of one worker, closed (and flushed) on exit."""
    from spendgraph.serve import Backend, ServedApp

    apps = [load_app(name) for name in spec.apps]
    with ExitStack() as stack:
        async with AsyncExitStack() as astack:
            session = await open_session(stack, astack, spec.target())
            engines = await open_engines(spec.temporal, apps) if spec.temporal else {}
            served = {}
            for app in apps:
                require_tiers(session.layer.config, app.tiers, app.name)
                if app.name in engines:  # its graph runs on the workers
                    served[app.name] = ServedApp(app, engine=engines[app.name])
                    continue
                graph = with_checkpointer(app.build(), session.checkpointer_for(app))
                served[app.name] = ServedApp(app, graph)
            yield Backend(session.layer, served)


def serve_app(
    apps: Annotated[list[str], typer.Argument(help="App name(s) or path(s); each is a `model`.")],
    sim: SimOption = False,
    sim_time_scale: SimScaleOption = 1.0,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes (more than 1 needs PostgreSQL).")
    ] = 1,
    no_keys: Annotated[
        bool, typer.Option("--no-keys", help="Serve without API keys (loopback only).")
    ] = False,
    drain_s: Annotated[
        float, typer.Option(min=0, help="On SIGTERM/Ctrl-C, seconds in-flight requests may finish.")
    ] = 20.0,
    engine: EngineOption = "inprocess",
    address: AddressOption = "127.0.0.1:7233",
    task_queue: TaskQueueOption = "spendgraph",
    namespace: NamespaceOption = "default",
    redis: RedisOption = None,
) -> None:
    """Serve apps as an OpenAI-compatible API: POST /v1/chat/completions with model=APP."""
    out = Output()
    with exiting_at_once(engine), handled_errors(out), ExitStack() as stack:
        target = Target(config=config, sim=sim, sim_time_scale=sim_time_scale, ledger=ledger)
        temporal = None
        if check_engine(engine) == "temporal":
            temporal = TemporalServe(address, namespace, task_queue, redis)
        if temporal is not None:
            _check_durable(target, temporal)
        spec = _checked_spec(stack, apps, target, host, workers, no_keys)
        spec = replace(spec, temporal=temporal)
        _announce(out, spec, host, port, workers)
        _run_uvicorn(stack, spec, host, port, workers, drain_s)


def _checked_spec(
    stack: ExitStack, apps: list[str], target: Target, host: str, workers: int, no_keys: bool
) -> ServeSpec:
    """Fail in the parent, with one clear line, on what would fail in every worker."""
    for name in apps:
        load_app(name)
    if no_keys and host not in LOOPBACK:
        raise CommandError(
            f"--no-keys serves anyone who can reach {host}: only allowed on loopback"
        )
    sim_url = None
    if target.sim:
        from spendgraph.providers.local.sim.server import run_simulator

        sim_url = stack.enter_context(run_simulator(time_scale=target.sim_time_scale)).base_url
    configured = target.config is not None or bool(os.environ.get(CONFIG_ENV))
    if not target.sim and not configured:
        if workers > 1:
            raise CommandError(
                "--workers > 1 needs --config or --sim: the embedded model serves one worker"
            )
        # The embedded model: the one worker starts it (and finds the ledger) itself.
        return ServeSpec(tuple(apps), None, target.ledger, require_keys=not no_keys)
    resolved, _ = resolve_config(stack, replace(target, sim_url=sim_url))
    url = resolve_ledger_url(target.ledger or resolved.ledger.url)
    if workers > 1 and make_url(url).get_backend_name() != "postgresql":
        raise CommandError(
            f"--workers {workers} needs a PostgreSQL ledger (--ledger postgresql://...): "
            f"the SQLite ledger {redact_url(url)} serves one process"
        )
    config = str(target.config) if target.config else None
    return ServeSpec(tuple(apps), config, url, target.sim, sim_url, not no_keys)


def _check_durable(target: Target, temporal: TemporalServe) -> None:
    """Durable serving needs endpoints named in config (not the embedded model of this
    process) and a Temporal server (and Redis, if given) that answer."""
    if not target.sim and target.config is None and not os.environ.get(CONFIG_ENV):
        raise CommandError(
            "--engine temporal needs --config or --sim (the endpoints the workers use), "
            "and the ledger the workers share (--ledger)"
        )
    check_reachable(temporal)


def _announce(out: Output, spec: ServeSpec, host: str, port: int, workers: int) -> None:
    where = f"http://{host}:{port}/v1"
    out.print(f"serving {', '.join(spec.apps)} at {where} ({workers} worker(s))")
    if not spec.require_keys:
        out.print("no API keys: every request is anonymous (--no-keys)", style="dim")
    elif spec.ledger:
        with Ledger.open(spec.ledger) as ledger:
            if not any(k.active for k in list_keys(ledger.engine)):
                out.print(
                    "no API keys yet: create one with `spendgraph keys create --tenant NAME`",
                    style="yellow",
                )


def _run_uvicorn(stack: ExitStack, spec, host, port, workers, drain_s) -> None:
    import uvicorn

    os.environ[SPEC_ENV] = spec.to_json()
    if workers > 1:
        # Each worker writes its metrics here; /metrics on any of them sums them all.
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="spendgraph-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    uvicorn.run(
        "spendgraph.cli.serve_app:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        timeout_graceful_shutdown=int(max(1, drain_s)),
        access_log=False,
        log_level="warning",
        lifespan="on",
    )
