"""Correlation yardstick: replay alert storms over a CMDB topology, score the incidents opened.

    python bench/correlation.py [--scenario NAME ...] [--json] [--verbose]

Every ``bench/scenarios/*.yaml`` scenario (``topology-*.yaml`` files are the shared topologies)
is replayed on a fresh SQLite database, migrated and filled with the scenario's services, CIs and
relationships. Events go in by simulated time (``now = START + at``) through the real pipeline:
``alerts.service.normalize`` → ``store_events`` → ``process_pending`` until it returns 0, one step
per distinct ``at``. Each firing event is tagged with the incident an experienced on-call person
would open (``incident: <label>``; ``none`` means: no incident at all). See
``bench/scenarios/README.md`` for the format.

What is scored is the *alert firing*: an alert from the moment it starts firing (a new alert, or
a resolved one firing again) to its resolution. Its incident is the alert's incident at the end
of that firing, followed through ``merged_into_id``. Firings without an incident are singletons.

- pairwise: precision = pairs put in one incident that belong together / pairs put in one
  incident; recall = same / pairs that belong together. No predicted pairs: precision 1.0; no
  true pairs: recall 1.0.
- B-cubed: per firing, |its incident ∩ its expected group| / |its incident| (precision) and
  / |its expected group| (recall), averaged over firings.

The total pools every scenario (pairs summed, B-cubed averaged over all firings); the mean line
averages the per-scenario values, so small scenarios count as much as the big storms.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import func, select

from opsdesk.alerts import service as alerts
from opsdesk.alerts.matchers import parse_matcher
from opsdesk.alerts.models import Alert, Event
from opsdesk.alerts.schemas import EventIn
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.models import CIClass, RelationType
from opsdesk.cmdb.schemas import CIIn, RelationshipIn, ServiceIn
from opsdesk.core import migrate
from opsdesk.core.actor import Actor, Role
from opsdesk.core.db import Database
from opsdesk.incidents.models import Incident

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NO_INCIDENT = "none"
ACTOR = Actor(id=None, label="bench", role=Role.admin)
EDGE_KEYS = tuple(t.value for t in RelationType)
EVENT_KEYS = {
    "at",
    "each",
    "step",
    "repeat",
    "source",
    "status",
    "severity",
    "summary",
    "service",
    "ci",
    "labels",
    "fingerprint",
    "incident",
    "until",
}
TICK = 5.0  # seconds of simulated time between two pipeline runs
SHOWN = 5  # alerts listed per problem line (all with --verbose)


class ScenarioError(ValueError):
    """A scenario or topology file is not valid; the message names the file and every problem."""


# --- the scenario format -----------------------------------------------------------------------


@dataclass
class Topology:
    name: str
    services: dict[str, str]  # name -> description
    cis: dict[str, str]  # name -> class
    edges: list[tuple[str, str, str]]  # (source, type, target); a CI's ``service`` is service->CI

    def key(self) -> str:
        basis = json.dumps([sorted(self.services), sorted(self.cis.items()), self.edges])
        return hashlib.sha256(basis.encode()).hexdigest()[:16]


@dataclass
class ScenarioEvent:
    at: float
    source: str
    status: str
    severity: str
    summary: str
    service: str | None
    ci: str | None
    labels: dict[str, str]
    fingerprint: str | None
    incident: str | None  # the ground truth, on firing events

    def event_in(self) -> EventIn:
        return EventIn.model_validate(
            {
                "source": self.source,
                "status": self.status,
                "severity": self.severity,
                "summary": self.summary,
                "service": self.service,
                "ci": self.ci,
                "labels": self.labels,
                "fingerprint": self.fingerprint,
            }
        )

    def identity(self) -> tuple[Any, ...]:
        """What the alert is, as far as the file can tell: the explicit fingerprint, or the
        source, service, CI and labels (the summary when there are no labels)."""
        if self.fingerprint:
            return ("fp", self.fingerprint)
        body: Any = tuple(sorted(self.labels.items())) if self.labels else self.summary
        return (self.source, self.service, self.ci, body)

    def describe(self) -> str:
        keys = ("instance", "host", "pod", "node", "deployment", "alertname")
        where = self.ci or next((self.labels[k] for k in keys if self.labels.get(k)), self.service or "-")
        summary = self.summary if len(self.summary) <= 60 else self.summary[:57] + "..."
        return f"{where}: {summary} (t+{self.at:g}s, {self.source})"


@dataclass
class Scenario:
    name: str
    description: str
    kinds: list[str]
    topology: Topology
    events: list[ScenarioEvent]
    path: Path
    # The team's standing configuration, in force from the start: Alertmanager-style matchers of
    # silences (each a list of strings), e.g. non-production environments nobody is paged for.
    silences: list[list[str]] = field(default_factory=list)

    def expected_incidents(self) -> int:
        return len({e.incident for e in self.events if e.incident and e.incident != NO_INCIDENT})

    def episodes(self) -> list[int]:
        """For each event, the number of the expected alert firing it belongs to (-1: a resolve)."""
        firing: dict[tuple[Any, ...], int] = {}
        out = []
        count = 0
        for e in self.events:
            key = e.identity()
            if e.status == "resolved":
                firing.pop(key, None)
                out.append(-1)
                continue
            if key not in firing:
                firing[key] = count
                count += 1
            out.append(firing[key])
        return out

    def expected_firings(self) -> int:
        return max(self.episodes(), default=-1) + 1


_VAR = re.compile(r"\{(\w+)\}")


def _subst(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_subst(v, env) for v in value]
    if isinstance(value, dict):
        return {_subst(k, env): _subst(v, env) for k, v in value.items()}
    return value


def _values(spec: Any, where: str) -> list[str]:
    if isinstance(spec, list) and spec:
        return [str(v) for v in spec]
    if isinstance(spec, str) and ".." in spec:
        lo, hi = spec.split("..", 1)
        if lo.isdigit() and hi.isdigit() and int(lo) <= int(hi):
            width = len(lo) if lo.startswith("0") else 0
            return [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    raise ScenarioError(f"{where}: each value must be a non-empty list or a range 'A..B', not {spec!r}")


def _expand(entry: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """An entry with ``each`` stands for one entry per value (the product of several variables,
    or one per row when ``each`` is a list of mappings); ``{var}`` is replaced in every string."""
    each = entry.get("each")
    body = {k: v for k, v in entry.items() if k != "each"}
    if each is None:
        return [body]
    if isinstance(each, dict) and each:
        names = list(each)
        values = [_values(each[n], f"{where}.each.{n}") for n in names]
        envs = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    elif isinstance(each, list) and each and all(isinstance(r, dict) for r in each):
        envs = [{str(k): str(v) for k, v in row.items()} for row in each]
    else:
        raise ScenarioError(f"{where}.each: a mapping of variables or a list of mappings")
    out = []
    for i, env in enumerate(envs):
        one = _subst(body, env)
        one["_index"] = i
        out.append(one)
    return out


def _names(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ScenarioError(f"{where}: a name or a list of names")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(), Loader=_LOADER)
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path.name}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path.name}: the file must hold a mapping")
    return data


def load_topology(data: dict[str, Any], where: str) -> Topology:
    problems: list[str] = []
    services: dict[str, str] = {}
    cis: dict[str, str] = {}
    pending: list[tuple[str, str, str, str]] = []  # source, type, target, where
    for i, raw in enumerate(data.get("services") or []):
        for svc in _expand(raw, f"services[{i}]"):
            name = svc.get("name")
            if not isinstance(name, str) or not name:
                problems.append(f"services[{i}]: needs a name")
                continue
            if name in services:
                problems.append(f"services[{i}]: {name!r} is listed twice")
            services[name] = str(svc.get("description", ""))
            for t in EDGE_KEYS:
                pending += [(name, t, target, f"service {name}") for target in _names(svc.get(t), name)]
    classes = {c.value for c in CIClass}
    for i, raw in enumerate(data.get("cis") or []):
        for ci in _expand(raw, f"cis[{i}]"):
            name = ci.get("name")
            if not isinstance(name, str) or not name:
                problems.append(f"cis[{i}]: needs a name")
                continue
            if name in cis or name in services:
                problems.append(f"cis[{i}]: the name {name!r} is already taken")
            if ci.get("class") not in classes:
                problems.append(f"CI {name}: class must be one of {sorted(classes)}, not {ci.get('class')!r}")
            cis[name] = str(ci.get("class"))
            for svc_name in _names(ci.get("service"), name):
                pending.append((svc_name, "depends_on", name, f"CI {name} (service)"))
            for t in EDGE_KEYS:
                pending += [(name, t, target, f"CI {name}") for target in _names(ci.get(t), name)]
    for i, rel in enumerate(data.get("relationships") or []):
        if not isinstance(rel, dict) or rel.get("type") not in EDGE_KEYS:
            problems.append(f"relationships[{i}]: needs source, type (one of {EDGE_KEYS}) and target")
            continue
        pending.append((str(rel.get("source")), rel["type"], str(rel.get("target")), f"relationships[{i}]"))
    edges: list[tuple[str, str, str]] = []
    seen = set()
    for src, t, tgt, at in pending:
        for end in (src, tgt):
            if end not in services and end not in cis:
                problems.append(f"{at}: {end!r} is neither a service nor a CI of the topology")
        if src == tgt:
            problems.append(f"{at}: {t} edge from {src!r} to itself")
        if (src, t, tgt) in seen:
            problems.append(f"{at}: the edge {src} {t} {tgt} is listed twice")
        seen.add((src, t, tgt))
        edges.append((src, t, tgt))
    if problems:
        raise ScenarioError(f"{where}: " + "; ".join(problems))
    return Topology(str(data.get("name", where)), services, cis, edges)


_topologies: dict[tuple[Path, float], Topology] = {}


def _shared_topology(path: Path) -> Topology:
    key = (path.resolve(), path.stat().st_mtime)
    if key not in _topologies:
        _topologies[key] = load_topology(_read(path), path.name)
    return _topologies[key]


def load_scenario(path: Path | str) -> Scenario:
    """Read, expand and check one scenario file; raises :class:`ScenarioError` naming every problem."""
    path = Path(path)
    data = _read(path)
    where = path.name
    problems: list[str] = []
    name = data.get("name")
    if not isinstance(name, str) or not name:
        problems.append("needs a name")
    kinds = _names(data.get("kind"), f"{where}: kind")
    if not kinds:
        problems.append("needs a kind (a tag or a list of tags)")
    topo_spec = data.get("topology")
    if isinstance(topo_spec, str):
        topo_path = path.parent / f"topology-{topo_spec}.yaml"
        if not topo_path.exists():
            raise ScenarioError(f"{where}: no topology file {topo_path.name}")
        topology = _shared_topology(topo_path)
    elif isinstance(topo_spec, dict):
        topology = load_topology(topo_spec, f"{where}: topology")
    else:
        raise ScenarioError(f"{where}: topology must name a topology-<name>.yaml file or be a mapping")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - EVENT_KEYS:
        problems.append(f"defaults: only event fields, not {sorted(set(defaults) - EVENT_KEYS)}")
        defaults = {}
    raw_events = data.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise ScenarioError(f"{where}: needs a non-empty list of events")
    events: list[ScenarioEvent] = []
    for i, raw in enumerate(raw_events):
        at_where = f"events[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{at_where}: must be a mapping")
            continue
        unknown = set(raw) - EVENT_KEYS
        if unknown:
            problems.append(f"{at_where}: unknown fields {sorted(unknown)}")
            continue
        merged = {**defaults, **raw}
        if isinstance(defaults.get("labels"), dict) and isinstance(raw.get("labels"), dict):
            merged["labels"] = {**defaults["labels"], **raw["labels"]}
        repeat = merged.get("repeat") or {"count": 1, "every": 0}
        if (
            not isinstance(repeat, dict)
            or set(repeat) != {"count", "every"}
            or not isinstance(repeat["count"], int)
            or repeat["count"] < 1
            or not isinstance(repeat["every"], int | float)
        ):
            problems.append(f"{at_where}: repeat needs count (≥ 1) and every (seconds)")
            continue
        try:
            expanded = _expand(merged, at_where)
        except ScenarioError as e:
            problems.append(str(e))
            continue
        for one in expanded:
            at, step = one.get("at"), one.get("step", 0)
            if not isinstance(at, int | float) or at < 0 or not isinstance(step, int | float) or step < 0:
                problems.append(f"{at_where}: at and step must be numbers ≥ 0 (seconds)")
                break
            status = one.get("status", "firing")
            incident = one.get("incident")
            if not isinstance(one.get("labels") or {}, dict):
                problems.append(f"{at_where}: labels must be a mapping")
                break
            labels = {str(k): str(v) for k, v in (one.get("labels") or {}).items()}
            svc, ci = one.get("service"), one.get("ci")
            if svc is not None and svc not in topology.services:
                problems.append(f"{at_where}: no service {svc!r} in topology {topology.name}")
            if ci is not None and ci not in topology.cis:
                problems.append(f"{at_where}: no CI {ci!r} in topology {topology.name}")
            if status == "firing" and (not isinstance(incident, str) or not incident):
                problems.append(
                    f"{at_where}: a firing event needs its incident label ({NO_INCIDENT!r}: none)"
                )
            for r in range(repeat["count"]):
                ev = ScenarioEvent(
                    at=float(at + one.get("_index", 0) * step + r * repeat["every"]),
                    source=str(one.get("source", "api")),
                    status=str(status),
                    severity=str(one.get("severity", "error")),
                    summary=str(one.get("summary", "")),
                    service=svc,
                    ci=ci,
                    labels=labels,
                    fingerprint=one.get("fingerprint"),
                    incident=incident if status == "firing" else None,
                )
                try:
                    ev.event_in()
                except ValidationError as e:
                    err = e.errors()[0]
                    field_name = ".".join(str(x) for x in err["loc"])
                    problems.append(f"{at_where}: {field_name}: {err['msg']}")
                    break
                events.append(ev)
            until = one.get("until")
            if until is not None:
                end = float(until + one.get("_index", 0) * step) if isinstance(until, int | float) else -1.0
                if status != "firing" or not events or end <= events[-1].at:
                    problems.append(
                        f"{at_where}: until (seconds) resolves a firing event after its last repeat"
                    )
                    break
                events.append(replace(events[-1], at=end, status="resolved", incident=None))
    events.sort(key=lambda e: e.at)  # stable: the file's order within one instant
    if not problems:
        problems += _check_consistency(events)
    if problems:
        raise ScenarioError(f"{where}: " + "; ".join(dict.fromkeys(problems)))
    silences = data.get("silences") or []
    if not isinstance(silences, list) or not all(
        isinstance(x, list) and x and all(isinstance(m, str) for m in x) for x in silences
    ):
        raise ScenarioError(f"{where}: silences must be a list of matcher lists")
    for matchers in silences:
        try:
            for m in matchers:
                parse_matcher(m)
        except ValueError as e:
            raise ScenarioError(f"{where}: silences: {e}") from None
    assert isinstance(name, str)
    return Scenario(name, str(data.get("description", "")).strip(), kinds, topology, events, path, silences)


def _check_consistency(events: list[ScenarioEvent]) -> list[str]:
    """An alert that is still firing cannot belong to two incidents."""
    firing: dict[tuple[Any, ...], str] = {}
    problems = []
    for e in events:
        key = e.identity()
        if e.status == "resolved":
            firing.pop(key, None)
        elif key in firing and firing[key] != e.incident:
            problems.append(
                f"{e.describe()}: the same alert is still firing with incident {firing[key]!r}, "
                f"this event says {e.incident!r}"
            )
        else:
            firing[key] = str(e.incident)
    return problems


def scenario_paths(directory: Path = SCENARIOS) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if not p.name.startswith("topology-"))


# --- the metrics -------------------------------------------------------------------------------


def _clusters(keys: Sequence[Hashable | None]) -> list[Hashable]:
    """``None`` is a cluster of its own each time."""
    return [("singleton", i) if k is None else ("key", k) for i, k in enumerate(keys)]


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pair_counts(
    truth: Sequence[Hashable | None], predicted: Sequence[Hashable | None]
) -> tuple[int, int, int]:
    """(pairs right, pairs predicted together, pairs truly together) for one clustering."""
    t, p = _clusters(truth), _clusters(predicted)
    both = Counter(zip(t, p, strict=True))
    return (
        sum(_pairs(n) for n in both.values()),
        sum(_pairs(n) for n in Counter(p).values()),
        sum(_pairs(n) for n in Counter(t).values()),
    )


def ratio(num: int, den: int) -> float:
    return num / den if den else 1.0


def pairwise(truth: Sequence[Hashable | None], predicted: Sequence[Hashable | None]) -> tuple[float, float]:
    """Pairwise (precision, recall); ``None`` in either list is a singleton."""
    right, pred, true = pair_counts(truth, predicted)
    return ratio(right, pred), ratio(right, true)


def bcubed(truth: Sequence[Hashable | None], predicted: Sequence[Hashable | None]) -> tuple[float, float]:
    """B-cubed (precision, recall) averaged over items; ``None`` is a singleton; empty: (1, 1)."""
    t, p = _clusters(truth), _clusters(predicted)
    if not t:
        return 1.0, 1.0
    both = Counter(zip(t, p, strict=True))
    size_t, size_p = Counter(t), Counter(p)
    prec = sum(both[(a, b)] / size_p[b] for a, b in zip(t, p, strict=True)) / len(t)
    rec = sum(both[(a, b)] / size_t[a] for a, b in zip(t, p, strict=True)) / len(t)
    return prec, rec


# --- what went wrong ---------------------------------------------------------------------------


@dataclass
class Firing:
    """One alert firing: what the scenario expects and what the pipeline did."""

    label: str
    incident: int | None
    alert_id: int | None
    desc: str
    events: int = 1
    mixed: list[str] = field(default_factory=list)  # other labels seen on this firing's events

    def show(self) -> str:
        return f"alert #{self.alert_id} {self.desc}" if self.alert_id else f"no alert: {self.desc}"


def _inc(incident: int | None) -> str:
    return f"INC-{incident}" if incident is not None else "no incident"


def _listing(firings: list[Firing], limit: int | None) -> str:
    shown = firings if limit is None else firings[:limit]
    more = len(firings) - len(shown)
    return "; ".join(f.show() for f in shown) + (f"; … {more} more" if more else "")


def _holding(group: list[Firing]) -> str:
    labels = Counter(f.label for f in group if f.label != NO_INCIDENT)
    return f" with {', '.join(map(repr, labels))}" if labels else ""


def diagnose(firings: Sequence[Firing], *, limit: int | None = SHOWN) -> list[str]:
    """Expected incidents split over several incidents, incidents that merged expected ones,
    noise that got an incident, and firings whose events carry different labels."""
    problems = []
    by_label: dict[str, list[Firing]] = defaultdict(list)
    by_incident: dict[int, list[Firing]] = defaultdict(list)
    for f in firings:
        by_label[f.label].append(f)
        if f.incident is not None:
            by_incident[f.incident].append(f)
    for label, group in by_label.items():
        if label == NO_INCIDENT:
            continue
        parts: dict[int | None, list[Firing]] = defaultdict(list)
        for f in group:
            parts[f.incident].append(f)
        if len(parts) == 1 and None not in parts:
            continue
        if list(parts) == [None] and len(group) == 1:
            problems.append(f"missed: expected {label!r} (1 alert) got no incident: {group[0].show()}")
            continue
        ranked = sorted(parts.items(), key=lambda kv: (kv[0] is None, -len(kv[1]), kv[0] or 0))
        main_inc = ranked[0][0]
        summary = ", ".join(f"{_inc(inc)} ({len(fs)})" for inc, fs in ranked[: None if limit is None else 8])
        if limit is not None and len(ranked) > 8:
            summary += f", … {len(ranked) - 8} more incidents"
        strays = [f for inc, fs in ranked[1:] for f in fs] if main_inc is not None else group
        n_incidents = len([k for k in parts if k is not None])
        problems.append(
            f"split: expected {label!r} ({len(group)} alerts) went into {n_incidents} incident(s)"
            f"{' and no incident' if None in parts else ''}: {summary}. "
            f"Not in {_inc(main_inc)}: {_listing(strays, limit)}"
        )
    for inc, group in sorted(by_incident.items()):
        labels = Counter(f.label for f in group if f.label != NO_INCIDENT)
        if len(labels) > 1:
            main_label = labels.most_common(1)[0][0]
            counts = ", ".join(f"{lbl!r} ({n})" for lbl, n in labels.most_common())
            others = [f for f in group if f.label not in (main_label, NO_INCIDENT)]
            problems.append(
                f"merged: {_inc(inc)} holds {len(labels)} expected incidents: {counts}. "
                f"Besides {main_label!r}: {_listing(others, limit)}"
            )
    noise = [f for f in firings if f.label == NO_INCIDENT and f.incident is not None]
    noise.sort(key=lambda f: not _holding(by_incident[f.incident]) if f.incident is not None else True)
    if noise:
        where = ", ".join(
            f"{_inc(i)}{_holding(by_incident[i]) if i is not None else ''} ({n})"
            for i, n in Counter(f.incident for f in noise).most_common()
        )
        problems.append(
            f"noise: {len(noise)} alert(s) expected to open no incident went into {where}: "
            f"{_listing(noise, limit)}"
        )
    for f in firings:
        if f.mixed:
            problems.append(
                f"dedup: {f.show()} took events labelled {f.label!r} and {', '.join(map(repr, f.mixed))}"
            )
    return problems


# --- the replay --------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    name: str
    kinds: list[str]
    events: int
    alerts: int  # alert rows created
    firings: int  # alert firings scored
    expected_firings: int
    incidents: int  # incident rows opened (each one paged)
    incidents_final: int  # of those, not merged into another
    expected_incidents: int
    pairs_right: int
    pairs_predicted: int
    pairs_true: int
    pair_precision: float
    pair_recall: float
    bcubed_precision: float
    bcubed_recall: float
    problems: list[str]
    groups: dict[str, dict[str, list[int | None]]]  # expected label -> incident -> alert ids
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems


_templates: dict[str, Path] = {}
_tmp: Path | None = None


def _workdir() -> Path:
    global _tmp
    if _tmp is None:
        shm = Path("/dev/shm")  # nothing here needs to survive; skip the disk's fsyncs when we can
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        _tmp = Path(tempfile.mkdtemp(prefix="opsdesk-correlation-", dir=base))
        atexit.register(shutil.rmtree, _tmp, True)
    return _tmp


def _build_topology(s: Any, topo: Topology, now: datetime) -> None:
    ids: dict[str, tuple[str, int]] = {}
    for name, description in topo.services.items():
        svc = cmdb.create_service(
            s, ServiceIn.model_validate({"name": name, "description": description}), actor=ACTOR, now=now
        )
        ids[name] = ("service", svc.id)
    for name, ci_class in topo.cis.items():
        ci = cmdb.create_ci(s, CIIn.model_validate({"name": name, "class": ci_class}), actor=ACTOR, now=now)
        ids[name] = ("ci", ci.id)
    for src, t, tgt in topo.edges:
        (sk, sid), (tk, tid) = ids[src], ids[tgt]
        data = {"type": t, "source_type": sk, "source_id": sid, "target_type": tk, "target_id": tid}
        cmdb.create_relationship(s, RelationshipIn.model_validate(data), actor=ACTOR, now=now)


def _database(topo: Topology, name: str) -> Database:
    """A fresh SQLite file with the topology in it (built once per topology, then copied)."""
    key = topo.key()
    if key not in _templates:
        path = _workdir() / f"template-{key}.db"
        db = Database(f"sqlite:///{path}")
        migrate.upgrade(db.engine)
        with db.session() as s:
            _build_topology(s, topo, START - timedelta(days=1))
        db.dispose()
        _templates[key] = path
    target = _workdir() / f"{name}-{time.monotonic_ns()}.db"
    shutil.copyfile(_templates[key], target)
    return Database(f"sqlite:///{target}")


def run_scenario(
    path: Path | str | Scenario, *, tick: float = TICK, limit: int | None = SHOWN
) -> ScenarioResult:
    """Replay one scenario through the real pipeline on a fresh SQLite database and score it.

    Events are stored at their own time; the pipeline runs every ``tick`` seconds of simulated
    time (``0``: after each distinct event time), as the pipeline worker would."""
    sc = path if isinstance(path, Scenario) else load_scenario(path)
    started = time.perf_counter()
    db = _database(sc.topology, sc.name)
    try:
        firings, n_alerts, merged_into = _replay(db, sc, tick)
    finally:
        db.dispose()
    final = {i: _final(i, merged_into) for i in merged_into}
    for f in firings:
        f.incident = final.get(f.incident, f.incident) if f.incident is not None else None
    truth = [None if f.label == NO_INCIDENT else f.label for f in firings]
    predicted = [f.incident for f in firings]
    right, pred, true = pair_counts(truth, predicted)
    b_p, b_r = bcubed(truth, predicted)
    problems = diagnose(firings, limit=limit)
    if len(firings) != sc.expected_firings():
        problems.insert(
            0,
            f"dedup: expected {sc.expected_firings()} alert firings, got {len(firings)} "
            f"({n_alerts} alert rows)",
        )
    groups: dict[str, dict[str, list[int | None]]] = defaultdict(lambda: defaultdict(list))
    for f in firings:
        groups[f.label][_inc(f.incident)].append(f.alert_id)
    return ScenarioResult(
        name=sc.name,
        kinds=sc.kinds,
        events=len(sc.events),
        alerts=n_alerts,
        firings=len(firings),
        expected_firings=sc.expected_firings(),
        incidents=len(merged_into),
        incidents_final=len(set(final.values())),
        expected_incidents=sc.expected_incidents(),
        pairs_right=right,
        pairs_predicted=pred,
        pairs_true=true,
        pair_precision=ratio(right, pred),
        pair_recall=ratio(right, true),
        bcubed_precision=b_p,
        bcubed_recall=b_r,
        problems=problems,
        groups={k: dict(v) for k, v in groups.items()},
        seconds=time.perf_counter() - started,
    )


def _final(incident: int, merged_into: dict[int, int | None]) -> int:
    seen = {incident}
    while (nxt := merged_into.get(incident)) is not None and nxt not in seen:
        seen.add(nxt)
        incident = nxt
    return incident


def _tick(at: float, tick: float) -> float:
    return math.ceil(at / tick) * tick if tick > 0 else at


def _replay(db: Database, sc: Scenario, tick: float) -> tuple[list[Firing], int, dict[int, int | None]]:
    if sc.silences:
        from opsdesk.alerts import silences
        from opsdesk.alerts.admin_schemas import SilenceIn

        with db.session() as s:
            for matchers in sc.silences:
                data = SilenceIn.model_validate(
                    {"matchers": matchers, "starts_at": START, "duration": "365d", "comment": "standing"}
                )
                silences.create(s, data, actor=ACTOR, now=START)
    firings: list[Firing] = []
    current: dict[int, Firing] = {}  # alert id -> its firing now (the last one it started)
    is_firing: dict[int, bool] = {}
    for at, group in itertools.groupby(sc.events, key=lambda e: _tick(e.at, tick)):
        evs = list(group)
        now = START + timedelta(seconds=at)
        ids: list[int] = []
        with db.session() as s:
            # Each event is received at its own time; the pipeline runs at the end of the tick.
            for received, same in itertools.groupby(evs, key=lambda e: e.at):
                batch = list(same)
                normalized = alerts.normalize(s, [e.event_in() for e in batch], batch=True)
                ids += alerts.store_events(s, normalized, now=START + timedelta(seconds=received))
        for _ in range(100_000):
            with db.session() as s:
                if not alerts.process_pending(s, now=now, limit=1000):
                    break
        else:
            raise RuntimeError(f"{sc.name}: process_pending never returned 0 at t+{at:g}s")
        with db.session() as s:
            alert_of = dict(s.execute(select(Event.id, Event.alert_id).where(Event.id.in_(ids))).all())
            for ev, event_id in zip(evs, ids, strict=True):
                alert_id = alert_of.get(event_id)
                if ev.status == "resolved":
                    if alert_id is not None:
                        is_firing[alert_id] = False
                    continue
                label = str(ev.incident)
                if alert_id is None:
                    firings.append(Firing(label, None, None, ev.describe()))
                    continue
                f = current.get(alert_id)
                if f is None or not is_firing.get(alert_id):
                    f = Firing(label, None, alert_id, ev.describe(), events=0)
                    firings.append(f)
                    current[alert_id] = f
                    is_firing[alert_id] = True
                f.events += 1
                if label != f.label and label not in f.mixed:
                    f.mixed.append(label)
            # Each alert's current firing follows the alert's incident until another firing starts.
            for alert_id, incident_id in s.execute(
                select(Alert.id, Alert.incident_id).where(Alert.id.in_(list(current)))
            ):
                current[alert_id].incident = incident_id
    with db.session() as s:
        n_alerts = s.scalar(select(func.count()).select_from(Alert)) or 0
        merged_into = dict(s.execute(select(Incident.id, Incident.merged_into_id)).all())
    return firings, n_alerts, merged_into


# --- the report --------------------------------------------------------------------------------


def totals(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    n = len(results)
    firings = sum(r.firings for r in results)
    right = sum(r.pairs_right for r in results)
    pred = sum(r.pairs_predicted for r in results)
    true = sum(r.pairs_true for r in results)

    def pooled(attr: str) -> float:
        return sum(getattr(r, attr) * r.firings for r in results) / firings if firings else 1.0

    def mean(attr: str) -> float:
        return sum(getattr(r, attr) for r in results) / n if n else 1.0

    return {
        "scenarios": n,
        "wrong": sum(1 for r in results if not r.ok),
        "events": sum(r.events for r in results),
        "alerts": sum(r.alerts for r in results),
        "firings": firings,
        "expected_firings": sum(r.expected_firings for r in results),
        "incidents": sum(r.incidents for r in results),
        "incidents_final": sum(r.incidents_final for r in results),
        "expected_incidents": sum(r.expected_incidents for r in results),
        "pairs_right": right,
        "pairs_predicted": pred,
        "pairs_true": true,
        "pair_precision": ratio(right, pred),
        "pair_recall": ratio(right, true),
        "bcubed_precision": pooled("bcubed_precision"),
        "bcubed_recall": pooled("bcubed_recall"),
        "mean": {a: mean(a) for a in ("pair_precision", "pair_recall", "bcubed_precision", "bcubed_recall")},
        "seconds": sum(r.seconds for r in results),
    }


ROW = "{:<34} {:>6} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7}  {}"


def _row(name: str, events: Any, alerts_: str, incidents: str, m: dict[str, float], ok: str) -> str:
    nums = (m["pair_precision"], m["pair_recall"], m["bcubed_precision"], m["bcubed_recall"])
    return ROW.format(name, events, alerts_, incidents, *(f"{x:.3f}" for x in nums), ok)


def report(results: Sequence[ScenarioResult], out: Any = None) -> None:
    out = out or sys.stdout
    print(
        ROW.format("scenario", "events", "alerts", "incidents", "pair P", "pair R", "B3 P", "B3 R", ""),
        file=out,
    )
    for r in results:
        print(
            _row(
                r.name,
                r.events,
                f"{r.firings}/{r.expected_firings}",
                f"{r.incidents}/{r.expected_incidents}",
                asdict(r),
                "ok" if r.ok else "WRONG",
            ),
            file=out,
        )
    t = totals(results)
    print(
        _row(
            f"TOTAL ({t['scenarios']} scenarios)",
            t["events"],
            f"{t['firings']}/{t['expected_firings']}",
            f"{t['incidents']}/{t['expected_incidents']}",
            t,
            f"{t['wrong']} wrong",
        ),
        file=out,
    )
    print(_row("mean over scenarios", "", "", "", t["mean"], ""), file=out)
    print(
        f"alerts: firings scored / expected; incidents: opened / expected; pairs right "
        f"{t['pairs_right']} of {t['pairs_predicted']} predicted, {t['pairs_true']} true; "
        f"{t['seconds']:.1f} s",
        file=out,
    )
    wrong = [r for r in results if not r.ok]
    if wrong:
        print(f"\nwrong in {len(wrong)} of {len(results)} scenarios:", file=out)
    for r in wrong:
        print(f"\n{r.name} [{', '.join(r.kinds)}]", file=out)
        for p in r.problems:
            print(f"  - {p}", file=out)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", default=[], help="name or file stem; repeatable")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--verbose", action="store_true", help="list every misplaced alert")
    parser.add_argument(
        "--tick", type=float, default=TICK, help="seconds between pipeline runs (0: after every event time)"
    )
    parser.add_argument("--dir", type=Path, default=SCENARIOS, help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        scenarios = [load_scenario(p) for p in scenario_paths(args.dir)]
    except ScenarioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.scenario:
        wanted = set(args.scenario)
        unknown = wanted - {sc.name for sc in scenarios} - {sc.path.stem for sc in scenarios}
        if unknown:
            names = ", ".join(sc.name for sc in scenarios)
            print(f"error: no scenario {', '.join(sorted(unknown))}; there are: {names}", file=sys.stderr)
            return 2
        scenarios = [sc for sc in scenarios if sc.name in wanted or sc.path.stem in wanted]
    limit = None if args.verbose else SHOWN
    results = [run_scenario(sc, tick=args.tick, limit=limit) for sc in scenarios]
    if args.json:
        body = {"scenarios": [asdict(r) | {"ok": r.ok} for r in results], "total": totals(results)}
        print(json.dumps(body, indent=2))
    else:
        report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
