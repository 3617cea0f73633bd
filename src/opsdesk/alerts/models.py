from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from opsdesk.core.db import Base, JSONType


class Severity(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"


class EventStatus(StrEnum):
    firing = "firing"
    resolved = "resolved"


class Event(Base):
    """One thing a source said, kept as received. ``processed_at`` is null until the pipeline ran it."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_pending", "processed_at", "id"),
        Index("ix_events_alert", "alert_id", "id"),  # an alert's events, newest first
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(100))
    fingerprint: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(String(1000))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="SET NULL"))
    ci_id: Mapped[int | None] = mapped_column(ForeignKey("cis.id", ondelete="SET NULL"))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    processed_at: Mapped[datetime | None]
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))


class EventBatch(Base):
    """A request's events as they were received, committed by the ingestion writer before its 202
    and turned into ``events`` rows by the pipeline (decision 0017).

    Its events' ids were taken when it was stored (they were in the 202): ``id`` is the first,
    and the others follow it, unless ``ids`` lists them (PostgreSQL, when other writers took ids
    in between). ``names`` holds the service and CI ids the request's names had then. ``error``
    says why the pipeline could not read it; it is then kept, and skipped."""

    __tablename__ = "event_batches"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    received_at: Mapped[datetime]
    count: Mapped[int]
    ids: Mapped[str | None] = mapped_column(String)
    names: Mapped[str] = mapped_column(String)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str | None] = mapped_column(String(2000))


class IdBlock(Base):
    """The last id taken for a table whose ids are handed out before its rows exist (SQLite:
    ``events``, see :class:`EventBatch`; PostgreSQL uses the table's sequence)."""

    __tablename__ = "id_blocks"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    last: Mapped[int]


class Alert(Base):
    """The deduplicated state of one fingerprint: firing until a resolved event arrives."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_fingerprint_status", "fingerprint", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), index=True)
    severity: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(String(1000))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="SET NULL"), index=True)
    ci_id: Mapped[int | None] = mapped_column(ForeignKey("cis.id", ondelete="SET NULL"), index=True)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    event_count: Mapped[int] = mapped_column(default=1)
    # The dedup/grouping rule that matched (``default`` when none did) and the correlation key.
    rule: Mapped[str] = mapped_column(String(100), default="default", server_default="default")
    group_key: Mapped[str | None] = mapped_column(String(500))
    reopened_count: Mapped[int] = mapped_column(default=0, server_default="0")
    # Muted by a silence or a maintenance window: kept and shown, but pages nobody.
    # ``muted_by`` records which: ``{"silences": [3], "maintenance": [2]}``.
    muted: Mapped[bool] = mapped_column(default=False, server_default=false())
    muted_by: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


class AlertRule(Base):
    """A dedup and grouping rule: alerts whose labels match ``matchers`` get this rule's fingerprint
    labels, group-by labels, group window and reopen window. The lowest ``position`` that matches
    wins; an alert no rule matches uses the settings' defaults and says ``rule = "default"``."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    position: Mapped[int] = mapped_column(default=100)
    enabled: Mapped[bool] = mapped_column(default=True)
    matchers: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    fingerprint_labels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    group_by: Mapped[list[str]] = mapped_column(JSONType, default=list)
    group_window_seconds: Mapped[int | None]
    reopen_window_seconds: Mapped[int | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Silence(Base):
    """Alertmanager-style silence: alerts whose labels match every matcher between ``starts_at`` and
    ``ends_at`` are muted. Expiring one early sets ``ends_at`` to now."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(primary_key=True)
    matchers: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    created_by: Mapped[str] = mapped_column(String(254))
    comment: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class NoiseDaily(Base):
    """Per day and source: events received, alerts opened, incidents opened, alerts muted."""

    __tablename__ = "alert_noise_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    events: Mapped[int] = mapped_column(default=0)
    alerts: Mapped[int] = mapped_column(default=0)
    incidents: Mapped[int] = mapped_column(default=0)
    muted: Mapped[int] = mapped_column(default=0)


class Integration(Base):
    """An alert source with its own key: ``POST /hooks/<key>`` (see :mod:`opsdesk.alerts.integrations`).

    Only the key's SHA-256 is stored; the optional HMAC secret is encrypted at rest (core.crypto).
    """

    __tablename__ = "integrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret_encrypted: Mapped[str | None] = mapped_column(String(500))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class SeenSignature(Base):
    """Signatures of signed hook requests accepted within the timestamp tolerance: the same signed
    request sent again (a replay) is refused. Rows expire with the tolerance."""

    __tablename__ = "seen_signatures"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
