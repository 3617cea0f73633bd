"""Escalation policies, and running an incident through its service's policy.

A policy is ordered levels; each level pages users, whoever is on call on a schedule, or a team's
members, then waits ``timeout_minutes`` before the next level. After the last level the policy runs
again ``repeat`` more times; then it is *exhausted* (the incident stays triggered; the timeline says
nobody acknowledged). Acknowledging or resolving the incident stops it at once, and notifications
still waiting (a person's rule "text me after 5 minutes") are cancelled.

The run is a row (:class:`~opsdesk.oncall.models.Escalation`) with the level that pages next and
when. :func:`run_due` claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
notify workers share them), pages, and moves each to its next step. The next step's time is the
previous step's *scheduled* time plus the timeout, so a late tick does not push every later level
late. Each person is paged once per step: :class:`~opsdesk.oncall.models.Page` has a unique key
on (incident, run, round, level, person), and a page's notifications are outbox messages whose
idempotency keys derive from the page, so a retried step sends nothing twice. Every step is on the
incident's timeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from opsdesk.audit import service as audit
from opsdesk.auth.models import Team, TeamMember, User
from opsdesk.core.actor import Actor
from opsdesk.core.errors import conflict, invalid, not_found
from opsdesk.oncall import service as schedules
from opsdesk.oncall.models import Escalation, EscalationLevel, EscalationPolicy, Page, Schedule
from opsdesk.oncall.schemas import LevelIn, PolicyIn, PolicyUpdate

log = logging.getLogger("opsdesk.oncall")

ACTIVE = "active"
FIELDS = ["name", "description", "repeat"]


# --- policies ------------------------------------------------------------------------------------


def get(s: Session, policy_id: int) -> EscalationPolicy:
    p = s.get(EscalationPolicy, policy_id)
    if p is None:
        raise not_found("escalation policy", policy_id)
    return p


def get_by_name(s: Session, name: str) -> EscalationPolicy | None:
    return s.scalar(select(EscalationPolicy).where(EscalationPolicy.name == name))


def resolve(s: Session, ref: str) -> EscalationPolicy:
    p = get_by_name(s, ref)
    if p is None and ref.isdigit():
        p = s.get(EscalationPolicy, int(ref))
    if p is None:
        raise not_found("escalation policy", ref)
    return p


def list_policies(s: Session) -> list[EscalationPolicy]:
    return list(s.scalars(select(EscalationPolicy).order_by(EscalationPolicy.name)))


def _target(s: Session, t: Any, where: str) -> dict[str, Any]:
    if t.type == "user":
        user = s.get(User, t.id) if t.id else s.scalar(select(User).where(User.email == t.ref.lower()))
        if user is None:
            raise invalid(where, f"no user {t.id or t.ref!r}")
        return {"type": "user", "id": user.id}
    if t.type == "schedule":
        sched = s.get(Schedule, t.id) if t.id else schedules.get_by_name(s, t.ref)
        if sched is None:
            raise invalid(where, f"no schedule {t.id or t.ref!r}")
        return {"type": "schedule", "id": sched.id}
    team = s.get(Team, t.id) if t.id else s.scalar(select(Team).where(Team.name == t.ref))
    if team is None:
        raise invalid(where, f"no team {t.id or t.ref!r}")
    return {"type": "team", "id": team.id}


def _levels(s: Session, data: list[LevelIn]) -> list[EscalationLevel]:
    return [
        EscalationLevel(
            position=i,
            timeout_minutes=lvl.timeout_minutes,
            targets=[_target(s, t, f"levels.{i}.targets.{j}") for j, t in enumerate(lvl.targets)],
        )
        for i, lvl in enumerate(data)
    ]


def snapshot(p: EscalationPolicy) -> dict[str, Any]:
    out = audit.snapshot(p, FIELDS)
    out["levels"] = [{"timeout_minutes": lv.timeout_minutes, "targets": list(lv.targets)} for lv in p.levels]
    return out


def create(s: Session, data: PolicyIn, *, actor: Actor, now: datetime) -> EscalationPolicy:
    if get_by_name(s, data.name) is not None:
        raise conflict(f"an escalation policy named {data.name!r} exists")
    p = EscalationPolicy(
        name=data.name, description=data.description, repeat=data.repeat, created_at=now, updated_at=now
    )
    p.levels = _levels(s, data.levels)
    s.add(p)
    s.flush()
    audit.created(s, "escalation_policy", p.id, snapshot(p), actor=actor, at=now)
    return p


def update_policy(
    s: Session, policy_id: int, data: PolicyUpdate, *, actor: Actor, now: datetime
) -> EscalationPolicy:
    p = get(s, policy_id)
    before = snapshot(p)
    fields = data.model_fields_set
    if data.name is not None and data.name != p.name:
        if get_by_name(s, data.name) is not None:
            raise conflict(f"an escalation policy named {data.name!r} exists")
        p.name = data.name
    if "description" in fields and data.description is not None:
        p.description = data.description
    if "repeat" in fields and data.repeat is not None:
        p.repeat = data.repeat
    if "levels" in fields and data.levels is not None:
        new = _levels(s, data.levels)
        p.levels.clear()
        s.flush()
        p.levels.extend(new)
    p.updated_at = now
    s.flush()
    audit.updated(s, "escalation_policy", p.id, before, snapshot(p), actor=actor, at=now)
    return p


def delete(s: Session, policy_id: int, *, actor: Actor, now: datetime) -> None:
    from opsdesk.cmdb.models import Service

    p = get(s, policy_id)
    users = list(s.scalars(select(Service.name).where(Service.escalation_policy_id == p.id)))
    if users:
        raise conflict(f"escalation policy {p.name!r} is used by service(s) {', '.join(sorted(users))}")
    before = snapshot(p)
    s.delete(p)
    audit.deleted(s, "escalation_policy", policy_id, before, actor=actor, at=now)


def schedule_users(s: Session, schedule_id: int) -> list[str]:
    """Names of the policies that page this schedule (a schedule in use is not deleted)."""
    out = []
    for p in list_policies(s):
        if any(t["type"] == "schedule" and t["id"] == schedule_id for lv in p.levels for t in lv.targets):
            out.append(p.name)
    return out


def services_of(s: Session, policy_id: int) -> list[str]:
    from opsdesk.cmdb.models import Service

    return list(
        s.scalars(
            select(Service.name).where(Service.escalation_policy_id == policy_id).order_by(Service.name)
        )
    )


def target_name(s: Session, t: dict[str, Any]) -> str:
    kind, ident = t["type"], t["id"]
    if kind == "user":
        user = s.get(User, ident)
        return user.email if user is not None else f"user {ident} (deleted)"
    named = s.get(Schedule, ident) if kind == "schedule" else s.get(Team, ident)
    return named.name if named is not None else f"{kind} {ident} (deleted)"


def as_dict(s: Session, p: EscalationPolicy) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "repeat": p.repeat,
        "levels": [
            {
                "position": lv.position,
                "timeout_minutes": lv.timeout_minutes,
                "targets": [{**t, "name": target_name(s, t)} for t in lv.targets],
            }
            for lv in p.levels
        ],
        "services": services_of(s, p.id),
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


# --- running -------------------------------------------------------------------------------------


def escalation_of(s: Session, incident_id: int) -> Escalation | None:
    return s.scalar(select(Escalation).where(Escalation.incident_id == incident_id))


def escalation_dict(s: Session, esc: Escalation) -> dict[str, Any]:
    p = s.get(EscalationPolicy, esc.policy_id) if esc.policy_id else None
    return {
        "incident_id": esc.incident_id,
        "policy_id": esc.policy_id,
        "policy": p.name if p else None,
        "state": esc.state,
        "run": esc.run,
        "level": esc.level,
        "round": esc.round,
        "next_at": esc.next_at,
        "steps": esc.steps,
        "started_at": esc.started_at,
        "stopped_at": esc.stopped_at,
        "reason": esc.reason,
    }


def start(s: Session, incident_id: int, policy_id: int, *, now: datetime) -> Escalation:
    """Start (or, for a reopened incident, restart) escalating; the first level pages at once."""
    from opsdesk.incidents.service import add_timeline

    esc = escalation_of(s, incident_id)
    if esc is None:
        esc = Escalation(incident_id=incident_id, run=1, started_at=now)
        s.add(esc)
    else:
        esc.run += 1
        esc.started_at = now
    esc.policy_id = policy_id
    esc.state = ACTIVE
    esc.level = 0
    esc.round = 0
    esc.steps = 0
    esc.next_at = now
    esc.stopped_at = None
    esc.reason = ""
    s.flush()
    name = s.get(EscalationPolicy, policy_id)
    add_timeline(
        s,
        incident_id,
        kind="escalation",
        at=now,
        message=f"Escalation started: policy {name.name if name else policy_id}",
        data={"policy_id": policy_id, "run": esc.run},
    )
    return esc


def stop(
    s: Session, incident_id: int, *, state: str, reason: str, now: datetime, cancel: bool = True
) -> bool:
    """Stop an active escalation and (``cancel``: when the incident was acknowledged, resolved or
    merged) cancel its notifications not yet sent. True if one was running."""
    from opsdesk.incidents.service import add_timeline
    from opsdesk.notify import service as outbox

    esc = escalation_of(s, incident_id)
    cancelled = outbox.cancel_pages(s, incident_id, now=now) if cancel else 0
    if esc is None or esc.state != ACTIVE:
        return False
    esc.state = state
    esc.stopped_at = now
    esc.next_at = None
    esc.reason = reason
    msg = f"Escalation stopped: {reason}"
    if cancelled:
        msg += f"; {cancelled} notification(s) not yet sent were cancelled"
    add_timeline(s, incident_id, kind="escalation", at=now, message=msg, data={"state": state})
    return True


@dataclass
class _Tick:
    """What one pass of :func:`run_due` looked up, shared by the escalations it steps."""

    now: datetime
    base_url: str
    on_call: dict[int, list[User]] = field(default_factory=dict)
    members: dict[int, list[User]] = field(default_factory=dict)
    policies: dict[int, EscalationPolicy | None] = field(default_factory=dict)
    names: dict[tuple[str, int], str] = field(default_factory=dict)
    # (incident, run, round, level, user) of the pages that exist: a retried step pages nobody twice.
    paged: set[tuple[int, int, int, int, int]] = field(default_factory=set)
    # Pages made in this tick, with their incident and person: notified after one flush.
    made: list[tuple[dict[str, Any], Any, User]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    incidents: dict[int, Any] = field(default_factory=dict)  # held here: the identity map is weak


def run_due(s: Session, *, now: datetime, base_url: str = "", limit: int = 500) -> list[tuple[int, float]]:
    """Step every escalation due at ``now`` (up to ``limit``). Returns, for each step taken, the
    incident id and how late it ran against its scheduled time, in seconds."""
    q = (
        select(Escalation)
        .where(Escalation.state == ACTIVE, Escalation.next_at <= now)
        .order_by(Escalation.next_at)
        .limit(limit)
    )
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    from opsdesk.incidents.models import Incident, TimelineEntry
    from opsdesk.notify import rules

    due = list(s.scalars(q).all())
    if not due:
        return []
    tick = _Tick(now, base_url)
    ids = [e.incident_id for e in due]
    tick.incidents = {i.id: i for i in s.scalars(select(Incident).where(Incident.id.in_(ids)))}
    tick.paged = {
        (p.incident_id, p.run, p.round, p.level, p.user_id)
        for p in s.execute(
            select(Page.incident_id, Page.run, Page.round, Page.level, Page.user_id).where(
                Page.incident_id.in_(ids)
            )
        )
    }
    out = []
    for esc in due:
        assert esc.next_at is not None
        late = (now - esc.next_at).total_seconds()
        _step(s, esc, tick)
        out.append((esc.incident_id, late))
    # Written in batches (a storm steps hundreds of escalations in one tick): the timeline, the
    # pages (their ids key their notifications), then the notifications.
    s.flush()
    if tick.timeline:
        s.execute(insert(TimelineEntry), tick.timeline)
    if tick.made:
        ids = list(
            s.scalars(
                insert(Page).returning(Page.id, sort_by_parameter_order=True), [p for p, _, _ in tick.made]
            )
        )
        notifier = rules.PageNotifier(s, now=now, base_url=base_url)
        for page_id, (page, inc, user) in zip(ids, tick.made, strict=True):
            notifier.notify(SimpleNamespace(id=page_id, **page), inc, user)
        notifier.write()
    return out


def next_due(s: Session) -> datetime | None:
    return s.scalar(
        select(Escalation.next_at).where(Escalation.state == ACTIVE).order_by(Escalation.next_at).limit(1)
    )


def _policy(s: Session, tick: _Tick, policy_id: int | None) -> EscalationPolicy | None:
    if policy_id is None:
        return None
    if policy_id not in tick.policies:
        tick.policies[policy_id] = s.get(EscalationPolicy, policy_id)
    return tick.policies[policy_id]


def _step(s: Session, esc: Escalation, tick: _Tick) -> None:
    from opsdesk.incidents.models import Incident, IncidentStatus

    now = tick.now
    inc = tick.incidents.get(esc.incident_id) or s.get(Incident, esc.incident_id)
    if inc is None or inc.status != IncidentStatus.triggered.value or inc.merged_into_id is not None:
        state = inc.status if inc is not None and inc.status != IncidentStatus.triggered.value else "stopped"
        stop(s, esc.incident_id, state=state, reason=f"the incident is {state}", now=now)
        return
    policy = _policy(s, tick, esc.policy_id)
    if policy is None or not policy.levels:
        stop(
            s,
            esc.incident_id,
            state="stopped",
            reason="its escalation policy was deleted or is empty",
            now=now,
        )
        return
    levels = policy.levels
    if esc.level >= len(levels):
        if esc.round < policy.repeat:
            esc.round += 1
            esc.level = 0
        else:
            rounds = policy.repeat + 1
            stop(
                s,
                esc.incident_id,
                state="exhausted",
                reason=f"nobody acknowledged after {rounds} round(s) of policy {policy.name}",
                now=now,
                cancel=False,  # still triggered: pages already made keep trying to get through
            )
            return
    level = levels[esc.level]
    paged = _page_level(s, esc, inc, level, policy, tick)
    where = f"level {esc.level + 1} of {len(levels)}"
    if policy.repeat:
        where += f", round {esc.round + 1} of {policy.repeat + 1}"
    if paged:
        text = f"Escalation {where} ({policy.name}): paged " + ", ".join(
            f"{u.name} ({via})" for u, via in paged
        )
    else:
        text = f"Escalation {where} ({policy.name}): nobody to page (no one on call, or no active members)"
    tick.timeline.append(
        {
            "incident_id": inc.id,
            "at": now,
            "kind": "escalation",
            "actor": "opsdesk",
            "message": text,
            "data": {
                "level": esc.level,
                "round": esc.round,
                "run": esc.run,
                "users": [u.id for u, _ in paged],
            },
        }
    )
    assert esc.next_at is not None
    scheduled = esc.next_at
    esc.steps += 1
    esc.level += 1
    esc.next_at = scheduled + timedelta(minutes=level.timeout_minutes)
    if esc.next_at <= now:  # far behind (opsdesk was down): the next step waits its timeout from now
        esc.next_at = now + timedelta(minutes=level.timeout_minutes)


def _users_for(s: Session, target: dict[str, Any], tick: _Tick) -> tuple[list[User], str]:
    kind, ident = target["type"], target["id"]
    if kind == "user":
        u = s.get(User, ident)
        return ([u] if u is not None and u.active else []), "directly"
    if kind == "schedule":
        if ident not in tick.on_call:
            sched = s.get(Schedule, ident)
            tick.on_call[ident] = schedules.on_call_users(s, ident, tick.now) if sched else []
            tick.names[("schedule", ident)] = f"on call for {sched.name if sched else ident}"
        return tick.on_call[ident], tick.names[("schedule", ident)]
    if ident not in tick.members:
        tick.members[ident] = list(
            s.scalars(
                select(User)
                .join(TeamMember, TeamMember.user_id == User.id)
                .where(TeamMember.team_id == ident, User.active.is_(True))
                .order_by(User.id)
            )
        )
        team = s.get(Team, ident)
        tick.names[("team", ident)] = f"team {team.name if team else ident}"
    return tick.members[ident], tick.names[("team", ident)]


def _page_level(
    s: Session,
    esc: Escalation,
    inc: Any,
    level: EscalationLevel,
    policy: EscalationPolicy,
    tick: _Tick,
) -> list[tuple[User, str]]:
    seen: set[int] = set()
    paged: list[tuple[User, str]] = []
    for target in level.targets:
        users, via = _users_for(s, target, tick)
        for u in users:
            if u.id in seen:
                continue
            seen.add(u.id)
            paged.append((u, via))
            if (inc.id, esc.run, esc.round, esc.level, u.id) in tick.paged:
                continue  # this step was taken before (a retried transaction): no second page
            page = {
                "incident_id": inc.id,
                "user_id": u.id,
                "at": tick.now,
                "run": esc.run,
                "round": esc.round,
                "level": esc.level,
                "policy_id": policy.id,
                "team_id": inc.team_id,
                "via": via,
                "urgency": inc.urgency,
            }
            tick.made.append((page, inc, u))
    return paged
