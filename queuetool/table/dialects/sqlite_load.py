"""A whole copy into a SQLite staging table: rows in key order, summed as stored.

Inserts at random places in the primary key's B-tree cost twice as much as appending
in key order (at 1M rows about 15 s, against 7 s through a sorted TEMP table). Most
queues come in nearly that order (UUIDv1 keys, written as submitted, ascend until
their 32-bit time field wraps every ~7 minutes), and then a second copy of every row
through a TEMP table would cost more than it saves. So `OrderedLoad` cuts each batch
into its runs of ascending keys: a run goes straight into staging when few keys
written before lie within its range (its inserts walk neighbouring pages of the
B-tree, in order: a run above every key, or a second round of UUIDv1 keys between
the first's, which at 1M rows cost less CPU than the TEMP table's round trip);
anything else, and every batch of more than a few runs (a queue in no order), goes
to an unindexed TEMP table, which `close` inserts into staging in one INSERT ...
SELECT in key order.

Right after a batch is in staging, its rows as stored (the rowids past the last one
summed) are read back and summed (`stored`): the copy's verification needs no pass
over the table at the end. Each row is read from staging once, and a copy without
--merge changes no row once written; `close` counts the table, and a count that
differs from the rows summed drops the sum (None), so copy.py sums the whole table
instead: the sum can fail to match, never falsely match. Rows not of the storage
classes a carried row has are left out of the sum (copy.py then sums everything its
general way), as is all of a database whose text is not UTF-8.
"""

from __future__ import annotations

import contextlib
import sqlite3
from bisect import bisect_left, bisect_right
from itertools import compress, count, islice
from operator import ge
from typing import TYPE_CHECKING

from ..checksum import MOD, Checksum, sum_stored_rows
from .sqlite import COLUMNS, EXPECTED_TYPES, insert_exact

if TYPE_CHECKING:
    from ...migrate.carry import Row
    from ...migrate.staging import StagingWriter

REPLAY_BATCH = 5000
# A batch cut into more runs than this is in no useful order: it goes to the TEMP table.
MAX_RUNS = 4
# A run goes straight in while the keys written before within its range are at most
# SPREAD times its own (its inserts then walk a few neighbouring pages of the B-tree,
# as when a second round of UUIDv1 keys falls between the first's), counted over the
# SCAN_RANGES nearest ranges (a guess: it only decides the speed).
SPREAD = 4
SCAN_RANGES = 64
_TYPED = " AND ".join(f"typeof({name}) = '{kind}'" for name, kind in EXPECTED_TYPES.items())


class OrderedLoad:
    """Writes a whole copy's batches into `writer`'s staging table (see the module doc).

    Which copy of a key the key refuses stays the later one in source order, as the
    StagingWriter's row-by-row retry refuses it: a run goes straight in only if no row
    of the TEMP table has a key in its range (its keys then differ from every TEMP row
    before it; a TEMP row written later is refused at `close` when it meets its key in
    staging), and a run the key refuses (a key written straight before) goes to the
    TEMP table, in order, instead. Should the sorted insert at `close` meet a key
    twice, it is undone and the TEMP rows go in batch by batch, in source order,
    through the StagingWriter, which finds exactly which.

    Everything stays inside the copy's one transaction (the TEMP table vanishes with
    the connection).
    """

    def __init__(self, writer: StagingWriter) -> None:
        self.writer = writer
        self.raw = writer.raw
        # Filling the B-tree in key order and reading back what was just written need
        # no large page cache; SQLite's sorter would take as much again, for no speed
        # (measured at 1M rows).
        self.raw.execute("PRAGMA main.cache_size = -2000")
        from ..store import conn_quote  # store imports the dialects

        self.load = "temp." + conn_quote(writer.store.engine, writer.staging + "_load")
        self.raw.execute(f"DROP TABLE IF EXISTS {self.load}")
        # No declared types: values are kept exactly as given until they reach staging.
        self.raw.execute(f"CREATE TEMP TABLE {self.load[5:]} ({COLUMNS})")
        self.cursor = self.raw.cursor()
        self.table = "main." + writer.quoted
        # The key ranges of the runs written straight into staging (sorted by their
        # lowest key) with their sizes, and the range of the TEMP table's keys.
        self.lows: list[str] = []
        self.highs: list[str] = []
        self.sizes: list[int] = []
        self.loaded: tuple[str, str] | None = None
        utf8 = self.raw.execute("PRAGMA main.encoding").fetchone()[0] == "UTF-8"
        self.stored: Checksum | None = Checksum() if utf8 else None
        self.after = 0  # the last rowid of staging summed
        self.sum_sql = (
            f"SELECT {COLUMNS} FROM {self.table} WHERE rowid > ? AND rowid <= ? AND {_TYPED}"
        )

    skipped = property(lambda self: self.writer.skipped)
    replaced = property(lambda self: self.writer.replaced)
    not_written = property(lambda self: self.writer.not_written)
    removed = property(lambda self: self.writer.removed)

    def write(self, batch: list[Row]) -> None:
        """Each run of the batch straight into staging or into the TEMP table, in order;
        then the rows new in staging are summed."""
        if not batch:
            return
        keys = [row[0] for row in batch]
        # Where a run of strictly ascending unique keys ends. Python orders str by code
        # point, SQLite's BINARY by UTF-8 bytes: the same order (text that is not UTF-8
        # may differ, which costs speed, never correctness: equal keys are equal).
        cuts = list(compress(count(1), map(ge, keys, islice(keys, 1, None))))
        if len(cuts) >= MAX_RUNS:
            self._to_temp(batch, min(keys), max(keys))
            return
        wrote = False
        start = 0
        for end in (*cuts, len(batch)):
            low, high = keys[start], keys[end - 1]
            place = self._place(low, high, end - start)
            if place is None:
                self._to_temp(batch[start:end], low, high)
            elif self._insert(batch[start:end]):
                self.lows.insert(place, low)
                self.highs.insert(place, high)
                self.sizes.insert(place, end - start)
                wrote = True
            else:  # the key refused a row: this run and the rest of the batch, in order
                rest = keys[start:]
                self._to_temp(batch[start:], min(rest), max(rest))
                break
            start = end
        if wrote:
            self._sum_new_rows()

    def _place(self, low: str, high: str, rows: int) -> int | None:
        """Where a run of `rows` keys `low`..`high` goes among the ranges written
        straight, or None: the TEMP table's range overlaps it, or so many keys written
        before lie in its range that its inserts would be scattered over the B-tree."""
        if self.loaded is not None and not (high < self.loaded[0] or low > self.loaded[1]):
            return None
        place = bisect_right(self.lows, high)  # the ranges starting at or below `high`
        between = 0
        for index in range(place - 1, max(place - SCAN_RANGES, 0) - 1, -1):
            if self.highs[index] >= low:
                between += self.sizes[index]
                if between > SPREAD * rows:
                    return None
        return bisect_left(self.lows, low)

    def _insert(self, rows: list[Row]) -> bool:
        """The rows into staging; False when the key refused one (nothing is left)."""
        try:
            insert_exact(self.raw, self.table, rows)
        except self.writer.integrity_error:
            return False
        return True

    def _to_temp(self, rows: list[Row], low: str, high: str) -> None:
        if not rows:
            return
        insert_exact(self.raw, self.load, rows)  # keys that are not UTF-8 too
        if self.loaded is None:
            self.loaded = (low, high)
        else:
            self.loaded = (min(self.loaded[0], low), max(self.loaded[1], high))

    def _sum_new_rows(self) -> None:
        """Add staging's rows past the last one summed to `stored`, read as stored."""
        if self.stored is None:
            return
        last = self.raw.execute(f"SELECT max(rowid) FROM {self.table}").fetchone()[0] or 0
        if last <= self.after:
            return
        factory = self.raw.text_factory
        self.raw.text_factory = bytes  # undecoded: sum_stored_rows hashes the bytes
        try:
            self.cursor.execute(self.sum_sql, (self.after, last))
            while rows := self.cursor.fetchmany(REPLAY_BATCH):
                summed, total = sum_stored_rows(rows)
                self.stored.rows += summed
                self.stored.total = (self.stored.total + total) % MOD
        finally:
            self.raw.text_factory = factory
        self.after = last

    def close(self, keep: bool = True) -> None:
        """Fill staging from the TEMP table (unless `keep` is False), sum and count it,
        then drop the TEMP table."""
        if keep:
            try:
                self._insert_sorted()
                self._sum_new_rows()
                self._count()
            except BaseException:
                with contextlib.suppress(Exception):  # the first error is the one to see
                    self.abort()
                raise
        self.abort()

    def _insert_sorted(self) -> None:
        if self.loaded is None:
            return
        try:
            self.raw.execute(
                f"INSERT INTO {self.table} ({COLUMNS}) SELECT {COLUMNS} "
                f"FROM {self.load} ORDER BY unique_key, function_name"
            )
            return
        except self.writer.integrity_error:
            pass  # SQLite undid the statement as a whole; the transaction goes on
        # Outside the handler: the replay is ordinary work, not error handling.
        self.cursor.execute(f"SELECT {COLUMNS} FROM {self.load} ORDER BY rowid")
        while batch := self.cursor.fetchmany(REPLAY_BATCH):
            self.writer.write(batch)

    def _count(self) -> None:
        """Every row of staging was summed, once: else the sum is dropped (module doc)."""
        if self.stored is None:
            return
        rows = self.raw.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]
        if rows != self.stored.rows:
            self.stored = None

    def abort(self) -> None:
        """Stop: the TEMP table is dropped (staging goes with the copy's rollback)."""
        self.cursor.close()
        with contextlib.suppress(sqlite3.Error):  # a connection already lost
            self.raw.execute(f"DROP TABLE IF EXISTS {self.load}")
        self.writer.close()
