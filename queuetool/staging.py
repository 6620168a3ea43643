"""Writing rows into a staging table: batched multi-row INSERTs, conflicts row by row.

Each batch is one unit (a savepoint in SQLite, whose whole copy is one
transaction; a transaction of its own in MySQL). A batch that hits the unique
key is undone and written again row by row, so exactly the conflicting rows are
found, whatever the target's collation calls equal. What was not written, and
what was replaced, is kept as checksums, so the staging table's expected
checksum is known without reading the source again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from .carry import Refusals, Row
from .checksum import MOD as CHECKSUM_MOD
from .checksum import Checksum
from .store import QueueStore, conn_quote

CONFLICT_CHOICES = ("fail", "skip", "replace")


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
    refusals: Refusals
    on_conflict: str | None = None
    not_written: Checksum = field(default_factory=Checksum)
    removed: Checksum = field(default_factory=Checksum)
    skipped: int = 0
    replaced: int = 0

    def __post_init__(self) -> None:
        self.raw: Any = self.conn.connection.dbapi_connection
        self.sqlite = self.store.backend == "sqlite"
        quoted = conn_quote(self.store.engine, self.staging)
        self.quoted = quoted
        self.insert_sql = self.store.dialect.INSERT_ROWS.format(table=quoted)
        self.integrity_error = self.store.engine.dialect.loaded_dbapi.IntegrityError
        self.dialect_prepare()
        self.cursor = self.raw.cursor()
        limit = self.store.dialect.statement_bytes(self.raw)
        if limit:
            self.cursor.max_stmt_length = limit  # PyMySQL: bigger multi-row INSERTs

    def dialect_prepare(self) -> None:
        self.store.dialect.prepare_writer(self.raw)

    def write(self, batch: list[Row]) -> None:
        """Write one batch; conflicting rows are handled one by one."""
        self._begin()
        try:
            self.cursor.executemany(self.insert_sql, batch)
        except self.integrity_error:
            self._undo()
            self._begin()
            for row in batch:
                self._one(row)
        except BaseException:
            self._undo()
            raise
        self._end()

    def _one(self, row: Row) -> None:
        try:
            self.cursor.execute(self.insert_sql, row)
            return
        except self.integrity_error:
            pass
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
        p = "?" if self.sqlite else "%s"
        where = f"WHERE unique_key = {p} AND function_name = {p}"
        cols = "unique_key, function_name, priority, data, when_to_run"
        self.cursor.execute(f"SELECT {cols} FROM {self.quoted} {where}", row[:2])
        for old in self.cursor.fetchall():
            self.removed.add(_as_carried(old))
            self.replaced += 1
        self.cursor.execute(f"DELETE FROM {self.quoted} {where}", row[:2])
        self.cursor.execute(self.insert_sql, row)

    def _begin(self) -> None:
        if self.sqlite:
            self.raw.execute("SAVEPOINT queuetool_batch")
        else:
            self.raw.begin()

    def _end(self) -> None:
        if self.sqlite:
            self.raw.execute("RELEASE queuetool_batch")
        else:
            self.raw.commit()

    def _undo(self) -> None:
        if self.sqlite:
            self.raw.execute("ROLLBACK TO queuetool_batch")
            self.raw.execute("RELEASE queuetool_batch")
        else:
            self.raw.rollback()

    def close(self) -> None:
        self.cursor.close()


def _as_carried(row: tuple) -> tuple:
    unique, function, priority, data, when = row
    return (unique, function, priority, bytes(data) if data is not None else b"", when)
