"""``spendgraph run APP "input"``: one query through an app, then its answer and spend."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, ExitStack
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.markdown import Markdown

from spendgraph.cli.apps import load_app
from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    CommandError,
    ConfigOption,
    JsonOption,
    LedgerOption,
    handled_errors,
)
from spendgraph.cli.runtime import Target, open_session, require_tiers
from spendgraph.cli.spend_view import spend_json, spend_panel
from spendgraph.graph import RunResult, run_graph, with_checkpointer
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
    typer.Option("--budget-usd", parser=Decimal, metavar="USD", help="Per-query budget in USD."),
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
) -> None:
    """Run one query through an app and print its answer and what it spent."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
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
        result, records = asyncio.run(_run_once(app, text, target, thread, overrides))
        _report(out, result, records)


async def _run_once(app: App, text: str, target: Target, thread: str | None, overrides: dict):
    with ExitStack() as stack:
        async with AsyncExitStack() as astack:
            session = await open_session(stack, astack, target)
            require_tiers(session.layer.config, app.tiers, app.name)
            graph = with_checkpointer(app.build(), session.checkpointer_for(app))
            result = await run_graph(
                graph, session.layer, text, thread_id=thread, options=app.run_options(**overrides)
            )
            # The ledger is the record: read back every attempt, denied ones included.
            await asyncio.to_thread(session.layer.ledger.flush)
            records = session.layer.ledger.calls_for_query(result.query_id)
            return result, records


def _report(out: Output, result: RunResult, records: list) -> None:
    if out.json_mode:
        out.emit_json(run_json(result, records))
        return
    out.print(Markdown(result.answer or "_(no answer)_"))
    status = result.status.value + (f" ({result.stop_reason})" if result.stop_reason else "")
    out.print(spend_panel(records, title=f"query {result.query_id[:8]} · {status}"))


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
