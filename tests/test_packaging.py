"""What is installed: every package folder under its ``spendgraph.`` name, no bare layer module.

setup.py discovers the packages (pyproject.toml holds the rest of the metadata).
These tests check the discovery against the tree, then ask a fresh interpreter
(``python -I``, run outside the checkout so the working directory is not on its
path) what the *installed* distribution provides -- editable or from a wheel.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Top-level folders that are never installed, whether or not they hold an __init__.py.
NOT_INSTALLED = ("tests", "benchmarks")

_PROBE = """
import importlib, importlib.metadata, importlib.util, json, sys

packages, bare = json.loads(sys.argv[1]), json.loads(sys.argv[2])
report = {"packages": {}, "bare": {}}
for name in packages:
    try:
        report["packages"][name] = {"file": importlib.import_module(name).__file__}
    except Exception as exc:
        report["packages"][name] = {"error": f"{type(exc).__name__}: {exc}"}
for name in bare:
    spec = importlib.util.find_spec(name)
    where = [] if spec is None else [spec.origin, *(spec.submodule_search_locations or [])]
    report["bare"][name] = [str(path) for path in where if path]
dist = importlib.metadata.distribution("spendgraph")
report["direct_url"] = json.loads(dist.read_text("direct_url.json") or "null")
report["top_level"] = (dist.read_text("top_level.txt") or "").split()
report["file_roots"] = sorted({file.parts[0] for file in dist.files or ()})
print(json.dumps(report))
"""


def layer_folders() -> list[str]:
    """The top-level folders that are layers: they have an ``__init__.py``."""
    return sorted(
        path.name
        for path in ROOT.iterdir()
        if path.is_dir() and path.name not in NOT_INSTALLED and (path / "__init__.py").is_file()
    )


def package_folders() -> dict[str, Path]:
    """``spendgraph.<dotted path>`` -> folder, for every folder with an ``__init__.py``."""
    found = {}
    for layer in layer_folders():
        for init in sorted((ROOT / layer).rglob("__init__.py")):
            relative = init.parent.relative_to(ROOT)
            # A folder below one without __init__.py is not a package (nor importable).
            chain = [ROOT.joinpath(*relative.parts[: i + 1]) for i in range(len(relative.parts))]
            if all((folder / "__init__.py").is_file() for folder in chain):
                found["spendgraph." + ".".join(relative.parts)] = init.parent
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What a fresh interpreter outside the checkout imports, and the installed metadata."""
    packages = json.dumps(sorted(package_folders()))
    bare = json.dumps([*layer_folders(), *NOT_INSTALLED])
    result = subprocess.run(
        [sys.executable, "-I", "-c", _PROBE, packages, bare],
        cwd=tmp_path_factory.mktemp("probe"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_setup_py_discovers_every_package_folder():
    setup = runpy.run_path(str(ROOT / "setup.py"), run_name="spendgraph_setup")
    packages, package_dir = setup["discover"](ROOT)
    assert sorted(packages) == sorted(package_folders())
    assert package_dir == {f"spendgraph.{layer}": layer for layer in layer_folders()}


def test_every_package_folder_is_importable_from_the_install(report):
    direct_url = report["direct_url"] or {}
    editable = bool(direct_url.get("dir_info", {}).get("editable"))
    if editable:
        assert direct_url.get("url") == ROOT.as_uri(), (
            f"spendgraph is installed editable from {direct_url.get('url')}, not {ROOT}"
        )
    problems = []
    for name, folder in package_folders().items():
        found = report["packages"][name]
        if "error" in found:
            problems.append(f"{name}: {found['error']}")
            continue
        origin = Path(found["file"])
        tail = ("spendgraph", *folder.relative_to(ROOT).parts, "__init__.py")
        if editable and origin != folder / "__init__.py":
            problems.append(f"{name} resolves to {origin}, not {folder}")
        elif not editable and origin.parts[-len(tail) :] != tail:
            problems.append(f"{name} resolves to {origin}")
    if problems and editable:
        problems.append("(an editable install maps top-level folders once: pip install -e . again)")
    assert not problems, "\n".join(problems)


def test_no_bare_layer_module_is_installed(report):
    layers = {*layer_folders(), *NOT_INSTALLED}
    assert report["top_level"] in ([], ["spendgraph"]), report["top_level"]
    assert not layers & set(report["file_roots"]), report["file_roots"]
    # Another distribution may own a top-level `agents` or `tests`; ours never does.
    from_here = {
        name: where
        for name, where in report["bare"].items()
        if any(Path(path).resolve().is_relative_to(ROOT) for path in where)
    }
    assert not from_here, f"importable as bare top-level modules: {from_here}"
