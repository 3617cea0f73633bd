"""The interface every check type implements, and the registry that finds them by name.

A new check type is one module in this package that defines a :class:`CheckType` subclass and
decorates it with :func:`register`; :mod:`opsdesk.monitoring.checks` imports them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
from pydantic import BaseModel, ConfigDict


@dataclass
class CheckOutcome:
    """What one check found. ``ok`` with ``degraded`` means working but past a warning threshold."""

    ok: bool
    message: str
    latency_ms: float | None = None
    status_code: int | None = None
    degraded: bool = False


class CheckConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class ProbeContext:
    """What a check may use: one shared HTTP client session for the prober."""

    http: aiohttp.ClientSession


class CheckType:
    name: ClassVar[str]
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
