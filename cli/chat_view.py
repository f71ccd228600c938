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
    AgentFinished,
    AgentStarted,
    BudgetExhausted,
    DraftReady,
    TokenDelta,
    ToolCallStarted,
    VerdictReady,
)
from spendgraph.providers.ledger.records import CallRecord, QueryStatus

# Only the tail of a long streamed answer stays on screen while it streams.
LIVE_LINES = 24


class LiveTurn:
    """Renders one turn's events in place (a rich Live region) on a terminal.

    Each agent's tokens are kept apart: one streaming agent shows as the tail of
    its text; agents streaming at once (research_chat's specialists) show one
    line each, so their tokens never interleave. If the turn is cut short
    (Ctrl-C, SIGTERM) the text streamed so far stays on screen.
    """

    def __init__(self, out: Output):
        self._out = out
        self._streams: dict[str, list[str]] = {}  # agent path -> its text, while it runs
        self._running: list[str] = []
        self._notes: list[str] = []
        self._live = Live(self.view(), console=out.console, refresh_per_second=12, transient=True)

    def __enter__(self) -> LiveTurn:
        self._live.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._live.__exit__(exc_type, exc, tb)
        if exc_type is not None:
            self._keep_partial()

    def event(self, event: object) -> None:
        """Update the display for one run event."""
        if isinstance(event, AgentStarted):
            self._streams[event.path] = []
            self._running = [p for p in self._running if p != event.path] + [event.path]
        elif isinstance(event, AgentFinished):
            self._running = [p for p in self._running if p != event.path]
        elif isinstance(event, TokenDelta):
            self._streams.setdefault(event.path, []).append(event.text)
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
        self._live.update(self.view())

    def _text(self, path: str) -> str:
        return "".join(self._streams.get(path, ()))

    def view(self) -> Group:
        """What the live region shows now."""
        running = self._running or ["finishing" if self._streams else "starting"]
        label = running[0] if len(running) == 1 else f"{len(running)} agents"
        spinner = Spinner("dots", text=Text(f" {label}", style="cyan"))
        notes = [Text(note, style="dim") for note in self._notes[-3:]]
        streaming = [path for path in self._running if self._text(path).strip()]
        if len(streaming) > 1:
            return Group(spinner, *notes, *(self._line(path) for path in streaming))
        tail = "\n".join(self._text(streaming[0]).splitlines()[-LIVE_LINES:]) if streaming else ""
        return Group(spinner, *notes, Markdown(tail) if tail else Text(""))

    def _line(self, path: str) -> Text:
        """``path: …the latest words``: the tail of the agent's text, on one line."""
        text = " ".join(self._text(path).split())
        room = max(20, self._out.console.width - len(path) - 3)
        if len(text) > room:
            text = "…" + text[-(room - 1) :]
        line = Text.assemble((f"{path}: ", "cyan"), text)
        line.no_wrap, line.overflow = True, "crop"
        return line

    def _keep_partial(self) -> None:
        """What was on screen when the turn was cut short, printed for good: the streams of
        the agents still running (else the last one that streamed)."""
        streamed = [path for path in self._streams if self._text(path).strip()]
        shown = [path for path in self._running if path in streamed] or streamed[-1:]
        for path in shown:
            if len(shown) > 1:
                self._out.print(Text(f"{path}:", style="cyan"))
            self._out.print(Markdown(self._text(path)))


def no_answer_hint(result: RunResult, refusal: str | None) -> str | None:
    """Why a turn has no answer, when the budget is the reason (else None)."""
    if result.answer or result.status is not QueryStatus.BUDGET_EXHAUSTED:
        return None
    reason = f": {refusal}" if refusal else ""
    return (
        f"(no answer: the budget refused the call{reason}; "
        "raise it with /budget USD or --budget-usd, or /budget off)"
    )


def show_turn(
    out: Output, result: RunResult, records: list[CallRecord], refusal: str | None = None
) -> None:
    """The finished turn on a terminal: the answer (or why there is none), then the panel."""
    hint = no_answer_hint(result, refusal)
    if hint:
        out.print(Text(hint, style="yellow"))
    else:
        out.print(Markdown(result.answer or "_(no answer)_"))
    out.print(spend_panel(records, title=f"query {result.query_id[:8]} · {status_text(result)}"))


def status_text(result: RunResult) -> str:
    """``ok · done``: the query's status and why it stopped, alike in run and chat."""
    return result.status.value + (f" · {result.stop_reason}" if result.stop_reason else "")


def plain_turn(result: RunResult, records: list[CallRecord], refusal: str | None = None) -> None:
    """The finished turn as plain lines (stdin is not a terminal): answer, then spend;
    why there is no answer, when the budget is the reason, goes to stderr."""
    hint = no_answer_hint(result, refusal)
    if hint:
        sys.stderr.write(hint + "\n")
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
