"""``spendgraph chat``: a conversation in the terminal, one ledger query per message.

On a terminal the answer streams in place and a spend panel follows each turn;
with stdin piped, each input line is one query and the output is plain text.
Ctrl-C during a turn cancels that turn (its calls are recorded as cancelled);
Ctrl-C at the prompt, Ctrl-D or ``/quit`` leaves. SIGTERM (``docker stop``,
systemd, Kubernetes) cancels the running turn the same way, then leaves with
exit code 143 (128 + SIGTERM, see ``cli/signals.py``).

With ``--engine temporal`` each turn is a query workflow on ``spendgraph
worker`` processes (the thread's checkpoints and the ledger are the workers'),
its tokens streamed from Redis (``--redis``) as they publish them. Ctrl-C then
only stops watching: the turn is durable, finishes on the workers, and is recorded.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, AsyncExitStack, ExitStack, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.cli.apps import load_app
from spendgraph.cli.chat_view import LiveTurn, plain_turn, show_turn
from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    ConfigOption,
    LedgerOption,
    handled_errors,
    usd_amount_problem,
)
from spendgraph.cli.run import (
    BudgetTokensOption,
    BudgetUsdOption,
    NoBudgetOption,
    SimOption,
    SimScaleOption,
    ThreadOption,
    UserOption,
)
from spendgraph.cli.runtime import Target, open_session, require_tiers
from spendgraph.cli.serve_temporal import TemporalServe
from spendgraph.cli.signals import Shutdown, Terminated, wait_readable
from spendgraph.cli.spend_view import money
from spendgraph.cli.worker import (
    AddressOption,
    EngineOption,
    NamespaceOption,
    RedisOption,
    TaskQueueOption,
    check_engine,
    exit_now,
    exiting_at_once,
)
from spendgraph.graph import RunFinished, RunOptions, RunStarted, stream_graph, with_checkpointer
from spendgraph.graph.app import App
from spendgraph.graph.events import BudgetExhausted
from spendgraph.providers.config import CONFIG_ENV, DEFAULT_CONFIG_NAME
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.spend import Spend

HELP = """commands:
  /spend       every query of this chat session (all its threads, /new ones too) and totals
  /budget X    per-query budget in USD for the next messages (/budget off to clear)
  /new         start a new conversation thread
  /help        this help
  /quit        leave (also Ctrl-D; Ctrl-C cancels a running turn)"""


@dataclass
class Conversation:
    """What the chat remembers between turns."""

    app: App
    thread_id: str
    budget_usd: Decimal | None
    budget_tokens: int | None
    user: str | None
    no_budget: bool = False
    query_ids: list[str] = field(default_factory=list)  # every query, cancelled ones too


def chat(
    app_name: Annotated[
        str | None, typer.Option("--app", help="An example app's name or folder (default: chat).")
    ] = None,
    sim: SimOption = False,
    sim_time_scale: SimScaleOption = 1.0,
    config: ConfigOption = None,
    ledger: LedgerOption = None,
    budget_usd: BudgetUsdOption = None,
    budget_tokens: BudgetTokensOption = None,
    no_budget: NoBudgetOption = False,
    thread: ThreadOption = None,
    user: UserOption = None,
    engine: EngineOption = "inprocess",
    address: AddressOption = "127.0.0.1:7233",
    task_queue: TaskQueueOption = "spendgraph",
    namespace: NamespaceOption = "default",
    redis: RedisOption = None,
) -> None:
    """Chat with an app; every message is one query, and you see what it spent."""
    out = Output()
    with exiting_at_once(engine), handled_errors(out):
        app = load_app(app_name)
        target = Target(config=config, sim=sim, sim_time_scale=sim_time_scale, ledger=ledger)
        durable = None
        if check_engine(engine) == "temporal":  # the turns run on the workers
            durable = TemporalServe(address, namespace, task_queue, redis)
        talk = Conversation(
            app, thread or uuid.uuid4().hex, budget_usd, budget_tokens, user, no_budget
        )
        loop = ChatLoop(out, talk, interactive=sys.stdin.isatty(), durable=durable)
        code = loop.run(target)
        if durable is not None:
            exit_now(code)
        if code:
            raise typer.Exit(code)


class ChatLoop:
    """Reads messages, runs each as a query on one event loop, renders the result."""

    def __init__(
        self,
        out: Output,
        talk: Conversation,
        *,
        interactive: bool,
        durable: TemporalServe | None = None,
    ):
        """``durable``: run the turns as workflows on Temporal workers (else in process)."""
        self.out = out
        self.talk = talk
        self.interactive = interactive
        self.durable = durable
        self.ledger: Ledger | None = None
        self.endpoints_label = ""
        self._events: Callable[[str, RunOptions], AsyncIterator[Any]] | None = None
        self.shutdown = Shutdown()
        self._lines = StdinLines(sys.stdin, terminal=interactive)

    def run(self, target: Target) -> int:
        """Chat until the user leaves; the exit code: 0, or 143 once SIGTERM stopped it."""
        with self.shutdown, ExitStack() as stack, asyncio.Runner() as runner:
            astack = AsyncExitStack()
            try:
                opening = self._open(stack, astack, target)
                with self._starting(target):
                    runner.run(self.shutdown.guard(opening))
                self._greet()
                self._loop(runner)
            except asyncio.CancelledError:
                if self.shutdown.signum is None:
                    raise
            finally:
                runner.run(astack.aclose())  # a signal now is only noted: the ledger is closing
        if self.shutdown.signum is None:
            return 0
        self.out.errors.print(
            f"stopped by {self.shutdown.signal_name}", style="yellow", highlight=False
        )
        return self.shutdown.exit_code

    async def _open(self, stack: ExitStack, astack: AsyncExitStack, target: Target) -> None:
        """What the turns run on: a provider layer here, or the workers of a task queue."""
        app = self.talk.app
        if self.durable is not None:
            self.ledger = stack.enter_context(Ledger.open(durable_ledger_url(target)))
            self._events = await durable_events(self.durable, app, self.talk)
            self.endpoints_label = f"Temporal {self.durable.address} ({self.durable.task_queue})"
            return
        session = await open_session(stack, astack, target)
        require_tiers(session.layer.config, app.tiers, app.name)
        self.ledger, self.endpoints_label = session.layer.ledger, session.endpoints_label

        def events(text: str, options: RunOptions) -> AsyncIterator[Any]:
            graph = with_checkpointer(app.build(), session.checkpointer_for(app))
            return stream_graph(
                graph, session.layer, text, thread_id=self.talk.thread_id, options=options
            )

        self._events = events

    def _starting(self, target: Target) -> AbstractContextManager[object]:
        """A spinner while the endpoints start (loading the embedded model takes seconds)."""
        if not self.interactive:
            return nullcontext()
        if self.durable is not None:
            what = f"connecting to Temporal at {self.durable.address}"
        elif target.sim:
            what = "starting the fleet simulator"
        elif target.config or os.environ.get(CONFIG_ENV) or Path(DEFAULT_CONFIG_NAME).exists():
            what = "opening the endpoints and the ledger"
        else:
            what = "loading the embedded model (SmolLM2-135M on this CPU, a few seconds)"
        return self.out.console.status(what, spinner="dots")

    def _greet(self) -> None:
        if self.interactive:
            self.out.print(
                f"[bold]{self.talk.app.name}[/] on {self.endpoints_label} · "
                f"thread {self.talk.thread_id[:8]} · /help for commands",
                highlight=False,
            )

    def _loop(self, runner: asyncio.Runner) -> None:
        while self.shutdown.signum is None and (line := self._read()) is not None:
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                if not self._command(text):
                    return
                continue
            try:
                runner.run(self.shutdown.guard(self._turn(text)))
            except KeyboardInterrupt:
                self._cancelled()
            except asyncio.CancelledError:
                if self.shutdown.signum is None:
                    raise
                self._cancelled()

    def _cancelled(self) -> None:
        if self.durable is not None:  # a workflow is not this process's to cancel
            self.out.print("[yellow]turn left[/] (it finishes on the workers, and is recorded)")
        else:
            self.out.print("[yellow]turn cancelled[/] (its calls are recorded as cancelled)")

    def _read(self) -> str | None:
        try:
            if self.interactive:  # before the wait: a SIGTERM meanwhile is only noted
                self.out.console.print("[bold green]you>[/] ", end="")
            with self.shutdown.interruptible():
                return self._lines.next()
        except (EOFError, KeyboardInterrupt, Terminated):
            if self.interactive:
                self.out.print()  # the prompt's line is left open: end it before leaving
            return None

    async def _turn(self, text: str) -> None:
        talk = self.talk
        options = talk.app.run_options(
            budget_usd=talk.budget_usd,
            budget_tokens=talk.budget_tokens,
            user=talk.user,
            clear_budget=talk.no_budget,
        )
        events = self._events(text, options)
        result, refusal = None, None
        with LiveTurn(self.out) if self.interactive else nullcontext() as live:
            async for event in events:
                if isinstance(event, RunStarted):
                    talk.query_ids.append(event.query_id)  # listed by /spend even if cancelled
                elif isinstance(event, RunFinished):
                    result = event.result
                elif isinstance(event, BudgetExhausted):
                    refusal = refusal or event.message
                if live is not None:
                    live.event(event)
        await asyncio.to_thread(self.ledger.flush)
        records = self.ledger.calls_for_query(result.query_id)
        if not records and result.calls:  # the workers recorded the turn somewhere else
            self.out.error(
                f"the ledger {self.ledger.url} has no rows of query {result.query_id}: "
                "pass the workers' ledger with --ledger (shown: the workflow's own record)"
            )
            records = list(result.calls)
        if self.interactive:
            show_turn(self.out, result, records, refusal)
        else:
            plain_turn(result, records, refusal)

    def _command(self, text: str) -> bool:
        """Handle a slash command; False means leave."""
        name, _, argument = text.partition(" ")
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            self.out.print(HELP, highlight=False)
        elif name == "/new":
            self.talk.thread_id = uuid.uuid4().hex
            self.out.print(f"new thread {self.talk.thread_id[:8]}")
        elif name == "/budget":
            self._set_budget(argument.strip())
        elif name == "/spend":
            self._show_spend()
        else:
            self.out.error(f"unknown command {name}; /help lists them")
        return True

    def _set_budget(self, value: str) -> None:
        if value in ("off", "none"):
            self.talk.budget_usd, self.talk.no_budget = None, True
            self.out.print("no budget for the next messages (the app's default is off too)")
            return
        if usd_amount_problem(value):  # nan, inf, 0, -1, abc: refused, the chat goes on
            self.out.error(f"/budget needs a positive USD amount (or 'off'), got {value!r}")
            return
        amount = Decimal(value)
        self.talk.budget_usd, self.talk.no_budget = amount, False
        self.out.print(f"budget ${amount:f} per query")

    def _show_spend(self) -> None:
        """This session's queries (cancelled ones too) and their totals, from the ledger."""
        ledger = self.ledger
        ledger.flush()
        table = Table(title="this session's queries")
        for column in ("query", "thread", "status", "calls", "tokens", "cost"):
            table.add_column(column)
        summaries = [ledger.query_summary(query_id) for query_id in self.talk.query_ids]
        for summary in summaries:
            table.add_row(
                summary.query.id[:8],
                summary.query.thread_id[:8],
                summary.query.status.value,
                fmt.calls(summary.spend),
                fmt.tokens(summary.spend.total_tokens),
                money(summary.spend),
            )
        self.out.print(table)
        whole = sum((summary.spend for summary in summaries), Spend())
        self.out.print(
            f"session: {len(summaries)} queries, {fmt.calls(whole)} calls, {money(whole)}",
            highlight=False,
        )


class StdinLines:
    """stdin's lines for the prompt, each read once :func:`wait_readable` saw input.

    A signal at the prompt (Ctrl-C, SIGTERM) then always ends the wait, however
    close to the read it lands; a read that is already blocking can sleep through it.
    A terminal's line goes through ``input()``, which a terminal hands one line per
    read. Piped lines are read and split here: ``sys.stdin.readline()`` buffers
    the lines after the one it returns, where a wait on the descriptor cannot see
    them. A stdin without a descriptor (a test runner's) is read as it is.
    """

    def __init__(self, stream: TextIO, *, terminal: bool):
        self._stream = stream
        self._terminal = terminal
        try:
            self._fd: int | None = stream.fileno()
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            self._fd = None
        decoder = codecs.getincrementaldecoder(stream.encoding or "utf-8")
        self._decoder = decoder(stream.errors or "strict")
        self._pending = ""

    def next(self) -> str | None:
        """The next line, None at the end. On a terminal Ctrl-D raises EOFError."""
        if self._fd is None:
            return self._stream.readline() or None
        if self._terminal:
            wait_readable(self._fd)
            return input()
        while "\n" not in self._pending:
            wait_readable(self._fd)
            data = os.read(self._fd, 65536)
            if not data:  # the end: what is left is the last line, unterminated
                last, self._pending = self._pending + self._decoder.decode(b"", final=True), ""
                return last or None
            self._pending += self._decoder.decode(data)
        line, _, self._pending = self._pending.partition("\n")
        return line + "\n"


def durable_ledger_url(target: Target) -> str:
    """The ledger the workers write (``--ledger``, or the config's ``[ledger]``)."""
    from spendgraph.cli.options import ledger_for_command

    return ledger_for_command(target.ledger, target.config).url


async def durable_events(durable: TemporalServe, app: App, talk: Conversation):
    """Each turn as a workflow on the workers of ``durable``'s task queue, its tokens
    streamed from Redis (with ``--redis``) as the workers publish them."""
    from spendgraph.durable.client import query_events, query_spec
    from spendgraph.durable.worker import TemporalTarget, connect

    target = TemporalTarget(durable.address, durable.namespace, durable.task_queue)
    client = await connect(target)

    def events(text: str, options: RunOptions) -> AsyncIterator[Any]:
        spec = query_spec(app.name, text, options, thread_id=talk.thread_id)
        return query_events(client, spec, durable.task_queue, durable.redis)

    return events
