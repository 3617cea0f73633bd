"""Check types. Importing this package registers every one of them."""

from opsdesk.monitoring.checks import dns, heartbeat, http, ping, prometheus, snmp, tcp, tls
from opsdesk.monitoring.checks.base import REGISTRY, CheckOutcome, CheckType, ProbeContext, get_check_type

__all__ = [
    "REGISTRY",
    "CheckOutcome",
    "CheckType",
    "ProbeContext",
    "dns",
    "get_check_type",
    "heartbeat",
    "http",
    "ping",
    "prometheus",
    "snmp",
    "tcp",
    "tls",
]
