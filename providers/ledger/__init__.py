"""The spend ledger: one Query row per end-user query, one Call row per HTTP attempt.

Open one with ``Ledger.open(url)``; record with ``record_call`` /
``open_query`` / ``close_query`` (acknowledged = committed); read totals with
``query_summary``, ``list_queries``, ``summary_by``, ``calls_for_query`` and
``iter_calls``.
"""

from spendgraph.providers.ledger.leases import LeaseOptions, mark_stale_interrupted
from spendgraph.providers.ledger.ledger import Ledger
from spendgraph.providers.ledger.migrations import MIGRATIONS, Migration, latest_version
from spendgraph.providers.ledger.records import (
    BudgetEventRecord,
    CallRecord,
    CallStatus,
    EndpointInfo,
    QueryRecord,
    QueryStatus,
    new_id,
    new_sequential_id,
    utcnow,
)
from spendgraph.providers.ledger.store import (
    DEFAULT_LEDGER_FILE,
    LEDGER_ENV_VAR,
    redact_url,
    resolve_ledger_url,
)
from spendgraph.providers.ledger.views import (
    CallRow,
    GroupBy,
    GroupTotal,
    LedgerFilter,
    QueryRow,
    QuerySort,
    QuerySummary,
)
from spendgraph.providers.ledger.writer import WriterOptions

__all__ = [
    "DEFAULT_LEDGER_FILE",
    "LEDGER_ENV_VAR",
    "MIGRATIONS",
    "BudgetEventRecord",
    "CallRecord",
    "CallRow",
    "CallStatus",
    "EndpointInfo",
    "GroupBy",
    "GroupTotal",
    "LeaseOptions",
    "Ledger",
    "LedgerFilter",
    "Migration",
    "QueryRecord",
    "QueryRow",
    "QuerySort",
    "QueryStatus",
    "QuerySummary",
    "WriterOptions",
    "latest_version",
    "mark_stale_interrupted",
    "new_id",
    "new_sequential_id",
    "redact_url",
    "resolve_ledger_url",
    "utcnow",
]
