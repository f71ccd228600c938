"""Package exports that load on first use: a package's ``__getattr__`` and ``__dir__``.

A package whose ``__init__`` imports every submodule makes importing any one
of them import them all (the ledger's writer for a command that only reads,
the PostgreSQL budget store for the config parser): CLI start-up paid ~0.2 s
for that. A package lists ``name -> module`` instead and gets its names from
this on first access, cached in its namespace.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any


def lazy_exports(
    base: str,
    exports: Mapping[str, str],
    namespace: MutableMapping[str, Any],
    public: Sequence[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package: ``exports`` maps each name to its module,
    relative to the package ``base``; ``namespace`` is the package's ``globals()``."""

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{base}.{module}"), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *public})

    return getattr_, dir_
