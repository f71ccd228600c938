"""``spendgraph serve``: run a local endpoint in the foreground."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Run a local OpenAI-compatible endpoint in the foreground.", no_args_is_help=True
)
