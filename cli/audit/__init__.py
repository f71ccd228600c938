"""``spendgraph audit``: what each query cost, where, and what it would cost elsewhere.

Every subcommand reads the ledger (``--ledger URL``, else the ``[ledger] url`` of
the config, else ``$SPENDGRAPH_LEDGER``, else ./spendgraph.db -- as ``run`` finds
it) without ever creating one, takes the ``--since``,
``--until``, ``--app``, ``--user`` and ``--thread`` filters, and prints rich tables or, with
``--json``, the same fields as JSON (Decimal amounts as exact strings, unknown
costs as null). One module per subcommand (:mod:`.queries`, :mod:`.show`...)
holds its options and its work.

Time filters apply to query start times in ``audit queries`` (a query is
listed whole or not at all) and to call start times everywhere else (so a
day's spend is the calls made that day, as the ledger's ``summary_by`` counts it).
"""

from __future__ import annotations

import typer

from spendgraph.cli.lazy import Lazy, lazy_group

# One line per subcommand, imported when it runs (see spendgraph.cli.lazy):
# `audit summary` does not pay for `audit reprice`'s imports.
COMMANDS = (
    Lazy(
        "queries",
        "spendgraph.cli.audit.queries:command",
        "One line per query: time, id, app, status, calls, tokens, cost, latency.",
    ),
    Lazy(
        "show",
        "spendgraph.cli.audit.show:command",
        "One query as a tree: agents, their calls (endpoint, hardware, tokens, cost), totals.",
    ),
    Lazy(
        "summary",
        "spendgraph.cli.audit.summary:command",
        "Totals per group with share of spend, cost per query and a bar chart.",
    ),
    Lazy(
        "reprice",
        "spendgraph.cli.audit.reprice:command",
        "What the selected queries would have cost at another endpoint's prices, with the ratio.",
    ),
    Lazy(
        "export",
        "spendgraph.cli.audit.export:command",
        "Every matching call, one row each with all its columns; costs as exact decimals.",
    ),
    Lazy(
        "compact",
        "spendgraph.cli.audit.compact:command",
        "Fold calls started before WHEN into per-query groups; every audit total stays the same.",
    ),
    Lazy(
        "rollup",
        "spendgraph.cli.audit.rollup:command",
        "Seal every hour that has ended into the audit rollup; audits then add up sealed hours.",
    ),
    Lazy(
        "serve",
        "spendgraph.cli.audit.serve:command",
        "Serve the audit in a browser: spend over time, queries, waterfalls, what-if.",
    ),
)

app = typer.Typer(
    help="Audit spend: per query, per agent/endpoint/hardware, re-priced, exported.",
    no_args_is_help=True,
    cls=lazy_group(COMMANDS),
)


@app.callback()
def _audit() -> None:
    # A callback makes typer build a group even though no command is registered on it.
    pass
