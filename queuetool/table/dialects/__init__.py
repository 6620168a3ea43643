"""What differs between the queue backends, one small module each, and the registry.

A dialect is a module (sqlite.py, mysql.py, postgresql.py) that provides everything in `Dialect`;
the rest of queuetool asks `store.dialect` and never tests a backend's name. A new
backend is a module here (listed in `DIALECTS`), its DDL file in queuetool/sql/, and
a test-server fixture in tests/conftest.py (a Queue subclass, its `<name>_queue`
fixture, its name in BACKENDS); `migrate`'s word for it (`--<name>-url`) is a click
option in cli/migrate.py.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from ...errors import UsageError

if TYPE_CHECKING:
    from ...changes.restore import Replaced, Restoring
    from ...migrate.staging import StagingWriter, Writer
    from ..checksum import Checksum
    from ..store import QueueStore
    from . import mysql, postgresql, sqlite


class DaemonOptions(Protocol):
    """A gearmand command line, as daemon/discover.py parses it."""

    @property
    def env(self) -> Mapping[str, str]:
        """The process's PG* variables ({} when it is not running)."""
        ...

    @property
    def uid(self) -> int | None:
        """Its effective user (None when it is not running)."""
        ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of option `name`, else `default`."""

    def number(self, name: str, default: int) -> int:
        """Option `name` as an integer, else `default`."""

    def path(self, value: str) -> Path:
        """`value` as a path, relative to the daemon's working directory."""


class Dialect(Protocol):
    """The interface every dialect module provides (see sqlite.py and mysql.py).

    `raw_conn` is the driver's own connection (sqlite3, PyMySQL, psycopg): Any here,
    each dialect module names its driver's type."""

    NAME: str  # as in snapshots and `store.backend`
    URL_NAMES: tuple[str, ...]  # SQLAlchemy backend names of its URLs
    URL_EXAMPLE: str
    DDL_FILE: str  # gearmand's own CREATE TABLE, in queuetool/sql/
    DEFAULT_TABLE: str  # the table gearmand's plugin uses when it is given none
    GROUP_BY_SORTS: bool

    SIDE_OPTION: str  # `migrate`'s option for the queue named by the word NAME

    def normalise_url(self, url: URL) -> URL:
        """The URL as the store opens it (an absolute SQLite path, say)."""

    def side_url(self, given: str) -> str:
        """A URL given to `migrate` for this backend's side, completed where needed."""

    def database_file(self, url: URL) -> Path | None:
        """The database file a URL names; None for a server backend."""

    def location(self, url: URL) -> str:
        """Where a queue lives, without user or password: tells queues apart."""
        ...

    def create_engine(self, url: URL) -> Engine:
        """An Engine for the queue, set up the way queuetool needs it (strict modes,
        byte-exact text)."""

    def after_lost_stream(self, dbapi_conn: object) -> None:
        """A streamed result broke off (the server died): leave the driver's connection
        so that closing its cursor raises nothing but the real error."""
        ...

    # The table's layout, and the SQL that reads and edits it.
    def column_type_problem(self, name: str, coltype: sa.types.TypeEngine) -> str | None:
        """Why column `name` of this type cannot hold what gearmand writes; None: it can."""

    def storage_type_conditions(self, table: sa.Table) -> dict[str, sa.ColumnElement[bool]]:
        """Per check name, the condition matching a row whose stored value gearmand
        cannot replay (a wrong storage type, a NULL it reads wrongly)."""

    def payload_length(self, column: sa.ColumnElement) -> sa.ColumnElement[int]:
        """The payload's length in bytes, in SQL."""

    def byte_length(self, column: sa.ColumnElement) -> sa.ColumnElement[int]:
        """A text column's length in bytes (not characters), in SQL."""

    def text_key(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """The column as compared byte-exact and case-sensitively, whatever its collation."""

    def byte_order(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """The column as MIN/MAX order it: by its bytes, whatever its collation (cheaper
        than text_key where only the order matters)."""

    def exact_match(self, column: sa.ColumnElement, names: list[str]) -> sa.ColumnElement[bool]:
        """The column equals one of `names`, byte-exact."""

    def glob_match(self, column: sa.ColumnElement, pattern: str) -> sa.ColumnElement[bool]:
        """The column matches a shell glob (`*`, `?`, `[abc]`), case-sensitively."""

    def uuid1_epoch(self, column: sa.ColumnElement) -> sa.ColumnElement[int]:
        """The submission time (epoch seconds) a UUIDv1 key carries, else NULL, in SQL."""

    def int_div(
        self, left: sa.ColumnElement[int], right: sa.ColumnElement[int]
    ) -> sa.ColumnElement[int]:
        """Integer division in SQL (backends differ on what `/` means for integers)."""

    REPAIRS_ROWS: bool  # repairable() can match: an edit window repairs those rows first

    def repairable(self, table: sa.Table) -> sa.ColumnElement[bool]:
        """Rows `repair` can fix without loss (it never guesses)."""

    def repaired_values(self, table: sa.Table) -> dict[str, sa.ColumnElement]:
        """The repaired value of each column `repair` changes, as SQL over the row."""

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

    def daemon_database_file(self, opts: DaemonOptions) -> Path | None:
        """The database file a gearmand command line uses; None for a server backend."""

    def daemon_table(self, opts: DaemonOptions) -> str:
        """The table a gearmand command line uses (the plugin's default when none given)."""

    def daemon_queue_url(self, opts: DaemonOptions) -> str | None:
        """The queue URL a gearmand command line names (its password included: it
        connects); None when it does not say enough."""

    def daemon_uses(self, url: URL, opts: DaemonOptions) -> bool:
        """Whether a gearmand with these options uses this URL's database (the table is
        compared by the caller)."""

    def gearmand_options(self, url: URL, table: str, mask: str | None) -> list[str]:
        """The gearmand `-q ...` options for this queue and table; a password replaced
        by `mask` unless that is None."""

    def still_held(self, url: URL) -> str | None:
        """Why the queue is still in use once its daemon stopped (a lock on the SQLite
        file); None when it is free."""

    def same_table(self, a: Connection, b: Connection, a_table: str, b_table: str) -> bool:
        """Whether `a_table` on connection `a` is `b_table` on `b`: one table of one
        database on one server, however the two URLs spell the host (localhost,
        127.0.0.1, a name). SQLite: False (the store compares the files themselves)."""

    # `migrate --move`: the transaction that proves and empties the source.
    MOVE_ISOLATION: str | None  # the isolation level it needs, None: the default

    def count_locked(self, conn: Connection, table: str) -> int:
        """The rows of `table`, locked against every writer until the transaction ends."""

    def empty_locked(self, conn: Connection, table: str) -> bool:
        """Whether `table` holds no row; an empty one is then locked against every writer
        until the transaction ends, as count_locked locks it (a full one costs a row)."""

    def rolls_back(self, conn: Connection, table_name: str) -> bool:
        """Whether a rollback undoes writes to the table (MySQL: not on MyISAM)."""

    # Migration: staging table, bulk writes, atomic swap.
    TRANSACTIONAL_DDL: bool  # True: a copy is one transaction, batches are savepoints

    def begin_batch(self, raw_conn: Any) -> None:
        """Start one batch of a copy (a savepoint, or a transaction)."""

    def end_batch(self, raw_conn: Any) -> None:
        """Keep the batch begun by begin_batch."""

    def undo_batch(self, raw_conn: Any) -> None:
        """Undo the batch begun by begin_batch, so its rows can be retried one by one."""

    def bulk_load(self, writer: StagingWriter) -> Writer:
        """The fastest writer of rows into the staging table this backend has."""

    INT32_WHEN_TO_RUN: bool  # when_to_run is a 32-bit INT (times after 2038 do not fit)
    TEXT_HOLDS_NUL: bool  # text columns can hold a NUL character
    TEXT_CHARSETS: bool  # text columns have a charset that may not hold every key
    LENIENT_TEXT: bool  # text that is not UTF-8 can be read again byte-exact

    def decode_text(self, raw_conn: Any, lenient: bool) -> None:
        """Make the connection read text as UTF-8, byte-exact (`lenient`) where it can."""

    def create_database_file(self, path: Path) -> None:
        """Create the database file at `path` for a new queue (servers: nothing to do)."""

    def column_charsets(self, conn: Connection, table: str) -> tuple[str | None, str | None]:
        """The character sets of unique_key and function_name (None: no charset)."""

    def key_collation(self, conn: Connection) -> tuple[str | None, str]:
        """The collation a table queuetool creates gets (None: the backend's own byte
        comparison), and a line saying why."""
        ...

    def create_staging(
        self,
        conn: Connection,
        store: QueueStore,
        staging: str,
        like: str | None,
        collation: str | None = None,
        temporary: bool = False,
    ) -> None:
        """Create the staging table for a copy, `like` an existing table or in gearmand's
        layout, with the key collation given."""

    def swap(self, conn: Connection, target: str, staging: str, old: str | None) -> None:
        """Put `staging` in the place of `target` atomically, keeping the old table as `old`
        (None: dropped)."""

    def drop_table(self, conn: Connection, name: str, temporary: bool = False) -> None:
        """Drop a table if it exists."""

    # `import`: True, the spool (a SQLite file) ATTACHed and copied by one INSERT ... SELECT;
    # False, through a TEMP table (`t`) joined to the queue table (`q`) by the calls below.
    SPOOL_COPY: bool

    def delete_staged_conflicts(self, conn: Connection, temp: str, table: str, on: str) -> int:
        """Delete the rows of the TEMP table `temp` (as t) whose key the queue table
        `table` (as q) holds too, `on` joining them (both names quoted); the rows deleted."""

    def delete_replaced(self, conn: Connection, temp: str, table: str, on: str) -> int:
        """Delete the rows of the queue table `table` (as q) whose key the TEMP table
        `temp` (as t) holds, `on` joining them (both names quoted); the rows deleted."""

    def stream_cursor(self, raw_conn: Any) -> Any:
        """A cursor that streams rows as they are read, so memory stays flat."""

    INSERT_ROWS: str  # one row into {table}, in the driver's paramstyle

    def prepare_writer(self, raw_conn: Any) -> None:
        """Set up a connection that will write rows (strict about what fits)."""

    def statement_bytes(self, raw_conn: Any) -> int:
        """How many bytes one multi-row INSERT may hold on this server."""

    def insert_statements(
        self, raw_conn: Any, table: str, rows: list, limit: int
    ) -> list[bytes] | None:
        """Multi-row INSERTs of `rows` into `table`, each at most `limit` bytes; None:
        let the driver build them."""

    # Checksums: on the server where it can (None: rows are hashed in Python).
    @property
    def server_checksum(self) -> Callable[..., Checksum] | None:
        """The function that sums a table on the server, or None: rows are hashed in
        Python."""
        ...

    def stored_checksum(self, conn: Connection, table: sa.Table) -> Checksum:
        """The order-independent checksum of every row of `table`."""

    # restore: the whole table, or the rows of a rows snapshot, replaced and verified.
    def replace_table(self, job: Restoring) -> Replaced:
        """Replace the whole table with the snapshot's rows, verified, for `restore`."""

    def replace_rows(self, job: Restoring) -> Replaced:
        """Replace the rows a rows snapshot holds (by key), verified, for `restore`."""


if TYPE_CHECKING:
    # A tuple of Dialect, so that mypy checks each module against the Protocol.
    _MODULES: tuple[Dialect, ...] = (sqlite, mysql, postgresql)

# Each backend's module is imported when first asked for, so that a command on a SQLite
# queue never loads PyMySQL or SQLAlchemy's PostgreSQL dialect (with asyncio): ~0.12 s
# of a 0.5 s start-up. What finds a backend without importing it, by its NAME: the
# module, its URL_NAMES and its QUEUE_TYPE (test_dialects checks them against the
# module's own).
_BACKENDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "sqlite": ("sqlite", ("sqlite",), "libsqlite3"),
    "mysql": ("mysql", ("mysql", "mariadb"), "mysql"),
    "postgres": ("postgresql", ("postgresql",), "postgres"),
}


class _Dialects(Mapping[str, "Dialect"]):
    """NAME -> dialect module, each imported on first use."""

    def __getitem__(self, name: str) -> Dialect:
        module = _BACKENDS[name][0]
        return cast("Dialect", importlib.import_module(f"{__name__}.{module}"))

    def __contains__(self, name: object) -> bool:
        return name in _BACKENDS

    def __iter__(self) -> Iterator[str]:
        return iter(_BACKENDS)

    def __len__(self) -> int:
        return len(_BACKENDS)


DIALECTS: Mapping[str, Dialect] = _Dialects()


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
    return next((DIALECTS[n] for n, (_, names, _) in _BACKENDS.items() if backend in names), None)


def dialect_for_queue_type(queue_type: str) -> Dialect | None:
    """The dialect of gearmand's `-q` (any case), None for one queuetool cannot use."""
    wanted = queue_type.lower()
    return next((DIALECTS[n] for n, (_, _, q) in _BACKENDS.items() if q == wanted), None)


def url_examples() -> str:
    """One example URL per backend, for an error that says what a queue URL looks like."""
    return " or ".join(d.URL_EXAMPLE for d in DIALECTS.values())
