"""`make bench`, section `startup`: what a `queuetool` process costs before its own work.

Whole processes, as an operator runs them, each the median of BENCH_STARTUP_RUNS
(default 21) runs:
- `queuetool --help` and `queuetool --version`. Target: < 0.15 s each.
- `queuetool check --help` and `queuetool report --help`. Target: < 0.35 s.
- a read command's start-up: `queuetool report` and `queuetool check` on a tiny SQLite
  queue, minus the same figures' bare GROUP BY (report) or full scan (check) in a bare
  Python process through the same driver: the difference is start-up (imports, the
  store, the render), since on a tiny queue the queries themselves cost nothing.
  Target: < 0.35 s.
The interpreter's own start (`python -c pass`) is shown for scale. Needs no server and
no big queue: `BENCH_ONLY=startup` runs in seconds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from data import build_sqlite

QUEUETOOL = str(Path(sys.executable).parent / "queuetool")
RUNS = int(os.environ.get("BENCH_STARTUP_RUNS", "21"))
HELP_TARGET = 0.15
READ_TARGET = 0.35
BARE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute(sys.argv[2]).fetchall()
conn.close()
"""
BARE_REPORT = (
    "SELECT function_name, priority, COUNT(*), SUM(when_to_run > 1800000000), "
    "SUM(LENGTH(data)) FROM gearman_queue GROUP BY 1, 2"
)
BARE_CHECK = "SELECT COUNT(*), SUM(LENGTH(data)), MAX(when_to_run) FROM gearman_queue"


def line(text: str) -> None:
    print(text, flush=True)


def wall(argv: list[str], runs: int = RUNS) -> tuple[float, float]:
    """Median and best wall time of a whole process (it must succeed)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def bench_startup(*, work: Path, results: dict[str, Any], **_: Any) -> None:
    db = build_sqlite(work / "startup.db", 100)
    url = f"sqlite:///{db}"
    figures: dict[str, Any] = {"runs": RUNS}
    python, _best = wall([sys.executable, "-c", "pass"])
    figures["python_pass_s"] = round(python, 3)
    line(f"startup: the interpreter alone (python -c pass): {python:.3f}s (median of {RUNS})")

    def check(name: str, seconds: float, best: float, target: float) -> None:
        ok = "ok" if seconds < target else "OVER TARGET"
        figures[f"{name}_s"] = round(seconds, 3)
        figures[f"{name}_target_s"] = target
        line(f"startup: {name:<22} {seconds:.3f}s (best {best:.3f}s)  target < {target}s  {ok}")

    for name, argv in (
        ("--help", ["--help"]),
        ("--version", ["--version"]),
    ):
        check(f"queuetool {name}", *wall([QUEUETOOL, *argv]), HELP_TARGET)
    for name in ("check", "report"):
        check(f"queuetool {name} --help", *wall([QUEUETOOL, name, "--help"]), READ_TARGET)
    for name, sql in (("report", BARE_REPORT), ("check", BARE_CHECK)):
        cli, cli_best = wall([QUEUETOOL, name, "--queue", url])
        bare, bare_best = wall([sys.executable, "-c", BARE, str(db), sql])
        figures[f"queuetool {name} (100 jobs)_s"] = round(cli, 3)
        figures[f"bare {name} query process_s"] = round(bare, 3)
        check(f"{name} start-up", cli - bare, cli_best - bare_best, READ_TARGET)
        line(f"startup:   ({name} {cli:.3f}s - bare query in bare python {bare:.3f}s)")
    results["startup"] = figures
    db.unlink(missing_ok=True)
