"""`make bench`, section `edits`: edits, snapshot and restore against the bare SQL.

For the SQLite and the MySQL queue of BENCH_ROWS jobs, each measurement starts from
a fresh copy of the same table (SQLite: a copy of the file; MySQL: CREATE TABLE
LIKE + INSERT ... SELECT from the pristine `bench` database), and every bare figure
goes through the same driver queuetool uses (sqlite3 / PyMySQL):

- the change step (`EditResult.change_seconds`: the UPDATE/DELETE and the COMMIT)
  of reprioritise, reschedule and purge of one function in ten (`function_3`, 10%
  of the jobs), against the bare UPDATE/DELETE + COMMIT doing the same change.
  Target <= 1.3x. The undo snapshot taken inside the same transaction is reported
  on its own.
- `snapshot.take` and `restore.restore` (without its before-snapshot) against a
  bare streamed copy: every row read with the driver's streaming cursor (sqlite3
  cursor / PyMySQL SSCursor) and executemany-inserted, 5,000 at a time, into a
  fresh table, committed. Target <= 2x. Three bare copies are measured: the table
  into a fresh table in the same database (the `bare copy`), the table into a
  fresh SQLite file (what a snapshot writes), and the snapshot file's rows into a
  fresh queue table (what a restore writes); the ratio is against the bare copy,
  the one against the matching copy is printed alongside.
- peak memory (max RSS) of the CLI doing an edit (`queuetool reprioritise --yes
  --snapshot-dir DIR`; no gearmand runs, so no maintenance window) and a restore
  (`queuetool restore --yes`, which snapshots the table first). Target < 150 MB.

At 100,000 jobs or fewer every figure is the best of 3 runs (each on its own fresh
copy); above, one run each (BENCH_EDITS_REPEAT overrides).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pymysql.cursors
from conftest import sqlite_ddl
from measure import Measured, run_measured
from servers import MySQLServer

from queuetool.changes.apply import EditResult, apply_edits
from queuetool.changes.kinds import Edit, Purge, Reprioritise, Reschedule
from queuetool.changes.restore import restore
from queuetool.changes.snapshot import take
from queuetool.priority import Priority
from queuetool.table.filters import JobFilter
from queuetool.table.store import QueueStore

QUEUETOOL = str(Path(sys.executable).parent / "queuetool")
TABLE = "gearman_queue"
COPY = "qt_bench_copy"  # the bare copies' fresh table
COLS = "unique_key, function_name, priority, data, when_to_run"
FUNCTION = "function_3"  # data.py: i % 10 == 3 -> 10% of the jobs, all NORMAL, all scheduled
HIGH = int(Priority.HIGH)
AT = 1_900_000_000  # data.py schedules function_3 at 2_000_000_000: every row changes
BATCH = 5000
SMALL = 100_000
CHANGE_TARGET, COPY_TARGET, MEMORY_TARGET_MB = 1.3, 2.0, 150.0
MYSQL_DB = "qt_bench_edits"
MYSQL_SOURCE = "bench"  # built by run.py, never written here


def line(text: str) -> None:
    print(text, flush=True)


# -- one backend ----------------------------------------------------------------------


@dataclass
class Backend:
    """A queue under test: how to reset it, and the bare driver's ways into it."""

    name: str
    url: str
    mark: str  # the driver's placeholder
    fresh: Callable[[], None]  # put a fresh copy of the pristine table in place
    connect: Callable[[], object]  # a bare driver connection, autocommit off
    create_copy: str  # DDL of the fresh table for the bare copies (same layout)
    cleanup: Callable[[], None]

    def insert(self, table: str) -> str:
        return f"INSERT INTO {table} ({COLS}) VALUES ({', '.join([self.mark] * 5)})"


def sqlite_backend(work: Path, pristine: Path) -> Backend:
    db = work / "edits.db"

    def fresh() -> None:
        for extra in ("-journal", "-wal", "-shm"):
            Path(f"{db}{extra}").unlink(missing_ok=True)
        shutil.copyfile(pristine, db)

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(db)  # implicit BEGIN before a write, COMMIT by commit()

    def cleanup() -> None:
        db.unlink(missing_ok=True)

    return Backend(
        "sqlite",
        f"sqlite:///{db}",
        "?",
        fresh,
        connect,
        sqlite_ddl(COPY),
        cleanup,
    )


def mysql_backend(mysql: MySQLServer) -> Backend:
    mysql.create_database(MYSQL_DB)

    def fresh() -> None:
        with mysql.connect(MYSQL_DB) as conn, conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            for (name,) in cur.fetchall():
                cur.execute(f"DROP TABLE `{name}`")
            cur.execute(f"CREATE TABLE {TABLE} LIKE `{MYSQL_SOURCE}`.{TABLE}")
            cur.execute(f"INSERT INTO {TABLE} SELECT * FROM `{MYSQL_SOURCE}`.{TABLE}")

    def connect() -> pymysql.Connection:
        conn = mysql.connect(MYSQL_DB)
        conn.autocommit(False)
        return conn

    return Backend(
        "mysql",
        mysql.url(MYSQL_DB),
        "%s",
        fresh,
        connect,
        f"CREATE TABLE {COPY} LIKE {TABLE}",
        lambda: mysql.drop_database(MYSQL_DB),
    )


@contextlib.contextmanager
def closing_all(*things: object) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in things:
            with contextlib.suppress(Exception):
                thing.close()  # type: ignore[attr-defined]


def packet_limit(conn: object) -> int:
    """PyMySQL's executemany builds multi-row INSERTs up to max_stmt_length: as long as
    the server takes (at most 16 MB), as a good bare copy would."""
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT @@max_allowed_packet")
        (limit,) = cur.fetchone()
    return max(64 * 1024, min(16 * 1024 * 1024, int(limit) - 64 * 1024))


# -- the change step ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    edit: Edit
    bare_sql: str
    bare_args: tuple
    statement: str

    def exact(self) -> tuple[str, tuple]:
        """MySQL: the same statement with queuetool's byte-exact WHERE (dialects/mysql.py
        `exact_match`), to tell the WHERE's cost from the rest of the change step."""
        sql = self.bare_sql.replace(
            "function_name = %s", "CAST(CONVERT(function_name USING utf8mb4) AS BINARY) IN (%s)"
        )
        return sql, (*self.bare_args[:-1], FUNCTION.encode())


def cases(mark: str) -> list[Case]:
    where = f"function_name = {mark}"
    only = JobFilter(functions=(FUNCTION,))
    return [
        Case(
            "reprioritise",
            Reprioritise(only, Priority.HIGH),
            f"UPDATE {TABLE} SET priority = {mark} WHERE {where}",
            (HIGH, FUNCTION),
            "UPDATE",
        ),
        Case(
            "reschedule",
            Reschedule(only, AT),
            f"UPDATE {TABLE} SET when_to_run = {mark} WHERE {where}",
            (AT, FUNCTION),
            "UPDATE",
        ),
        Case("purge", Purge(only), f"DELETE FROM {TABLE} WHERE {where}", (FUNCTION,), "DELETE"),
    ]


def ours_edit(backend: Backend, case: Case, snapdir: Path) -> EditResult:
    backend.fresh()
    shutil.rmtree(snapdir, ignore_errors=True)
    snapdir.mkdir()
    store = QueueStore(backend.url)
    try:
        return apply_edits(store, [case.edit], snapdir, keep=1, guard=False)
    finally:
        store.close()
        shutil.rmtree(snapdir, ignore_errors=True)


def bare_edit(backend: Backend, case: Case, exact: bool = False) -> tuple[float, int]:
    """The bare statement + COMMIT on a connection already open (as change_seconds)."""
    sql, args = case.exact() if exact else (case.bare_sql, case.bare_args)
    backend.fresh()
    conn = backend.connect()
    with closing_all(conn):
        cur = conn.cursor()  # type: ignore[attr-defined]
        began = time.perf_counter()
        cur.execute(sql, args)
        conn.commit()  # type: ignore[attr-defined]
        seconds = time.perf_counter() - began
        return seconds, cur.rowcount


def bench_change(backend: Backend, case: Case, work: Path, repeat: int, results: dict) -> None:
    ours: list[EditResult] = []
    bare: list[float] = []
    exact: list[float] = []
    for _ in range(repeat):
        ours.append(ours_edit(backend, case, work / "edits-snapshots"))
        seconds, rowcount = bare_edit(backend, case)
        bare.append(seconds)
        assert rowcount == ours[-1].changed, (case.label, rowcount, ours[-1].changed)
        if backend.name == "mysql":
            seconds, rowcount = bare_edit(backend, case, exact=True)
            exact.append(seconds)
            assert rowcount == ours[-1].changed, (case.label, rowcount, ours[-1].changed)
    best = min(ours, key=lambda r: r.change_seconds)
    floor = min(bare)
    ratio = best.change_seconds / floor
    ok = ratio <= CHANGE_TARGET
    results[f"edits/{backend.name}/{case.label}"] = {
        "jobs_changed": best.changed,
        "change_s": round(best.change_seconds, 3),
        "bare_s": round(floor, 3),
        "ratio": round(ratio, 2),
        "target": f"<= {CHANGE_TARGET}",
        "ok": ok,
        "snapshot_s": round(min(r.snapshot_seconds for r in ours), 3),
        "elapsed_s": round(min(r.elapsed for r in ours), 3),
        "runs": repeat,
    }
    extra = ""
    if exact:
        results[f"edits/{backend.name}/{case.label}"]["bare_byte_exact_where_s"] = round(
            min(exact), 3
        )
        extra = f"; bare with queuetool's byte-exact WHERE {min(exact):.3f}s"
    line(
        f"edits  {backend.name:6} {case.label:12}: change {best.change_seconds:.3f}s vs bare "
        f"{case.statement}+COMMIT {floor:.3f}s = {ratio:.2f}x (target <= {CHANGE_TARGET}: "
        f"{'OK' if ok else 'OVER'}); snapshot {best.snapshot_seconds:.3f}s on its own, "
        f"whole edit {best.elapsed:.3f}s; {best.changed:,} jobs{extra}"
    )


# -- snapshot and restore against a bare streamed copy --------------------------------


def stream_copy(source: object, select: str, target: object, insert: str, limit: int) -> int:
    """Every row through the streaming cursor on `source`, executemany'd into `target`,
    committed; the rows copied."""
    if isinstance(source, sqlite3.Connection):
        reader = source.cursor()  # sqlite3 steps through the rows as they are fetched
    else:
        reader = source.cursor(pymysql.cursors.SSCursor)  # type: ignore[attr-defined]
    writer = target.cursor()  # type: ignore[attr-defined]
    if limit:
        writer.max_stmt_length = limit
    copied = 0
    reader.execute(select)
    while batch := reader.fetchmany(BATCH):
        writer.executemany(insert, batch)
        copied += len(batch)
    reader.close()
    target.commit()  # type: ignore[attr-defined]
    return copied


def drop_copy(backend: Backend) -> None:
    conn = backend.connect()
    with closing_all(conn):
        conn.cursor().execute(f"DROP TABLE IF EXISTS {COPY}")  # type: ignore[attr-defined]
        conn.commit()  # type: ignore[attr-defined]


def bare_table_copy(backend: Backend) -> float:
    """The queue table into a fresh table in the same database."""
    drop_copy(backend)
    began = time.perf_counter()
    source = backend.connect()
    # SQLite: one connection reads and writes (a second one would wait for the reader's
    # lock); MySQL: the streaming cursor holds its connection, so the writer has its own.
    target = backend.connect() if backend.name == "mysql" else source
    with closing_all(source, target):
        target.cursor().execute(backend.create_copy)  # type: ignore[attr-defined]
        limit = packet_limit(target) if backend.name == "mysql" else 0
        rows = stream_copy(
            source, f"SELECT {COLS} FROM {TABLE}", target, backend.insert(COPY), limit
        )
    seconds = time.perf_counter() - began
    drop_copy(backend)
    return seconds if rows else float("nan")


def bare_copy_out(backend: Backend, work: Path) -> float:
    """The queue table into a fresh table in a new SQLite file (what a snapshot writes)."""
    out = work / "edits-bare-out.db"
    out.unlink(missing_ok=True)
    began = time.perf_counter()
    source, target = backend.connect(), sqlite3.connect(out)
    with closing_all(source, target):
        target.execute(f"CREATE TABLE {COPY} ({COLS})")  # the snapshot's untyped table
        stream_copy(
            source,
            f"SELECT {COLS} FROM {TABLE}",
            target,
            f"INSERT INTO {COPY} VALUES (?, ?, ?, ?, ?)",
            0,
        )
    seconds = time.perf_counter() - began
    out.unlink()
    return seconds


def bare_copy_in(backend: Backend, snap: Path) -> float:
    """The snapshot file's rows into a fresh queue table (what a restore writes)."""
    drop_copy(backend)
    began = time.perf_counter()
    source, target = sqlite3.connect(snap), backend.connect()
    with closing_all(source, target):
        target.cursor().execute(backend.create_copy)  # type: ignore[attr-defined]
        limit = packet_limit(target) if backend.name == "mysql" else 0
        stream_copy(source, f"SELECT {COLS} FROM rows", target, backend.insert(COPY), limit)
    seconds = time.perf_counter() - began
    drop_copy(backend)
    return seconds


def timed_take(backend: Backend, snapdir: Path) -> tuple[float, Path]:
    store = QueueStore(backend.url)
    try:
        began = time.perf_counter()
        info = take(store, snapdir, keep=None)
        return time.perf_counter() - began, info.path
    finally:
        store.close()


def timed_restore(backend: Backend, snap: Path, snapdir: Path) -> float:
    backend.fresh()
    store = QueueStore(backend.url)
    try:
        began = time.perf_counter()
        done = restore(store, snap, snapdir, keep=None, guard=False, take_snapshot=False)
        seconds = time.perf_counter() - began
    finally:
        store.close()
    assert done.rows == done.source.rows, (done.rows, done.source.rows)
    return seconds


def copy_record(
    what: str, ours: float, bare: float, matched: float, matched_label: str
) -> tuple[dict, str]:
    ratio = ours / bare
    ok = ratio <= COPY_TARGET
    record = {
        f"{what}_s": round(ours, 3),
        "bare_copy_s": round(bare, 3),
        "ratio": round(ratio, 2),
        "target": f"<= {COPY_TARGET}",
        "ok": ok,
        f"bare_{matched_label}_s": round(matched, 3),
        f"ratio_vs_{matched_label}": round(ours / matched, 2),
    }
    text = (
        f"{what} {ours:.3f}s vs bare streamed copy {bare:.3f}s = {ratio:.2f}x (target <= "
        f"{COPY_TARGET}: {'OK' if ok else 'OVER'}); vs bare {matched_label.replace('_', ' ')} "
        f"{matched:.3f}s = {ours / matched:.2f}x"
    )
    return record, text


def bench_copies(backend: Backend, work: Path, repeat: int, results: dict) -> Path:
    """Returns a snapshot of the pristine table (kept in work/edits-snapshot-src)."""
    keepdir = work / "edits-snapshot-src"
    shutil.rmtree(keepdir, ignore_errors=True)
    keepdir.mkdir()
    scratch = work / "edits-snapshots"
    takes, restores, copies, outs, ins = [], [], [], [], []
    snap: Path | None = None
    for _ in range(repeat):
        backend.fresh()
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        seconds, path = timed_take(backend, scratch)
        takes.append(seconds)
        if snap is None:
            snap = keepdir / path.name
            shutil.move(path, snap)
        copies.append(bare_table_copy(backend))
        outs.append(bare_copy_out(backend, work))
        ins.append(bare_copy_in(backend, snap))
        restores.append(timed_restore(backend, snap, scratch))
    shutil.rmtree(scratch, ignore_errors=True)
    assert snap is not None
    copy = min(copies)
    for what, ours, matched, label in (
        ("snapshot", min(takes), min(outs), "copy_to_sqlite_file"),
        ("restore", min(restores), min(ins), "copy_from_snapshot"),
    ):
        record, text = copy_record(what, ours, copy, matched, label)
        results[f"edits/{backend.name}/{what}"] = {**record, "runs": repeat}
        line(f"edits  {backend.name:6} {what:12}: {text}")
    return snap


# -- peak memory of the CLI -----------------------------------------------------------

# Linux gives a child its parent's RSS high-water mark at fork/exec: run_measured's
# ru_maxrss of a child of this (large) process is at least this process's RSS
# (/bin/true from a 400 MB parent: 412 MB). So the CLI is started by a small Python
# wrapper that reports its child's own ru_maxrss; run_measured still gives the wall
# time, and its (inflated) figure is recorded as well.
WRAPPER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def cli_measured(argv: list[str], work: Path) -> tuple[Measured, float]:
    """run_measured of the CLI through WRAPPER; and the CLI's own peak RSS in MB."""
    report = work / "edits-cli-maxrss"
    report.unlink(missing_ok=True)
    m = run_measured([sys.executable, "-c", WRAPPER, str(report), *argv])
    peak = int(report.read_text()) / 1024 if report.exists() else float("nan")
    return m, peak


def cli_record(backend: Backend, what: str, argv: list[str], work: Path, results: dict) -> None:
    m, peak = cli_measured(argv, work)
    if m.returncode != 0:
        raise RuntimeError(f"queuetool {what} on {backend.name} exited {m.returncode}: {m.stdout}")
    ok = peak < MEMORY_TARGET_MB
    results[f"edits/{backend.name}/cli_{what}"] = {
        "peak_mb": round(peak, 1),
        "target": f"< {MEMORY_TARGET_MB:.0f} MB",
        "ok": ok,
        "wall_s": round(m.seconds, 2),
        "run_measured_peak_mb_inflated": round(m.peak_mb, 1),
    }
    line(
        f"edits  {backend.name:6} CLI {what:8}: peak RSS {peak:.0f} MB (target < "
        f"{MEMORY_TARGET_MB:.0f} MB: {'OK' if ok else 'OVER'}), wall {m.seconds:.2f}s "
        f"[run_measured alone says {m.peak_mb:.0f} MB: this process's RSS, inherited]"
    )


def bench_cli(backend: Backend, work: Path, snap: Path, results: dict) -> None:
    snapdir = work / "edits-cli-snapshots"
    shutil.rmtree(snapdir, ignore_errors=True)
    snapdir.mkdir()
    try:
        common = ["--queue", backend.url, "--yes", "--snapshot-dir", str(snapdir)]
        backend.fresh()
        edit = [QUEUETOOL, "reprioritise", *common, "--function", FUNCTION, "--to", "high"]
        cli_record(backend, "edit", edit, work, results)
        backend.fresh()
        cli_record(backend, "restore", [QUEUETOOL, "restore", *common, str(snap)], work, results)
    finally:
        shutil.rmtree(snapdir, ignore_errors=True)


# -- the section ----------------------------------------------------------------------


def bench_backend(backend: Backend, work: Path, repeat: int, results: dict) -> None:
    try:
        for case in cases(backend.mark):
            bench_change(backend, case, work, repeat, results)
        snap = bench_copies(backend, work, repeat, results)
        bench_cli(backend, work, snap, results)
    finally:
        shutil.rmtree(work / "edits-snapshot-src", ignore_errors=True)
        backend.cleanup()


def bench_edits(
    rows: int, work: Path, mysql: MySQLServer, sqlite_db: Path, results: dict[str, dict]
) -> None:
    repeat = int(os.environ.get("BENCH_EDITS_REPEAT", "3" if rows <= SMALL else "1"))
    began = time.perf_counter()
    line(
        f"edits: {rows:,} jobs, {FUNCTION} = 10% of them; best of {repeat} run(s), fresh copy each"
    )
    bench_backend(sqlite_backend(work, sqlite_db), work, repeat, results)
    bench_backend(mysql_backend(mysql), work, repeat, results)
    line(f"edits: section took {time.perf_counter() - began:.0f}s")
