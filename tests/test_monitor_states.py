"""States that mean something: retries, flap detection with hysteresis, state history, rule
findings as alerts of their own, and the prober's self-check (its own network down: unknown, no
page; back: no page for what did not change)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from opsdesk.core.actor import SYSTEM
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.checks.base import CheckOutcome, Finding
from opsdesk.monitoring.models import StateChange
from opsdesk.monitoring.scheduler import Scheduler
from opsdesk.monitoring.schemas import MonitorIn, MonitorUpdate
from opsdesk.monitoring.selfcheck import NetworkCheck, route_verdict
from tests.support import TargetServer


def _mk(db, clock, name="api", target="http://127.0.0.1:9/", **kw):  # type: ignore[no-untyped-def]
    with db.session() as s:
        return monitoring.create_monitor(
            s,
            MonitorIn(name=name, target=target, interval_seconds=30, timeout_seconds=2, **kw),
            actor=SYSTEM,
            now=clock.now(),
        ).id


def _feed(db, clock, mid, oks, **kw):  # type: ignore[no-untyped-def]
    """Record one result per item of ``oks``, 30 s apart."""
    for ok in oks:
        clock.advance(30)
        with db.session() as s:
            monitoring.record_results(
                s, [monitoring.Result(mid, clock.now(), CheckOutcome(ok, "fine" if ok else "refused", **kw))]
            )


def _get(db, mid):  # type: ignore[no-untyped-def]
    with db.session() as s:
        m = monitoring.get_monitor(s, mid)
        s.expunge(m)
        return m


def _events(db) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from opsdesk.alerts.models import Event

    with db.session() as s:
        return [(e.fingerprint, e.status, e.summary) for e in s.scalars(select(Event).order_by(Event.id))]


def _history(db, mid) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    with db.session() as s:
        rows = s.scalars(select(StateChange).where(StateChange.monitor_id == mid).order_by(StateChange.id))
        return [(r.old, r.new) for r in rows]


def test_retries_before_hard_down_and_state_history(db, clock):
    mid = _mk(db, clock, failures_before_down=3)
    _feed(db, clock, mid, [True, False, False])
    assert _get(db, mid).status == "up"  # two failures: still retrying
    assert _events(db) == []
    _feed(db, clock, mid, [False])
    assert _get(db, mid).status == "down"
    _feed(db, clock, mid, [True])
    assert _history(db, mid) == [("unknown", "up"), ("up", "down"), ("down", "up")]
    assert [(f, st) for f, st, _ in _events(db)] == [
        (f"monitor:{mid}", "firing"),
        (f"monitor:{mid}", "resolved"),
    ]


def test_flapping_pages_once_and_stops_with_hysteresis(db, clock):
    mid = _mk(db, clock, failures_before_down=1)
    _feed(db, clock, mid, [True] * 5)
    # Down and up on every check: each change alone would page and resolve.
    flap_started = None
    for i in range(12):
        _feed(db, clock, mid, [i % 2 == 1])
        if flap_started is None and _get(db, mid).flapping:
            flap_started = len(_events(db))
    assert flap_started is not None and flap_started <= 6, "detected within a few changes"
    ev = _events(db)
    assert ev[flap_started - 1][1] == "firing"  # "is down" or "is flapping", whichever came last
    assert ev[flap_started:] == [], "while flapping, changes page nobody"
    assert len(_history(db, mid)) > 10  # every change is still in the history
    # Stable again: flapping ends only when the change rate falls below the lower threshold.
    _feed(db, clock, mid, [True] * 3)
    assert _get(db, mid).flapping, "hysteresis: a few stable checks are not enough to end it"
    assert _events(db)[flap_started:] == []
    _feed(db, clock, mid, [True] * 15)
    m = _get(db, mid)
    assert not m.flapping and m.status == "up"
    assert [e[1] for e in _events(db)[flap_started:]] == ["resolved"]


def test_flap_percent_weights():
    assert monitoring.flap_percent("1" * 21) == 0
    assert monitoring.flap_percent("10" * 10 + "1") == pytest.approx(100.0)
    assert 0 < monitoring.flap_percent("1111101") < monitoring.flap_percent("1110101")
    older = monitoring.flap_percent("10" + "1" * 19)
    newer = monitoring.flap_percent("1" * 19 + "01")
    assert older < newer  # recent changes weigh more


def test_findings_raise_and_resolve_their_own_alerts(db, clock):
    mid = _mk(db, clock, name="node1", target="http://127.0.0.1:9/metrics")
    disk = Finding('disk_low{mountpoint="/"}', "disk / below 10%", "critical", {"mountpoint": "/"})
    load = Finding("load_high", "load 9", "warning")
    _feed(db, clock, mid, [True], findings=[disk])
    _feed(db, clock, mid, [True], findings=[disk, load])
    _feed(db, clock, mid, [False], findings=None)  # a failed scrape says nothing about the rules
    _feed(db, clock, mid, [True], findings=[load])
    # A rule that could not be evaluated this time keeps its alerts as they are.
    _feed(db, clock, mid, [True], findings=[], unevaluated=["load_high"])
    ev = [(f.split(":rule:")[1], st) for f, st, _ in _events(db) if ":rule:" in f]
    assert ev == [
        ('disk_low{mountpoint="/"}', "firing"),
        ("load_high", "firing"),
        ('disk_low{mountpoint="/"}', "resolved"),
    ]
    with db.session() as s:
        monitoring.delete_monitor(s, mid, actor=SYSTEM, now=clock.now())
    ev = [(f.split(":rule:")[1], st) for f, st, _ in _events(db) if ":rule:" in f]
    assert ev[-1] == ("load_high", "resolved")


def test_pausing_a_down_monitor_resolves_its_alert(db, clock):
    mid = _mk(db, clock, failures_before_down=1)
    _feed(db, clock, mid, [False])
    with db.session() as s:
        monitoring.update_monitor(s, mid, MonitorUpdate(enabled=False), actor=SYSTEM, now=clock.now())
    assert [st for _, st, _ in _events(db)] == ["firing", "resolved"]
    assert _history(db, mid)[-1] == ("down", "paused")


def test_inconclusive_results_make_unknown_and_page_nobody(db, clock):
    up = _mk(db, clock, name="up-one", failures_before_down=1)
    down = _mk(db, clock, name="down-one", failures_before_down=1)
    _feed(db, clock, up, [True])
    _feed(db, clock, down, [False])
    n = len(_events(db))
    for mid in (up, down):
        _feed(db, clock, mid, [False], conclusive=False)
        assert _get(db, mid).status == "unknown"
    assert len(_events(db)) == n  # neither paged nor resolved
    _feed(db, clock, up, [True])
    _feed(db, clock, down, [False])
    assert _get(db, up).status == "up" and _get(db, down).status == "down"
    assert len(_events(db)) == n  # back to the same states: nobody paged again


def test_route_verdict_reads_the_routing_table(tmp_path):
    (tmp_path / "route").write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\n"
    )
    (tmp_path / "ipv6_route").write_text("")
    v = route_verdict(tmp_path)
    assert not v.ok and "no default route" in v.reason
    (tmp_path / "route").write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "lo\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n"
    )
    assert route_verdict(tmp_path).ok  # lo is "unknown"/up: a default route over an up interface


@pytest.fixture
async def target():
    server = TargetServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def blackhole():
    """A loopback port that never answers: a listener whose backlog is full drops new SYNs."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    port = s.getsockname()[1]
    fill = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fill.append(c)
    yield port
    for c in fill:
        c.close()
    s.close()


async def test_probe_network_down_makes_unknown_not_down(db, clock, target, blackhole):
    """The prober's network goes away (its canary stops answering): every check fails, yet no
    monitor goes down and nothing pages. When it returns, states come back, and a monitor that
    was down before pages nobody again."""
    healthy = _mk(db, clock, name="healthy", target=target.url, failures_before_down=1)
    broken = _mk(db, clock, name="broken", target="http://127.0.0.1:9/", failures_before_down=1)
    canary = socket.socket()
    canary.bind(("127.0.0.1", 0))
    canary.listen(16)
    port = canary.getsockname()[1]
    network = NetworkCheck([f"127.0.0.1:{port}"], max_age=0)
    sched = Scheduler(db, clock, network=network)
    try:
        await sched.tick()
        assert _get(db, healthy).status == "up" and _get(db, broken).status == "down"
        paged = len(_events(db))
        # The network goes: the target is gone and the canary points at an address that never answers.
        await target.stop()
        network.canaries = [("127.0.0.1", blackhole)]
        network.timeout = 0.3
        clock.advance(31)
        await sched.tick()
        assert _get(db, healthy).status == "unknown"
        assert _get(db, broken).status == "unknown"
        assert "probe's network is down" in _get(db, healthy).last_message
        assert len(_events(db)) == paged
        # The network is back.
        await target.start()
        network.canaries = [("127.0.0.1", port)]
        clock.advance(31)
        await sched.tick()
        assert _get(db, healthy).status == "up" and _get(db, broken).status == "down"
        assert len(_events(db)) == paged
    finally:
        await sched.close()
        canary.close()


async def test_a_refused_canary_counts_as_reachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        assert (await NetworkCheck([f"127.0.0.1:{port}"]).ok()).ok
    await asyncio.sleep(0)


@pytest.mark.parametrize("seed", range(6))
def test_the_steady_fast_path_agrees_with_the_state_machine(db, clock, seed):
    """Results that change nothing are applied by a column-level UPDATE; everything else by the
    state machine. Fed the same random results, two monitors end in the same state either way."""
    import random

    from sqlalchemy import select

    from opsdesk.monitoring.models import Monitor

    rng = random.Random(seed)
    fast = _mk(db, clock, name="fast", failures_before_down=2)
    slow = _mk(db, clock, name="slow", failures_before_down=2)
    for _ in range(120):
        clock.advance(30)
        ok = rng.random() < (0.9 if rng.random() < 0.7 else 0.4)
        o = dict(ok=ok, degraded=ok and rng.random() < 0.1, latency_ms=rng.uniform(1, 50))
        with db.session() as s:
            monitoring.record_results(
                s, [monitoring.Result(fast, clock.now(), CheckOutcome(message="m", **o))]
            )
        with db.session() as s:
            loaded = {m.id: m for m in s.scalars(select(Monitor).where(Monitor.id == slow))}
            monitoring.record_results(
                s, [monitoring.Result(slow, clock.now(), CheckOutcome(message="m", **o))], loaded
            )
    cols = [
        "status",
        "recent",
        "flapping",
        "consecutive_failures",
        "alert_firing",
        "last_check_at",
        "last_latency_ms",
    ]
    a, b = _get(db, fast), _get(db, slow)
    assert [getattr(a, c) for c in cols] == [getattr(b, c) for c in cols]
    events = _events(db)
    assert [st for f, st, _ in events if f == f"monitor:{fast}"] == [
        st for f, st, _ in events if f == f"monitor:{slow}"
    ]


async def test_a_restart_pages_nobody_for_unchanged_states(db, clock, target):
    """Two probers one after the other (a restart): the down monitor paged once, the up one never."""
    up = _mk(db, clock, name="up-one", target=target.url, failures_before_down=1)
    down = _mk(db, clock, name="down-one", target="http://127.0.0.1:9/", failures_before_down=1)
    first = Scheduler(db, clock)
    try:
        await first.tick()
    finally:
        await first.close()
    assert _get(db, up).status == "up" and _get(db, down).status == "down"
    paged = _events(db)
    assert [(f, st) for f, st, _ in paged] == [(f"monitor:{down}", "firing")]
    clock.advance(120)
    second = Scheduler(db, clock)  # a new process: nothing in memory
    try:
        await second.tick()
    finally:
        await second.close()
    assert _get(db, up).status == "up" and _get(db, down).status == "down"
    assert _events(db) == paged
