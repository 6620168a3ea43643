"""Realistic queue tables for the benchmarks, built by SQL in seconds (not through gearmand).

UUIDv1 keys as libgearman makes them (one per millisecond, the oldest a day ago),
10 functions, mixed priorities (20% high, 60% normal, 20% low),
~200-byte payloads, 10% scheduled in the future.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from conftest import mysql_ddl, sqlite_ddl
from servers import MySQLServer

TABLE = "gearman_queue"
FUTURE = 2_000_000_000  # 2033: scheduled, and still fits MySQL's INT
# UUIDv1 time: 100 ns ticks since 1582-10-15, the first job a day before the build.
TICKS_START = (int(time.time()) - 86400 + 12219292800) * 10_000_000
TICK_STEP = 10_000  # 1 ms between submissions


def build_sqlite(path: Path, rows: int, table: str = TABLE) -> Path:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(sqlite_ddl(table))
    conn.execute(
        f"""
        WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
        INSERT INTO "{table}"
        SELECT substr(t, 8, 8) || '-' || substr(t, 4, 4) || '-1' || substr(t, 1, 3) || '-8' ||
                 substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
               'function_' || (i % 10),
               CASE WHEN i % 5 = 0 THEN 0 WHEN i % 5 = 4 THEN 2 ELSE 1 END,
               randomblob(200),
               CASE WHEN i % 10 = 3 THEN {FUTURE} ELSE 0 END
        FROM (SELECT i, printf('%015llx', {TICKS_START} + i * {TICK_STEP}) AS t FROM seq)
        """,
        (rows,),
    )
    conn.commit()
    conn.close()
    return path


def build_mysql(server: MySQLServer, database: str, rows: int, table: str = TABLE) -> None:
    """Same shape in MariaDB, from its built-in sequence tables (seq_1_to_N)."""
    server.create_database(database)
    with server.connect(database) as conn, conn.cursor() as cur:
        cur.execute(mysql_ddl(table))
        cur.execute(
            f"""
            INSERT INTO `{table}`
            SELECT CONCAT(SUBSTR(t, 8, 8), '-', SUBSTR(t, 4, 4), '-1', SUBSTR(t, 1, 3), '-8',
                          SUBSTR(MD5(seq), 1, 3), '-', SUBSTR(MD5(seq), 4, 12)),
                   CONCAT('function_', seq % 10),
                   CASE WHEN seq % 5 = 0 THEN 0 WHEN seq % 5 = 4 THEN 2 ELSE 1 END,
                   RANDOM_BYTES(200) ,
                   CASE WHEN seq % 10 = 3 THEN {FUTURE} ELSE 0 END
            FROM (SELECT seq, LOWER(LPAD(HEX({TICKS_START} + seq * {TICK_STEP}), 15, '0')) AS t
                  FROM seq_1_to_{int(rows)}) AS s
            """
        )


def timed(fn, *args, repeat: int = 3, **kwargs) -> float:  # type: ignore[no-untyped-def]
    """Best wall time of `repeat` runs (the floor is what compares fairly)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best
