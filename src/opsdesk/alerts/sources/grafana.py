"""Grafana alerting's webhook contact point (unified alerting, payload ``version`` "1").

The alerts have Alertmanager's shape (Grafana embeds an Alertmanager), so the mapping is the same
as :mod:`~opsdesk.alerts.sources.alertmanager` with fingerprints prefixed ``grafana:``; in addition
``valueString``, ``dashboardURL``, ``panelURL`` and ``silenceURL`` are kept as labels
(``value``, ``dashboard_url``, ``panel_url``, ``silence_url``) when present.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsdesk.alerts.schemas import EventIn
from opsdesk.alerts.sources.alertmanager import alert_events
from opsdesk.alerts.sources.base import MAX_ALERTS, Source, clip_labels, register, validate

_EXTRA = {
    "valueString": "value",
    "dashboardURL": "dashboard_url",
    "panelURL": "panel_url",
    "silenceURL": "silence_url",
}


class _Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None
    endsAt: str | None = None
    generatorURL: str = ""
    fingerprint: str | None = Field(default=None, max_length=100)
    valueString: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    silenceURL: str = ""


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    receiver: str = ""
    status: Literal["firing", "resolved"]
    alerts: list[_Alert] = Field(min_length=1, max_length=MAX_ALERTS)


@register
class Grafana(Source):
    kind = "grafana"

    def parse(self, payload: Any) -> list[EventIn]:
        p = validate(_Payload, payload)
        events = alert_events(self.kind, p.receiver, p.alerts)
        for ev, a in zip(events, p.alerts, strict=True):
            extra = {name: getattr(a, attr) for attr, name in _EXTRA.items() if getattr(a, attr)}
            ev.labels = clip_labels({**ev.labels, **extra})
        return events
