"""``spendgraph audit show QUERY_ID``: one query as a tree of agents and their calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from spendgraph.cli import formats as fmt
from spendgraph.cli.audit.export import call_row
from spendgraph.cli.audit.ledger import audit_ledger, find_query
from spendgraph.cli.audit.queries import summary_json
from spendgraph.cli.console import Output
from spendgraph.cli.options import JsonOption, LedgerOption, handled_errors
from spendgraph.cli.spend_view import money
from spendgraph.providers.ledger import CallRecord, CallStatus, Ledger, QuerySummary
from spendgraph.providers.spend import Spend
from spendgraph.providers.usage import USAGE_REJECTED, UsageSource

_NO_AGENT = "(no agent)"
_STATUS_STYLE = {
    CallStatus.OK: "green",
    CallStatus.ERROR: "red",
    CallStatus.CANCELLED: "yellow",
    CallStatus.BUDGET_DENIED: "magenta",
    CallStatus.CUT_AT_BUDGET: "magenta",
}


def command(
    query_id: Annotated[str, typer.Argument(help="A query id, or a unique prefix of one.")],
    ledger: LedgerOption = None,
    as_json: JsonOption = False,
) -> None:
    """One query as a tree: agents, their calls (endpoint, hardware, tokens, cost), totals."""
    out = Output(json_mode=as_json)
    with handled_errors(out), audit_ledger(ledger) as opened:
        run(out, opened, query_id)


def run(out: Output, ledger: Ledger, query_id: str) -> None:
    """Show the query ``query_id`` (or the one query whose id starts with it)."""
    summary = find_query(ledger, query_id)
    calls = ledger.calls_for_query(summary.query.id)
    if out.json_mode:
        out.emit_json(
            {
                "ledger": ledger.url,
                "query": summary_json(summary),
                "calls": [_call_json(call) for call in calls],
            }
        )
        return
    out.print(Group(query_tree(summary, calls), Text(""), totals_table(summary)))


@dataclass
class _Agent:
    """One segment of an agent path (``supervisor/researcher`` nests researcher)."""

    name: str
    calls: list[CallRecord] = field(default_factory=list)
    children: dict[str, _Agent] = field(default_factory=dict)

    def every_call(self) -> Iterator[CallRecord]:
        yield from self.calls
        for child in self.children.values():
            yield from child.every_call()


def _agents(calls: list[CallRecord]) -> _Agent:
    """Calls arranged by agent path, agents in the order they first called."""
    root = _Agent("")
    for call in calls:
        node = root
        for part in call.agent_path.split("/") if call.agent_path else [_NO_AGENT]:
            node = node.children.setdefault(part, _Agent(part))
        node.calls.append(call)
    return root


def query_tree(summary: QuerySummary, calls: list[CallRecord]) -> Tree:
    query = summary.query
    label = Text.assemble(
        ("query ", "bold"),
        (query.id, "bold cyan"),
        f"  app {query.app or fmt.NONE_SHOWN} · user {query.user or fmt.NONE_SHOWN}",
        f" · thread {query.thread_id or fmt.NONE_SHOWN} · {query.status}",
        f" · started {fmt.when(query.started_at)} UTC",
    )
    if query.error:
        label.append(f"\nerror: {query.error}", style="red")
    tree = Tree(label)
    if not calls:
        tree.add(Text("no calls recorded", style="dim"))
    for agent in _agents(calls).children.values():
        _add_agent(tree, agent)
    return tree


def _add_agent(parent: Tree, agent: _Agent) -> None:
    branch = parent.add(agent_label(agent))
    for call in agent.calls:
        branch.add(call_text(call))
    for child in agent.children.values():
        _add_agent(branch, child)


def _count(calls: int) -> str:
    return f"{calls} call" if calls == 1 else f"{calls} calls"


def agent_label(agent: _Agent) -> Text:
    """The agent's own calls and cost -- as ``audit summary --by agent`` counts them --
    then, when it has sub-agents, the totals with them."""
    own = Spend.of_calls(agent.calls)
    label = Text.assemble((agent.name, "bold"), f"  {_count(own.calls)}, {fmt.cost_cell(own)}")
    if agent.children:
        whole = Spend.of_calls(agent.every_call())
        label.append(
            f" · with sub-agents {_count(whole.calls)}, {fmt.cost_cell(whole)}", style="dim"
        )
    return label


def call_text(call: CallRecord) -> Text:
    """Three lines: where the call went; how it ended, cost and timing; its tokens."""
    endpoint = call.endpoint
    where = " ".join(part for part in (endpoint.hardware, endpoint.precision) if part)
    text = Text.assemble(
        (endpoint.name, "cyan"),
        f"  {where or 'hardware unknown'}",
        f" ({endpoint.engine})" if endpoint.engine else "",
        f" · {endpoint.model}",
        f" · attempt {call.attempt}" if call.attempt > 1 else "",
        f" · node {call.node}" if call.node else "",
        "\n",
        (_status(call), _STATUS_STYLE.get(call.status, "")),
        " · cost ",
        (fmt.usd(call.cost_usd), "bold" if call.cost_usd is not None else "yellow"),
        f" · TTFT {fmt.millis(call.ttft_ms)} · latency {fmt.millis(call.latency_ms)}",
        "\n",
        _tokens_line(call),
    )
    if call.overrun_usd is not None or call.overrun_tokens is not None:
        text.append(f"\n{overrun_text(call)}", style="bold red")
    note = usage_note(call)
    if note:
        text.append(f"\n{note}", style="bold yellow")
    return text


def _tokens_line(call: CallRecord) -> str:
    """The call's tokens and where they come from; a refused call was never sent."""
    usage = call.usage
    if call.status is CallStatus.BUDGET_DENIED:
        return "never sent, no tokens"
    line = (
        f"tokens {fmt.tokens(usage.input_uncached)} uncached / "
        f"{fmt.tokens(usage.input_cached)} cached / {fmt.tokens(usage.output)} output"
        + (f" ({fmt.tokens(usage.reasoning)} reasoning)" if usage.reasoning else "")
    )
    if call.status is CallStatus.ERROR and usage.total_tokens == 0:
        return f"{line} · no answer, no usage"
    return f"{line} · usage {usage.source}"


def usage_note(call: CallRecord) -> str | None:
    """The line a call gets whose tokens are not the server's own report."""
    if call.error_kind == USAGE_REJECTED:
        return (
            f"USAGE REJECTED: the server reported impossible usage; tokens {call.usage.source}"
            " instead"
        )
    if call.usage.source is UsageSource.UPPER_BOUND:
        return "OUTPUT UPPER BOUND: the answer never arrived; max_tokens booked as its output"
    return None


def overrun_text(call: CallRecord) -> str:
    """The line a call that cost more than its budget hold gets."""
    parts = []
    if call.overrun_usd is not None:
        parts.append(f"{fmt.usd(call.overrun_usd)}")
    if call.overrun_tokens is not None:
        parts.append(f"{fmt.tokens(call.overrun_tokens)} tokens")
    return f"OVERRUN: {' and '.join(parts)} above its budget reservation (query stopped)"


def _call_json(call: CallRecord) -> dict:
    row = call_row(call)
    row["overrun_usd"] = fmt.decimal_json(call.overrun_usd)
    row["overrun_tokens"] = call.overrun_tokens
    return row


def _status(call: CallRecord) -> str:
    if call.status is CallStatus.BUDGET_DENIED:
        return "refused by the budget"
    detail = [part for part in (call.error_kind,) if part]
    if call.http_status is not None and call.status is not CallStatus.OK:
        detail.append(f"HTTP {call.http_status}")
    return f"{call.status}: {', '.join(detail)}" if detail else str(call.status)


def totals_table(summary: QuerySummary) -> Table:
    """The query's totals, derived from its calls."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    spend = summary.spend
    table.add_row("calls", fmt.calls(spend))
    table.add_row(
        "tokens",
        f"{fmt.tokens(spend.total_tokens)} = {fmt.buckets(spend)} uncached/cached/output"
        f" ({fmt.tokens(spend.reasoning)} reasoning, in output)",
    )
    table.add_row("cost", fmt.label(money(spend)))
    table.add_row("first token", fmt.millis(summary.first_token_ms))
    table.add_row("latency", fmt.millis(summary.wall_ms))
    return table
