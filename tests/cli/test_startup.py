"""Start-up: commands load when they run; `--help` lists them without importing them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spendgraph.cli import audit, main
from spendgraph.cli.lazy import Lazy, load_command

TABLES = [*main.COMMANDS, *audit.COMMANDS]


@pytest.mark.parametrize("entry", TABLES, ids=[entry.target for entry in TABLES])
def test_each_listed_help_line_is_the_commands_own(entry: Lazy):
    command = load_command(entry)
    assert command.name == entry.name
    own = (command.short_help or command.help or "").split("\n\n")[0]
    assert " ".join(own.split()) == entry.help


def _imported_after(*argv: str) -> set[str]:
    """The modules a fresh interpreter imported to run ``spendgraph argv``, and their
    top-level packages."""
    code = (
        "import sys\n"
        "from spendgraph.cli.main import app\n"
        f"try:\n    app({list(argv)!r})\nexcept SystemExit:\n    pass\n"
        "print('MODULES', *sorted({*sys.modules, *(name.split('.')[0] for name in sys.modules)}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("MODULES ")]
    return set(line.split()[1:])


HEAVY = {"langgraph", "langchain_core", "openai", "tiktoken", "httpx", "uvicorn", "starlette"}


def test_help_imports_no_command():
    imported = _imported_after("--help")
    assert not imported & (HEAVY | {"sqlalchemy", "sqlmodel", "pydantic"})


def test_an_audit_imports_only_what_reading_the_ledger_needs(tmp_path):
    imported = _imported_after("audit", "summary", "--ledger", str(tmp_path / "none.db"))
    assert "sqlalchemy" in imported  # it did run: it looked for the ledger
    assert not imported & HEAVY
    # The ledger is read with Core SQL: no ORM, no SQLModel; no budget store, no
    # PostgreSQL dialect on a SQLite ledger.
    assert not imported & {
        "sqlmodel",
        "sqlalchemy.orm",
        "sqlalchemy.dialects.postgresql",
        "spendgraph.providers.budgets.postgres",
        "spendgraph.providers.budgets.store",
    }
