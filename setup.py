"""Which folders are installed, and under what name; all other metadata is in pyproject.toml.

Each top-level folder with an ``__init__.py`` (``providers/``, ``cli/``, a new
``serve/``...) is a layer, installed as ``spendgraph.<folder>``, and every
package below it as ``spendgraph.<folder>.<sub>``. They are discovered, not
listed, so a new subpackage cannot be left out of the wheel. setuptools'
``packages.find`` cannot add the ``spendgraph.`` prefix, hence this file.
``spendgraph`` itself stays an implicit namespace: no bare ``providers`` etc.
is ever installed.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
NAMESPACE = "spendgraph"
# Top-level folders that may hold an __init__.py but are not part of the package.
NOT_LAYERS = frozenset({"tests", "benchmarks", "build", "dist", "docs"})


def layer_folders(root: Path = ROOT) -> list[str]:
    """Top-level folders installed as ``spendgraph.<folder>``, sorted."""
    return sorted(
        path.name
        for path in root.iterdir()
        if path.is_dir()
        and path.name.isidentifier()
        and path.name not in NOT_LAYERS
        and (path / "__init__.py").is_file()
    )


def discover(root: Path = ROOT) -> tuple[list[str], dict[str, str]]:
    """``packages`` and ``package_dir`` for setuptools: every package under every layer."""
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for folder in layer_folders(root):
        layer = f"{NAMESPACE}.{folder}"
        # Relative: setuptools refuses absolute package_dir paths in a wheel build.
        package_dir[layer] = folder
        subpackages = find_packages(str(root / folder))
        packages += [layer, *(f"{layer}.{name}" for name in sorted(subpackages))]
    return packages, package_dir


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import discover()
    found_packages, found_package_dir = discover()
    setup(packages=found_packages, package_dir=found_package_dir)
