"""The pipeline's last stage: alerts become incidents (correlation).

Owned by the pipeline; people's actions on incidents are in :mod:`opsdesk.incidents.service`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdesk.core import metrics
from opsdesk.incidents.models import Incident, IncidentStatus
from opsdesk.incidents.service import OPEN, _notify, add_timeline, get_incident


def on_alert_fired(
    s: Session,
    *,
    alert_id: int,
    summary: str,
    severity: str,
    service_id: int | None,
    source: str,
    now: datetime,
) -> int:
    """Attach a new alert to its service's open incident, or open one. Returns the incident id."""
    inc = None
    if service_id is not None:
        inc = s.scalar(
            select(Incident)
            .where(Incident.service_id == service_id, Incident.status.in_(OPEN))
            .order_by(Incident.id.desc())
            .limit(1)
        )
    if inc is not None:
        add_timeline(
            s,
            inc.id,
            kind="alert",
            at=now,
            message=f"Alert joined: {summary}",
            data={"alert_id": alert_id, "source": source},
        )
        inc.updated_at = now
        return inc.id
    inc = Incident(
        title=summary[:500],
        status=IncidentStatus.triggered.value,
        severity=severity,
        service_id=service_id,
        opened_at=now,
        updated_at=now,
    )
    s.add(inc)
    s.flush()
    metrics.INCIDENTS_OPENED.inc()
    add_timeline(
        s,
        inc.id,
        kind="opened",
        at=now,
        message=f"Incident opened by alert from {source}: {summary}",
        data={"alert_id": alert_id, "source": source},
    )
    _notify(s, inc, "opened", now)
    return inc.id


def on_alert_resolved(
    s: Session, *, incident_id: int, alert_id: int, summary: str, still_firing: int, now: datetime
) -> None:
    inc = get_incident(s, incident_id)
    add_timeline(
        s,
        inc.id,
        kind="alert_resolved",
        at=now,
        message=f"Alert resolved: {summary}",
        data={"alert_id": alert_id},
    )
    inc.updated_at = now
    if still_firing == 0 and inc.status != IncidentStatus.resolved.value:
        inc.status = IncidentStatus.resolved.value
        inc.resolved_at = now
        inc.resolved_by_id = None
        add_timeline(
            s, inc.id, kind="resolved", at=now, message="Resolved automatically: every alert recovered"
        )
        _notify(s, inc, "resolved", now)
