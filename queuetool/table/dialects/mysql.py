"""The MySQL/MariaDB queue (gearmand's MySQL plugin), through PyMySQL."""

from __future__ import annotations

import fnmatch

import pymysql.cursors
import sqlalchemy as sa
from pymysql.constants.SERVER_STATUS import SERVER_STATUS_NO_BACKSLASH_ESCAPES
from pymysql.converters import escape_string
from sqlalchemy.dialects.mysql import INTEGER
from sqlalchemy.engine import URL, Engine

from ..checksum import MOD, Checksum

DDL_FILE = "mysql.sql"
GROUP_BY_SORTS = False  # aggregates into a temporary table as rows stream


def create_engine(url: URL) -> Engine:
    # pool_pre_ping: maintenance windows are long; a server may drop idle connections.
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def forget_unread(dbapi_conn: object) -> None:
    """After the server was lost mid-result, PyMySQL still tries to read the rest of an
    unbuffered (streamed) result from its closed socket, when the cursor is closed or
    garbage-collected: `AttributeError: 'NoneType' object has no attribute 'read'`
    instead of the real error, or printed as an ignored exception. Nothing is left to
    read: say so. A live connection is left alone."""
    if dbapi_conn is None or getattr(dbapi_conn, "_sock", True) is not None:
        return
    result = getattr(dbapi_conn, "_result", None)
    if result is not None:
        result.unbuffered_active = False


def column_type_problem(name: str, coltype: sa.types.TypeEngine) -> str | None:
    declared = str(coltype).upper()
    if name in ("priority", "when_to_run") and "INT" not in declared:
        return f"column {name!r} is {declared}, gearmand needs INT"
    if name == "data" and "BLOB" not in declared and "BINARY" not in declared:
        return f"column {name!r} is {declared}, gearmand needs LONGBLOB"
    if name in ("unique_key", "function_name") and "CHAR" not in declared:
        return f"column {name!r} is {declared}, gearmand needs VARCHAR"
    return None


def storage_type_conditions(table: sa.Table) -> dict[str, sa.ColumnElement[bool]]:
    """MySQL enforces column types; the replay reads NULL priority as 0 (HIGH!).

    NULL data is fine here: it is how gearmand itself stores an empty payload, and the
    MySQL replay reads it back as empty (seen on 1.1.20). NULL when_to_run reads as 0.
    """
    return {
        "unique_key_type": table.c.unique_key.is_(None),
        "function_name_type": table.c.function_name.is_(None),
        "priority_type": table.c.priority.is_(None),
    }


def payload_length(column: sa.ColumnElement) -> sa.ColumnElement[int]:
    return sa.func.length(column)


def byte_length(column: sa.ColumnElement) -> sa.ColumnElement[int]:
    return sa.func.length(column)  # LENGTH() counts bytes in MySQL


def text_key(column: sa.ColumnElement) -> sa.ColumnElement:
    """The column compared exactly and case-sensitively, whatever its charset.

    gearmand's names are case-sensitive, but the table's default collation is not,
    and its charset may be latin1 (the server default when gearmand creates it).
    """
    converted = sa.func.convert(sa.literal_column(f"`{column.name}` USING utf8mb4"))
    return sa.collate(converted, "utf8mb4_bin")


def exact_match(column: sa.ColumnElement, names: list[str]) -> sa.ColumnElement[bool]:
    """The column is one of `names`, byte for byte.

    Not `text_key(column) IN (...)`: utf8mb4_bin is a PAD SPACE collation, so there
    'mail' = 'mail ', while gearmand's names differ. Binary strings are compared as
    they are.
    """
    converted = sa.func.convert(sa.literal_column(f"`{column.name}` USING utf8mb4"))
    exact = sa.cast(converted, sa.LargeBinary).in_(
        [n.encode("utf-8", "surrogateescape") for n in names]
    )
    if not all(n.isascii() for n in names):
        return exact  # a latin1 column cannot even be compared with such a literal
    # The plain comparison first: a superset (equal bytes are equal in any collation)
    # that rejects most rows without converting them, a third off a 1M-row DELETE.
    return sa.and_(column.in_(names), exact)


def glob_match(column: sa.ColumnElement, pattern: str) -> sa.ColumnElement[bool]:
    """Shell-style and case-sensitive, like gearmand's function names."""
    # fnmatch gives '(?s:...)\\Z'; PCRE reads the same syntax, but its \\Z allows a
    # trailing newline, so anchor with \\z (absolute end) instead.
    regex = "^" + fnmatch.translate(pattern)[: -len("\\Z")] + "\\z"
    return text_key(column).op("REGEXP")(regex)


_HEX = "[0-9a-fA-F]"
# A UUID version 1 as libgearman writes it; \\z: the absolute end (see glob_match).
UUID1_REGEX = f"^{_HEX}{{8}}-{_HEX}{{4}}-1{_HEX}{{3}}-[89abAB]{_HEX}{{3}}-{_HEX}{{12}}\\z"
UUID1_UNIX_OFFSET = 12219292800  # 1582-10-15 to 1970-01-01 in seconds


def uuid1_epoch(column: sa.ColumnElement) -> sa.ColumnElement[int]:
    """The submission time (Unix seconds) a UUIDv1 key carries, NULL for any other key.

    The 60-bit timestamp's hex digits are time_hi (after the version digit), time_mid
    and time_low; CONV makes them a number. SIGNED, not UNSIGNED: a key from before 1970
    would make the unsigned subtraction an error instead of a negative number.
    """
    key = text_key(column)
    digits = sa.func.concat(
        sa.func.substring(key, 16, 3), sa.func.substring(key, 10, 4), sa.func.substring(key, 1, 8)
    )
    ticks = sa.cast(sa.func.conv(digits, 16, 10), sa.BigInteger)
    seconds = sa.type_coerce(ticks.op("DIV")(10_000_000), sa.Integer) - UUID1_UNIX_OFFSET
    return sa.case((key.op("REGEXP")(UUID1_REGEX), seconds), else_=sa.null())


def int_div(left: sa.ColumnElement[int], right: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """Integer division, truncating: MySQL's `/` is DECIMAL with 4 places, which rounds
    (N-1)/N up to 1 for large N; DIV is exact."""
    return sa.type_coerce(left.op("DIV")(right), sa.Integer)


# -- migration: staging table, bulk writes, atomic swap ---------------------------------

COLUMNS = "unique_key, function_name, priority, data, when_to_run"
INSERT_ROWS = "INSERT INTO {table} (" + COLUMNS + ") VALUES (%s, %s, %s, %s, %s)"


def prepare_writer(raw_conn: object) -> None:
    """Strict mode, so a value MySQL cannot hold is an error and never a silent '?' or cut."""
    with raw_conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')")


def statement_bytes(raw_conn: object) -> int:
    """How long one multi-row INSERT may be: the server's packet limit, at most 16 MB."""
    with raw_conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT @@max_allowed_packet")
        (limit,) = cur.fetchone()
    return max(64 * 1024, min(16 * 1024 * 1024, int(limit) - 64 * 1024))


def insert_statements(raw_conn: object, table: str, rows: list, limit: int) -> list[bytes]:
    """Multi-row INSERTs of `rows` into `table`, none longer than `limit` bytes.

    The very bytes PyMySQL's executemany sends (text quoted with its escapes, bytes as
    X'hex', integers as digits; tested against it), built at twice its speed because
    carry.py has settled the types: (str, str, int, bytes, int). Another row goes
    through the driver's own escaping.
    """
    conn: pymysql.connections.Connection = raw_conn  # type: ignore[assignment]
    if conn.server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES:

        def text(s: str) -> str:
            return s.replace("'", "''")
    else:
        text = escape_string
    escape = conn.escape
    encoding = conn.encoding  # the connection's charset, as the driver encodes statements
    prefix = f"INSERT INTO {table} ({COLUMNS}) VALUES "
    statements: list[bytes] = []
    values: list[str] = []
    size = len(prefix)
    for row in rows:
        u, f, p, d, w = row
        if type(u) is str and type(f) is str and type(p) is type(w) is int and type(d) is bytes:
            value = f"('{text(u)}', '{text(f)}', {p}, X'{d.hex()}', {w})"
        else:
            value = "(" + ", ".join(map(escape, row)) + ")"
        length = len(value) if value.isascii() else len(value.encode(encoding))
        if values and size + length + 1 > limit:
            statements.append((prefix + ",".join(values)).encode(encoding))
            values, size = [], len(prefix)
        values.append(value)
        size += length + 1
    if values:
        statements.append((prefix + ",".join(values)).encode(encoding))
    return statements


# Binary and NO PAD: every distinct key stays distinct, as in gearmand's memory
# (MySQL 8, MariaDB 10.2+). utf8mb4_bin is binary but PAD SPACE: 'a' = 'a '.
NO_PAD_BINARY = ("utf8mb4_0900_bin", "utf8mb4_nopad_bin")
PAD_BINARY = "utf8mb4_bin"


def key_collation(conn: sa.Connection) -> tuple[str, str]:
    """The collation a table queuetool creates gets, and a line saying why.

    Not the server's default (latin1 on a plain MariaDB, a _ci collation with
    Debian's config): those refuse keys gearmand stores, or make distinct keys collide.
    """
    found = {row[0] for row in conn.exec_driver_sql("SHOW COLLATION WHERE Charset = 'utf8mb4'")}
    for name in NO_PAD_BINARY:
        if name in found:
            return name, f"utf8mb4 / {name}: binary and no-pad, every distinct key stays distinct"
    return PAD_BINARY, (
        f"utf8mb4 / {PAD_BINARY}: this server has no no-pad binary collation, so keys that "
        "differ only in trailing spaces ('a', 'a ') collide and are refused"
    )


def create_staging(
    conn: sa.Connection,
    store: object,
    staging: str,
    like: str | None,
    collation: str | None = None,
    temporary: bool = False,
) -> None:
    """The staging table: exactly the target's layout and charset (LIKE), or gearmand's DDL
    in utf8mb4 with `collation`. `temporary`: a session's own table (the dry run's probe)."""
    create = "CREATE TEMPORARY TABLE" if temporary else "CREATE TABLE"
    if like is None:
        ddl = store.ddl(staging)  # type: ignore[attr-defined]
        ddl = create + ddl[len("CREATE TABLE") :]
        if collation:
            ddl += f" DEFAULT CHARSET=utf8mb4 COLLATE={collation}"
        conn.exec_driver_sql(ddl)
    else:
        conn.exec_driver_sql(f"{create} `{staging}` LIKE `{like}`")


def column_charsets(conn: sa.Connection, table: str) -> tuple[str | None, str | None]:
    """The character sets of unique_key and function_name (the plugin's table uses the
    server default, latin1 on a fresh MariaDB)."""
    rows = conn.exec_driver_sql(
        "SELECT LOWER(COLUMN_NAME), CHARACTER_SET_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (table,),
    ).all()
    found = dict(rows)
    return found.get("unique_key"), found.get("function_name")


def swap(conn: sa.Connection, target: str, staging: str, old: str | None) -> None:
    """Put staging in the target's place in one atomic RENAME TABLE; the old table becomes
    `old` (None: there is no target yet). The caller drops `old` unless it keeps it."""
    if old is None:
        conn.exec_driver_sql(f"RENAME TABLE `{staging}` TO `{target}`")
    else:
        conn.exec_driver_sql(f"RENAME TABLE `{target}` TO `{old}`, `{staging}` TO `{target}`")


def drop_table(conn: sa.Connection, name: str, temporary: bool = False) -> None:
    conn.exec_driver_sql(f"DROP {'TEMPORARY ' if temporary else ''}TABLE IF EXISTS `{name}`")


# -- checksum on the server ----------------------------------------------------------------

# How each column enters checksum.py's row encoding: 's' text, 'i' integer, 'b' bytes.
_KINDS = (
    ("unique_key", "s"),
    ("function_name", "s"),
    ("priority", "i"),
    ("data", "b"),
    ("when_to_run", "i"),
)


def _encoded(column: sa.ColumnElement, kind: str) -> sa.ColumnElement:
    """The bytes checksum.encode_value() gives for this column's value, built in SQL."""
    if kind == "s":
        # Text as its UTF-8 bytes (what the driver hands Python on a utf8mb4 connection),
        # whatever the column's own charset: gearmand's table is often latin1.
        value = sa.func.convert(sa.literal_column(f"`{column.name}` USING utf8mb4"))
        body = sa.func.concat("s", sa.func.length(value), ":", value)
    elif kind == "b":
        body = sa.func.concat("b", sa.func.length(column), ":", column)
    else:
        body = sa.func.concat("i", column, ";")
    return sa.case((column.is_(None), "n"), else_=body)


def server_checksum(
    conn: sa.Connection, table: sa.Table | str, where: sa.ColumnElement[bool] | None = None
) -> Checksum:
    """checksum.py's checksum of the table, computed by the server: no row is read here.

    Per row MD5 over the same type-tagged, length-prefixed encoding; the server sums the
    digest as four 32-bit chunks (each sum exact in DECIMAL), Python puts them together
    modulo 2**128. Identical to reading every row and hashing it in Python.
    """
    from ..store import queue_table  # store imports this module

    if isinstance(table, str):
        table = queue_table(table)
    message = sa.func.concat(*(_encoded(table.c[name], kind) for name, kind in _KINDS))
    inner = sa.select(sa.func.unhex(sa.func.md5(message)).label("digest")).select_from(table)
    if where is not None:
        inner = inner.where(where)
    # The LIMIT keeps the derived table from being merged into the outer query, which
    # would compute MD5 once per chunk instead of once per row; as 16 bytes (not 32
    # hex characters in the connection's utf8mb4) the materialised rows stay small.
    digests = inner.limit(2**64 - 1).subquery("digests")
    chunks = [
        sa.func.sum(
            sa.cast(
                sa.func.conv(
                    sa.func.hex(sa.func.substring(digests.c.digest, 1 + 4 * i, 4)), 16, 10
                ),
                INTEGER(unsigned=True),
            )
        )
        for i in range(4)
    ]
    count, *sums = conn.execute(sa.select(sa.func.count(), *chunks)).one()
    total = 0
    for part in sums:
        total = (total << 32) + int(part or 0)
    return Checksum(int(count), total % MOD)


def stored_checksum(conn: sa.Connection, table: sa.Table) -> Checksum:
    """The checksum of the rows as they are in the table, computed by the server."""
    return server_checksum(conn, table)


def stream_cursor(raw_conn: object) -> object:
    """A server-side (unbuffered) cursor: rows arrive as they are read, memory stays flat."""
    return raw_conn.cursor(pymysql.cursors.SSCursor)  # type: ignore[attr-defined]


def repairable(table: sa.Table) -> sa.ColumnElement[bool]:
    """MySQL enforces the column types and replays NULL data and when_to_run fine."""
    return sa.false()


def repaired_values(table: sa.Table) -> dict[str, sa.ColumnElement]:
    return {}
