"""Remote probes: opsdesk's checks run from other networks and push their results here.

A probe is registered for a *location* (``opsdesk probes create eu-west``: the token is shown
once). ``opsdesk probe --server URL --token T`` then fetches the monitors whose ``locations``
name that location, runs them on its own schedule, and posts results in order, each with a
sequence number; the server takes a result once (``Probe.last_seq``), so a replay after a lost
answer counts nothing twice. A monitor checked from several locations is down only when
``quorum`` of them each see ``failures_before_down`` failures in a row (service._location_verdict).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdesk.audit import service as audit
from opsdesk.core import crypto
from opsdesk.core.actor import Actor
from opsdesk.core.errors import conflict, invalid, not_found
from opsdesk.core.security import new_api_token, token_digest
from opsdesk.metrics.samples import Sample
from opsdesk.monitoring import service
from opsdesk.monitoring.checks.base import CheckOutcome, Finding
from opsdesk.monitoring.models import LOCAL, Monitor, Probe

LOCATION = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
MAX_RESULTS_PER_POST = 5000


def check_location(name: str, field: str = "location") -> str:
    if not LOCATION.match(name):
        raise invalid(field, "a location is 1-63 lowercase letters, digits, '.', '_' or '-'")
    return name


def create_probe(s: Session, location: str, *, actor: Actor, now: datetime) -> tuple[Probe, str]:
    check_location(location)
    if location == LOCAL:
        raise invalid("location", "'local' is opsdesk's own prober; name the remote location")
    if s.scalar(select(Probe).where(Probe.location == location)) is not None:
        raise conflict(f"a probe for location {location!r} already exists")
    plain = "odp_" + new_api_token()
    p = Probe(location=location, token_hash=token_digest(plain), created_at=now, last_address="", version="")
    p.last_seq = 0
    s.add(p)
    s.flush()
    audit.created(s, "probe", p.id, {"location": location}, actor=actor, at=now)
    return p, plain


def list_probes(s: Session) -> list[Probe]:
    return list(s.scalars(select(Probe).order_by(Probe.location)))


def get_probe(s: Session, probe_id: int) -> Probe:
    p = s.get(Probe, probe_id)
    if p is None:
        raise not_found("probe", probe_id)
    return p


def delete_probe(s: Session, probe_id: int, *, actor: Actor, now: datetime) -> None:
    p = get_probe(s, probe_id)
    audit.deleted(s, "probe", p.id, {"location": p.location}, actor=actor, at=now)
    s.delete(p)


def probe_for_token(s: Session, plain: str) -> Probe | None:
    return s.scalar(select(Probe).where(Probe.token_hash == token_digest(plain)))


def assignments(s: Session, location: str) -> list[dict[str, Any]]:
    """The enabled monitors this location runs, with their secrets decrypted for the probe."""
    out = []
    for m in s.scalars(select(Monitor).where(Monitor.enabled.is_(True)).order_by(Monitor.id)):
        if location not in m.locations or service.check_type(m.type).passive:
            continue
        config = dict(m.config)
        try:
            config.update({k: crypto.decrypt(v) for k, v in m.secrets.items()})
        except crypto.SecretUnreadable:
            continue  # the local prober reports it on the monitor; nothing a probe can do
        out.append(
            {
                "id": m.id,
                "name": m.name,
                "type": m.type,
                "target": m.target,
                "config": config,
                "interval_seconds": m.interval_seconds,
                "timeout_seconds": m.timeout_seconds,
                "version": m.updated_at.isoformat(),
            }
        )
    return out


class SampleIn(BaseModel):
    name: str = Field(max_length=200)
    labels: dict[str, str] = Field(default_factory=dict)
    ts_ms: int
    value: float


class FindingIn(BaseModel):
    key: str = Field(max_length=1000)
    summary: str = Field(max_length=2000)
    severity: str = Field(default="warning", max_length=20)
    labels: dict[str, str] = Field(default_factory=dict)


class ResultIn(BaseModel):
    seq: int = Field(ge=1)
    monitor_id: int = Field(ge=1)
    at: datetime
    ok: bool
    message: str = Field(default="", max_length=2000)
    latency_ms: float | None = None
    status_code: int | None = None
    degraded: bool = False
    conclusive: bool = True
    findings: list[FindingIn] | None = None
    unevaluated: list[str] = Field(default_factory=list)
    samples: list[SampleIn] = Field(default_factory=list, max_length=100_000)


class ResultsIn(BaseModel):
    version: str = Field(default="", max_length=50)
    results: list[ResultIn] = Field(max_length=MAX_RESULTS_PER_POST)


def take_results(
    s: Session, probe: Probe, data: ResultsIn, *, now: datetime, address: str = ""
) -> tuple[int, int, list[Sample], list[service.Transition]]:
    """Record the results not taken before, in sequence order.

    Returns (taken, last_seq, samples to store, transitions). Results for monitors that no longer
    exist or no longer run at this location are acknowledged and dropped.
    """
    probe.last_seen_at = now
    probe.last_address = address[:100]
    if data.version:
        probe.version = data.version[:50]
    fresh = sorted((r for r in data.results if r.seq > probe.last_seq), key=lambda r: r.seq)
    if not fresh:
        return 0, probe.last_seq, [], []
    results = []
    samples: list[Sample] = []
    for r in fresh:
        at = r.at if r.at.tzinfo else r.at.replace(tzinfo=now.tzinfo)
        outcome = CheckOutcome(
            r.ok,
            r.message,
            r.latency_ms,
            r.status_code,
            r.degraded,
            conclusive=r.conclusive,
            findings=None
            if r.findings is None
            else [Finding(f.key, f.summary, f.severity, f.labels) for f in r.findings],
            unevaluated=r.unevaluated,
        )
        results.append(service.Result(r.monitor_id, at, outcome, probe.location))
        samples.extend(
            Sample(x.name, tuple(sorted({**x.labels, "probe": probe.location}.items())), x.ts_ms, x.value)
            for x in r.samples
        )
    transitions = service.record_results(s, results)
    probe.last_seq = fresh[-1].seq
    return len(fresh), probe.last_seq, samples, transitions
