"""The provider layer: endpoints, pricing, routing, the spend ledger and budgets.

Everything a user of the layer needs is importable from here::

    from spendgraph.providers import ChatRequest, ProviderLayer, agent_scope

    layer = ProviderLayer.open()  # --config / $SPENDGRAPH_CONFIG / ./spendgraph.toml
    async with layer.query(app="mine", budget_usd="0.01") as query:
        with agent_scope("writer"):
            result = await layer.chat(ChatRequest(messages=[...], model="fast"))
    print(query.spend.describe())

``simulated_layer()`` gives the same layer on the fleet simulator, started
in-process (for your own tests and notebooks). Names load on first use, so
importing one submodule (the ledger, say) does not import the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_EXPORTS = {
    "ProviderLayer": "gateway",
    "ChatStream": "streaming",
    "ChatRequest": "chat",
    "ChatResult": "chat",
    "QueryScope": "context",
    "agent_scope": "context",
    "current_query": "context",
    "Spend": "spend",
    "BudgetLimit": "budgets",
    "BudgetStore": "budgets",
    "InMemoryBudgetStore": "budgets",
    "Price": "usage",
    "Usage": "usage",
    "UsageSource": "usage",
    "CallRecord": "ledger",
    "CallStatus": "ledger",
    "Ledger": "ledger",
    "LedgerFilter": "ledger",
    "QueryStatus": "ledger",
    "SpendgraphConfig": "config",
    "load_config": "config",
    "parse_config": "config",
    "simulated_layer": "local.sim.layer",
    # the exception tree (spendgraph.providers.errors)
    "SpendgraphError": "errors",
    "ConfigError": "errors",
    "LedgerError": "errors",
    "ProviderError": "errors",
    "EndpointError": "errors",
    "EndpointTimeout": "errors",
    "EndpointConnectionError": "errors",
    "RateLimited": "errors",
    "ServerError": "errors",
    "StreamCut": "errors",
    "StreamTimeout": "errors",
    "BadResponse": "errors",
    "Conflict": "errors",
    "BadRequest": "errors",
    "AuthenticationFailed": "errors",
    "NoEndpointAvailable": "errors",
    "BudgetExceeded": "errors",
    "EmbeddedModelUnavailable": "errors",
}

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "BadResponse",
    "BudgetExceeded",
    "BudgetLimit",
    "BudgetStore",
    "CallRecord",
    "CallStatus",
    "ChatRequest",
    "ChatResult",
    "ChatStream",
    "ConfigError",
    "Conflict",
    "EmbeddedModelUnavailable",
    "EndpointConnectionError",
    "EndpointError",
    "EndpointTimeout",
    "InMemoryBudgetStore",
    "Ledger",
    "LedgerError",
    "LedgerFilter",
    "NoEndpointAvailable",
    "Price",
    "ProviderError",
    "ProviderLayer",
    "QueryScope",
    "QueryStatus",
    "RateLimited",
    "ServerError",
    "Spend",
    "SpendgraphConfig",
    "SpendgraphError",
    "StreamCut",
    "StreamTimeout",
    "Usage",
    "UsageSource",
    "agent_scope",
    "current_query",
    "load_config",
    "parse_config",
    "simulated_layer",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and IDEs see
    from spendgraph.providers.budgets import BudgetLimit, BudgetStore, InMemoryBudgetStore
    from spendgraph.providers.chat import ChatRequest, ChatResult
    from spendgraph.providers.config import SpendgraphConfig, load_config, parse_config
    from spendgraph.providers.context import QueryScope, agent_scope, current_query
    from spendgraph.providers.errors import (
        AuthenticationFailed,
        BadRequest,
        BadResponse,
        BudgetExceeded,
        ConfigError,
        Conflict,
        EmbeddedModelUnavailable,
        EndpointConnectionError,
        EndpointError,
        EndpointTimeout,
        LedgerError,
        NoEndpointAvailable,
        ProviderError,
        RateLimited,
        ServerError,
        SpendgraphError,
        StreamCut,
        StreamTimeout,
    )
    from spendgraph.providers.gateway import ProviderLayer
    from spendgraph.providers.ledger import (
        CallRecord,
        CallStatus,
        Ledger,
        LedgerFilter,
        QueryStatus,
    )
    from spendgraph.providers.local.sim.layer import simulated_layer
    from spendgraph.providers.spend import Spend
    from spendgraph.providers.streaming import ChatStream
    from spendgraph.providers.usage import Price, Usage, UsageSource
