"""PostgreSQL figures: queuetool against the bare SQL it replaces (BENCH_ROWS, default 20000).

    .venv/bin/python tests/bench/postgres_bench.py

report vs the bare GROUP BY; reprioritise of 10 % vs the bare UPDATE plus a COPY out of
the rows it touches; migrate
sqlite -> postgres vs a bare COPY of the same rows (read from the same SQLite file,
streamed, as migrate reads them), and postgres -> sqlite vs a bare named-cursor SELECT +
executemany. A throwaway PostgreSQL (tests/servers.py), best of 3, each migrate
alternated with its bare copy (the load of a shared machine drifts). Each migrate's peak
RSS is measured once more in a forked child of its own (os.wait4), so it is that
migration's, not the bench process's.
"""

from __future__ import annotations

import os
import resource
import sqlite3
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from data import build_sqlite, timed  # noqa: E402
from servers import start_postgres  # noqa: E402

from queuetool.changes.apply import apply_edits  # noqa: E402
from queuetool.changes.kinds import Reprioritise  # noqa: E402
from queuetool.migrate.copy import MigrateOptions, migrate  # noqa: E402
from queuetool.priority import Priority  # noqa: E402
from queuetool.table.filters import JobFilter  # noqa: E402
from queuetool.table.report import report  # noqa: E402
from queuetool.table.store import QueueStore  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "20000"))
COLS = "unique_key, function_name, priority, data, when_to_run"


def timed_alternately(*fns, repeat: int = 3, before=None) -> list[float]:  # type: ignore[no-untyped-def]
    """Best wall time of each function, run in turn `repeat` times; `before` (untimed)
    runs before each."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            if before is not None:
                before()
            best[i] = min(best[i], timed(fn, repeat=1))
    return best


def child_peak_rss(fn) -> float:  # type: ignore[no-untyped-def]
    """Run `fn` once in a forked child; its own peak RSS in MB (Linux: ru_maxrss in KB)."""
    pid = os.fork()
    if pid == 0:  # the child: run, and leave without the parent's cleanup
        code = 0
        try:
            fn()
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        raise RuntimeError(f"the measured child failed ({status})")
    return usage.ru_maxrss / 1024


def main() -> None:
    bench_postgres(ROWS, Path(tempfile.mkdtemp(prefix="qt-pgbench-")), {})


def bench_postgres(rows: int, work: Path, results: dict, **_: object) -> None:
    """run.py's `postgres` section (BENCH_ONLY=postgres): figures into results["postgres"]."""
    global ROWS
    ROWS = rows
    work = work / "postgres"
    work.mkdir(exist_ok=True)
    figures: dict[str, float] = {}
    results["postgres"] = figures
    server = start_postgres()
    try:
        server.create_database("bench")
        src = build_sqlite(work / "src.db", ROWS)
        snapdir = work / "snaps"
        snapdir.mkdir()

        def to_pg() -> None:
            with server.connect("bench") as c:
                c.execute("DROP TABLE IF EXISTS queue")
            store = QueueStore(f"sqlite:///{src}")
            dst = QueueStore(server.url("bench"))
            migrate(store, dst, MigrateOptions(snapshot_dir=snapdir))
            store.close()
            dst.close()

        def bare_copy() -> None:
            with server.connect("bench") as c, c.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS bare")
                cur.execute(
                    "CREATE TABLE bare (unique_key VARCHAR(64), function_name VARCHAR(255), "
                    "priority TEXT, data BYTEA, when_to_run TEXT, "
                    "UNIQUE (unique_key, function_name))"
                )
                lite = sqlite3.connect(src)
                reader = lite.execute(f"SELECT {COLS} FROM gearman_queue")
                with cur.copy(f"COPY bare ({COLS}) FROM STDIN") as copy:
                    while batch := reader.fetchmany(5000):
                        for row in batch:
                            copy.write_row(row)
                lite.close()

        def bare_insert() -> None:
            with server.connect("bench") as c, c.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS bare")
                cur.execute(
                    "CREATE TABLE bare (unique_key VARCHAR(64), function_name VARCHAR(255), "
                    "priority TEXT, data BYTEA, when_to_run TEXT, "
                    "UNIQUE (unique_key, function_name))"
                )
                lite = sqlite3.connect(src)
                reader = lite.execute(f"SELECT {COLS} FROM gearman_queue")
                sql = f"INSERT INTO bare ({COLS}) VALUES (%s,%s,%s,%s,%s)"
                while batch := reader.fetchmany(5000):
                    cur.executemany(sql, batch)
                lite.close()

        # Alternated, best of each: on a shared machine the load drifts between runs,
        # and one side measured in a quiet minute would flatter the ratio either way.
        t_mig, t_copy = timed_alternately(to_pg, bare_copy)
        t_ins = timed(bare_insert, repeat=1)
        rss_to = child_peak_rss(to_pg)
        print(f"rows: {ROWS}")
        figures.update(migrate_to_s=t_mig, bare_copy_s=t_copy, bare_insert_s=t_ins)
        figures["migrate_to_peak_rss_mb"] = rss_to
        print(
            f"migrate sqlite->postgres: {t_mig:.2f}s ({ROWS / t_mig:,.0f} rows/s); bare COPY "
            f"{t_copy:.2f}s ({ROWS / t_copy:,.0f} rows/s); bare executemany INSERT "
            f"{t_ins:.2f}s ({ROWS / t_ins:,.0f} rows/s); "
            f"{t_copy / t_mig:.2f}x of the faster bare copy; peak RSS {rss_to:.0f} MB"
        )

        back = work / "back.db"

        def from_pg() -> None:
            back.unlink(missing_ok=True)
            s = QueueStore(server.url("bench"))
            d = QueueStore(f"sqlite:///{back}")
            migrate(s, d, MigrateOptions(snapshot_dir=snapdir))
            s.close()
            d.close()

        def bare_back() -> None:
            path = work / "bare.db"
            path.unlink(missing_ok=True)
            db = sqlite3.connect(path)
            db.execute(
                "CREATE TABLE q (unique_key TEXT, function_name TEXT, priority INTEGER, "
                "data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))"
            )
            with server.connect("bench") as c, c.transaction(), c.cursor(name="s") as cur:
                cur.execute(
                    "SELECT unique_key, function_name, priority::bigint, data, "
                    "when_to_run::bigint FROM queue"
                )
                while batch := cur.fetchmany(5000):
                    db.executemany("INSERT INTO q VALUES (?,?,?,?,?)", batch)
            db.commit()
            db.close()

        t_back, t_bare_back = timed_alternately(from_pg, bare_back)
        rss_back = child_peak_rss(from_pg)
        print(
            f"migrate postgres->sqlite: {t_back:.2f}s ({ROWS / t_back:,.0f} rows/s); bare "
            f"SELECT+executemany {t_bare_back:.2f}s ({ROWS / t_bare_back:,.0f} rows/s); "
            f"{t_bare_back / t_back:.2f}x of bare; peak RSS {rss_back:.0f} MB"
        )

        figures.update(migrate_back_s=t_back, bare_back_s=t_bare_back)
        figures["migrate_back_peak_rss_mb"] = rss_back
        store = QueueStore(server.url("bench"))
        t_rep = timed(report, store)

        def bare_group() -> None:
            server.query(
                "bench", "SELECT function_name, priority, COUNT(*) FROM queue GROUP BY 1, 2"
            )

        t_bare = timed(bare_group)
        print(f"report: {t_rep:.3f}s; bare GROUP BY {t_bare:.3f}s ({t_rep / t_bare:.2f}x)")
        figures.update(report_s=t_rep, bare_group_by_s=t_bare)

        # The edit and its bare UPDATE each after the same reset UPDATE (not timed), in
        # turn; the target adds a bare COPY out of the rows it touches (the snapshot's
        # read): 1.3 x (UPDATE + COPY) + 0.3 s.
        touched = "function_name = 'function_3'"

        def reset() -> None:
            server.query("bench", f"UPDATE queue SET priority = '1' WHERE {touched}")

        def edit() -> None:
            apply_edits(
                store,
                [Reprioritise(JobFilter(functions=("function_3",)), Priority.LOW)],
                snapdir,
                keep=1,
                guard=False,
            )

        def bare_update() -> None:
            server.query("bench", f"UPDATE queue SET priority = '2' WHERE {touched}")

        def bare_copy_out() -> None:
            with server.connect("bench") as c, c.cursor() as cur:
                sql = f"COPY (SELECT {COLS} FROM queue WHERE {touched}) TO STDOUT"
                with cur.copy(sql) as copy:
                    for _ in copy:
                        pass

        t_edit, t_upd = timed_alternately(edit, bare_update, before=reset)
        t_out = timed(bare_copy_out)
        target = 1.3 * (t_upd + t_out) + 0.3
        print(
            f"reprioritise 10%: {t_edit:.3f}s; bare UPDATE {t_upd:.3f}s + bare COPY out of "
            f"its rows {t_out:.3f}s: target <= {target:.3f}s "
            f"({'met' if t_edit <= target else 'NOT met'})"
        )
        figures.update(
            edit_s=t_edit, bare_update_s=t_upd, bare_copy_out_s=t_out, edit_target_s=target
        )
        store.close()
        # This process's peak RSS (the section runs in it): an upper bound for queuetool's.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures["peak_rss_mb"] = peak
        print(f"peak memory (bench process, max RSS): {peak:.0f} MB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
