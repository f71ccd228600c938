"""The audit web app's fixtures: a ledger of real runs, the app served on loopback, a browser.

The ledger is :func:`audit_web.record_runs`' real runs. Nothing here is hand-made:
every expected number on a page is read back from the ledger or from the CLI's ``--json``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from audit_web import EXAMPLE, record_runs
from loopback_server import serve_in_thread

from spendgraph.cli.audit.serve import audit_views
from spendgraph.providers.config import load_config
from spendgraph.providers.ledger import Ledger, LedgerFilter
from spendgraph.serve.audit import audit_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRE_BROWSER = "SPENDGRAPH_REQUIRE_BROWSER"
ARTIFACTS = "SPENDGRAPH_TEST_ARTIFACTS"


@pytest.fixture(scope="session")
def audit_ledger(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite ledger of real runs (read-only for tests), with retries and refusals in it."""
    path = str(tmp_path_factory.mktemp("audit") / "ledger.db")
    asyncio.run(record_runs(path))
    with Ledger.open(path, create=False) as ledger:
        statuses = {call.status for call in ledger.iter_calls()}
        attempts = {call.attempt for call in ledger.iter_calls()}
    assert "budget_denied" in statuses and max(attempts) > 1, (statuses, attempts)
    return path


@pytest.fixture(scope="module")
def served(audit_ledger: str) -> Iterator[SimpleNamespace]:
    """The audit app over the ledger, as `audit serve --config EXAMPLE` builds it."""
    with Ledger.open(audit_ledger, create=False) as ledger:
        views = audit_views(ledger, LedgerFilter(), load_config(EXAMPLE))
        with serve_in_thread(lambda _url: audit_app(ledger, views)) as url:
            yield SimpleNamespace(url=url, ledger=ledger, path=audit_ledger)


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (apt-get install chromium chromium-driver; .ci/run does)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through its own chromedriver (same version); nothing fetched."""
    missing = _browser_missing()
    if missing:
        if os.environ.get(REQUIRE_BROWSER) == "1":
            pytest.fail(f"{REQUIRE_BROWSER}=1 but {missing}", pytrace=False)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # runs as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        # No traffic of the browser's own (updates, sync, safe browsing) beyond loopback.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """Where the pages' screenshots go: $SPENDGRAPH_TEST_ARTIFACTS/audit-serve, else a tmp dir."""
    root = os.environ.get(ARTIFACTS)
    folder = Path(root) / "audit-serve" if root else tmp_path_factory.mktemp("audit-serve")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder
    shots = ", ".join(sorted(p.name for p in folder.glob("*.png")))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown even when output is captured
        print(f"\naudit serve screenshots in {folder}: {shots}")
