"""Parse-only micro benchmark: ``python bench/scrape_parse.py [PAGE] [--seconds S]``.

Parses one Prometheus text exposition page over and over with ``opsdesk.metrics.exposition.parse``
and with ``prometheus_client.parser.text_string_to_metric_families`` (all families and samples
materialised), and prints samples per CPU-second (``time.process_time``) and per wall second for
each, and the ratio. PAGE is a saved ``/metrics`` page; without it a node_exporter-like page of
about 500 samples is generated (counters, gauges with several labels, a histogram, a summary,
HELP/TYPE lines). "warm" is the steady state of repeated scrapes (the series cache already holds
the page's series); "cold" empties the caches before every parse (first scrape of a new target).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from opsdesk.metrics import exposition


def generated_page(seed: int = 1) -> str:
    rnd = random.Random(seed)
    out: list[str] = []

    def family(name: str, typ: str, help_: str) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {typ}")

    def num() -> str:
        return rnd.choice([str(rnd.randint(0, 10**6)), f"{rnd.random() * 1e9:e}", repr(rnd.random() * 100)])

    for g in ("go_goroutines", "go_threads", "go_memstats_alloc_bytes", "go_memstats_heap_inuse_bytes"):
        family(g, "gauge", f"Go runtime value {g}.")
        out.append(f"{g} {num()}")
    family("go_info", "gauge", "Information about the Go environment.")
    out.append('go_info{version="go1.21.4"} 1')
    family("go_gc_duration_seconds", "summary", "A summary of the pause duration of GC cycles.")
    for q in ("0", "0.25", "0.5", "0.75", "1"):
        out.append(f'go_gc_duration_seconds{{quantile="{q}"}} {rnd.random() / 1000:e}')
    out.append(f"go_gc_duration_seconds_sum {rnd.random():.6f}")
    out.append(f"go_gc_duration_seconds_count {rnd.randint(0, 5000)}")

    family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.")
    for cpu in range(16):
        for mode in ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"):
            out.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}"}} {rnd.random() * 1e6:.2f}')

    mounts = [
        ("/dev/sda1", "ext4", "/"),
        ("/dev/sda2", "ext4", "/home"),
        ("/dev/sdb1", "xfs", "/var/lib/data"),
        ("tmpfs", "tmpfs", "/run"),
        ("tmpfs", "tmpfs", "/run/lock"),
        ("tmpfs", "tmpfs", "/run/user/1000"),
        ("/dev/mapper/vg0-srv", "ext4", "/srv"),
        ("/dev/nvme0n1p1", "vfat", "/boot/efi"),
    ]
    fs_metrics = (
        "avail_bytes",
        "free_bytes",
        "size_bytes",
        "files",
        "files_free",
        "readonly",
        "device_error",
    )
    for metric in fs_metrics:
        name = f"node_filesystem_{metric}"
        family(name, "gauge", f"Filesystem {metric.replace('_', ' ')}.")
        for dev, fs, mnt in mounts:
            out.append(f'{name}{{device="{dev}",fstype="{fs}",mountpoint="{mnt}"}} {num()}')

    devices = ("eth0", "eth1", "eth2", "lo", "docker0", "br-4f1c2d", "veth1a2b3c", "wg0")
    for metric in (
        "receive_bytes_total",
        "transmit_bytes_total",
        "receive_packets_total",
        "transmit_packets_total",
        "receive_errs_total",
        "transmit_errs_total",
        "receive_drop_total",
        "transmit_drop_total",
        "receive_multicast_total",
        "transmit_colls_total",
    ):
        name = f"node_network_{metric}"
        family(name, "counter", f"Network device statistic {metric}.")
        for dev in devices:
            out.append(f'{name}{{device="{dev}"}} {rnd.randint(0, 10**12)}')

    disks = ("sda", "sdb", "sdc", "nvme0n1", "dm-0", "dm-1")
    for metric in (
        "reads_completed_total",
        "writes_completed_total",
        "read_bytes_total",
        "written_bytes_total",
        "io_time_seconds_total",
        "read_time_seconds_total",
        "write_time_seconds_total",
        "io_now",
    ):
        name = f"node_disk_{metric}"
        family(name, "counter" if metric.endswith("_total") else "gauge", f"Disk statistic {metric}.")
        for d in disks:
            out.append(f'{name}{{device="{d}"}} {num()}')

    family("http_request_duration_seconds", "histogram", "Latency of HTTP requests.")
    buckets = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")
    for handler in ("/metrics", "/api/v1/query", "/api/v1/write"):
        for method in ("GET", "POST"):
            total = 0
            for le in buckets:
                total += rnd.randint(0, 100)
                lbl = f'{{handler="{handler}",le="{le}",method="{method}"}}'
                out.append(f"http_request_duration_seconds_bucket{lbl} {total}")
            lbl = f'{{handler="{handler}",method="{method}"}}'
            out.append(f"http_request_duration_seconds_sum{lbl} {rnd.random() * total:.3f}")
            out.append(f"http_request_duration_seconds_count{lbl} {total}")

    for metric in ("processed_total", "dropped_total", "times_squeezed_total"):
        name = f"node_softnet_{metric}"
        family(name, "counter", f"Softnet statistic {metric}.")
        for cpu in range(16):
            out.append(f'{name}{{cpu="{cpu}"}} {rnd.randint(0, 10**9)}')
    family("node_hwmon_temp_celsius", "gauge", "Hardware monitor for temperature (input).")
    for chip in range(4):
        for sensor in range(4):
            out.append(
                f'node_hwmon_temp_celsius{{chip="platform_coretemp_{chip}",sensor="temp{sensor}"}} '
                f"{rnd.uniform(30, 90):.1f}"
            )
    family("node_scrape_collector_success", "gauge", "Whether a collector succeeded.")
    for c in ("cpu", "diskstats", "filesystem", "hwmon", "loadavg", "meminfo", "netdev", "netstat"):
        out.append(f'node_scrape_collector_success{{collector="{c}"}} 1')
    for name in ("node_load1", "node_load5", "node_load15", "node_boot_time_seconds", "node_nan_gauge"):
        family(name, "gauge", f"{name}.")
        out.append(f"{name} {'NaN' if name == 'node_nan_gauge' else num()}")
    family("node_memory", "untyped", "Memory info.")
    for field in ("MemTotal", "MemFree", "Buffers", "Cached", "SwapTotal", "SwapFree", "Active", "Inactive"):
        out.append(f"node_memory_{field}_bytes {rnd.randint(0, 2**36)}")
    return "\n".join(out) + "\n"


def ours(text: str) -> int:
    return len(exposition.parse(text, 1_700_000_000_000))


def ours_cold(text: str) -> int:
    exposition._SERIES.clear()
    exposition._COMMENTS.clear()
    exposition._LABELSETS.clear()
    return len(exposition.parse(text, 1_700_000_000_000))


def reference(text: str) -> int:
    return sum(len(f.samples) for f in text_string_to_metric_families(text))


def measure(fn: Callable[[str], int], text: str, seconds: float) -> tuple[float, float]:
    """Samples per CPU-second and per wall second, over at least ``seconds`` of CPU time."""
    fn(text)  # warm up (and fill the caches for the warm case)
    samples = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while True:
        samples += fn(text)
        cpu = time.process_time() - cpu0
        if cpu >= seconds:
            break
    wall = time.perf_counter() - wall0
    return samples / cpu, samples / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", nargs="?", type=Path, help="a saved /metrics page (default: generated)")
    ap.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per parser (default 3)")
    args = ap.parse_args()
    text = args.page.read_text() if args.page else generated_page()
    n_ours = len(exposition.parse(text, 0))
    n_ref = reference(text)
    print(
        f"page: {args.page or 'generated'}: {len(text.splitlines())} lines, {len(text)} bytes, "
        f"{n_ours} samples (prometheus_client: {n_ref})"
    )
    results = {}
    for label, fn in (("opsdesk warm", ours), ("opsdesk cold", ours_cold), ("prometheus_client", reference)):
        cpu_rate, wall_rate = measure(fn, text, args.seconds)
        results[label] = cpu_rate
        print(f"{label:18} {cpu_rate:12,.0f} samples/CPU-s {wall_rate:12,.0f} samples/s (wall)")
    ref = results["prometheus_client"]
    print(
        f"ratio vs prometheus_client: warm {results['opsdesk warm'] / ref:.1f}x, "
        f"cold {results['opsdesk cold'] / ref:.1f}x"
    )


if __name__ == "__main__":
    main()
