"""The alert pipeline: dedup, reopen window, rules, mutes and topology-aware correlation.

Each test drives the real stages (normalize, store, process) on a real database with simulated
time, and reads the alerts and incidents they produced.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from opsdesk.alerts import processing
from opsdesk.alerts import service as alerts
from opsdesk.alerts.models import Alert, Event, NoiseDaily
from opsdesk.alerts.schemas import EventIn
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import CIIn, RelationshipIn, ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.core.db import Database
from opsdesk.incidents.models import Incident, TimelineEntry

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CONFIG = processing.PipelineConfig(
    reopen_window=timedelta(minutes=15), group_window=timedelta(minutes=10), group_by=()
)


def send(
    db: Database, at: datetime, *events: dict[str, Any], config: processing.PipelineConfig = CONFIG
) -> None:
    with db.session() as s:
        normalized = alerts.normalize(s, [EventIn.model_validate(e) for e in events], batch=True)
        alerts.store_events(s, normalized, now=at)
    with db.session() as s:
        while alerts.process_pending(s, now=at, limit=1000, config=config):
            pass


def fire(summary: str, **kw: Any) -> dict[str, Any]:
    return {"summary": summary, "status": "firing", **kw}


def resolve(summary: str, **kw: Any) -> dict[str, Any]:
    return {"summary": summary, "status": "resolved", **kw}


def all_alerts(db: Database) -> list[Alert]:
    with db.session() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def all_incidents(db: Database) -> list[Incident]:
    with db.session() as s:
        return list(s.scalars(select(Incident).order_by(Incident.id)))


def topology(db: Database) -> dict[str, int]:
    """core-sw <- access-sw <- web1, web2 ; db1 <- app1 ; service shop needs app1; service web needs web1."""
    ids: dict[str, int] = {}
    with db.session() as s:
        for name in ("shop", "web", "network"):
            ids[name] = cmdb.create_service(s, ServiceIn(name=name), actor=SYSTEM, now=T0).id
        for name, cls in [
            ("core-sw", "network_device"),
            ("access-sw", "network_device"),
            ("web1", "server"),
            ("web2", "server"),
            ("db1", "database"),
            ("app1", "application"),
        ]:
            ids[name] = cmdb.create_ci(s, CIIn(name=name, ci_class=cls), actor=SYSTEM, now=T0).id

        def rel(kind: str, src: tuple[str, str], tgt: tuple[str, str]) -> None:
            cmdb.create_relationship(
                s,
                RelationshipIn(
                    type=kind,
                    source_type=src[0],
                    source_id=ids[src[1]],
                    target_type=tgt[0],
                    target_id=ids[tgt[1]],
                ),
                actor=SYSTEM,
                now=T0,
            )

        rel("connects_to", ("ci", "access-sw"), ("ci", "core-sw"))
        rel("connects_to", ("ci", "web1"), ("ci", "access-sw"))
        rel("connects_to", ("ci", "web2"), ("ci", "access-sw"))
        rel("depends_on", ("ci", "app1"), ("ci", "db1"))
        rel("depends_on", ("service", "shop"), ("ci", "app1"))
        rel("depends_on", ("service", "web"), ("ci", "web1"))
    return ids


# --- dedup --------------------------------------------------------------------------------------


def test_repeats_are_one_alert_with_count_and_first_and_last_seen(db: Database) -> None:
    for i in range(3):
        send(db, T0 + timedelta(seconds=30 * i), fire("disk full", fingerprint="fp-1", severity="warning"))
    (a,) = all_alerts(db)
    assert (a.event_count, a.first_seen, a.last_seen) == (3, T0, T0 + timedelta(seconds=60))
    assert a.rule == "default"
    assert len(all_incidents(db)) == 1


def test_fingerprint_from_labels_when_the_source_gives_none(db: Database) -> None:
    labels = {"alertname": "HighLoad", "instance": "web1"}
    send(db, T0, fire("load is 12", labels=labels))
    send(db, T0 + timedelta(minutes=1), fire("load is 14", labels=dict(reversed(list(labels.items())))))
    send(
        db, T0 + timedelta(minutes=1), fire("load is 9", labels={"alertname": "HighLoad", "instance": "web2"})
    )
    got = all_alerts(db)
    assert [a.event_count for a in got] == [2, 1]
    assert got[0].summary == "load is 14"  # the newest event's


def test_resolved_then_firing_within_the_window_reopens_alert_and_incident(db: Database) -> None:
    send(db, T0, fire("link down", fingerprint="link"))
    send(db, T0 + timedelta(minutes=1), resolve("link up", fingerprint="link"))
    (inc,) = all_incidents(db)
    assert inc.status == "resolved"
    send(db, T0 + timedelta(minutes=5), fire("link down", fingerprint="link"))
    (a,) = all_alerts(db)
    (inc,) = all_incidents(db)
    assert (a.status, a.reopened_count, a.event_count) == ("firing", 1, 3)
    assert (inc.status, inc.reopened_count, inc.resolved_at) == ("triggered", 1, None)
    with db.session() as s:
        kinds = [t.kind for t in s.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == inc.id))]
    assert "reopened" in kinds


def test_firing_again_after_the_window_is_a_new_alert_and_incident(db: Database) -> None:
    send(db, T0, fire("link down", fingerprint="link"))
    send(db, T0 + timedelta(minutes=1), resolve("link up", fingerprint="link"))
    send(
        db, T0 + timedelta(minutes=1, seconds=1) + CONFIG.reopen_window, fire("link down", fingerprint="link")
    )
    assert [a.status for a in all_alerts(db)] == ["resolved", "firing"]
    assert [i.status for i in all_incidents(db)] == ["resolved", "triggered"]


def test_a_late_resolve_changes_nothing(db: Database) -> None:
    send(db, T0, resolve("never fired", fingerprint="ghost"))
    assert all_alerts(db) == [] and all_incidents(db) == []
    with db.session() as s:
        (ev,) = s.scalars(select(Event))
        assert ev.processed_at is not None and ev.alert_id is None


def test_every_event_points_at_its_alert(db: Database) -> None:
    send(db, T0, fire("a", fingerprint="x"), fire("a", fingerprint="x"), fire("b", fingerprint="y"))
    with db.session() as s:
        pairs = [(e.fingerprint, e.alert_id) for e in s.scalars(select(Event).order_by(Event.id))]
    a, b = all_alerts(db)
    assert pairs == [("x", a.id), ("x", a.id), ("y", b.id)]


# --- grouping and topology ------------------------------------------------------------------------


def test_alerts_of_one_service_share_its_open_incident(db: Database) -> None:
    topology(db)
    send(db, T0, fire("disk full on web1", service="web", ci="web1", fingerprint="d1"))
    send(db, T0 + timedelta(hours=2), fire("disk full on web2", service="web", ci="web2", fingerprint="d2"))
    (inc,) = all_incidents(db)
    assert {a.incident_id for a in all_alerts(db)} == {inc.id}
    assert inc.group_key == f"service:{cmdb_id(db, 'web')}"


def cmdb_id(db: Database, name: str) -> int:
    with db.session() as s:
        svc = cmdb.get_service_by_name(s, name)
        assert svc is not None
        return svc.id


def test_symptoms_join_the_incident_of_what_they_need(db: Database) -> None:
    topology(db)
    send(db, T0, fire("core switch down", ci="core-sw", fingerprint="sw", severity="critical"))
    send(
        db,
        T0 + timedelta(seconds=40),
        fire("web1 unreachable", ci="web1", fingerprint="w1"),
        fire("web2 unreachable", ci="web2", fingerprint="w2"),
        fire("access switch unreachable", ci="access-sw", fingerprint="asw"),
    )
    (inc,) = all_incidents(db)
    assert inc.title == "core switch down" and inc.priority == "P1"
    assert all(a.incident_id == inc.id for a in all_alerts(db))


def test_a_cause_reported_after_its_symptoms_merges_their_incidents(db: Database) -> None:
    ids = topology(db)
    send(db, T0, fire("shop checkout failing", service="shop", fingerprint="shop"))
    send(db, T0 + timedelta(seconds=20), fire("app1 errors", ci="app1", fingerprint="app"))
    assert len(all_incidents(db)) == 1  # app1 is what the shop needs: joined already
    send(db, T0 + timedelta(seconds=30), fire("web2 unreachable", ci="web2", fingerprint="w2"))
    send(db, T0 + timedelta(seconds=35), fire("web1 unreachable", ci="web1", fingerprint="w1"))
    assert len([i for i in all_incidents(db) if i.merged_into_id is None]) == 3
    # the access switch is what both web hosts need: their two incidents become one
    send(db, T0 + timedelta(seconds=60), fire("access switch down", ci="access-sw", fingerprint="asw"))
    incs = all_incidents(db)
    live = [i for i in incs if i.merged_into_id is None]
    assert len(live) == 2
    web = next(i for i in live if i.ci_id == ids["access-sw"])
    merged = [i for i in incs if i.merged_into_id == web.id]
    assert len(merged) == 1 and merged[0].status == "resolved"
    by_fp = {a.fingerprint: a.incident_id for a in all_alerts(db)}
    assert by_fp["w1"] == by_fp["w2"] == by_fp["asw"] == web.id
    assert by_fp["shop"] == by_fp["app"] != web.id


def test_unrelated_failures_at_once_stay_apart(db: Database) -> None:
    topology(db)
    send(
        db,
        T0,
        fire("db1 down", ci="db1", fingerprint="db"),
        fire("web2 unreachable", ci="web2", fingerprint="w2"),
    )
    assert len(all_incidents(db)) == 2


def test_topology_joins_only_within_the_group_window(db: Database) -> None:
    topology(db)
    send(db, T0, fire("core switch degraded", ci="core-sw", fingerprint="sw"))
    send(
        db,
        T0 + CONFIG.group_window + timedelta(seconds=1),
        fire("web1 unreachable", ci="web1", fingerprint="w1"),
    )
    assert len(all_incidents(db)) == 2


def test_the_last_alert_to_recover_resolves_the_incident(db: Database) -> None:
    topology(db)
    send(
        db,
        T0,
        fire("core switch down", ci="core-sw", fingerprint="sw"),
        fire("web1", ci="web1", fingerprint="w1"),
    )
    send(db, T0 + timedelta(minutes=3), resolve("core switch up", ci="core-sw", fingerprint="sw"))
    (inc,) = all_incidents(db)
    assert inc.status == "triggered"
    send(db, T0 + timedelta(minutes=4), resolve("web1 up", ci="web1", fingerprint="w1"))
    (inc,) = all_incidents(db)
    assert inc.status == "resolved" and inc.resolved_at == T0 + timedelta(minutes=4)


def test_a_more_severe_alert_raises_the_incident(db: Database) -> None:
    topology(db)
    send(db, T0, fire("slow pages", service="web", severity="warning", fingerprint="slow"))
    assert all_incidents(db)[0].priority == "P3"
    send(
        db,
        T0 + timedelta(minutes=1),
        fire("web down", service="web", severity="critical", fingerprint="down"),
    )
    (inc,) = all_incidents(db)
    assert (inc.severity, inc.priority) == ("critical", "P1")


def test_an_unknown_ci_name_is_kept_as_a_label(db: Database) -> None:
    send(db, T0, fire("host gone", ci="not-in-cmdb", fingerprint="x"))
    (a,) = all_alerts(db)
    assert a.ci_id is None and a.labels["ci"] == "not-in-cmdb"


# --- noise ----------------------------------------------------------------------------------------


def test_noise_counts_events_alerts_and_incidents_per_day_and_source(db: Database) -> None:
    topology(db)
    send(db, T0, *[fire("web1 down", ci="web1", fingerprint="w1", source="zabbix") for _ in range(5)])
    send(db, T0, fire("web2 down", ci="web2", fingerprint="w2", source="zabbix"))
    send(db, T0 + timedelta(days=1), fire("db down", ci="db1", fingerprint="db", source="nagios"))
    with db.session() as s:
        rows = {
            (r.day, r.source): (r.events, r.alerts, r.incidents, r.muted)
            for r in s.scalars(select(NoiseDaily))
        }
    assert rows == {
        (T0.date(), "zabbix"): (6, 2, 2, 0),
        ((T0 + timedelta(days=1)).date(), "nagios"): (1, 1, 1, 0),
    }


# --- rules ----------------------------------------------------------------------------------------


def add_rule(db: Database, **kw: Any) -> None:
    from opsdesk.alerts import rules
    from opsdesk.alerts.admin_schemas import RuleIn

    with db.session() as s:
        rules.create(s, RuleIn.model_validate(kw), actor=SYSTEM, now=T0)


def test_a_rule_fingerprints_by_its_labels_and_the_alert_names_it(db: Database) -> None:
    add_rule(db, name="disk-per-host", matchers=["alertname=DiskFull"], fingerprint_labels=["instance"])
    send(db, T0, fire("/ 95%", labels={"alertname": "DiskFull", "instance": "web1", "mount": "/"}))
    send(db, T0, fire("/var 97%", labels={"alertname": "DiskFull", "instance": "web1", "mount": "/var"}))
    send(db, T0, fire("load", labels={"alertname": "HighLoad", "instance": "web1"}))
    disk, load = all_alerts(db)
    assert (disk.rule, disk.event_count) == ("disk-per-host", 2)
    assert (load.rule, load.event_count) == ("default", 1)


def test_a_rule_groups_by_its_labels_within_its_window(db: Database) -> None:
    add_rule(
        db, name="by-cluster", matchers=['job=~"node|mysql"'], group_by=["cluster"], group_window_seconds=300
    )
    send(db, T0, fire("a", labels={"job": "node", "cluster": "eu", "instance": "1"}))
    send(db, T0 + timedelta(seconds=60), fire("b", labels={"job": "mysql", "cluster": "eu", "instance": "2"}))
    send(db, T0 + timedelta(seconds=60), fire("c", labels={"job": "node", "cluster": "us", "instance": "3"}))
    send(db, T0 + timedelta(seconds=500), fire("d", labels={"job": "node", "cluster": "eu", "instance": "4"}))
    a, b, c, d = all_alerts(db)
    assert a.incident_id == b.incident_id
    assert len({a.incident_id, c.incident_id, d.incident_id}) == 3  # other cluster; after the window
    assert a.group_key == "by-cluster|cluster=eu"


def test_the_lowest_position_wins(db: Database) -> None:
    add_rule(db, name="late", position=20, matchers=["severity=critical"])
    add_rule(db, name="early", position=10, matchers=['source=~"zab.*"'])
    send(db, T0, fire("x", source="zabbix", severity="critical", fingerprint="x"))
    send(db, T0, fire("y", source="nagios", severity="critical", fingerprint="y"))
    assert [a.rule for a in all_alerts(db)] == ["early", "late"]


def test_a_rule_reopen_window_overrides_the_default(db: Database) -> None:
    add_rule(db, name="no-reopen", matchers=["alertname=Flappy"], reopen_window_seconds=0)
    labels = {"alertname": "Flappy"}
    send(db, T0, fire("down", labels=labels))
    send(db, T0 + timedelta(seconds=30), resolve("up", labels=labels))
    send(db, T0 + timedelta(seconds=60), fire("down", labels=labels))
    assert [a.status for a in all_alerts(db)] == ["resolved", "firing"]


# --- silences and maintenance -------------------------------------------------------------------------


def add_silence(db: Database, *matchers: str, start: datetime = T0, hours: float = 1) -> int:
    from opsdesk.alerts import silences
    from opsdesk.alerts.admin_schemas import SilenceIn

    with db.session() as s:
        data = SilenceIn.model_validate(
            {
                "matchers": list(matchers),
                "starts_at": start,
                "ends_at": start + timedelta(hours=hours),
                "comment": "t",
            }
        )
        return silences.create(s, data, actor=SYSTEM, now=start).id


def add_window(db: Database, **kw: Any) -> int:
    from opsdesk.alerts.admin_schemas import WindowIn
    from opsdesk.changes import maintenance

    with db.session() as s:
        return maintenance.create(s, WindowIn.model_validate({"name": "w", **kw}), actor=SYSTEM, now=T0).id


def test_a_silenced_alert_is_kept_and_counted_but_opens_no_incident(db: Database) -> None:
    sid = add_silence(db, 'alertname="DiskFull"', "instance=~web.*")
    send(db, T0 + timedelta(minutes=1), fire("disk", labels={"alertname": "DiskFull", "instance": "web1"}))
    send(db, T0 + timedelta(minutes=1), fire("disk", labels={"alertname": "DiskFull", "instance": "db1"}))
    muted, loud = all_alerts(db)
    assert (muted.muted, muted.muted_by, muted.incident_id) == (True, {"silences": [sid]}, None)
    assert not loud.muted and loud.incident_id is not None
    with db.session() as s:
        (row,) = s.scalars(select(NoiseDaily))
        assert (row.events, row.alerts, row.incidents, row.muted) == (2, 2, 1, 1)


def test_a_silence_not_yet_started_or_ended_mutes_nothing(db: Database) -> None:
    add_silence(db, "alertname=A", start=T0 + timedelta(hours=1))
    add_silence(db, "alertname=A", start=T0 - timedelta(hours=2), hours=1)
    send(db, T0, fire("a", labels={"alertname": "A"}))
    (a,) = all_alerts(db)
    assert not a.muted and a.incident_id is not None


def test_when_the_silence_ends_a_still_firing_alert_pages(db: Database) -> None:
    add_silence(db, "alertname=A", hours=1)
    send(db, T0 + timedelta(minutes=5), fire("a", labels={"alertname": "A"}))
    with db.session() as s:
        assert processing.unmute_expired(s, now=T0 + timedelta(minutes=30), config=CONFIG) == 0
    with db.session() as s:
        assert processing.unmute_expired(s, now=T0 + timedelta(hours=1, minutes=1), config=CONFIG) == 1
    (a,) = all_alerts(db)
    assert not a.muted and a.incident_id is not None and a.muted_by == {"silences": [1]}


def test_maintenance_on_a_ci_mutes_it_and_what_needs_it(db: Database) -> None:
    ids = topology(db)
    wid = add_window(db, ci_id=ids["access-sw"], starts_at=T0, ends_at=T0 + timedelta(hours=2))
    send(
        db,
        T0 + timedelta(minutes=10),
        fire("access switch down", ci="access-sw", fingerprint="asw"),
        fire("web1 unreachable", ci="web1", fingerprint="w1"),
        fire("core switch down", ci="core-sw", fingerprint="sw"),
    )
    asw, w1, sw = all_alerts(db)
    assert asw.muted_by == w1.muted_by == {"maintenance": [wid]}
    assert not sw.muted and sw.incident_id is not None


def test_recurring_maintenance_on_a_service_mutes_only_during_its_occurrences(db: Database) -> None:
    ids = topology(db)
    # Every day 02:00-03:00 UTC, starting the day before T0 (12:00).
    first = T0.replace(hour=2) - timedelta(days=1)
    add_window(
        db, service_id=ids["shop"], starts_at=first, ends_at=first + timedelta(hours=1), rrule="FREQ=DAILY"
    )
    send(db, T0.replace(hour=2, minute=30), fire("night", service="shop", fingerprint="n"))
    send(db, T0, fire("noon", service="shop", fingerprint="d"))
    night, noon = all_alerts(db)
    assert night.muted and not noon.muted


# --- CIs named by labels, services of CIs, what runs where ------------------------------------------


def test_the_ci_is_found_from_prometheus_labels_and_joins_by_topology(db: Database) -> None:
    ids = topology(db)
    send(db, T0, fire("core switch down", ci="core-sw", fingerprint="sw"))
    send(
        db,
        T0 + timedelta(seconds=30),
        fire("web2 down", labels={"alertname": "InstanceDown", "instance": "web2:9100"}),
    )
    sw, web2 = all_alerts(db)
    assert web2.ci_id == ids["web2"] and web2.incident_id == sw.incident_id
    assert processing.ci_candidates({"instance": "https://db1.example.com:8443/health"}) == [
        "db1.example.com:8443",
        "db1.example.com",
        "db1",
    ]


def test_a_ci_alert_takes_the_one_service_that_needs_the_ci(db: Database) -> None:
    ids = topology(db)
    send(db, T0, fire("web1 disk full", ci="web1", fingerprint="d1"))
    (a,) = all_alerts(db)
    assert a.service_id == ids["web"]  # service web depends_on web1
    (inc,) = all_incidents(db)
    assert inc.service_id == ids["web"]


def test_an_alert_on_what_an_application_runs_on_joins_what_the_application_needs(db: Database) -> None:
    ids = topology(db)
    with db.session() as s:
        pod = cmdb.create_ci(s, CIIn(name="app1-pod", ci_class="container"), actor=SYSTEM, now=T0).id
        cmdb.create_relationship(
            s,
            RelationshipIn(
                type="runs_on", source_type="ci", source_id=ids["app1"], target_type="ci", target_id=pod
            ),
            actor=SYSTEM,
            now=T0,
        )
    send(db, T0, fire("db1 down", ci="db1", fingerprint="db"))
    send(
        db,
        T0 + timedelta(seconds=20),
        fire("pod not ready", labels={"pod": "app1-pod", "alertname": "NotReady"}),
    )
    db_alert, pod_alert = all_alerts(db)
    assert pod_alert.ci_id == pod and pod_alert.incident_id == db_alert.incident_id


def test_a_batch_mixing_repeats_resolves_and_refires_keeps_every_alert_exact(db):
    """Alerts that only repeat in a batch are added up in one statement; those that change state in
    it go through one by one: both, in one batch, come out as if each event were applied alone."""
    send(db, T0, fire("steady", fingerprint="a"), fire("flaps", fingerprint="b"))
    later = T0 + timedelta(minutes=1)
    send(
        db,
        later,
        fire("steady again", fingerprint="a", severity="critical"),
        fire("flaps", fingerprint="b"),
        fire("steady once more", fingerprint="a"),
        resolve("flaps", fingerprint="b"),
        fire("flaps back", fingerprint="b"),
        fire("new one", fingerprint="c"),
        fire("new one", fingerprint="c"),
    )
    by_fp = {a.fingerprint: a for a in all_alerts(db)}
    assert len(all_alerts(db)) == 3
    a, b, c = by_fp["a"], by_fp["b"], by_fp["c"]
    assert (a.status, a.event_count, a.summary, a.severity) == ("firing", 3, "steady once more", "error")
    assert a.first_seen == T0 and a.last_seen == later
    assert (b.status, b.event_count, b.reopened_count, b.summary) == ("firing", 4, 1, "flaps back")
    assert b.resolved_at is None
    assert (c.status, c.event_count) == ("firing", 2)
    with db.session() as s:
        events = list(s.scalars(select(Event).order_by(Event.id)))
    assert all(e.processed_at is not None for e in events)
    assert [e.alert_id for e in events] == [a.id, b.id, a.id, b.id, a.id, b.id, b.id, c.id, c.id]


@pytest.mark.parametrize("sqlite_before_3_33", [False, True])
def test_repeats_and_processed_marks_of_a_large_batch_are_all_written(db, monkeypatch, sqlite_before_3_33):
    """On SQLite the repeats' counts and the processed marks are written a few hundred rows per
    statement (``UPDATE … FROM (VALUES …)``), or row by row where SQLite is older than 3.33: a batch
    spanning several statements loses none of them, on either path."""
    if sqlite_before_3_33:
        monkeypatch.setattr(processing, "SQLITE_VERSION", (3, 32, 0))
    n = processing._UPDATE_ROWS + 50
    send(db, T0, *(fire(f"disk {i}", fingerprint=f"fp-{i}") for i in range(n)))
    later = T0 + timedelta(minutes=1)
    send(db, later, *(fire(f"disk {i} again", fingerprint=f"fp-{i % n}") for i in range(2 * n)))
    got = all_alerts(db)
    assert len(got) == n
    assert {(a.event_count, a.last_seen) for a in got} == {(3, later)}
    assert {a.summary for a in got} == {f"disk {n + i} again" for i in range(n)}  # the newest event's
    by_fp = {a.fingerprint: a.id for a in got}
    with db.session() as s:
        events = list(s.scalars(select(Event).order_by(Event.id)))
    assert len(events) == 3 * n
    assert all(e.processed_at is not None for e in events)
    assert [e.alert_id for e in events] == [by_fp[e.fingerprint] for e in events]


def test_muted_alerts_are_read_again_only_when_a_mute_ended_or_changed(db: Database, monkeypatch) -> None:
    """The pipeline's unmute pass compares what mutes alerts now with its last pass: while every
    silence and window is still there, unchanged, the muted alerts are not read at all; when one
    ends (or is edited), they all are, page after page."""
    from opsdesk.alerts import silences
    from opsdesk.core.clock import ManualClock
    from opsdesk.runtime.pipeline import Pipeline

    sid = add_silence(db, "alertname=A", hours=1)
    add_silence(db, "alertname=B", hours=1)
    send(
        db,
        T0 + timedelta(minutes=1),
        *(fire(f"a{i}", labels={"alertname": "A", "n": str(i)}) for i in range(5)),
    )
    clock = ManualClock(T0 + timedelta(minutes=2))
    pipeline = Pipeline(db, clock, config=CONFIG)
    reads: list[int] = []
    real = processing.unmute_expired

    def counting(s, **kw):  # type: ignore[no-untyped-def]
        reads.append(1)
        return real(s, **kw, page=2)  # small pages: all five are still read

    monkeypatch.setattr(processing, "unmute_expired", counting)
    assert pipeline._unmute() == 0 and len(reads) == 1  # the first pass reads them
    clock.set(T0 + timedelta(minutes=3))
    assert pipeline._unmute() == 0 and len(reads) == 1  # nothing ended: not read
    add_silence(db, "alertname=C", hours=1)
    assert pipeline._unmute() == 0 and len(reads) == 1  # a new silence unmutes nothing
    with db.session() as s:
        silences.expire(s, sid, actor=SYSTEM, now=clock.now())
    assert pipeline._unmute() == 5 and len(reads) == 2
    assert all(not a.muted and a.incident_id is not None for a in all_alerts(db))
