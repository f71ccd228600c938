"""The example apps' tests run on the shipped example config -- what ``--sim`` uses.

The suite's ``sim``, ``ledger`` and ``layer`` fixtures (tests/conftest.py) do
the rest: ``layer`` is built from ``config``, overridden here.
"""

from __future__ import annotations

import pytest

from spendgraph.providers.config import example_config_path, parse_config


@pytest.fixture
def config(sim):
    """The example config on this module's simulator (instead of the small test fleet)."""
    path = example_config_path()
    return parse_config(
        path.read_text(), source=str(path), env={"SPENDGRAPH_SIM_URL": sim.base_url}
    )
