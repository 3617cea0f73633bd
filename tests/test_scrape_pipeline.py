"""The whole scrape path through the prober: a `prometheus` monitor on a real node_exporter;
every sample lands in the metrics store labelled with its monitor, a threshold rule that holds
raises its own alert, and a rule that stops holding resolves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from opsdesk.alerts.models import Event
from opsdesk.core.actor import SYSTEM
from opsdesk.metrics.sqlstore import SQLMetricsStore
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.scheduler import Scheduler
from opsdesk.monitoring.schemas import MonitorIn, MonitorUpdate
from tests.test_checks_prometheus import node_exporter  # noqa: F401  (the fixture)


async def test_scrapes_are_stored_and_rules_alert(db, clock, node_exporter):  # noqa: F811
    rules = [{"name": "always", "expr": "node_load1 >= 0", "severity": "warning"}]
    with db.session() as s:
        mid = monitoring.create_monitor(
            s,
            MonitorIn(name="node1", type="prometheus", target=node_exporter, config={"rules": rules}),
            actor=SYSTEM,
            now=clock.now(),
        ).id
    store = SQLMetricsStore(db)
    sched = Scheduler(db, clock, store=store)
    try:
        await sched.tick()
        with db.session() as s:
            m = monitoring.get_monitor(s, mid)
            assert m.status == "up", m.last_message
        names = {n for n, _ in store.series("node_")}
        assert {"node_load1", "node_cpu_seconds_total", "node_filesystem_avail_bytes"} <= names
        (load,) = [x for x in store.series("node_load1") if x[0] == "node_load1"]
        labels = dict(load[1])
        assert labels["job"] == "node1" and labels["instance"].startswith("127.0.0.1:")
        real_now = datetime.now(UTC)  # samples carry the scrape's wall-clock time, not the test clock
        up = store.query_range("up", {"job": "node1"}, real_now - timedelta(minutes=1), real_now)
        assert [p[1] for p in up[0].points] == [1.0]
        with db.session() as s:
            events = [(e.fingerprint, e.status) for e in s.scalars(select(Event).order_by(Event.id))]
        assert events == [(f'monitor:{mid}:rule:always{{instance="{labels["instance"]}"}}', "firing")]
        # The rule changes so that it no longer holds: its alert resolves on the next scrape.
        with db.session() as s:
            monitoring.update_monitor(
                s,
                mid,
                MonitorUpdate(config={"rules": [{"name": "always", "expr": "node_load1 < 0"}]}),
                actor=SYSTEM,
                now=clock.now(),
            )
        clock.advance(60)
        await sched.tick()
        with db.session() as s:
            statuses = [e.status for e in s.scalars(select(Event).order_by(Event.id))]
        assert statuses == ["firing", "resolved"]
    finally:
        await sched.close()
        store.close()
