"""What every ``spendgraph audit`` command shares: its ledger, its filters, its output.

A command is written as ``body(out, ledger, filters, *, its own options)``;
:func:`audit_command` turns it into the typer command, adding the shared
options (``--ledger``, ``--config``, ``--since``, ``--until``, ``--app``,
``--user``, ``--thread`` and, for table commands, ``--json``) to its
signature, opening the ledger read-only and mapping errors to one clear line
and a non-zero exit. The options are declared once, here, instead of once per
command. The ledger is found as ``run`` finds it: ``--ledger``, else the
config's ``[ledger] url``, else ``$SPENDGRAPH_LEDGER``, else ./spendgraph.db
(a body that takes ``config`` itself, like ``reprice``, shares its ``--config``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from inspect import Parameter
from pathlib import Path

from spendgraph.cli.audit.ledger import audit_ledger
from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    AppOption,
    ConfigOption,
    JsonOption,
    LedgerChoice,
    LedgerOption,
    SinceOption,
    ThreadFilterOption,
    UntilOption,
    UserOption,
    handled_errors,
    ledger_filter,
    ledger_for_command,
)

# The body's first three parameters: what the wrapper hands it.
_GIVEN = ("out", "ledger", "filters")
_FILTERS = (
    ("since", SinceOption),
    ("until", UntilOption),
    ("app_name", AppOption),
    ("user", UserOption),
    ("thread", ThreadFilterOption),
)


def _shared(json_output: bool, *, own_config: bool) -> list[Parameter]:
    options = [("ledger", LedgerOption), *([] if own_config else [("config", ConfigOption)])]
    options += _FILTERS
    shared = [Parameter(n, Parameter.KEYWORD_ONLY, default=None, annotation=a) for n, a in options]
    if json_output:
        shared.append(
            Parameter("as_json", Parameter.KEYWORD_ONLY, default=False, annotation=JsonOption)
        )
    return shared


def audit_command(*, json_output: bool = True) -> Callable[[Callable[..., None]], Callable]:
    """Decorate ``body(out, ledger, filters, **own)`` into a typer command (see the module)."""

    def decorate(body: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(body, eval_str=True)
        names = tuple(signature.parameters)[: len(_GIVEN)]
        if names != _GIVEN:
            raise TypeError(f"{body.__qualname__} must start with {_GIVEN}, not {names}")
        own = [p.replace(kind=Parameter.KEYWORD_ONLY) for p in signature.parameters.values()]
        own_config = "config" in signature.parameters
        params = own[len(_GIVEN) :] + _shared(json_output, own_config=own_config)

        @functools.wraps(body)
        def command(**options: object) -> None:
            out = Output(json_mode=bool(options.pop("as_json", False)))
            url = options.pop("ledger")
            config = options.get("config") if own_config else options.pop("config")
            with handled_errors(out):
                filters = ledger_filter(*(options.pop(name) for name, _ in _FILTERS))
                choice = audited_ledger(url, config)  # type: ignore[arg-type]
                with audit_ledger(choice.url, origin=choice.origin) as opened:
                    body(out, opened, filters, **options)

        # typer reads the command's options from its signature and annotations.
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # typer must see this signature, not the body's
        return command

    return decorate


def audited_ledger(ledger: str | None, config: Path | None) -> LedgerChoice:
    """The ledger an audit reads: ``--ledger``, else ``[ledger] url`` of the config
    (``--config``, ``$SPENDGRAPH_CONFIG``, ./spendgraph.toml), else as ``run`` falls back.

    Only the config's ``[ledger]`` and ``[threads]`` tables are read: an audit
    needs no endpoint's API key.
    """
    return ledger_for_command(ledger, config)
