"""``spendgraph.toml``: endpoints, prices, tiers, routing and ledger settings.

One module per part of the file: :mod:`.base` (the strict base model and
shared field types), :mod:`.prices`, :mod:`.endpoint`, :mod:`.model` (the
whole file and its tiers, routing and ledger tables), :mod:`.load` (finding
and reading it) and :mod:`.errors` (reporting what is wrong with it). Import
from here; the modules are the layout, not the interface.
"""

from spendgraph.providers.config.base import ConfigModel, NonEmptyStr
from spendgraph.providers.config.endpoint import (
    ENGINES,
    HARDWARE,
    NO_API_KEY,
    TOKENIZER_ENCODINGS,
    EndpointConfig,
    Tokenizer,
    expand_env,
)
from spendgraph.providers.config.errors import InvalidConfig
from spendgraph.providers.config.load import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    EXAMPLE_CONFIG_NAME,
    StorageConfig,
    config_from_mapping,
    example_config_path,
    find_config_path,
    load_config,
    load_storage_config,
    parse_config,
)
from spendgraph.providers.config.model import (
    LedgerConfig,
    Policy,
    RoutingConfig,
    SpendgraphConfig,
    ThreadsConfig,
    TierConfig,
)
from spendgraph.providers.config.prices import PriceConfig

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_NAME",
    "ENGINES",
    "EXAMPLE_CONFIG_NAME",
    "HARDWARE",
    "NO_API_KEY",
    "TOKENIZER_ENCODINGS",
    "ConfigModel",
    "EndpointConfig",
    "InvalidConfig",
    "LedgerConfig",
    "NonEmptyStr",
    "Policy",
    "PriceConfig",
    "RoutingConfig",
    "SpendgraphConfig",
    "StorageConfig",
    "ThreadsConfig",
    "TierConfig",
    "Tokenizer",
    "config_from_mapping",
    "example_config_path",
    "expand_env",
    "find_config_path",
    "load_config",
    "load_storage_config",
    "parse_config",
]
