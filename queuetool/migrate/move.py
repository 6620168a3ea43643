"""`migrate --move`: empty the source, only if it still holds exactly what was copied.

The copy read the source once and verified the target against it. Between that read
and the emptying the source could change (a daemon started by hand, another tool),
and a plain DELETE would then throw away jobs the target never got. So the emptying
transaction first locks the source (SQLite: BEGIN IMMEDIATE, no other writer until
the commit; MySQL: a locking read of every row through the clustered index, in
REPEATABLE READ so its next-key locks also keep new rows out), then proves within
the lock that the table holds the very rows that were read: the same count and the
same order-independent checksum (checksum.py). The undo snapshot taken there
computes that checksum from the rows it saves, so the proof costs no extra read.
Last, the DELETE must remove exactly that many rows; anything else rolls back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..changes import snapshot
from ..errors import VerifyError
from ..table.checksum import Checksum
from ..table.store import QueueStore, conn_quote


def empty_source(
    source: QueueStore,
    read: Checksum,
    *,
    snapshot_dir: str | None = None,
    keep: int | None = snapshot.DEFAULT_KEEP,
) -> str:
    """Snapshot and empty `source` in one transaction if it holds exactly `read` (the
    checksum of the rows as they were read); returns the snapshot's path.

    Raises VerifyError, with nothing emptied and no snapshot left, when it does not.
    """
    with _locked(source) as conn:
        now = _lock_rows(source, conn)
        if now != read.rows:
            raise _changed(read, f"{now} jobs")
        info = snapshot.take(source, snapshot_dir, keep=keep, reason="migrate-move", conn=conn)
        if (info.rows, info.checksum) != (read.rows, read.hex):
            info.path.unlink(missing_ok=True)
            raise _changed(read, f"{info.rows} jobs, checksum {info.checksum}")
        deleted = conn.execute(sa.delete(source.table)).rowcount
        if deleted != read.rows:  # a row that slipped past the lock: roll back
            info.path.unlink(missing_ok=True)
            raise _changed(read, f"{deleted} jobs to delete")
    return str(info.path)


@contextlib.contextmanager
def _locked(source: QueueStore) -> Iterator[Connection]:
    """One transaction on the source, committed on success, rolled back on error."""
    with source.connect() as conn:
        isolation = source.dialect.MOVE_ISOLATION
        if isolation is not None:
            conn.execution_options(isolation_level=isolation)
        with conn.begin():  # SQLite: BEGIN IMMEDIATE (the store's engine issues it)
            yield conn


def _lock_rows(source: QueueStore, conn: Connection) -> int:
    """Lock the whole table against writers for the rest of the transaction; the count."""
    table = conn_quote(source.engine, source.table_name)
    return source.dialect.count_locked(conn, table)


def _changed(read: Checksum, now: str) -> VerifyError:
    return VerifyError(
        f"--move: the source changed after it was copied ({read.rows} jobs, checksum "
        f"{read.hex} read; it now holds {now}): it was NOT emptied; the target holds the copy"
    )
