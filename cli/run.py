"""``spendgraph run APP "input"``: one query through an app, then its answer and spend.

Ctrl-C and SIGTERM (``docker stop``, systemd, Kubernetes) cancel the query: its
in-flight calls are recorded as cancelled, the query is closed ``cancelled``,
the ledger is flushed, and the command exits 130 (Ctrl-C) or 143 (SIGTERM),
128 + the signal's number (see ``cli/signals.py``).
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

import typer

from spendgraph.cli.apps import load_app
from spendgraph.cli.chat_view import show_turn
from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    CommandError,
    ConfigOption,
    JsonOption,
    LedgerOption,
    handled_errors,
    parse_usd_budget,
)
from spendgraph.cli.run_temporal import run_on_temporal
from spendgraph.cli.runtime import Target, open_session, require_tiers
from spendgraph.cli.signals import Shutdown
from spendgraph.cli.spend_view import spend_json
from spendgraph.cli.worker import (
    AddressOption,
    EngineOption,
    NamespaceOption,
    TaskQueueOption,
    check_engine,
    exit_now,
    exiting_at_once,
)
from spendgraph.graph import (
    BudgetExhausted,
    RunFinished,
    RunResult,
    RunStarted,
    stream_graph,
    with_checkpointer,
)
from spendgraph.graph.app import App

SimOption = Annotated[
    bool, typer.Option("--sim", help="Start the fleet simulator and use the example config.")
]
SimScaleOption = Annotated[
    float,
    typer.Option("--sim-time-scale", min=0.0, help="Simulator speed: 1 real time, 0 no waiting."),
]
BudgetUsdOption = Annotated[
    Decimal | None,
    typer.Option(
        "--budget-usd", parser=parse_usd_budget, metavar="USD", help="Per-query budget in USD."
    ),
]
BudgetTokensOption = Annotated[
    int | None, typer.Option("--budget-tokens", min=1, help="Per-query budget in tokens.")
]
NoBudgetOption = Annotated[
    bool,
    typer.Option("--no-budget", help="Run without the app's default budget (or any budget)."),
]
ThreadOption = Annotated[
    str | None, typer.Option("--thread", help="Conversation thread to continue (or start).")
]
UserOption = Annotated[str | None, typer.Option("--user", help="Who asked (recorded).")]


def run(
    app_name: Annotated[str, typer.Argument(metavar="APP", help="An example's name or a folder.")],
    text: Annotated[str | None, typer.Argument(metavar="INPUT", help="The user's input.")] = None,
    sim: SimOption = False,
    sim_time_scale: SimScaleOption = 0.0,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
    budget_usd: BudgetUsdOption = None,
    budget_tokens: BudgetTokensOption = None,
    no_budget: NoBudgetOption = False,
    thread: ThreadOption = None,
    user: UserOption = None,
    as_json: JsonOption = False,
    engine: EngineOption = "inprocess",
    address: AddressOption = "127.0.0.1:7233",
    task_queue: TaskQueueOption = "spendgraph",
    namespace: NamespaceOption = "default",
) -> None:
    """Run one query through an app and print its answer and what it spent."""
    out = Output(json_mode=as_json)
    with exiting_at_once(engine), handled_errors(out):
        app = load_app(app_name)
        if text is None:
            samples = "\n".join(f"  {s}" for s in app.samples) or "  (none)"
            raise CommandError(f"give the input to {app.name}, e.g. one of its samples:\n{samples}")
        target = Target(config=config, sim=sim, sim_time_scale=sim_time_scale, ledger=ledger)
        overrides = {
            "budget_usd": budget_usd,
            "budget_tokens": budget_tokens,
            "user": user,
            "clear_budget": no_budget,
        }
        progress = _Progress()
        if check_engine(engine) == "temporal":  # on the workers: see cli/run_temporal.py
            result, records = run_on_temporal(
                app, text, thread=thread, overrides=overrides, address=address,
                task_queue=task_queue, namespace=namespace, config=config, ledger=ledger,
            )  # fmt: skip
            _report(out, result, records, progress.refusal)
            exit_now(0)
            return
        with Shutdown((signal.SIGINT, signal.SIGTERM)) as shutdown:
            try:
                result, records = asyncio.run(
                    shutdown.guard(_run_once(app, text, target, thread, overrides, progress))
                )
            except asyncio.CancelledError:
                if shutdown.signum is None:
                    raise
                _report_stopped(out, shutdown, progress.query_id)
                raise typer.Exit(shutdown.exit_code) from None
            # A signal now is only noted: the query is done.
            _report(out, result, records, progress.refusal)
        if shutdown.signum is not None:
            raise typer.Exit(shutdown.exit_code)


@dataclass
class _Progress:
    """What a run had reached, for the message when a signal stops it."""

    query_id: str | None = None
    refusal: str | None = None  # the first budget refusal's reason, for a missing answer


async def _run_once(
    app: App, text: str, target: Target, thread: str | None, overrides: dict, progress: _Progress
):
    with ExitStack() as stack:
        async with AsyncExitStack() as astack:
            session = await open_session(stack, astack, target)
            require_tiers(session.layer.config, app.tiers, app.name)
            graph = with_checkpointer(app.build(), session.checkpointer_for(app))
            options = app.run_options(**overrides)
            result = None
            async for event in stream_graph(
                graph, session.layer, text, thread_id=thread, options=options
            ):
                if isinstance(event, RunStarted):
                    progress.query_id = event.query_id
                elif isinstance(event, RunFinished):
                    result = event.result
                elif isinstance(event, BudgetExhausted):
                    progress.refusal = progress.refusal or event.message
            assert result is not None  # stream_graph ends with RunFinished or raises
            # The ledger is the record: read back every attempt, denied ones included.
            await asyncio.to_thread(session.layer.ledger.flush)
            records = session.layer.ledger.calls_for_query(result.query_id)
            return result, records


def _report_stopped(out: Output, shutdown: Shutdown, query_id: str | None) -> None:
    """One line on stderr: what the signal stopped, and where its record is."""
    if query_id is None:
        message = f"stopped by {shutdown.signal_name} before the query started"
    else:
        message = (
            f"stopped by {shutdown.signal_name}: query {query_id[:8]} cancelled, its calls "
            f"recorded (spendgraph audit show {query_id[:8]})"
        )
    # soft_wrap: one line however narrow the terminal, so logs and grep see it whole.
    out.errors.print(message, style="yellow", highlight=False, markup=False, soft_wrap=True)


def _report(out: Output, result: RunResult, records: list, refusal: str | None = None) -> None:
    if out.json_mode:
        out.emit_json(run_json(result, records))
        return
    show_turn(out, result, records, refusal)


def run_json(result: RunResult, records: list) -> dict[str, Any]:
    """The ``--json`` shape: the answer, the query's status and its spend."""
    spend = spend_json(records)
    return {
        "query_id": result.query_id,
        "thread_id": result.thread_id,
        "status": result.status.value,
        "stop_reason": result.stop_reason,
        "answer": result.answer,
        **spend,
    }
