"""The import's spool: the first pass's rows, decoded, keyed and checked, in a private
SQLite file, so that the file is parsed once and the second pass is a bulk copy.

On a SQLite queue the copy is one INSERT ... SELECT from the attached spool, in the
engine; elsewhere the rows are read back in batches. The spool's columns have no
declared type, so every value keeps its storage class; TEXT that is not UTF-8 (a
SQLite queue's keys can be) is written and read back byte-exact (`insert_exact`,
`lenient_text`). Refused rows are kept apart (pickled: they can hold any type), for
`--skip-invalid` to export them in the second pass.
"""

from __future__ import annotations

import contextlib
import pickle
import sqlite3
from collections.abc import Iterator

from ..lockedfile import remove_locked
from ..table.checksum import Checksum
from ..table.dialects.sqlite import insert_exact, lenient_text
from ..table.jobfile import scratch_file

BATCH = 5000
COLUMNS = "unique_key, function_name, priority, data, when_to_run"


class Spool:
    """A private temporary SQLite file (mode 0600): `rows` and `refused`."""

    def __init__(self) -> None:
        # Locked while this import lives: a killed import's spool is removed by the next.
        self._lock, self.path = scratch_file(".spool.db")
        self.rows = 0
        self.generated = 0  # keys made (UUID v1)
        self.normalised: dict[str, int] = {}
        self.checksum = Checksum()  # of the rows spooled
        self.descents = 0  # rows whose unique key is below the one before (file order)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.text_factory = lenient_text
        # A scratch file: a crash leaves nothing to recover.
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(f"CREATE TABLE rows ({COLUMNS})")
        self.db.execute("CREATE TABLE refused (row BLOB, kind TEXT)")
        self.db.execute("BEGIN")

    def add(self, rows: list[tuple]) -> None:
        """Spool a batch of checked rows."""
        insert_exact(self.db, "rows", rows)
        self.rows += len(rows)

    @property
    def sorted(self) -> bool:
        """The rows are (nearly) in key order: a few runs, as UUID v1 keys come (their
        time field wraps every 7 minutes), each filling the B-tree left to right.
        Measured at 1M rows: such rows inserted as they come 1.3-1.7 s, sorted first
        2.5-3.3 s; rows in random order 5.7 s as they come, 2.1 s sorted."""
        return self.descents * 1000 <= self.rows

    def refuse(self, row: tuple, kind: str) -> None:
        """Keep a refused row and why, for --skip-invalid's file."""
        self.db.execute("INSERT INTO refused VALUES (?, ?)", (pickle.dumps(row), kind))

    def done(self) -> None:
        """The first pass is over: commit, so that a second connection can read it."""
        self.db.execute("COMMIT")

    def batches(self) -> Iterator[list[tuple]]:
        """The spooled rows, in file order, in batches."""
        cursor = self.db.execute(f"SELECT {COLUMNS} FROM rows ORDER BY rowid")
        while batch := cursor.fetchmany(BATCH):
            yield batch

    def refusals(self) -> Iterator[tuple[tuple, str]]:
        """The refused rows and their kinds, in file order."""
        for raw, kind in self.db.execute("SELECT row, kind FROM refused ORDER BY rowid"):
            yield pickle.loads(raw), kind  # our own private file

    def close(self) -> None:
        """Close and remove the spool file."""
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        if self._lock >= 0:
            remove_locked(self.path, self._lock)
            self._lock = -1
