"""Requests of many events are stored whole (one ``event_batches`` row, their ids taken before the
202) and turned into events rows by the pipeline before it processes them (decision 0017)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsdesk.alerts import service as alerts
from opsdesk.alerts.fastpath import WHOLE_FROM
from opsdesk.alerts.models import Alert, Event, EventBatch
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.models import CIClass
from opsdesk.cmdb.schemas import CIIn, ServiceIn
from opsdesk.core import metrics
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from tests.conftest import Account
from tests.support import stored_event_ids


@pytest.fixture
def shop(db: Database, clock: ManualClock) -> int:
    with db.session() as s:
        svc = cmdb.create_service(s, ServiceIn(name="shop"), actor=SYSTEM, now=clock.now())
        cmdb.create_ci(s, CIIn(name="db1", ci_class=CIClass.server), actor=SYSTEM, now=clock.now())
        return svc.id


def post(client: TestClient, who: Account, body: Any) -> list[int]:
    r = client.post("/api/v1/events", content=orjson.dumps(body), headers=who.headers)
    assert r.status_code == 202, r.text
    return r.json()["ids"]


def batches(db: Database) -> list[Any]:
    with db.session() as s:
        return list(s.execute(select(EventBatch.id, EventBatch.count, EventBatch.error)).all())


def rows(db: Database) -> dict[int, Event]:
    with db.session() as s:
        return {e.id: e for e in s.scalars(select(Event))}


def process(db: Database, clock: ManualClock) -> int:
    with db.session() as s:
        return alerts.process_pending(s, now=clock.now())


def many(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"summary": f"  disk full {i}  ", "service": "shop", "labels": {"n": str(i)}, **extra}
        for i in range(n)
    ]


def test_a_request_of_many_events_is_one_batch_and_the_pipeline_makes_the_same_events_of_it(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock, shop: int
) -> None:
    body = many(WHOLE_FROM + 5)
    body[0] |= {"ci": "db1", "severity": "critical", "fingerprint": "given"}
    body[1] |= {"ci": "not-in-the-cmdb", "status": "resolved", "source": "nagios"}
    ingested = metrics.EVENTS_INGESTED.labels("api")._value.get()
    ids = post(client, accounts["responder"], {"events": body})

    assert ids == list(range(ids[0], ids[0] + len(body)))
    assert batches(db) == [(ids[0], len(body), None)] and rows(db) == {}
    assert stored_event_ids(db) == ids
    assert metrics.EVENTS_INGESTED.labels("api")._value.get() == ingested + len(body) - 1
    with db.session() as s:
        assert alerts.pending_count(s) == len(body)

    assert process(db, clock) == len(body)
    assert batches(db) == []
    stored = rows(db)
    assert sorted(stored) == ids
    first, second, third = stored[ids[0]], stored[ids[1]], stored[ids[2]]
    assert (first.fingerprint, first.severity, first.ci_id is not None) == ("given", "critical", True)
    assert (second.source, second.status, second.ci_id) == ("nagios", "resolved", None)
    assert second.labels == {"n": "1", "ci": "not-in-the-cmdb"}  # an unknown CI kept as a label
    assert (third.summary, third.service_id, third.status, third.severity) == (
        "disk full 2",
        shop,
        "firing",
        "error",
    )
    assert third.fingerprint == alerts.compute_fingerprint("api", shop, {"n": "2"}, "disk full 2")
    assert third.received_at == clock.now()
    assert all(e.processed_at is not None for e in stored.values())
    assert [i for i, e in stored.items() if e.alert_id is None] == [ids[1]]  # resolved, never fired
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == len(body) - 1
        assert alerts.pending_count(s) == 0


def test_a_request_of_a_few_events_is_stored_as_rows(
    client: TestClient, accounts: dict[str, Account], db: Database, shop: int
) -> None:
    ids = post(client, accounts["responder"], many(WHOLE_FROM - 1))
    assert batches(db) == []
    assert sorted(rows(db)) == ids


def test_events_sent_after_a_batch_are_processed_after_it(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock, shop: int
) -> None:
    """A batch's events are older than a single event stored after it: however the pipeline splits
    its work, the alert ends resolved (the single event), not firing again (the batch)."""
    firing = [{"summary": "x", "service": "shop", "fingerprint": "same"}] * (WHOLE_FROM + 10)
    batch_ids = post(client, accounts["responder"], firing)
    (resolved_id,) = post(client, accounts["responder"], {**firing[0], "status": "resolved"})
    assert resolved_id > batch_ids[-1]
    with db.session() as s:
        # The pipeline taking very little at a time: the batch is read whole, the event after it
        # waits until every event of the batch was processed.
        assert alerts.process_pending(s, now=clock.now(), limit=5) == 5
    while process(db, clock):
        pass
    with db.session() as s:
        (alert,) = s.scalars(select(Alert))
        assert (alert.status, alert.event_count) == ("resolved", len(firing) + 1)


def test_ids_handed_out_for_batches_are_never_given_to_rows(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock, shop: int
) -> None:
    """Events stored as rows after a batch (the routed sources, monitors) get ids past the batch's
    even while its rows do not exist yet."""
    batch_ids = post(client, accounts["responder"], many(WHOLE_FROM))
    with db.session() as s:
        (row_id,) = alerts.store_events(
            s,
            [alerts.NormalizedEvent(source="monitor", status="firing", severity="error", summary="down")],
            now=clock.now(),
        )
    assert row_id > batch_ids[-1]
    more = post(client, accounts["responder"], many(WHOLE_FROM))
    assert more[0] > row_id
    while process(db, clock):
        pass
    assert sorted(rows(db)) == sorted([*batch_ids, row_id, *more])


def test_a_batch_with_listed_ids_gets_those_ids(db: Database, clock: ManualClock, shop: int) -> None:
    """On PostgreSQL another writer may take ids between a batch's: the batch then lists them."""
    body = orjson.dumps(many(3))
    with db.session() as s:
        s.add(
            EventBatch(
                id=1001,
                received_at=clock.now(),
                count=3,
                ids="[1001, 1005, 1009]",
                names=orjson.dumps({"services": {"shop": shop}, "cis": {}}).decode(),
                body=body,
            )
        )
    assert process(db, clock) == 3
    assert sorted(rows(db)) == [1001, 1005, 1009]
    assert [rows(db)[i].labels["n"] for i in (1001, 1005, 1009)] == ["0", "1", "2"]


def test_a_batch_the_pipeline_cannot_read_is_kept_and_does_not_hold_up_the_rest(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock, shop: int
) -> None:
    with db.session() as s:
        cur = s.connection().connection.driver_connection.cursor()
        first = alerts.reserve_event_ids(cur, s.get_bind().dialect, 2)[0]
        s.add(
            EventBatch(
                id=first,
                received_at=clock.now(),
                count=2,
                names='{"services": {}, "cis": {}}',
                body=b"[{not json",
            )
        )
    unreadable = metrics.EVENT_BATCHES_UNREADABLE._value.get()
    ids = post(client, accounts["responder"], many(WHOLE_FROM))
    assert ids[0] > first
    while process(db, clock):
        pass
    assert sorted(rows(db)) == ids
    ((ident, count, error),) = batches(db)
    assert (ident, count) == (first, 2) and error.startswith("OpsdeskError")
    assert metrics.EVENT_BATCHES_UNREADABLE._value.get() == unreadable + 1
    with db.session() as s:
        assert alerts.pending_count(s) == 0


def test_a_service_deleted_before_its_batch_is_read_is_kept_as_a_label(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock, shop: int
) -> None:
    ids = post(client, accounts["responder"], many(WHOLE_FROM))
    with db.session() as s:
        cmdb.delete_service(s, shop, actor=SYSTEM, now=clock.now())
    while process(db, clock):
        pass
    stored = rows(db)
    assert sorted(stored) == ids
    assert Counter(e.labels.get("deleted_service_id") for e in stored.values()) == {str(shop): len(ids)}
    assert all(e.service_id is None for e in stored.values())


def test_events_after_a_batch_another_pipeline_holds_wait_for_it(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock, shop: int
) -> None:
    """Two pipeline processes on PostgreSQL: while one holds the older batch, the other reads the
    newer one but processes none of its events, which must not overtake the older batch's."""
    if not db.is_postgres:
        pytest.skip("row locks between pipeline processes: PostgreSQL only (SQLite has one writer)")
    older = post(client, accounts["responder"], many(WHOLE_FROM))
    newer = post(client, accounts["responder"], many(WHOLE_FROM))
    with db.session() as holder:
        holder.execute(select(EventBatch).where(EventBatch.id == older[0]).with_for_update())
        assert process(db, clock) == 0
        assert sorted(rows(db)) == newer  # read, and waiting
    while process(db, clock):
        pass
    stored = rows(db)
    assert sorted(stored) == [*older, *newer]
    assert all(e.processed_at is not None for e in stored.values())


def test_the_backlog_gauges_count_the_events_of_batches_not_read_yet(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock, shop: int
) -> None:
    post(client, accounts["responder"], many(WHOLE_FROM))
    clock.advance(90)
    post(client, accounts["responder"], many(2))  # rows
    text = client.get("/metrics", headers=accounts["viewer"].headers).text
    assert f"opsdesk_events_pending {WHOLE_FROM + 2}.0" in text
    assert "opsdesk_events_pending_oldest_seconds 90.0" in text  # the batch's
    while process(db, clock):
        pass
    text = client.get("/metrics", headers=accounts["viewer"].headers).text
    assert "opsdesk_events_pending 0.0" in text
