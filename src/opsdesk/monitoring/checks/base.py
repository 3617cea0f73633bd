"""The interface every check type implements, and the registry that finds them by name.

A new check type is one module in this package that defines a :class:`CheckType` subclass and
decorates it with :func:`register`; :mod:`opsdesk.monitoring.checks` imports them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
from pydantic import BaseModel, ConfigDict

from opsdesk.metrics.samples import Sample


@dataclass
class CheckOutcome:
    """What one check found. ``ok`` with ``degraded`` means working but past a warning threshold."""

    ok: bool
    message: str
    latency_ms: float | None = None
    status_code: int | None = None
    degraded: bool = False
    # Time series the check read (a scrape, SNMP counters): written to the metrics store.
    samples: list[Sample] = field(default_factory=list)
    # Threshold rules that hold right now, for checks that evaluate rules (a Prometheus scrape).
    # ``None`` means the check evaluated no rules this time (it failed), so nothing resolves.
    findings: list[Finding] | None = None
    # Rules that could not be evaluated this time: their open findings neither fire nor resolve.
    # A finding's key starts with its rule's name, followed by "{".
    unevaluated: list[str] = field(default_factory=list)
    # False when the probe could not judge (its own network is down): the state becomes unknown.
    conclusive: bool = True


@dataclass(frozen=True)
class Finding:
    """One rule that holds for one series: raised as its own alert while it keeps holding."""

    key: str  # stable within the monitor: the rule's name and the series' labels
    summary: str
    severity: str = "warning"
    labels: dict[str, str] = field(default_factory=dict)


class CheckConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class ProbeContext:
    """What a check may use: one shared HTTP client session for the prober."""

    http: aiohttp.ClientSession


class CheckType:
    name: ClassVar[str]
    # A passive type is never probed: something calls in (a heartbeat ping).
    passive: ClassVar[bool] = False
    config_model: ClassVar[type[CheckConfig]] = CheckConfig
    # Config fields holding credentials: kept encrypted at rest and never shown by the API.
    secret_fields: ClassVar[tuple[str, ...]] = ()

    def validate_target(self, target: str) -> str:
        return target

    async def run(self, target: str, config: Any, timeout: float, ctx: ProbeContext) -> CheckOutcome:
        raise NotImplementedError


REGISTRY: dict[str, CheckType] = {}


def register(cls: type[CheckType]) -> type[CheckType]:
    REGISTRY[cls.name] = cls()
    return cls


def get_check_type(name: str) -> CheckType | None:
    return REGISTRY.get(name)
