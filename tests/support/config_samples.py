"""Config snippets and helpers shared by the config tests (tests/providers/config/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spendgraph.providers.config import DEFAULT_CONFIG_NAME, load_config
from spendgraph.providers.errors import ConfigError

ENDPOINT = """\
[[endpoints]]
name = "a"
base_url = "http://127.0.0.1:8000/v1"
model = "m"
"""
SECOND = ENDPOINT.replace('"a"', '"b"')
PRICE = ENDPOINT + "[endpoints.price]\n"


def write(directory: Path, text: str, name: str = DEFAULT_CONFIG_NAME) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[str, Path]:
    """Load ``text`` from a file; return the one ConfigError's message and the file."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return str(info.value), path
