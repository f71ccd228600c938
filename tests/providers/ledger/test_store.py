"""Where the ledger lives: URL resolution, SQLite settings, clear errors without passwords."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger import Ledger, redact_url, resolve_ledger_url

SECRET = "hunter2-s3cret"


def _chain(exc: BaseException) -> str:
    """Every message in an exception's cause chain."""
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def test_explicit_beats_environment_beats_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"SPENDGRAPH_LEDGER": "sqlite:///from-env.db"}
    assert resolve_ledger_url("sqlite:////x/explicit.db", env) == "sqlite:////x/explicit.db"
    assert resolve_ledger_url(None, env) == f"sqlite:///{tmp_path / 'from-env.db'}"
    assert resolve_ledger_url(None, {}) == f"sqlite:///{tmp_path / 'spendgraph.db'}"
    assert resolve_ledger_url("  ", {"SPENDGRAPH_LEDGER": ""}).endswith("/spendgraph.db")


def test_a_bare_path_is_a_sqlite_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_ledger_url("audit/ledger.db", {}) == f"sqlite:///{tmp_path}/audit/ledger.db"
    assert resolve_ledger_url("/var/x.db", {}) == "sqlite:////var/x.db"
    home = Path("~").expanduser()
    assert resolve_ledger_url("~/l.db", {}) == f"sqlite:///{home / 'l.db'}"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_urls_use_psycopg3(scheme):
    url = resolve_ledger_url(f"{scheme}://me:pw@db.internal:5433/spend", {})
    assert url == "postgresql+psycopg://me:pw@db.internal:5433/spend"
    kept = "postgresql+psycopg://me@h/d?sslmode=require"
    assert resolve_ledger_url(kept, {}) == kept


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"mysql://me:{SECRET}@h/d", "unsupported ledger database 'mysql'"),
        (f"postgresql://me:{SECRET}@h:notaport/d", "not a valid ledger URL"),
        ("sqlite://", "needs a file"),
        ("sqlite:///:memory:", "needs a file"),
    ],
)
def test_bad_urls_are_refused_without_the_password(url, message):
    with pytest.raises(LedgerError, match=message) as caught:
        resolve_ledger_url(url, {})
    assert SECRET not in _chain(caught.value)


def test_redaction():
    assert redact_url(f"postgresql://me:{SECRET}@h/d") == "postgresql://me:***@h/d"
    assert SECRET not in redact_url(f"postgresql://me@h/d?password={SECRET}")
    assert SECRET not in redact_url(f"garbage://me:{SECRET}@[")


def test_an_unreachable_database_is_a_clear_error_without_the_password():
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    url = f"postgresql://spend:{SECRET}@127.0.0.1:1/ledger"
    with pytest.raises(LedgerError) as caught:
        Ledger.open(url)
    message = str(caught.value)
    assert message.startswith("cannot open ledger postgresql+psycopg://spend:***@127.0.0.1:1/")
    assert "Connection refused" in message or "connection failed" in message
    assert SECRET not in _chain(caught.value)


def test_wrong_credentials_do_not_echo_the_password(postgres_server):
    url = make_url(postgres_server).set(username="nobody_here", password=SECRET)
    with pytest.raises(LedgerError, match="nobody_here") as caught:
        Ledger.open(url.render_as_string(hide_password=False))
    assert SECRET not in _chain(caught.value)


def test_a_driver_that_is_not_installed():
    with pytest.raises(LedgerError, match=r"cannot open ledger postgresql\+nodriver://me:\*\*\*@"):
        Ledger.open(f"postgresql+nodriver://me:{SECRET}@127.0.0.1/d")


def test_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(LedgerError, match=r"directory .*/nope does not exist"):
        Ledger.open(str(tmp_path / "nope" / "ledger.db"))


def test_create_false_wants_an_existing_file(tmp_path):
    with pytest.raises(LedgerError, match=r"no ledger at .*missing\.db"):
        Ledger.open(str(tmp_path / "missing.db"), create=False)


def test_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are not the pages you are looking for" * 100)
    expected = r"cannot open ledger sqlite:///.*notes\.db: .*not a database"
    with pytest.raises(LedgerError, match=expected):
        Ledger.open(str(path))


def test_sqlite_runs_wal_with_normal_sync_foreign_keys_and_a_busy_timeout(sqlite_url):
    with Ledger.open(sqlite_url) as ledger, ledger.engine.connect() as conn:

        def pragma(name: str):
            return conn.execute(text(f"PRAGMA {name}")).scalar()

        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 30_000


def test_the_environment_variable_opens_the_ledger(tmp_path):
    path = tmp_path / "env.db"
    with Ledger.open(env={"SPENDGRAPH_LEDGER": str(path)}) as ledger:
        assert ledger.url == f"sqlite:///{path}"
    assert path.exists()
