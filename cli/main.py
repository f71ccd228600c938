"""Entry point of the ``spendgraph`` console script: assembles the commands."""

from __future__ import annotations

import sys

import typer

from spendgraph.cli import audit, budgets, chat, costs, endpoints, keys, run, serve, worker
from spendgraph.cli import threads as threads_command
from spendgraph.cli.console import Output
from spendgraph.cli.help_format import TidyHelpGroup
from spendgraph.providers.errors import SpendgraphError

app = typer.Typer(
    name="spendgraph",
    help="Multi-agent apps on self-hosted open models, with every token accounted for.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=TidyHelpGroup,
)
app.add_typer(serve.app, name="serve")
app.add_typer(audit.app, name="audit")
app.add_typer(endpoints.app, name="endpoints")
app.add_typer(keys.app, name="keys")
app.add_typer(budgets.app, name="budgets")
app.add_typer(threads_command.app, name="threads")
app.command("run")(run.run)
app.command("worker")(worker.worker)
app.command("chat")(chat.chat)
app.command("costs")(costs.costs)


def main() -> None:
    """Run the CLI; a spendgraph error becomes one clear line on stderr and exit code 1."""
    try:
        app()
    except SpendgraphError as exc:
        Output().error(str(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
