"""``spendgraph keys create|list|revoke``: the front door's API keys, in the ledger database.

A new key is printed once, by ``create``, and never again: the ledger keeps
only its SHA-256 digest and a short prefix to tell keys apart.
"""

from __future__ import annotations

from typing import Annotated

import typer

from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    CommandError,
    ConfigOption,
    JsonOption,
    LedgerOption,
    handled_errors,
    ledger_for_command,
)
from spendgraph.cli.tables import Col, fitted_table
from spendgraph.providers.ledger import Ledger
from spendgraph.providers.ledger.keys import ApiKeyInfo, create_key, list_keys, revoke_key

app = typer.Typer(help="API keys of `spendgraph serve app` (stored hashed).", no_args_is_help=True)

TenantOption = Annotated[str, typer.Option("--tenant", help="Who the key's queries are billed to.")]


def _info_json(info: ApiKeyInfo) -> dict[str, object]:
    return {
        "id": info.id,
        "prefix": info.prefix,
        "tenant": info.tenant,
        "user": info.user,
        "name": info.name,
        "created_at": info.created_at.isoformat(),
        "revoked_at": info.revoked_at.isoformat() if info.revoked_at else None,
        "active": info.active,
    }


@app.command("create")
def create(
    tenant: TenantOption,
    user: Annotated[str, typer.Option(help="A fixed user for every query of this key.")] = "",
    name: Annotated[str, typer.Option(help="A label, e.g. where the key is used.")] = "",
    ledger: LedgerOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a key for TENANT and print it (this is the only time it is shown)."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
        if not tenant.strip():
            raise CommandError("--tenant must not be empty")
        with Ledger.open(ledger_for_command(ledger, config).url) as opened:
            key, info = create_key(opened.engine, tenant=tenant, user=user, name=name)
        if as_json:
            out.emit_json({**_info_json(info), "key": key})
            return
        out.print(
            f"created key {info.prefix}… for tenant {tenant!r} (id {info.id})", highlight=False
        )
        out.print("the key (shown once, store it now):", style="bold")
        out.console.print(key, markup=False, highlight=False, soft_wrap=True)


@app.command("list")
def list_command(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")] = None,
    ledger: LedgerOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List keys (prefix, tenant, user, created, revoked) — never the keys themselves."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
        with Ledger.open(ledger_for_command(ledger, config).url, create=False) as opened:
            keys = list_keys(opened.engine, tenant=tenant)
        if as_json:
            out.emit_json({"keys": [_info_json(k) for k in keys]})
            return
        if not keys:
            out.print("no API keys: create one with `spendgraph keys create --tenant NAME`")
            return
        columns = [
            Col("id"),
            Col("prefix"),
            Col("tenant"),
            Col("user", drop=2),
            Col("name", drop=1),
            Col("created", drop=3),
            Col("status"),
        ]
        rows = [
            [
                k.id,
                k.prefix + "…",
                k.tenant,
                k.user,
                k.name,
                k.created_at.strftime("%Y-%m-%d %H:%M"),
                "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d}",
            ]
            for k in keys
        ]
        out.print(fitted_table(out.console, "API keys", columns, rows))


@app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(metavar="ID_OR_PREFIX", help="The key's id or prefix.")],
    ledger: LedgerOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key by id or by the prefix `keys list` shows (refused within seconds)."""
    out = Output(json_mode=as_json)
    with handled_errors(out):
        with Ledger.open(ledger_for_command(ledger, config).url, create=False) as opened:
            found = revoke_key(opened.engine, key.rstrip("…"))
        if not found:
            raise CommandError(f"no active key with id or prefix {key!r}")
        if len(found) > 1:
            ids = ", ".join(k.id for k in found)
            raise CommandError(f"{key!r} matches {len(found)} active keys ({ids}): give the id")
        if as_json:
            out.emit_json({"revoked": _info_json(found[0])})
        else:
            out.print(
                f"revoked key {found[0].prefix}… of tenant {found[0].tenant!r}", highlight=False
            )
