"""The whole ``spendgraph.toml`` as one model: endpoints, tiers, routing, ledger, budgets.

Every model is frozen, forbids unknown keys and is strict about types (a
quoted ``"5"`` is not a number, ``true`` is not ``1``): a typo in a config
file should fail loudly, not be coerced. Cross-references (tier names,
fallbacks, duplicate endpoint names) are checked here, each problem under its
own key (see :mod:`.errors`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spendgraph.providers.budgets.limits import BudgetLimit, Period, ScopeKind
from spendgraph.providers.config.base import ConfigModel, NonEmptyStr, as_decimal
from spendgraph.providers.config.endpoint import EndpointConfig
from spendgraph.providers.config.errors import (
    InvalidConfig,
    Problem,
    did_you_mean,
    endpoint_key,
    toml_key,
)
from spendgraph.providers.errors import ConfigError
from spendgraph.providers.telemetry.config import TelemetryConfig

Policy = Literal["cheapest", "fastest", "cheapest_within_slo"]

# What a hung endpoint may cost a caller at most, retries and fallbacks included.
DEFAULT_CALL_TIMEOUT_S = 45.0


class TierConfig(ConfigModel):
    """How requests for one tier (or model name) are routed."""

    policy: Policy | None = None
    latency_target_ms: Annotated[float, Field(gt=0)] | None = None
    fallbacks: list[NonEmptyStr] = Field(default_factory=list)
    prefix_affinity: bool = False


_COOLDOWN_KEYS = ("cooldown_after_failures", "cooldown_s")


class RoutingConfig(ConfigModel):
    """Defaults for every tier, retries, backoff, the circuit breaker and concurrency overflow."""

    policy: Policy = "cheapest"
    max_retries: Annotated[int, Field(ge=0)] = 2
    backoff_initial_s: Annotated[float, Field(ge=0)] = 0.2
    backoff_max_s: Annotated[float, Field(ge=0)] = 5.0
    backoff_jitter: Annotated[float, Field(ge=0, le=1)] = 0.5
    # A server's Retry-After is honoured up to this long; asking for longer sends
    # the request to the next endpoint instead of stalling it.
    retry_after_max_s: Annotated[float, Field(ge=0)] = 30.0
    # The circuit breaker (see providers/health.py): open when, with at least
    # breaker_min_attempts in the last breaker_window_s, breaker_failure_rate of
    # them failed; probe with one request after breaker_open_s. At 30% transient
    # errors a fresh window trips on 40 attempts about 1% of the time, on 20 about 6%.
    breaker_failure_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    breaker_min_attempts: Annotated[int, Field(ge=1)] = 40
    breaker_window_s: Annotated[float, Field(gt=0)] = 10.0
    breaker_open_s: Annotated[float, Field(ge=0)] = 30.0
    on_limit: Literal["overflow", "wait"] = "overflow"
    # A call's wall-clock limit across its retries, backoff waits and fallbacks (a
    # non-streamed call to its whole answer, a stream to its first token): once it
    # is spent the running attempt is cut (a timeout row) and no other starts.
    call_timeout_s: Annotated[float, Field(gt=0)] = DEFAULT_CALL_TIMEOUT_S
    ewma_alpha: Annotated[float, Field(gt=0, le=1)] = 0.3

    @model_validator(mode="before")
    @classmethod
    def _reject_cooldown_keys(cls, data: Any) -> Any:
        # Not mapped: a count of failures in a row has no faithful rate equivalent.
        old = [key for key in _COOLDOWN_KEYS if isinstance(data, Mapping) and key in data]
        if old:
            raise ValueError(
                f"{' and '.join(old)} {'was' if len(old) == 1 else 'were'} replaced by the "
                "circuit breaker: set breaker_failure_rate, breaker_min_attempts, "
                "breaker_window_s and breaker_open_s instead"
            )
        return data

    @model_validator(mode="after")
    def _check_backoff(self) -> RoutingConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) must be >= "
                f"backoff_initial_s ({self.backoff_initial_s})"
            )
        return self


class LedgerConfig(ConfigModel):
    """Where spend is recorded. No ``url``: ``$SPENDGRAPH_LEDGER``, else ``./spendgraph.db``."""

    url: NonEmptyStr | None = None
    store_text: bool = False
    # How long a running query's lease lasts: a query whose process died is
    # marked interrupted this long after its last renewal (ledger/leases.py).
    lease_s: Annotated[float, Field(ge=1, le=86_400)] = 60.0


_KEY_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
THREADS_KEY_BYTES = (16, 24, 32)  # AES-128, -192, -256


class ThreadsConfig(ConfigModel):
    """Conversation threads: the checkpoints an app continues a conversation from.

    ``encryption_key_env`` names the environment variable holding the AES key
    the checkpoints are encrypted with at rest (its text, 16, 24 or 32 bytes
    of UTF-8, as LangGraph's ``LANGGRAPH_AES_KEY``). Unset, checkpoints are
    stored unencrypted.
    """

    encryption_key_env: str | None = None

    @field_validator("encryption_key_env")
    @classmethod
    def _check_key_env(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Never echo the value: a pasted key here is exactly what must not be printed.
        if value is None:
            return None
        if not _KEY_ENV_NAME.fullmatch(value):
            raise ValueError(
                "expected the NAME of an environment variable (letters, digits, _), "
                "not the key itself"
            )
        # Only a loader checks the environment (as for api_key_env).
        if info.context and "env" in info.context:
            problem = threads_key_problem(value, info.context["env"])
            if problem:
                raise ValueError(problem)
        return value

    def encryption_key(self, env: Mapping[str, str] = os.environ) -> bytes | None:
        """The key from the variable ``encryption_key_env`` names; ``None`` when unset.

        A missing variable or a key of the wrong length is a ``ConfigError``
        naming the variable, never showing its value.
        """
        if self.encryption_key_env is None:
            return None
        problem = threads_key_problem(self.encryption_key_env, env)
        if problem:
            raise ConfigError(problem, key="threads.encryption_key_env")
        return env[self.encryption_key_env].encode()


def threads_key_problem(name: str, env: Mapping[str, str]) -> str | None:
    """What is wrong with the threads key in ``env[name]`` (never its value), or ``None``."""
    value = env.get(name)
    if not value:
        return f"environment variable {name} is not set (it should hold the threads' key)"
    size = len(value.encode())
    if size not in THREADS_KEY_BYTES:
        return (
            f"the key in environment variable {name} is {size} bytes long; an AES key is "
            "16, 24 or 32 bytes (e.g. `python -c 'import secrets; print(secrets.token_hex(16))'`)"
        )
    return None


class BudgetConfig(ConfigModel):
    """One ``[[budgets]]`` entry: at most ``usd``/``tokens`` per ``period`` in ``scope``.

    ``scope = "query"`` bounds every query (period ``query``, the default for
    it); ``tenant``, ``user``, ``app`` and ``thread`` budgets run over UTC calendar
    periods (``day`` or ``month``), each id with its own allowance, or only
    ``id``'s when it is set.
    """

    scope: Literal["query", "tenant", "user", "app", "thread"]
    period: Literal["query", "day", "month"] | None = None
    id: NonEmptyStr | None = None
    usd: Annotated[Decimal, BeforeValidator(as_decimal), Field(gt=0)] | None = None
    tokens: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _check(self) -> BudgetConfig:
        if self.usd is None and self.tokens is None:
            raise ValueError("a budget needs usd and/or tokens")
        if self.scope != "query" and self.period in (None, "query"):
            raise ValueError(f'a {self.scope} budget needs period = "day" or "month"')
        if self.scope == "query" and self.period not in (None, "query"):
            raise ValueError(f"a query budget has no calendar period, got {self.period!r}")
        if self.scope == "query" and self.id is not None:
            raise ValueError("a query budget applies to every query: it takes no id")
        return self

    def limit(self) -> BudgetLimit:
        period = self.period or "query"
        return BudgetLimit(ScopeKind(self.scope), Period(period), self.usd, self.tokens, self.id)


# -- the whole file -----------------------------------------------------------


class SpendgraphConfig(ConfigModel):
    """A whole ``spendgraph.toml``."""

    endpoints: Annotated[list[EndpointConfig], Field(min_length=1)]
    tiers: dict[str, TierConfig] = Field(default_factory=dict)
    routing: RoutingConfig = RoutingConfig()
    ledger: LedgerConfig = LedgerConfig()
    threads: ThreadsConfig = ThreadsConfig()
    budgets: list[BudgetConfig] = Field(default_factory=list)
    telemetry: TelemetryConfig = TelemetryConfig()
    source: str = "<memory>"

    _serving: dict[str, tuple[EndpointConfig, ...]] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        # The router asks "who serves X?" on every request: index it once.
        index: dict[str, list[EndpointConfig]] = {}
        for endpoint in self.endpoints:
            for name in endpoint.names():
                index.setdefault(name, []).append(endpoint)
        self._serving = {name: tuple(found) for name, found in index.items()}

    @model_validator(mode="after")
    def _check_references(self) -> SpendgraphConfig:
        # Raised as InvalidConfig, not ValueError, so each problem keeps its own key.
        problems = [*_duplicate_names(self.endpoints), *_tier_problems(self.tiers, self._serving)]
        if problems:
            raise InvalidConfig(problems, source=self.source)
        return self

    def endpoint(self, name: str) -> EndpointConfig:
        """The endpoint called ``name``; ``ConfigError`` if there is none."""
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        names = [endpoint.name for endpoint in self.endpoints]
        raise ConfigError(
            f"no endpoint named {name!r}{did_you_mean(name, names)}", source=self.source
        )

    def endpoints_for(self, model_or_tier: str) -> list[EndpointConfig]:
        """Endpoints that serve a model or tier, in config order; ``[]`` when none does."""
        return list(self._serving.get(model_or_tier, ()))

    def served_names(self) -> frozenset[str]:
        """Every model and tier name some endpoint serves."""
        return frozenset(self._serving)

    def tier(self, model_or_tier: str) -> TierConfig:
        """The tier's settings, or ``TierConfig()`` defaults when it has no ``[tiers]`` table."""
        configured = self.tiers.get(model_or_tier)
        return configured if configured is not None else TierConfig()

    def policy_for(self, model_or_tier: str) -> Policy:
        """The tier's policy, else the ``[routing]`` default."""
        return self.tier(model_or_tier).policy or self.routing.policy


def _duplicate_names(endpoints: list[EndpointConfig]) -> list[Problem]:
    first_index: dict[str, int] = {}
    problems = []
    for index, endpoint in enumerate(endpoints):
        if endpoint.name in first_index:
            problems.append(
                Problem(
                    f"{endpoint_key(index, endpoint.name)}.name",
                    f"duplicate endpoint name {endpoint.name!r}, already used by "
                    f"endpoints[{first_index[endpoint.name]}]; names must be unique",
                )
            )
        else:
            first_index[endpoint.name] = index
    return problems


def _tier_problems(tiers: Mapping[str, TierConfig], served: Mapping[str, Any]) -> list[Problem]:
    known = sorted(served)
    problems = []
    for tier_name, tier in tiers.items():
        key = f"tiers.{toml_key(tier_name)}"
        if tier_name not in served:
            problems.append(
                Problem(
                    key,
                    f"no endpoint serves {tier_name!r}{did_you_mean(tier_name, known)}; add it "
                    f"to an endpoint's serves list (served: {', '.join(known)})",
                )
            )
        for index, fallback in enumerate(tier.fallbacks):
            where = f"{key}.fallbacks[{index}]"
            if fallback == tier_name:
                problems.append(Problem(where, "a tier cannot fall back to itself"))
            elif fallback not in served:
                problems.append(
                    Problem(
                        where,
                        f"expected a tier or model some endpoint serves, got {fallback!r}"
                        f"{did_you_mean(fallback, known)} (served: {', '.join(known)})",
                    )
                )
    return problems
