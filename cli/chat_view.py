"""How a chat turn looks: live text of the active agent while the graph runs, then
the answer in Markdown and the spend panel; or plain lines when stdin is a pipe."""

from __future__ import annotations

import sys

from rich.console import Group
from rich.live import Live
from rich.markdown import Markdown
from rich.spinner import Spinner
from rich.text import Text

from spendgraph.cli.console import Output
from spendgraph.cli.spend_view import by_agent, money, spend_panel, total
from spendgraph.graph import RunResult
from spendgraph.graph.events import (
    AgentStarted,
    BudgetExhausted,
    DraftReady,
    TokenDelta,
    ToolCallStarted,
    VerdictReady,
)
from spendgraph.providers.ledger.records import CallRecord

# Only the tail of a long streamed answer stays on screen while it streams.
LIVE_LINES = 24


class LiveTurn:
    """Renders one turn's events in place (a rich Live region) on a terminal."""

    def __init__(self, out: Output):
        self._out = out
        self._agent = "starting"
        self._text: list[str] = []
        self._notes: list[str] = []
        self._live = Live(self._view(), console=out.console, refresh_per_second=12, transient=True)

    def __enter__(self) -> LiveTurn:
        self._live.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._live.__exit__(*exc_info)

    def event(self, event: object) -> None:
        """Update the display for one run event."""
        if isinstance(event, AgentStarted):
            self._agent, self._text = event.path, []
        elif isinstance(event, TokenDelta):
            self._text.append(event.text)
        elif isinstance(event, ToolCallStarted):
            self._notes.append(f"{event.path} → tool {event.name}")
        elif isinstance(event, BudgetExhausted):
            self._notes.append(f"budget exhausted at {event.path}: wrapping up")
        elif isinstance(event, DraftReady):
            ttft = "?" if event.ttft_ms is None else f"{event.ttft_ms:.0f} ms"
            self._notes.append(f"draft from {event.agent} (first token {ttft})")
        elif isinstance(event, VerdictReady):
            verdict = {True: "accepted", False: "rejected", None: "unclear"}[event.accepted]
            self._notes.append(f"verifier {event.agent}: {verdict}")
        self._live.update(self._view())

    def _view(self) -> Group:
        tail = "\n".join("".join(self._text).splitlines()[-LIVE_LINES:])
        spinner = Spinner("dots", text=Text(f" {self._agent}", style="cyan"))
        notes = [Text(note, style="dim") for note in self._notes[-3:]]
        return Group(spinner, *notes, Markdown(tail) if tail else Text(""))


def show_turn(out: Output, result: RunResult, records: list[CallRecord]) -> None:
    """The finished turn on a terminal: the answer, then the spend panel."""
    out.print(Markdown(result.answer or "_(no answer)_"))
    status = result.status.value + (f" · {result.stop_reason}" if result.stop_reason else "")
    out.print(spend_panel(records, title=f"query {result.query_id[:8]} · {status}"))


def plain_turn(result: RunResult, records: list[CallRecord]) -> None:
    """The finished turn as plain lines (stdin is not a terminal): answer, then spend."""
    whole = total(by_agent(records))
    spend = whole.spend
    ttft = "-" if whole.first_ttft_ms is None else f"{whole.first_ttft_ms:.0f}ms"
    endpoints = ",".join(whole.endpoints) or "-"
    sys.stdout.write(result.answer.rstrip() + "\n")
    sys.stdout.write(
        f"[spend] query={result.query_id} status={result.status.value} calls={spend.calls} "
        f"failed={spend.failed} refused={spend.refused} "
        f"tokens={spend.input_uncached}/{spend.input_cached}/{spend.output} "
        f"cost={money(spend).replace(' ', '_')} ttft={ttft} endpoints={endpoints}\n"
    )
    sys.stdout.flush()
