"""The audit pages' files ship in the package: pyproject's package-data covers every one.

(Building a wheel here would need a newer setuptools than the venv's, fetched at
test time; the patterns are what setuptools copies into the wheel.)
"""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ASSETS = ROOT / "serve" / "audit" / "assets"


def test_every_asset_is_package_data():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    patterns = package_data["spendgraph.serve.audit"] + package_data.get("*", [])
    shipped = sorted(path.relative_to(ASSETS.parent).as_posix() for path in ASSETS.iterdir())
    assert {"assets/index.html", "assets/app.js", "assets/style.css"} <= set(shipped)
    missing = [name for name in shipped if not any(fnmatch(name, p) for p in patterns)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_the_installed_package_finds_its_assets():
    installed = files("spendgraph.serve.audit") / "assets"
    names = {entry.name for entry in installed.iterdir()}
    assert names == {path.name for path in ASSETS.iterdir()}
    page = (installed / "index.html").read_text()
    assert '<script type="module" src="/assets/app.js">' in page
