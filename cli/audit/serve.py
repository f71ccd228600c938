"""``spendgraph audit serve``: the audit as a web app in a browser, on loopback by default.

The pages and JSON endpoints are :mod:`spendgraph.serve.audit`; this command
opens the ledger (as every ``audit`` command does), hands the app views built
from the other commands' own ``run`` functions -- so ``/api/summary`` *is*
``audit summary --json``, byte for byte in its values -- and runs uvicorn.
The command-line filters (``--app``, ``--since``...) are the pages' defaults.
"""

from __future__ import annotations

import io
import ipaddress
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from spendgraph.cli.audit import queries, reprice, show, summary
from spendgraph.cli.audit.command import audit_command
from spendgraph.cli.audit.reprice_target import pool_targets, resolve_target
from spendgraph.cli.console import Output
from spendgraph.cli.options import CommandError, ConfigOption, filter_json
from spendgraph.providers.config import SpendgraphConfig, load_config
from spendgraph.providers.ledger import GroupBy, Ledger, LedgerFilter, QuerySort
from spendgraph.providers.reprice import reprice_many

# The server (starlette, its app and views) loads when the command runs, not when
# `spendgraph audit serve --help` (or the test of every command's help) imports this.
if TYPE_CHECKING:
    from spendgraph.serve.audit import AuditViews

DEFAULT_PORT = 8787

HostOption = Annotated[
    str, typer.Option("--host", help="Address to listen on (loopback by default).")
]
PortOption = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free one).")
]
AllowRemoteOption = Annotated[
    bool,
    typer.Option(
        "--allow-remote",
        help="Listen on a non-loopback address: anyone who reaches it sees every query's "
        "spend, users and apps, with no login.",
    ),
]


@audit_command(json_output=False)
def command(
    out: Output,
    ledger: Ledger,
    filters: LedgerFilter,
    host: HostOption = "127.0.0.1",
    port: PortOption = DEFAULT_PORT,
    allow_remote: AllowRemoteOption = False,
    config: ConfigOption = None,
) -> None:
    """Serve the audit in a browser: spend over time, queries, waterfalls, what-if.

    Read-only, on loopback by default: spend over time by app, agent, endpoint
    and hardware; the queries; one query's calls as a waterfall; the queries
    re-priced on every pool of the config. Ctrl-C stops.
    """
    from spendgraph.serve.audit import LOOPBACK_HOSTS, AuditOptions, audit_app

    loopback = check_host(host, allow_remote=allow_remote)
    loaded = load_config(config)
    shown_host = f"[{host.strip('[]')}]" if ":" in host else host
    # On loopback, only requests naming a loopback host are served (see AuditOptions).
    hosts = LOOPBACK_HOSTS | {shown_host.lower()}
    options = AuditOptions(defaults=filters, allowed_hosts=hosts if loopback else None)
    app = audit_app(ledger, audit_views(ledger, filters, loaded), options)
    listening = _listen(host, port)
    url = f"http://{shown_host}:{listening.getsockname()[1]}/"
    # soft_wrap: one line however narrow the terminal, so logs and scripts find the URL.
    out.print(
        f"audit of {ledger.url} at {url} (read-only; Ctrl-C stops)", highlight=False, soft_wrap=True
    )
    _serve(app, listening)


def check_host(host: str, *, allow_remote: bool) -> bool:
    """True for a loopback address; a non-loopback one needs ``--allow-remote``."""
    if _is_loopback(host):
        return True
    if not allow_remote:
        raise CommandError(
            f"refusing to serve the audit on {host!r}: it is not a loopback address, and the "
            "audit has no login, so anyone who can reach it would see every query's spend, "
            "users and apps. Keep the default 127.0.0.1 (reach it through an SSH tunnel), or "
            "pass --allow-remote if a firewall or an authenticating proxy guards that address"
        )
    return False


def _is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: where it points is not ours to know


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise CommandError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port "
            "(0: any free one) or --host"
        ) from exc
    return sock


def _serve(app: Any, sock: socket.socket) -> None:
    import uvicorn  # here: other commands need not import it

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


@dataclass
class _Captured(Output):
    """An Output that keeps the JSON a command's ``run`` emits instead of printing it."""

    payload: Any = None

    def emit_json(self, payload: Any) -> None:
        # The same encoding as --json, read back: the value a client parses.
        self.payload = json.loads(json.dumps(payload, default=str))


def _json_of(run: Callable[[Output], None]) -> dict[str, Any]:
    out = _Captured(
        json_mode=True, console=Console(file=io.StringIO()), errors=Console(file=io.StringIO())
    )
    run(out)
    return out.payload


def audit_views(
    ledger: Ledger, defaults: LedgerFilter, config: SpendgraphConfig | None
) -> AuditViews:
    """The app's views: each one the ``--json`` output of an ``audit`` command."""
    from spendgraph.serve.audit import AmbiguousQuery, AuditViews, BadTarget, QueryNotFound

    def show_query(query_id: str) -> dict[str, Any]:
        wanted = query_id.strip()
        if not wanted or not ledger.query_ids_with_prefix(wanted, limit=1):
            raise QueryNotFound(f"no query {wanted!r} in the ledger {ledger.url}")
        try:
            return _json_of(lambda out: show.run(out, ledger, wanted))
        except CommandError as exc:  # the prefix matches several queries
            raise AmbiguousQuery(str(exc)) from exc

    def reprice_on(filters: LedgerFilter, on: str, limit: int) -> dict[str, Any]:
        try:
            target = resolve_target(on, config)
        except CommandError as exc:
            raise BadTarget(str(exc)) from exc
        return _json_of(lambda out: reprice.run(out, ledger, filters, target, limit))

    return AuditViews(
        meta=lambda: _meta(ledger, defaults, config),
        summary=lambda f, by: _json_of(lambda out: summary.run(out, ledger, f, by)),
        summary_of=lambda f, by, groups, queries: summary.summary_json(
            ledger.url, f, by, groups, summary.overall_of(by, groups, queries)
        ),
        queries=lambda f, sort, n: _json_of(lambda out: queries.run(out, ledger, f, sort, n)),
        show=show_query,
        reprice=reprice_on,
        whatif=lambda f, limit: whatif(ledger, f, config, limit),
    )


def whatif(
    ledger: Ledger, filters: LedgerFilter, config: SpendgraphConfig | None, limit: int
) -> dict[str, Any]:
    """``audit reprice --on POOL --json`` for every pool of the config, in one pass."""
    pools = pool_targets(config)
    usable = [pool for pool in pools if pool.target is not None]
    results = reprice_many(ledger, filters, [p.target.price for p in usable]) if usable else []
    return {
        "ledger": ledger.url,
        "filters": filter_json(filters),
        "config": config.source if config is not None else None,
        "pools": [
            reprice.reprice_json(ledger, filters, pool.target, result, limit)
            for pool, result in zip(usable, results, strict=True)
            if pool.target is not None
        ],
        "skipped": [{"pool": p.pool, "reason": p.problem} for p in pools if p.target is None],
    }


def _meta(
    ledger: Ledger, defaults: LedgerFilter, config: SpendgraphConfig | None
) -> dict[str, Any]:
    return {
        "ledger": ledger.url,
        "config": config.source if config is not None else None,
        "pools": [pool.pool for pool in pool_targets(config)],
        "defaults": filter_json(defaults),
        "group_by": [str(member) for member in GroupBy],
        "sorts": [str(member) for member in QuerySort],
    }
