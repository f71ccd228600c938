"""``spendgraph threads``: the conversation threads kept next to the ledger, and their retention.

A thread holds a conversation's text (what the next turn continues from), so
it is kept only as long as needed: ``threads purge --older-than 30d`` deletes
every thread last active more than 30 days ago, ``--thread ID`` one thread
(both: a thread must match both). ``threads list`` shows each thread, when it
was last active and whether its checkpoints are encrypted. The threads are
found as ``run`` and ``chat`` keep them: beside a SQLite ledger
(``x.db`` -> ``x.threads.db``), inside a PostgreSQL one. Neither command
needs the threads' key, and neither creates a database.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from spendgraph.cli import formats as fmt
from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    CommandError,
    ConfigOption,
    JsonOption,
    LedgerOption,
    handled_errors,
    ledger_for_command,
    ledger_origin,
    parse_since,
)
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.graph.thread_admin import ThreadInfo, open_thread_admin, select_threads

app = typer.Typer(
    help="Conversation threads kept next to the ledger: list them, purge old ones.",
    no_args_is_help=True,
)

OlderThanOption = Annotated[
    datetime | None,
    typer.Option(
        "--older-than",
        parser=parse_since,
        metavar="AGE",
        help="Threads last active before this: an age like 30d, 12h, 90m, or an ISO date.",
    ),
]
ThreadIdsOption = Annotated[
    list[str] | None,
    typer.Option("--thread", metavar="ID", help="This thread (repeat for several)."),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would be purged; delete nothing.")
]


@app.command("list")
def list_command(
    ledger: LedgerOption = None, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """One line per stored thread: checkpoints, last activity, encrypted or not."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
        where, threads = asyncio.run(_list(ledger, config))
    if out.json_mode:
        out.emit_json({"threads_db": where, "threads": [thread_json(t) for t in threads]})
        return
    if not threads:
        out.print(f"no threads in {where}", highlight=False)
        return
    out.print(threads_table(out, f"Threads in {fmt.label(where)}", threads))


@app.command("purge")
def purge_command(
    older_than: OlderThanOption = None,
    thread: ThreadIdsOption = None,
    dry_run: DryRunOption = False,
    ledger: LedgerOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete threads (every checkpoint of each) by age and/or id."""
    out = Output(json_mode=as_json)
    wanted = list(thread or [])
    with handled_errors(out):
        if older_than is None and not wanted:
            raise CommandError(
                "say which threads to purge: --older-than AGE (e.g. 30d) and/or --thread ID"
            )
        where, purged, known = asyncio.run(_purge(ledger, config, older_than, wanted, dry_run))
    missing = [tid for tid in wanted if tid not in known]
    if out.json_mode:
        out.emit_json(
            {
                "threads_db": where,
                "older_than": fmt.time_json(older_than),
                "thread_ids": wanted,
                "dry_run": dry_run,
                "purged": [thread_json(t) for t in purged],
                "not_found": missing,
            }
        )
        return
    verb = "would purge" if dry_run else "purged"
    out.print(f"{verb} {len(purged)} thread(s) in {where}", highlight=False)
    if purged:
        out.print(threads_table(out, None, purged))
    if missing:
        out.errors.print(
            f"no thread {', '.join(missing)} in {where}", style="yellow", highlight=False
        )


async def _list(ledger: str | None, config: Path | None) -> tuple[str, list[ThreadInfo]]:
    url, origin = _ledger_url(ledger, config)
    with ledger_origin(origin):
        async with open_thread_admin(url) as admin:
            return str(admin.location), await admin.threads()


async def _purge(
    ledger: str | None,
    config: Path | None,
    older_than: datetime | None,
    wanted: list[str],
    dry_run: bool,
) -> tuple[str, list[ThreadInfo], set[str]]:
    url, origin = _ledger_url(ledger, config)
    with ledger_origin(origin):
        async with open_thread_admin(url) as admin:
            threads = await admin.threads()
            chosen = select_threads(threads, older_than=older_than, thread_ids=wanted)
            if not dry_run:
                await admin.purge(chosen)
            return str(admin.location), chosen, {t.thread_id for t in threads}


def _ledger_url(ledger: str | None, config: Path | None) -> tuple[str, str | None]:
    choice = ledger_for_command(ledger, config)
    return choice.url, choice.origin


def thread_json(thread: ThreadInfo) -> dict[str, Any]:
    return {
        "thread_id": thread.thread_id,
        "checkpoints": thread.checkpoints,
        "last_active": fmt.time_json(thread.last_active),
        "encrypted": str(thread.encrypted),
    }


def threads_table(out: Output, title: str | None, threads: list[ThreadInfo]) -> Any:
    columns = [
        Col("thread"),
        Col("checkpoints", number=True),
        Col("last active"),
        Col("encrypted", drop=1),
    ]
    rows = [
        (
            fmt.label(t.thread_id),
            str(t.checkpoints),
            fmt.when(t.last_active),
            str(t.encrypted),
        )
        for t in threads
    ]
    return fitted_table(out.console, title, columns, rows)
