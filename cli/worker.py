"""``spendgraph worker --engine temporal APP``: serve an app's durable queries.

A worker runs the query workflow and its activities (the graph driver and
every model call) on a Temporal task queue, with this process's provider
layer: its endpoints (``--config``/``--sim``), and its ledger, which should be
the PostgreSQL one every worker shares. Start several; a query survives the
death of the one running it. Ctrl-C or SIGTERM stops the worker (Temporal
hands what it was running to another).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from typing import Annotated

import typer

from spendgraph.cli.apps import load_app
from spendgraph.cli.console import Output
from spendgraph.cli.options import CommandError, ConfigOption, LedgerOption, handled_errors
from spendgraph.cli.runtime import Target, open_session, require_tiers
from spendgraph.cli.signals import Shutdown
from spendgraph.graph.app import App

ENGINES = ("inprocess", "temporal")
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine", help="inprocess (default: this process) or temporal (durable, on workers)."
    ),
]
AddressOption = Annotated[
    str,
    typer.Option(
        "--address", envvar="SPENDGRAPH_TEMPORAL_ADDRESS", help="The Temporal server (host:port)."
    ),
]
TaskQueueOption = Annotated[
    str,
    typer.Option(
        "--task-queue", envvar="SPENDGRAPH_TEMPORAL_TASK_QUEUE", help="Temporal task queue."
    ),
]
NamespaceOption = Annotated[str, typer.Option("--namespace", help="Temporal namespace.")]
RedisOption = Annotated[
    str | None,
    typer.Option(
        "--redis",
        envvar="SPENDGRAPH_REDIS_URL",
        help="Redis URL: token deltas of durable queries (workers publish, callers stream).",
    ),
]


def check_engine(engine: str) -> str:
    """The engine name, or a clear error; ``temporal`` needs the extra installed."""
    if engine not in ENGINES:
        raise CommandError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if engine == "temporal":
        try:
            import temporalio  # noqa: F401
        except ImportError:
            raise CommandError(
                "--engine temporal needs the extra: pip install 'spendgraph[temporal]'"
            ) from None
    return engine


def exit_now(code: int) -> None:
    """End the process with ``code`` once output is flushed, skipping interpreter teardown:
    a process that used a Temporal client can segfault there after its work is done
    (temporalio sdk-python issue 300). Only in a real process (a test runner that
    captured stdout keeps running)."""
    if sys.stdout is not sys.__stdout__:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@contextmanager
def exiting_at_once(engine: str) -> Iterator[None]:
    """With the Temporal engine, a command's exit skips interpreter teardown (see
    :func:`exit_now`), on an error too: a failed connect can crash it as well."""
    try:
        yield
    except typer.Exit as exc:
        if engine == "temporal":
            exit_now(exc.exit_code)
        raise


def worker(
    app_names: Annotated[
        list[str],
        typer.Argument(metavar="APP...", help="Example names or folders (one task queue each)."),
    ],
    engine: EngineOption = "temporal",
    address: AddressOption = "127.0.0.1:7233",
    task_queue: TaskQueueOption = "spendgraph",
    namespace: NamespaceOption = "default",
    sim: Annotated[bool, typer.Option("--sim", help="Start the fleet simulator.")] = False,
    sim_time_scale: Annotated[float, typer.Option("--sim-time-scale", min=0.0)] = 0.0,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
    redis: RedisOption = None,
) -> None:
    """Run a worker for APP's durable queries until stopped."""
    out = Output()
    with exiting_at_once(engine), handled_errors(out):
        if check_engine(engine) != "temporal":
            raise CommandError("a worker serves --engine temporal (in-process runs need none)")
        from spendgraph.durable.worker import TemporalTarget

        apps = [load_app(name) for name in app_names]
        target = Target(config=config, sim=sim, sim_time_scale=sim_time_scale, ledger=ledger)
        temporal = TemporalTarget(address=address, namespace=namespace, task_queue=task_queue)
        with Shutdown((signal.SIGINT, signal.SIGTERM)) as shutdown:
            try:
                asyncio.run(shutdown.guard(_serve(apps, target, temporal, redis, out)))
            except asyncio.CancelledError:
                if shutdown.signum is None:
                    raise
            out.errors.print(f"worker {os.getpid()} stopped", highlight=False, markup=False)
    exit_now(0)


async def _serve(apps: list[App], target: Target, temporal, redis, out: Output) -> None:
    from spendgraph.durable.activities import QueryActivities
    from spendgraph.durable.stream import DeltaPublisher
    from spendgraph.durable.worker import connect, run_worker

    with ExitStack() as stack:
        async with AsyncExitStack() as astack:
            session = await open_session(stack, astack, target)
            for app in apps:
                require_tiers(session.layer.config, app.tiers, app.name)
            client = await connect(temporal)
            publisher = DeltaPublisher(redis) if redis else None
            if publisher is not None:
                astack.push_async_callback(publisher.aclose)
            activities = QueryActivities(session.layer, apps, session.checkpointer, publisher)

            def ready() -> None:
                names = ", ".join(activities.apps)
                out.errors.print(
                    f"worker {os.getpid()} serving {names} on {temporal.address} "
                    f"(task queue {temporal.task_queue})",
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )

            await run_worker(client, activities, temporal, asyncio.Event(), ready=ready)
