"""The remote store against Debian's real Prometheus (remote-write receiver on loopback), and its
behaviour when the server is down, hangs, fails or refuses."""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cramjam
import pytest

from opsdesk.core.errors import OpsdeskError
from opsdesk.core.settings import Settings
from opsdesk.metrics.remote import PrometheusRemoteStore, RemoteStoreError, encode_write_request, selector
from opsdesk.metrics.samples import Sample, labels_of
from opsdesk.metrics.store import make_store, parse_matchers
from tests.conftest import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus with no scrape jobs, accepting remote write; its base URL."""
    if not Path(PROMETHEUS).exists():
        pytest.fail("Debian's prometheus is missing: apt-get install prometheus (see .ci/run)")
    tmp = tmp_path_factory.mktemp("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            "--web.enable-remote-write-receiver",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--config.file={config}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"prometheus did not start: {(tmp / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def store(prometheus: str) -> PrometheusRemoteStore:
    return PrometheusRemoteStore(f"{prometheus}/api/v1/write", prometheus, timeout=5, retries=1)


def recent_t0() -> int:
    """A whole 10 s, two minutes ago, in ms: recent enough for Prometheus' head block."""
    return (int(time.time()) // 10 * 10 - 120) * 1000


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_remote_write_then_read_back_raw_and_stepped(store: PrometheusRemoteStore) -> None:
    t0 = recent_t0()
    samples = [
        Sample("opsdesk_test_temp", labels_of({"instance": inst, "job": "t1"}), t0 + 5000 + 10_000 * i, v + i)
        for inst, v in (("a", 0.0), ("b", 100.0))
        for i in range(5)
    ]
    samples.reverse()  # out of order in the batch: the store sorts each series

    assert store.write(samples) == 10

    raw = store.query_range("opsdesk_test_temp", {"job": "t1"}, at(t0), at(t0 + 50_000))
    assert [(x.name, x.labels, x.resolution) for x in raw] == [
        ("opsdesk_test_temp", (("instance", "a"), ("job", "t1")), "remote"),
        ("opsdesk_test_temp", (("instance", "b"), ("job", "t1")), "remote"),
    ]
    assert raw[0].points == [(t0 + 5000 + 10_000 * i, float(i)) for i in range(5)]
    assert raw[1].points == [(t0 + 5000 + 10_000 * i, 100.0 + i) for i in range(5)]

    # Steps at t0+20s and t0+40s, each over the 20 s before it.
    stepped = store.query_range(
        "opsdesk_test_temp", {"instance": "a"}, at(t0 + 20_000), at(t0 + 40_000), 20, agg="max"
    )
    assert stepped[0].points == [(t0 + 20_000, 1.0), (t0 + 40_000, 3.0)]
    last = store.query_range(
        "opsdesk_test_temp", {"instance": "b"}, at(t0 + 20_000), at(t0 + 40_000), 20, agg="last"
    )
    assert last[0].points == [(t0 + 20_000, 101.0), (t0 + 40_000, 103.0)]


def test_label_values_are_escaped_and_matchers_work(store: PrometheusRemoteStore) -> None:
    t0 = recent_t0()
    odd = 'say "hi" \\ back\\slash\nnew line, ünïcödé {}'
    store.write(
        [
            Sample("opsdesk_test_odd", labels_of({"msg": odd, "n": "1"}), t0, 1.0),
            Sample("opsdesk_test_odd", labels_of({"msg": "plain", "n": "2"}), t0, 2.0),
            Sample("opsdesk_test_odd", labels_of({"msg": "plain", "n": "3", "empty": ""}), t0, math.inf),
        ]
    )
    window = (at(t0 - 1000), at(t0 + 1000))

    exact = store.query_range("opsdesk_test_odd", {"msg": odd}, *window)
    assert [(dict(x.labels), x.points) for x in exact] == [({"msg": odd, "n": "1"}, [(t0, 1.0)])]
    not_plain = store.query_range("opsdesk_test_odd", {"msg": "!plain"}, *window)
    assert [dict(x.labels)["n"] for x in not_plain] == ["1"]
    regex = store.query_range("opsdesk_test_odd", {"n": "~[23]"}, *window)
    assert [(dict(x.labels)["n"], x.points[0][1]) for x in regex] == [("2", 2.0), ("3", math.inf)]
    assert "empty" not in dict(regex[1].labels)  # an empty label value is no label, as in Prometheus
    assert store.query_range("opsdesk_test_odd", {"n": "!~.*"}, *window) == []
    assert store.query_range("opsdesk_test_nothing_here", None, *window) == []


def test_series_by_prefix_and_matchers(store: PrometheusRemoteStore) -> None:
    t0 = recent_t0()
    store.write(
        [
            Sample("opsdesk_series_up", labels_of({"host": "x"}), t0, 1.0),
            Sample("opsdesk_series_up", labels_of({"host": "y"}), t0, 1.0),
            Sample("opsdesk_series_down", labels_of({"host": "x"}), t0, 0.0),
        ]
    )

    assert store.series("opsdesk_series_") == [
        ("opsdesk_series_down", (("host", "x"),)),
        ("opsdesk_series_up", (("host", "x"),)),
        ("opsdesk_series_up", (("host", "y"),)),
    ]
    assert store.series("opsdesk_series_", {"host": "y"}) == [("opsdesk_series_up", (("host", "y"),))]
    assert store.series("opsdesk_series_", limit=1) == [("opsdesk_series_down", (("host", "x"),))]
    assert store.series("opsdesk_series_.") == []  # the prefix is literal, not a regex


def test_a_refused_write_is_reported_and_not_retried(store: PrometheusRemoteStore) -> None:
    slept: list[float] = []
    store.sleep = slept.append
    t0 = recent_t0()
    store.write([Sample("opsdesk_test_dup", (), t0, 1.0)])

    with pytest.raises(RemoteStoreError) as e:  # same timestamp, another value: Prometheus says 400
        store.write([Sample("opsdesk_test_dup", (), t0, 2.0)])

    assert "HTTP 400" in e.value.detail and e.value.written == 0
    assert slept == []
    assert store.failed_samples == 1 and "400" in store.last_error


def test_bad_query_is_a_422_with_the_field(store: PrometheusRemoteStore) -> None:
    window = (at(recent_t0()), at(recent_t0() + 1000))
    with pytest.raises(OpsdeskError) as e:
        store.query_range("bad name{", None, *window)
    assert e.value.status == 422 and e.value.errors[0].field == "name"
    with pytest.raises(OpsdeskError) as e:
        store.query_range("up", {"x": "~(unclosed"}, *window)
    assert e.value.errors[0].field == "x"


# --- failures without Prometheus -------------------------------------------------------------------


def test_prometheus_down_is_a_clear_error_after_bounded_retries() -> None:
    port = free_port()  # nothing listens there
    slept: list[float] = []
    store = PrometheusRemoteStore(
        f"http://127.0.0.1:{port}/api/v1/write",
        f"http://127.0.0.1:{port}",
        timeout=2,
        retries=2,
        backoff_seconds=0.01,
        sleep=slept.append,
    )
    started = time.monotonic()

    with pytest.raises(RemoteStoreError) as e:
        store.write([Sample("up", (), recent_t0(), 1.0)])
    with pytest.raises(RemoteStoreError) as q:
        store.query_range("up", None, at(recent_t0()), at(recent_t0() + 1000), 10)

    assert time.monotonic() - started < 5
    assert e.value.status == 502
    assert "after 3 attempts" in e.value.detail and "Connection" in e.value.detail, e.value.detail
    assert "after 3 attempts" in q.value.detail
    assert slept == [0.01, 0.02, 0.01, 0.02]
    assert store.failed_samples == 1


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (the backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        store = PrometheusRemoteStore(
            f"http://127.0.0.1:{port}/api/v1/write",
            f"http://127.0.0.1:{port}",
            timeout=0.5,
            retries=1,
            backoff_seconds=0.01,
        )
        started = time.monotonic()
        with pytest.raises(RemoteStoreError, match="after 2 attempts"):
            store.write([Sample("up", (), recent_t0(), 1.0)])
        assert time.monotonic() - started < 3


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503 to the first ``fail`` writes, then 204; keeps the bodies it was sent."""

    fail = 2
    bodies: list[bytes] = []
    headers_seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).headers_seen.append(dict(self.headers))
        if type(self).fail > 0:
            type(self).fail -= 1
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"busy")
            return
        type(self).bodies.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_5xx_is_retried_with_backoff_then_succeeds() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/write"
        slept: list[float] = []
        store = PrometheusRemoteStore(
            url,
            "http://unused",
            retries=3,
            backoff_seconds=0.5,
            max_backoff_seconds=0.8,
            sleep=slept.append,
            bearer_token="s3cret",
        )

        assert store.write([Sample("up", (("job", "x"),), 1_700_000_000_000, 1.0)]) == 1
    finally:
        server.shutdown()
        server.server_close()

    assert slept == [0.5, 0.8]
    assert len(_Flaky.bodies) == 1
    h = _Flaky.headers_seen[-1]
    assert h["Content-Encoding"] == "snappy"
    assert h["Content-Type"] == "application/x-protobuf"
    assert h["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    assert h["Authorization"] == "Bearer s3cret"
    assert bytes(cramjam.snappy.decompress_raw(_Flaky.bodies[0])) == encode_write_request(
        [("up", (("job", "x"),), [(1_700_000_000_000, 1.0)])]
    )


def test_large_batches_are_split_into_requests(prometheus: str) -> None:
    store = PrometheusRemoteStore(f"{prometheus}/api/v1/write", prometheus, max_samples_per_request=1000)
    t0 = recent_t0()
    samples = [
        Sample("opsdesk_test_many", labels_of({"i": str(i)}), t0 + j * 1000, float(j))
        for i in range(700)
        for j in range(5)
    ]

    assert store.write(samples) == 3500

    found = store.query_range("opsdesk_test_many", None, at(t0), at(t0 + 4000))
    assert len(found) == 700
    assert all(x.points == [(t0 + j * 1000, float(j)) for j in range(5)] for x in found)


# --- encoding and factory ---------------------------------------------------------------------------


def test_write_request_encoding_matches_the_protobuf_wire_format() -> None:
    got = encode_write_request([("up", (), [(1, 1.0)])])

    label = b"\x0a\x08__name__\x12\x02up"
    sample = b"\x09" + b"\x00\x00\x00\x00\x00\x00\xf0\x3f" + b"\x10\x01"
    series = b"\x0a" + bytes([len(label)]) + label + b"\x12" + bytes([len(sample)]) + sample
    assert got == b"\x0a" + bytes([len(series)]) + series


def test_selector_escapes_values() -> None:
    ms = parse_matchers({"a": 'x"y\\z\n', "b": "!v", "c": "~r.*", "d": "!~q"})

    assert selector("up", ms) == 'up{a="x\\"y\\\\z\\n", b!="v", c=~"r.*", d!~"q"}'
    assert selector("up", []) == "up"


def test_factory_picks_the_remote_store_when_configured(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        metrics_remote_write_url="http://p:9090/api/v1/write",
        metrics_remote_query_url="http://p:9090",
        metrics_remote_username="u",
        metrics_remote_password="pw",
    )
    store = make_store(settings)

    assert isinstance(store, PrometheusRemoteStore)
    assert store.headers["Authorization"] == "Basic dTpwdw=="
    with pytest.raises(ValueError, match="both"):
        make_store(Settings(data_dir=tmp_path, metrics_remote_write_url="http://p:9090/api/v1/write"))
