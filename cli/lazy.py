"""Commands imported when they run, so ``spendgraph --help`` imports no command's dependencies.

Importing every command up front cost ~1.7 s before anything ran (LangGraph,
the ``openai`` types, the example apps): more than the whole of ``audit
summary`` on a small ledger. A :func:`lazy_group` lists its commands from a
table of :class:`Lazy` entries -- name, ``module:attribute`` and the short
help its parent's ``--help`` shows -- and imports a command's module only when
the command is looked up to run (or asked for its own ``--help``). The
parent's ``--help`` prints the table's text without importing anything;
``tests/cli/test_startup.py`` checks each text is the command's own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import click
import typer
from typer.core import TyperGroup


@dataclass(frozen=True, slots=True)
class Lazy:
    """One command of a lazy group: ``target`` is ``module:attribute``, a ``typer.Typer``
    (a group of commands) or a command function; ``help`` is its line in the parent's help."""

    name: str
    target: str
    help: str


def load_command(entry: Lazy) -> click.Command:
    """Import ``entry``'s module and build its click command, named ``entry.name``."""
    module, _, attribute = entry.target.partition(":")
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command: click.Command = typer.main.get_group(target)
    else:
        holder = typer.Typer(add_completion=False)
        holder.command(entry.name)(target)
        command = typer.main.get_command(holder)
    command.name = entry.name
    return command


class _Commands(MutableMapping[str, click.Command]):
    """A group's commands: looking one up imports it; listing the names imports nothing."""

    def __init__(
        self,
        loaded: MutableMapping[str, click.Command],
        entries: Sequence[Lazy],
        prepare: Callable[[click.Command], None],
    ):
        self._loaded = dict(loaded)
        self._entries = {entry.name: entry for entry in entries}
        self._prepare = prepare
        self._loaded_only = False

    def __getitem__(self, name: str) -> click.Command:
        command = self._loaded.get(name)
        if command is None:
            command = load_command(self._entries[name])  # KeyError: no such command
            inner = getattr(command, "commands", None)
            if isinstance(inner, _Commands):
                # A lazy group inside: prepare what it has now, the rest as it loads.
                inner.adopt(self._prepare, command)
            else:
                self._prepare(command)
            self._loaded[name] = command
        return command

    def adopt(self, prepare: Callable[[click.Command], None], group: click.Command) -> None:
        """Run ``prepare`` on ``group`` (this mapping's owner) without loading its commands,
        and on each of them once it loads."""
        self._loaded_only = True
        try:
            prepare(group)
        finally:
            self._loaded_only = False
        self._prepare = prepare

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self._loaded.pop(name, None)
        self._entries.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from list(self._loaded)
        if not self._loaded_only:
            yield from (name for name in self._entries if name not in self._loaded)

    def __len__(self) -> int:
        return len({*self._loaded, *self._entries})

    def placeholder(self, name: str) -> click.Command | None:
        """What the group's help lists for ``name``, importing nothing if not yet loaded."""
        if name in self._loaded:
            return self._loaded[name]
        entry = self._entries.get(name)
        return None if entry is None else click.Command(entry.name, help=entry.help)


def lazy_group(
    entries: Sequence[Lazy],
    base: type[TyperGroup] = TyperGroup,
    prepare: Callable[[click.Command], None] = lambda command: None,
) -> type[TyperGroup]:
    """A group class (for ``typer.Typer(cls=...)``) whose commands are ``entries``, loaded
    on first use; ``prepare`` runs on each command once it is loaded."""
    table = tuple(entries)

    class LazyGroup(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.commands = _Commands(self.commands, table, prepare)
            self._listing = False

        def list_commands(self, ctx: click.Context) -> list[str]:
            return list(self.commands)

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            commands = self.commands
            assert isinstance(commands, _Commands)
            if self._listing:
                return commands.placeholder(cmd_name)
            return commands.get(cmd_name)

        def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
            self._listing = True  # the command list shows the table's help lines
            try:
                super().format_help(ctx, formatter)
            finally:
                self._listing = False

    return LazyGroup
