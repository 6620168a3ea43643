"""`make bench`: queuetool against the bare SQL it replaces, on 1M-job queues.

Every figure is measured in this one run on this machine: a ratio compares
queuetool with the bare statement through the same driver, best of 3 runs.
Peak memory is the child process's max RSS. BENCH_ROWS sets the size
(default 1,000,000); BENCH_ONLY=report,edits,... picks sections; the queues are
removed afterwards, only results.json stays in the work dir (BENCH_KEEP=1 keeps all).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from data import build_mysql, build_sqlite, timed  # noqa: E402
from edits_bench import bench_edits  # noqa: E402
from exporter_bench import bench_exporter  # noqa: E402
from import_bench import bench_import  # noqa: E402
from measure import run_measured  # noqa: E402
from migrate_bench import bench_migrate  # noqa: E402
from postgres_bench import bench_postgres  # noqa: E402
from servers import MySQLServer, start_mariadb  # noqa: E402
from startup_bench import bench_startup  # noqa: E402
from window_bench import bench_window  # noqa: E402

from queuetool.table.check import check  # noqa: E402
from queuetool.table.report import report  # noqa: E402
from queuetool.table.store import QueueStore  # noqa: E402

QUEUETOOL = str(Path(sys.executable).parent / "queuetool")
BARE_GROUP_BY = "SELECT function_name, priority, COUNT(*) FROM gearman_queue GROUP BY 1, 2"
# The same figures report gives (count, scheduled, payload bytes), as a person writes it.
BARE_SAME = (
    "SELECT function_name, priority, COUNT(*), SUM(when_to_run > 1800000000), "
    "SUM(LENGTH(data)) FROM gearman_queue GROUP BY 1, 2"
)
BARE_SCAN = "SELECT COUNT(*), SUM(LENGTH(data)), MAX(when_to_run) FROM gearman_queue"
RESULTS: dict[str, dict] = {}


def line(text: str) -> None:
    print(text, flush=True)


def sqlite_bare(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql).fetchall()
    conn.close()


def mysql_bare(server: MySQLServer, database: str, sql: str) -> None:
    with server.connect(database) as conn, conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()


def bench_report_check(name: str, url: str, bare) -> None:  # type: ignore[no-untyped-def]
    store = QueueStore(url)
    t_report = timed(report, store)
    t_bare = timed(bare, BARE_GROUP_BY)
    t_same = timed(bare, BARE_SAME)
    t_check = timed(check, store)
    t_scan = timed(bare, BARE_SCAN)
    cli_report = run_measured([QUEUETOOL, "report", "--queue", url])
    cli_check = run_measured([QUEUETOOL, "check", "--queue", url])
    store.close()
    RESULTS[f"report/{name}"] = {
        "report_s": round(t_report, 3),
        "bare_group_by_s": round(t_bare, 3),
        "ratio": round(t_report / t_bare, 2),
        "target": "<= 1.2",
        "bare_same_figures_s": round(t_same, 3),
        "ratio_same_figures": round(t_report / t_same, 2),
        "cli_report_wall_s": round(cli_report.seconds, 2),
        "cli_report_peak_mb": round(cli_report.peak_mb, 1),
    }
    RESULTS[f"check/{name}"] = {
        "check_s": round(t_check, 3),
        "bare_scan_s": round(t_scan, 3),
        "ratio": round(t_check / t_scan, 2),
        "target": "<= 2.0",
        "cli_check_wall_s": round(cli_check.seconds, 2),
        "cli_check_peak_mb": round(cli_check.peak_mb, 1),
    }
    line(
        f"report {name}: {t_report:.3f}s vs bare GROUP BY {t_bare:.3f}s "
        f"= {t_report / t_bare:.2f}x (vs the same figures bare {t_same:.3f}s = "
        f"{t_report / t_same:.2f}x); CLI peak {cli_report.peak_mb:.0f} MB"
    )
    line(
        f"check  {name}: {t_check:.3f}s vs one full scan {t_scan:.3f}s "
        f"= {t_check / t_scan:.2f}x; CLI peak {cli_check.peak_mb:.0f} MB"
    )


def main() -> int:
    rows = int(os.environ.get("BENCH_ROWS", "1000000"))
    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
    work = Path(tempfile.mkdtemp(prefix="queuetool-bench-"))
    line(f"queuetool benchmark: {rows:,} jobs, work dir {work}")
    if only and only <= NO_QUEUES:  # e.g. BENCH_ONLY=startup: no server, no big queue
        for section in SECTIONS:
            if section.__name__.split("_", 1)[1] in only:
                section(rows=rows, work=work, mysql=None, sqlite_db=None, results=RESULTS)
        return _write_results(work)
    mysql = start_mariadb(work / "mariadb")
    try:
        db = build_sqlite(work / "queue.db", rows)
        build_mysql(mysql, "bench", rows)
        line("built the SQLite and MySQL queues")
        if not only or "report" in only:
            bench_report_check("sqlite", f"sqlite:///{db}", lambda sql: sqlite_bare(db, sql))
            bench_report_check(
                "mysql", mysql.url("bench"), lambda sql: mysql_bare(mysql, "bench", sql)
            )
        for section in SECTIONS:
            if not only or section.__name__.split("_", 1)[1] in only:
                section(rows=rows, work=work, mysql=mysql, sqlite_db=db, results=RESULTS)
    finally:
        mysql.stop()
        if not os.environ.get("BENCH_KEEP"):
            _remove_data(work)
    return _write_results(work)


def _write_results(work: Path) -> int:
    out = work / "results.json"
    out.write_text(json.dumps(RESULTS, indent=2))
    line(json.dumps(RESULTS, indent=2))
    line(f"results written to {out}")
    return 0


def _remove_data(work: Path) -> None:
    """The queues and the MariaDB data directory are gigabytes at 1M rows: only the
    results stay (BENCH_KEEP=1 keeps everything)."""
    for child in work.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


SECTIONS: list = []  # further sections (edits, window, migrate) register here
SECTIONS.append(bench_edits)
SECTIONS.append(bench_window)
SECTIONS.append(bench_migrate)
SECTIONS.append(bench_import)
SECTIONS.append(bench_exporter)
SECTIONS.append(bench_startup)
SECTIONS.append(bench_postgres)
NO_QUEUES = {"startup", "postgres"}  # sections that build what they need themselves

if __name__ == "__main__":
    sys.exit(main())
