"""Silences (Alertmanager's): alerts whose labels match every matcher of a silence between its
``starts_at`` and ``ends_at`` are muted — kept, counted and shown, but they page nobody.

A silence is *pending* before ``starts_at``, *active* until ``ends_at``, then *expired*; the state
is derived from the time, never stored. Expiring a silence sets ``ends_at`` to now (a pending one
also gets ``starts_at`` = now), so it stays listed under "expired" with who made it and why.

Editing (Alertmanager's semantics): the comment and the end can be changed in place, and so can
anything of a pending silence. New matchers on an *active* silence expire it and create a new one
starting now with the same end and comment: alerts record the ids of the silences that muted them
(``alerts.muted_by``), and that record must keep meaning what it meant. An expired silence cannot
be edited (create a new one; the page's "Recreate" link prefills the form).

For the pipeline, once per batch :func:`active` (one query), then per alert :func:`silencing`
(pure: no database, regexes precompiled).

The labels a silence is matched against are an alert's labels plus ``source``, ``severity``,
``service`` and ``ci`` (names) where the labels do not set them (:func:`match_labels`, the same
rule as the pipeline).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsdesk.alerts import matchers as m
from opsdesk.alerts.admin_schemas import SilenceIn, SilenceUpdate, to_matchers
from opsdesk.alerts.matchers import Matcher
from opsdesk.alerts.models import Alert, EventStatus, Silence
from opsdesk.audit import service as audit
from opsdesk.core.actor import Actor
from opsdesk.core.errors import conflict, invalid, not_found

log = logging.getLogger("opsdesk.alerts")

STATES = ("active", "pending", "expired")
MAX_LENGTH = timedelta(days=366)
FIELDS = ["matchers", "starts_at", "ends_at", "comment", "created_by"]


def state(sil: Silence, now: datetime) -> str:
    """``pending``, ``active`` or ``expired`` at ``now``."""
    if sil.ends_at <= now:
        return "expired"
    return "pending" if sil.starts_at > now else "active"


def matchers_of(sil: Silence) -> list[Matcher]:
    return m.from_json(sil.matchers)


def _checked(matchers: list[Matcher]) -> list[Matcher]:
    try:
        m.require_selective(matchers)
    except ValueError as exc:
        raise invalid("matchers", str(exc)) from None
    return matchers


def _check_times(starts_at: datetime, ends_at: datetime, now: datetime) -> None:
    if ends_at <= now:
        raise invalid("ends_at", "must be in the future")
    if ends_at <= starts_at:
        raise invalid("ends_at", "must be after starts_at")
    if ends_at - starts_at > MAX_LENGTH:
        raise invalid("ends_at", "a silence lasts at most 366 days")


# --- reading -------------------------------------------------------------------------------------


def get(s: Session, silence_id: int) -> Silence:
    sil = s.get(Silence, silence_id)
    if sil is None:
        raise not_found("silence", silence_id)
    return sil


def _state_filter(q: Any, state_name: str, now: datetime) -> Any:
    if state_name == "active":
        return q.where(Silence.starts_at <= now, Silence.ends_at > now)
    if state_name == "pending":
        return q.where(Silence.starts_at > now, Silence.ends_at > now)
    if state_name == "expired":
        return q.where(Silence.ends_at <= now)
    raise invalid("state", f"{state_name!r} is not one of active, pending, expired")


def list_silences(
    s: Session, *, now: datetime, state: str | None = None, before_id: int | None = None, limit: int = 100
) -> list[Silence]:
    """Silences, newest first, optionally in one state."""
    q = select(Silence).order_by(Silence.id.desc()).limit(limit)
    if state:
        q = _state_filter(q, state, now)
    if before_id:
        q = q.where(Silence.id < before_id)
    return list(s.scalars(q))


def count_by_state(s: Session, now: datetime) -> dict[str, int]:
    return {
        name: s.scalar(_state_filter(select(func.count()).select_from(Silence), name, now)) or 0
        for name in STATES
    }


def as_dict(sil: Silence, now: datetime) -> dict[str, Any]:
    """The API's view of a silence (``SilenceOut``)."""
    try:
        text = m.format_matchers(matchers_of(sil))
    except ValueError:
        text = str(sil.matchers)
    return {
        "id": sil.id,
        "matchers": sil.matchers,
        "matchers_text": text,
        "state": state(sil, now),
        "starts_at": sil.starts_at,
        "ends_at": sil.ends_at,
        "created_by": sil.created_by,
        "comment": sil.comment,
        "created_at": sil.created_at,
        "updated_at": sil.updated_at,
    }


# --- writing -------------------------------------------------------------------------------------


def create(s: Session, data: SilenceIn, *, actor: Actor, now: datetime) -> Silence:
    matchers = _checked(to_matchers(data.matchers))
    starts_at = data.starts_at or now
    if data.duration is not None:
        if data.duration <= timedelta(0):
            raise invalid("duration", "must be positive")
        ends_at = starts_at + data.duration
    else:
        assert data.ends_at is not None  # the schema asks for one of them
        ends_at = data.ends_at
    _check_times(starts_at, ends_at, now)
    return _insert(s, matchers, starts_at, ends_at, data.comment, actor=actor, now=now)


def _insert(
    s: Session,
    matchers: list[Matcher],
    starts_at: datetime,
    ends_at: datetime,
    comment: str,
    *,
    actor: Actor,
    now: datetime,
) -> Silence:
    sil = Silence(
        matchers=m.to_json(matchers),
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment,
        created_by=actor.label[:254],
        created_at=now,
        updated_at=now,
    )
    s.add(sil)
    s.flush()
    audit.created(s, "silence", sil.id, audit.snapshot(sil, FIELDS), actor=actor, at=now)
    return sil


def update(s: Session, silence_id: int, data: SilenceUpdate, *, actor: Actor, now: datetime) -> Silence:
    """Change a silence; returns it, or the silence that replaced it (see the module's text)."""
    sil = get(s, silence_id)
    current = state(sil, now)
    if current == "expired":
        raise conflict(f"silence {sil.id} has expired; create a new one")
    changes = data.model_dump(exclude_unset=True)
    for f in ("matchers", "starts_at", "ends_at", "comment"):
        if f in changes and changes[f] is None:
            raise invalid(f, "must not be null")
    new_matchers = _checked(to_matchers(data.matchers)) if data.matchers is not None else None
    starts_at = sil.starts_at
    if data.starts_at is not None and data.starts_at != sil.starts_at:
        if current != "pending":
            raise invalid("starts_at", "an active silence has started; only a pending one can move its start")
        if data.starts_at < now:
            raise invalid("starts_at", "must not be in the past")
        starts_at = data.starts_at
    ends_at = data.ends_at or sil.ends_at
    comment = data.comment if data.comment is not None else sil.comment
    if new_matchers is not None and current == "active" and m.to_json(new_matchers) != sil.matchers:
        _check_times(now, ends_at, now)
        _expire(s, sil, actor=actor, now=now)
        return _insert(s, new_matchers, now, ends_at, comment, actor=actor, now=now)
    _check_times(starts_at, ends_at, now)
    before = audit.snapshot(sil, FIELDS)
    if new_matchers is not None:
        sil.matchers = m.to_json(new_matchers)
    sil.starts_at, sil.ends_at, sil.comment = starts_at, ends_at, comment
    sil.updated_at = now
    audit.updated(s, "silence", sil.id, before, audit.snapshot(sil, FIELDS), actor=actor, at=now)
    return sil


def _expire(s: Session, sil: Silence, *, actor: Actor, now: datetime) -> None:
    before = audit.snapshot(sil, FIELDS)
    if sil.starts_at > now:
        sil.starts_at = now
    sil.ends_at = now
    sil.updated_at = now
    audit.record(
        s,
        actor=actor,
        action="expire",
        entity_type="silence",
        entity_id=sil.id,
        before=before,
        after=audit.snapshot(sil, FIELDS),
        at=now,
    )


def expire(s: Session, silence_id: int, *, actor: Actor, now: datetime) -> Silence:
    """End a silence now (a pending one never starts)."""
    sil = get(s, silence_id)
    if state(sil, now) == "expired":
        raise conflict(f"silence {sil.id} has already expired")
    _expire(s, sil, actor=actor, now=now)
    return sil


# --- for the pipeline ----------------------------------------------------------------------------


def active(s: Session, now: datetime) -> list[tuple[int, list[Matcher]]]:
    """The silences active at ``now`` with their parsed matchers (one query). A stored silence
    whose matchers no longer parse is skipped and logged, never fatal to the pipeline."""
    out: list[tuple[int, list[Matcher]]] = []
    rows = s.execute(
        select(Silence.id, Silence.matchers)
        .where(Silence.starts_at <= now, Silence.ends_at > now)
        .order_by(Silence.id)
    )
    for sid, stored in rows:
        try:
            parsed = m.from_json(stored)
        except ValueError as exc:
            log.warning("silence %s skipped: %s", sid, exc)
            continue
        if parsed:
            out.append((sid, parsed))
    return out


def silencing(active: list[tuple[int, list[Matcher]]], labels: Mapping[str, str]) -> list[int]:
    """Ids of the silences in ``active`` that match ``labels`` (pure and fast: per alert)."""
    return [sid for sid, ms in active if all(x.matches(labels) for x in ms)]


def match_labels(
    labels: Mapping[str, Any],
    *,
    source: str,
    severity: str,
    service: str | None = None,
    ci: str | None = None,
) -> dict[str, str]:
    """An alert's labels as strings, plus ``source``, ``severity``, ``service`` and ``ci`` where the
    labels do not set them: what silences and rules match against."""
    out = {str(k): str(v) for k, v in labels.items()}
    out.setdefault("source", source)
    out.setdefault("severity", severity)
    if service:
        out.setdefault("service", service)
    if ci:
        out.setdefault("ci", ci)
    return out


def affected(
    s: Session, matchers: list[Matcher], now: datetime, *, limit: int = 10
) -> tuple[int, list[Alert]]:
    """How many currently firing alerts ``matchers`` would mute, and the newest ``limit`` of them."""
    from opsdesk.cmdb import service as cmdb

    if not matchers:
        return 0, []
    rows = s.execute(
        select(Alert.id, Alert.labels, Alert.source, Alert.severity, Alert.service_id, Alert.ci_id)
        .where(Alert.status == EventStatus.firing.value)
        .order_by(Alert.id.desc())
    ).all()
    services = {i: cmdb.get_service(s, i).name for i in {r[4] for r in rows if r[4] is not None}}
    cis = {i: cmdb.get_ci(s, i).name for i in {r[5] for r in rows if r[5] is not None}}
    hits: list[int] = []
    for aid, labels, source, severity, service_id, ci_id in rows:
        lab = match_labels(
            labels or {},
            source=source,
            severity=severity,
            service=services.get(service_id) if service_id is not None else None,
            ci=cis.get(ci_id) if ci_id is not None else None,
        )
        if all(x.matches(lab) for x in matchers):
            hits.append(aid)
    sample = list(s.scalars(select(Alert).where(Alert.id.in_(hits[:limit])).order_by(Alert.id.desc())))
    return len(hits), sample


def preview(s: Session, matchers: list[Matcher], now: datetime) -> int:
    """How many currently firing alerts these matchers would mute (Alertmanager's "affected
    alerts"), shown before a silence is saved."""
    return affected(s, matchers, now, limit=0)[0]
