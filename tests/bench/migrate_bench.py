"""Benchmark for `queuetool migrate` against a bare copy and a dump-and-load pipeline.

`bench_migrate(rows, mysql, workdir)` builds a SQLite queue of `rows` jobs by SQL
(data.build_sqlite), then times, in this one run:
  1. `queuetool migrate` SQLite -> MySQL and MySQL -> SQLite (a child process each,
     verification included; peak RSS from wait4),
  2. the fastest bare copy with the same drivers (bare_copy.py): a streamed read
     (sqlite3 cursor / PyMySQL SSCursor) and multi-row batched INSERTs (PyMySQL
     executemany with 16 MB statements, autocommit per batch / sqlite3 executemany in
     one transaction), no checks, no checksum; timed inside this process (the ratio
     the target is about) and also as a script of its own (`bare_script_*`: then it
     pays, as our command does, for starting Python and importing its driver),
  3. `sqlite3 .dump | sed ... | mariadb`, the pipeline a person might try, and what it
     does to the data (GEARMAND.md: it fails as is; with sed it corrupts backslashes).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: tests/ holds conftest.py and servers.py
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

import bare_copy
from data import build_sqlite
from measure import run_measured
from servers import MySQLServer

QUEUETOOL = str(Path(sys.executable).parent / "queuetool")
BARE_SCRIPT = str(Path(bare_copy.__file__).resolve())


def bench_migrate(
    rows: int,
    mysql: MySQLServer,
    workdir: Path | None = None,
    *,
    repeat: int = 3,
    work: Path | None = None,
    sqlite_db: Path | None = None,
    results: dict | None = None,
) -> dict:
    """rows/s of ours, bare and dump-and-load in both directions, and our peak RSS (MB).

    Ours, bare and the bare script run `repeat` times, taking turns at going first,
    and the best time of each counts (the machine is shared). BENCH_MIGRATE_DUMP=0
    leaves out the dump-and-load pipeline (minutes at 1M rows). Also a section of run.py
    (`work`, `sqlite_db`, `results`): then it reuses run.py's SQLite queue when it
    has `rows` jobs and records its figures under results["migrate"].
    """
    workdir = Path(workdir or work or ".")
    workdir.mkdir(parents=True, exist_ok=True)
    if sqlite_db is not None and _count(Path(sqlite_db)) == rows:
        src = Path(sqlite_db)
    else:
        src = build_sqlite(workdir / "migrate-src.db", rows)
    out: dict[str, object] = {"rows": rows}
    best: dict[str, tuple[float, float | None]] = {}

    def keep(name: str, seconds: float, peak_mb: float | None = None) -> None:
        if name not in best or seconds < best[name][0]:
            best[name] = (seconds, peak_mb)

    db, bare_db = "qt_bench_migrate", "qt_bench_bare"
    back, bare_back = workdir / "migrate-back.db", workdir / "migrate-bare-back.db"
    params = {"host": mysql.host, "port": mysql.port, "user": mysql.user}
    params |= {"password": mysql.password, "database": bare_db}
    turns = ["ours", "bare", "script"]
    try:
        for attempt in range(repeat):
            for who in turns[attempt % 3 :] + turns[: attempt % 3]:
                if who == "ours":
                    mysql.create_database(db)
                    m = run_measured(
                        [
                            QUEUETOOL,
                            "migrate",
                            f"sqlite:///{src}",
                            mysql.url(db),
                            "--yes",
                            "--quiet",
                        ]
                    )
                    _ok(m, "ours sqlite->mysql")
                    keep("ours_sqlite_to_mysql", m.seconds, m.peak_mb)
                    back.unlink(missing_ok=True)
                    m = run_measured(
                        [
                            QUEUETOOL,
                            "migrate",
                            mysql.url(db),
                            f"sqlite:///{back}",
                            "--yes",
                            "--quiet",
                        ]
                    )
                    _ok(m, "ours mysql->sqlite")
                    keep("ours_mysql_to_sqlite", m.seconds, m.peak_mb)
                elif who == "bare":
                    mysql.create_database(bare_db)
                    seconds = _timed(bare_copy.sqlite_to_mysql, str(src), params)
                    keep("bare_sqlite_to_mysql", seconds)
                    bare_back.unlink(missing_ok=True)
                    seconds = _timed(bare_copy.mysql_to_sqlite, params, str(bare_back))
                    keep("bare_mysql_to_sqlite", seconds)
                else:
                    mysql.create_database(bare_db)
                    m = run_measured(
                        [sys.executable, BARE_SCRIPT, "s2m", str(src), json.dumps(params)]
                    )
                    _ok(m, "bare script sqlite->mysql")
                    keep("bare_script_sqlite_to_mysql", m.seconds, m.peak_mb)
                    bare_back.unlink(missing_ok=True)
                    m = run_measured(
                        [sys.executable, BARE_SCRIPT, "m2s", json.dumps(params), str(bare_back)]
                    )
                    _ok(m, "bare script mysql->sqlite")
                    keep("bare_script_mysql_to_sqlite", m.seconds, m.peak_mb)
        for name, (seconds, peak_mb) in best.items():
            out[name] = _figures(rows, seconds, peak_mb)
        if os.environ.get("BENCH_MIGRATE_DUMP", "1") != "0":
            out["dump_and_load"] = dump_and_load(src, mysql, workdir)
    finally:
        mysql.drop_database(db)
        mysql.drop_database(bare_db)
    for way in ("sqlite_to_mysql", "mysql_to_sqlite"):
        ours, bare = out[f"ours_{way}"], out[f"bare_{way}"]
        script = out[f"bare_script_{way}"]
        out[f"ratio_{way}"] = round(ours["rows_per_s"] / bare["rows_per_s"], 3)  # type: ignore[index]
        out[f"ratio_{way}_vs_script"] = round(ours["rows_per_s"] / script["rows_per_s"], 3)  # type: ignore[index]
    if results is not None:
        results["migrate"] = out
        for way in ("sqlite_to_mysql", "mysql_to_sqlite"):
            ours, bare = out[f"ours_{way}"], out[f"bare_{way}"]
            script = out[f"bare_script_{way}"]
            print(
                f"migrate {way}: ours {ours['rows_per_s']:,} rows/s (peak "  # type: ignore[index]
                f"{ours['peak_rss_mb']} MB) vs bare {bare['rows_per_s']:,} rows/s "  # type: ignore[index]
                f"= {out[f'ratio_{way}']}x (vs the bare copy as a script "
                f"{script['rows_per_s']:,} rows/s = {out[f'ratio_{way}_vs_script']}x)",  # type: ignore[index]
                flush=True,
            )
    return out


def _count(path: Path) -> int | None:
    try:
        with sqlite3.connect(path) as conn:
            count = conn.execute("SELECT COUNT(*) FROM gearman_queue").fetchone()[0]
        conn.close()
        return count
    except sqlite3.Error:
        return None


def _figures(rows: int, seconds: float, peak_mb: float | None = None) -> dict[str, float]:
    record = {"seconds": round(seconds, 3), "rows_per_s": round(rows / seconds)}
    if peak_mb is not None:
        record["peak_rss_mb"] = round(peak_mb, 1)
    return record


def _ok(m, what: str) -> None:  # type: ignore[no-untyped-def]
    if m.returncode != 0:
        raise RuntimeError(f"{what} failed with exit {m.returncode}: {m.stdout}")


def _timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def dump_and_load(src: Path, mysql: MySQLServer, workdir: Path) -> dict[str, object]:
    """`sqlite3 .dump | mariadb` as is, then with the usual sed fixes; what arrives."""
    result: dict[str, object] = {}
    mariadb = shutil.which("mariadb") or shutil.which("mysql")
    if not shutil.which("sqlite3") or not mariadb:
        return {"skipped": "sqlite3 or mariadb client not installed"}
    client = f"{mariadb} -h {mysql.host} -P {mysql.port} -u {mysql.user} -p'{mysql.password}'"
    db = mysql.create_database("qt_bench_dump")
    try:
        plain = subprocess.run(
            f"sqlite3 {src} .dump | {client} {db}",
            shell=True,
            capture_output=True,
            text=True,
        )
        result["as_is"] = {
            "exit": plain.returncode,
            "error": plain.stderr.strip().splitlines()[-1] if plain.stderr.strip() else "",
        }
        mysql.drop_database(db)
        mysql.create_database(db)
        fixes = (
            "sed -e '/^PRAGMA/d' -e 's/^BEGIN TRANSACTION;/BEGIN;/' "
            "-e 's/^CREATE TABLE .*/CREATE TABLE gearman_queue (unique_key VARCHAR(64), "
            "function_name VARCHAR(255), priority INT, data LONGBLOB, when_to_run INT, "
            "unique key (unique_key, function_name));/' "
            "-e 's/^INSERT INTO \"gearman_queue\"/INSERT INTO gearman_queue/'"
        )
        start = time.perf_counter()
        fixed = subprocess.run(
            f"sqlite3 {src} .dump | {fixes} | {client} {db}",
            shell=True,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
        rows = sqlite3.connect(src).execute("SELECT COUNT(*) FROM gearman_queue").fetchone()[0]
        loaded = mysql.query(db, "SELECT COUNT(*) FROM gearman_queue")[0][0]
        with_bs = _backslash_probe(mysql, db, client, workdir)
        result["with_sed"] = {
            "exit": fixed.returncode,
            "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds) if seconds else None,
            "rows_loaded": loaded,
            "rows_in_source": rows,
            "backslash_key_arrives_as": with_bs,
        }
    finally:
        mysql.drop_database(db)
    return result


def _backslash_probe(mysql: MySQLServer, db: str, client: str, workdir: Path) -> str:
    """A key 'a\\b' through the same pipeline: what bytes land in MySQL."""
    probe = workdir / "probe.db"
    probe.unlink(missing_ok=True)
    conn = sqlite3.connect(probe)
    conn.execute(
        "CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT, "
        "priority INTEGER, data BLOB, when_to_run INTEGER)"
    )
    conn.execute("INSERT INTO gearman_queue VALUES ('a\\b', 'fn', 1, x'00', 0)")
    conn.commit()
    conn.close()
    mysql.query(db, "DELETE FROM gearman_queue")
    subprocess.run(
        f"sqlite3 {probe} .dump | grep '^INSERT' | sed 's/\"gearman_queue\"/gearman_queue/' "
        f"| {client} {db}",
        shell=True,
        capture_output=True,
    )
    got = mysql.query(db, "SELECT HEX(unique_key) FROM gearman_queue")
    return got[0][0] if got else "(nothing)"


if __name__ == "__main__":  # python tests/bench/migrate_bench.py ROWS [REPEAT]
    import tempfile

    from servers import start_mariadb

    with tempfile.TemporaryDirectory() as tmp:
        server = start_mariadb(Path(tmp) / "mariadb")
        try:
            repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
            result = bench_migrate(int(sys.argv[1]), server, Path(tmp), repeat=repeat)
            print(json.dumps(result, indent=2))
        finally:
            server.stop()
