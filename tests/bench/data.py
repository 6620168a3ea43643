"""Realistic queue tables for the benchmarks, built by SQL in seconds (not through gearmand).

uuid-like unique keys, 10 functions, mixed priorities (20% high, 60% normal, 20% low),
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
        SELECT lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-' ||
                 lower(hex(randomblob(2))) || '-' || lower(hex(randomblob(8))),
               'function_' || (i % 10),
               CASE WHEN i % 5 = 0 THEN 0 WHEN i % 5 = 4 THEN 2 ELSE 1 END,
               randomblob(200),
               CASE WHEN i % 10 = 3 THEN {FUTURE} ELSE 0 END
        FROM seq
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
            SELECT CONCAT(LEFT(MD5(seq), 8), '-', SUBSTR(MD5(seq), 9, 4), '-',
                          SUBSTR(MD5(seq), 13, 4), '-', SUBSTR(MD5(seq), 17, 16)),
                   CONCAT('function_', seq % 10),
                   CASE WHEN seq % 5 = 0 THEN 0 WHEN seq % 5 = 4 THEN 2 ELSE 1 END,
                   RANDOM_BYTES(200) ,
                   CASE WHEN seq % 10 = 3 THEN {FUTURE} ELSE 0 END
            FROM seq_1_to_{int(rows)}
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
