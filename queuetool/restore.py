"""`restore`: put a queue table back exactly as a snapshot holds it.

The snapshot's checksum is verified before anything is written, the current state
is snapshotted first, the table is replaced all at once, and the new table's
checksum is compared with the snapshot's before the replacement counts:

- SQLite: ONE transaction (DELETE, then INSERT ... SELECT from the snapshot file,
  ATTACHed, so the rows are copied inside the engine), checked before the commit.
- MySQL: the rows go into a staging table made LIKE the queue table (same layout,
  same charset), are checked there, and one atomic RENAME TABLE puts it in the
  queue table's place. One DELETE + INSERT transaction of a big queue puts every
  row into InnoDB's undo log twice and was measured ~15x slower (236 s at 1M rows);
  a crash before the RENAME leaves the queue table untouched (the staging table is
  dropped by the next restore), after it the table is wholly new.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Connection

from .checksum import Checksum, stream_rows
from .config import DEFAULT_KEEP
from .errors import UsageError, VerifyError
from .snapshot import SnapshotInfo, prune, snapshot_rows, take, verify
from .store import COLUMNS, QueueStore, conn_quote, queue_table

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
) -> RestoreResult:
    """Put the table back exactly as the snapshot at `path` holds it.

    VerifyError if the snapshot is damaged (nothing written) or the table does not
    end up with the snapshot's checksum (nothing kept). The state replaced is
    snapshotted to `snapshot_dir` first unless `take_snapshot` is False. `guard`
    refuses while the queue's gearmand runs (`force` overrides it, with a warning).
    """
    started = time.monotonic()
    verification = verify(path)
    if not verification.ok:
        raise VerifyError(verification.summary() + "; not restored")
    info = verification.info
    if info.backend != store.backend:
        raise UsageError(
            f"{info.path} is a snapshot of a {info.backend} queue; {store.display_url} is "
            f"{store.backend} (restore into a {info.backend} queue, or use migrate)"
        )
    if guard:
        from .guard import ensure_stopped

        ensure_stopped(store, gearmand, force)

    def snapshot_before(conn: Connection) -> SnapshotInfo | None:
        """The snapshot of the state about to be replaced."""
        if not take_snapshot:
            return None
        # No retention here: it could delete the very snapshot being restored.
        return take(
            store, snapshot_dir, keep=None, reason="before-restore", conn=conn, create=create
        )

    replace = _in_one_transaction if store.backend == "sqlite" else _by_atomic_rename
    before, rows_before, after = replace(store, info, snapshot_before)
    if before is not None and keep is not None:
        prune(before.path.parent, keep, before, protect=info.path)
    return RestoreResult(
        info, before, rows_before, after.rows, after.hex, time.monotonic() - started
    )


Replaced = tuple[SnapshotInfo | None, int, Checksum]
Before = Callable[[Connection], SnapshotInfo | None]


def _in_one_transaction(store: QueueStore, info: SnapshotInfo, snapshot_before: Before) -> Replaced:
    """SQLite: DELETE + INSERT ... SELECT in one transaction, checked before the commit."""
    with store.connect() as conn, _attached(store, conn, info.path) as source, conn.begin():
        store.require_table(conn)
        before = snapshot_before(conn)
        rows_before = before.rows if before is not None else store.count(conn)
        conn.execute(store.table.delete())
        _insert_rows(store, conn, store.table_name, info.path, source)
        after = _check(store, conn, store.table_name, info)
    return before, rows_before, after


def _by_atomic_rename(store: QueueStore, info: SnapshotInfo, snapshot_before: Before) -> Replaced:
    """MySQL: staging table LIKE the queue table, checked, then one atomic RENAME TABLE."""
    d = store.dialect
    target = store.table_name
    staging = target[: 64 - len(STAGING_SUFFIX)] + STAGING_SUFFIX
    old = target[: 64 - len(OLD_SUFFIX)] + OLD_SUFFIX
    with store.connect() as conn:
        d.prepare_writer(conn.connection.dbapi_connection)  # strict mode: nothing cut
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        store.require_table(conn)
        before = snapshot_before(conn)
        rows_before = before.rows if before is not None else store.count(conn)
        for leftover in (staging, old):  # from a restore that was killed
            d.drop_table(conn, leftover)
        d.create_staging(conn, store, staging, target)
        try:
            _insert_rows(store, conn, staging, info.path, None)
            after = _check(store, conn, staging, info)
            d.swap(conn, target, staging, old)
        except BaseException:
            with contextlib.suppress(Exception):
                d.drop_table(conn, staging)
            raise
        d.drop_table(conn, old)
    return before, rows_before, after


def _check(store: QueueStore, conn: Connection, table: str, info: SnapshotInfo) -> Checksum:
    """The rows now in `table`, read back, must be the snapshot's."""
    after = Checksum().update(stream_rows(conn, queue_table(table)))
    if after.rows != info.rows or after.hex != info.checksum:
        raise VerifyError(
            f"after restoring {info.path} the table holds {after}, the snapshot "
            f"{info.rows} rows, checksum {info.checksum}: rolled back, nothing changed"
        )
    return after


@contextlib.contextmanager
def _attached(store: QueueStore, conn: Connection, path: Path) -> Iterator[str]:
    """Set the SQLite connection up for a bulk write (the dialect's `prepare_writer`: a
    big page cache) and ATTACH the snapshot (before any transaction, which ATTACH needs)
    so its rows are copied in the engine; yields the attached schema's name."""
    raw = conn.connection.driver_connection
    store.dialect.prepare_writer(raw)
    raw.execute("ATTACH DATABASE ? AS qtsnap", (str(path),))
    try:
        yield "qtsnap"
    finally:
        raw.execute("DETACH DATABASE qtsnap")


def _insert_rows(
    store: QueueStore, conn: Connection, table: str, path: Path, source: str | None
) -> None:
    """Every snapshot row into the (empty) `table`, values untouched."""
    columns = ", ".join(conn_quote(store.engine, c) for c in COLUMNS)
    quoted = conn_quote(store.engine, table)
    if source is not None:
        conn.exec_driver_sql(
            f"INSERT INTO {quoted} ({columns}) SELECT {columns} FROM {source}.rows"
        )
        return
    # Through the driver's executemany on the DB-API connection: PyMySQL turns it into
    # multi-row INSERTs, as long as the server's packet limit allows (`statement_bytes`).
    mark = "?" if conn.dialect.paramstyle in ("qmark", "numeric") else "%s"
    insert = f"INSERT INTO {quoted} ({columns}) VALUES ({', '.join([mark] * len(COLUMNS))})"
    raw = conn.connection.dbapi_connection
    cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        limit = store.dialect.statement_bytes(raw)
        if limit:
            cursor.max_stmt_length = limit
        for rows in snapshot_rows(path):
            cursor.executemany(insert, rows)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise VerifyError(
            f"the table does not take the rows of {path} ({exc}): rolled back, nothing changed"
        ) from exc
    finally:
        cursor.close()
