"""Bench: export and import (the cold start) against the bare work they replace.

- cold start: `queuetool import` into a stopped SQLite queue + gearmand start until it
  answers with every job, against submitting the jobs through the protocol (a sample of
  BENCH_SUBMIT jobs, default 5,000, extrapolated to the same count);
- import throughput against a bare batched INSERT of the same rows (same driver), in
  process and as the CLI, SQLite and MySQL (and, for scale, against a bare script loading
  the same file without any check);
- export against a bare streamed read writing the same file, in process and as the CLI;
- the CLI's peak memory at two sizes (the rows, and a quarter of them).
Ratios are bare time / queuetool's time, printed against the target (>= 0.8).
`BENCH_ONLY=import BENCH_ROWS=200000 python tests/bench/run.py` runs this section alone;
BENCH_NO_COLD=1 leaves out the cold start (gearmand's load and the protocol sample).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import bare_load
from conftest import mysql_ddl, sqlite_ddl
from data import build_sqlite, timed
from measure import run_measured
from servers import Gearmand, JobSpec, MySQLServer, priority_status, sqlite_queue_args, submit

from queuetool.changes.importing import export_jobs, import_jobs
from queuetool.table.jobfile import JobSource
from queuetool.table.store import QueueStore

QUEUETOOL = str(Path(sys.executable).parent / "queuetool")
BARE_LOAD = str(Path(bare_load.__file__).resolve())
COLS = "unique_key, function_name, priority, data, when_to_run"


def line(text: str) -> None:
    print(text, flush=True)


def _empty_sqlite(path: Path) -> Path:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute(sqlite_ddl())
    conn.commit()
    conn.close()
    return path


def _rows(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    rows = conn.execute(f"SELECT {COLS} FROM gearman_queue").fetchall()
    conn.close()
    return rows


def bare_export(db: Path, out: Path) -> None:
    """A streamed read writing the same jobs as JSON Lines, base64 payloads."""
    conn = sqlite3.connect(db)
    cur = conn.execute(f"SELECT {COLS} FROM gearman_queue")
    with out.open("w") as fh:
        while batch := cur.fetchmany(5000):
            for u, f, p, d, w in batch:
                record = {"unique_key": u, "function": f, "priority": p, "when_to_run": w}
                record["data"] = base64.b64encode(d).decode()
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    conn.close()
    out.unlink()


def bare_insert_sqlite(db: Path, rows: list[tuple]) -> None:
    _empty_sqlite(db)
    conn = sqlite3.connect(db)
    for i in range(0, len(rows), 5000):
        conn.executemany("INSERT INTO gearman_queue VALUES (?, ?, ?, ?, ?)", rows[i : i + 5000])
    conn.commit()
    conn.close()


def bare_insert_mysql(server: MySQLServer, database: str, rows: list[tuple]) -> None:
    with server.connect(database) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS gearman_queue")
        cur.execute(mysql_ddl())
        cur.max_stmt_length = 16 * 1024 * 1024
        sql = f"INSERT INTO gearman_queue ({COLS}) VALUES (%s, %s, %s, %s, %s)"
        for i in range(0, len(rows), 5000):
            cur.executemany(sql, rows[i : i + 5000])
        conn.commit()


def _reset_mysql(server: MySQLServer, database: str) -> None:
    with server.connect(database) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS gearman_queue")
        cur.execute(mysql_ddl())
        conn.commit()


def _cli_import(url: str, file: Path, work: Path) -> object:
    env = {"XDG_STATE_HOME": str(work / "state")}
    return run_measured(
        [QUEUETOOL, "import", "--queue", url, str(file), "--yes", "--quiet"], env=env
    )


def _ready_with(daemon: Gearmand, rows: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            counts = priority_status(daemon.port)
            if sum(sum(c) for c in counts.values()) == rows:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("gearmand did not come up with every job")
        time.sleep(0.05)


def _lib_export(url: str, out: Path) -> None:
    store = QueueStore(url)
    try:
        export_jobs(store, out)
    finally:
        store.close()
    out.unlink()


def _lib_import(db: Path, file: Path, work: Path) -> float:
    _empty_sqlite(db)
    store = QueueStore(f"sqlite:///{db}")
    t0 = time.perf_counter()
    try:
        import_jobs(store, JobSource(file), work / "snaps", guard=False)
    finally:
        store.close()
    return time.perf_counter() - t0


def bare_export_mysql(server: MySQLServer, database: str, out: Path) -> None:
    """The same on MySQL: a streamed (server-side) read writing the same file."""
    import pymysql.cursors

    with server.connect(database) as conn, conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(f"SELECT {COLS} FROM gearman_queue")
        with out.open("w") as fh:
            while batch := cur.fetchmany(5000):
                for u, f, p, d, w in batch:
                    record = {"unique_key": u, "function": f, "priority": p, "when_to_run": w}
                    record["data"] = base64.b64encode(d).decode()
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.unlink()


def bare_file_load_sqlite(db: Path, file: Path) -> None:
    """A second reference for import (bare_load.py): a bare script's load of the file."""
    _empty_sqlite(db)
    bare_load.load_sqlite(file, db)


def _bare_load_cli(argv: list[str]) -> float:
    """bare_load.py as a process: the fair reference for the CLI (start-up included)."""
    m = run_measured([sys.executable, BARE_LOAD, *argv])
    assert m.returncode == 0, m.stdout
    return m.seconds


def _mysql_params(server: MySQLServer, database: str) -> dict:
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "database": database,
    }


def _verdict(ratio: float) -> str:
    return f"{ratio:.2f} ({'met' if ratio >= TARGET else 'NOT met'}: target >= {TARGET})"


TARGET = 0.8


def _lib_import_mysql(server: MySQLServer, database: str, file: Path, work: Path) -> float:
    _reset_mysql(server, database)
    store = QueueStore(server.url(database))
    t0 = time.perf_counter()
    try:
        import_jobs(store, JobSource(file), work / "snaps", guard=False)
    finally:
        store.close()
    return time.perf_counter() - t0


def bench_import(
    rows: int, work: Path, mysql: MySQLServer, sqlite_db: Path, results: dict, **_: object
) -> None:
    out = work / "export.jsonl"
    (work / "snaps").mkdir(exist_ok=True)
    # -- export vs a bare streamed read writing the same file (ratio: bare time / ours)
    for name, url, bare in (
        ("sqlite", f"sqlite:///{sqlite_db}", lambda: bare_export(sqlite_db, out)),
        ("mysql", mysql.url("bench"), lambda: bare_export_mysql(mysql, "bench", out)),
    ):
        m = None
        best = float("inf")
        for _ in range(3):
            out.unlink(missing_ok=True)
            m = run_measured([QUEUETOOL, "export", "--queue", url, str(out), "--quiet"])
            assert m.returncode == 0, m.stdout
            best = min(best, m.seconds)
        out.unlink(missing_ok=True)
        t_bare = timed(bare)
        t_lib = timed(_lib_export, url, out)
        entry = {
            "export_in_process_s": round(t_lib, 3),
            "export_cli_s": round(best, 3),
            "bare_stream_write_s": round(t_bare, 3),
            "ratio_in_process": round(t_bare / t_lib, 2),
            "ratio_cli": round(t_bare / best, 2),
            "target": f">= {TARGET} (bare time / export time)",
            "export_peak_mb": round(m.peak_mb, 1),
        }
        results[f"export/{name}"] = entry
        line(
            f"export {name}: in process {t_lib:.2f}s, CLI {best:.2f}s, bare {t_bare:.2f}s: "
            f"ratio in process {_verdict(t_bare / t_lib)}, CLI {_verdict(t_bare / best)}; "
            f"peak {m.peak_mb:.0f} MB"
        )
    out.unlink(missing_ok=True)
    ok = run_measured(
        [QUEUETOOL, "export", "--queue", f"sqlite:///{sqlite_db}", str(out), "--quiet"]
    )
    assert ok.returncode == 0

    # -- import throughput vs a bare batched INSERT (same driver), into an empty table.
    # The rows the bare INSERTs take are held only while those run: a large heap makes
    # every Python allocation-heavy loop slower (the cyclic GC walks it), in either.
    target = work / "import.db"
    t_import = float("inf")
    peak = 0.0
    for _ in range(3):
        _empty_sqlite(target)
        m = _cli_import(f"sqlite:///{target}", out, work)
        assert m.returncode == 0, m.stdout
        t_import, peak = min(t_import, m.seconds), m.peak_mb
    source_rows = _rows(sqlite_db)
    t_bare = timed(bare_insert_sqlite, target, source_rows)
    del source_rows
    t_file = timed(bare_file_load_sqlite, target, out)
    t_file_cli = float("inf")
    for _ in range(3):
        _empty_sqlite(target)
        t_file_cli = min(t_file_cli, _bare_load_cli(["sqlite", str(out), str(target)]))
    t_lib = min(_lib_import(target, out, work) for _ in range(3))
    startup = run_measured([QUEUETOOL, "--version"]).seconds
    results["import/sqlite"] = {
        "import_in_process_s": round(t_lib, 3),
        "import_cli_s": round(t_import, 3),
        "cli_startup_s": round(startup, 3),
        "bare_batched_insert_s": round(t_bare, 3),
        "ratio_in_process": round(t_bare / t_lib, 2),
        "ratio_cli": round(t_bare / t_import, 2),
        "target": f">= {TARGET} (bare time / import time)",
        "bare_file_load_s": round(t_file, 3),
        "ratio_in_process_vs_file_load": round(t_file / t_lib, 2),
        "bare_file_load_script_s": round(t_file_cli, 3),
        "ratio_cli_vs_file_load_script": round(t_file_cli / t_import, 2),
        "import_peak_mb": round(peak, 1),
    }
    line(
        f"import sqlite: in process {t_lib:.2f}s, CLI {t_import:.2f}s (start-up {startup:.2f}s), "
        f"bare batched INSERT {t_bare:.2f}s: ratio in process {_verdict(t_bare / t_lib)}, CLI "
        f"{_verdict(t_bare / t_import)}; against a bare load of the same file (no checks) "
        f"{t_file:.2f}s in process: {t_file / t_lib:.2f}, {t_file_cli:.2f}s as a script: "
        f"CLI {t_file_cli / t_import:.2f}; peak {peak:.0f} MB"
    )
    t_import = float("inf")
    mysql.create_database("bench_import")
    for _ in range(3):
        _reset_mysql(mysql, "bench_import")
        m = _cli_import(mysql.url("bench_import"), out, work)
        assert m.returncode == 0, m.stdout
        t_import, peak = min(t_import, m.seconds), m.peak_mb
    source_rows = _rows(sqlite_db)
    t_bare = timed(bare_insert_mysql, mysql, "bench_import", source_rows)
    del source_rows
    t_lib = min(_lib_import_mysql(mysql, "bench_import", out, work) for _ in range(3))
    params = _mysql_params(mysql, "bench_import")
    t_file = float("inf")
    t_file_cli = float("inf")
    for _ in range(3):
        _reset_mysql(mysql, "bench_import")
        t_file = min(t_file, timed(bare_load.load_mysql, out, params, repeat=1))
        _reset_mysql(mysql, "bench_import")
        t_file_cli = min(t_file_cli, _bare_load_cli(["mysql", str(out), json.dumps(params)]))
    results["import/mysql"] = {
        "import_in_process_s": round(t_lib, 3),
        "import_cli_s": round(t_import, 3),
        "bare_batched_insert_s": round(t_bare, 3),
        "ratio_in_process": round(t_bare / t_lib, 2),
        "ratio_cli": round(t_bare / t_import, 2),
        "target": f">= {TARGET} (bare time / import time)",
        "bare_file_load_s": round(t_file, 3),
        "ratio_in_process_vs_file_load": round(t_file / t_lib, 2),
        "bare_file_load_script_s": round(t_file_cli, 3),
        "ratio_cli_vs_file_load_script": round(t_file_cli / t_import, 2),
        "import_peak_mb": round(peak, 1),
    }
    line(
        f"import mysql: in process {t_lib:.2f}s, CLI {t_import:.2f}s, bare batched INSERT "
        f"{t_bare:.2f}s: ratio in process {_verdict(t_bare / t_lib)}, CLI "
        f"{_verdict(t_bare / t_import)}; against a bare load of the same file (no checks) "
        f"{t_file:.2f}s in process: {t_file / t_lib:.2f}, {t_file_cli:.2f}s as a script: "
        f"CLI {t_file_cli / t_import:.2f}; peak {peak:.0f} MB"
    )

    if os.environ.get("BENCH_NO_COLD"):
        _peak_at_second_size(rows, work, out, target, results)
        return
    # -- cold start: import + gearmand start until it answers with every job
    _empty_sqlite(target)
    started = time.perf_counter()
    m = _cli_import(f"sqlite:///{target}", out, work)
    assert m.returncode == 0
    buckets = str(max(rows, 991))
    daemon = Gearmand(
        work / "gd", sqlite_queue_args(target), extra_args=["--hashtable-buckets", buckets]
    )
    daemon.start(expect_ready=False)
    try:
        _ready_with(daemon, rows)
        cold = time.perf_counter() - started
    finally:
        daemon.stop()
    # -- against the protocol: a sample of submissions, extrapolated
    sample = int(os.environ.get("BENCH_SUBMIT", "5000"))
    proto_db = _empty_sqlite(work / "proto.db")
    daemon = Gearmand(work / "gp", sqlite_queue_args(proto_db))
    daemon.start()
    try:
        specs = [JobSpec(f"function_{i % 10}", f"s{i}", b"x" * 200) for i in range(sample)]
        t0 = time.perf_counter()
        submit(daemon.port, specs)
        t_sample = time.perf_counter() - t0
    finally:
        daemon.stop()
    per_job = t_sample / sample
    results["cold_start/sqlite"] = {
        "rows": rows,
        "import_plus_start_s": round(cold, 2),
        "submitted_sample": sample,
        "submit_sample_s": round(t_sample, 2),
        "submit_jobs_per_s": round(1 / per_job),
        "submit_extrapolated_s": round(per_job * rows, 1),
        "speedup": round(per_job * rows / cold, 1),
        "submit_extrapolated_100k_s": round(per_job * 100_000, 1),
        "submit_extrapolated_1m_s": round(per_job * 1_000_000, 1),
        "target": ">= 50x",
    }
    line(f"cold start: {results['cold_start/sqlite']}")

    _peak_at_second_size(rows, work, out, target, results)
    proto_db.unlink(missing_ok=True)


def _peak_at_second_size(rows: int, work: Path, out: Path, target: Path, results: dict) -> None:
    """Peak memory at a second size (a quarter): flat means the same at both."""
    small = max(rows // 4, 1)
    small_db = build_sqlite(work / "small.db", small)
    small_out = work / "small.jsonl"
    e = run_measured(
        [QUEUETOOL, "export", "--queue", f"sqlite:///{small_db}", str(small_out), "--quiet"]
    )
    _empty_sqlite(target)
    i = _cli_import(f"sqlite:///{target}", small_out, work)
    results["import/peak_memory"] = {
        f"export_peak_mb_at_{small}": round(e.peak_mb, 1),
        f"export_peak_mb_at_{rows}": results["export/sqlite"]["export_peak_mb"],
        f"import_peak_mb_at_{small}": round(i.peak_mb, 1),
        f"import_peak_mb_at_{rows}": results["import/sqlite"]["import_peak_mb"],
    }
    line(f"peak memory: {results['import/peak_memory']}")
    for path in (out, small_out, target, small_db):
        path.unlink(missing_ok=True)
