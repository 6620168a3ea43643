"""What differs between the queue backends, one small module each, and the registry.

A dialect is a module (sqlite.py, mysql.py, postgresql.py) that provides everything in `Dialect`;
the rest of queuetool asks `store.dialect` and never tests a backend's name. A new
backend is a module here (listed in `DIALECTS`), its DDL file in queuetool/sql/, and
a test-server fixture in tests/conftest.py (a Queue subclass, its `<name>_queue`
fixture, its name in BACKENDS); `migrate`'s word for it (`--<name>-url`) is a click
option in cli/migrate.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from ...errors import UsageError
from . import mysql, postgresql, sqlite

if TYPE_CHECKING:
    from ...changes.restore import Replaced, Restoring
    from ...migrate.staging import StagingWriter, Writer
    from ..checksum import Checksum


class DaemonOptions(Protocol):
    """A gearmand command line, as daemon/discover.py parses it."""

    env: Mapping[str, str]  # the process's PG* variables ({} when not running)
    uid: int | None  # its effective user

    def get(self, name: str, default: str | None = None) -> str | None: ...

    def number(self, name: str, default: int) -> int: ...

    def path(self, value: str) -> Path: ...


class Dialect(Protocol):
    """The interface every dialect module provides (see sqlite.py and mysql.py)."""

    NAME: str  # as in snapshots and `store.backend`
    URL_NAMES: tuple[str, ...]  # SQLAlchemy backend names of its URLs
    URL_EXAMPLE: str
    DDL_FILE: str  # gearmand's own CREATE TABLE, in queuetool/sql/
    DEFAULT_TABLE: str  # the table gearmand's plugin uses when it is given none
    GROUP_BY_SORTS: bool

    SIDE_OPTION: str  # `migrate`'s option for the queue named by the word NAME

    def normalise_url(self, url: URL) -> URL: ...

    def side_url(self, given: str) -> str: ...

    def database_file(self, url: URL) -> Path | None: ...

    def location(self, url: URL) -> str:
        """Where a queue lives, without user or password: tells queues apart."""
        ...

    def create_engine(self, url: URL) -> Engine: ...

    def after_lost_stream(self, dbapi_conn: object) -> None:
        """A streamed result broke off (the server died): leave the driver's connection
        so that closing its cursor raises nothing but the real error."""
        ...

    # The table's layout, and the SQL that reads and edits it.
    def column_type_problem(self, name: str, coltype: sa.types.TypeEngine) -> str | None: ...

    def storage_type_conditions(self, table: sa.Table) -> dict[str, sa.ColumnElement[bool]]: ...

    def payload_length(self, column: sa.ColumnElement) -> sa.ColumnElement[int]: ...

    def byte_length(self, column: sa.ColumnElement) -> sa.ColumnElement[int]: ...

    def text_key(self, column: sa.ColumnElement) -> sa.ColumnElement: ...

    def exact_match(self, column: sa.ColumnElement, names: list[str]) -> sa.ColumnElement[bool]: ...

    def glob_match(self, column: sa.ColumnElement, pattern: str) -> sa.ColumnElement[bool]: ...

    def int_div(
        self, left: sa.ColumnElement[int], right: sa.ColumnElement[int]
    ) -> sa.ColumnElement[int]: ...

    REPAIRS_ROWS: bool  # repairable() can match: an edit window repairs those rows first

    def repairable(self, table: sa.Table) -> sa.ColumnElement[bool]: ...

    def repaired_values(self, table: sa.Table) -> dict[str, sa.ColumnElement]: ...

    def replay_problem(self, conn: Connection, table: str) -> str | None:
        """Why gearmand would replay this table's layout wrongly, and the fix; None: it
        replays right."""
        ...

    def make_replay_safe(self, conn: Connection, table: str) -> list[str]:
        """Convert the layout replay_problem() names (in the caller's transaction);
        returns the columns converted."""
        ...

    # The daemon's command line: its queue, and whether it is a given store's.
    QUEUE_TYPE: str  # gearmand's `-q`, lower case
    DAEMON_QUEUE_OPTION: str  # the option without which there is no queue

    def daemon_database_file(self, opts: DaemonOptions) -> Path | None: ...

    def daemon_table(self, opts: DaemonOptions) -> str: ...

    def daemon_queue_url(self, opts: DaemonOptions) -> str | None: ...

    def daemon_uses(self, url: URL, opts: DaemonOptions) -> bool: ...

    def gearmand_options(self, url: URL, table: str, mask: str | None) -> list[str]: ...

    def still_held(self, url: URL) -> str | None: ...

    # `migrate --move`: the transaction that proves and empties the source.
    MOVE_ISOLATION: str | None  # the isolation level it needs, None: the default

    def count_locked(self, conn: Connection, table: str) -> int: ...

    # Migration: staging table, bulk writes, atomic swap.
    TRANSACTIONAL_DDL: bool  # True: a copy is one transaction, batches are savepoints

    def begin_batch(self, raw_conn: object) -> None: ...

    def end_batch(self, raw_conn: object) -> None: ...

    def undo_batch(self, raw_conn: object) -> None: ...

    def bulk_load(self, writer: StagingWriter) -> Writer: ...

    INT32_WHEN_TO_RUN: bool  # when_to_run is a 32-bit INT (times after 2038 do not fit)
    TEXT_HOLDS_NUL: bool  # text columns can hold a NUL character
    TEXT_CHARSETS: bool  # text columns have a charset that may not hold every key
    LENIENT_TEXT: bool  # text that is not UTF-8 can be read again byte-exact

    def decode_text(self, raw_conn: object, lenient: bool) -> None: ...

    def create_database_file(self, path: Path) -> None: ...

    def column_charsets(self, conn: Connection, table: str) -> tuple[str | None, str | None]: ...

    def key_collation(self, conn: Connection) -> tuple[str | None, str]:
        """The collation a table queuetool creates gets (None: the backend's own byte
        comparison), and a line saying why."""
        ...

    def create_staging(
        self,
        conn: Connection,
        store: object,
        staging: str,
        like: str | None,
        collation: str | None = None,
        temporary: bool = False,
    ) -> None: ...

    def swap(self, conn: Connection, target: str, staging: str, old: str | None) -> None: ...

    def drop_table(self, conn: Connection, name: str, temporary: bool = False) -> None: ...

    def stream_cursor(self, raw_conn: object) -> object: ...

    INSERT_ROWS: str  # one row into {table}, in the driver's paramstyle

    def prepare_writer(self, raw_conn: object) -> None: ...

    def statement_bytes(self, raw_conn: object) -> int: ...

    def insert_statements(
        self, raw_conn: object, table: str, rows: list, limit: int
    ) -> list[bytes] | None: ...

    # Checksums: on the server where it can (None: rows are hashed in Python).
    server_checksum: Callable[..., Checksum] | None

    def stored_checksum(self, conn: Connection, table: sa.Table) -> Checksum: ...

    # restore: the whole table, or the rows of a rows snapshot, replaced and verified.
    def replace_table(self, job: Restoring) -> Replaced: ...

    def replace_rows(self, job: Restoring) -> Replaced: ...


DIALECTS: dict[str, Dialect] = {d.NAME: d for d in (sqlite, mysql, postgresql)}  # type: ignore[misc]


def dialect_for(name: str) -> Dialect:
    """The dialect called `name` (a snapshot's backend); a UsageError for any other."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise UsageError(
            f"unknown queue backend {name!r}: queuetool knows {', '.join(DIALECTS)}"
        ) from None


def dialect_for_url(url: URL) -> Dialect | None:
    """The dialect of a queue URL (by its backend name), None when queuetool has none."""
    backend = url.get_backend_name()
    return next((d for d in DIALECTS.values() if backend in d.URL_NAMES), None)


def dialect_for_queue_type(queue_type: str) -> Dialect | None:
    """The dialect of gearmand's `-q` (any case), None for one queuetool cannot use."""
    return next((d for d in DIALECTS.values() if queue_type.lower() == d.QUEUE_TYPE), None)


def url_examples() -> str:
    return " or ".join(d.URL_EXAMPLE for d in DIALECTS.values())
