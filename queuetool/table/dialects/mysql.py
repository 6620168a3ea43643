"""The MySQL/MariaDB queue (gearmand's MySQL plugin), through PyMySQL."""

from __future__ import annotations

import contextlib
import fnmatch
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pymysql.charset
import pymysql.cursors
import sqlalchemy as sa
from pymysql.constants.SERVER_STATUS import SERVER_STATUS_NO_BACKSLASH_ESCAPES
from pymysql.converters import escape_string
from sqlalchemy.dialects.mysql import INTEGER
from sqlalchemy.engine import URL, Engine

from ...config import DEFAULT_TABLE
from ..checksum import MOD, Checksum, stream_query
from .identity import same_host

if TYPE_CHECKING:
    from ...changes.restore import Replaced, Restoring
    from ...migrate.staging import StagingWriter
    from ..store import QueueStore
    from . import DaemonOptions

NAME = "mysql"
URL_NAMES: tuple[str, ...] = ("mysql", "mariadb")
URL_EXAMPLE = "mysql+pymysql://USER:PASS@HOST:PORT/DB"
DDL_FILE = "mysql.sql"
QUEUE_TYPE = "mysql"  # gearmand's -q MySQL (lower case)
DAEMON_QUEUE_OPTION = "--mysql-db"
GROUP_BY_SORTS = False  # aggregates into a temporary table as rows stream


# Query options by which PyMySQL finds the database without the URL's path (my.cnf).
_DATABASE_ELSEWHERE = {"database", "db", "read_default_file", "read_default_group"}


def normalise_url(url: URL) -> URL:
    """Plain `mysql://` (and `mariadb://`) use PyMySQL, in utf8mb4. ValueError for a URL
    without a database (gearmand's table lives in one) or with a charset PyMySQL lacks."""
    if not url.database and not _DATABASE_ELSEWHERE & set(url.query):
        raise ValueError("it names no database (add /DATABASE after the host)")
    charset = url.query.get("charset")
    if isinstance(charset, tuple):
        raise ValueError("charset is given more than once")
    if charset is not None and pymysql.charset.charset_by_name(charset) is None:
        raise ValueError(f"PyMySQL knows no charset {charset!r} (utf8mb4 is the default)")
    backend = url.get_backend_name()
    if backend == "mariadb" or (backend == "mysql" and url.get_driver_name() in ("", "mysqldb")):
        url = url.set(drivername="mysql+pymysql")
    if "charset" not in url.query:
        # utf8mb4 carries any key gearmand can store; see text_key().
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


SIDE_OPTION = "--mysql-url URL"  # how `migrate` is given the queue for the word `mysql`


def side_url(given: str) -> str:
    return given


def database_file(url: URL) -> Path | None:
    return None  # a server, not a file


def location(url: URL) -> str:
    """host:port/database (a socket path for the host): how queues are told apart."""
    socket = url.query.get("unix_socket")
    host = str(socket) if socket else (url.host or "localhost").lower()
    return f"{host}:{url.port or 3306}/{url.database or ''}"


# -- the daemon's command line ----------------------------------------------------------


def daemon_server(opts: DaemonOptions) -> dict[str, str | int]:
    """host, port, user, password, db with gearmand's defaults."""
    return {
        "host": opts.get("mysql-host") or "localhost",
        "port": opts.number("mysql-port", 3306),
        "user": opts.get("mysql-user") or "",
        "password": opts.get("mysql-password") or "",
        "db": opts.get("mysql-db") or "",
    }


def daemon_database_file(opts: DaemonOptions) -> Path | None:
    return None


def daemon_table(opts: DaemonOptions) -> str:
    return opts.get("mysql-table") or DEFAULT_TABLE


def daemon_queue_url(opts: DaemonOptions) -> str | None:
    m = daemon_server(opts)
    auth = quote(str(m["user"]), safe="")
    if m["password"]:
        auth += ":" + quote(str(m["password"]), safe="")
    # gearmand's libmysqlclient reads "localhost" as the local socket; PyMySQL
    # has no such rule, so reach the same server over loopback TCP.
    host = "127.0.0.1" if m["host"] == "localhost" else m["host"]
    return f"mysql+pymysql://{auth}@{host}:{m['port']}/{m['db']}"


def daemon_uses(url: URL, opts: DaemonOptions) -> bool:
    """Whether the daemon's queue is on this URL's server and database (the table is
    compared already)."""
    m = daemon_server(opts)
    return (
        same_host(str(m["host"]), url.host or "localhost")
        and int(m["port"]) == (url.port or 3306)
        and m["db"] == (url.database or "")
    )


def gearmand_options(url: URL, table: str, mask: str | None) -> list[str]:
    """The `-q ...` options that make gearmand use this queue table; the password is
    replaced by `mask` unless that is None."""
    password = url.password or ""
    return [
        "-q",
        "MySQL",
        "--mysql-host",
        url.host or "localhost",
        "--mysql-port",
        str(url.port or 3306),
        "--mysql-user",
        url.username or "",
        "--mysql-password",
        password if mask is None or not password else mask,
        "--mysql-db",
        url.database or "",
        "--mysql-table",
        table,
    ]


def still_held(url: URL) -> str | None:
    return None  # a server: nothing to check once no daemon uses the queue


def same_table(a: sa.Connection, b: sa.Connection, a_table: str, b_table: str) -> bool:
    """A named lock `a` holds is taken for `b` only on the same server (locks are
    server-wide, so the databases are compared too); names then compare as the server
    does (lower_case_table_names)."""
    name = f"queuetool-identity-{uuid.uuid4().hex}"
    a.exec_driver_sql("SELECT GET_LOCK(%s, 0)", (name,))
    try:
        free = b.exec_driver_sql("SELECT IS_FREE_LOCK(%s)", (name,)).scalar()
    finally:
        a.exec_driver_sql("SELECT RELEASE_LOCK(%s)", (name,))
    if free != 0:
        return False
    db_a = a.exec_driver_sql("SELECT DATABASE()").scalar()
    db_b = b.exec_driver_sql("SELECT DATABASE()").scalar()
    fold = a.exec_driver_sql("SELECT @@lower_case_table_names").scalar() != 0
    if fold:
        return (str(db_a).lower(), a_table.lower()) == (str(db_b).lower(), b_table.lower())
    return (db_a, a_table) == (db_b, b_table)


# -- connecting ----------------------------------------------------------------------------


def create_engine(url: URL) -> Engine:
    # pool_pre_ping: maintenance windows are long; a server may drop idle connections.
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def after_lost_stream(dbapi_conn: object) -> None:
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


def byte_order(column: sa.ColumnElement) -> sa.ColumnElement:
    """As bytes in the column's charset: no conversion (text_key's costs a second a
    million rows), and ASCII, all a UUID holds, is the same bytes in every charset."""
    # Typed as text on the Python side: a LIKE pattern beside it binds as a string.
    return sa.type_coerce(sa.cast(column, sa.LargeBinary), sa.String)


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
    return text_key(column).op("REGEXP", is_comparison=True)(regex)


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


def prepare_writer(raw_conn: pymysql.connections.Connection) -> None:
    """Strict mode, so a value MySQL cannot hold is an error and never a silent '?' or cut."""
    with raw_conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')")


def statement_bytes(raw_conn: pymysql.connections.Connection) -> int:
    """How long one multi-row INSERT may be: the server's packet limit, at most 16 MB."""
    with raw_conn.cursor() as cur:
        cur.execute("SELECT @@max_allowed_packet")
        row = cur.fetchone()
    assert row is not None  # a SELECT of a variable answers one row
    (limit,) = row
    return max(64 * 1024, min(16 * 1024 * 1024, int(limit) - 64 * 1024))


def insert_statements(
    raw_conn: pymysql.connections.Connection, table: str, rows: list, limit: int
) -> list[bytes]:
    """Multi-row INSERTs of `rows` into `table`, none longer than `limit` bytes.

    The very bytes PyMySQL's executemany sends (text quoted with its escapes, bytes as
    X'hex', integers as digits; tested against it), built at twice its speed because
    carry.py has settled the types: (str, str, int, bytes, int). Another row goes
    through the driver's own escaping.
    """
    conn = raw_conn
    text: Callable[[str], str]
    if conn.server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES:  # type: ignore[attr-defined] # not in types-PyMySQL

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


# Each DDL statement commits: batches are transactions of their own, a staging table is
# dropped by hand, and the swap is one atomic RENAME TABLE.
TRANSACTIONAL_DDL = False
TEXT_HOLDS_NUL = True
INT32_WHEN_TO_RUN = True  # when_to_run is a signed 32-bit INT
TEXT_CHARSETS = True  # the plugin's table has the server's default charset (latin1?)


def begin_batch(raw_conn: pymysql.connections.Connection) -> None:
    raw_conn.begin()


def end_batch(raw_conn: pymysql.connections.Connection) -> None:
    raw_conn.commit()


def undo_batch(raw_conn: pymysql.connections.Connection) -> None:
    raw_conn.rollback()


def bulk_load(writer: StagingWriter) -> StagingWriter:
    return writer  # not used: batches are written from a thread of their own (staging.py)


def create_database_file(path: Path) -> None:
    raise NotImplementedError  # a server: database_file() is None


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
            return name, (
                f"keys in utf8mb4 / {name}: binary and no-pad, every distinct key stays distinct"
            )
    return PAD_BINARY, (
        f"keys in utf8mb4 / {PAD_BINARY}: this server has no no-pad binary collation, so keys that "
        "differ only in trailing spaces ('a', 'a ') collide and are refused"
    )


def create_staging(
    conn: sa.Connection,
    store: QueueStore,
    staging: str,
    like: str | None,
    collation: str | None = None,
    temporary: bool = False,
) -> None:
    """The staging table: exactly the target's layout and charset (LIKE), or gearmand's DDL
    in utf8mb4 with `collation`. `temporary`: a session's own table (the dry run's probe)."""
    create = "CREATE TEMPORARY TABLE" if temporary else "CREATE TABLE"
    if like is None:
        ddl = store.ddl(staging)
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
    found: dict[str, str | None] = dict(rows)
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


# `import` goes through a TEMPORARY table: the spool is a SQLite file the server cannot read.
SPOOL_COPY = False


def delete_staged_conflicts(conn: sa.Connection, temp: str, table: str, on: str) -> int:
    return conn.exec_driver_sql(f"DELETE t FROM {temp} AS t JOIN {table} AS q ON {on}").rowcount


def delete_replaced(conn: sa.Connection, temp: str, table: str, on: str) -> int:
    return conn.exec_driver_sql(f"DELETE q FROM {temp} AS t JOIN {table} AS q ON {on}").rowcount


# `migrate --move`: the source locked against writers until the emptying commits.
# Whatever the server's default: READ COMMITTED takes no gap locks, so a new row could
# be inserted between the proof and the DELETE.
MOVE_ISOLATION: str | None = "REPEATABLE READ"


def count_locked(conn: sa.Connection, table: str) -> int:
    """The rows of `table` (quoted), locked against writers for the transaction."""
    # `data` is in no index, so every row is read (and locked) in the clustered index,
    # which any UPDATE or DELETE must lock too; the scan's next-key locks up to the
    # supremum keep inserts out.
    return conn.exec_driver_sql(
        f"SELECT COUNT(*), SUM(LENGTH(data)) FROM {table} FOR UPDATE"
    ).one()[0]


def empty_locked(conn: sa.Connection, table: str) -> bool:
    """Whether `table` (quoted) is empty, then locked against inserts for the transaction:
    the same scan of the clustered index as count_locked (`data` is in no index), whose
    next-key lock on the supremum keeps inserts out; a full table costs one row."""
    found = conn.exec_driver_sql(f"SELECT LENGTH(data) FROM {table} LIMIT 1 FOR UPDATE")
    return found.first() is None


# Engines whose writes a ROLLBACK undoes; MyISAM, Aria, MEMORY, ... keep them.
TRANSACTIONAL_ENGINES = {"innodb", "xtradb", "rocksdb", "tokudb"}


def rolls_back(conn: sa.Connection, table_name: str) -> bool:
    """Whether the table's storage engine is transactional."""
    engine = conn.exec_driver_sql(
        "SELECT ENGINE FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (table_name,),
    ).scalar()
    return str(engine or "").lower() in TRANSACTIONAL_ENGINES


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


LENIENT_TEXT = False  # the server converts text; the driver reads it as UTF-8


def decode_text(raw_conn: pymysql.connections.Connection, lenient: bool) -> None:
    pass  # the server converts text; the driver always reads it as UTF-8


# -- restore: the table or the rows replaced -------------------------------------------

# TEMPORARY tables (this connection only, gone with it) for a rows snapshot.
UNDO_KEYS, UNDO_ROWS = "qt_undo_keys", "qt_undo_rows"


def replace_table(job: Restoring) -> Replaced:
    """restore: staging table LIKE the queue table, checked, then one atomic RENAME TABLE.

    One DELETE + INSERT transaction of a big queue puts every row into InnoDB's undo
    log twice and was measured ~15x slower (236 s at 1M rows)."""
    store, snapshot_before = job.store, job.snapshot_before
    d = store.dialect
    target = store.table_name
    staging, old = job.staging, job.old
    with store.connect() as conn:
        d.prepare_writer(conn.connection.dbapi_connection)  # strict mode: nothing cut
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        store.require_table(conn)
        before = snapshot_before(conn)
        rows_before = before.rows if before is not None else store.count(conn)
        for leftover in (staging, old):  # from a restore that was killed
            d.drop_table(conn, leftover)
        d.create_staging(conn, store, staging, target)
        try:
            job.insert_rows(conn, staging)
            after = job.check(conn, staging)
            d.swap(conn, target, staging, old)
        except BaseException:
            with contextlib.suppress(Exception):
                d.drop_table(conn, staging)
            raise
        d.drop_table(conn, old)
    return before, rows_before, after


def replace_rows(job: Restoring) -> Replaced:
    """restore of a rows snapshot: its keys and rows go into TEMPORARY tables LIKE the queue
    table (same charset and collation, so keys compare as the unique key does), then
    one transaction deletes the rows with those keys and inserts the snapshot's."""
    from ..store import COLUMNS  # store imports this module

    store, keep_replaced = job.store, job.keep_replaced
    d = store.dialect
    table = f"`{store.table_name}`"
    columns = ", ".join(f"q.`{c}`" for c in COLUMNS)
    join = (
        f"FROM `{UNDO_KEYS}` AS k JOIN {table} AS q "
        "ON q.unique_key <=> k.unique_key AND q.function_name <=> k.function_name"
    )
    with store.connect() as conn:
        d.prepare_writer(conn.connection.dbapi_connection)  # strict mode: nothing cut
        try:
            with conn.begin():
                store.require_table(conn)
                for name in (UNDO_KEYS, UNDO_ROWS):
                    conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS `{name}`")
                    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE `{name}` LIKE {table}")
                job.insert_rows(conn, UNDO_KEYS, keys=True)
                job.insert_rows(conn, UNDO_ROWS)
                with stream_query(conn, f"SELECT {columns} {join}") as current:
                    before = keep_replaced(current)
                replaced = conn.exec_driver_sql(f"DELETE q {join}").rowcount
                names = ", ".join(f"`{c}`" for c in COLUMNS)
                conn.exec_driver_sql(
                    f"INSERT INTO {table} ({names}) SELECT {names} FROM `{UNDO_ROWS}`"
                )
                with stream_query(conn, f"SELECT {columns} {join}") as restored:
                    after = job.check_rows(restored)
        finally:
            with contextlib.suppress(Exception):
                for name in (UNDO_KEYS, UNDO_ROWS):
                    conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS `{name}`")
    return before, replaced, after


def stream_cursor(raw_conn: pymysql.connections.Connection) -> pymysql.cursors.SSCursor:
    """A server-side (unbuffered) cursor: rows arrive as they are read, memory stays flat."""
    return raw_conn.cursor(pymysql.cursors.SSCursor)


REPAIRS_ROWS = False  # repairable() matches nothing: MySQL enforces the column types


def repairable(table: sa.Table) -> sa.ColumnElement[bool]:
    """MySQL enforces the column types and replays NULL data and when_to_run fine."""
    return sa.false()


def replay_problem(conn: sa.Connection, table: str) -> str | None:
    return None  # the replay reads this layout right


def make_replay_safe(conn: sa.Connection, table: str) -> list[str]:
    return []  # nothing to convert


def repaired_values(table: sa.Table) -> dict[str, sa.ColumnElement]:
    return {}
