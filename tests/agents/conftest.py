"""Agent tests use the suite-wide fixtures in tests/conftest.py (simulator, test fleet,
ledger, provider layer)."""
