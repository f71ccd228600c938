"""How ``--help`` shows parameters, alike in every command.

Typer prints each parameter's type (``--sim <bool>``, ``{query_id}`` beside
``{APP}``). Here a flag shows no type (it takes no value), and an argument
without a metavar of its own is shown upper-case like the others
(``QUERY_ID``). Applied once to the whole command tree by the root group.
"""

from __future__ import annotations

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption


class TidyHelpGroup(TyperGroup):
    """The root ``spendgraph`` group: tidies the help of every command below it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        tidy_help(self)

    def get_params(self, ctx: typer.Context) -> list:
        # Typer adds the completion flags of the root only here.
        params = super().get_params(ctx)
        for param in params:
            _tidy_param(param)
        return params


def tidy_help(command: object) -> None:
    """Flags without a type, arguments upper-case: ``command`` and all its subcommands."""
    for param in command.params:
        _tidy_param(param)
    help_option = command.get_help_option(typer.Context(command))
    if help_option is not None:
        help_option.metavar = ""
    for subcommand in getattr(command, "commands", {}).values():
        tidy_help(subcommand)


def _tidy_param(param: object) -> None:
    if isinstance(param, TyperOption) and param.is_flag:
        param.metavar = ""
    elif isinstance(param, TyperArgument) and param.metavar is None and param.name:
        param.metavar = param.name.upper()
