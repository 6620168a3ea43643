"""`make bench`, section `exporter`: what a Prometheus scrape costs (issue 14).

For the SQLite and the MySQL queue of BENCH_ROWS jobs, against `queuetool exporter`
running as its own process (the real command, no daemon address):
- cold scrape: the first GET /metrics after start (one full scan), best of 5 fresh
  exporters, against the bare `GROUP BY function_name, priority` through the same
  driver, best of 5 too. Each bare query runs just before a cold scrape, so both see
  the same machine (MariaDB's times on a table larger than its buffer pool move by
  30% from one minute to the next). Target: <= 1.2 x bare + 0.3 s.
- cached scrape: GET /metrics within the minimum interval (median of 200).
  Target: < 50 ms.
- memory: the exporter's peak RSS (/proc/PID/status VmHWM) after 100 and after
  1,000 cached scrapes (and its own `process_resident_memory_bytes`), then after 20
  and 100 scrapes that each rescan (minimum interval 0): flat means the later peak
  equals the earlier one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from data import timed
from servers import MySQLServer, free_port

QUEUETOOL = str(Path(sys.executable).parent / "queuetool")
BARE_GROUP_BY = "SELECT function_name, priority, COUNT(*) FROM gearman_queue GROUP BY 1, 2"


def line(text: str) -> None:
    print(text, flush=True)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=600) as resp:
        return resp.read()


@contextlib.contextmanager
def exporter(url: str, min_interval: float) -> Iterator[tuple[str, int]]:
    port = free_port()
    listen = ["--listen", f"127.0.0.1:{port}", "--min-interval", str(min_interval)]
    proc = subprocess.Popen(
        [QUEUETOOL, "exporter", "-q", url, *listen],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("QUEUETOOL_")},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            get(base + "/healthz")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the exporter did not start") from None
            time.sleep(0.05)
    try:
        yield base, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def peak_rss_mb(pid: int) -> float:
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith("VmHWM:"):
            return int(text.split()[1]) / 1024
    return 0.0


def rss_mb(metrics: bytes) -> float:
    for text in metrics.decode().splitlines():
        if text.startswith("process_resident_memory_bytes "):
            return float(text.split()[1]) / 2**20
    return 0.0


def bench_one(name: str, url: str, bare) -> dict:  # type: ignore[no-untyped-def]
    bares, colds = [], []
    for _ in range(5):
        bares.append(timed(bare, BARE_GROUP_BY, repeat=1))
        with exporter(url, 3600) as (base, _pid):
            start = time.perf_counter()
            body = get(base + "/metrics")
            colds.append(time.perf_counter() - start)
            assert b"gearman_queue_up" in body and b'gearman_queue_up{queue="default"} 1.0' in body
    t_bare, cold = min(bares), min(colds)
    with exporter(url, 3600) as (base, pid):
        get(base + "/metrics")
        cached = []
        for _ in range(200):
            start = time.perf_counter()
            get(base + "/metrics")
            cached.append(time.perf_counter() - start)
        for _ in range(100 - 1):
            get(base + "/metrics")
        peak_100 = peak_rss_mb(pid)
        for _ in range(1000 - 300):
            body = get(base + "/metrics")
        peak_1000 = peak_rss_mb(pid)
        rss_1000 = rss_mb(body)
    with exporter(url, 0) as (base, pid):  # every scrape a scan
        for _ in range(20):
            get(base + "/metrics")
        peak_scan_20 = peak_rss_mb(pid)
        for _ in range(80):
            body = get(base + "/metrics")
        peak_scan_100 = peak_rss_mb(pid)
    result = {
        "bare_group_by_s": round(t_bare, 3),
        "cold_scrape_s": round(cold, 3),
        "cold_target_s": round(1.2 * t_bare + 0.3, 3),
        "cold_ok": cold <= 1.2 * t_bare + 0.3,
        "cached_scrape_median_ms": round(statistics.median(cached) * 1000, 2),
        "cached_scrape_p99_ms": round(sorted(cached)[int(len(cached) * 0.99) - 1] * 1000, 2),
        "cached_target_ms": 50,
        "peak_rss_mb_after_100_scrapes": round(peak_100, 1),
        "peak_rss_mb_after_1000_scrapes": round(peak_1000, 1),
        "rss_mb_after_1000_scrapes": round(rss_1000, 1),
        "peak_rss_mb_after_20_scans": round(peak_scan_20, 1),
        "peak_rss_mb_after_100_scans": round(peak_scan_100, 1),
    }
    line(
        f"exporter {name}: cold scrape {cold:.3f}s vs bare GROUP BY {t_bare:.3f}s "
        f"(target <= {1.2 * t_bare + 0.3:.3f}s); cached median "
        f"{result['cached_scrape_median_ms']} ms; peak RSS {peak_100:.0f} MB after 100 "
        f"scrapes, {peak_1000:.0f} MB after 1,000; {peak_scan_20:.0f} -> "
        f"{peak_scan_100:.0f} MB over 20 -> 100 rescans"
    )
    return result


def sqlite_bare(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql).fetchall()
    conn.close()


def mysql_bare(server: MySQLServer, database: str, sql: str) -> None:
    with server.connect(database) as conn, conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()


def bench_exporter(
    rows: int, work: Path, mysql: MySQLServer, sqlite_db: Path, results: dict, **_: object
) -> None:
    results["exporter/sqlite"] = bench_one(
        "sqlite", f"sqlite:///{sqlite_db}", lambda sql: sqlite_bare(sqlite_db, sql)
    )
    results["exporter/mysql"] = bench_one(
        "mysql", mysql.url("bench"), lambda sql: mysql_bare(mysql, "bench", sql)
    )
