"""HTTP(S) check: a request to a URL, up when the answer has the expected status in time."""

from __future__ import annotations

import asyncio
import time
from typing import Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field

from opsdesk.monitoring.checks.base import CheckConfig, CheckOutcome, CheckType, ProbeContext, register


class HttpConfig(CheckConfig):
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expected_status: int = Field(default=200, ge=100, le=599)


@register
class HttpCheck(CheckType):
    name = "http"
    config_model = HttpConfig

    def validate_target(self, target: str) -> str:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return target

    async def run(self, target: str, config: HttpConfig, timeout: float, ctx: ProbeContext) -> CheckOutcome:
        started = time.perf_counter()
        try:
            # Connection: close makes the server close first, so TIME_WAIT stays on its side.
            async with ctx.http.request(
                config.method,
                target,
                headers={"Connection": "close", "User-Agent": "opsdesk-monitor"},
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=True,
            ) as resp:
                await resp.read()
                latency = (time.perf_counter() - started) * 1000
                if resp.status == config.expected_status:
                    return CheckOutcome(True, f"HTTP {resp.status}", latency, resp.status)
                return CheckOutcome(
                    False, f"HTTP {resp.status}, expected {config.expected_status}", latency, resp.status
                )
        except TimeoutError:
            return CheckOutcome(False, f"timed out after {timeout:g}s", None)
        except aiohttp.ClientConnectorError as exc:
            return CheckOutcome(False, f"connection failed: {exc.os_error or exc}", None)
        except (aiohttp.ClientError, asyncio.CancelledError, OSError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            return CheckOutcome(False, f"{type(exc).__name__}: {exc}", None)
