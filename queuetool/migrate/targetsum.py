"""The staging table's checksum after a migration: the rows as they are in it.

On MySQL the server computes it (dialects.mysql.server_checksum), and the work is
split in two halves by a hash of the key, each summed by its own connection: the
server hashes one row per thread, so two threads take about half the time (at 1M
rows the single query took 7-9 s, while we had nothing to do but wait). The halves
partition the rows exactly (the predicate is never NULL), so their counts and sums
add up to those of the whole table. On SQLite the rows are read back and hashed here
(no MD5 in SQLite), inside the copy's transaction: only when the copy's writer did not
sum them batch by batch as they were stored (dialects/sqlite_load.py), or its sum did
not match.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..table.checksum import Checksum
from ..table.store import QueueStore, queue_table
from .staging import combine


def staging_checksum(store: QueueStore, conn: Connection, staging: str) -> Checksum:
    """The checksum of `staging`; on MySQL every batch must be committed already (the
    second half is read on another connection)."""
    table = queue_table(staging)
    server_checksum = store.dialect.server_checksum
    if server_checksum is None or store.dialect.TRANSACTIONAL_DDL:
        # One transaction holds the copy (PostgreSQL, SQLite): no other connection sees
        # staging yet, so it is summed on this one.
        return store.dialect.stored_checksum(conn, table)
    first = sa.func.coalesce(sa.func.crc32(table.c.unique_key), 0) % 2 == 0
    other: list[Checksum] = []
    errors: list[BaseException] = []

    def second_half() -> None:
        try:
            with store.connect() as own:
                other.append(server_checksum(own, table, sa.not_(first)))
        except BaseException as exc:  # raised in the caller's thread below
            errors.append(exc)

    thread = threading.Thread(target=second_half, name="queuetool-target-checksum", daemon=True)
    thread.start()
    try:
        mine = server_checksum(conn, table, first)
    finally:
        thread.join()
    if errors:
        raise errors[0]
    return combine([mine, other[0]])
