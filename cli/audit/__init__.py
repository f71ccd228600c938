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

from spendgraph.cli.audit import export, queries, reprice, show, summary

app = typer.Typer(
    help="Audit spend: per query, per agent/endpoint/hardware, re-priced, exported.",
    no_args_is_help=True,
)
app.command("queries")(queries.command)
app.command("show")(show.command)
app.command("summary")(summary.command)
app.command("reprice")(reprice.command)
app.command("export")(export.command)
