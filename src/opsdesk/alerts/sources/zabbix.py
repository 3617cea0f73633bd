"""Zabbix's webhook media type: the JSON object of the media type's parameters (macro values).

``contrib/zabbix/opsdesk_webhook.yaml`` is a Zabbix 6.0+/7.x media type whose script posts its
parameters to the hook; its parameter names are the canonical payload (``event_id``,
``event_value``, ``trigger_id``, ``host_host``, ``event_tags_json``...). Other senders' names are
accepted too: keys are compared lower-cased with everything but letters and digits removed, so
``event_id``, ``eventid``, ``EVENT.ID`` and ``eventId`` are one key (Keep's and iLert's uppercase
macro names, Opsgenie's and PagerDuty's ``eventid``/``eventvalue``/``triggerid``, Keep's
``id``/``triggerId``/``status``/``tags``, ...).

Zabbix sends a macro's own text when it has no value (``{EVENT.RECOVERY.ID}`` in a problem
operation), and ``*UNKNOWN*`` when it cannot resolve one: both count as absent, like an empty value.

Mapping (one event per request):

* status: ``event_value`` ({EVENT.VALUE}) 1 → firing, 0 → resolved; without it a resolved
  ``event_recovery_id``, then ``event_status`` ({EVENT.STATUS}: PROBLEM/RESOLVED), then
  ``trigger_status`` ({TRIGGER.STATUS}: PROBLEM/OK) decide.
* update operations (``event_update_status`` = 1: acknowledge, comment, severity change...) are no
  state change: they give a firing event (refreshing severity and summary of the open alert) only
  while the problem is still a problem; if any of ``event_value`` = 0, a recovery id or
  ``event_status`` RESOLVED says it was resolved, they give a resolved event, which never opens an
  alert (a resolve without a firing alert is ignored). The update action is kept as a label.
* fingerprint: ``zabbix:<host>:event:<event_id>``. In recovery and update operations {EVENT.ID}
  is still the *problem* event's id ({EVENT.RECOVERY.ID} is the recovery's), so a problem, its
  updates and its recovery share one fingerprint, and each new problem of the trigger gets a new
  one. The host (``host_host``, else ``host_name``) keeps two Zabbix servers' event ids apart.
  Without an event id: ``zabbix:<host>:trigger:<trigger_id>`` (one alert per trigger and host).
* severity: ``event_nseverity`` (0 Not classified, 1 Information → info; 2 Warning, 3 Average →
  warning; 4 High → error; 5 Disaster → critical), else the ``event_severity`` name, mapped the
  same way (renamed severities fall back to :func:`~opsdesk.alerts.sources.base.map_severity`).
* summary: ``event_name`` ({EVENT.NAME}), else ``trigger_name``.
* ci: the host's technical name ({HOST.HOST}), else its visible name ({HOST.NAME}).
* service: the ``opsdesk_service`` parameter, else the event tag ``service``; unknown names fall
  back to the integration's default service.
* labels: the event tags ({EVENT.TAGSJSON}, a JSON list of ``{"tag", "value"}`` that may arrive as
  a string holding JSON, or {EVENT.TAGS}, ``tag:value, tag:value``; repeated tags are joined with
  commas; Zabbix's internal ``__zbx*`` tags are left out), then ``host``, ``host_name``,
  ``host_ip``, ``trigger_id``, ``event_id``, ``recovery_event_id``, ``item_value``,
  ``zabbix_severity``, ``opdata``, ``event_time``, ``update_action``, ``acknowledged`` and
  ``event_url`` when present.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from opsdesk.alerts.models import EventStatus, Severity
from opsdesk.alerts.schemas import EventIn
from opsdesk.alerts.sources.base import Source, clip_labels, map_severity, register
from opsdesk.core.errors import invalid

# Accepted names of each field, normalized (see _norm), first match wins.
ALIASES: dict[str, tuple[str, ...]] = {
    "event_id": ("eventid", "id"),
    "event_recovery_id": ("eventrecoveryid", "recoveryeventid", "recoveryid"),
    "event_value": ("eventvalue",),
    "event_status": ("eventstatus",),
    "trigger_status": ("triggerstatus", "status", "state"),
    "event_update_status": ("eventupdatestatus", "eventupdate", "updatestatus"),
    "event_update_action": ("eventupdateaction", "updateaction"),
    "event_ack_status": ("eventackstatus", "eventack", "ackstatus"),
    "event_source": ("eventsource",),
    "event_name": ("eventname", "problemname", "name", "title", "alertsubject", "subject"),
    "trigger_name": ("triggername",),
    "event_nseverity": ("eventnseverity", "nseverity", "triggernseverity"),
    "event_severity": ("eventseverity", "severity", "triggerseverity"),
    "event_date": ("eventdate",),
    "event_time": ("eventtime",),
    "event_opdata": ("eventopdata", "opdata", "triggeropdata"),
    "event_tags": ("eventtagsjson", "tagsjson", "eventtags", "tags", "triggertags"),
    "trigger_id": ("triggerid",),
    "host_host": ("hosthost", "host"),
    "host_name": ("hostname", "hostvisiblename"),
    "host_ip": ("hostip", "hostconn", "ip"),
    "item_value": ("itemvalue", "itemvalue1", "itemlastvalue", "itemlastvalue1"),
    "opsdesk_service": ("opsdeskservice",),
    "zabbix_url": ("zabbixurl", "zbxurl"),
}

# {EVENT.ID}, {ITEM.VALUE1}, {EVENT.TAGS.service}, {$ZABBIX.URL}, {$M:"context"}, {#LLD}, {?expr}
_MACRO = re.compile(r"^\{(\?[^{}]*|[$#]?[A-Z][A-Za-z0-9_.]*(:[^{}]*)?)\}$")
_MACRO_INSIDE = re.compile(r"\{[$#]?[A-Z][A-Z0-9_.]*\}")
_UNKNOWN = "*UNKNOWN*"
SERVICE_NAME_MAX = 100

_BY_NUMBER = {
    "0": Severity.info,  # Not classified
    "1": Severity.info,  # Information
    "2": Severity.warning,  # Warning
    "3": Severity.warning,  # Average
    "4": Severity.error,  # High
    "5": Severity.critical,  # Disaster
}
_BY_NAME = {
    "not classified": Severity.info,
    "information": Severity.info,
    "warning": Severity.warning,
    "average": Severity.warning,
    "high": Severity.error,
    "disaster": Severity.critical,
}
_FIRING_WORDS = {"problem", "firing", "1"}
_RESOLVED_WORDS = {"resolved", "ok", "recovery", "recovered", "0"}


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def field_of(key: str) -> str | None:
    """The field a payload key is read as (``EVENT.ID`` → ``event_id``), or None if it is ignored."""
    norm = _norm(key)
    return next((field for field, aliases in ALIASES.items() if norm in aliases), None)


def is_unresolved(value: str) -> bool:
    """True for an empty value, a macro Zabbix left as text, or Zabbix's ``*UNKNOWN*``."""
    v = value.strip()
    return not v or v == _UNKNOWN or _MACRO.match(v) is not None


class _Params:
    """The payload's values by field, read through :data:`ALIASES`."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self._by_norm: dict[str, list[tuple[str, Any]]] = {}
        for key, value in payload.items():
            self._by_norm.setdefault(_norm(str(key)), []).append((str(key), value))

    def _candidates(self, field: str) -> Iterator[tuple[str, Any]]:
        for alias in ALIASES[field]:
            yield from self._by_norm.get(alias, [])

    def raw(self, field: str) -> tuple[str, Any] | None:
        """The first present value (any JSON type) and the key it came under."""
        for key, value in self._candidates(field):
            if value is None or (isinstance(value, str) and is_unresolved(value)):
                continue
            if isinstance(value, list | dict) and not value:
                continue
            return key, value
        return None

    def text(self, field: str) -> tuple[str, str] | None:
        found = self.raw(field)
        if found is None:
            return None
        key, value = found
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise invalid(key, "must be text")
        return key, str(value).strip()

    def get(self, field: str) -> str | None:
        found = self.text(field)
        return found[1] if found else None


def _flag(params: _Params, field: str, meaning: str) -> bool | None:
    """A 0/1 macro ({EVENT.VALUE}, {EVENT.UPDATE.STATUS}); anything else is a 422."""
    found = params.text(field)
    if found is None:
        return None
    key, value = found
    if value not in ("0", "1"):
        raise invalid(key, f"must be 0 or 1 ({meaning})")
    return value == "1"


def _word(params: _Params, field: str, expected: str) -> bool | None:
    """A status word: True for a problem, False for resolved/OK."""
    found = params.text(field)
    if found is None:
        return None
    key, value = found
    v = value.lower()
    if v in _FIRING_WORDS:
        return True
    if v in _RESOLVED_WORDS:
        return False
    raise invalid(key, f"must be {expected}")


def _is_problem(params: _Params) -> bool:
    value = _flag(params, "event_value", "1 for a problem, 0 for a recovery")
    recovered = params.get("event_recovery_id") is not None
    event_status = _word(params, "event_status", "PROBLEM or RESOLVED")
    trigger_status = _word(params, "trigger_status", "PROBLEM or OK")
    update = _flag(params, "event_update_status", "1 for a problem update operation")
    if update:
        # Not a state change: firing only while nothing says the problem was resolved.
        if recovered or value is False or event_status is False:
            return False
        if value or event_status:
            return True
        if trigger_status is not None:
            return trigger_status
        raise invalid("event_value", "required: {EVENT.VALUE} (1 problem, 0 recovery)")
    for decided in (value, False if recovered else None, event_status, trigger_status):
        if decided is not None:
            return decided
    raise invalid("event_value", "required: {EVENT.VALUE} (1 problem, 0 recovery)")


def _severity(params: _Params) -> tuple[Severity, str | None]:
    found = params.text("event_nseverity")
    if found is not None:
        key, value = found
        if value not in _BY_NUMBER:
            raise invalid(key, "must be a number from 0 (Not classified) to 5 (Disaster)")
        return _BY_NUMBER[value], params.get("event_severity")
    name = params.get("event_severity")
    if name is None:
        return Severity.warning, None
    if name in _BY_NUMBER:
        return _BY_NUMBER[name], None
    return _BY_NAME.get(name.lower()) or map_severity(name), name


def _tag_items(key: str, value: Any) -> list[tuple[str, str]]:
    """{EVENT.TAGSJSON} (a list, or a string holding one) or {EVENT.TAGS} as (tag, value) pairs."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise invalid(key, "must be a JSON list of {tag, value} objects") from None
        else:  # {EVENT.TAGS}: "class:os, component:cpu"
            pairs = []
            for part in text.split(","):
                tag, _, val = part.partition(":")
                if tag.strip():
                    pairs.append((tag.strip(), val.strip()))
            return pairs
    if not isinstance(value, list):
        raise invalid(key, "must be a JSON list of {tag, value} objects")
    pairs = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("tag"), str) or not item["tag"].strip():
            raise invalid(f"{key}[{i}]", "must be an object with a non-empty text tag")
        val = item.get("value", "")
        if val is None:
            val = ""
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise invalid(f"{key}[{i}].value", "must be text")
        pairs.append((item["tag"].strip(), str(val).strip()))
    return pairs


def _tags(params: _Params) -> dict[str, str]:
    found = params.raw("event_tags")
    if found is None:
        return {}
    out: dict[str, str] = {}
    for tag, value in _tag_items(*found):
        if tag.startswith("__zbx"):
            continue
        if tag not in out:
            out[tag] = value
        elif value not in out[tag].split(","):
            out[tag] = f"{out[tag]},{value}"
    return out


@register
class Zabbix(Source):
    kind = "zabbix"

    def parse(self, payload: Any) -> list[EventIn]:
        if not isinstance(payload, dict):
            raise invalid("body", "must be a JSON object")
        p = _Params(payload)
        problem = _is_problem(p)
        event_id = p.get("event_id")
        trigger_id = p.get("trigger_id")
        host = p.get("host_host") or p.get("host_name")
        if event_id:
            fingerprint = f"{self.kind}:{host or '-'}:event:{event_id}"
        elif trigger_id:
            fingerprint = f"{self.kind}:{host or '-'}:trigger:{trigger_id}"
        else:
            raise invalid("event_id", "required: {EVENT.ID} (or {TRIGGER.ID} with {HOST.HOST})")
        summary = p.get("event_name") or p.get("trigger_name")
        if not summary:
            raise invalid("event_name", "required: {EVENT.NAME} (or {TRIGGER.NAME})")
        severity, severity_name = _severity(p)
        tags = _tags(p)
        update = p.get("event_update_status") == "1"

        labels: dict[str, str] = dict(tags)
        extra = {
            "host": host,
            "host_name": p.get("host_name"),
            "host_ip": p.get("host_ip"),
            "trigger_id": trigger_id,
            "event_id": event_id,
            "recovery_event_id": p.get("event_recovery_id"),
            "item_value": p.get("item_value"),
            "zabbix_severity": severity_name,
            "opdata": p.get("event_opdata"),
            "event_time": " ".join(x for x in (p.get("event_date"), p.get("event_time")) if x) or None,
            "update_action": p.get("event_update_action") if update else None,
            "acknowledged": p.get("event_ack_status"),
            "event_source": p.get("event_source"),
        }
        if extra["host_name"] == host:
            extra["host_name"] = None
        url = p.get("zabbix_url")
        if url and event_id and trigger_id and not _MACRO_INSIDE.search(url):
            extra["event_url"] = f"{url.rstrip('/')}/tr_events.php?triggerid={trigger_id}&eventid={event_id}"
        labels.update({k: v for k, v in extra.items() if v})
        service = p.get("opsdesk_service") or tags.get("service")
        if service and len(service) > SERVICE_NAME_MAX:
            labels["service"] = service  # too long to name a service: kept as a label only
        return [
            EventIn(
                source=self.kind,
                fingerprint=fingerprint[:200],
                status=EventStatus.firing if problem else EventStatus.resolved,
                severity=severity,
                summary=summary[:1000],
                service=service if service and len(service) <= SERVICE_NAME_MAX else None,
                ci=host[:200] if host else None,
                labels=clip_labels(labels),
            )
        ]
