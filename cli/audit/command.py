"""What every ``spendgraph audit`` command shares: its ledger, its filters, its output.

A command is written as ``body(out, ledger, filters, *, its own options)``;
:func:`audit_command` turns it into the typer command, adding the shared
options (``--ledger``, ``--since``, ``--until``, ``--app``, ``--user``,
``--thread`` and, for table commands, ``--json``) to its signature, opening
the ledger read-only and mapping errors to one clear line and a non-zero
exit. The options are declared once, here, instead of once per command.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from inspect import Parameter

from spendgraph.cli.audit.ledger import audit_ledger
from spendgraph.cli.console import Output
from spendgraph.cli.options import (
    AppOption,
    JsonOption,
    LedgerOption,
    SinceOption,
    ThreadFilterOption,
    UntilOption,
    UserOption,
    handled_errors,
    ledger_filter,
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


def _shared(json_output: bool) -> list[Parameter]:
    options = [("ledger", LedgerOption), *_FILTERS]
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
        params = own[len(_GIVEN) :] + _shared(json_output)

        @functools.wraps(body)
        def command(**options: object) -> None:
            out = Output(json_mode=bool(options.pop("as_json", False)))
            url = options.pop("ledger")
            with handled_errors(out):
                filters = ledger_filter(*(options.pop(name) for name, _ in _FILTERS))
                with audit_ledger(url) as opened:  # type: ignore[arg-type]
                    body(out, opened, filters, **options)

        # typer reads the command's options from its signature and annotations.
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # typer must see this signature, not the body's
        return command

    return decorate
