"""``spendgraph.toml``: endpoints, prices, tiers, routing and ledger settings.

Where the file comes from: ``--config FILE`` (the ``explicit`` argument), else
the file named by ``SPENDGRAPH_CONFIG``, else ``./spendgraph.toml``, else none
(the CLI then falls back to the embedded model). See :func:`find_config_path`.

Every model is frozen, forbids unknown keys and is strict about types (a
quoted ``"5"`` is not a number, ``true`` is not ``1``): a typo in a config
file should fail loudly, not be coerced. Loading maps every TOML or pydantic
failure to one :class:`~spendgraph.providers.errors.ConfigError` that names the
file, the key path or line, and what was expected (see :mod:`.config_errors`).

Prices (:mod:`.config_prices`) are ``Decimal`` USD per million tokens. TOML
floats are parsed straight into ``Decimal`` so ``0.05`` is exactly 0.05, never
0.05000000000000000277. A missing price is *unknown* (cost ``None``), never 0.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from spendgraph.providers.config_endpoint import (
    ENGINES,
    HARDWARE,
    NO_API_KEY,
    TOKENIZER_ENCODINGS,
    EndpointConfig,
    Tokenizer,
    expand_env,
)
from spendgraph.providers.config_errors import (
    InvalidConfig,
    Problem,
    did_you_mean,
    endpoint_key,
    problems_from_validation_error,
    toml_key,
    toml_problem,
    unknown_key_message,
)
from spendgraph.providers.config_prices import ConfigModel, NonEmptyStr, PriceConfig
from spendgraph.providers.errors import ConfigError

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
    "LedgerConfig",
    "Policy",
    "PriceConfig",
    "RoutingConfig",
    "SpendgraphConfig",
    "TierConfig",
    "Tokenizer",
    "example_config_path",
    "expand_env",
    "find_config_path",
    "load_config",
    "parse_config",
]

CONFIG_ENV = "SPENDGRAPH_CONFIG"
DEFAULT_CONFIG_NAME = "spendgraph.toml"
EXAMPLE_CONFIG_NAME = "example_config.toml"
Policy = Literal["cheapest", "fastest", "cheapest_within_slo"]


class TierConfig(ConfigModel):
    """How requests for one tier (or model name) are routed."""

    policy: Policy | None = None
    latency_target_ms: Annotated[float, Field(gt=0)] | None = None
    fallbacks: list[NonEmptyStr] = Field(default_factory=list)
    prefix_affinity: bool = False


class RoutingConfig(ConfigModel):
    """Defaults for every tier, retries, backoff, cooldown and concurrency overflow."""

    policy: Policy = "cheapest"
    max_retries: Annotated[int, Field(ge=0)] = 2
    backoff_initial_s: Annotated[float, Field(ge=0)] = 0.2
    backoff_max_s: Annotated[float, Field(ge=0)] = 5.0
    backoff_jitter: Annotated[float, Field(ge=0, le=1)] = 0.5
    # A server's Retry-After is honoured up to this long; asking for longer sends
    # the request to the next endpoint instead of stalling it.
    retry_after_max_s: Annotated[float, Field(ge=0)] = 30.0
    cooldown_after_failures: Annotated[int, Field(ge=1)] = 3
    cooldown_s: Annotated[float, Field(ge=0)] = 30.0
    on_limit: Literal["overflow", "wait"] = "overflow"
    ewma_alpha: Annotated[float, Field(gt=0, le=1)] = 0.3

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


# -- the whole file -----------------------------------------------------------


class SpendgraphConfig(ConfigModel):
    """A whole ``spendgraph.toml``."""

    endpoints: Annotated[list[EndpointConfig], Field(min_length=1)]
    tiers: dict[str, TierConfig] = Field(default_factory=dict)
    routing: RoutingConfig = RoutingConfig()
    ledger: LedgerConfig = LedgerConfig()
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


# -- finding and loading ------------------------------------------------------


def find_config_path(
    explicit: str | Path | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    cwd: Path | None = None,
) -> Path | None:
    """The config file: ``explicit``, else ``$SPENDGRAPH_CONFIG``, else ``./spendgraph.toml``.

    Returns ``None`` when none of them applies. A file that was asked for by
    name (explicitly or through the variable) but does not exist is a
    ``ConfigError`` naming it -- silently running without it would be worse.
    """
    base = Path.cwd() if cwd is None else Path(cwd)
    if explicit is not None and str(explicit) != "":
        return _named_file(explicit, base, "given explicitly (--config)")
    if env.get(CONFIG_ENV):
        return _named_file(env[CONFIG_ENV], base, f"named by {CONFIG_ENV}")
    default = base / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def _named_file(path: str | Path, base: Path, how: str) -> Path:
    resolved = base / Path(path).expanduser()  # an absolute path stays as is
    if resolved.is_dir():
        raise ConfigError(f"is a directory, expected a TOML file ({how})", source=str(resolved))
    if not resolved.is_file():
        raise ConfigError(f"config file does not exist ({how})", source=str(resolved))
    return resolved


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    cwd: Path | None = None,
) -> SpendgraphConfig | None:
    """Find (see :func:`find_config_path`), read and validate the config; ``None`` if none."""
    found = find_config_path(path, env=env, cwd=cwd)
    if found is None:
        return None
    try:
        text = found.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (bad byte at offset {exc.start}); TOML files must be UTF-8",
            source=str(found),
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", source=str(found)) from exc
    return parse_config(text, source=str(found), env=env)


def parse_config(
    text: str, *, source: str = "<string>", env: Mapping[str, str] = os.environ
) -> SpendgraphConfig:
    """Validate TOML text; raise one :class:`InvalidConfig` (a ConfigError) naming every problem.

    ``env`` expands ``${VAR}`` in ``base_url`` and must hold every
    ``api_key_env`` variable.
    """
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig([toml_problem(exc)], source=source) from exc
    return config_from_mapping(raw, source=source, env=env)


def config_from_mapping(
    raw: Mapping[str, Any], *, source: str, env: Mapping[str, str] = os.environ
) -> SpendgraphConfig:
    """Validate a config given as data (what a TOML file parses to), with the same
    one-error-naming-every-problem reporting as :func:`parse_config`."""
    problems: list[Problem] = []
    if "source" in raw:  # set by the loader, not by the file
        problems.append(
            Problem("source", unknown_key_message("source", SpendgraphConfig, {"source"}))
        )
        raw = {key: value for key, value in raw.items() if key != "source"}
    cause: Exception | None = None
    try:
        config = SpendgraphConfig.model_validate({**raw, "source": source}, context={"env": env})
    except ValidationError as exc:
        cause = exc
        problems += problems_from_validation_error(
            exc, raw, SpendgraphConfig, hidden_keys={"source"}
        )
    except InvalidConfig as exc:
        cause = exc
        problems += exc.problems
    if problems:
        raise InvalidConfig(problems, source=source) from cause
    return config


def example_config_path() -> Path:
    """The example config shipped inside the package (a copyable starting point)."""
    return Path(str(resources.files("spendgraph.providers").joinpath(EXAMPLE_CONFIG_NAME)))
