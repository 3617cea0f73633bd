"""Alert sources. Importing this package registers every one of them."""

from opsdesk.alerts.sources import alertmanager, generic, grafana, nagios, zabbix
from opsdesk.alerts.sources.base import REGISTRY, Source, get_source

__all__ = ["REGISTRY", "Source", "alertmanager", "generic", "get_source", "grafana", "nagios", "zabbix"]
