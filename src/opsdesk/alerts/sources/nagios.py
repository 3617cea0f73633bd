"""Nagios (and Naemon) and Icinga 2 notifications: the JSON ``contrib/nagios/opsdesk-notify`` posts.

The script sends the notification macros under snake_case names (``notification_type``,
``host_name``, ``host_state``, ``service_desc``, ``service_state``, ``service_output``...). Keys
are compared lower-cased with everything but letters and digits removed, so the macro names
themselves (``NOTIFICATIONTYPE``, ``HOSTNAME``, ``SERVICEDESC``) work as well, as do Icinga 2's
(``SERVICENAME``, ``HOSTDISPLAYNAME``, ``SERVICEDISPLAYNAME``, ``NOTIFICATIONAUTHORNAME``). Two
kinds share this module: ``nagios`` and ``icinga``; they differ only in the source name and the
fingerprint prefix. A value that is empty or still a macro (``$SERVICEDESC$``) counts as absent.

A notification with a service (``service_desc``/``SERVICENAME``) is a service notification, whose
state is ``service_state`` (OK, WARNING, CRITICAL, UNKNOWN); otherwise it is a host notification
with ``host_state`` (UP, DOWN, UNREACHABLE). Numeric ``*_state_id`` values are accepted in their
place.

Mapping (one event per request):

* status: state OK/UP, or notification type RECOVERY → resolved; any other state → firing.
* notification types that are no state change (ACKNOWLEDGEMENT, FLAPPINGSTART/STOP/END/DISABLED,
  DOWNTIMESTART/END/CANCELLED/REMOVED, CUSTOM) follow the state they carry, like any other: a
  non-OK state gives a firing event under the same fingerprint (refreshing the open alert), an
  OK/UP state a resolved one, which never opens an alert (so an acknowledgement, or the end of a
  downtime, of an OK service cannot raise anything). The type is always kept as the label
  ``notification_type``, with ``notification_author`` and ``notification_comment``.
* severity: CRITICAL, DOWN → critical; WARNING, UNKNOWN, UNREACHABLE → warning; OK, UP → info.
* fingerprint: ``nagios:<host>!<service>`` for a service, ``nagios:<host>`` for the host itself
  (``icinga:`` for the icinga kind), from the object names (HOSTNAME, SERVICEDESC/SERVICENAME), not
  the display names, so problem, acknowledgement and recovery land on one alert.
* summary: ``<service> on <host> is <STATE>: <output>`` (``<host> is <STATE>: <output>`` for a
  host), with display names when given.
* ci: the host name. service: the ``opsdesk_service`` field (``--opsdesk-service``) when sent;
  unknown names fall back to the integration's default service.
* labels: ``host``, ``host_address``, ``host_display_name``, ``service_name`` (the Nagios/Icinga
  service; the label ``service`` is left for opsdesk's service name), ``service_display_name``,
  ``state``, ``host_state``, ``notification_type``, ``output``, ``long_output``,
  ``notification_author``, ``notification_comment``, ``notification_number`` and ``date_time``.
"""

from __future__ import annotations

import re
from typing import Any

from opsdesk.alerts.models import EventStatus, Severity
from opsdesk.alerts.schemas import EventIn
from opsdesk.alerts.sources.base import Source, clip_labels, register
from opsdesk.core.errors import invalid

ALIASES: dict[str, tuple[str, ...]] = {
    "notification_type": ("notificationtype",),
    "host_name": ("hostname",),
    "host_display_name": ("hostdisplayname", "hostalias"),
    "host_address": ("hostaddress", "address", "hostaddress6"),
    "host_state": ("hoststate",),
    "host_state_id": ("hoststateid",),
    "host_output": ("hostoutput",),
    "long_host_output": ("longhostoutput",),
    "service_desc": ("servicedesc", "servicename", "servicedescription"),
    "service_display_name": ("servicedisplayname",),
    "service_state": ("servicestate",),
    "service_state_id": ("servicestateid",),
    "service_output": ("serviceoutput",),
    "long_service_output": ("longserviceoutput",),
    "notification_author": ("notificationauthor", "notificationauthorname", "notificationauthoralias"),
    "notification_comment": ("notificationcomment",),
    "notification_number": ("notificationnumber", "servicenotificationnumber", "hostnotificationnumber"),
    "date_time": ("longdatetime", "shortdatetime", "datetime", "date"),
    "opsdesk_service": ("opsdeskservice",),
}

NOTIFICATION_TYPES = frozenset(
    {
        "PROBLEM",
        "RECOVERY",
        "ACKNOWLEDGEMENT",
        "FLAPPINGSTART",
        "FLAPPINGSTOP",
        "FLAPPINGEND",  # Icinga 2
        "FLAPPINGDISABLED",
        "DOWNTIMESTART",
        "DOWNTIMEEND",
        "DOWNTIMECANCELLED",
        "DOWNTIMEREMOVED",  # Icinga 2's name in its own notification filters
        "CUSTOM",
    }
)
SERVICE_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
HOST_STATES = ("UP", "DOWN", "UNREACHABLE")
SEVERITY = {
    "OK": Severity.info,
    "UP": Severity.info,
    "WARNING": Severity.warning,
    "UNKNOWN": Severity.warning,
    "UNREACHABLE": Severity.warning,
    "CRITICAL": Severity.critical,
    "DOWN": Severity.critical,
}
SERVICE_NAME_MAX = 100
_MACRO = re.compile(r"^\$[A-Za-z_][A-Za-z0-9_.]*\$$")  # $SERVICEDESC$, $service.name$


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


class _Params:
    def __init__(self, payload: dict[str, Any]) -> None:
        self._by_norm: dict[str, list[tuple[str, Any]]] = {}
        for key, value in payload.items():
            self._by_norm.setdefault(_norm(str(key)), []).append((str(key), value))

    def text(self, field: str) -> tuple[str, str] | None:
        for alias in ALIASES[field]:
            for key, value in self._by_norm.get(alias, []):
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, str | int | float):
                    raise invalid(key, "must be text")
                v = str(value).strip()
                if v and not _MACRO.match(v):
                    return key, v
        return None

    def get(self, field: str) -> str | None:
        found = self.text(field)
        return found[1] if found else None


def _state(p: _Params, field: str, states: tuple[str, ...]) -> str:
    """The state word from ``field``, else from ``<field>_id`` (0, 1, 2...)."""
    expected = ", ".join(states[:-1]) + " or " + states[-1]
    found = p.text(field)
    if found is not None:
        key, value = found
        if value.upper() not in states:
            raise invalid(key, f"must be {expected}")
        return value.upper()
    found = p.text(f"{field}_id")
    if found is not None:
        key, value = found
        if not value.isdigit() or int(value) >= len(states):
            raise invalid(key, f"must be a number from 0 to {len(states) - 1}")
        return states[int(value)]
    raise invalid(field, f"required: {expected}")


class _NagiosLike(Source):
    """Shared by the ``nagios`` and ``icinga`` kinds."""

    def parse(self, payload: Any) -> list[EventIn]:
        if not isinstance(payload, dict):
            raise invalid("body", "must be a JSON object")
        p = _Params(payload)
        found = p.text("notification_type")
        if found is None:
            raise invalid("notification_type", "required: $NOTIFICATIONTYPE$ (PROBLEM, RECOVERY, ...)")
        key, ntype = found
        ntype = ntype.upper()
        if ntype not in NOTIFICATION_TYPES:
            raise invalid(key, f"must be one of {', '.join(sorted(NOTIFICATION_TYPES))}")
        host = p.get("host_name")
        if host is None:
            raise invalid("host_name", "required: $HOSTNAME$")
        service = p.get("service_desc")
        host_label = p.get("host_display_name") or host
        if service is not None:
            state = _state(p, "service_state", SERVICE_STATES)
            output = p.get("service_output")
            long_output = p.get("long_service_output")
            what = f"{p.get('service_display_name') or service} on {host_label}"
            fingerprint = f"{self.kind}:{host}!{service}"
        else:
            state = _state(p, "host_state", HOST_STATES)
            output = p.get("host_output")
            long_output = p.get("long_host_output")
            what = host_label
            fingerprint = f"{self.kind}:{host}"
        resolved = ntype == "RECOVERY" or state in ("OK", "UP")
        summary = f"{what} is {state}" + (f": {output}" if output else "")

        labels = {
            "host": host,
            "host_address": p.get("host_address"),
            "host_display_name": p.get("host_display_name"),
            "service_name": service,
            "service_display_name": p.get("service_display_name"),
            "state": state,
            "host_state": p.get("host_state") if service is not None else None,
            "notification_type": ntype,
            "output": output,
            "long_output": long_output,
            "notification_author": p.get("notification_author"),
            "notification_comment": p.get("notification_comment"),
            "notification_number": p.get("notification_number"),
            "date_time": p.get("date_time"),
        }
        for name, same in (("host_display_name", host), ("service_display_name", service)):
            if labels[name] == same:
                labels[name] = None
        opsdesk_service = p.get("opsdesk_service")
        return [
            EventIn(
                source=self.kind,
                fingerprint=fingerprint[:200],
                status=EventStatus.resolved if resolved else EventStatus.firing,
                severity=SEVERITY[state],
                summary=summary[:1000],
                service=opsdesk_service
                if opsdesk_service and len(opsdesk_service) <= SERVICE_NAME_MAX
                else None,
                ci=host[:200],
                labels=clip_labels({k: v for k, v in labels.items() if v}),
            )
        ]


@register
class Nagios(_NagiosLike):
    kind = "nagios"


@register
class Icinga(_NagiosLike):
    kind = "icinga"
