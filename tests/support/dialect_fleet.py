"""A simulator fleet with one replica per engine dialect, and a config with one endpoint on each.

Endpoint ``X`` has ``engine = "X"`` and points at replica ``X`` (dialect X), so a
call pinned to endpoint X tests engine X's profile against engine X's dialect.
"""

from __future__ import annotations

from collections.abc import Iterable

from spendgraph.providers.engines.names import PROFILED as DIALECTS

# Hidden reasoning tokens every answer of the model "sim-think" starts with.
THINK_TOKENS = 12

_MODELS = f"""
[models.sim-large]
max_model_len = 131072

[models.sim-think]
max_model_len = 131072
reasoning_tokens = {THINK_TOKENS}
"""


def dialect_fleet_toml(dialects: Iterable[str] = DIALECTS) -> str:
    """Fleet TOML: replica ``<dialect>`` answering in that dialect, serving both models."""
    replicas = "".join(
        f'\n[[replicas]]\nname = "{name}"\nprofile = "B200-NVFP4"\ndialect = "{name}"\n'
        for name in dialects
    )
    return _MODELS + replicas


def dialect_config_toml(
    base_url: str,
    dialects: Iterable[str] = DIALECTS,
    *,
    engine: str | None = None,
    priced: bool = True,
    model: str = "sim-large",
) -> str:
    """Config TOML: endpoint ``<dialect>`` on replica ``<dialect>`` with ``engine = <dialect>``
    (or ``engine`` for all, to test a mismatched profile)."""
    price = "price = { input = 0.04, cached_input = 0.01, output = 0.16 }\n" if priced else ""
    return "".join(
        f'[[endpoints]]\nname = "{name}"\nbase_url = "{base_url}/r/{name}/v1"\n'
        f'model = "{model}"\nserves = ["{name}"]\nengine = "{engine or name}"\n{price}\n'
        for name in dialects
    )
