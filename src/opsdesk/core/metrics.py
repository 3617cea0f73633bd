"""opsdesk's own Prometheus counters, served at ``GET /metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_INGESTED = Counter(
    "opsdesk_events_ingested_total", "Events accepted and committed", ["source"], registry=REGISTRY
)
EVENTS_REJECTED = Counter(
    "opsdesk_events_rejected_total", "Event requests refused", ["reason"], registry=REGISTRY
)
EVENTS_LANE = Counter(
    "opsdesk_events_lane_requests_total",
    "POST /api/v1/events requests by how they were taken: in uvicorn's protocol (lane) or handed to "
    "the application (handed_over: a token or name not cached, or anything the lane does not take)",
    ["outcome"],
    registry=REGISTRY,
)
EVENT_BATCHES_UNREADABLE = Counter(
    "opsdesk_event_batches_unreadable_total",
    "Stored event batches the pipeline could not read (kept, and skipped)",
    registry=REGISTRY,
)
EVENTS_PROCESSED = Counter(
    "opsdesk_events_processed_total", "Events run through the alert pipeline", registry=REGISTRY
)
ALERTS_OPENED = Counter("opsdesk_alerts_opened_total", "Alerts that started firing", registry=REGISTRY)
INCIDENTS_OPENED = Counter("opsdesk_incidents_opened_total", "Incidents opened", registry=REGISTRY)
CHECKS_RUN = Counter("opsdesk_checks_total", "Monitor checks run", ["type", "outcome"], registry=REGISTRY)
CHECK_LAG = Histogram(
    "opsdesk_check_lag_seconds",
    "How late checks start after they fall due (scheduling lag)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
PINGS = Counter(
    "opsdesk_heartbeat_pings_total", "Heartbeat pings received, by HTTP status", ["status"], registry=REGISTRY
)
CHECK_SECONDS = Histogram(
    "opsdesk_check_duration_seconds", "Duration of monitor checks", ["type"], registry=REGISTRY
)
NOTIFICATIONS = Counter(
    "opsdesk_notifications_total", "Notification delivery attempts", ["channel", "outcome"], registry=REGISTRY
)
OUTBOX_PENDING = Gauge("opsdesk_outbox_pending", "Notifications waiting for delivery", registry=REGISTRY)
HTTP_REQUESTS = Counter(
    "opsdesk_http_requests_total", "HTTP requests served", ["method", "status"], registry=REGISTRY
)
WRITER_BATCH = Histogram(
    "opsdesk_writer_batch_size",
    "Items committed per batch by the ingestion writer",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    registry=REGISTRY,
)
