"""Dedup and grouping rules (``alert_rules``): the first enabled rule, by ``position`` then id, whose
matchers all match an alert's labels decides

- ``fingerprint_labels``: the labels whose values make the alert's fingerprint (two events with the
  same values are the same alert); empty: the source's own fingerprint;
- ``group_by``: the labels whose values split alerts into incidents; empty: the default grouping;
- ``group_window_seconds`` / ``reopen_window_seconds``: how long alerts keep joining the same
  incident, and how soon a resolved alert that fires again reopens instead of starting anew;
  null: the settings' defaults.

A rule with no matchers matches every alert (a catch-all, usually with the highest position).
An alert that no rule matches gets the defaults and records ``rule = "default"``.

For the pipeline: :func:`load` once per batch (one query), then :func:`first_match` per alert (pure:
no database, regexes precompiled).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdesk.alerts import matchers as m
from opsdesk.alerts.admin_schemas import RuleIn, RuleUpdate, to_matchers
from opsdesk.alerts.matchers import Matcher
from opsdesk.alerts.models import AlertRule
from opsdesk.audit import service as audit
from opsdesk.core.actor import Actor
from opsdesk.core.errors import conflict, invalid, not_found

log = logging.getLogger("opsdesk.alerts")

DEFAULT = "default"
FIELDS = [
    "name",
    "position",
    "enabled",
    "matchers",
    "fingerprint_labels",
    "group_by",
    "group_window_seconds",
    "reopen_window_seconds",
]


@dataclass(frozen=True)
class CompiledRule:
    """An enabled rule, ready to match: parsed matchers, tuples of label names."""

    id: int
    name: str
    position: int
    matchers: tuple[Matcher, ...]
    fingerprint_labels: tuple[str, ...]
    group_by: tuple[str, ...]
    group_window_seconds: int | None
    reopen_window_seconds: int | None

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(x.matches(labels) for x in self.matchers)


def compile_rule(rule: AlertRule) -> CompiledRule:
    return CompiledRule(
        id=rule.id,
        name=rule.name,
        position=rule.position,
        matchers=tuple(m.from_json(rule.matchers)),
        fingerprint_labels=tuple(rule.fingerprint_labels or ()),
        group_by=tuple(rule.group_by or ()),
        group_window_seconds=rule.group_window_seconds,
        reopen_window_seconds=rule.reopen_window_seconds,
    )


def load(s: Session) -> list[CompiledRule]:
    """The enabled rules in the order they are tried (position, then id). A stored rule whose
    matchers no longer parse is skipped and logged, never fatal to the pipeline."""
    out = []
    for rule in s.scalars(
        select(AlertRule).where(AlertRule.enabled.is_(True)).order_by(AlertRule.position, AlertRule.id)
    ):
        try:
            out.append(compile_rule(rule))
        except ValueError as exc:
            log.warning("alert rule %s skipped: %s", rule.name, exc)
    return out


def first_match(rules: Sequence[CompiledRule], labels: Mapping[str, str]) -> CompiledRule | None:
    """The first rule of ``rules`` (already in order) whose matchers all match ``labels``."""
    for rule in rules:
        if rule.matches(labels):
            return rule
    return None


# --- CRUD ----------------------------------------------------------------------------------------


def get(s: Session, rule_id: int) -> AlertRule:
    rule = s.get(AlertRule, rule_id)
    if rule is None:
        raise not_found("alert rule", rule_id)
    return rule


def get_by_name(s: Session, name: str) -> AlertRule | None:
    return s.scalar(select(AlertRule).where(AlertRule.name == name))


def find(s: Session, ref: str) -> AlertRule:
    """A rule by name, or by id when ``ref`` is a number no rule is named."""
    rule = get_by_name(s, ref)
    if rule is None and ref.isdigit():
        return get(s, int(ref))
    if rule is None:
        raise not_found("alert rule", repr(ref))
    return rule


def list_rules(s: Session, *, limit: int = 1000) -> list[AlertRule]:
    """Every rule, in the order the pipeline tries them (disabled ones included)."""
    return list(s.scalars(select(AlertRule).order_by(AlertRule.position, AlertRule.id).limit(limit)))


def create(s: Session, data: RuleIn, *, actor: Actor, now: datetime) -> AlertRule:
    if data.name == DEFAULT:
        raise invalid("name", f"{DEFAULT!r} names alerts no rule matched; choose another name")
    if get_by_name(s, data.name) is not None:
        raise conflict(f"an alert rule named {data.name!r} already exists")
    values = data.model_dump()
    values["matchers"] = m.to_json(to_matchers(data.matchers))
    rule = AlertRule(**values, created_at=now, updated_at=now)
    s.add(rule)
    s.flush()
    audit.created(s, "alert_rule", rule.id, audit.snapshot(rule, FIELDS), actor=actor, at=now)
    return rule


def update(s: Session, rule_id: int, data: RuleUpdate, *, actor: Actor, now: datetime) -> AlertRule:
    rule = get(s, rule_id)
    before = audit.snapshot(rule, FIELDS)
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    for f in ("name", "position", "enabled", "matchers", "fingerprint_labels", "group_by"):
        if f in changes and changes[f] is None:
            raise invalid(f, "must not be null")
    if "name" in changes and changes["name"] != rule.name:
        if changes["name"] == DEFAULT:
            raise invalid("name", f"{DEFAULT!r} names alerts no rule matched; choose another name")
        if get_by_name(s, changes["name"]) is not None:
            raise conflict(f"an alert rule named {changes['name']!r} already exists")
    if data.matchers is not None:
        changes["matchers"] = m.to_json(to_matchers(data.matchers))
    for k, v in changes.items():
        setattr(rule, k, v)
    rule.updated_at = now
    audit.updated(s, "alert_rule", rule.id, before, audit.snapshot(rule, FIELDS), actor=actor, at=now)
    return rule


def delete(s: Session, rule_id: int, *, actor: Actor, now: datetime) -> None:
    rule = get(s, rule_id)
    audit.deleted(s, "alert_rule", rule.id, audit.snapshot(rule, FIELDS), actor=actor, at=now)
    s.delete(rule)


def as_dict(rule: AlertRule) -> dict[str, Any]:
    """The API's view of a rule (``RuleOut``)."""
    try:
        text = m.format_matchers(m.from_json(rule.matchers))
    except ValueError:
        text = str(rule.matchers)
    return {
        "id": rule.id,
        "name": rule.name,
        "position": rule.position,
        "enabled": rule.enabled,
        "matchers": rule.matchers,
        "matchers_text": text,
        "fingerprint_labels": rule.fingerprint_labels,
        "group_by": rule.group_by,
        "group_window_seconds": rule.group_window_seconds,
        "reopen_window_seconds": rule.reopen_window_seconds,
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
    }
