"""Opening the ledger for an audit: read-only intent, clear messages, no new files.

An audit never creates a ledger: a missing SQLite file (or a database that
holds no ledger) is an error that says where it looked and how to get one.
An existing but empty ledger is not an error: the command prints what it
would print for "nothing matched", plus a note on stderr saying why.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from spendgraph.cli.console import Output
from spendgraph.cli.options import CommandError
from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger import Ledger, QuerySummary

_HOW_TO_GET_ONE = (
    "Queries are recorded by `spendgraph chat` (and apps built on spendgraph); "
    "point --ledger, SPENDGRAPH_LEDGER or the config's [ledger] url at an existing ledger "
    "to audit it."
)
# Shown when several queries share the prefix given to `audit show`.
_AMBIGUOUS_SHOWN = 5


@contextmanager
def audit_ledger(url: str | None, *, origin: str | None = None) -> Iterator[Ledger]:
    """The ledger at ``url`` (``--ledger``, else ``$SPENDGRAPH_LEDGER``, else ./spendgraph.db).

    ``create=False``: an audit of a ledger that does not exist must not leave
    an empty one behind. ``origin`` (where the URL came from, e.g. a config
    file's ``ledger.url``) is named when the ledger cannot be opened.
    """
    try:
        ledger = Ledger.open(url, create=False)
    except LedgerError as exc:
        named = f" (the ledger named by {origin})" if origin else ""
        raise LedgerError(f"{exc}{named}. {_HOW_TO_GET_ONE}") from exc
    with ledger:
        # A query whose process died shows as interrupted, not running forever.
        with contextlib.suppress(LedgerError):  # a read-only ledger is still audited
            ledger.mark_stale_interrupted()
        yield ledger


# How long a summary may spend sealing hours before it reads (the rest: next time).
SEAL_BUDGET_S = 1.0
# A long-lived process (the audit app) seals again at most this often: hours end hourly,
# and each refresh counts the sealed rows once.
SEAL_EVERY_S = 60.0


def seal_due_hours(out: Output | None, ledger: Ledger) -> None:
    """Seal the hours that have ended (for about :data:`SEAL_BUDGET_S`), so the read that
    follows adds up sealed hours; a read-only ledger is read from its rows as it is."""
    current = ledger.rollup_current_at
    if current is not None and time.monotonic() - current < SEAL_EVERY_S:
        return
    try:
        result = ledger.refresh_rollup(time_budget_s=SEAL_BUDGET_S)
    except LedgerError:
        return
    if out is not None and not result.complete:
        out.errors.print(
            f"sealed {result.sealed_hours:,} hours of the audit rollup of {ledger.url}; more "
            "are due and are read from their rows until then. `spendgraph audit rollup` "
            "seals them all at once.",
            style="yellow",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def is_empty(ledger: Ledger) -> bool:
    """True when the ledger holds no query and no call at all."""
    if ledger.list_queries(limit=1):
        return False
    calls = ledger.iter_calls(batch=1)
    try:
        return next(calls, None) is None
    finally:
        calls.close()  # releases the connection the generator holds


def note_nothing_found(out: Output, ledger: Ledger, what: str) -> None:
    """On stderr (stdout may be JSON): the ledger is empty, or the filters matched nothing."""
    if is_empty(ledger):
        message = f"the ledger {ledger.url} is empty: no queries recorded yet. {_HOW_TO_GET_ONE}"
    else:
        message = f"no {what} match the filters in {ledger.url}"
    # soft_wrap: one line however narrow the terminal, so logs and grep see it whole.
    out.errors.print(message, style="yellow", highlight=False, markup=False, soft_wrap=True)


def find_query(ledger: Ledger, query_id: str) -> QuerySummary:
    """The query whose id is ``query_id`` or, failing that, starts with it (if only one does)."""
    wanted = query_id.strip()
    if not wanted:
        raise CommandError("give a query id (or a unique prefix of one)")
    matches = ledger.query_ids_with_prefix(wanted, limit=_AMBIGUOUS_SHOWN + 1)
    if wanted in matches:
        return ledger.query_summary(wanted)
    if len(matches) == 1:
        return ledger.query_summary(matches[0])
    if not matches:
        raise CommandError(f"no query {wanted!r} in the ledger {ledger.url}")
    shown = ", ".join(matches[:_AMBIGUOUS_SHOWN])
    more = " and more" if len(matches) > _AMBIGUOUS_SHOWN else ""
    raise CommandError(
        f"query id prefix {wanted!r} is ambiguous: it matches {shown}{more}; give more characters"
    )
