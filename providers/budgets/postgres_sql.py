"""The PostgreSQL budget store's statements: each one is a whole transaction.

The store runs them in autocommit mode, so each is one round trip and one
transaction. Why they are safe under concurrency:

* The spend and the live holds of a key are columns of its ``budget_account``
  row, and every statement that reads them to decide locks the rows first
  (``FOR UPDATE``, which returns the newest committed version after waiting), so
  a decision never rests on a snapshot another worker has moved past.
* Locks are always taken in one order: a statement's ``budget_hold`` rows
  first (by attempt id, account), then its ``budget_account`` rows by key
  (``ORDER BY ... FOR UPDATE`` locks in that order). A reserve inserts new hold
  rows only after its account locks, and never waits for another hold. So two
  statements never wait for each other in a cycle: no deadlocks.
* The updates of a statement touch only rows it has already locked.
"""

from __future__ import annotations

from sqlalchemy import text


def _stray(hold: str) -> str:
    """SQL: the held hold ``hold`` no longer counts. It expired, or its query is no longer
    running under a live lease -- its worker died and stopped renewing (the lease is
    compared with the server's clock, as the renewer writes it), or the query closed
    without settling it."""
    return f"""(
        {hold}.expires_at <= :now OR EXISTS (
            SELECT 1 FROM query AS q
            WHERE q.id = {hold}.query_id
              AND (q.status <> 'running' OR q.lease_expires_at < now())))"""


# Granted only if every account exists and has room; then one hold row per
# account and the accounts' held totals, in the same statement. The rows come
# back (as they were before this hold) so a refusal can say which one and why.
RESERVE = text(
    f"""
WITH wanted AS (
    SELECT w.key, w.usd_limit, w.token_limit
    FROM unnest(CAST(:keys AS text[]), CAST(:usd_limits AS numeric[]),
                CAST(:token_limits AS bigint[])) AS w(key, usd_limit, token_limit)
), locked AS (
    SELECT a.key, a.spent_usd, a.spent_tokens, a.held_usd, a.held_tokens
    FROM budget_account AS a
    WHERE a.key = ANY(CAST(:keys AS text[]))
    ORDER BY a.key
    FOR UPDATE
), verdict AS (
    SELECT count(*) = cardinality(CAST(:keys AS text[])) AND coalesce(bool_and(
        (w.usd_limit IS NULL OR coalesce(
            l.spent_usd + l.held_usd + CAST(:usd AS numeric) <= w.usd_limit, false))
        AND (w.token_limit IS NULL
             OR l.spent_tokens + l.held_tokens + CAST(:tokens AS bigint) <= w.token_limit)
    ), false) AS granted
    FROM locked AS l JOIN wanted AS w ON w.key = l.key
), hold AS (
    INSERT INTO budget_hold
        (attempt_id, account, query_id, usd, tokens, expires_at, state, created_at)
    SELECT :attempt_id, w.key, NULLIF(:query_id, ''), CAST(:usd AS numeric),
           CAST(:tokens AS bigint), :expires_at, 'held', :now
    FROM wanted AS w CROSS JOIN verdict AS v
    WHERE v.granted
    RETURNING account
), bump AS (
    UPDATE budget_account AS a
    SET held_usd = a.held_usd + coalesce(CAST(:usd AS numeric), 0),
        held_tokens = a.held_tokens + CAST(:tokens AS bigint)
    FROM hold AS h
    WHERE a.key = h.account
    RETURNING a.key
)
SELECT l.key, l.spent_usd, l.spent_tokens, l.held_usd, l.held_tokens, v.granted,
       (NOT v.granted AND EXISTS (
            SELECT 1 FROM budget_hold AS e
            WHERE e.account = ANY(CAST(:keys AS text[]))
              AND e.state = 'held' AND {_stray("e")})) AS expired_holds
FROM locked AS l CROSS JOIN verdict AS v
"""
)

# After a lost connection: did the reserve commit before the connection went?
HOLD_EXISTS = text("SELECT count(*) FROM budget_hold WHERE attempt_id = :attempt_id")

# A settle deletes the attempt's hold rows (so a second settle, or the
# reconciliation, finds nothing to do); its accounts count the real cost, and
# give back the hold if it was still live (``was`` = 'held'; 'released': it
# stray-expired first, its bound was already given back). ``fired`` is the
# account's reported thresholds before this statement.
SETTLE = text(
    """
WITH target AS (
    SELECT h.attempt_id, h.account, h.state, h.usd, h.tokens
    FROM budget_hold AS h
    WHERE h.attempt_id = :attempt_id
    ORDER BY h.account
    FOR UPDATE
), accounts AS (
    SELECT a.key, a.fired
    FROM budget_account AS a
    WHERE a.key IN (SELECT t.account FROM target AS t)
    ORDER BY a.key
    FOR UPDATE
), done AS (
    DELETE FROM budget_hold AS h
    USING target AS t
    WHERE h.attempt_id = t.attempt_id AND h.account = t.account
    RETURNING h.account, t.state AS was, t.usd AS hold_usd, t.tokens AS hold_tokens
), bump AS (
    UPDATE budget_account AS a
    SET spent_usd = a.spent_usd + CAST(:usd AS numeric),
        spent_tokens = a.spent_tokens + CAST(:tokens AS bigint),
        held_usd = a.held_usd
            - CASE WHEN d.was = 'held' THEN coalesce(d.hold_usd, 0) ELSE 0 END,
        held_tokens = a.held_tokens - CASE WHEN d.was = 'held' THEN d.hold_tokens ELSE 0 END
    FROM done AS d JOIN accounts AS c ON c.key = d.account
    WHERE a.key = d.account
    RETURNING a.key, a.spent_usd, a.spent_tokens, d.was, c.fired
)
SELECT key, spent_usd, spent_tokens, was, fired FROM bump
"""
)

# A live hold given back (the attempt will not be settled).
RELEASE = text(
    """
WITH target AS (
    SELECT h.attempt_id, h.account, h.usd, h.tokens
    FROM budget_hold AS h
    WHERE h.attempt_id = :attempt_id AND h.state = 'held'
    ORDER BY h.account
    FOR UPDATE
), accounts AS (
    SELECT a.key
    FROM budget_account AS a
    WHERE a.key IN (SELECT t.account FROM target AS t)
    ORDER BY a.key
    FOR UPDATE
), done AS (
    UPDATE budget_hold AS h
    SET state = 'released', released_at = :now
    FROM target AS t
    WHERE h.attempt_id = t.attempt_id AND h.account = t.account
    RETURNING h.account, t.usd, t.tokens
)
UPDATE budget_account AS a
SET held_usd = a.held_usd - coalesce(d.usd, 0), held_tokens = a.held_tokens - d.tokens
FROM done AS d JOIN accounts AS c ON c.key = d.account
WHERE a.key = d.account
"""
)

# Report a threshold once across workers: only the statement that finds the
# thresholds as it last read them may add to them.
MARK_FIRED = text(
    "UPDATE budget_account SET fired = :fired WHERE key = :key AND fired = :was RETURNING key"
)
READ_FIRED = text("SELECT fired FROM budget_account WHERE key = :key")

# Stray holds (expired, or their query's lease ran out), reconciled from the
# ledger: an attempt whose call row exists (the row's id is the attempt id) is
# settled to the row's cost and tokens (an unknown cost counts the hold's bound,
# as a settle does); one with no row is released. Holds another statement has
# locked (being settled right now) are skipped. ``:all_accounts`` false limits
# it to ``:keys``.
RECONCILE = text(
    f"""
WITH stray AS (
    SELECT h.attempt_id, h.account, h.usd, h.tokens
    FROM budget_hold AS h
    WHERE h.state = 'held' AND {_stray("h")}
      AND (:all_accounts OR h.account = ANY(CAST(:keys AS text[])))
    ORDER BY h.attempt_id, h.account
    LIMIT :batch
    FOR UPDATE OF h SKIP LOCKED
), resolved AS (
    SELECT s.attempt_id, s.account, s.usd, s.tokens, c.id IS NOT NULL AS recorded,
           coalesce(c.cost_usd, s.usd, 0) AS cost,
           coalesce(c.input_uncached + c.input_cached + c.output, 0) AS used
    FROM stray AS s LEFT JOIN call AS c ON c.id = s.attempt_id
), accounts AS (
    SELECT a.key
    FROM budget_account AS a
    WHERE a.key IN (SELECT s.account FROM stray AS s)
    ORDER BY a.key
    FOR UPDATE
), settled AS (
    DELETE FROM budget_hold AS h
    USING resolved AS r
    WHERE r.recorded AND h.attempt_id = r.attempt_id AND h.account = r.account
    RETURNING h.attempt_id
), released AS (
    UPDATE budget_hold AS h
    SET state = 'released', released_at = :now
    FROM resolved AS r
    WHERE NOT r.recorded AND h.attempt_id = r.attempt_id AND h.account = r.account
    RETURNING h.attempt_id
), totals AS (
    SELECT r.account,
           sum(coalesce(r.usd, 0)) AS held_usd, sum(r.tokens) AS held_tokens,
           sum(CASE WHEN r.recorded THEN r.cost ELSE 0 END) AS spent_usd,
           sum(CASE WHEN r.recorded THEN r.used ELSE 0 END) AS spent_tokens
    FROM resolved AS r
    GROUP BY r.account
), bump AS (
    UPDATE budget_account AS a
    SET held_usd = a.held_usd - t.held_usd, held_tokens = a.held_tokens - t.held_tokens,
        spent_usd = a.spent_usd + t.spent_usd, spent_tokens = a.spent_tokens + t.spent_tokens
    FROM totals AS t JOIN accounts AS c ON c.key = t.account
    WHERE a.key = t.account
    RETURNING a.key
)
SELECT (SELECT count(*) FROM stray) AS found,
       (SELECT count(DISTINCT attempt_id) FROM settled) AS settled,
       (SELECT count(DISTINCT attempt_id) FROM released) AS released
"""
)

# Released holds are kept a while (a late settle of one still counts its
# cost), then dropped.
# An account whose scope is over (a closed query), dropped unless something is held.
FORGET = text("DELETE FROM budget_account WHERE key = :key AND held_usd = 0 AND held_tokens = 0")

PRUNE = text("DELETE FROM budget_hold WHERE state <> 'held' AND expires_at < :before")

ACCOUNT = text(
    "SELECT spent_usd, spent_tokens, held_usd, held_tokens FROM budget_account WHERE key = :key"
)
# What live holds hold against an account (expired ones no longer count).
LIVE_HELD = text(
    f"""
SELECT coalesce(sum(h.usd), 0), coalesce(sum(h.tokens), 0)
FROM budget_hold AS h
WHERE h.account = :key AND h.state = 'held' AND NOT {_stray("h")}
"""
)
