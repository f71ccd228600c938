"""``spendgraph endpoints``: the configured endpoints, and whether they answer.

``list`` shows what the config says (pool, hardware, precision, engine,
model, served tiers, prices, concurrency; :mod:`.listing`); ``check`` probes
each endpoint (:mod:`.check`; probes are not recorded in the ledger);
``calibrate`` measures throughput and derives prices from GPU $/hour
(:mod:`.calibrate`; its calls are recorded); ``reconcile`` compares the ledger
with each server's own token counters (:mod:`.reconcile`).
"""

from __future__ import annotations

import typer

from spendgraph.cli.endpoints import calibrate, check, listing, reconcile

app = typer.Typer(help="List the configured endpoints, check that they answer, calibrate prices.")
app.command("list")(listing.command)
app.command("check")(check.command)
app.command("calibrate")(calibrate.command)
app.command("reconcile")(reconcile.command)
