"""Prometheus Alertmanager's webhook receiver (``webhook_configs``, payload version "4").

One event per alert of the (grouped) notification:

* fingerprint: ``alertmanager:`` + the alert's ``fingerprint`` (computed from its labels when absent),
  so firing and resolved notifications of one alert land on one opsdesk alert;
* status: the alert's own ``status`` (a group's ``status`` is only "any firing");
* severity: label ``severity`` mapped by :func:`~opsdesk.alerts.sources.base.map_severity`;
* summary: annotation ``summary``, else ``description``, else label ``alertname``;
* service: label ``service`` when it names a CMDB service, else the integration's default;
* labels: the alert's labels, plus annotations as ``annotation_<name>``, ``generator_url`` and
  the group's ``receiver``.

Alertmanager cannot sign its requests, so its integrations usually run without an HMAC secret and
rely on the key in the URL (``url: https://opsdesk/hooks/<key>``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsdesk.alerts.models import EventStatus
from opsdesk.alerts.schemas import EventIn
from opsdesk.alerts.sources.base import (
    MAX_ALERTS,
    Source,
    clip_labels,
    labels_fingerprint,
    map_severity,
    register,
    summary_of,
    validate,
)

KEPT_ANNOTATIONS = ("summary", "description", "runbook_url")


class _Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None
    endsAt: str | None = None
    generatorURL: str = ""
    fingerprint: str | None = Field(default=None, max_length=100)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: Literal["4"]
    groupKey: str
    status: Literal["firing", "resolved"]
    receiver: str
    alerts: list[_Alert] = Field(min_length=1, max_length=MAX_ALERTS)
    truncatedAlerts: int = 0


def alert_events(source: str, receiver: str, alerts: list[Any]) -> list[EventIn]:
    """The Alertmanager-style mapping, shared with Grafana (same alert shape)."""
    out = []
    for a in alerts:
        labels = dict(a.labels)
        extra = {f"annotation_{k}": a.annotations[k] for k in KEPT_ANNOTATIONS if a.annotations.get(k)}
        if a.generatorURL:
            extra["generator_url"] = a.generatorURL
        if receiver:
            extra["receiver"] = receiver
        fp = a.fingerprint or labels_fingerprint(labels)
        out.append(
            EventIn(
                source=source,
                fingerprint=f"{source}:{fp}",
                status=EventStatus(a.status),
                severity=map_severity(labels.get("severity")),
                summary=summary_of(a.annotations, labels, f"{source} alert {fp}"),
                service=labels.get("service") or None,
                labels=clip_labels({**labels, **extra}),
            )
        )
    return out


@register
class Alertmanager(Source):
    kind = "alertmanager"

    def parse(self, payload: Any) -> list[EventIn]:
        p = validate(_Payload, payload)
        return alert_events(self.kind, p.receiver, p.alerts)
