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

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from sqlalchemy.engine import Connection, CursorResult

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
# MySQL TEMPORARY tables (this connection only, gone with it) for a rows snapshot.
UNDO_KEYS, UNDO_ROWS = "qt_undo_keys", "qt_undo_rows"


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

    if info.partial:
        replace_rows = _rows_sqlite if store.backend == "sqlite" else _rows_mysql
        before, replaced, after = replace_rows(store, info, keep_replaced)
    else:
        replace = _in_one_transaction if store.backend == "sqlite" else _by_atomic_rename
        before, replaced, after = replace(store, info, snapshot_before)
    if before is not None and keep is not None:
        prune(before.path.parent, keep, before, protect=info.path)
    return RestoreResult(info, before, replaced, after.rows, after.hex, time.monotonic() - started)


def same_queue(info: SnapshotInfo, store: QueueStore) -> bool:
    """Whether the snapshot was taken of this very table: the same table name in the same
    SQLite file (by resolved path, or by device and inode) or the same MySQL server
    address and database."""
    if info.backend != store.backend or info.table != store.table_name:
        return False
    if store.backend == "sqlite" and info.file_id and info.file_id == store.file_id:
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


RowsBefore = Callable[[Iterable[Iterable[object]]], SnapshotInfo | None]


def _rows_sqlite(store: QueueStore, info: SnapshotInfo, keep_replaced: RowsBefore) -> Replaced:
    """SQLite, a rows snapshot: the rows with its keys replaced in one transaction.

    The snapshot is ATTACHed; the join walks its keys and finds each row by the queue
    table's primary key (IS: a NULL key matches a NULL key)."""
    table = conn_quote(store.engine, store.table_name)
    columns = ", ".join(f"q.{c}" for c in COLUMNS)
    join = (
        f"FROM qtsnap.keys AS k CROSS JOIN {table} AS q "
        "ON q.unique_key IS k.unique_key AND q.function_name IS k.function_name"
    )
    with store.connect() as conn, _attached(store, conn, info.path), conn.begin():
        store.require_table(conn)
        with conn.exec_driver_sql(f"SELECT {columns} {join}") as current:
            before = keep_replaced(current)
        replaced = conn.exec_driver_sql(
            f"DELETE FROM {table} WHERE rowid IN (SELECT q.rowid {join})"
        ).rowcount
        _insert_rows(store, conn, store.table_name, info.path, "qtsnap")
        with conn.exec_driver_sql(f"SELECT {columns} {join}") as restored:
            after = _check_rows(restored, info)
    return before, replaced, after


def _rows_mysql(store: QueueStore, info: SnapshotInfo, keep_replaced: RowsBefore) -> Replaced:
    """MySQL, a rows snapshot: its keys and rows go into TEMPORARY tables LIKE the queue
    table (same charset and collation, so keys compare as the unique key does), then
    one transaction deletes the rows with those keys and inserts the snapshot's."""
    d = store.dialect
    table = f"`{store.table_name}`"
    columns = ", ".join(f"q.`{c}`" for c in COLUMNS)
    join = (
        f"FROM `{UNDO_KEYS}` AS k JOIN {table} AS q "
        "ON q.unique_key <=> k.unique_key AND q.function_name <=> k.function_name"
    )
    with store.connect() as conn:
        d.prepare_writer(conn.connection.dbapi_connection)  # strict mode: nothing cut
        try:
            with conn.begin():
                store.require_table(conn)
                for name in (UNDO_KEYS, UNDO_ROWS):
                    conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS `{name}`")
                    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE `{name}` LIKE {table}")
                _insert_rows(store, conn, UNDO_KEYS, info.path, None, keys=True)
                _insert_rows(store, conn, UNDO_ROWS, info.path, None)
                with stream_query(conn, f"SELECT {columns} {join}") as current:
                    before = keep_replaced(current)
                replaced = conn.exec_driver_sql(f"DELETE q {join}").rowcount
                names = ", ".join(f"`{c}`" for c in COLUMNS)
                conn.exec_driver_sql(
                    f"INSERT INTO {table} ({names}) SELECT {names} FROM `{UNDO_ROWS}`"
                )
                with stream_query(conn, f"SELECT {columns} {join}") as restored:
                    after = _check_rows(restored, info)
        finally:
            with contextlib.suppress(Exception):
                for name in (UNDO_KEYS, UNDO_ROWS):
                    conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS `{name}`")
    return before, replaced, after


def stream_query(conn: Connection, sql: str) -> CursorResult:
    """The rows of a plain SQL query, streamed (a server-side cursor on MySQL); close
    it (`with`) before the next statement."""
    return conn.execution_options(stream_results=True, yield_per=5000).exec_driver_sql(sql)


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
    raw = conn.connection.dbapi_connection
    cursor = raw.cursor()  # type: ignore[union-attr]
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
