"""The source's checksum during a migration: computed by the server beside the stream
when the source can (MySQL), hashed here row by row when it cannot (SQLite).

On MySQL the server sums the whole table over a second connection, in a thread that
waits on its socket while the rows stream through the first; here only the rows that
carry.py changed (NULL -> 0 or b"") or refused are hashed, to take them out as they
are in the table and put the changed ones back as they will be written. So the sum is
the one of the rows to be written, and it is the server's own reading of the table,
not ours. Sound because the source does not change meanwhile: its gearmand is stopped
(guard.py), and a different row count between the two reads fails the migration.
"""

from __future__ import annotations

import threading

from ..errors import VerifyError
from ..table.checksum import Checksum
from ..table.store import QueueStore
from .carry import Row
from .staging import combine


class SourceChecksum:
    """Feed it every row read (`carried`, `changed`); `finish` gives the checksum of the
    rows to write, `raw` the one of the table as it was read (what --move checks)."""

    def __init__(self, store: QueueStore) -> None:
        self.store = store
        self.on_server = store.dialect.server_checksum is not None
        self.hashed = Checksum()  # Python only: every row to write, as written
        self.taken_out = Checksum()  # refused or changed rows, as in the table
        self.put_back = Checksum()  # the changed rows, as they will be written
        self.count = 0
        self.whole: Checksum | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.on_server:
            self.thread = threading.Thread(
                target=self._on_server, name="queuetool-source-checksum", daemon=True
            )
            self.thread.start()

    def _on_server(self) -> None:
        server_checksum = self.store.dialect.server_checksum
        assert server_checksum is not None  # only started when on_server
        try:
            with self.store.connect() as conn:
                self.whole = server_checksum(conn, self.store.table)
        except BaseException as exc:  # handed to the caller in finish()
            self.error = exc

    def changed(self, row: Row, carried: Row | None) -> None:
        """A row carry.py refused (`carried` None) or normalised (rare: hashed twice)."""
        self.taken_out.add(row)
        if carried is not None:
            self.put_back.add(carried)

    def carried(self, batch: list[Row]) -> None:
        """A batch of rows to write."""
        self.count += len(batch)
        if not self.on_server:
            self.hashed.update(batch)

    def finish(self, read: int) -> Checksum:
        """The checksum of the carried rows (`read`: how many rows were read)."""
        if not self.on_server:
            return self.hashed
        assert self.thread is not None, "start() was not called"
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.whole is not None
        if self.whole.rows != read:
            raise VerifyError(
                f"the source changed during the migration: {read} jobs read, the server "
                f"counted {self.whole.rows}; the target was left as it was"
            )
        total = combine([self.whole, self.put_back], [self.taken_out])
        return Checksum(self.count, total.total)

    def raw(self) -> Checksum:
        """The checksum of every row read, as it is in the source (after `finish`)."""
        if self.on_server:
            assert self.whole is not None, "finish() was not called"
            return self.whole
        return combine([self.hashed, self.taken_out], [self.put_back])
