"""Finding, reading and validating ``spendgraph.toml``.

Where the file comes from: ``--config FILE`` (the ``explicit`` argument), else
the file named by ``SPENDGRAPH_CONFIG``, else ``./spendgraph.toml``, else none
(the CLI then falls back to the embedded model). See :func:`find_config_path`.

Loading maps every TOML or pydantic failure to one
:class:`~spendgraph.providers.errors.ConfigError` that names the file, the key
path or line, and what was expected (see :mod:`.errors`).

Prices (:mod:`.prices`) are ``Decimal`` USD per million tokens. TOML floats
are parsed straight into ``Decimal`` so ``0.05`` is exactly 0.05, never
0.05000000000000000277. A missing price is *unknown* (cost ``None``), never 0.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from spendgraph.providers.config.errors import (
    InvalidConfig,
    Problem,
    describe,
    problems_from_validation_error,
    toml_problem,
    unknown_key_message,
)
from spendgraph.providers.config.model import LedgerConfig, SpendgraphConfig, ThreadsConfig
from spendgraph.providers.errors import ConfigError, LedgerError
from spendgraph.providers.ledger.store import resolve_ledger_url

CONFIG_ENV = "SPENDGRAPH_CONFIG"
DEFAULT_CONFIG_NAME = "spendgraph.toml"
EXAMPLE_CONFIG_NAME = "example_config.toml"


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
    return parse_config(_read_text(found), source=str(found), env=env)


def _read_text(found: Path) -> str:
    try:
        return found.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (bad byte at offset {exc.start}); TOML files must be UTF-8",
            source=str(found),
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", source=str(found)) from exc


def parse_config(
    text: str, *, source: str = "<string>", env: Mapping[str, str] = os.environ
) -> SpendgraphConfig:
    """Validate TOML text; raise one :class:`InvalidConfig` (a ConfigError) naming every problem.

    ``env`` expands ``${VAR}`` in ``base_url`` and must hold every
    ``api_key_env`` variable.
    """
    return config_from_mapping(_parse_toml(text, source), source=source, env=env)


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig([toml_problem(exc)], source=source) from exc


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
    problems += _ledger_url_problems(raw)
    if problems:
        raise InvalidConfig(problems, source=source) from cause
    return config


def _ledger_url_problems(raw: Mapping[str, Any]) -> list[Problem]:
    """A ``[ledger] url`` the ledger could never open (unsupported database, not a URL,
    in-memory), reported at load under its key instead of at the first query."""
    ledger = raw.get("ledger")
    url = ledger.get("url") if isinstance(ledger, Mapping) else None
    if not isinstance(url, str) or not url.strip():
        return []  # a wrong type or an empty string is the model's to report
    try:
        resolve_ledger_url(url, env={})
    except LedgerError as exc:
        return [Problem("ledger.url", str(exc))]
    return []


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """The ``[ledger]`` and ``[threads]`` tables of a config file, validated on their own.

    What commands that only read the ledger or the threads (``audit``,
    ``threads``) need: no endpoint, so no API key has to be set for them.
    """

    ledger: LedgerConfig
    threads: ThreadsConfig
    source: str


_STORAGE_TABLES: tuple[tuple[str, type[BaseModel]], ...] = (
    ("ledger", LedgerConfig),
    ("threads", ThreadsConfig),
)


def load_storage_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    cwd: Path | None = None,
) -> StorageConfig | None:
    """The ``[ledger]`` and ``[threads]`` tables of the config :func:`find_config_path`
    finds (``None`` without one); problems in them are one :class:`InvalidConfig`."""
    found = find_config_path(path, env=env, cwd=cwd)
    if found is None:
        return None
    source = str(found)
    raw = _parse_toml(_read_text(found), source)
    problems: list[Problem] = []
    tables: dict[str, BaseModel] = {}
    for name, model in _STORAGE_TABLES:
        table = raw.get(name, {})
        if not isinstance(table, dict):
            problems.append(Problem(name, f"expected a table [{name}], got {describe(table)}"))
            continue
        try:
            tables[name] = model.model_validate(table)
        except ValidationError as exc:
            for problem in problems_from_validation_error(exc, table, model):
                key = f"{name}.{problem.key}" if problem.key else name
                problems.append(Problem(key, problem.message))
    problems += _ledger_url_problems(raw)
    if problems:
        raise InvalidConfig(problems, source=source)
    return StorageConfig(source=source, **tables)  # type: ignore[arg-type]


def example_config_path() -> Path:
    """The example config shipped inside the package (a copyable starting point)."""
    return Path(str(resources.files("spendgraph.providers").joinpath(EXAMPLE_CONFIG_NAME)))
