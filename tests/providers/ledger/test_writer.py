"""The write path: acknowledged = committed, cancellation-safe, never blocking, never silent."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal

import pytest

from spendgraph.providers.errors import LedgerError
from spendgraph.providers.ledger import Ledger, QueryStatus, WriterOptions

# Long enough that a test finishing quickly proves something other than the
# linger running out ended the wait.
LONG_LINGER = WriterOptions(linger_s=120)


def count_calls(kit, url: str) -> int:
    return kit.execute_raw(url, "SELECT count(*) FROM call")[0][0]


async def test_200_concurrent_record_calls_are_all_written(ledger: Ledger, ledger_url, kit):
    query = kit.query()
    await ledger.open_query(query)
    records = [kit.call(query_id=query.id, attempt=i) for i in range(200)]

    await asyncio.gather(*(ledger.record_call(r) for r in records))

    # Acknowledged means committed: visible to another connection, no flush needed.
    assert count_calls(kit, ledger_url) == 200
    assert {c.id for c in ledger.calls_for_query(query.id)} == {r.id for r in records}


async def test_a_cancelled_caller_still_gets_its_row(ledger: Ledger, ledger_url, kit):
    record = kit.call()
    task = asyncio.create_task(ledger.record_call(record))
    await asyncio.sleep(0)  # the task enqueues, then waits for the commit
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ledger.flush()
    assert [c.id for c in ledger.iter_calls()] == [record.id]


async def test_cancelled_while_the_database_is_busy(ledger: Ledger, ledger_url, kit):
    record = kit.call()
    with kit.write_lock(ledger_url):
        started = time.perf_counter()
        task = asyncio.create_task(ledger.record_call(record))
        await asyncio.sleep(0)
        enqueue_took = time.perf_counter() - started
        await asyncio.sleep(0.2)
        assert not task.done(), "record_call must wait for the commit"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert count_calls(kit, ledger_url) == 0
    ledger.flush()
    assert count_calls(kit, ledger_url) == 1
    # The event loop was never held up by the locked database.
    assert enqueue_took < 1.0  # a blocking write would wait for the lock (30 s)


async def test_a_bad_row_fails_alone(ledger: Ledger, ledger_url, kit, caplog):
    good = [kit.call(attempt=i) for i in range(5)]
    bad = kit.call(query_id="no-such-query")  # violates the foreign key
    with kit.write_lock(ledger_url):
        # Queued together while the database is busy, so they share a batch.
        futures = [ledger.submit_call(r) for r in (*good[:2], bad, *good[2:])]
    ledger.flush()

    errors = [f.exception() for f in futures]
    assert [e is None for e in errors] == [True, True, False, True, True, True]
    assert isinstance(errors[2], LedgerError)
    assert "writing call failed" in str(errors[2])
    assert {c.id for c in ledger.iter_calls()} == {r.id for r in good}
    assert ledger.unwritten() == (bad,)
    assert "retrying row by row" in caplog.text


async def test_a_failing_database_surfaces_to_every_caller(ledger: Ledger, ledger_url, kit):
    await ledger.record_call(kit.call())
    kit.execute_raw(ledger_url, "DROP TABLE call")
    lost = [kit.call() for _ in range(20)]
    results = await asyncio.gather(*(ledger.record_call(r) for r in lost), return_exceptions=True)
    assert all(isinstance(r, LedgerError) for r in results)
    assert "writing call failed" in str(results[0])
    assert set(ledger.unwritten()) == set(lost)


async def test_closing_an_unknown_query_is_an_error(ledger: Ledger):
    with pytest.raises(LedgerError, match="no such query"):
        await ledger.close_query("nope", QueryStatus.OK)


async def test_calls_follow_their_query_even_unawaited(ledger: Ledger, kit):
    # Submitted back to back without waiting: the queue keeps the query first.
    query = kit.query()
    futures = [ledger.submit_open_query(query)]
    futures += [ledger.submit_call(kit.call(query_id=query.id)) for _ in range(50)]
    futures.append(ledger.submit_close_query(query.id, QueryStatus.OK))
    for future in futures:
        future.result(timeout=30)
    summary = ledger.query_summary(query.id)
    assert (summary.spend.calls, summary.query.status) == (50, QueryStatus.OK)


def test_sync_threads_can_submit(ledger: Ledger, kit):
    def work():
        futures = [ledger.submit_call(kit.call()) for _ in range(50)]
        ledger.flush(timeout=30)
        assert all(f.done() and f.exception() is None for f in futures)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(list(ledger.iter_calls())) == 200


def test_close_writes_everything_and_is_idempotent(ledger_url, kit):
    ledger = Ledger.open(ledger_url)
    futures = [ledger.submit_call(kit.call()) for _ in range(300)]
    ledger.close()
    assert all(f.done() and f.exception() is None for f in futures)
    ledger.close()
    ledger.flush()  # nothing left to flush: a no-op, not an error
    with pytest.raises(LedgerError, match="closed"):
        ledger.submit_call(kit.call())
    with pytest.raises(LedgerError, match="closed"):
        ledger.query_summary("anything")
    assert count_calls(kit, ledger_url) == 300


async def test_async_context_manager_and_aflush(ledger_url, kit):
    async with Ledger.open(ledger_url) as ledger:
        ledger.submit_call(kit.call())
        await ledger.aflush()
        assert count_calls(kit, ledger_url) == 1
    with pytest.raises(LedgerError, match="closed"):
        await ledger.record_call(kit.call())


async def test_two_ledgers_share_one_database(ledger_url, kit):
    with Ledger.open(ledger_url) as first, Ledger.open(ledger_url) as second:
        await asyncio.gather(
            *(ledger.record_call(kit.call()) for _ in range(150) for ledger in (first, second))
        )
        assert len(list(first.iter_calls())) == 300
        assert len(list(second.iter_calls())) == 300


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from decimal import Decimal
    from spendgraph.providers.ledger import CallRecord, CallStatus, EndpointInfo, Ledger
    from spendgraph.providers.usage import Usage

    async def main(url, n):
        with Ledger.open(url) as ledger:
            endpoint = EndpointInfo("child", "m")
            await asyncio.gather(*(
                ledger.record_call(CallRecord(endpoint, CallStatus.OK, Usage(1, 0, 1),
                                              Decimal("0.000001"), "p1"))
                for _ in range(n)
            ))

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_a_second_process_writes_the_same_sqlite_file(sqlite_url, kit):
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", _CHILD, sqlite_url, "400")
    with Ledger.open(sqlite_url) as ledger:
        for _ in range(8):
            await asyncio.gather(*(ledger.record_call(kit.call()) for _ in range(50)))
        assert await child.wait() == 0
        endpoints = {g.key: g.spend.calls for g in ledger.summary_by("endpoint")}
    assert endpoints == {"child": 400, kit.B200.name: 400}


_EXIT_WITHOUT_CLOSE = textwrap.dedent(
    """
    import sys
    from decimal import Decimal
    from spendgraph.providers.ledger import CallRecord, CallStatus, EndpointInfo, Ledger
    from spendgraph.providers.usage import Usage

    ledger = Ledger.open(sys.argv[1])
    for _ in range(500):
        ledger.submit_call(CallRecord(EndpointInfo("e", "m"), CallStatus.OK, Usage(1, 0, 1),
                                      Decimal("0.000001"), "p1"))
    # No flush, no close: the interpreter's exit must still drain the queue.
    """
)


def test_rows_queued_at_interpreter_exit_are_written(sqlite_url, kit):
    subprocess.run([sys.executable, "-c", _EXIT_WITHOUT_CLOSE, sqlite_url], check=True, timeout=60)
    assert count_calls(kit, sqlite_url) == 500


def test_the_writer_thread_starts_lazily_and_stops_on_close(ledger_url, kit):
    def writers() -> int:
        return sum(t.name == "spendgraph-ledger-writer" for t in threading.enumerate())

    before = writers()
    with Ledger.open(ledger_url) as ledger:
        assert ledger.list_queries() == []  # an audit-only ledger starts no thread
        assert writers() == before
        ledger.submit_call(kit.call()).result(timeout=30)
        assert writers() == before + 1
    assert writers() == before


def test_batches_take_the_fast_path_and_read_back_exactly(ledger_url):
    from decimal import Decimal

    from spendgraph.providers.ledger import (
        CallRecord,
        CallStatus,
        EndpointInfo,
        Ledger,
        QueryRecord,
        QueryStatus,
    )
    from spendgraph.providers.usage import Usage, UsageSource

    with Ledger.open(ledger_url) as ledger:
        query = QueryRecord(app="fast", budget_usd=Decimal("0.5"))
        ledger.submit_open_query(query)
        record = CallRecord(
            endpoint=EndpointInfo("e", "m", "B200", "nvfp4", "sim"),
            status=CallStatus.OK,
            usage=Usage(7, 3, 5, 1, UsageSource.COUNTED),
            cost_usd=Decimal("0.000000123456789012"),
            price_version="v1",
            query_id=query.id,
            agent_path="a/b",
        )
        ledger.submit_call(record)
        ledger.submit_close_query(query.id, QueryStatus.OK)
        ledger.flush()
        fast = ledger._writer._fast
        assert fast is not None and fast._connection is not None  # no fallback happened
        (back,) = ledger.calls_for_query(query.id)
        assert back == record
        summary = ledger.query_summary(query.id)
        assert summary.query.status is QueryStatus.OK and summary.query.finished_at is not None
        assert summary.spend.cost == Decimal("0.000000123456789012")


def test_unwaited_rows_linger_until_someone_waits(ledger_url, kit):
    with Ledger.open(ledger_url, writer=LONG_LINGER) as ledger:
        futures = [ledger.submit_call(kit.call()) for _ in range(3)]
        time.sleep(0.5)
        assert count_calls(kit, ledger_url) == 0  # still waiting for company
        assert not any(f.done() for f in futures)
        ledger.flush(timeout=30)  # a waited job ends the linger at once
        assert count_calls(kit, ledger_url) == 3
        assert all(f.done() and f.exception() is None for f in futures)


async def test_a_query_close_commits_its_lingering_call_rows(ledger_url, kit):
    async with Ledger.open(ledger_url, writer=LONG_LINGER) as ledger:
        query = kit.query()
        await ledger.open_query(query)
        for attempt in range(5):
            ledger.submit_call(kit.call(query_id=query.id, attempt=attempt + 1))
        await asyncio.wait_for(ledger.close_query(query.id, QueryStatus.OK), timeout=30)
        summary = ledger.query_summary(query.id)
        assert (summary.spend.calls, summary.query.status) == (5, QueryStatus.OK)


def test_close_writes_lingering_rows_at_once(ledger_url, kit):
    ledger = Ledger.open(ledger_url, writer=LONG_LINGER)
    futures = [ledger.submit_call(kit.call()) for _ in range(10)]
    ledger.close(timeout=30)
    assert all(f.done() and f.exception() is None for f in futures)
    assert count_calls(kit, ledger_url) == 10


def test_a_large_batch_is_inserted_in_chunks_and_reads_back_exactly(ledger_url, kit):
    # 1000 rows in one batch (SQLite: multi-row INSERTs of 256 (x3), 128, 64, 32 and
    # 8 rows; PostgreSQL: one COPY), every value distinct so a row landing in the
    # wrong place would show, with text COPY must escape.
    records = [
        kit.call(
            attempt=i + 1,
            agent_path=f'agent/{i}\t\\N\n\\\\ "é"',
            cost_usd=Decimal(i) / 10**9,
            prompt_text=None if i % 3 else f"line one\nline\ttwo \\. {i}",
        )
        for i in range(1000)
    ]
    with Ledger.open(ledger_url, writer=LONG_LINGER) as ledger:
        for record in records:
            ledger.submit_call(record)
        ledger.flush(timeout=60)
        assert ledger._writer._fast._connection is not None  # no fallback to Core
        back = {record.id: record for record in ledger.iter_calls()}
    assert back == {record.id: record for record in records}


@pytest.mark.parametrize("apart", [False, True], ids=["one batch", "two batches"])
def test_a_call_recorded_twice_is_written_once(ledger_url, kit, apart):
    # A re-delivered durable activity records its attempt's row again: same id.
    record = kit.call()
    with Ledger.open(ledger_url, writer=LONG_LINGER) as ledger:
        first = ledger.submit_call(record)
        if apart:
            ledger.flush(timeout=30)
        second = ledger.submit_call(record)
        ledger.flush(timeout=30)
        assert first.exception() is None and second.exception() is None
        assert [call.id for call in ledger.iter_calls()] == [record.id]
        assert ledger.unwritten() == ()
        # The batch after the duplicate takes the fast path again.
        ledger.submit_call(kit.call())
        ledger.flush(timeout=30)
        assert ledger._writer._fast._connection is not None
        assert count_calls(kit, ledger_url) == 2


def test_stored_text_with_nul_characters_still_writes_the_row(ledger, kit):
    # PostgreSQL text cannot hold NUL; a hostile server's answer must not lose the call.
    record = kit.call(prompt_text="ask\x00me", completion_text="\x00evil\x00")
    ledger.submit_call(record)
    ledger.flush(timeout=30)
    assert ledger.unwritten() == ()
    (back,) = ledger.iter_calls()
    assert (back.prompt_text, back.completion_text) == ("ask\ufffdme", "\ufffdevil\ufffd")


async def test_a_query_closed_with_a_nul_in_its_error_is_closed(ledger, kit):
    query = kit.query()
    await ledger.open_query(query)
    await ledger.close_query(query.id, QueryStatus.ERROR, error="server said \x00boom")
    summary = ledger.query_summary(query.id)
    assert summary.query.status is QueryStatus.ERROR
    assert summary.query.error == "server said \ufffdboom"
