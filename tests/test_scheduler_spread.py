"""No thundering herd: after a first run (or a restart) each monitor takes its own phase within
its interval and keeps it; changed monitors are re-read; claims never hand out a monitor twice."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import insert

from opsdesk.core.actor import SYSTEM
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.models import Monitor
from opsdesk.monitoring.schemas import MonitorIn, MonitorUpdate


def _bulk(db, clock, n: int, interval: int = 60) -> None:  # type: ignore[no-untyped-def]
    now = clock.now()
    rows = [
        {
            "name": f"m{i}",
            "type": "http",
            "target": f"http://127.0.0.1:9/{i}",
            "config": {},
            "secrets": {},
            "interval_seconds": interval,
            "timeout_seconds": 5.0,
            "failures_before_down": 3,
            "severity": "critical",
            "enabled": True,
            "status": "unknown",
            "consecutive_failures": 0,
            "last_message": "",
            "next_check_at": now,
            "locations": ["local"],
            "created_at": now,
            "updated_at": now,
        }
        for i in range(n)
    ]
    with db.session() as s:
        s.execute(insert(Monitor), rows)


def test_first_round_spreads_over_the_interval_and_phases_hold(db, clock):
    _bulk(db, clock, 1200, interval=60)
    with db.session() as s:
        first = monitoring.claim_due(s, clock.now(), limit=5000)
    assert len(first) == 1200
    with db.session() as s:
        assert monitoring.claim_due(s, clock.now(), limit=5000) == []  # claimed once
        nexts = [m.next_check_at for m in monitoring.list_monitors(s, limit=5000)]
    per_second = Counter(int((t - clock.now()).total_seconds()) for t in nexts)
    assert min(per_second) >= 1 and max(per_second) <= 59
    assert max(per_second.values()) <= 60, "about 20 a second, never a herd"
    # Later rounds keep each phase: due + interval.
    cache: monitoring.DefinitionCache = {}
    with db.session() as s:
        s.query(Monitor).update({"last_check_at": clock.now()})
    clock.advance(30)
    with db.session() as s:
        due = monitoring.claim_due(s, clock.now(), limit=5000, cache=cache)
        assert 500 < len(due) < 700
        after = {m.id: m.next_check_at for m in monitoring.list_monitors(s, limit=5000)}
    for d in due:
        assert after[d.monitor_id] == d.due_at + timedelta(seconds=60)


def test_a_changed_monitor_is_re_read(db, clock):
    with db.session() as s:
        mid = monitoring.create_monitor(
            s, MonitorIn(name="a", target="http://127.0.0.1:9/a"), actor=SYSTEM, now=clock.now()
        ).id
    cache: monitoring.DefinitionCache = {}
    with db.session() as s:
        (d,) = monitoring.claim_due(s, clock.now(), cache=cache)
    assert d.target == "http://127.0.0.1:9/a"
    clock.advance(1)
    with db.session() as s:
        monitoring.update_monitor(
            s, mid, MonitorUpdate(target="http://127.0.0.1:9/b"), actor=SYSTEM, now=clock.now()
        )
    with db.session() as s:
        (d,) = monitoring.claim_due(s, clock.now(), cache=cache)
    assert d.target == "http://127.0.0.1:9/b"


def test_next_run_keeps_phase_unless_far_behind(clock):
    now = clock.now()
    assert monitoring.next_run(7, 60, now - timedelta(seconds=2), now) == now + timedelta(seconds=58)
    late = monitoring.next_run(7, 60, now - timedelta(seconds=600), now)
    assert now + timedelta(seconds=1) <= late < now + timedelta(seconds=60)
    assert late == monitoring.next_run(7, 60, None, now)  # stable per monitor
