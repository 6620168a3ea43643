"""Writing rows into a staging table: batched multi-row INSERTs, conflicts row by row.

Each batch is one unit (a savepoint in SQLite, whose whole copy is one
transaction; a transaction of its own in MySQL). A batch that hits the unique
key is undone and written again row by row, so exactly the conflicting rows are
found, whatever the target's collation calls equal. What was not written, and
what was replaced, is kept as checksums, so the staging table's expected
checksum is known without reading the source again.

`open_writer` picks how for a whole copy: where each batch commits on its own
(MySQL), from a thread of its own, so reading, checking, hashing and encoding the
next batch overlaps the server's work on the last; where the copy is one
transaction (SQLite), through the dialect's `bulk_load` (SQLite: the rows in key
order straight into staging, the others through a TEMP table inserted in key order at
the end, see dialects/sqlite_load.py).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from sqlalchemy.engine import Connection

from ..table.checksum import MOD as CHECKSUM_MOD
from ..table.checksum import Checksum
from ..table.store import QueueStore, conn_quote, queue_table
from .carry import Refusals, Row

CONFLICT_CHOICES = ("fail", "skip", "replace")
COLUMNS = "unique_key, function_name, priority, data, when_to_run"


def combine(plus: list[Checksum], minus: list[Checksum] = ()) -> Checksum:  # type: ignore[assignment]
    """Checksum of a multiset built from others: sums added, removed parts subtracted."""
    rows = sum(c.rows for c in plus) - sum(c.rows for c in minus)
    total = (sum(c.total for c in plus) - sum(c.total for c in minus)) % CHECKSUM_MOD
    return Checksum(rows, total)


@dataclass
class StagingWriter:
    """Writes carried rows into `staging` through the connection's DB-API connection.

    `on_conflict` is None outside --merge: a conflict is then a key collision inside
    the source (a MySQL collation that ignores case or trailing spaces), a refusal.
    """

    store: QueueStore
    conn: Connection
    staging: str
    refusals: Refusals | _Collected
    on_conflict: str | None = None
    not_written: Checksum = field(default_factory=Checksum)
    removed: Checksum = field(default_factory=Checksum)
    skipped: int = 0
    replaced: int = 0
    stored: Checksum | None = None  # not summed as written: copy.py sums staging itself

    def __post_init__(self) -> None:
        # The driver's own connection: its type is the dialect's (sqlite3, PyMySQL, psycopg).
        self.raw: Any = cast(Any, self.conn.connection.dbapi_connection)
        self.batch = self.store.dialect  # how one batch is begun, ended, undone
        quoted = conn_quote(self.store.engine, self.staging)
        self.quoted = quoted
        self.insert_sql = self.store.dialect.INSERT_ROWS.format(table=quoted)
        self.integrity_error = self.store.engine.dialect.loaded_dbapi.IntegrityError
        self.dialect_prepare()
        self.cursor = self.raw.cursor()
        self.limit = self.store.dialect.statement_bytes(self.raw)
        if self.limit:
            self.cursor.max_stmt_length = self.limit  # PyMySQL: bigger multi-row INSERTs

    def dialect_prepare(self) -> None:
        self.store.dialect.prepare_writer(self.raw)

    def encode(self, batch: list[Row]) -> list[bytes] | None:
        """The batch as ready-made multi-row INSERT statements, where the dialect builds
        them faster than the driver's executemany (MySQL); None where it does not."""
        return self.store.dialect.insert_statements(self.raw, self.quoted, batch, self.limit)

    def write(self, batch: list[Row], statements: list[bytes] | None = None) -> None:
        """Write one batch (as `statements` when given); conflicting rows one by one."""
        if self._write_batch(batch, statements):
            return
        # The batch hit the key and was undone: the connection is back where it was
        # before it, outside any handler, so the retry starts from a clean state.
        self._begin()
        try:
            for row in batch:
                self._one(row)
        except BaseException:
            self._undo_quietly()
            raise
        self._end()

    def _write_batch(self, batch: list[Row], statements: list[bytes] | None) -> bool:
        """The whole batch in one unit: True when written, False when the key refused
        a row (the unit is then rolled back: nothing of the batch is left)."""
        self._begin()
        try:
            if statements is None:
                self.cursor.executemany(self.insert_sql, batch)
            else:
                for statement in statements:
                    self.cursor.execute(statement)
        except (self.integrity_error, UnicodeEncodeError):
            # UnicodeEncodeError: SQLite text that is not UTF-8, which only `_execute`
            # binds (row by row, like a conflict).
            conflict = True
        except BaseException:
            self._undo_quietly()
            raise
        else:
            conflict = False
        if conflict:
            self._undo()
            return False
        self._end()
        return True

    def _execute(self, sql: str, params: tuple) -> None:
        """cursor.execute; SQLite text that is not UTF-8 (lone surrogates, which sqlite3
        cannot bind) is bound as its bytes and CAST to TEXT: the same bytes. Looked for
        first, not caught: a failed bind raises the connection's last error, which after
        a conflict is an IntegrityError (CPython 3.11)."""
        values = [_exact_value(value) for value in params]
        if all(mark == "?" for mark, _ in values):
            self.cursor.execute(sql, params)
            return
        parts = sql.split("?")
        out = [parts[0]] + [mark + rest for (mark, _), rest in zip(values, parts[1:], strict=True)]
        self.cursor.execute("".join(out), [value for _, value in values])

    def _one(self, row: Row) -> None:
        # Inside a transaction each row gets a savepoint: after an error PostgreSQL
        # refuses every statement until a rollback (SQLite would go on; MySQL's batches
        # are transactions of their own, which its statement-level rollback keeps).
        savepoint = self.store.dialect.TRANSACTIONAL_DDL
        if savepoint:
            self._begin()
        try:
            self._execute(self.insert_sql, row)
        except self.integrity_error:
            if savepoint:
                self._undo()
        else:
            if savepoint:
                self._end()
            return
        if self.on_conflict == "replace":
            self._replace(row)
            return
        self.not_written.add(row)
        if self.on_conflict == "skip":
            self.skipped += 1
        else:
            self.refusals.add(row, "conflict" if self.on_conflict else "key_collision")

    def _replace(self, row: Row) -> None:
        """Take out the row(s) the target's key calls equal, then insert ours."""
        p = "?" if self.store.engine.dialect.paramstyle in ("qmark", "numeric") else "%s"
        where = f"WHERE unique_key = {p} AND function_name = {p}"
        # As the dialect reads them: PostgreSQL's TEXT priority and when_to_run as integers.
        table = queue_table(self.staging)
        cols = ", ".join(str(c.compile(self.store.engine)) for c in table.c)
        self._execute(f"SELECT {cols} FROM {self.quoted} {where}", row[:2])
        for old in self.cursor.fetchall():
            self.removed.add(_as_carried(old))
            self.replaced += 1
        self._execute(f"DELETE FROM {self.quoted} {where}", row[:2])
        self._execute(self.insert_sql, row)

    def _begin(self) -> None:
        self.batch.begin_batch(self.raw)

    def _end(self) -> None:
        self.batch.end_batch(self.raw)

    def _undo(self) -> None:
        """Back to the state before `_begin`."""
        self.batch.undo_batch(self.raw)

    def _undo_quietly(self) -> None:
        """`_undo` on an error path: failing to undo (a connection already lost) must
        not hide the error being raised."""
        with contextlib.suppress(Exception):
            self._undo()

    def close(self, keep: bool = True) -> None:
        """Done writing: conflicts found reach the real refusals now. The rows are in
        staging already: `keep` False changes nothing here, the caller drops staging
        (MySQL) or rolls the copy back (SQLite)."""
        self.cursor.close()
        if isinstance(self.refusals, _Collected):
            self.refusals.hand_over()

    def abort(self) -> None:
        self.cursor.close()


def _exact_value(value: object) -> tuple[str, object]:
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "CAST(? AS TEXT)", value.encode("utf-8", "surrogateescape")
    return "?", value


def _as_carried(row: tuple) -> tuple:
    unique, function, priority, data, when = row
    return (unique, function, priority, bytes(data) if data is not None else b"", when)


class Writer(Protocol):
    """What a copy writes through: `write` each batch, then `close` (or `abort`)."""

    skipped: int
    replaced: int
    not_written: Checksum
    removed: Checksum
    # The checksum of staging's rows as the server summed them while they were written
    # (after `close`); None: not kept, copy.py sums the staging table once it is full.
    stored: Checksum | None

    def write(self, batch: list[Row]) -> None: ...

    def close(self, keep: bool = True) -> None: ...

    def abort(self) -> None: ...


def open_writer(
    store: QueueStore,
    conn: Connection,
    staging: str,
    refusals: Refusals,
    on_conflict: str | None = None,
) -> Writer:
    """The fastest safe writer for a whole copy into `staging` (see the module doc).

    --merge (`on_conflict` given) expects conflicts: rows go straight in, batch by batch.
    Conflicts are handed to `refusals` only at `close`: until then a conflict does not
    count as a refusal that stops the writing, so every one of them is found and listed.
    """
    if not store.dialect.TRANSACTIONAL_DDL:
        # Each batch commits on its own: a thread of its own writes them.
        writer = StagingWriter(store, conn, staging, _Collected(refusals), on_conflict)
        return ThreadedWriter(writer)
    # The whole copy is one transaction on this connection, written from this thread.
    if on_conflict:
        return StagingWriter(store, conn, staging, _Collected(refusals), on_conflict)
    return store.dialect.bulk_load(StagingWriter(store, conn, staging, refusals))


def open_probe(
    store: QueueStore,
    conn: Connection,
    table: str,
    refusals: Refusals,
    on_conflict: str | None = None,
) -> StagingWriter:
    """The dry run's writer into its temporary `table`: the StagingWriter that finds the
    real run's conflicts, batch by batch (the temp table is a session's, so no thread)."""
    return StagingWriter(store, conn, table, _Collected(refusals), on_conflict)


class _Collected:
    """Refusals found by a writer (in its thread, for MySQL), handed to the real ones at
    its `close`, in the main thread (which also exports them with --skip-invalid)."""

    def __init__(self, to: Refusals) -> None:
        self.to = to
        self.rows: list[tuple[Row, str]] = []

    def add(self, row: Row, kind: str) -> None:
        self.rows.append((row, kind))

    def hand_over(self) -> None:
        for row, kind in self.rows:
            self.to.add(row, kind)
        self.rows.clear()


class ThreadedWriter:
    """MySQL: a StagingWriter in a thread of its own, fed through a short queue.

    While the server inserts one batch (the thread waits on the socket, without the
    GIL), the main thread reads, checks, hashes and encodes the next. The queue holds two
    batches at most, so memory stays flat. Nothing else uses the connection until
    `close` or `abort` has joined the thread.
    """

    def __init__(self, writer: StagingWriter) -> None:
        self.writer = writer
        self.batches: queue.Queue[tuple[list[Row], list[bytes] | None] | None] = queue.Queue(
            maxsize=2
        )
        self.error: BaseException | None = None
        self.stop = False
        self.thread = threading.Thread(target=self._run, name="queuetool-writer", daemon=True)
        self.thread.start()

    skipped = property(lambda self: self.writer.skipped)
    replaced = property(lambda self: self.writer.replaced)
    not_written = property(lambda self: self.writer.not_written)
    removed = property(lambda self: self.writer.removed)
    stored = property(lambda self: self.writer.stored)

    def _run(self) -> None:
        while (item := self.batches.get()) is not None:
            if self.error is None and not self.stop:
                try:
                    self.writer.write(*item)
                except BaseException as exc:  # handed to the main thread
                    self.error = exc

    def write(self, batch: list[Row]) -> None:
        """Queue the batch; its statements are built here, so that the thread does
        nothing but wait for the server."""
        if self.error is not None:
            self._raise()
        self.batches.put((batch, self.writer.encode(batch)))

    def close(self, keep: bool = True) -> None:
        self.stop = not keep
        self._join()
        if self.error is not None:
            self._raise()
        self.writer.close(keep)  # the thread is done: its refusals are handed over here

    def abort(self) -> None:
        """Stop writing (what is queued is dropped) and wait for the thread."""
        self.stop = True
        self._join()
        self.writer.abort()

    def _join(self) -> None:
        if self.thread.is_alive():
            self.batches.put(None)
            self.thread.join()

    def _raise(self) -> None:
        error, self.error = self.error, None
        self.abort()
        raise error  # type: ignore[misc]
