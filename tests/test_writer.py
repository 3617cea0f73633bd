"""The group-commit writer: many concurrent requests, few transactions, nothing lost or mixed up."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from opsdesk.alerts import service as alerts
from opsdesk.alerts.models import Event
from opsdesk.runtime.writer import BatchWriter


def _event(i: int) -> alerts.NormalizedEvent:
    return alerts.NormalizedEvent(source="test", status="firing", severity="info", summary=f"event {i}")


def _counting_writer(
    db: Any, clock: Any, **kwargs: Any
) -> tuple[BatchWriter[alerts.NormalizedEvent, int], list[int]]:
    """A started events writer, and the number of items of each of its transactions."""
    calls: list[int] = []

    def write(s, items):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        return alerts.store_events(s, items, now=clock.now())

    writer: BatchWriter[alerts.NormalizedEvent, int] = BatchWriter(db, write, **kwargs)
    writer.start()
    return writer, calls


def _events_writer(db: Any, clock: Any, *, through_driver: bool) -> BatchWriter[alerts.NormalizedEvent, int]:
    """The events writer as the app builds it: through the driver's connection first (or only in a
    Session), retrying request by request in a Session."""
    driver = None
    if through_driver:

        def driver(dbapi, items):  # type: ignore[no-untyped-def]
            return alerts.insert_events(dbapi, db.engine.dialect, items, now=clock.now())

    return BatchWriter(
        db, lambda s, items: alerts.store_events(s, items, now=clock.now()), driver_write=driver
    )


async def test_concurrent_submits_are_committed_together_and_each_gets_its_own_ids(db, clock):
    writer, calls = _counting_writer(db, clock)
    try:
        results = await asyncio.gather(*(writer.submit([_event(i), _event(i)]) for i in range(200)))
    finally:
        writer.stop()
    assert sum(calls) == 400
    assert len(calls) < 200, "every request got its own transaction: no group commit happened"
    ids = [i for r in results for i in r]
    assert len(ids) == len(set(ids)) == 400
    with db.session() as s:
        rows = dict(s.execute(select(Event.id, Event.summary)).all())
    for n, (a, b) in enumerate(results):
        assert rows[a] == rows[b] == f"event {n}"


async def test_a_failing_request_fails_alone(db, clock):
    def write(s, items):  # type: ignore[no-untyped-def]
        if any(e.summary == "poison" for e in items):
            raise ValueError("poison")
        return alerts.store_events(s, items, now=clock.now())

    writer: BatchWriter[alerts.NormalizedEvent, int] = BatchWriter(db, write)
    writer.start()
    try:
        bad = alerts.NormalizedEvent(source="t", status="firing", severity="info", summary="poison")
        results = await asyncio.gather(
            writer.submit([_event(1)]),
            writer.submit([bad]),
            writer.submit([_event(2)]),
            return_exceptions=True,
        )
    finally:
        writer.stop()
    assert isinstance(results[1], ValueError)
    assert isinstance(results[0], list) and isinstance(results[2], list)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 2


async def test_submit_before_start_is_refused(db):
    writer: BatchWriter[int, int] = BatchWriter(db, lambda s, items: items)
    with pytest.raises(RuntimeError):
        await writer.submit([1])


async def test_a_service_deleted_after_its_name_was_resolved_is_kept_as_a_label(db, clock):
    """The fast path caches names for seconds: the optimistic write fails on the foreign key, and
    the careful retry keeps the event (and the others of the batch) with the id in a label."""
    from opsdesk.cmdb import service as cmdb
    from opsdesk.cmdb.schemas import ServiceIn
    from opsdesk.core.actor import SYSTEM

    with db.session() as s:
        gone = cmdb.create_service(s, ServiceIn(name="gone"), actor=SYSTEM, now=clock.now()).id
        kept = cmdb.create_service(s, ServiceIn(name="kept"), actor=SYSTEM, now=clock.now()).id
    with db.session() as s:
        cmdb.delete_service(s, gone, actor=SYSTEM, now=clock.now())
    tries: list[str] = []

    def careful(s, items):  # type: ignore[no-untyped-def]
        tries.append("careful")
        return alerts.store_events(s, items, now=clock.now())

    def optimistic(dbapi, items):  # type: ignore[no-untyped-def]
        tries.append("optimistic")
        return alerts.insert_events(dbapi, db.engine.dialect, items, now=clock.now())

    writer: BatchWriter[alerts.NormalizedEvent, int] = BatchWriter(db, careful, driver_write=optimistic)
    writer.start()
    try:
        stale = alerts.NormalizedEvent(
            source="t", status="firing", severity="info", summary="a", service_id=gone
        )
        fine = alerts.NormalizedEvent(
            source="t", status="firing", severity="info", summary="b", service_id=kept
        )
        results = await asyncio.gather(writer.submit([stale]), writer.submit([fine]))
    finally:
        writer.stop()
    assert tries[0] == "optimistic" and "careful" in tries  # the optimistic write failed, the careful one ran
    with db.session() as s:
        rows = {e.id: e for e in s.scalars(select(Event))}
    assert rows[results[0][0]].service_id is None
    assert rows[results[0][0]].labels == {"deleted_service_id": str(gone)}
    assert rows[results[1][0]].service_id == kept


@pytest.mark.parametrize("through", ["session", "driver"])
async def test_a_lost_connection_is_replaced_and_the_batch_still_committed(db, clock, through):
    """The writer keeps its connection between batches; when the database drops it (a restart on
    PostgreSQL, a closed handle on SQLite), the next batch reconnects instead of failing, whether
    it writes in a Session or through the driver's connection (as the events writer does)."""
    writer = _events_writer(db, clock, through_driver=through == "driver")
    writer.start()
    try:
        (first,) = await writer.submit([_event(1)])
        conn = writer._conn
        assert conn is not None
        if db.is_postgres:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            conn.rollback()
            with db.engine.connect() as other:
                other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        else:
            conn.connection.dbapi_connection.close()  # type: ignore[union-attr]
        (second,) = await writer.submit([_event(2)])
    finally:
        writer.stop()
    assert writer._conn is None  # closed when the thread stopped
    with db.session() as s:
        assert dict(s.execute(select(Event.id, Event.summary)).all()) == {first: "event 1", second: "event 2"}


async def test_on_sqlite_what_the_writer_commits_is_synced_to_disk(tmp_path):
    """Acknowledged means durable: the writer's connection syncs at each commit (FULL), while the
    other connections keep WAL's NORMAL. (PostgreSQL syncs every commit by default.)"""
    from opsdesk.core import migrate
    from opsdesk.core.db import Database

    db = Database(f"sqlite:///{tmp_path / 'opsdesk.db'}")
    migrate.upgrade(db.engine)
    writer: BatchWriter[int, int] = BatchWriter(
        db, lambda s, items: [s.connection().exec_driver_sql("PRAGMA synchronous").scalar() for _ in items]
    )
    writer.start()
    try:
        assert await writer.submit([1]) == [2]  # FULL
    finally:
        writer.stop()
    with db.session() as s:
        assert s.connection().exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    db.dispose()


async def test_requests_submitted_in_one_turn_of_the_loop_are_one_group_commit(db, clock):
    """Everything submitted while the event loop handles one turn (a burst read from many sockets)
    reaches the writer as one hand-over, so it is one transaction rather than a commit of the first
    request followed by a commit of the rest."""
    writer, calls = _counting_writer(db, clock)
    try:
        loop = asyncio.get_running_loop()
        futures = []
        for i in range(50):
            futures.append(writer.submit_nowait([_event(i)], loop))
            # The loop's thread lets go of the GIL between callbacks (it reads sockets): the writer
            # thread could run here, and must not commit the requests of a turn one by one.
            time.sleep(0.001)
        results = await asyncio.gather(*futures)
    finally:
        writer.stop()
    assert calls == [50]
    assert [len(r) for r in results] == [1] * 50


async def test_a_batch_larger_than_one_statement_keeps_every_event_with_its_own_id(db, clock):
    """The driver path inserts many rows per statement (on SQLite, a few hundred at a time): a batch
    spanning several statements still maps each event to its own id, in the order given."""
    n = 1_201
    writer = _events_writer(db, clock, through_driver=True)
    writer.start()
    try:
        loop = asyncio.get_running_loop()
        small = writer.submit_nowait([_event(-1)], loop)
        big = writer.submit_nowait([_event(i) for i in range(n)], loop)
        (first,), ids = await small, await big
    finally:
        writer.stop()
    assert len(set(ids)) == n and first not in ids
    with db.session() as s:
        rows = dict(s.execute(select(Event.id, Event.summary)).all())
    assert len(rows) == n + 1
    assert rows[first] == "event -1"
    assert [rows[i] for i in ids] == [f"event {i}" for i in range(n)]


async def _commits_after_a_group_of_three(db: Any, clock: Any, linger: float) -> list[int]:
    """Three requests in one turn of the loop (one commit of three), then three more, each in a
    turn of its own a few milliseconds apart: the transactions' sizes."""
    writer, calls = _counting_writer(db, clock, linger=linger)
    try:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(writer.submit_nowait([_event(i)], loop) for i in range(3)))
        futures = []
        for i in range(3):
            futures.append(writer.submit_nowait([_event(10 + i)], loop))
            await asyncio.sleep(0.005)
        await asyncio.wait_for(asyncio.gather(*futures), 60)
    finally:
        writer.stop()
    return calls


async def test_the_writer_waits_for_as_many_requests_as_its_last_commit_took(db, clock):
    """The senders of the last commit come back one by one: with a linger, one commit serves them
    all (like PostgreSQL's commit_delay with commit_siblings); without, each gets its own."""
    assert await _commits_after_a_group_of_three(db, clock, linger=30.0) == [3, 3]
    assert await _commits_after_a_group_of_three(db, clock, linger=0.0) == [3, 1, 1, 1]


async def test_the_wait_for_the_senders_of_the_last_commit_is_bounded(db, clock):
    """Fewer come back than the last commit took: the writer commits what it has after the linger."""
    writer, calls = _counting_writer(db, clock, linger=0.05)
    try:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(writer.submit_nowait([_event(i)], loop) for i in range(3)))
        await asyncio.wait_for(writer.submit([_event(9)]), 60)
    finally:
        writer.stop()
    assert calls == [3, 1]


async def test_a_lone_sender_does_not_wait_for_anyone(db, clock):
    """One request at a time: each commit took one, so the writer never waits (a linger of an
    hour would time the test out)."""
    writer, calls = _counting_writer(db, clock, linger=3600.0)
    try:
        for i in range(3):
            await asyncio.wait_for(writer.submit([_event(i)]), 60)
    finally:
        writer.stop()
    assert calls == [1, 1, 1]
