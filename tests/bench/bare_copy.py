"""The fastest bare copy with queuetool's drivers: a streamed read (sqlite3 cursor /
PyMySQL SSCursor) and multi-row batched INSERTs (PyMySQL executemany with 16 MB
statements, autocommit per batch / sqlite3 executemany in one transaction). No
checks, no checksum, no staging table.

migrate_bench.py calls these functions in its own process, and also runs this file
as a script, whose time then includes what the `queuetool migrate` process pays too:
starting Python and importing the drivers.

    python bare_copy.py s2m SRC.db '{"host": ..., "database": ...}'
    python bare_copy.py m2s '{"host": ..., "database": ...}' DST.db
"""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Any

import pymysql
import pymysql.cursors

COLS = "unique_key, function_name, priority, data, when_to_run"
BATCH = 5000


def connect(params: dict[str, Any]) -> pymysql.Connection:
    return pymysql.connect(**params, autocommit=True, charset="utf8mb4")


def sqlite_to_mysql(src: str, mysql: dict[str, Any]) -> None:
    """Streamed sqlite3 read, PyMySQL multi-row INSERTs of 5000 rows, autocommit."""
    with connect(mysql) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS gearman_queue")
        cur.execute(
            "CREATE TABLE gearman_queue (unique_key VARCHAR(64), function_name VARCHAR(255), "
            "priority INT, data LONGBLOB, when_to_run INT, unique key (unique_key, function_name))"
        )
        cur.max_stmt_length = 16 * 1024 * 1024
        lite = sqlite3.connect(src)
        reader = lite.execute(f"SELECT {COLS} FROM gearman_queue")
        sql = f"INSERT INTO gearman_queue ({COLS}) VALUES (%s, %s, %s, %s, %s)"
        while batch := reader.fetchmany(BATCH):
            cur.executemany(sql, batch)
        lite.close()


def mysql_to_sqlite(mysql: dict[str, Any], dst: str) -> None:
    """PyMySQL server-side cursor, sqlite3 executemany in one transaction."""
    lite = sqlite3.connect(dst)
    lite.execute(
        "CREATE TABLE gearman_queue ( unique_key TEXT, function_name TEXT, priority INTEGER, "
        "data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))"
    )
    with connect(mysql) as conn, conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(f"SELECT {COLS} FROM gearman_queue")
        while batch := cur.fetchmany(BATCH):
            lite.executemany("INSERT INTO gearman_queue VALUES (?, ?, ?, ?, ?)", batch)
    lite.commit()
    lite.close()


if __name__ == "__main__":
    if sys.argv[1] == "s2m":
        sqlite_to_mysql(sys.argv[2], json.loads(sys.argv[3]))
    else:
        mysql_to_sqlite(json.loads(sys.argv[2]), sys.argv[3])
