"""The spend ledger: one Query row per end-user query, one Call row per HTTP attempt.

Open one with ``Ledger.open(url)``; record with ``record_call`` /
``open_query`` / ``close_query`` (acknowledged = committed); read totals with
``query_summary``, ``list_queries``, ``summary_by``, ``calls_for_query`` and
``iter_calls``; fold old calls, totals kept exact, with ``compact``.

Names load on first use: a command that only needs the filters or the URL
rules (``views``, ``store``) does not import the writer, leases and
compaction with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spendgraph.providers.lazy_exports import lazy_exports

# name -> the module of this package that defines it
_EXPORTS = {
    "Compaction": "compact",
    "LeaseOptions": "leases",
    "mark_stale_interrupted": "leases",
    "Ledger": "ledger",
    "MIGRATIONS": "migrations",
    "Migration": "migrations",
    "latest_version": "migrations",
    "BudgetEventRecord": "records",
    "CallRecord": "records",
    "CallStatus": "records",
    "EndpointInfo": "records",
    "QueryRecord": "records",
    "QueryStatus": "records",
    "new_id": "records",
    "RollupRefresh": "rollup",
    "new_sequential_id": "records",
    "utcnow": "records",
    "DEFAULT_LEDGER_FILE": "store",
    "LEDGER_ENV_VAR": "store",
    "redact_url": "store",
    "resolve_ledger_url": "store",
    "CallRow": "views",
    "GroupBy": "views",
    "GroupTotal": "views",
    "LedgerFilter": "views",
    "QueryRow": "views",
    "QuerySort": "views",
    "QuerySummary": "views",
    "TimeBuckets": "views",
    "WriterOptions": "writer",
}

__all__ = [
    "DEFAULT_LEDGER_FILE",
    "LEDGER_ENV_VAR",
    "MIGRATIONS",
    "BudgetEventRecord",
    "CallRecord",
    "CallRow",
    "CallStatus",
    "Compaction",
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
    "RollupRefresh",
    "TimeBuckets",
    "WriterOptions",
    "latest_version",
    "mark_stale_interrupted",
    "new_id",
    "new_sequential_id",
    "redact_url",
    "resolve_ledger_url",
    "utcnow",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)

if TYPE_CHECKING:  # what type checkers and IDEs see
    from spendgraph.providers.ledger.compact import Compaction
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
    from spendgraph.providers.ledger.rollup import RollupRefresh
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
        TimeBuckets,
    )
    from spendgraph.providers.ledger.writer import WriterOptions
