"""Entry point of the ``spendgraph`` console script: assembles the commands.

Each command is one :class:`~spendgraph.cli.lazy.Lazy` line below -- name,
``module:attribute``, the line ``spendgraph --help`` shows -- imported only
when it runs (see :mod:`spendgraph.cli.lazy`): ``--help`` and ``audit`` stay
fast however heavy ``chat`` or ``serve`` are.
"""

from __future__ import annotations

import sys

import typer

from spendgraph.cli.help_format import TidyHelpGroup, tidy_help
from spendgraph.cli.lazy import Lazy, lazy_group

COMMANDS = (
    Lazy(
        "run",
        "spendgraph.cli.run:run",
        "Run one query through an app and print its answer and what it spent.",
    ),
    Lazy(
        "worker",
        "spendgraph.cli.worker:worker",
        "Run a worker for APP's durable queries until stopped.",
    ),
    Lazy(
        "chat",
        "spendgraph.cli.chat:chat",
        "Chat with an app; every message is one query, and you see what it spent.",
    ),
    Lazy(
        "costs",
        "spendgraph.cli.costs:costs",
        "Run the app's sample inputs once on each pool and show the cost per query.",
    ),
    Lazy(
        "serve",
        "spendgraph.cli.serve:app",
        "Serve apps over HTTP (`serve app`), or run a local endpoint in the foreground.",
    ),
    Lazy(
        "audit",
        "spendgraph.cli.audit:app",
        "Audit spend: per query, per agent/endpoint/hardware, re-priced, exported.",
    ),
    Lazy(
        "endpoints",
        "spendgraph.cli.endpoints:app",
        "List the configured endpoints, check that they answer, calibrate prices.",
    ),
    Lazy("keys", "spendgraph.cli.keys:app", "API keys of `spendgraph serve app` (stored hashed)."),
    Lazy(
        "tokens",
        "spendgraph.cli.tokens:app",
        "Count a messages file's prompt tokens as a model family's template does.",
    ),
    Lazy(
        "budgets",
        "spendgraph.cli.budgets:app",
        "Budgets set at run time (per tenant/user/app/thread, per day/month), shared by every "
        "worker on the ledger.",
    ),
    Lazy(
        "threads",
        "spendgraph.cli.threads:app",
        "Conversation threads kept next to the ledger: list them, purge old ones.",
    ),
)

app = typer.Typer(
    name="spendgraph",
    help="Multi-agent apps on self-hosted open models, with every token accounted for.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=lazy_group(COMMANDS, TidyHelpGroup, prepare=tidy_help),
)


@app.callback()
def _root() -> None:
    # A callback makes typer build a group even though no command is registered on it.
    pass


def main() -> None:
    """Run the CLI; a spendgraph error becomes one clear line on stderr and exit code 1."""
    from spendgraph.cli.console import Output
    from spendgraph.providers.errors import SpendgraphError

    try:
        app()
    except SpendgraphError as exc:
        Output().error(str(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
