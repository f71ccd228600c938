"""``spendgraph.providers`` is the user's one import: every name resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import spendgraph.providers as providers


def test_every_exported_name_resolves_to_its_defining_module():
    assert providers.__all__ == sorted(providers._EXPORTS)
    for name in providers.__all__:
        value = getattr(providers, name)
        module = f"spendgraph.providers.{providers._EXPORTS[name]}"
        assert value is getattr(sys.modules[module], name), name


def test_an_unknown_name_is_an_attribute_error_naming_it():
    try:
        providers.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_the_ledger_does_not_import_the_client_or_the_simulator():
    code = (
        "import sys, spendgraph.providers.ledger\n"
        "print(sorted(m for m in ('openai', 'starlette', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
