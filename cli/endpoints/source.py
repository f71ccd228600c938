"""Which endpoints ``spendgraph endpoints ...`` works on: ``--config``, or ``--sim``.

``--sim`` starts the fleet simulator in this process (at real speed, so check's
TTFT and calibrate's throughput mean something) and uses the example config,
as ``chat --sim`` and ``run --sim`` do; ``list --sim`` only reads the example
config. A ``--config`` file that does not exist gets a message saying how to
make one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated

import typer

from spendgraph.cli.options import CommandError, require_config
from spendgraph.cli.runtime import Target, resolve_config
from spendgraph.providers.config import SpendgraphConfig, example_config_path, load_config

EndpointsSimOption = Annotated[
    bool,
    typer.Option(
        "--sim", help="The fleet simulator (started in this process) and the example config."
    ),
]


@contextmanager
def endpoints_config(
    config: Path | None, sim: bool, *, start_simulator: bool = True
) -> Iterator[SpendgraphConfig]:
    """The config to list, check or calibrate; with ``sim``, the simulator runs meanwhile."""
    if sim:
        if config is not None:
            raise CommandError("--sim uses the example config: pass --sim or --config, not both")
        if not start_simulator:
            yield load_config(example_config_path())
            return
        with ExitStack() as stack:
            resolved, _ = resolve_config(stack, Target(sim=True, sim_time_scale=1.0))
            yield resolved
        return
    if config is not None and not config.exists():
        raise CommandError(missing_config_message(config))
    yield require_config(config)


def missing_config_message(config: Path) -> str:
    """Why ``--config FILE`` failed, and the one command that makes such a file."""
    return (
        f"{config}: no such config file. Create it from the commented example, then edit "
        f"its endpoints: cp {example_config_path()} {config}  (or try the simulator: --sim)"
    )
