"""The status page: public (``/status``, ``/status.json``, no login) and private (``/status/private``).

**What the public page shows, and nothing else**: the services marked ``public_status``; for each its
state and 90-day uptime; the open incidents on those services and the ones resolved in the last 7
days, each named after its service and impact (``checkout: partial outage``, never the incident's
own title, which comes from alert text) with its *public* status updates (time, status, message;
never the author). Private updates, timelines, alerts, labels, CIs and people never appear. The
page does not depend on who asks (``Cache-Control: public, max-age=30``).

**A service's state** is the worst of:

- its open incidents, by priority: P1 major outage, P2 partial outage, P3 to P5 degraded
  performance;
- its enabled monitors whose state is known (not unknown or paused): all down (or unreachable)
  major outage, some down partial outage, any degraded degraded performance.

Otherwise it is operational. The page's indicator is the worst state of its services (Statuspage's
``none`` / ``minor`` / ``major`` / ``critical``).

**Uptime**: per day, the service's bar shows its worst monitor that day (the share of failed checks,
``monitoring.stats.daily_bars``); the 90-day figure is time-weighted from the state history
(``stats.service_availability``: down while any monitor is down), or, with no state history in the
range, the share of successful checks in the bar.

The private page shows every service (public or not), every open incident with its real title and
all its updates (public and private, with authors), and the same bars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdesk.incidents.models import Incident, StatusUpdate
from opsdesk.incidents.service import OPEN
from opsdesk.web.deps import Ctx, page
from opsdesk.web.render import render

router = APIRouter()

BAR_DAYS = 90
RECENT = timedelta(days=7)
CACHE = "public, max-age=30"


class State(StrEnum):
    operational = "operational"
    degraded_performance = "degraded_performance"
    partial_outage = "partial_outage"
    major_outage = "major_outage"


ORDER = list(State)
LABEL = {
    State.operational: "Operational",
    State.degraded_performance: "Degraded performance",
    State.partial_outage: "Partial outage",
    State.major_outage: "Major outage",
}
INDICATOR = {
    State.operational: "none",
    State.degraded_performance: "minor",
    State.partial_outage: "major",
    State.major_outage: "critical",
}
OVERALL = {
    State.operational: "All systems operational",
    State.degraded_performance: "Degraded performance",
    State.partial_outage: "Partial outage",
    State.major_outage: "Major outage",
}
BY_PRIORITY = {
    "P1": State.major_outage,
    "P2": State.partial_outage,
    "P3": State.degraded_performance,
    "P4": State.degraded_performance,
    "P5": State.degraded_performance,
}


def worst(states: list[State]) -> State:
    return max(states, key=ORDER.index, default=State.operational)


def incident_state(inc: Incident) -> State:
    return BY_PRIORITY.get(inc.priority, State.degraded_performance)


def monitors_state(statuses: list[str]) -> State:
    from opsdesk.monitoring import stats

    known = [st for st in statuses if st not in stats.UNKNOWN]
    down = [st for st in known if st in stats.DOWN]
    if down and len(down) == len(known):
        return State.major_outage
    if down:
        return State.partial_outage
    if "degraded" in known:
        return State.degraded_performance
    return State.operational


# --- gathering -----------------------------------------------------------------------------------


@dataclass
class Component:
    id: int
    name: str
    public: bool
    state: State
    days: list[Any]  # monitoring.stats.Day, oldest first
    uptime: float | None  # 90-day availability, percent
    uptime_text: str
    bar: Markup
    monitors: list[Any] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABEL[self.state]


@dataclass
class IncidentEntry:
    incident: Incident
    service_id: int | None
    service_name: str
    state: State
    updates: list[StatusUpdate]

    @property
    def public_name(self) -> str:
        return f"{self.service_name}: {LABEL[self.state].lower()}"

    @property
    def impact(self) -> str:
        return INDICATOR[self.state]

    @property
    def phase(self) -> str:
        """Statuspage's incident status: the newest update's, else investigating / resolved."""
        if self.updates:
            return self.updates[0].status
        return "investigating" if self.incident.status in OPEN else "resolved"

    @property
    def updated_at(self) -> datetime:
        inc = self.incident
        times = [u.at for u in self.updates] + [inc.opened_at]
        if inc.resolved_at and inc.status not in OPEN:
            times.append(inc.resolved_at)
        return max(times)


@dataclass
class StatusPage:
    now: datetime
    components: list[Component]
    open: list[IncidentEntry]
    resolved: list[IncidentEntry]

    @property
    def state(self) -> State:
        return worst([c.state for c in self.components] + [e.state for e in self.open])

    @property
    def indicator(self) -> str:
        return INDICATOR[self.state]

    @property
    def description(self) -> str:
        return OVERALL[self.state]


def _service_days(per_monitor: list[list[Any]], first: date) -> list[Any]:
    """Per day, the worst monitor of the service (the largest share of failed checks)."""
    from opsdesk.monitoring import stats

    if not per_monitor:
        return [stats.Day(first + timedelta(days=i), 0, 0) for i in range(BAR_DAYS)]
    out = []
    for days in zip(*per_monitor, strict=True):
        measured = [d for d in days if d.checks]
        out.append(max(measured, key=lambda d: d.failures / d.checks) if measured else days[0])
    return out


def gather(s: Session, *, now: datetime, public: bool) -> StatusPage:
    from opsdesk.cmdb import service as cmdb
    from opsdesk.monitoring import service as monitoring
    from opsdesk.monitoring import stats
    from opsdesk.monitoring import views as monitoring_pages

    services = [svc for svc in cmdb.list_services(s, limit=100_000) if svc.public_status or not public]
    services.sort(key=lambda svc: svc.name.lower())
    ids = [svc.id for svc in services]
    names = {svc.id: svc.name for svc in services}

    q = select(Incident).where(Incident.merged_into_id.is_(None))
    open_q = q.where(Incident.status.in_(OPEN))
    recent_q = q.where(Incident.status.not_in(OPEN), Incident.resolved_at >= now - RECENT)
    if public:
        open_q = open_q.where(Incident.service_id.in_(ids))
        recent_q = recent_q.where(Incident.service_id.in_(ids))
    open_incs = list(s.scalars(open_q.order_by(Incident.opened_at.desc(), Incident.id.desc())))
    recent_incs = list(s.scalars(recent_q.order_by(Incident.resolved_at.desc(), Incident.id.desc())))

    updates: dict[int, list[StatusUpdate]] = {inc.id: [] for inc in open_incs + recent_incs}
    if updates:
        uq = select(StatusUpdate).where(StatusUpdate.incident_id.in_(list(updates)))
        if public:
            uq = uq.where(StatusUpdate.public.is_(True))
        for u in s.scalars(uq.order_by(StatusUpdate.at.desc(), StatusUpdate.id.desc())):
            updates[u.incident_id].append(u)

    def entry(inc: Incident) -> IncidentEntry:
        name = names.get(inc.service_id or 0)
        if name is None:  # private page only: an incident without a (listed) service
            name = "no service"
        return IncidentEntry(inc, inc.service_id, name, incident_state(inc), updates[inc.id])

    open_entries = [entry(inc) for inc in open_incs]
    by_service: dict[int, list[State]] = {}
    for e in open_entries:
        if e.service_id is not None:
            by_service.setdefault(e.service_id, []).append(e.state)

    monitors = {sid: monitoring.list_monitors(s, service_id=sid, limit=10_000) for sid in ids}
    today = now.date()
    bars = stats.daily_bars(s, [m.id for ms in monitors.values() for m in ms], today, BAR_DAYS)
    first = today - timedelta(days=BAR_DAYS - 1)
    components = []
    for svc in services:
        ms = monitors[svc.id]
        state = worst([*by_service.get(svc.id, []), monitors_state([m.status for m in ms if m.enabled])])
        days = _service_days([bars[m.id] for m in ms], first)
        avail = stats.service_availability(s, svc.id, now - timedelta(days=BAR_DAYS), now)
        uptime: float | None = avail.percent
        text = monitoring_pages.percent_text(avail.percent, avail.down_seconds == 0)
        if uptime is None:  # no state history in the range: the share of successful checks, if any
            uptime, text = stats.range_uptime(days), monitoring_pages.range_uptime_text(days)
        components.append(
            Component(
                id=svc.id,
                name=svc.name,
                public=svc.public_status,
                state=state,
                days=days,
                uptime=uptime,
                uptime_text=text,
                bar=monitoring_pages.uptime_bar(days),
                monitors=[] if public else ms,
            )
        )
    return StatusPage(now, components, open_entries, [entry(inc) for inc in recent_incs])


# --- JSON ----------------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _incident_json(e: IncidentEntry) -> dict[str, Any]:
    inc = e.incident
    return {
        "id": inc.id,
        "name": e.public_name,
        "status": e.phase,
        "impact": e.impact,
        "created_at": _iso(inc.opened_at),
        "updated_at": _iso(e.updated_at),
        "resolved_at": _iso(inc.resolved_at) if inc.status not in OPEN else None,
        "components": [{"id": e.service_id, "name": e.service_name}],
        "incident_updates": [
            {"id": u.id, "status": u.status, "body": u.message, "created_at": _iso(u.at)} for u in e.updates
        ],
    }


def public_json(sp: StatusPage, base_url: str) -> dict[str, Any]:
    return {
        "page": {
            "name": "Service status",
            "url": f"{base_url}/status",
            "time_zone": "UTC",
            "updated_at": _iso(sp.now),
        },
        "status": {"indicator": sp.indicator, "description": sp.description},
        "components": [
            {
                "id": c.id,
                "name": c.name,
                "status": c.state.value,
                "uptime_90d": c.uptime,
                "uptime_days": [{"date": d.day.isoformat(), "uptime": d.percent} for d in c.days],
            }
            for c in sp.components
        ],
        "incidents": [_incident_json(e) for e in sp.open],
        "resolved_incidents": [_incident_json(e) for e in sp.resolved],
    }


# --- routes --------------------------------------------------------------------------------------


def _public(request: Request) -> StatusPage:
    st = request.app.state
    with st.db.session() as s:
        return gather(s, now=st.clock.now(), public=True)


@router.get("/status", response_class=HTMLResponse)
def public_page(request: Request) -> HTMLResponse:
    """The public status page: no login, the same for everyone."""
    sp = _public(request)
    resp = render(request, None, "incidents/status.html", sp=sp, label=LABEL)
    resp.headers["Cache-Control"] = CACHE
    return resp


@router.get("/status.json")
def public_json_route(request: Request) -> JSONResponse:
    """The public status page as JSON (the shape of Statuspage's summary.json)."""
    sp = _public(request)
    body = public_json(sp, request.app.state.settings.base_url)
    return JSONResponse(body, headers={"Cache-Control": CACHE})


@router.get("/status/private", response_class=HTMLResponse)
def private_page(request: Request, ctx: Ctx = Depends(page())) -> HTMLResponse:
    with ctx.session() as s:
        sp = gather(s, now=ctx.now(), public=False)
        return render(request, ctx, "incidents/status_private.html", nav="status", sp=sp, label=LABEL)
