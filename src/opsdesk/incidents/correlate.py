"""The pipeline's last stage: alerts become incidents (correlation).

An alert that is not muted joins an incident, in this order:

1. **Same group key**: the newest open incident with the alert's group key (by service, CI,
   alert name or a rule's group-by labels; see :mod:`opsdesk.alerts.processing`). A rule with a
   group window only groups while that incident's last alert is within it; otherwise an open
   incident takes its group's alerts for as long as it is open.
2. **Topology**: the CMDB's relationships are a graph of what needs what. If a CI or service the
   alert's CI or service *needs* (directly or not) has a firing alert in an open incident that saw
   an alert within the group window, the alert joins that incident: the failing switch, database
   or storage is the cause, this alert a symptom. If instead open incidents hold alerts on things
   that need the alert's CI (the cause was reported after its symptoms), the alert joins the
   oldest of them and the others are merged into it.
3. Otherwise it opens a new incident, with the priority its severity gives
   (:mod:`opsdesk.incidents.priority`) and the service's owner team.

People merge and split incidents by hand as well (:mod:`opsdesk.incidents.service`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from opsdesk.alerts.models import Alert, EventStatus
from opsdesk.core import metrics
from opsdesk.incidents import priority as prio
from opsdesk.incidents.models import Incident, IncidentStatus
from opsdesk.incidents.service import OPEN, _notify, add_timeline, fold_into, get_incident

SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}

Graph = Callable[[Session], Any]


def _nodes(alert: Alert) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    if alert.ci_id is not None:
        out.append(("ci", alert.ci_id))
    if alert.service_id is not None:
        out.append(("service", alert.service_id))
    return out


def _incidents_with_alerts_on(
    s: Session, nodes: set[tuple[str, int]], *, since: datetime, exclude_alert: int
) -> list[int]:
    """Open, unmerged incidents that saw an alert since ``since`` and hold a firing alert on one of
    ``nodes``; oldest first."""
    ci_ids = [i for k, i in nodes if k == "ci"]
    svc_ids = [i for k, i in nodes if k == "service"]
    conds = []
    if ci_ids:
        conds.append(Alert.ci_id.in_(ci_ids))
    if svc_ids:
        conds.append(Alert.service_id.in_(svc_ids))
    if not conds:
        return []
    rows = s.scalars(
        select(Incident.id)
        .join(Alert, Alert.incident_id == Incident.id)
        .where(
            or_(*conds),
            Alert.status == EventStatus.firing.value,
            Alert.id != exclude_alert,
            Incident.status.in_(OPEN),
            Incident.merged_into_id.is_(None),
            Incident.last_alert_at >= since,
        )
        .distinct()
        .order_by(Incident.id)
    )
    return list(rows)


class Correlator:
    """Correlation for one pipeline batch (one transaction).

    It remembers the open incident of each group key it has looked up, and writes the timeline
    per incident once per batch ("12 alerts joined: …") rather than once per alert, so a storm
    costs a few statements, not a few per alert. Call :meth:`finish` before the commit: it writes
    those entries and resolves the incidents whose last firing alert recovered in this batch.
    """

    def __init__(self, s: Session, *, group_window: timedelta, graph: Graph, now: datetime) -> None:
        self.s = s
        self.group_window = group_window
        self.graph = graph
        self.now = now
        self.by_key: dict[str, Incident | None] = {}
        self.joined: dict[int, list[tuple[Alert, str]]] = {}
        self.resolved: dict[int, list[tuple[Alert, str]]] = {}

    def _open_for_key(self, key: str) -> Incident | None:
        if key not in self.by_key:
            # No autoflush: the alerts added so far do not change the answer (incidents this batch
            # opened are in by_key already), and flushing them here, a few at a time, cost more
            # than inserting the batch's new alerts together at the end.
            with self.s.no_autoflush:
                self.by_key[key] = self.s.scalar(
                    select(Incident)
                    .where(
                        Incident.group_key == key,
                        Incident.status.in_(OPEN),
                        Incident.merged_into_id.is_(None),
                    )
                    .order_by(Incident.id.desc())
                    .limit(1)
                )
        inc = self.by_key[key]
        if inc is not None and (inc.status not in OPEN or inc.merged_into_id is not None):
            return None
        return inc

    def attach(self, alert: Alert, *, same_key_window: timedelta | None, why: str = "") -> bool:
        """Put ``alert`` in an incident (see the module's docstring). Returns True when a new
        incident was opened."""
        s, now = self.s, self.now
        inc = self._open_for_key(alert.group_key) if alert.group_key else None
        if (
            inc is not None
            and same_key_window is not None
            and inc.last_alert_at is not None
            and inc.last_alert_at < now - same_key_window
        ):
            inc = None
        if inc is not None:
            self._join(inc, alert, why or "same group")
            return False
        nodes = _nodes(alert)
        if nodes:
            g = self.graph(s)
            up: set[tuple[str, int]] = set()
            down: set[tuple[str, int]] = set()
            for n in nodes:
                up |= g.upstream(n)
                down |= g.downstream(n)
                # What runs here fails with it: a pod's alert is its application's, a
                # hypervisor's its VMs' — so what they need counts as a cause too.
                for w in g.runs_here(n):
                    up |= g.upstream(w)
            up -= down
            since = now - self.group_window
            s.flush()  # the alerts of this batch count too
            causes = _incidents_with_alerts_on(s, up, since=since, exclude_alert=alert.id) if up else []
            if causes:
                inc = get_incident(s, causes[0])
                self._join(inc, alert, why or "it needs a CI or service already failing in this incident")
                return False
            symptoms = _incidents_with_alerts_on(s, down, since=since, exclude_alert=alert.id) if down else []
            if symptoms:
                inc = get_incident(s, symptoms[0])
                self._join(inc, alert, why or "what failed in this incident needs it: probable cause")
                if alert.ci_id is not None:
                    inc.ci_id = alert.ci_id
                for other in symptoms[1:]:
                    fold_into(
                        s,
                        inc,
                        get_incident(s, other),
                        now=now,
                        actor="opsdesk",
                        why=f"by correlation: {alert.summary}",
                    )
                    inc.last_alert_at = now
                return False
        inc = _open(s, alert, now, why)
        if alert.group_key:
            self.by_key[alert.group_key] = inc
        return True

    def _join(self, inc: Incident, alert: Alert, why: str) -> None:
        _join(self.s, inc, alert, self.now, why, timeline=False)
        self.joined.setdefault(inc.id, []).append((alert, why))

    def refired(self, alert: Alert) -> None:
        """A resolved alert fired again within its reopen window: back into its incident, which
        reopens if it had resolved; if that incident was closed or merged, correlate it afresh."""
        s, now = self.s, self.now
        inc = s.get(Incident, alert.incident_id) if alert.incident_id is not None else None
        if inc is None or inc.closed_at is not None or inc.merged_into_id is not None:
            alert.incident_id = None
            self.attach(alert, same_key_window=None, why="fired again")
            return
        inc.last_alert_at = now
        inc.updated_at = now
        if inc.status == IncidentStatus.resolved.value:
            inc.status = IncidentStatus.triggered.value
            inc.resolved_at = None
            inc.resolved_by_id = None
            inc.acknowledged_at = None
            inc.acknowledged_by_id = None
            inc.reopened_count += 1
            add_timeline(
                s,
                inc.id,
                kind="reopened",
                at=now,
                message=f"Reopened: the alert fired again within its reopen window: {alert.summary}",
                data={"alert_id": alert.id},
            )
            _notify(s, inc, "reopened", now)
        else:
            self.joined.setdefault(inc.id, []).append((alert, "fired again"))
        if inc.group_key:
            self.by_key[inc.group_key] = inc

    def alert_resolved(self, alert: Alert, summary: str) -> None:
        assert alert.incident_id is not None
        self.resolved.setdefault(alert.incident_id, []).append((alert, summary))

    def finish(self) -> None:
        """Write the batch's timeline entries; resolve incidents left with no firing alert."""
        s, now = self.s, self.now
        s.flush()
        for inc_id, items in self.joined.items():
            _summarize(s, inc_id, "alert", "joined", [(a, f"({w}) {a.summary}") for a, w in items], now)
        for inc_id, items in self.resolved.items():
            _summarize(s, inc_id, "alert_resolved", "resolved", [(a, text) for a, text in items], now)
        if self.resolved:
            ids = list(self.resolved)
            firing = dict(
                s.execute(
                    select(Alert.incident_id, func.count())
                    .where(Alert.incident_id.in_(ids), Alert.status == EventStatus.firing.value)
                    .group_by(Alert.incident_id)
                ).all()
            )
            for inc_id in ids:
                inc = get_incident(s, inc_id)
                inc.updated_at = now
                if firing.get(inc_id) or inc.status == IncidentStatus.resolved.value:
                    continue
                inc.status = IncidentStatus.resolved.value
                inc.resolved_at = now
                inc.resolved_by_id = None
                add_timeline(
                    s,
                    inc.id,
                    kind="resolved",
                    at=now,
                    message="Resolved automatically: every alert recovered",
                )
                _draft_postmortem(s, inc, now)
                _notify(s, inc, "resolved", now)
        self.joined.clear()
        self.resolved.clear()


def _summarize(
    s: Session, inc_id: int, kind: str, verb: str, items: list[tuple[Alert, str]], now: datetime
) -> None:
    """One timeline entry for what happened to an incident's alerts in one batch."""
    if len(items) == 1:
        _, text = items[0]
        message = f"Alert {verb} {text}" if verb == "joined" else f"Alert {verb}: {text}"
    else:
        shown = "; ".join(text for _, text in items[:5])
        more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
        message = f"{len(items)} alerts {verb}: {shown}{more}"
    add_timeline(
        s,
        inc_id,
        kind=kind,
        at=now,
        message=message[:4000],
        data={"alert_ids": [a.id for a, _ in items[:200]], "count": len(items)},
    )


def attach(
    s: Session,
    alert: Alert,
    *,
    same_key_window: timedelta | None,
    group_window: timedelta,
    graph: Graph,
    now: datetime,
    why: str = "",
) -> bool:
    """:meth:`Correlator.attach` for a single alert outside a batch."""
    c = Correlator(s, group_window=group_window, graph=graph, now=now)
    opened = c.attach(alert, same_key_window=same_key_window, why=why)
    c.finish()
    return opened


def _join(s: Session, inc: Incident, alert: Alert, now: datetime, why: str, *, timeline: bool = True) -> None:
    alert.incident_id = inc.id
    inc.last_alert_at = now
    inc.updated_at = now
    if timeline:
        add_timeline(
            s,
            inc.id,
            kind="alert",
            at=now,
            message=f"Alert joined ({why}): {alert.summary}",
            data={"alert_id": alert.id, "source": alert.source, "rule": alert.rule},
        )
    if SEVERITY_RANK.get(alert.severity, 2) < SEVERITY_RANK.get(inc.severity, 2):
        old = inc.severity
        inc.severity = alert.severity
        impact, urgency, p = prio.from_severity(alert.severity)
        if p < inc.priority:  # "P1" < "P3": more urgent
            inc.impact, inc.urgency, inc.priority = impact, urgency, p
        add_timeline(
            s,
            inc.id,
            kind="severity",
            at=now,
            message=(
                f"Severity raised from {old} to {alert.severity} by a joining alert; priority {inc.priority}"
            ),
        )


def _open(s: Session, alert: Alert, now: datetime, why: str) -> Incident:
    from opsdesk.cmdb import service as cmdb

    impact, urgency, p = prio.from_severity(alert.severity)
    team_id = None
    if alert.service_id is not None:
        team_id = cmdb.get_service(s, alert.service_id).owner_team_id
    inc = Incident(
        title=alert.summary[:500],
        status=IncidentStatus.triggered.value,
        severity=alert.severity,
        impact=impact,
        urgency=urgency,
        priority=p,
        service_id=alert.service_id,
        ci_id=alert.ci_id,
        team_id=team_id,
        tags=[],
        group_key=alert.group_key,
        last_alert_at=now,
        reopened_count=0,
        opened_at=now,
        updated_at=now,
    )
    s.add(inc)
    s.flush()
    alert.incident_id = inc.id
    metrics.INCIDENTS_OPENED.inc()
    add_timeline(
        s,
        inc.id,
        kind="opened",
        at=now,
        message=f"Incident opened by alert from {alert.source}: {alert.summary}"
        + (f" ({why})" if why else ""),
        data={"alert_id": alert.id, "source": alert.source, "rule": alert.rule},
    )
    _notify(s, inc, "opened", now)
    return inc


def _draft_postmortem(s: Session, inc: Incident, now: datetime) -> None:
    from opsdesk.incidents import postmortems

    postmortems.ensure_draft(s, inc, now=now)
