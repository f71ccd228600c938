"""The spend ledger: one Query row per end-user query, one Call row per HTTP attempt."""
