"""A second reference for `import`: what a hand-written script loading the same job file
does (read it, json.loads and base64 per line, batched INSERT of 5000 rows through the
same driver), without any check, checksum, snapshot or spool.

import_bench.py calls these functions in its own process (against the in-process
import) and also runs this file as a script, whose time then includes what the
`queuetool import` process pays too: starting Python and importing the driver (the
CLI's fair reference; the bare batched INSERT of rows already in memory pays neither,
nor reads a file).

    python bare_load.py sqlite FILE DB          # into an existing empty gearman_queue
    python bare_load.py mysql FILE '{"host": ..., "database": ...}'
"""

from __future__ import annotations

import base64
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

COLS = "unique_key, function_name, priority, data, when_to_run"
BATCH = 5000


def batches(file: Path) -> Iterator[list[tuple]]:
    batch = []
    with file.open("rb") as fh:
        for raw in fh:
            r = json.loads(raw)
            if "data" not in r:
                continue  # header, trailer
            batch.append(
                (
                    r["unique_key"],
                    r["function"],
                    r["priority"],
                    base64.b64decode(r["data"]),
                    r["when_to_run"],
                )
            )
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def load_sqlite(file: Path, db: Path) -> None:
    """sqlite3 executemany in one transaction."""
    conn = sqlite3.connect(db)
    for batch in batches(file):
        conn.executemany("INSERT INTO gearman_queue VALUES (?, ?, ?, ?, ?)", batch)
    conn.commit()
    conn.close()


def load_mysql(file: Path, params: dict[str, Any]) -> None:
    """PyMySQL executemany (multi-row INSERTs, 16 MB statements), one transaction."""
    import pymysql

    with pymysql.connect(**params, charset="utf8mb4") as conn, conn.cursor() as cur:
        cur.max_stmt_length = 16 * 1024 * 1024
        sql = f"INSERT INTO gearman_queue ({COLS}) VALUES (%s, %s, %s, %s, %s)"
        for batch in batches(file):
            cur.executemany(sql, batch)
        conn.commit()


if __name__ == "__main__":
    if sys.argv[1] == "sqlite":
        load_sqlite(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        load_mysql(Path(sys.argv[2]), json.loads(sys.argv[3]))
