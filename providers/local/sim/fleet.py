"""Fleet files: which models and replicas the simulator serves.

A fleet file is TOML, validated with pydantic; any mistake becomes one
:class:`~spendgraph.providers.errors.ConfigError` naming the file, the key and
what was expected. See ``default_fleet.toml`` (shipped) for the format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import tiktoken
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spendgraph.providers.errors import ConfigError
from spendgraph.providers.local.sim.dialects import DEFAULT_DIALECT, DialectName
from spendgraph.providers.local.sim.faults import FaultRates
from spendgraph.providers.local.sim.profiles import BUILTIN_PROFILES, HardwareProfile, Prices

StreamUsage = Literal["final", "cumulative", "never"]
DEFAULT_FLEET_FILE = "default_fleet.toml"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


@dataclass(frozen=True)
class ModelSpec:
    """A model the fleet serves; its speed and price relative to the profile's reference model."""

    name: str
    time_factor: float = 1.0
    price_factor: Decimal = Decimal(1)
    max_model_len: int = 131_072
    # Hidden reasoning tokens every answer starts with (counted in completion tokens).
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class ReplicaSpec:
    """One simulated replica: a hardware profile serving some models."""

    name: str
    profile: HardwareProfile
    models: tuple[str, ...]
    stream_usage: StreamUsage = "final"
    faults: FaultRates = field(default_factory=FaultRates)
    dialect: DialectName = DEFAULT_DIALECT


@dataclass(frozen=True)
class Fleet:
    """A validated fleet: models by name, replicas in file order, optional API key."""

    models: Mapping[str, ModelSpec]
    replicas: tuple[ReplicaSpec, ...]
    api_key: str | None = None
    source: str = "<memory>"

    def replica(self, name: str) -> ReplicaSpec | None:
        """The replica called ``name``, or None."""
        return next((spec for spec in self.replicas if spec.name == name), None)

    def prices(self, replica: ReplicaSpec, model: str) -> Prices:
        """Price per million tokens of ``model`` on ``replica``."""
        return replica.profile.prices.scaled(self.models[model].price_factor)

    def with_dialect(self, dialect: DialectName) -> Fleet:
        """This fleet with every replica answering in ``dialect`` (``serve sim --dialect``)."""
        return replace(self, replicas=tuple(replace(r, dialect=dialect) for r in self.replicas))


# --- the file schema (pydantic), kept private: callers get the dataclasses above.


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ModelEntry(_Strict):
    time_factor: float = Field(1.0, gt=0)
    price_factor: Decimal = Field(Decimal(1), ge=0)
    max_model_len: int = Field(131_072, gt=0)
    reasoning_tokens: int = Field(0, ge=0)


class _ProfileEntry(_Strict):
    base: str | None = None
    hardware: str | None = None
    precision: str | None = None
    engine: str | None = None
    prefill_tokens_per_s: float | None = Field(None, gt=0)
    ttft_base_ms: float | None = Field(None, ge=0)
    inter_token_ms: float | None = Field(None, ge=0)
    max_seqs: int | None = Field(None, gt=0)
    cache_blocks: int | None = Field(None, ge=0)
    block_size: int | None = Field(None, gt=0)
    encoding: str | None = None
    price_input: Decimal | None = Field(None, ge=0)
    price_cached_input: Decimal | None = Field(None, ge=0)
    price_output: Decimal | None = Field(None, ge=0)


class _FaultEntry(_Strict):
    rate_429: float = Field(0.0, ge=0, le=1)
    rate_500: float = Field(0.0, ge=0, le=1)
    rate_503: float = Field(0.0, ge=0, le=1)
    rate_delay: float = Field(0.0, ge=0, le=1)
    rate_cut: float = Field(0.0, ge=0, le=1)
    retry_after: float = Field(1.0, ge=0)
    delay: float = Field(30.0, ge=0)
    cut_after: int = Field(5, ge=0)


class _ReplicaEntry(_Strict):
    name: str = Field(pattern=_NAME)
    profile: str
    count: int | None = Field(None, gt=0)
    models: list[str] | None = None
    stream_usage: StreamUsage | None = None
    dialect: DialectName | None = None
    faults: _FaultEntry = _FaultEntry()


class _FleetFile(_Strict):
    api_key: str | None = None
    stream_usage: StreamUsage = "final"
    dialect: DialectName = DEFAULT_DIALECT
    models: dict[str, _ModelEntry] = Field(min_length=1)
    profiles: dict[str, _ProfileEntry] = {}
    replicas: list[_ReplicaEntry] = Field(min_length=1)


# --- loading


def default_fleet_path() -> Path:
    """The fleet file shipped with spendgraph."""
    return Path(str(resources.files("spendgraph.providers.local.sim") / DEFAULT_FLEET_FILE))


def load_fleet(path: str | Path | None = None) -> Fleet:
    """Read and validate a fleet file (the shipped default when ``path`` is None)."""
    file = Path(path) if path is not None else default_fleet_path()
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read fleet file: {exc.strerror or exc}", source=source) from exc
    return parse_fleet(text, source=source)


def parse_fleet(text: str, *, source: str = "<memory>") -> Fleet:
    """Validate fleet TOML ``text``; ``source`` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        key = f"line {line.group(1)}" if line else None
        raise ConfigError(f"not valid TOML: {exc}", source=source, key=key) from exc
    try:
        parsed = _FleetFile.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(exc, source) from exc
    return _build(parsed, source)


def _dotted(loc: tuple[Any, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _config_error(exc: ValidationError, source: str) -> ConfigError:
    error = exc.errors(include_url=False)[0]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    else:
        message = f"{error['msg']} (got {error.get('input')!r})"
    return ConfigError(message, source=source, key=_dotted(error["loc"]) or None)


def _build(parsed: _FleetFile, source: str) -> Fleet:
    models = {
        name: ModelSpec(name=name, **entry.model_dump()) for name, entry in parsed.models.items()
    }
    profiles = _profiles(parsed.profiles, source)
    replicas: list[ReplicaSpec] = []
    for index, entry in enumerate(parsed.replicas):
        replicas.extend(_replicas(entry, f"replicas[{index}]", parsed, profiles, source))
    seen: set[str] = set()
    for spec in replicas:
        if spec.name in seen:
            raise ConfigError(
                f"duplicate replica name {spec.name!r}", source=source, key="replicas"
            )
        seen.add(spec.name)
    return Fleet(
        models=MappingProxyType(models),
        replicas=tuple(replicas),
        api_key=parsed.api_key or None,
        source=source,
    )


_PROFILE_FIELDS = (
    "hardware",
    "precision",
    "engine",
    "prefill_tokens_per_s",
    "ttft_base_ms",
    "inter_token_ms",
    "max_seqs",
    "cache_blocks",
    "block_size",
    "encoding",
)
# Without `base`, a profile must give these (engine, block_size, encoding have defaults).
_REQUIRED_PROFILE_FIELDS = (
    "hardware",
    "precision",
    "prefill_tokens_per_s",
    "ttft_base_ms",
    "inter_token_ms",
    "max_seqs",
    "cache_blocks",
)
_PRICE_FIELDS = {
    "price_input": "input",
    "price_cached_input": "cached_input",
    "price_output": "output",
}


def _profiles(entries: Mapping[str, _ProfileEntry], source: str) -> dict[str, HardwareProfile]:
    profiles = dict(BUILTIN_PROFILES)
    for name, entry in entries.items():
        key = f"profiles.{name}"
        if entry.base is not None and entry.base not in profiles:
            known = ", ".join(sorted(profiles))
            raise ConfigError(
                f"unknown base profile {entry.base!r} (known: {known})",
                source=source,
                key=f"{key}.base",
            )
        if entry.encoding is not None and entry.encoding not in tiktoken.list_encoding_names():
            known = ", ".join(tiktoken.list_encoding_names())
            raise ConfigError(
                f"unknown tokenizer encoding {entry.encoding!r} (known: {known})",
                source=source,
                key=f"{key}.encoding",
            )
        profiles[name] = _profile(name, entry, profiles.get(entry.base or ""), key, source)
    return profiles


def _profile(
    name: str, entry: _ProfileEntry, base: HardwareProfile | None, key: str, source: str
) -> HardwareProfile:
    values = {f: getattr(entry, f) for f in _PROFILE_FIELDS if getattr(entry, f) is not None}
    prices = {
        p: getattr(entry, f) for f, p in _PRICE_FIELDS.items() if getattr(entry, f) is not None
    }
    if base is not None:
        return replace(base, name=name, prices=replace(base.prices, **prices), **values)
    missing = [f for f in _REQUIRED_PROFILE_FIELDS if f not in values]
    missing += [f for f, p in _PRICE_FIELDS.items() if p not in prices]
    if missing:
        raise ConfigError(
            f"a profile without `base` needs {', '.join(missing)}",
            source=source,
            key=f"{key}.{missing[0]}",
        )
    return HardwareProfile(name=name, prices=Prices(**prices), **values)


def _replicas(
    entry: _ReplicaEntry,
    key: str,
    parsed: _FleetFile,
    profiles: Mapping[str, HardwareProfile],
    source: str,
) -> list[ReplicaSpec]:
    profile = profiles.get(entry.profile)
    if profile is None:
        known = ", ".join(sorted(profiles))
        raise ConfigError(
            f"unknown profile {entry.profile!r} (known: {known})",
            source=source,
            key=f"{key}.profile",
        )
    models = tuple(entry.models) if entry.models is not None else tuple(parsed.models)
    for model in models:
        if model not in parsed.models:
            raise ConfigError(
                f"unknown model {model!r} (define it under [models])",
                source=source,
                key=f"{key}.models",
            )
    if not models:
        raise ConfigError(
            "a replica must serve at least one model", source=source, key=f"{key}.models"
        )
    faults = FaultRates(**entry.faults.model_dump())
    if faults.total > 1 + 1e-9:  # tolerance: 0.1 + 0.2 + 0.7 is 1.0000000000000002
        raise ConfigError(
            f"fault rates add up to {faults.total:g}, more than 1",
            source=source,
            key=f"{key}.faults",
        )
    names = (
        [entry.name] if entry.count is None else [f"{entry.name}-{i}" for i in range(entry.count)]
    )
    usage = entry.stream_usage or parsed.stream_usage
    dialect = entry.dialect or parsed.dialect
    return [ReplicaSpec(name, profile, models, usage, faults, dialect) for name in names]
