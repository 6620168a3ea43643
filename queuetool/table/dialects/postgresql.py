"""The PostgreSQL queue (gearmand's libpq plugin, `-q Postgres`), through psycopg 3.

gearmand's replay reads priority and when_to_run wrongly from its own layout (INTEGER
columns, read in binary and parsed as text: every job comes back HIGH and due now).
TEXT columns replay right, so a table here has one of two layouts: gearmand's
(`replay_problem` says so, `make_replay_safe` converts it) or the replay-safe one,
which is what queuetool creates. Every query reads both: the two columns are cast to
BIGINT wherever SQLAlchemy renders them (see `_queue_int_column`), and integers are
written into TEXT by PostgreSQL's assignment cast.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.schema import Column

from ...errors import SchemaError
from ..checksum import MOD, Checksum
from .identity import same_host

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ...changes.restore import Replaced, Restoring
    from ...migrate.carry import Row
    from ...migrate.staging import StagingWriter
    from . import DaemonOptions

NAME = "postgres"
URL_NAMES: tuple[str, ...] = ("postgresql",)
URL_EXAMPLE = "postgresql+psycopg://USER:PASS@HOST:5432/DB"
DDL_FILE = "postgresql.sql"  # gearmand's own layout (INTEGER priority and when_to_run)
DEFAULT_TABLE = "queue"  # the libpq plugin's default, not gearman_queue
QUEUE_TYPE = "postgres"  # gearmand's -q Postgres (lower case)
DAEMON_QUEUE_OPTION = "--libpq-conninfo"
GROUP_BY_SORTS = False  # hash aggregation
SIDE_OPTION = "--postgres-url URL"  # how `migrate` is given the queue for the word `postgres`
PORT = 5432
# Where Debian's libpq (gearmand's) connects without a host: its Unix socket, not TCP.
# A server's pg_hba.conf often treats the two differently (peer versus password).
LIBPQ_SOCKET_DIR = "/var/run/postgresql"
# The two columns gearmand's replay misreads when they are integers.
REPLAY_COLUMNS = ("priority", "when_to_run")


def normalise_url(url: URL) -> URL:
    """Plain `postgresql://` uses psycopg 3."""
    if url.get_driver_name() in ("", "psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def side_url(given: str) -> str:
    return given


def database_file(url: URL) -> Path | None:
    return None  # a server, not a file


def location(url: URL) -> str:
    """host:port/database: how queues are told apart (never the user or password)."""
    host = str(url.query.get("host") or url.host or "localhost").lower()
    return f"{host}:{url.port or PORT}/{url.database or ''}"


# -- the daemon's command line ----------------------------------------------------------

_CONNINFO_PAIR = re.compile(r"\s*(\w+)\s*=\s*('((?:[^'\\]|\\.)*)'|(\S*))")
# libpq's environment variables for the fields queuetool needs (libpq-envars).
_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
}
# What else of the daemon's connection queuetool's own must follow: its TLS demands (a
# `verify-full` daemon must not become a `prefer` queuetool) and `options`, whose
# search_path decides which schema's table is the queue. Files by the daemon's cwd.
_CARRIED = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "gssencmode": "PGGSSENCMODE",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "options": "PGOPTIONS",
}
_CARRIED_FILES = ("sslrootcert", "sslcert", "sslkey", "sslcrl")


def parse_conninfo(text: str) -> dict[str, str]:
    """libpq's connection string, key=value pairs (values quoted with '...' and \\
    escapes) or a postgresql:// URI, as a dict of libpq keywords."""
    text = text.strip()
    if text.startswith(("postgresql://", "postgres://")):
        return _parse_uri(text)
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _CONNINFO_PAIR.match(text, pos)
        if m is None:
            if text[pos:].strip():
                from ...errors import UsageError

                raise UsageError("gearmand's --libpq-conninfo is not key=value pairs or a URI")
            break
        quoted, plain = m.group(3), m.group(4)
        fields[m.group(1)] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
        pos = m.end()
    return fields


def _parse_uri(text: str) -> dict[str, str]:
    parts = urlsplit(text)
    fields: dict[str, str] = {}
    if parts.username:
        fields["user"] = unquote(parts.username)
    if parts.password:
        fields["password"] = unquote(parts.password)
    if parts.hostname:
        fields["host"] = unquote(parts.hostname)
    if parts.port:
        fields["port"] = str(parts.port)
    if parts.path.strip("/"):
        fields["dbname"] = unquote(parts.path.lstrip("/"))
    fields.update(parse_qsl(parts.query))
    return fields


def daemon_server(opts: DaemonOptions) -> dict[str, str]:
    """host, port, user, password, dbname as gearmand's libpq resolves them: the
    conninfo, then the daemon process's PG* variables, then its user's ~/.pgpass
    (or PGPASSFILE), then libpq's defaults."""
    fields = parse_conninfo(opts.get("libpq-conninfo") or "")
    env: Mapping[str, str] = opts.env
    for key, var in _ENV.items():
        if not fields.get(key) and env.get(var):
            fields[key] = env[var]
    host = fields.get("host") or fields.get("hostaddr") or LIBPQ_SOCKET_DIR
    port = fields.get("port") or str(PORT)
    user = fields.get("user") or _user_name(opts.uid) or "gearman"
    dbname = fields.get("dbname") or user
    server = {"host": host, "port": port, "user": user, "dbname": dbname}
    password = fields.get("password")
    if not password:
        password = pgpass_password(_passfile(opts), server, opts.uid)
    server["password"] = password or ""
    for key, var in _CARRIED.items():
        value = fields.get(key) or env.get(var)
        if value:
            server[key] = str(opts.path(value)) if key in _CARRIED_FILES else value
    return server


def _user_name(uid: int | None) -> str | None:
    """libpq's default user: the OS name of the process's effective user."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name if uid is not None else None
    except KeyError:
        return None


def _passfile(opts: DaemonOptions) -> Path | None:
    """The password file the daemon's libpq reads: PGPASSFILE, else ~/.pgpass of the
    daemon's effective user. Not queuetool's own HOME (root's, under sudo), and not the
    daemon's $HOME either: libpq 15 (Debian 12) takes the home from the passwd entry."""
    import pwd

    if opts.env.get("PGPASSFILE"):
        return opts.path(opts.env["PGPASSFILE"])
    if opts.uid is None:
        return None  # not running: whose file it would be is unknown
    try:
        return Path(pwd.getpwuid(opts.uid).pw_dir) / ".pgpass"
    except KeyError:
        return None


def pgpass_password(path: Path | None, server: Mapping[str, str], uid: int | None) -> str | None:
    """The password the password file gives this server (hostname:port:database:username:
    password, `*` matches anything, the first matching line wins), None when none does.

    Read only as the daemon's libpq would read it: a regular file without group or other
    permissions (libpq ignores any other), owned by the daemon's user `uid`. queuetool
    run as root can read any file; the daemon's user must not be able to make it send the
    password in another user's file to a server of its choosing."""
    if path is None or uid is None:
        return None
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_uid != uid:
            return None
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    wanted = [server["host"], server["port"], server["dbname"], server["user"]]
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.replace("\\:", ":").replace("\\\\", "\\") for p in re.split(r"(?<!\\):", line)]
        if len(parts) < 5:
            continue
        if all(
            p == "*" or p == w or (p == "localhost" and w.startswith("/"))
            for p, w in zip(parts[:4], wanted, strict=True)
        ):
            return ":".join(parts[4:])
    return None


def daemon_database_file(opts: DaemonOptions) -> Path | None:
    return None


def daemon_table(opts: DaemonOptions) -> str:
    return opts.get("libpq-table") or DEFAULT_TABLE


def daemon_queue_url(opts: DaemonOptions) -> str | None:
    s = daemon_server(opts)
    auth = quote(s["user"], safe="")
    if s["password"]:
        auth += ":" + quote(s["password"], safe="")
    host, database = s["host"], quote(s["dbname"], safe="")
    query = {k: s[k] for k in _CARRIED if k in s}
    if host.startswith("/"):  # a socket directory: libpq's host= in the query
        query = {"host": host, "port": s["port"], **query}
        where = f"/{database}"
    else:
        where = f"{host}:{s['port']}/{database}"
    tail = "?" + urlencode(query, quote_via=quote, safe="/") if query else ""
    return f"postgresql+psycopg://{auth}@{where}{tail}"


def daemon_uses(url: URL, opts: DaemonOptions) -> bool:
    """Whether the daemon's queue is on this URL's server and database."""
    s = daemon_server(opts)
    return (
        same_host(s["host"], str(url.query.get("host") or url.host or "localhost"))
        and int(s["port"]) == (url.port or PORT)
        and s["dbname"] == (url.database or "")
    )


def _conninfo_value(value: str) -> str:
    """A conninfo value, quoted only when libpq needs it (space, quote, backslash)."""
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def gearmand_options(url: URL, table: str, mask: str | None) -> list[str]:
    """The `-q Postgres ...` options for this queue; the password is replaced by `mask`
    unless that is None."""
    fields = {
        "host": str(url.query.get("host") or url.host or "localhost"),
        "port": str(url.port or PORT),
        "user": url.username or "",
        "dbname": url.database or "",
    }
    if url.password:
        fields["password"] = url.password if mask is None else mask
    info = " ".join(f"{k}={_conninfo_value(v)}" for k, v in fields.items() if v)
    return ["-q", "Postgres", "--libpq-conninfo", info, "--libpq-table", table]


def still_held(url: URL) -> str | None:
    return None  # a server: nothing to check once no daemon uses the queue


def same_table(a: sa.Connection, b: sa.Connection, a_table: str, b_table: str) -> bool:
    """An advisory lock `a` holds is taken for `b` only in the same database of the same
    server (advisory locks belong to a database); names compare exactly, as quoted."""
    key = secrets.randbits(63)
    a.exec_driver_sql("SELECT pg_advisory_lock(%s)", (key,))
    try:
        got = b.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (key,)).scalar()
        if got:
            b.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        a.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (key,))
    schema_a = a.exec_driver_sql("SELECT current_schema()").scalar()
    schema_b = b.exec_driver_sql("SELECT current_schema()").scalar()
    return not got and (schema_a, a_table) == (schema_b, b_table)


# -- connecting ----------------------------------------------------------------------------


def create_engine(url: URL) -> Engine:
    logging.getLogger("psycopg").addFilter(_quiet_abort)  # a filter added twice is kept once
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
    # First: SQLAlchemy's own start-up query breaks on a SQL_ASCII database (bytes).
    sa.event.listen(engine, "connect", require_utf8, insert=True)
    return engine


def _quiet_abort(record: logging.LogRecord) -> bool:
    """Drop psycopg's note that closing a pipeline or a COPY failed too, logged while the
    error that aborted it (a key conflict the writer handles) is already on its way:
    on the operator's terminal it read as a second, unexplained error."""
    return not record.getMessage().startswith("error ignored terminating")


def require_utf8(dbapi_conn: Any, record: object = None) -> None:
    """Refuse a database whose encoding is not UTF8, for every command: the driver hands
    back text converted from that encoding (SQL_ASCII: raw bytes), so names would not be
    the bytes gearmand stored, and every checksum (server-side over the database's own
    bytes, Python over UTF-8) would fail only after the work. The server sent its
    encoding when the connection opened: no query."""
    encoding = dbapi_conn.info.parameter_status("server_encoding")
    if encoding is not None and encoding.upper() != "UTF8":
        info = dbapi_conn.info
        raise SchemaError(
            f"database {info.dbname!r} on {info.host}:{info.port} has encoding {encoding}: "
            "queuetool needs a UTF8 database (keys and function names are UTF-8 text); "
            "put the queue in one created with ENCODING 'UTF8' TEMPLATE template0; "
            "nothing was changed"
        )


def after_lost_stream(dbapi_conn: object) -> None:
    """Nothing to do: psycopg raises the real error (OperationalError) when the server
    is lost mid-result, and closing its cursor afterwards raises nothing."""


# -- both layouts: the two columns read as BIGINT wherever they are rendered ------------


@compiles(Column, "postgresql")
def _queue_int_column(element: Column, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    """priority and when_to_run of a queue table as BIGINT in every expression (SELECT,
    WHERE, GROUP BY, ORDER BY, function arguments), so the same SQL reads gearmand's
    INTEGER layout and the replay-safe TEXT one. A SET or INSERT target is rendered by
    name, not here: an integer written into TEXT is PostgreSQL's assignment cast."""
    text = compiler.visit_column(element, **kw)
    if element.name in REPLAY_COLUMNS and isinstance(element.table, sa.Table):
        return f"CAST({text} AS BIGINT)"
    return text


class stored(sa.sql.expression.ColumnElement):
    """The column as stored (TEXT or INTEGER), without the cast."""

    inherit_cache = True

    def __init__(self, column: sa.ColumnClause) -> None:
        self.column = column
        self.type = sa.Text()


@compiles(stored)
def _stored(element: stored, compiler: sa.sql.compiler.SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.visit_column(element.column, **kw)} AS TEXT)"


def column_type_problem(name: str, coltype: sa.types.TypeEngine) -> str | None:
    declared = str(coltype).upper()
    if name in REPLAY_COLUMNS and "INT" not in declared and "TEXT" not in declared:
        return f"column {name!r} is {declared}, gearmand needs INTEGER (or TEXT)"
    if name == "data" and "BYTEA" not in declared:
        return f"column {name!r} is {declared}, gearmand needs BYTEA"
    if name in ("unique_key", "function_name") and "CHAR" not in declared and declared != "TEXT":
        return f"column {name!r} is {declared}, gearmand needs VARCHAR"
    return None


def replay_problem(conn: sa.Connection, table: str) -> str | None:
    """Why gearmand replays this table wrongly (its own INTEGER layout), with the fix;
    None for the replay-safe layout."""
    columns = {c["name"].lower(): c for c in sa.inspect(conn).get_columns(table)}
    ints = [n for n in REPLAY_COLUMNS if n in columns and "INT" in str(columns[n]["type"]).upper()]
    if not ints:
        return None
    kind = "is an integer column" if len(ints) == 1 else "are integer columns"
    return (
        f"{' and '.join(ints)} {kind}: gearmand's PostgreSQL replay reads them as 0, so "
        "after a restart every job is HIGH and due now; fix: `queuetool make-replay-safe` "
        "(makes them TEXT, snapshot first)"
    )


# A sign and digits, at most 18 of them (so the BIGINT cast cannot overflow): the bound
# is a length, not `{1,18}` in the pattern, which PostgreSQL's regex engine matched
# three times slower (100k rows of a 1M table: 0.32 s against 0.11 s).
_INTEGER_TEXT = r"^-?[0-9]+$"
MAX_DIGITS = 18


def storage_type_conditions(table: sa.Table) -> dict[str, sa.ColumnElement[bool]]:
    """PostgreSQL enforces the column types; the replay reads NULL priority as 0 (HIGH).
    On the TEXT layout, a value that is no integer is what the replay cannot read."""

    def not_integer(name: str) -> sa.ColumnElement[bool]:
        text = stored(table.c[name])
        digits = sa.func.length(sa.func.ltrim(text, "-"))  # the pattern allows one '-'
        return sa.not_(
            sa.and_(text.op("~", is_comparison=True)(_INTEGER_TEXT), digits <= MAX_DIGITS)
        )

    return {
        "unique_key_type": table.c.unique_key.is_(None),
        "function_name_type": table.c.function_name.is_(None),
        "priority_type": sa.or_(stored(table.c.priority).is_(None), not_integer("priority")),
        "when_to_run_type": not_integer("when_to_run"),
    }


def payload_length(column: sa.ColumnElement) -> sa.ColumnElement[int]:
    return sa.func.length(column)  # bytes of a BYTEA


def byte_length(column: sa.ColumnElement) -> sa.ColumnElement[int]:
    return sa.func.octet_length(column)


def text_key(column: sa.ColumnElement) -> sa.ColumnElement:
    """Byte order, whatever the database's collation: keys compare as gearmand's do."""
    return column.collate("C")


def byte_order(column: sa.ColumnElement) -> sa.ColumnElement:
    """The "C" collation: by bytes, and cheaper than the database's locale."""
    return column.collate("C")


def exact_match(column: sa.ColumnElement, names: list[str]) -> sa.ColumnElement[bool]:
    return column.in_(names)  # text equality is exact in PostgreSQL (deterministic)


def glob_match(column: sa.ColumnElement, pattern: str) -> sa.ColumnElement[bool]:
    """fnmatch's pattern as a POSIX regular expression (`~`, case-sensitive)."""
    import fnmatch

    return column.op("~", is_comparison=True)(_posix_regex(fnmatch.translate(pattern)))


def _posix_regex(python_regex: str) -> str:
    """fnmatch.translate's Python regex in the subset PostgreSQL's ARE reads the same:
    its `(?s:...)\\Z` wrapper becomes `^(...)$` with `.` matching newlines (ARE's default)."""
    body = python_regex
    if body.startswith("(?s:") and body.endswith(")\\Z"):
        body = body[4:-3]
    # fnmatch emits atomic groups (?>...) in 3.11+ for runs of '*': ARE has none, but a
    # plain non-capturing group matches the same strings.
    body = body.replace("(?>", "(?:")
    return f"^(?:{body})$"


_HEX = "[0-9a-fA-F]"
# A UUID version 1 as libgearman writes it. In an ARE `$` is the absolute end (a
# trailing newline does not match), unlike Python's `$`.
UUID1_REGEX = f"^{_HEX}{{8}}-{_HEX}{{4}}-1{_HEX}{{3}}-[89abAB]{_HEX}{{3}}-{_HEX}{{12}}$"
UUID1_UNIX_OFFSET = 12219292800  # 1582-10-15 to 1970-01-01 in seconds


def uuid1_epoch(column: sa.ColumnElement) -> sa.ColumnElement[int]:
    """The submission time (Unix seconds) a UUIDv1 key carries, NULL for any other key.

    The 60-bit timestamp's 15 hex digits (time_hi after the version digit, time_mid,
    time_low), with a 0 in front, read as a 64-bit string (`x...`) and cast to BIGINT:
    exact and non-negative, so `/` (truncating) is the floor. The CASE guards the
    cast: only a key the regex matches is parsed.
    """
    digits = sa.func.concat(
        "x0",
        sa.func.substr(column, 16, 3),
        sa.func.substr(column, 10, 4),
        sa.func.substr(column, 1, 8),
    )
    ticks = sa.cast(sa.cast(digits, BIT(64)), sa.BigInteger)
    seconds = sa.type_coerce(ticks.op("/")(10_000_000) - UUID1_UNIX_OFFSET, sa.BigInteger)
    return sa.case((column.op("~", is_comparison=True)(UUID1_REGEX), seconds), else_=sa.null())


def int_div(left: sa.ColumnElement[int], right: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """Integer division, truncating: `/` on two integers already is in PostgreSQL."""
    return sa.type_coerce(
        sa.cast(left, sa.BigInteger).op("/")(sa.cast(right, sa.BigInteger)), sa.Integer
    )


REPAIRS_ROWS = False  # PostgreSQL enforces the column types


def repairable(table: sa.Table) -> sa.ColumnElement[bool]:
    return sa.false()


def repaired_values(table: sa.Table) -> dict[str, sa.ColumnElement]:
    return {}


# -- the fix of the layout ------------------------------------------------------------------


def make_replay_safe(conn: sa.Connection, table: str) -> list[str]:
    """priority and when_to_run as TEXT, in the caller's transaction (the values keep
    their digits: gearmand's text INSERT goes on working, and its replay reads them).
    Returns the columns converted."""
    columns = {c["name"].lower(): c for c in sa.inspect(conn).get_columns(table)}
    ints = [n for n in REPLAY_COLUMNS if "INT" in str(columns[n]["type"]).upper()]
    if ints:
        quoted = _quote(table)
        alters = ", ".join(f"ALTER COLUMN {n} TYPE TEXT USING {n}::TEXT" for n in ints)
        conn.exec_driver_sql(f"ALTER TABLE {quoted} {alters}")
        # The rewrite drops the two columns' statistics, and no row changed to make
        # autovacuum gather them again.
        _analyse(conn, table, tuple(ints))
    return ints


GROUPED_COLUMNS = ("function_name", "priority", "when_to_run")  # what queuetool groups by


def _analyse(conn: sa.Connection, table: str, columns: tuple[str, ...]) -> None:
    """Statistics for the columns queuetool groups and filters by, from a small sample.
    Without any (a new table until autovacuum's ANALYZE, a minute or more after the
    commit) the planner takes a GROUP BY for 40,000 groups and sorts to disk: report at
    1M jobs 0.72 s, 0.31 s after. 3,000 rows (target 10) tell a few hundred functions
    from 40,000 in 15 ms; the default sample cost 0.3-0.4 s of a 1M-row migration.
    Autovacuum's own ANALYZE replaces them later."""
    conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")
    conn.exec_driver_sql(f"ANALYZE {_quote(table)} ({', '.join(columns)})")
    conn.exec_driver_sql("SET LOCAL default_statistics_target TO DEFAULT")


def replay_safe_ddl(ddl: str) -> str:
    """gearmand's CREATE TABLE with priority and when_to_run as TEXT."""
    for name in REPLAY_COLUMNS:
        ddl = ddl.replace(f"{name} INTEGER", f"{name} TEXT")
    return ddl


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- migration: staging table, bulk writes, atomic swap ---------------------------------

COLUMNS = "unique_key, function_name, priority, data, when_to_run"
INSERT_ROWS = "INSERT INTO {table} (" + COLUMNS + ") VALUES (%s, %s, %s, %s, %s)"
# DDL is transactional: a copy or a restore is ONE transaction, whose rollback also
# removes its staging table; the swap is a DROP and a RENAME inside it.
TRANSACTIONAL_DDL = True
INT32_WHEN_TO_RUN = True  # gearmand's own layout: when_to_run INTEGER (32 bits)
TEXT_CHARSETS = False  # the database is UTF8; only NUL is refused (TEXT_HOLDS_NUL)
TEXT_HOLDS_NUL = False  # PostgreSQL text cannot hold a NUL character
LENIENT_TEXT = False


def prepare_writer(raw_conn: object) -> None:
    pass  # types are enforced and nothing is cut silently: a value that does not fit fails


def statement_bytes(raw_conn: object) -> int:
    return 0


def insert_statements(raw_conn: object, table: str, rows: list, limit: int) -> None:
    return None  # psycopg's executemany pipelines the rows already


def begin_batch(raw_conn: object) -> None:
    raw_conn.execute("SAVEPOINT queuetool_batch")  # type: ignore[attr-defined]


def end_batch(raw_conn: object) -> None:
    raw_conn.execute("RELEASE SAVEPOINT queuetool_batch")  # type: ignore[attr-defined]


def undo_batch(raw_conn: object) -> None:
    raw_conn.execute("ROLLBACK TO SAVEPOINT queuetool_batch")  # type: ignore[attr-defined]
    raw_conn.execute("RELEASE SAVEPOINT queuetool_batch")  # type: ignore[attr-defined]


def bulk_load(writer: StagingWriter) -> CopyLoad:
    return CopyLoad(writer)


class CopyLoad:
    """Each batch by `COPY ... FROM STDIN` inside a savepoint, sent from a thread of its
    own while this one reads, checks, hashes and encodes the next batch; then the
    batch's rows as stored in staging are summed by the server (`stored`).

    The rows are pre-encoded in COPY's binary format for the staging table's column
    types, in one pass (0.12 s per 100k rows measured alone, psycopg's text write_row
    0.40 s), and the server takes the payload as it is instead of decoding its hex. A
    column type without an encoder here falls back to text COPY through write_row.

    `stored` is the checksum of the rows the server found in staging after each batch,
    the ones past the last row it saw (a TID range scan, PostgreSQL 14+): the copy's
    verification then costs no pass over the table after the last batch. Should a row
    land before that point (free space reused), the sum differs from the expected one,
    and copy.py sums the whole table instead: it can fail to match, never falsely
    match. None where it is not kept (an older server).

    Staging's indexes (the unique key) are dropped while it is empty and built again
    once every row is in: one sorted build instead of a B-tree insert per row at a
    random place, which at 1M rows cost the server more than the rest of the COPY. If
    the build finds a key twice (only a source without such a key could hold it), the
    later copies (in the order written) are taken out and refused as key collisions,
    as the row-by-row retry would have, and the index is built again.

    A batch the table refuses anyway (a CHECK constraint of the target's) is undone and
    written again row by row through the StagingWriter, once the thread is idle."""

    def __init__(self, writer: StagingWriter) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.writer = writer
        self.raw = writer.raw
        self.cursor = self.raw.cursor()
        self.encode = _binary_encoder(_column_types(self.raw, writer.quoted))
        binary = " (FORMAT BINARY)" if self.encode is not None else ""
        self.copy_sql = f"COPY {writer.quoted} ({COLUMNS}) FROM STDIN{binary}"
        self.stored: Checksum | None = None
        self.sum_sql: str | None = None
        if self.raw.info.server_version >= 140000:  # TID range scans, max(tid)
            self.stored = Checksum()
            self.sum_sql = _new_rows_checksum_sql(writer)
        self.after = "(0,0)"  # the last row summed
        self.indexes = _drop_indexes(self.raw, writer.quoted)  # built again at close
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="queuetool-copy")
        self.pending: Future[list[Row] | None] | None = None

    skipped = property(lambda self: self.writer.skipped)
    replaced = property(lambda self: self.writer.replaced)
    not_written = property(lambda self: self.writer.not_written)
    removed = property(lambda self: self.writer.removed)

    def write(self, batch: list[Row]) -> None:
        data = self.encode(batch) if self.encode is not None else None
        self._settle()  # the last batch is in: the connection is free
        self.pending = self.pool.submit(self._send, batch, data)

    def _send(self, batch: list[Row], data: bytes | None) -> list[Row] | None:
        """In the thread: the batch in its own savepoint, then summed; returns the batch
        when the unique key refused it (undone, to be written row by row)."""
        self.raw.execute("SAVEPOINT queuetool_copy")
        try:
            with self.cursor.copy(self.copy_sql) as copy:
                if data is not None:
                    copy.write(data)
                else:
                    for row in batch:
                        copy.write_row(row)
        except self.writer.integrity_error:
            self.raw.execute("ROLLBACK TO SAVEPOINT queuetool_copy")
            self.raw.execute("RELEASE SAVEPOINT queuetool_copy")
            return batch
        self.raw.execute("RELEASE SAVEPOINT queuetool_copy")
        self._sum_new_rows()
        return None

    def _settle(self) -> None:
        """Wait for the batch in flight (its error raised here); one the key refused is
        written row by row now, while nothing else uses the connection."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        refused = pending.result()
        if refused is not None:
            self.writer.write(refused)
            self._sum_new_rows()

    def _sum_new_rows(self) -> None:
        if self.sum_sql is None or self.stored is None:
            return
        self.cursor.execute(self.sum_sql, {"after": self.after})
        row = self.cursor.fetchone()
        assert row is not None  # an aggregate: always one row
        count, high, middle, low, last = row
        if count:
            self.after = last
            total = (int(high) << 64) + (int(middle) << 32) + int(low)
            self.stored.rows += count
            self.stored.total = (self.stored.total + total) % MOD

    def close(self, keep: bool = True) -> None:
        try:
            self._settle()
        finally:
            self.pool.shutdown()
        try:
            if keep:
                self._build_indexes()
                self._count()
        finally:
            self.cursor.close()
        self.writer.close(keep)

    def _count(self) -> None:
        """The batches' sums cover every row of staging, once: a row stored where no sum
        looked (before `after`) would pass unseen, so a count that differs drops the sums
        and copy.py sums the whole table."""
        if self.stored is None:
            return
        self.cursor.execute(f"SELECT count(*) FROM {self.writer.quoted}")
        row = self.cursor.fetchone()
        if row is None or row[0] != self.stored.rows:
            self.stored = None

    def _build_indexes(self) -> None:
        """Staging's indexes again; a key found twice: the later copies refused first."""
        if not self.indexes:
            return
        self.raw.execute("SAVEPOINT queuetool_index")
        try:
            for create in self.indexes:
                self.raw.execute(create)
        except self.writer.integrity_error:
            self.raw.execute("ROLLBACK TO SAVEPOINT queuetool_index")
            collided = True
        else:
            collided = False
        self.raw.execute("RELEASE SAVEPOINT queuetool_index")
        if not collided:
            return
        self._refuse_later_copies()
        for create in self.indexes:  # another unique index than the key's: its error
            self.raw.execute(create)

    def _refuse_later_copies(self) -> None:
        """Take out every row whose key an earlier row (by position) holds: refused."""
        table = self.writer.quoted
        gone = self.cursor.execute(
            f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM (SELECT ctid, row_number() "
            "OVER (PARTITION BY unique_key, function_name ORDER BY ctid) AS n "
            f"FROM {table}) AS d WHERE n > 1) RETURNING unique_key, function_name, "
            "CAST(priority AS BIGINT), data, CAST(when_to_run AS BIGINT)"
        ).fetchall()
        for unique, function, priority, data, when in gone:
            row = (unique, function, priority, bytes(data), when)
            self.writer.not_written.add(row)
            self.writer.refusals.add(row, "key_collision")
        self.stored = None  # summed with the rows taken out: copy.py sums staging again

    def abort(self) -> None:
        """Wait for the batch in flight (its error is not the one to see), then stop."""
        pending, self.pending = self.pending, None
        if pending is not None:
            with contextlib.suppress(BaseException):
                pending.result()
        self.pool.shutdown()
        with contextlib.suppress(Exception):
            self.cursor.close()
        self.writer.abort()


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
_COPY_TRAILER = b"\xff\xff"
_TEXT_TYPES = frozenset({"text", "character varying", "character"})


def _drop_indexes(raw: Any, quoted: str) -> list[str]:
    """Drop the indexes of an (empty) table; the statements that make them again, the
    constraints (unique, primary key) under their own names."""
    rows = raw.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), c.conname, "
        "pg_get_constraintdef(c.oid) FROM pg_index AS i LEFT JOIN pg_constraint AS c "
        "ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
        "WHERE i.indrelid = %s::regclass ORDER BY i.indexrelid",
        (quoted,),
    ).fetchall()
    creates = []
    for index, index_def, constraint, constraint_def in rows:
        if constraint is not None:
            raw.execute(f"ALTER TABLE {quoted} DROP CONSTRAINT {_quote(constraint)}")
            creates.append(
                f"ALTER TABLE {quoted} ADD CONSTRAINT {_quote(constraint)} {constraint_def}"
            )
        else:
            raw.execute(f"DROP INDEX {index}")
            creates.append(index_def)
    return creates


def _column_types(raw: Any, quoted: str) -> dict[str, str]:
    """The types of a table's columns, by name, as format_type() names them."""
    rows = raw.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (quoted,),
    ).fetchall()
    return {name: kind for name, kind in rows}


def _binary_encoder(types: Mapping[str, str]) -> Callable[[list[Row]], bytes] | None:
    """The batch as COPY binary data for these column types; None when a column has a
    type this does not encode (text COPY then). Rows are carried: text that is valid
    UTF-8 without NUL, priority and when_to_run integers that fit, data bytes."""
    import struct

    if types.get("data") != "bytea" or not all(
        types.get(name) in _TEXT_TYPES for name in ("unique_key", "function_name")
    ):
        return None
    head = struct.Struct(">hi").pack  # field count, then the first field's length
    length = struct.Struct(">i").pack

    def as_text(value: int) -> bytes:
        digits = b"%d" % value
        return length(len(digits)) + digits

    int4 = struct.Struct(">ii").pack
    int8 = struct.Struct(">iq").pack
    encoders: dict[str, Callable[[int], bytes]] = {
        "integer": lambda value: int4(4, value),
        "bigint": lambda value: int8(8, value),
        **{kind: as_text for kind in _TEXT_TYPES},
    }
    priority = encoders.get(types.get("priority", ""))
    when = encoders.get(types.get("when_to_run", ""))
    if priority is None or when is None:
        return None
    priorities = {p: priority(p) for p in (0, 1, 2)}  # carried rows have no other

    def encode(batch: list[Row]) -> bytes:
        parts = [_COPY_HEADER]
        extend = parts.extend
        for unique, function, prio, data, when_to_run in batch:
            u = unique.encode()
            f = function.encode()
            extend(
                (
                    head(5, len(u)),
                    u,
                    length(len(f)),
                    f,
                    priorities[prio],
                    length(len(data)),
                    data,
                    when(when_to_run),
                )
            )
        parts.append(_COPY_TRAILER)
        return b"".join(parts)

    return encode


def _new_rows_checksum_sql(writer: StagingWriter) -> str:
    """The checksum of the rows past `%(after)s` (a ctid) in staging, and the last one."""
    from ..store import queue_table  # store imports this module

    table = queue_table(writer.staging)
    query = _checksum_query(
        table, sa.text("ctid > CAST(:after AS tid)"), sa.literal_column("ctid").label("t")
    )
    dialect = writer.store.engine.dialect
    return str(query.compile(dialect=dialect))


def create_database_file(path: Path) -> None:
    raise NotImplementedError  # a server: database_file() is None


def column_charsets(conn: sa.Connection, table: str) -> tuple[str | None, str | None]:
    return None, None  # the database's encoding is UTF8 (gearmand's own is too)


def key_collation(conn: sa.Connection) -> tuple[None, str]:
    """What a created table's keys compare as: the database's default collation, which
    orders them (queuetool sorts with COLLATE "C" itself, text_key) but cannot make two
    distinct keys equal: a database default is always deterministic, so strings are
    equal only when their bytes are, and the unique key keeps apart every pair of keys
    gearmand keeps apart. Nothing to choose: None."""
    collate = conn.exec_driver_sql(
        "SELECT datcollate FROM pg_database WHERE datname = current_database()"
    ).scalar_one()
    return None, (
        f"keys in the database's collation {collate!r} (deterministic: equal only when "
        "byte-identical, so no two distinct keys collide); priority and when_to_run as "
        "TEXT: the replay-safe layout (gearmand's own INTEGER one loses every priority "
        "and schedule at each restart)"
    )


def create_staging(
    conn: sa.Connection,
    store: object,
    staging: str,
    like: str | None,
    collation: str | None = None,
    temporary: bool = False,
) -> None:
    """The staging table: the target's own layout (LIKE, constraints included), or, for a
    new table, gearmand's DDL in the replay-safe layout."""
    create = "CREATE TEMPORARY TABLE" if temporary else "CREATE TABLE"
    if like is None:
        ddl = replay_safe_ddl(store.ddl(staging))  # type: ignore[attr-defined]
        conn.exec_driver_sql(create + ddl[len("CREATE TABLE") :])
    else:
        conn.exec_driver_sql(f"{create} {_quote(staging)} (LIKE {_quote(like)} INCLUDING ALL)")


def swap(conn: sa.Connection, target: str, staging: str, old: str | None) -> None:
    """Inside the caller's transaction: the old table is renamed to `old` (None: dropped),
    staging takes its name. Nothing is visible to another connection until the commit.

    Staging is analysed first (`_analyse`)."""
    _analyse(conn, staging, GROUPED_COLUMNS)
    if old is not None:
        conn.exec_driver_sql(f"ALTER TABLE {_quote(target)} RENAME TO {_quote(old)}")
    else:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_quote(target)}")
    conn.exec_driver_sql(f"ALTER TABLE {_quote(staging)} RENAME TO {_quote(target)}")
    _rename_constraints(conn, target, staging)


def _rename_constraints(conn: sa.Connection, target: str, staging: str) -> None:
    """The unique constraint LIKE copied is named after staging: give it the name gearmand's
    CREATE TABLE would (`<table>_unique_key_function_name_key`), when that one is free."""
    rows = conn.exec_driver_sql(
        "SELECT conname FROM pg_constraint WHERE conrelid = %(t)s::regclass AND contype = 'u'",
        {"t": _quote(target)},
    ).all()
    wanted = f"{target}_unique_key_function_name_key"[:63]
    for (name,) in rows:
        if name != wanted and name.startswith(staging[:20]):
            taken = conn.exec_driver_sql(
                "SELECT 1 FROM pg_class WHERE relname = %(n)s", {"n": wanted}
            ).first()
            if taken is None:
                conn.exec_driver_sql(
                    f"ALTER TABLE {_quote(target)} RENAME CONSTRAINT {_quote(name)} "
                    f"TO {_quote(wanted)}"
                )


def drop_table(conn: sa.Connection, name: str, temporary: bool = False) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {'pg_temp.' if temporary else ''}{_quote(name)}")


# `import` goes through a TEMP table: the spool is a SQLite file the server cannot read.
SPOOL_COPY = False


def delete_staged_conflicts(conn: sa.Connection, temp: str, table: str, on: str) -> int:
    return conn.exec_driver_sql(f"DELETE FROM {temp} AS t USING {table} AS q WHERE {on}").rowcount


def delete_replaced(conn: sa.Connection, temp: str, table: str, on: str) -> int:
    return conn.exec_driver_sql(f"DELETE FROM {table} AS q USING {temp} AS t WHERE {on}").rowcount


# `migrate --move`: the source locked against writers until the emptying commits.
MOVE_ISOLATION: str | None = None  # the lock below holds whatever the isolation level


def count_locked(conn: sa.Connection, table: str) -> int:
    """The rows of `table` (quoted), locked against writers for the transaction."""
    conn.exec_driver_sql(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
    return conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one()


def empty_locked(conn: sa.Connection, table: str) -> bool:
    """Whether `table` (quoted) is empty, locked against writers for the transaction."""
    conn.exec_driver_sql(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
    return conn.exec_driver_sql(f"SELECT 1 FROM {table} LIMIT 1").first() is None


def rolls_back(conn: sa.Connection, table_name: str) -> bool:
    """Every PostgreSQL table is transactional."""
    return True


def decode_text(raw_conn: object, lenient: bool) -> None:
    pass  # the server's encoding is UTF8: every text arrives as valid UTF-8


STREAM_CHUNK = 1000  # rows libpq holds at a time in chunked rows mode


def stream_cursor(raw_conn: object) -> object:
    """A cursor that streams the rows, memory flat, in binary: psycopg makes ints and
    bytes of the raw values, without parsing digits or a hex bytea (half the client's
    CPU for a whole table: 0.19 -> 0.10 s at 200k rows), the same objects (str, int,
    bytes).

    In libpq's chunked rows mode (psycopg 3.2 with libpq 17 or later) the server sends
    every row without waiting for a FETCH per batch, so it reads the next rows while
    we work on the last: a migration of 1M rows waited ~0.8 s on the server through a
    named cursor, ~0.3 s so. The connection runs nothing else until the rows are all
    read or the cursor is closed. Elsewhere a server-side (named) cursor."""
    import psycopg

    capabilities = getattr(psycopg, "capabilities", None)
    if capabilities is not None and capabilities.has_stream_chunked():
        return _ChunkedCursor(raw_conn.cursor(binary=True))  # type: ignore[attr-defined]
    return raw_conn.cursor(name="queuetool_stream", binary=True)  # type: ignore[attr-defined]


class _ChunkedCursor:
    """The DB-API calls a stream is read with (execute, fetchmany, close) over psycopg's
    `stream(size=...)`. Closing it before the end cancels the query and drains what
    was sent (psycopg does), so the connection can be used again."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.connection = cursor.connection
        self.rows: Iterator[tuple] | None = None

    def execute(self, sql: str, params: Any = None) -> None:
        self.rows = self.cursor.stream(sql, params, size=STREAM_CHUNK)

    def fetchmany(self, size: int) -> list[tuple]:
        assert self.rows is not None, "execute() first"
        return list(islice(self.rows, size))

    def close(self) -> None:
        rows, self.rows = self.rows, None
        if rows is not None:
            rows.close()  # type: ignore[attr-defined]  # a generator
        self.cursor.close()


# -- checksum on the server ----------------------------------------------------------------


def _lit(sql: str) -> sa.ColumnElement:
    return sa.literal_column(sql)


def _text_encoded(column: sa.ColumnElement, kind: str) -> sa.ColumnElement:
    """What checksum.encode_value() gives for a text ("s") or integer ("i") column, as
    TEXT (turned into bytes once per row, by the caller: one convert_to, not one each)."""
    if kind == "s":
        body = _lit("'s'").op("||")(sa.func.octet_length(column)).op("||")(_lit("':'"))
        body = body.op("||")(column)
    else:  # rendered as CAST(... AS BIGINT): both layouts give the integer's digits
        body = _lit("'i'").op("||")(column).op("||")(_lit("';'"))
    return sa.func.coalesce(body, _lit("'n'"))


def _message(table: sa.Table) -> sa.ColumnElement:
    """The bytes checksum.py hashes for a row, as BYTEA: the text columns concatenated
    as TEXT and converted once, the payload appended as it is."""
    c = table.c
    head = _text_encoded(c.unique_key, "s").op("||")(_text_encoded(c.function_name, "s"))
    head = head.op("||")(_text_encoded(c.priority, "i"))
    data = sa.func.coalesce(
        _lit("'b'::bytea")
        .op("||")(sa.func.convert_to(sa.func.length(c.data).op("||")(_lit("':'")), _lit("'UTF8'")))
        .op("||")(c.data),
        _lit("'n'::bytea"),
    )
    tail = sa.func.convert_to(_text_encoded(c.when_to_run, "i"), _lit("'UTF8'"))
    return sa.func.convert_to(head, _lit("'UTF8'")).op("||")(data).op("||")(tail)


def _checksum_query(
    table: sa.Table,
    where: sa.ColumnElement[bool] | sa.TextClause | None,
    last: sa.Label | None = None,
) -> sa.Select:
    """count, then the three sums server_checksum() adds up (and max(`last`) if given)."""
    # The digest as 128 bits, from its hex: one conversion, then three slices.
    digest = sa.cast(_lit("'x'").op("||")(sa.func.md5(_message(table))), BIT(128))
    columns: list[sa.ColumnElement] = [digest.label("b")]
    if last is not None:
        columns.append(last)
    inner = sa.select(*columns).select_from(table)
    if where is not None:
        inner = inner.where(where)
    # OFFSET 0 keeps the subquery a subquery: flattened, md5() would run once per part.
    digests = inner.offset(_lit("0")).subquery("digests")

    def part(start: int, length: int) -> sa.ColumnElement:
        bits = sa.func.substring(digests.c.b, _lit(str(start)), _lit(str(length)))
        return sa.func.sum(sa.cast(sa.cast(bits, BIT(length)), sa.BigInteger))

    parts = [sa.func.count(), part(1, 64), part(65, 32), part(97, 32)]
    if last is not None:
        parts.append(sa.func.max(digests.c[last.name]))
    return sa.select(*parts)


def server_checksum(
    conn: sa.Connection, table: sa.Table | str, where: sa.ColumnElement[bool] | None = None
) -> Checksum:
    """checksum.py's checksum of the table, computed by the server: no row is read here.

    Per row MD5 over the same type-tagged, length-prefixed encoding. The server sums the
    digest in three parts, its first 64 bits as a signed BIGINT and the other two 32-bit
    halves (sum(bigint) is exact), and Python puts them together modulo 2**128: the
    first part's sign only changes the total by a multiple of 2**128. Identical to
    reading every row and hashing it in Python, and about eight times faster than
    summing sixteen get_byte() values in NUMERIC (2.3 s -> 0.3 s at 100k rows).
    """
    from ..store import queue_table  # store imports this module

    if isinstance(table, str):
        table = queue_table(table)
    count, high, middle, low = conn.execute(_checksum_query(table, where)).one()
    total = (int(high or 0) << 64) + (int(middle or 0) << 32) + int(low or 0)
    return Checksum(int(count), total % MOD)


def stored_checksum(conn: sa.Connection, table: sa.Table) -> Checksum:
    """The checksum of the rows as they are in the table, computed by the server."""
    return server_checksum(conn, table)


# -- restore: the table or the rows replaced -------------------------------------------

UNDO_KEYS, UNDO_ROWS = "qt_undo_keys", "qt_undo_rows"


def replace_table(job: Restoring) -> Replaced:
    """restore: a staging table LIKE the queue table, filled and checked, swapped in,
    all in one transaction (PostgreSQL's DDL is transactional)."""
    store, snapshot_before = job.store, job.snapshot_before
    target = store.table_name
    with store.connect() as conn, conn.begin():
        store.require_table(conn)
        before = snapshot_before(conn)
        rows_before = before.rows if before is not None else store.count(conn)
        drop_table(conn, job.staging)
        create_staging(conn, store, job.staging, target)
        job.insert_rows(conn, job.staging)
        after = job.check(conn, job.staging)
        swap(conn, target, job.staging, None)
    return before, rows_before, after


def replace_rows(job: Restoring) -> Replaced:
    """restore of a rows snapshot: its keys and rows go into TEMPORARY tables LIKE the
    queue table, then the rows with those keys are replaced, in one transaction."""
    from ..store import COLUMNS as NAMES  # store imports this module

    store, keep_replaced = job.store, job.keep_replaced
    table = _quote(store.table_name)
    columns = ", ".join(
        f"CAST(q.{c} AS BIGINT) AS {c}" if c in REPLAY_COLUMNS else f"q.{c}" for c in NAMES
    )
    join = (
        f"FROM {UNDO_KEYS} AS k JOIN {table} AS q ON q.unique_key IS NOT DISTINCT FROM "
        "k.unique_key AND q.function_name IS NOT DISTINCT FROM k.function_name"
    )
    with store.connect() as conn, conn.begin():
        store.require_table(conn)
        for name in (UNDO_KEYS, UNDO_ROWS):
            conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} (LIKE {table}) ON COMMIT DROP")
        job.insert_rows(conn, UNDO_KEYS, keys=True)
        job.insert_rows(conn, UNDO_ROWS)
        with conn.exec_driver_sql(f"SELECT {columns} {join}") as current:
            before = keep_replaced(current)
        replaced = conn.exec_driver_sql(
            f"DELETE FROM {table} AS q USING {UNDO_KEYS} AS k WHERE q.unique_key IS NOT "
            "DISTINCT FROM k.unique_key AND q.function_name IS NOT DISTINCT FROM k.function_name"
        ).rowcount
        names = ", ".join(NAMES)
        conn.exec_driver_sql(f"INSERT INTO {table} ({names}) SELECT {names} FROM {UNDO_ROWS}")
        with conn.exec_driver_sql(f"SELECT {columns} {join}") as restored:
            after = job.check_rows(restored)
    return before, replaced, after
