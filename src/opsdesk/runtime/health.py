"""Gauges read from the database at scrape time: what is waiting, what is broken, and how stale.

A backlog of pending events or notifications is the first sign that a role has stopped; these
gauges let Prometheus alert on opsdesk itself.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from opsdesk.alerts import service as alerts
from opsdesk.core.clock import Clock
from opsdesk.core.db import Database
from opsdesk.incidents.models import Incident
from opsdesk.monitoring.models import Monitor
from opsdesk.notify.models import OutboxMessage


class StateCollector(Collector):
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.db.session() as s:
            incidents = dict(s.execute(select(Incident.status, func.count()).group_by(Incident.status)).all())
            monitors = dict(s.execute(select(Monitor.status, func.count()).group_by(Monitor.status)).all())
            outbox = dict(
                s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
            )
            pending, oldest = alerts.pending_events(s)
        g = GaugeMetricFamily("opsdesk_incidents", "Incidents by status", labels=["status"])
        for status in ("triggered", "acknowledged", "resolved"):
            g.add_metric([status], incidents.get(status, 0))
        yield g
        g = GaugeMetricFamily("opsdesk_monitors", "Monitors by state", labels=["status"])
        for status in ("up", "down", "unknown", "paused"):
            g.add_metric([status], monitors.get(status, 0))
        yield g
        g = GaugeMetricFamily(
            "opsdesk_outbox_messages", "Notifications by delivery status", labels=["status"]
        )
        for status in ("pending", "sent", "dead"):
            g.add_metric([status], outbox.get(status, 0))
        yield g
        yield GaugeMetricFamily(
            "opsdesk_events_pending", "Events stored but not yet processed", value=pending
        )
        # min() keeps the column's type, so this is an aware UTC datetime (or None).
        age = max(0.0, (self.clock.now() - oldest).total_seconds()) if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "opsdesk_events_pending_oldest_seconds", "Age of the oldest unprocessed event", value=age
        )


def state_registry(db: Database, clock: Clock) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(db, clock))
    return registry
