"""The SQLite queue (gearmand's libsqlite3 plugin)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, cast

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from ...config import DEFAULT_TABLE
from ...errors import ConnectError, UsageError
from ..checksum import Checksum, raw_batches
from .identity import same_file

if TYPE_CHECKING:
    from ...changes.restore import Replaced, Restoring
    from ...migrate.staging import StagingWriter, Writer
    from ..store import QueueStore
    from . import DaemonOptions

NAME = "sqlite"
URL_NAMES: tuple[str, ...] = ("sqlite",)
URL_EXAMPLE = "sqlite:///PATH"
DDL_FILE = "sqlite.sql"
QUEUE_TYPE = "libsqlite3"  # gearmand's -q (lower case)
DAEMON_QUEUE_OPTION = "--libsqlite3-db"
GROUP_BY_SORTS = True  # no hash aggregation: GROUP BY sorts every row (see report.py)

# gearmand's replay checks each value's storage class (sqlite3_column_type), so the
# declared column type is not enough: typeof() on every row is what matters.
EXPECTED_TYPES = {
    "unique_key": "text",
    "function_name": "text",
    "priority": "integer",
    "data": "blob",
    "when_to_run": "integer",
}


def normalise_url(url: URL) -> URL:
    return url


SIDE_OPTION = "--sqlite-db PATH"  # how `migrate` is given the queue for the word `sqlite`


def side_url(given: str) -> str:
    """The queue URL for the path given with SIDE_OPTION."""
    return f"sqlite:///{Path(given).resolve()}"


def database_file(url: URL) -> Path | None:
    """The database file of the queue (None in memory)."""
    if not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def location(url: URL) -> str:
    """The resolved path of the queue's file: how queues are told apart."""
    path = database_file(url)
    return str(path.resolve()) if path is not None else ":memory:"


# -- the daemon's command line ----------------------------------------------------------


def daemon_database_file(opts: DaemonOptions) -> Path | None:
    db = opts.get("libsqlite3-db")
    return opts.path(db) if db else None


def daemon_table(opts: DaemonOptions) -> str:
    return opts.get("libsqlite3-table") or DEFAULT_TABLE


def daemon_queue_url(opts: DaemonOptions) -> str | None:
    path = daemon_database_file(opts)
    return f"sqlite:///{path}" if path else None


def daemon_uses(url: URL, opts: DaemonOptions) -> bool:
    """Whether the daemon's queue file is this URL's (the table is compared already)."""
    mine, theirs = database_file(url), daemon_database_file(opts)
    return mine is not None and theirs is not None and same_file(mine, theirs)


def gearmand_options(url: URL, table: str, mask: str | None) -> list[str]:
    """The `-q ...` options that make gearmand use this queue table."""
    path = database_file(url)
    if path is None:
        raise UsageError("an in-memory SQLite queue cannot be given to gearmand")
    return [
        "-q",
        "libsqlite3",
        "--libsqlite3-db",
        str(path.resolve()),
        "--libsqlite3-table",
        table,
    ]


def same_table(a: sa.Connection, b: sa.Connection, a_table: str, b_table: str) -> bool:
    return False  # the store compares the database files (QueueStore.file_id)


def still_held(url: URL) -> str | None:
    """Why the queue is still in use after its daemon stopped (a lock on the file), or None."""
    path = database_file(url)
    if path is None or not path.exists():
        return None
    # An exclusive lock can only be had when no other connection reads or writes.
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        return f"the queue file {path} is still locked after the stop: {exc}"
    finally:
        conn.close()
    return None


# -- connecting ----------------------------------------------------------------------------


def create_engine(url: URL) -> Engine:
    path = database_file(url)
    if path is not None and not path.is_file():
        raise ConnectError(f"SQLite queue file not found: {path}")
    # NullPool: each connection opens the file anew, so a closed store holds no lock.
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy, not the driver, manage transactions (pysqlite quirk).
        dbapi_conn.isolation_level = None
        # gearmand stores and replays keys that are not UTF-8: every row must be readable.
        dbapi_conn.text_factory = lenient_text

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # A transaction that may write takes the write lock at once, so what it read
        # is still true when it writes; a reader takes a shared lock when it reads.
        read_only = conn.get_execution_options().get("queuetool_read_only")
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def after_lost_stream(dbapi_conn: object) -> None:
    """Nothing to do: a SQLite result reads from a file, and no server can be lost."""


def lenient_text(raw: bytes) -> str:
    """TEXT as SQLite holds it, byte for byte: bytes that are not UTF-8 become lone
    surrogates (surrogateescape), which checksum.py hashes and `insert_exact` writes back
    as the same bytes. The default decoder is faster, but refuses such a row."""
    return raw.decode("utf-8", "surrogateescape")


def not_utf8(exc: BaseException) -> bool:
    """Whether a sqlite3 error is a strict read meeting TEXT that is not UTF-8."""
    return isinstance(exc, sqlite3.OperationalError) and "decode to UTF-8" in str(exc)


def insert_exact(db: sqlite3.Connection, table: str, rows: Sequence[Sequence[object]]) -> None:
    """INSERT `rows` into `table` (inside a transaction), TEXT that is not UTF-8 included.

    sqlite3 cannot bind a str holding surrogates (`lenient_text`'s bytes that were not
    UTF-8): such a value is bound as its bytes and CAST to TEXT, which keeps them exactly.
    Only a batch holding one pays for the row-by-row path. On an error (the key refusing
    a row) none of the rows is left in the table."""
    if not rows:
        return
    marks = ", ".join("?" * len(rows[0]))
    db.execute("SAVEPOINT qt_insert")
    try:
        try:
            _insert_many(db, table, rows, f"({marks})")
        except UnicodeEncodeError:
            db.execute("ROLLBACK TO qt_insert")
            for row in rows:
                values = [_exact_value(v) for v in row]
                marks = ", ".join(m for m, _ in values)
                db.execute(f"INSERT INTO {table} VALUES ({marks})", [v for _, v in values])
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # the first error is the one to see
            db.execute("ROLLBACK TO qt_insert")
            db.execute("RELEASE qt_insert")
        raise
    db.execute("RELEASE qt_insert")


# Rows per INSERT of `_insert_many`: 5 columns, 995 values, within the 999 variables
# SQLite before 3.32 allows (RHEL 8's 3.26, Ubuntu 20.04's 3.31).
MANY = 199


def _insert_many(
    db: sqlite3.Connection, table: str, rows: Sequence[Sequence[object]], one: str
) -> None:
    """`rows` inserted MANY to a statement (INSERT ... VALUES (...), (...), ...): the
    same rows executemany inserts, at half its cost (measured on 200k queue rows,
    0.32-0.51 s against 0.20-0.27 s), since a statement's step and reset are paid per
    MANY rows, not per row."""
    full = f"INSERT INTO {table} VALUES " + ", ".join([one] * MANY)
    flat = chain.from_iterable
    whole = len(rows) - len(rows) % MANY
    for start in range(0, whole, MANY):
        db.execute(full, list(flat(rows[start : start + MANY])))
    if whole < len(rows):
        rest = rows[whole:]
        db.execute(f"INSERT INTO {table} VALUES " + ", ".join([one] * len(rest)), list(flat(rest)))


def _exact_value(value: object) -> tuple[str, object]:
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "CAST(? AS TEXT)", value.encode("utf-8", "surrogateescape")
    return "?", value


def column_type_problem(name: str, coltype: sa.types.TypeEngine) -> str | None:
    expected = {"priority": "INTEGER", "when_to_run": "INTEGER", "data": "BLOB"}.get(name)
    if expected is None:
        return None
    declared = str(coltype).upper()
    if expected == "INTEGER" and "INT" not in declared:
        return f"column {name!r} is {declared}, gearmand needs INTEGER"
    if expected == "BLOB" and declared not in ("BLOB", "NULL", ""):
        return f"column {name!r} is {declared}, gearmand needs BLOB"
    return None


def storage_type_conditions(table: sa.Table) -> dict[str, sa.ColumnElement[bool]]:
    """Per check kind, the rows whose stored value has a type the replay refuses."""
    conditions = {}
    for name, wanted in EXPECTED_TYPES.items():
        typeof = sa.func.typeof(table.c[name])
        conditions[f"{name}_type"] = typeof != wanted
    return conditions


def payload_length(column: sa.ColumnElement) -> sa.ColumnElement[int]:
    return sa.func.length(column)


def byte_length(column: sa.ColumnElement) -> sa.ColumnElement[int]:
    # length() counts characters for TEXT; the cast makes it count bytes.
    return sa.func.length(sa.cast(column, sa.LargeBinary))


def text_key(column: sa.ColumnElement) -> sa.ColumnElement:
    """SQLite compares TEXT byte-wise (BINARY collation) already."""
    return column


def byte_order(column: sa.ColumnElement) -> sa.ColumnElement:
    """SQLite orders TEXT by its bytes (BINARY collation) already."""
    return column


def exact_match(column: sa.ColumnElement, names: list[str]) -> sa.ColumnElement[bool]:
    """The column is one of `names`, byte for byte (SQLite's BINARY collation)."""
    return column.in_(names)


def glob_match(column: sa.ColumnElement, pattern: str) -> sa.ColumnElement[bool]:
    """SQLite's GLOB is shell-style and case-sensitive; it negates a class with ^, not !."""
    return column.op("GLOB", is_comparison=True)(_sqlite_glob(pattern))


def _sqlite_glob(pattern: str) -> str:
    """The GLOB pattern that matches what `fnmatch.fnmatchcase(name, pattern)` does."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "[":
            end = _class_end(pattern, i)
            if end < 0:
                out.append("[[]")  # a lone '[' is a literal, as in fnmatch
            else:
                out.append(_sqlite_class(pattern[i + 1 : end]))
                i = end
        else:
            out.append(char)  # outside a class only * ? [ mean anything to GLOB
        i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """Index of the ']' closing the class opened at `start`, as fnmatch reads it, or -1."""
    j = start + 1
    if j < len(pattern) and pattern[j] == "!":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 1
    return j if j < len(pattern) else -1


# Inside a GLOB class ']' closes it unless first, '^' negates when first, '-' makes a
# range unless first or last: these three are placed, never passed through.
_CLASS_SPECIAL = "]-^"


def _sqlite_class(body: str) -> str:
    """A GLOB class for fnmatch's class `[body]`, rebuilt from what it matches.

    Passing the body through is wrong: GLOB reads `[^a]` as "not a" (fnmatch: "^ or a"),
    and `[]-a]`, `[a-]]`, `[z-a]` differently too.
    """
    negate, singles, ranges = _fnmatch_class(body)
    for lo, hi in ranges[:]:
        # Keep ']', '-' and '^' out of range ends, so each can be placed safely.
        a, b = ord(lo), ord(hi)
        while a <= b and chr(a) in _CLASS_SPECIAL:
            singles.add(chr(a))
            a += 1
        while a <= b and chr(b) in _CLASS_SPECIAL:
            singles.add(chr(b))
            b -= 1
        ranges.remove((lo, hi))
        if a < b:
            ranges.append((chr(a), chr(b)))
        elif a == b:
            singles.add(chr(a))
    if not singles and not ranges:
        # fnmatch: any one character / nothing at all (not even a one-character class
        # like [b-a]: GLOB compares the 'b' before it sees the range).
        return "?" if negate else "[^\x01-\U0010ffff]"
    if not negate and not ranges and singles == {"^"}:
        return "^"  # '^' is a plain character outside a class
    plain = sorted(singles - set(_CLASS_SPECIAL))
    return "".join(
        [
            "[",
            "^" if negate else "",
            "]" if "]" in singles else "",
            "-" if "-" in singles else "",
            *(f"{lo}-{hi}" for lo, hi in sorted(ranges)),
            *plain,
            "^" if "^" in singles else "",
            "]",
        ]
    )


def _fnmatch_class(body: str) -> tuple[bool, set[str], list[tuple[str, str]]]:
    """(negated, single characters, (low, high) ranges) of `[body]` as fnmatch reads it.

    Mirrors `fnmatch.translate`: a '-' first or last is literal, the character after a
    range's end cannot start another range, and a reversed range (z-a) is dropped
    together with its two ends.
    """
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    chunks = []
    start, k = 0, 1
    while (k := body.find("-", k)) >= 0:
        chunks.append(body[start:k])
        start, k = k + 1, k + 3
    if body[start:]:
        chunks.append(body[start:])
    elif chunks:
        chunks[-1] += "-"
    for k in range(len(chunks) - 1, 0, -1):
        if chunks[k - 1] and chunks[k] and chunks[k - 1][-1] > chunks[k][0]:
            chunks[k - 1] = chunks[k - 1][:-1] + chunks[k][1:]
            del chunks[k]
    singles: set[str] = set()
    ranges: list[tuple[str, str]] = []
    for index, chunk in enumerate(chunks):
        first = 1 if index > 0 else 0
        last = len(chunk) - 1 if index < len(chunks) - 1 else len(chunk)
        singles.update(chunk[first:last])
        if index > 0:
            ranges.append((chunks[index - 1][-1], chunk[0]))
    return negate, singles, ranges


# A UUID version 1 as libgearman writes it (uuid_unparse): 8-4-4-4-12 hex digits, the
# version digit 1, the RFC 4122 variant (8, 9, a or b). GLOB without * matches the
# whole string, so the length is checked too.
_HEX = "[0-9a-fA-F]"
UUID1_GLOB = f"{_HEX * 8}-{_HEX * 4}-1{_HEX * 3}-[89abAB]{_HEX * 3}-{_HEX * 12}"
# 100 ns intervals from 1582-10-15 to 1970-01-01, in seconds (an exact multiple).
UUID1_UNIX_OFFSET = 12219292800


def uuid1_epoch(column: sa.ColumnElement) -> sa.ColumnElement[int]:
    """The submission time (Unix seconds) a UUIDv1 key carries, NULL for any other key.

    Pure SQL: the 60-bit timestamp is time_hi (3 digits after the version digit),
    time_mid and time_low; SQLite has no hex-to-integer function, so each of the 15
    digits is looked up with instr() and weighted by its power of 16. Integer division
    of a non-negative number truncates, which is the floor.
    """
    positions = [16, 17, 18, 10, 11, 12, 13, 1, 2, 3, 4, 5, 6, 7, 8]  # most significant first
    ticks: sa.ColumnElement[int] | None = None
    for index, pos in enumerate(positions):
        digit = sa.func.instr("0123456789abcdef", sa.func.lower(sa.func.substr(column, pos, 1))) - 1
        term = digit * sa.literal(16 ** (len(positions) - 1 - index), sa.Integer)
        ticks = term if ticks is None else ticks + term
    assert ticks is not None
    # self_group(): the sum in parentheses, or only its last term would be divided.
    seconds = sa.type_coerce(ticks.self_group().op("/")(sa.literal(10_000_000)), sa.Integer)
    return sa.case((column.op("GLOB")(UUID1_GLOB), seconds - UUID1_UNIX_OFFSET), else_=sa.null())


def int_div(left: sa.ColumnElement[int], right: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """Integer division, truncating: SQLite's `/` on two INTEGERs already is."""
    return sa.type_coerce(left.op("/")(right), sa.Integer)


# -- migration: staging table, bulk writes, atomic swap ---------------------------------

COLUMNS = "unique_key, function_name, priority, data, when_to_run"
INSERT_ROWS = "INSERT INTO {table} VALUES (?, ?, ?, ?, ?)"
# DDL takes part in transactions: a copy or a restore is ONE transaction, whose rollback
# also removes its staging table, and the swap is two renames inside it.
TRANSACTIONAL_DDL = True
TEXT_HOLDS_NUL = True
INT32_WHEN_TO_RUN = False  # INTEGER holds 64 bits
TEXT_CHARSETS = False  # TEXT holds any UTF-8: column_charsets() is (None, None)


def prepare_writer(raw_conn: sqlite3.Connection) -> None:
    """A large page cache for the bulk write; the journal stays, so a crash rolls back."""
    raw_conn.execute("PRAGMA cache_size = -32768")


def statement_bytes(raw_conn: sqlite3.Connection) -> int:
    return 0  # no statement-size limit that matters for executemany


def insert_statements(raw_conn: sqlite3.Connection, table: str, rows: list, limit: int) -> None:
    return None  # sqlite3's executemany binds each row already; nothing to build


def key_collation(conn: sa.Connection) -> tuple[None, str]:
    return None, "keys compared byte for byte, as SQLite does"


def create_staging(
    conn: sa.Connection,
    store: QueueStore,
    staging: str,
    like: str | None,
    collation: str | None = None,
    temporary: bool = False,
) -> None:
    """gearmand's own DDL: SQLite has no CREATE TABLE LIKE, and the layout is fixed.
    `temporary`: in the connection's own temp schema (the dry run's probe)."""
    ddl = store.ddl(staging)
    if temporary:
        ddl = "CREATE TEMPORARY TABLE" + ddl[len("CREATE TABLE") :]
    conn.exec_driver_sql(ddl)


# One batch of a copy: a savepoint inside the copy's one transaction.


def begin_batch(raw_conn: sqlite3.Connection) -> None:
    raw_conn.execute("SAVEPOINT queuetool_batch")


def end_batch(raw_conn: sqlite3.Connection) -> None:
    raw_conn.execute("RELEASE queuetool_batch")


def undo_batch(raw_conn: sqlite3.Connection) -> None:
    raw_conn.execute("ROLLBACK TO queuetool_batch")
    raw_conn.execute("RELEASE queuetool_batch")


def bulk_load(writer: StagingWriter) -> Writer:
    """A copy without --merge: rows in key order straight into staging, the others
    through a sorted TEMP table, each summed as stored (sqlite_load.py)."""
    from .sqlite_load import OrderedLoad  # it imports this module

    return OrderedLoad(writer)


def create_database_file(path: Path) -> None:
    sqlite3.connect(path).close()


def column_charsets(conn: sa.Connection, table: str) -> tuple[str | None, str | None]:
    return None, None  # TEXT holds any UTF-8


def swap(conn: sa.Connection, target: str, staging: str, old: str | None) -> None:
    """Inside the caller's transaction: the old table is renamed to `old` (None: dropped),
    staging takes its name. Nothing is visible to another connection until the commit."""
    if old is not None:
        conn.exec_driver_sql(f'ALTER TABLE "{target}" RENAME TO "{old}"')
    else:
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{target}"')
    conn.exec_driver_sql(f'ALTER TABLE "{staging}" RENAME TO "{target}"')


def drop_table(conn: sa.Connection, name: str, temporary: bool = False) -> None:
    schema = "temp." if temporary else ""
    conn.exec_driver_sql(f'DROP TABLE IF EXISTS {schema}"{name}"')


# `import` copies from the spool, itself a SQLite file, with the queue's own engine.
SPOOL_COPY = True


def delete_staged_conflicts(conn: sa.Connection, temp: str, table: str, on: str) -> int:
    join = f"FROM {temp} AS t JOIN {table} AS q ON {on}"
    return conn.exec_driver_sql(
        f"DELETE FROM {temp} WHERE rowid IN (SELECT t.rowid {join})"
    ).rowcount


def delete_replaced(conn: sa.Connection, temp: str, table: str, on: str) -> int:
    join = f"FROM {temp} AS t JOIN {table} AS q ON {on}"
    return conn.exec_driver_sql(
        f"DELETE FROM {table} WHERE rowid IN (SELECT q.rowid {join})"
    ).rowcount


# `migrate --move`: the source locked against writers until the emptying commits.
MOVE_ISOLATION: str | None = None  # the write transaction's BEGIN IMMEDIATE locks the file already


def count_locked(conn: sa.Connection, table: str) -> int:
    """The rows of `table` (quoted), locked against writers for the transaction."""
    # BEGIN IMMEDIATE holds the write lock already; this read takes the shared one.
    return conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one()


def empty_locked(conn: sa.Connection, table: str) -> bool:
    """Whether `table` (quoted) is empty; BEGIN IMMEDIATE holds the write lock already."""
    return conn.exec_driver_sql(f"SELECT 1 FROM {table} LIMIT 1").first() is None


def rolls_back(conn: sa.Connection, table_name: str) -> bool:
    """Every SQLite table is transactional."""
    return True


# Text the driver cannot decode (not UTF-8) can be read again byte-exact.
LENIENT_TEXT = True


def decode_text(raw_conn: sqlite3.Connection, lenient: bool) -> None:
    """`lenient`: text that is not UTF-8 arrives with its bytes kept (surrogateescape);
    else the driver's faster strict decoder, which refuses it."""
    raw_conn.text_factory = lenient_text if lenient else str


# -- restore: the table or the rows replaced -------------------------------------------


def replace_table(job: Restoring) -> Replaced:
    """restore: DELETE + INSERT ... SELECT in one transaction, checked before the commit."""
    store, info, snapshot_before = job.store, job.info, job.snapshot_before
    with store.connect() as conn, _attached(store, conn, info.path) as source, conn.begin():
        store.require_table(conn)
        before = snapshot_before(conn)
        rows_before = before.rows if before is not None else store.count(conn)
        conn.execute(store.table.delete())
        job.insert_rows(conn, store.table_name, source)
        after = job.check(conn, store.table_name)
    return before, rows_before, after


def replace_rows(job: Restoring) -> Replaced:
    """restore of a rows snapshot: the rows with its keys replaced in one transaction.

    The snapshot is ATTACHed; the join walks its keys and finds each row by the queue
    table's primary key (IS: a NULL key matches a NULL key)."""
    from ..store import COLUMNS, conn_quote  # store imports this module

    store, info, keep_replaced = job.store, job.info, job.keep_replaced
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
        job.insert_rows(conn, store.table_name, "qtsnap")
        with conn.exec_driver_sql(f"SELECT {columns} {join}") as restored:
            after = job.check_rows(restored)
    return before, replaced, after


@contextlib.contextmanager
def _attached(store: QueueStore, conn: sa.Connection, path: Path) -> Iterator[str]:
    """Set the SQLite connection up for a bulk write (the dialect's `prepare_writer`: a
    big page cache) and ATTACH the snapshot (before any transaction, which ATTACH needs)
    so its rows are copied in the engine; yields the attached schema's name."""
    raw = cast(sqlite3.Connection, conn.connection.driver_connection)
    store.dialect.prepare_writer(raw)
    raw.execute("ATTACH DATABASE ? AS qtsnap", (str(path),))
    try:
        yield "qtsnap"
    finally:
        raw.execute("DETACH DATABASE qtsnap")


def stream_cursor(raw_conn: sqlite3.Connection) -> sqlite3.Cursor:
    """A cursor to read a whole table with (sqlite3 steps through it lazily)."""
    return raw_conn.cursor()


server_checksum = None  # SQLite has no MD5: sums are made in Python (stored_checksum)


def stored_checksum(conn: sa.Connection, table: sa.Table) -> Checksum:
    """The checksum of the rows as they are in the table (inside the connection's
    transaction). SQLite has no MD5: the rows are read as plain tuples and hashed here."""
    cursor = stream_cursor(cast(sqlite3.Connection, conn.connection.dbapi_connection))
    return Checksum().update(chain.from_iterable(raw_batches(conn, table, cursor)))


REPAIRS_ROWS = (
    True  # rows the replay refuses that a lossless repair fixes (an edit window repairs them first)
)


def repairable(table: sa.Table) -> sa.ColumnElement[bool]:
    """Rows the replay refuses whose fix loses nothing: NULL or TEXT data, NULL when_to_run."""
    return sa.or_(
        sa.func.typeof(table.c.data).in_(["null", "text"]),
        table.c.when_to_run.is_(None),
    )


def replay_problem(conn: sa.Connection, table: str) -> str | None:
    return None  # the replay reads this layout right


def make_replay_safe(conn: sa.Connection, table: str) -> list[str]:
    return []  # nothing to convert


def repaired_values(table: sa.Table) -> dict[str, sa.ColumnElement]:
    return {
        # NULL is how gearmand wrote an empty payload; TEXT keeps its bytes as a BLOB.
        "data": sa.case(
            (table.c.data.is_(None), sa.literal(b"", sa.LargeBinary)),
            else_=sa.cast(table.c.data, sa.LargeBinary),
        ),
        "when_to_run": sa.func.coalesce(table.c.when_to_run, 0),
    }
