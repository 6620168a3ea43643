"""The SQLite queue (gearmand's libsqlite3 plugin)."""

from __future__ import annotations

from itertools import chain

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from ..checksum import Checksum, raw_batches

DDL_FILE = "sqlite.sql"
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


def create_engine(url: URL) -> Engine:
    # NullPool: each connection opens the file anew, so a closed store holds no lock.
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not the driver, manage transactions (pysqlite quirk).
        dbapi_conn.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        # A transaction that may write takes the write lock at once, so what it read
        # is still true when it writes; a reader takes a shared lock when it reads.
        read_only = conn.get_execution_options().get("queuetool_read_only")
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


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


def exact_match(column: sa.ColumnElement, names: list[str]) -> sa.ColumnElement[bool]:
    """The column is one of `names`, byte for byte (SQLite's BINARY collation)."""
    return column.in_(names)


def glob_match(column: sa.ColumnElement, pattern: str) -> sa.ColumnElement[bool]:
    """SQLite's GLOB is shell-style and case-sensitive; it negates a class with ^, not !."""
    return column.op("GLOB")(_sqlite_glob(pattern))


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

INSERT_ROWS = "INSERT INTO {table} VALUES (?, ?, ?, ?, ?)"


def prepare_writer(raw_conn: object) -> None:
    """A large page cache for the bulk write; the journal stays, so a crash rolls back."""
    raw_conn.execute("PRAGMA cache_size = -32768")  # type: ignore[attr-defined]


def statement_bytes(raw_conn: object) -> int:
    return 0  # no statement-size limit that matters for executemany


def insert_statements(raw_conn: object, table: str, rows: list, limit: int) -> None:
    return None  # sqlite3's executemany binds each row already; nothing to build


def key_collation(conn: sa.Connection) -> tuple[None, str]:
    return None, "SQLite compares keys byte for byte"


def create_staging(
    conn: sa.Connection,
    store: object,
    staging: str,
    like: str | None,
    collation: str | None = None,
    temporary: bool = False,
) -> None:
    """gearmand's own DDL: SQLite has no CREATE TABLE LIKE, and the layout is fixed.
    `temporary`: in the connection's own temp schema (the dry run's probe)."""
    ddl = store.ddl(staging)  # type: ignore[attr-defined]
    if temporary:
        ddl = "CREATE TEMPORARY TABLE" + ddl[len("CREATE TABLE") :]
    conn.exec_driver_sql(ddl)


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


def stream_cursor(raw_conn: object) -> object:
    """A cursor to read a whole table with (sqlite3 steps through it lazily)."""
    return raw_conn.cursor()  # type: ignore[attr-defined]


server_checksum = None  # SQLite has no MD5: sums are made in Python (stored_checksum)


def stored_checksum(conn: sa.Connection, table: sa.Table) -> Checksum:
    """The checksum of the rows as they are in the table (inside the connection's
    transaction). SQLite has no MD5: the rows are read as plain tuples and hashed here."""
    cursor = stream_cursor(conn.connection.dbapi_connection)
    return Checksum().update(chain.from_iterable(raw_batches(conn, table, cursor)))


def repairable(table: sa.Table) -> sa.ColumnElement[bool]:
    """Rows the replay refuses whose fix loses nothing: NULL or TEXT data, NULL when_to_run."""
    return sa.or_(
        sa.func.typeof(table.c.data).in_(["null", "text"]),
        table.c.when_to_run.is_(None),
    )


def repaired_values(table: sa.Table) -> dict[str, sa.ColumnElement]:
    return {
        # NULL is how gearmand wrote an empty payload; TEXT keeps its bytes as a BLOB.
        "data": sa.case(
            (table.c.data.is_(None), sa.literal(b"", sa.LargeBinary)),
            else_=sa.cast(table.c.data, sa.LargeBinary),
        ),
        "when_to_run": sa.func.coalesce(table.c.when_to_run, 0),
    }
