"""`restore`: put a queue table back exactly as a snapshot holds it.

The snapshot's checksum is verified before anything is written, the current state
is snapshotted first, the table is replaced all at once, and the new table's
checksum is compared with the snapshot's before the replacement counts:

How the table is replaced is the dialect's (`replace_table`, `replace_rows`):

- SQLite: ONE transaction (DELETE, then INSERT ... SELECT from the snapshot file,
  ATTACHed, so the rows are copied inside the engine), checked before the commit.
- MySQL: the rows go into a staging table made LIKE the queue table (same layout,
  same charset), are checked there, and one atomic RENAME TABLE puts it in the
  queue table's place. One DELETE + INSERT transaction of a big queue puts every
  row into InnoDB's undo log twice and was measured ~15x slower (236 s at 1M rows);
  a crash before the RENAME leaves the queue table untouched (the staging table is
  dropped by the next restore), after it the table is wholly new.

A rows snapshot (an edit's undo) replaces only the rows with the keys it covers,
in ONE transaction on both backends: delete the rows with those keys, insert the
snapshot's rows, and read the rows with those keys back: they must be the
snapshot's. The rest of the table is not touched (the edit did not change it), so
the work is proportional to the rows the edit changed. The state replaced is kept
as a rows snapshot over the same keys, so the restore can itself be undone.

A snapshot goes back onto the queue and table it was taken of (`same_queue`). A whole
table snapshot may replace another queue's table only when asked to
(`onto_other_queue`); a rows snapshot never: its keys say which jobs of ITS queue an
edit changed, and applied elsewhere they would replace unrelated jobs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, cast

from sqlalchemy.engine import Connection

from ..config import DEFAULT_KEEP
from ..errors import UsageError, VerifyError
from ..table.checksum import Checksum, stream_rows
from ..table.store import COLUMNS, QueueStore, conn_quote, queue_table
from .snapshot import (
    SnapshotInfo,
    prune,
    snapshot_keys,
    snapshot_rows,
    take,
    take_rows,
    verify,
)

STAGING_SUFFIX = "__qt_restore"
OLD_SUFFIX = "__qt_replaced"


@dataclass(frozen=True)
class RestoreResult:
    """What `restore` did: the snapshot put back, and the snapshot taken of the state before."""

    source: SnapshotInfo
    before: SnapshotInfo | None
    rows_before: int
    rows: int
    checksum: str
    elapsed: float


def restore(
    store: QueueStore,
    path: str | os.PathLike[str],
    snapshot_dir: str | os.PathLike[str] | None = None,
    *,
    keep: int | None = DEFAULT_KEEP,
    gearmand: str | None = None,
    force: bool = False,
    guard: bool = True,
    take_snapshot: bool = True,
    create: bool | None = None,
    onto_other_queue: bool = False,
) -> RestoreResult:
    """Put the table back exactly as the snapshot at `path` holds it.

    VerifyError if the snapshot is damaged (nothing written) or the table does not
    end up with the snapshot's checksum (nothing kept). The state replaced is
    snapshotted to `snapshot_dir` first unless `take_snapshot` is False. `guard`
    refuses while the queue's gearmand runs (`force` overrides it, with a warning).
    UsageError if the snapshot is of another queue or table (see `check_target`).
    """
    started = time.monotonic()
    verification = verify(path)
    if not verification.ok:
        raise VerifyError(verification.summary() + "; not restored")
    info = verification.info
    check_target(info, store, onto_other_queue)
    if guard:
        from ..daemon.guard import ensure_stopped

        ensure_stopped(store, gearmand, force)

    def snapshot_before(conn: Connection) -> SnapshotInfo | None:
        """The snapshot of the state about to be replaced."""
        if not take_snapshot:
            return None
        # No retention here: it could delete the very snapshot being restored.
        return take(
            store, snapshot_dir, keep=None, reason="before-restore", conn=conn, create=create
        )

    def keep_replaced(rows: Iterable[Iterable[object]]) -> SnapshotInfo | None:
        """The rows about to be replaced, as a rows snapshot over the same keys."""
        if not take_snapshot:
            return None
        keys = chain.from_iterable(snapshot_keys(info.path))
        return take_rows(
            store, rows, keys, snapshot_dir, keep=None, reason="before-restore", create=create
        )

    job = Restoring(store, info, snapshot_before, keep_replaced)
    if info.partial:
        before, replaced, after = store.dialect.replace_rows(job)
    else:
        before, replaced, after = store.dialect.replace_table(job)
    if before is not None and keep is not None:
        prune(before.path.parent, keep, before, protect=info.path)
    return RestoreResult(info, before, replaced, after.rows, after.hex, time.monotonic() - started)


def same_queue(info: SnapshotInfo, store: QueueStore) -> bool:
    """Whether the snapshot was taken of this very table: the same table name in the same
    SQLite file (by resolved path, or by device and inode) or the same MySQL server
    address and database."""
    if info.backend != store.backend or info.table != store.table_name:
        return False
    if info.file_id and info.file_id == store.file_id:
        return True
    return bool(info.location) and info.location == store.location


def check_target(info: SnapshotInfo, store: QueueStore, onto_other_queue: bool = False) -> None:
    """UsageError unless the snapshot may be restored onto `store`: its own queue and
    table, or, with `onto_other_queue`, another one for a whole-table snapshot."""
    if info.backend != store.backend:
        raise UsageError(
            f"{info.path} is a snapshot of a {info.backend} queue; {store.display_url} is "
            f"{store.backend} (restore into a {info.backend} queue, or use migrate)"
        )
    if same_queue(info, store):
        return
    here = f"{store.display_url} table {store.table_name}"
    there = f"{info.source} table {info.table}"
    if info.partial:
        raise UsageError(
            f"{info.path} is an edit's undo of {there}: it applies only to that queue and "
            f"table, never to {here}"
        )
    if not onto_other_queue:
        raise UsageError(
            f"{info.path} is a snapshot of {there}, not of {here}: add --onto-other-queue "
            "to replace that table with it"
        )


Replaced = tuple[SnapshotInfo | None, int, Checksum]
Before = Callable[[Connection], SnapshotInfo | None]


RowsBefore = Callable[[Iterable[Iterable[object]]], SnapshotInfo | None]


@dataclass(frozen=True)
class Restoring:
    """One restore, as the dialect's `replace_table` / `replace_rows` carry it out: the
    snapshot, the steps that are the same on every backend, and the names to stage in."""

    store: QueueStore
    info: SnapshotInfo
    snapshot_before: Before  # the snapshot of the whole table about to be replaced
    keep_replaced: RowsBefore  # a rows snapshot of the rows about to be replaced

    @property
    def staging(self) -> str:
        return self.store.table_name[: 64 - len(STAGING_SUFFIX)] + STAGING_SUFFIX

    @property
    def old(self) -> str:
        return self.store.table_name[: 64 - len(OLD_SUFFIX)] + OLD_SUFFIX

    def insert_rows(
        self, conn: Connection, table: str, source: str | None = None, keys: bool = False
    ) -> None:
        """The snapshot's rows (`keys`: its keys) into `table`; from the ATTACHed schema
        `source` when given."""
        _insert_rows(self.store, conn, table, self.info.path, source, keys)

    def check(self, conn: Connection, table: str) -> Checksum:
        return _check(self.store, conn, table, self.info)

    def check_rows(self, rows: Iterable[Iterable[object]]) -> Checksum:
        return _check_rows(rows, self.info)


def _check_rows(rows: Iterable[Iterable[object]], info: SnapshotInfo) -> Checksum:
    """The rows with the snapshot's keys, read back, must be the snapshot's rows."""
    after = Checksum().update(rows)
    if after.rows != info.rows or after.hex != info.checksum:
        raise VerifyError(
            f"after restoring {info.path} its {info.keys} jobs hold {after}, the snapshot "
            f"{info.rows} rows, checksum {info.checksum}: rolled back, nothing changed"
        )
    return after


def _check(store: QueueStore, conn: Connection, table: str, info: SnapshotInfo) -> Checksum:
    """The rows now in `table`, read back, must be the snapshot's."""
    after = Checksum().update(stream_rows(conn, queue_table(table)))
    if after.rows != info.rows or after.hex != info.checksum:
        raise VerifyError(
            f"after restoring {info.path} the table holds {after}, the snapshot "
            f"{info.rows} rows, checksum {info.checksum}: rolled back, nothing changed"
        )
    return after


def _insert_rows(
    store: QueueStore,
    conn: Connection,
    table: str,
    path: Path,
    source: str | None,
    keys: bool = False,
) -> None:
    """Every snapshot row (or with `keys`, every key it covers) into `table`, values
    untouched; from the ATTACHed schema `source` when given."""
    names = COLUMNS[:2] if keys else COLUMNS
    columns = ", ".join(conn_quote(store.engine, c) for c in names)
    quoted = conn_quote(store.engine, table)
    if source is not None:
        conn.exec_driver_sql(
            f"INSERT INTO {quoted} ({columns}) SELECT {columns} FROM {source}.rows"
        )
        return
    batches = snapshot_keys(path) if keys else snapshot_rows(path)
    # Through the driver's executemany on the DB-API connection: PyMySQL turns it into
    # multi-row INSERTs, as long as the server's packet limit allows (`statement_bytes`).
    mark = "?" if conn.dialect.paramstyle in ("qmark", "numeric") else "%s"
    insert = f"INSERT INTO {quoted} ({columns}) VALUES ({', '.join([mark] * len(names))})"
    raw = cast(Any, conn.connection.dbapi_connection)  # the driver's own: sqlite3, PyMySQL, ...
    cursor = raw.cursor()
    try:
        limit = store.dialect.statement_bytes(raw)
        if limit:
            cursor.max_stmt_length = limit
        for rows in batches:
            cursor.executemany(insert, rows)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise VerifyError(
            f"the table does not take the rows of {path} ({exc}): rolled back, nothing changed"
        ) from exc
    finally:
        cursor.close()
