"""Import contracts (import-linter, configured in pyproject.toml) hold, and really bite.

The contracts: layers run one way (cli -> examples -> graph -> agents ->
providers), and only the CLI imports ``spendgraph.providers.local``.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCAL_CONTRACT = "Only the CLI imports spendgraph.providers.local"


def _lint_imports() -> str:
    return shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def test_import_contracts_hold():
    result = subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken" in result.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer folders copied to ``<tmp>/spendgraph/<layer>``, next to a copy of the config."""
    base = tmp_path_factory.mktemp("layers")
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (base / "pyproject.toml").write_text(config, encoding="utf-8")
    for package in tomllib.loads(config)["tool"]["importlinter"]["root_packages"]:
        folder = package.removeprefix("spendgraph.")
        shutil.copytree(
            ROOT / folder,
            base / "spendgraph" / folder,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return base


def _lint_copy(base: Path) -> subprocess.CompletedProcess[str]:
    # -S: no .pth files, so the editable install's finder cannot map
    # `spendgraph.*` back to the real tree; the copy is first on the path and
    # site-packages (for import-linter itself) last.
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(base)!r}]
        sys.path += {site.getsitepackages()!r}
        sys.argv = ["lint-imports", "--no-cache"]  # reads ./pyproject.toml
        from importlinter.cli import lint_imports_command
        lint_imports_command()
        """
    )
    return subprocess.run(
        [sys.executable, "-S", "-c", script], cwd=base, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    "where", ["providers", "providers/ledger", "agents", "graph", "examples/dungeon"]
)
def test_importing_providers_local_from_outside_the_cli_breaks_a_contract(tree_copy, where):
    injected = tree_copy / "spendgraph" / where / "wrong_way.py"
    injected.write_text("from spendgraph.providers.local import embedded  # noqa: F401\n")
    try:
        result = _lint_copy(tree_copy)
    finally:
        injected.unlink()
    output = result.stdout + result.stderr
    importer = "spendgraph." + where.replace("/", ".") + ".wrong_way"
    assert result.returncode != 0, output
    broken = [line for line in output.splitlines() if line.startswith(LOCAL_CONTRACT)]
    assert broken and broken[0].endswith("BROKEN"), output
    assert f"{importer} -> spendgraph.providers.local.embedded" in output, output
