"""Options shared by several commands, defined once: ledger, config, filters, ``--json``.

Also the one way a command reports a user error: raise :class:`CommandError`
(or any spendgraph error) inside ``with handled_errors(out):`` and it becomes a
single ``error: ...`` line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from spendgraph.providers.errors import LedgerError, SpendgraphError

# The config and the ledger load inside the functions that use them: every
# command imports this module, and `--help` or an audit must not pay for the
# config models or the whole ledger package at import (see cli/lazy.py).
if TYPE_CHECKING:
    from spendgraph.cli.console import Output
    from spendgraph.providers.config import SpendgraphConfig
    from spendgraph.providers.ledger.views import LedgerFilter


class CommandError(SpendgraphError):
    """A user-facing problem with a command's input or environment (exit code 1)."""


@contextmanager
def handled_errors(out: Output) -> Iterator[None]:
    """Turn spendgraph errors into one ``error:`` line on stderr and exit code 1."""
    try:
        yield
    except SpendgraphError as exc:
        out.error(str(exc))
        raise typer.Exit(1) from None


_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_WHEN_HELP = (
    "an ISO date or datetime (2025-03-01, 2025-03-01T12:00, +01:00 allowed) "
    "or an age like 7d, 24h, 30m"
)


def _parse_when(value: str, *, end_of_day: bool) -> datetime:
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = relative.groups()
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not {_WHEN_HELP}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # the ledger keeps UTC; naive means UTC
    # A bare date as an upper bound means "through that day" (until is exclusive).
    if end_of_day and len(value.strip()) == 10:
        parsed += timedelta(days=1)
    return parsed.astimezone(UTC)


def parse_since(value: str) -> datetime:
    return _parse_when(value, end_of_day=False)


def parse_until(value: str) -> datetime:
    return _parse_when(value, end_of_day=True)


def usd_amount_problem(value: str) -> str | None:
    """Why ``value`` is not a positive, finite USD amount (``None`` when it is one)."""
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        return f"expected an amount in USD like 0.05, got {value!r}"
    if not amount.is_finite():
        return f"expected a finite amount in USD, got {value!r}"
    if amount <= 0:
        return f"expected an amount in USD above 0, got {value!r} (--no-budget runs without one)"
    return None


def parse_usd_budget(value: str) -> Decimal:
    """``--budget-usd``: a positive, finite Decimal, else a usage error naming the value."""
    problem = usd_amount_problem(value)
    if problem:
        raise typer.BadParameter(problem)
    return Decimal(value.strip())


@dataclass(frozen=True, slots=True)
class LedgerChoice:
    """The ledger a command uses and, for messages, where that URL came from."""

    url: str
    origin: str | None  # None: --ledger, or the default ./spendgraph.db


def choose_ledger(
    explicit: str | None,
    config_url: str | None = None,
    config_source: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> LedgerChoice:
    """``--ledger``, else the config's ``[ledger] url``, else ``$SPENDGRAPH_LEDGER``, else
    ./spendgraph.db: the one order every command (run, chat, audit, threads) follows."""
    from spendgraph.providers.ledger.store import LEDGER_ENV_VAR, resolve_ledger_url

    if explicit and explicit.strip():
        raw, origin = explicit, None
    elif config_url:
        raw, origin = config_url, f"{config_source or 'the config'}, key 'ledger.url'"
    elif (env.get(LEDGER_ENV_VAR) or "").strip():
        raw, origin = None, f"${LEDGER_ENV_VAR}"
    else:
        raw, origin = None, None
    with ledger_origin(origin):
        return LedgerChoice(resolve_ledger_url(raw, env), origin)


def ledger_for_command(explicit: str | None, config: Path | None) -> LedgerChoice:
    """:func:`choose_ledger` for a command with ``--ledger`` and ``--config``: the config's
    ``[ledger]`` table only (no endpoint's key is needed to find the ledger)."""
    if config is None and explicit and explicit.strip():
        return choose_ledger(explicit)  # --ledger wins: no config file needs reading
    from spendgraph.providers.config import load_storage_config

    storage = load_storage_config(config)
    if storage is None:
        return choose_ledger(explicit)
    return choose_ledger(explicit, storage.ledger.url, storage.source)


@contextmanager
def ledger_origin(origin: str | None) -> Iterator[None]:
    """A ledger error raised inside names where the ledger's URL came from."""
    try:
        yield
    except LedgerError as exc:
        if origin is None:
            raise
        raise LedgerError(f"{exc} (the ledger named by {origin})") from exc


JsonOption = Annotated[
    bool, typer.Option("--json", help="Machine-readable JSON on stdout instead of a table.")
]
LedgerOption = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        help="Ledger database URL or SQLite file "
        "(default: $SPENDGRAPH_LEDGER, else ./spendgraph.db).",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Endpoints file (default: $SPENDGRAPH_CONFIG, else ./spendgraph.toml).",
    ),
]
SinceOption = Annotated[
    datetime | None,
    typer.Option(
        "--since", parser=parse_since, metavar="WHEN", help=f"From (inclusive): {_WHEN_HELP}."
    ),
]
UntilOption = Annotated[
    datetime | None,
    typer.Option(
        "--until",
        parser=parse_until,
        metavar="WHEN",
        help=f"Up to (exclusive; a bare date includes that day): {_WHEN_HELP}.",
    ),
]
AppOption = Annotated[str | None, typer.Option("--app", help="Only queries of this app.")]
UserOption = Annotated[str | None, typer.Option("--user", help="Only queries of this user.")]
ThreadFilterOption = Annotated[
    str | None,
    typer.Option("--thread", help="Only queries of this conversation thread (e.g. one game)."),
]
LimitOption = Annotated[
    int, typer.Option("--limit", min=0, help="Show at most N queries (0: all of them).")
]


def require_config(path: Path | None) -> SpendgraphConfig:
    """The config, or a :class:`CommandError` saying where one comes from and how to try one."""
    from spendgraph.providers.config import (
        CONFIG_ENV,
        DEFAULT_CONFIG_NAME,
        example_config_path,
        load_config,
    )

    config = load_config(path)
    if config is None:
        raise CommandError(
            f"no config found: pass --config FILE, set {CONFIG_ENV}, or create "
            f"./{DEFAULT_CONFIG_NAME}. To try spendgraph on simulated GPUs, run "
            f"`spendgraph serve sim` and pass --config {example_config_path()}"
        )
    return config


def ledger_filter(
    since: datetime | None,
    until: datetime | None,
    app: str | None,
    user: str | None,
    thread: str | None = None,
) -> LedgerFilter:
    """The filters as the ledger takes them; an empty time window is a user error."""
    from spendgraph.providers.ledger.views import LedgerFilter

    if since is not None and until is not None and since >= until:
        raise CommandError(
            f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})"
        )
    return LedgerFilter(since=since, until=until, app=app, user=user, thread_id=thread)


def filter_json(filters: LedgerFilter) -> dict[str, Any]:
    """The filters a JSON answer was computed with."""
    return {
        "since": filters.since.isoformat() if filters.since else None,
        "until": filters.until.isoformat() if filters.until else None,
        "app": filters.app,
        "user": filters.user,
        "thread": filters.thread_id,
    }
