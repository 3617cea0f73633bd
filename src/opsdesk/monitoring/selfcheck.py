"""The prober's self-check: before failures count against monitors, is the prober's own network up?

When the machine running the checks loses its network, every monitor fails at once; paging for
all of them would be a false alarm (Uptime Kuma #6040). So when a batch of results holds failures,
the prober asks :meth:`NetworkCheck.ok` and, if its own network is down, records those failures
as *unknown* (inconclusive): nothing pages, nothing resolves, and the checks go on.

The verdict comes from, in order:

- **canaries** (``OPSDESK_PROBE_CANARIES``: ``host:port`` pairs, e.g. the default gateway's SSH port or
  the local DNS resolver): the network is up when at least one answers a TCP connection, refused
  included (a refusal is an answer: the host is reachable);
- otherwise the **routing table**: the network is up while a default route exists over an
  interface that is up (Linux ``/proc/net/route`` and ``/proc/net/ipv6_route``). Elsewhere: up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from opsdesk.monitoring.checks.tcp import split_host_port


@dataclass
class Verdict:
    ok: bool
    reason: str


class NetworkCheck:
    def __init__(self, canaries: list[str] | None = None, *, max_age: float = 5.0, timeout: float = 2.0):
        self.canaries = [split_host_port(c) for c in canaries or []]
        self.max_age = max_age
        self.timeout = timeout
        self._last: Verdict | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def ok(self) -> Verdict:
        """The network's state, measured at most ``max_age`` seconds ago."""
        async with self._lock:
            if self._last is None or time.monotonic() - self._at > self.max_age:
                self._last = await self._measure()
                self._at = time.monotonic()
            return self._last

    async def _measure(self) -> Verdict:
        if self.canaries:
            results = await asyncio.gather(*(self._reach(h, p) for h, p in self.canaries))
            if any(results):
                return Verdict(True, "a canary answered")
            names = ", ".join(f"{h}:{p}" for h, p in self.canaries)
            return Verdict(False, f"no canary answers ({names})")
        return route_verdict()

    async def _reach(self, host: str, port: int) -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
        except ConnectionRefusedError:
            return True  # the host answered with a reset: it is reachable
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 0.5)
        return True


def route_verdict(proc: Path = Path("/proc/net")) -> Verdict:
    """Up when a default route exists over an interface that is up."""
    v4, v6 = proc / "route", proc / "ipv6_route"
    if not v4.exists() and not v6.exists():
        return Verdict(True, "no routing table to read on this system")
    ifaces: set[str] = set()
    with contextlib.suppress(OSError):
        for line in v4.read_text().splitlines()[1:]:
            f = line.split()
            # Iface Destination Gateway Flags ...; RTF_UP = 0x1
            if len(f) > 3 and f[1] == "00000000" and int(f[3], 16) & 0x1:
                ifaces.add(f[0])
    with contextlib.suppress(OSError):
        for line in v6.read_text().splitlines():
            f = line.split()
            # dest prefixlen src srcprefixlen nexthop metric refcnt use flags iface
            if len(f) >= 10 and f[0] == "0" * 32 and f[1] == "00" and f[9] != "lo" and int(f[8], 16) & 0x1:
                ifaces.add(f[9])
    up = [i for i in sorted(ifaces) if _iface_up(i)]
    if up:
        return Verdict(True, f"default route via {', '.join(up)}")
    if ifaces:
        return Verdict(False, f"the interface of the default route is down ({', '.join(sorted(ifaces))})")
    return Verdict(False, "no default route: the prober has no network")


def _iface_up(name: str) -> bool:
    state = Path("/sys/class/net") / name / "operstate"
    try:
        return state.read_text().strip() in ("up", "unknown")  # "unknown": tun/ppp links report this
    except OSError:
        return True
