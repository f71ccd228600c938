"""``spendgraph budgets``: limits set at run time, shared by every worker on the ledger.

``set`` stores a limit (per tenant, user, app or thread, per UTC day or
month; or per query), ``remove`` drops one, ``show`` says where each stands in
its current period (spent, held, left), ``reconcile`` settles or releases the
expired holds of killed workers from the ledger. Running workers pick a change
up within a few seconds. Limits live in the ledger (``--ledger``, else
``$SPENDGRAPH_LEDGER``, else ./spendgraph.db), SQLite or PostgreSQL.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from spendgraph.cli import formats as fmt
from spendgraph.cli.console import Output
from spendgraph.cli.options import CommandError, JsonOption, LedgerOption, handled_errors
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.budgets import (
    BudgetLimit,
    Period,
    ScopeKind,
    read_limits,
    reconcile_ledger,
    remove_limit,
    set_limit,
)
from spendgraph.providers.budgets.factory import is_shared
from spendgraph.providers.budgets.report import LimitStatus, limit_report
from spendgraph.providers.budgets.stored import LIMITS_TTL_S
from spendgraph.providers.ledger import Ledger, utcnow

app = typer.Typer(
    help="Budgets set at run time (per tenant/user/app/thread, per day/month), "
    "shared by every worker on the ledger.",
    no_args_is_help=True,
)

ScopeOption = Annotated[
    ScopeKind, typer.Option("--scope", help="Who the limit binds.", case_sensitive=False)
]
IdOption = Annotated[
    str | None,
    typer.Option("--id", help="Which tenant/user/app/thread (default: each one, separately)."),
]
PeriodOption = Annotated[
    Period | None,
    typer.Option(
        "--period",
        help="UTC calendar period (day or month; 'query' for --scope query, its default).",
        case_sensitive=False,
    ),
]


@app.command("set")
def set_command(
    scope: ScopeOption,
    scope_id: IdOption = None,
    period: PeriodOption = None,
    usd: Annotated[
        str | None, typer.Option("--usd", metavar="DOLLARS", help="At most this many USD.")
    ] = None,
    tokens: Annotated[
        int | None, typer.Option("--tokens", help="At most this many tokens (input + output).")
    ] = None,
    ledger: LedgerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a limit (replacing the one on the same scope, id and period)."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
        limit = _limit(scope, scope_id, period, usd, tokens)
        with Ledger.open(ledger) as opened:
            set_limit(opened.engine, limit)
            where = opened.url
        if as_json:
            out.emit_json({"ledger": where, "stored": _limit_json(limit)})
            return
        out.print(
            f"stored in {where}: {limit.describe()} "
            f"(running workers apply it within {LIMITS_TTL_S:g} s)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@app.command("remove")
def remove_command(
    scope: ScopeOption,
    scope_id: IdOption = None,
    period: PeriodOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Drop a stored limit (config and per-query limits are not touched)."""
    out = Output()
    with handled_errors(out):
        chosen = _period(scope, period)
        with Ledger.open(ledger, create=False) as opened:
            removed = remove_limit(opened.engine, scope, scope_id, chosen)
            where = opened.url
        who = scope.value if scope_id is None else f"{scope.value} {scope_id!r}"
        if not removed:
            raise CommandError(f"no stored limit for {who} per {chosen.value} in {where}")
        out.print(
            f"removed the limit for {who} per {chosen.value} from {where}",
            markup=False,
            soft_wrap=True,
        )


@app.command("show")
def show_command(ledger: LedgerOption = None, as_json: JsonOption = False) -> None:
    """Each stored limit in its current period: spent, held by running calls, left."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
        now = utcnow()
        with Ledger.open(ledger, create=False) as opened:
            statuses = limit_report(opened, read_limits(opened.engine), now)
            where, shared = opened.url, is_shared(opened)
        if as_json:
            out.emit_json(
                {
                    "ledger": where,
                    "at": fmt.time_json(now),
                    "shared_store": shared,
                    "limits": [_status_json(status) for status in statuses],
                }
            )
            return
        if not statuses:
            out.errors.print(
                f"no budget limits stored in {where}; add one with "
                "`spendgraph budgets set --scope tenant --id ID --period month --usd N`",
                style="yellow",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            return
        out.print(_table(out.console, where, statuses))
        if not shared:
            out.print(
                "held: holds of running calls live in their process on a SQLite ledger (–)",
                highlight=False,
                markup=False,
            )


@app.command("reconcile")
def reconcile_command(ledger: LedgerOption = None, as_json: JsonOption = False) -> None:
    """Settle expired holds from their call rows, release those with none (killed workers)."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
        with Ledger.open(ledger, create=False) as opened:
            done = reconcile_ledger(opened)
            where, shared = opened.url, is_shared(opened)
        if as_json:
            out.emit_json(
                {
                    "ledger": where,
                    "settled": done.settled,
                    "released": done.released,
                    "pruned": done.pruned,
                }
            )
            return
        if not shared:
            out.print(
                f"{where} is SQLite: holds live in one process's memory, none to reconcile",
                markup=False,
                soft_wrap=True,
            )
            return
        out.print(
            f"{where}: settled {done.settled} expired hold(s) from their call rows, "
            f"released {done.released} with none, dropped {done.pruned} old settled hold(s)",
            markup=False,
            soft_wrap=True,
        )


def _limit(
    scope: ScopeKind,
    scope_id: str | None,
    period: Period | None,
    usd: str | None,
    tokens: int | None,
) -> BudgetLimit:
    amount = None if usd is None else _dollars(usd)
    try:
        return BudgetLimit(scope, _period(scope, period), amount, tokens, scope_id or None)
    except ValueError as exc:
        raise CommandError(f"not a valid budget limit: {exc}") from None


def _period(scope: ScopeKind, period: Period | None) -> Period:
    if period is not None:
        return period
    if scope is ScopeKind.QUERY:
        return Period.QUERY
    raise CommandError(f"--period day or month is needed for --scope {scope.value}")


def _dollars(value: str) -> Decimal:
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise CommandError(f"--usd {value!r} is not an amount of dollars") from None
    if not amount.is_finite():
        raise CommandError(f"--usd {value!r} is not an amount of dollars")
    return amount


def _table(console: Console, where: str, statuses: list[LimitStatus]) -> Table:
    columns = [
        Col("scope"),
        Col("id"),
        Col("period"),
        Col("since", drop=1),
        Col("limit", number=True),
        Col("spent", number=True),
        Col("held", number=True),
        Col("left", number=True),
    ]
    rows = [_row(status) for status in statuses]
    return fitted_table(console, f"budget limits in {where}", columns, rows)


def _row(status: LimitStatus) -> list[str]:
    limit, key = status.limit, status.key
    who = limit.id or (key.id if key is not None else "each")
    since = "each query" if limit.period is Period.QUERY else _since(status)
    lines: list[tuple[str, str, str, str]] = []
    if limit.usd is not None:
        spent = None if status.spent is None else status.spent.usd
        held = None if status.held is None else status.held.usd
        lines.append((f"${limit.usd:,f}", _usd(spent), _usd(held), _usd(status.left_usd)))
    if limit.tokens is not None:
        spent_t = None if status.spent is None else status.spent.tokens
        held_t = None if status.held is None else status.held.tokens
        lines.append(
            (_tokens(limit.tokens), _tokens(spent_t), _tokens(held_t), _tokens(status.left_tokens))
        )
    cells = ["\n".join(parts) for parts in zip(*lines, strict=True)]
    return [limit.scope.value, fmt.label(who), limit.period.value, since, *cells]


def _since(status: LimitStatus) -> str:
    if status.key is None:
        return fmt.NONE_SHOWN
    start = status.key.period_start
    return start.strftime("%Y-%m-%d" if status.limit.period is Period.DAY else "%Y-%m")


def _usd(amount: Decimal | None) -> str:
    return fmt.NONE_SHOWN if amount is None else fmt.usd(amount)


def _tokens(count: int | None) -> str:
    return fmt.NONE_SHOWN if count is None else f"{fmt.tokens(count)} tok"


def _limit_json(limit: BudgetLimit) -> dict[str, Any]:
    return {
        "scope": limit.scope.value,
        "id": limit.id,
        "period": limit.period.value,
        "usd": fmt.decimal_json(limit.usd),
        "tokens": limit.tokens,
    }


def _status_json(status: LimitStatus) -> dict[str, Any]:
    key, spent, held = status.key, status.spent, status.held
    return {
        **_limit_json(status.limit),
        "key_id": None if key is None else key.id,
        "period_start": None if key is None else fmt.time_json(key.period_start),
        "spent": None
        if spent is None
        else {"usd": fmt.decimal_json(spent.usd), "tokens": spent.tokens},
        "held": None
        if held is None
        else {"usd": fmt.decimal_json(held.usd), "tokens": held.tokens},
        "left": {"usd": fmt.decimal_json(status.left_usd), "tokens": status.left_tokens},
    }
