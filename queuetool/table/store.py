"""The queue table and the database that holds it.

`QueueStore` names one gearmand queue table (a SQLAlchemy URL plus a table name),
opens its connection lazily, and checks that the table is laid out the way
gearmand's plugin creates it. Opening a store never changes the database: a SQLite
path that does not exist is an error, and no table is ever created by reading.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, NoSuchTableError

from ..config import DEFAULT_TABLE
from ..errors import ConnectError, SchemaError, UsageError
from .dialects import Dialect, dialect_for_url, url_examples

COLUMNS = ("unique_key", "function_name", "priority", "data", "when_to_run")
# GEARMAN_MAX_UNIQUE_SIZE is 64 with the terminating NUL: a 64-byte key is cut to 63
# and its job's payload gets a NUL in front after a restart (GEARMAND.md).
MAX_UNIQUE_BYTES = 63
MAX_FUNCTION_BYTES = 255  # MySQL's VARCHAR(255)
INT32_MAX = 2**31 - 1  # MySQL's and PostgreSQL's when_to_run: a signed 32-bit INT
# The widest integer any backend holds: SQLite's INTEGER, the BIGINT PostgreSQL's TEXT
# layout is cast to. A larger one from a job file overflows the driver, not the check.
INT64_MAX = 2**63 - 1
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,63}$")


def _sql_dir() -> Path:
    """gearmand's DDL files: in the installed package (pyproject.toml ships the top-level
    sql/ as queuetool/sql), else in the source tree (a checkout, an editable install)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "sql"
    return installed if installed.is_dir() else package.parent / "sql"


SQL_DIR = _sql_dir()


def queue_table(name: str = DEFAULT_TABLE, schema: str | None = None) -> sa.Table:
    """A Core `Table` for gearmand's queue layout (not reflected: the layout is fixed)."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("unique_key", sa.String),
        sa.Column("function_name", sa.String),
        sa.Column("priority", sa.Integer),
        sa.Column("data", sa.LargeBinary),
        sa.Column("when_to_run", sa.Integer),
        schema=schema,
    )


# `scheme://` and what follows it up to the next space or quote (a URL inside a message).
_URL_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^\s'\"]*)")
# A password given as a query parameter (PyMySQL takes `?password=`).
_PASSWORD_PARAM = re.compile(r"([?&](?:password|passwd)=)[^&]*", re.IGNORECASE)
ENCODE_HINT = "URL-encode any @ : / in the password (@ is %40, : is %3A, / is %2F)"


def mask_url(url: URL | str) -> str:
    """The URL as text with its password replaced by ***.

    Text, not SQLAlchemy's parse, decides: a password may hold `@`, `:` or `/`
    unencoded, and SQLAlchemy then takes its tail for the host (`u:p@ss@host` has
    host `ss@host`). So everything from the first `:` after the user to the LAST `@`
    of the URL is masked; when a later `@` belongs to the path or query, more is
    masked than needed, but never less."""
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    scheme, sep, rest = text.partition("://")
    return scheme + sep + _mask_rest(rest) if sep else text


def mask_text(message: str, bare_ports: bool = False) -> str:
    """A message (a driver's error) with the password of each URL in it masked; there a
    URL ends at a space or a quote. `bare_ports`: also the "port" of a URL without an @,
    for text that echoes what the operator typed (see _mask_bare_port)."""
    return _URL_IN_TEXT.sub(lambda m: m.group(1) + _mask_rest(m.group(2), bare_ports), message)


def _mask_rest(rest: str, bare_port: bool = False) -> str:
    """What follows `scheme://`, its password masked (none: a path, as sqlite:////x)."""
    rest = _PASSWORD_PARAM.sub(r"\1***", rest)
    at = rest.rfind("@")
    if rest.startswith("/"):
        return rest
    if at < 0:
        return _mask_bare_port(rest) if bare_port else rest
    user, colon, _ = rest[:at].partition(":")
    return f"{user}:***{rest[at:]}" if colon else rest


def _mask_bare_port(rest: str) -> str:
    """`USER:PASS` with the host forgotten reads as HOST:PORT: the part after the `:`
    may be a password, so it is masked (a real port too: more than needed, never less)."""
    m = re.match(r"(\[[^\]]*\]|[^:/?\[]*):([^/?)]*)", rest)  # ")": the URL in "(...)"
    if m is None or not m.group(2):
        return rest
    return rest[: m.start(2)] + "***" + rest[m.end(2) :]


def parse_queue_url(text: str) -> URL:
    """Parse and normalise a queue URL (the dialect's `normalise_url`).

    A password with an unencoded `@` is refused (SQLAlchemy would read part of it as
    the host or database, and connect to, or print, that)."""
    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        shown, fault = _url_fault(text)
        raise UsageError(f"not a database URL: {shown!r}{fault}") from exc
    dialect = _dialect(url)
    if "@" in (url.host or "") or (dialect.database_file(url) is None and text.count("@") > 1):
        # `u:p@ss@host` or `u:p@ss/x@host/db`: SQLAlchemy splits at the first @ and takes
        # the password's tail for the host or the database. A server URL has one @.
        raise UsageError(f"not a database URL: {mask_url(text)!r}; {ENCODE_HINT}")
    try:
        # As the connection will: the idna codec refuses `a..b` or a label over 63 bytes.
        (url.host or "").encode("idna")
    except UnicodeError:
        raise UsageError(f"not a database URL: {mask_url(text)!r}; invalid host") from None
    try:
        return dialect.normalise_url(url)
    except ValueError as exc:
        raise UsageError(f"not a database URL: {mask_url(text)!r}; {exc}") from None


def _url_fault(text: str) -> tuple[str, str]:
    """The URL as shown, and why SQLAlchemy could not read it as far as the text tells: a
    port that is not a number (after the URL's last @, where mask_url shows it too), else
    perhaps a password with an unencoded @ : or /. With no @ at all, `USER:PASS` reads as
    HOST:PORT: that "port" may be a password, so it is masked, never named."""
    scheme, _, rest = text.partition("://")
    after_at = rest.rpartition("@")[2]  # no part of a password
    host_port = re.split(r"[/?]", after_at, maxsplit=1)[0]
    port = host_port.rpartition("]")[2] if host_port.startswith("[") else host_port
    _, colon, port = port.partition(":")
    if colon and not port.isdigit():
        if "@" not in rest:
            shown = f"{scheme}://{_mask_rest(rest, bare_port=True)}"
            return shown, "; the part after ':' is not a port (USER:PASSWORD needs @HOST after it)"
        return mask_url(text), f"; the port {port!r} is not a number"
    return mask_url(text), f"; {ENCODE_HINT}" if "@" in text else ""


def _dialect(url: URL) -> Dialect:
    """The URL's dialect; never a guess: an unknown backend is a UsageError."""
    dialect = dialect_for_url(url)
    if dialect is None:
        raise UsageError(
            f"unsupported queue database {url.get_backend_name()!r} in {mask_url(url)}: "
            f"use {url_examples()}"
        )
    return dialect


class QueueStore:
    """One gearmand queue table. Connections open on first use; call `close()` when done."""

    def __init__(self, url: str | URL, table: str | None = None) -> None:
        self.url = parse_queue_url(url) if isinstance(url, str) else url
        self.dialect: Dialect = _dialect(self.url)
        table = table or self.dialect.DEFAULT_TABLE  # PostgreSQL's is `queue`
        if not _TABLE_NAME.match(table):
            raise UsageError(f"not a valid table name: {table!r}")
        self.table_name = table
        self.table = queue_table(table)
        self.backend = self.dialect.NAME
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"QueueStore({self.display_url!r}, table={self.table_name!r})"

    @property
    def display_url(self) -> str:
        return mask_url(self.url)

    @property
    def database_file(self) -> Path | None:
        """The file that holds the queue (SQLite), None for a server or in memory."""
        return self.dialect.database_file(self.url)

    @property
    def location(self) -> str:
        """Where the table lives, to tell queues apart (no user, no password): a SQLite
        file's resolved path, or a server's host:port/database."""
        return self.dialect.location(self.url)

    @property
    def file_id(self) -> str:
        """The database file's device:inode ('' for a server or a missing file): the same
        file by another path (a hard link, a bind mount) is the same queue."""
        path = self.database_file
        try:
            st = path.stat() if path is not None else None
        except OSError:
            return ""
        return f"{st.st_dev}:{st.st_ino}" if st is not None else ""

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = self.dialect.create_engine(self.url)
            except (NoSuchModuleError, ArgumentError) as exc:
                raise UsageError(f"cannot use {self.display_url}: {exc}") from exc
        return self._engine

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[Connection]:
        """A connection; a failure to connect becomes a one-line ConnectError.

        `read_only` promises that it will not write: on SQLite its transactions then
        take no write lock (see the dialect), so several can read side by side."""
        try:
            conn = self.engine.connect()
        except DBAPIError as exc:
            raise ConnectError(f"cannot open {self.display_url}: {db_message(exc)}") from exc
        except (TypeError, ValueError) as exc:  # a query option the driver does not take
            # (PyMySQL: an unknown one, or connect_timeout=abc; SQLite: timeout=abc)
            raise UsageError(f"cannot open {self.display_url}: {exc}") from exc
        with conn:
            if read_only:
                conn.execution_options(queuetool_read_only=True)
            yield conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction, committed on success, rolled back on error."""
        with self.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- layout ---------------------------------------------------------------

    def exists(self, conn: Connection) -> bool:
        """Whether the database would open a table by this name (SQLite: in any case)."""
        return sa.inspect(conn).has_table(self.table_name)

    def missing(self, conn: Connection) -> str | None:
        """Why the table cannot be used by this very name, or None when it can. SQLite
        opens `GEARMAN_QUEUE` as `gearman_queue`, but its catalogue, which reflection
        reads, holds the name as created: such a name counts as missing (and `exists`
        stays true, so that nothing creates the table again)."""
        inspector = sa.inspect(conn)
        message = f"table {self.table_name!r} does not exist in {self.display_url}"
        if not inspector.has_table(self.table_name):
            return message
        try:
            inspector.get_pk_constraint(self.table_name)
        except NoSuchTableError:
            other = [n for n in inspector.get_table_names() if n.lower() == self.table_name.lower()]
            return message + (f" (names are case-sensitive: {other[0]!r} is)" if other else "")
        return None

    def schema_problems(self, conn: Connection) -> list[str]:
        """What keeps gearmand from using this table; empty when the layout is right."""
        missing = self.missing(conn)
        return [missing] if missing is not None else self._layout_problems(conn)

    def _layout_problems(self, conn: Connection) -> list[str]:
        """What is wrong with the layout of the table, which is there."""
        inspector = sa.inspect(conn)
        problems = []
        columns = {c["name"].lower(): c for c in inspector.get_columns(self.table_name)}
        for name in COLUMNS:
            if name not in columns:
                problems.append(f"column {name!r} is missing")
                continue
            problem = self.dialect.column_type_problem(name, columns[name]["type"])
            if problem:
                problems.append(problem)
        if not self.has_unique_key(conn):
            problems.append("no primary or unique key on (unique_key, function_name)")
        return problems

    def has_unique_key(self, conn: Connection) -> bool:
        inspector = sa.inspect(conn)
        wanted = {"unique_key", "function_name"}
        pk = inspector.get_pk_constraint(self.table_name).get("constrained_columns") or []
        if {c.lower() for c in pk} == wanted:
            return True
        for unique in inspector.get_unique_constraints(self.table_name):
            if {c.lower() for c in unique["column_names"]} == wanted:
                return True
        for index in inspector.get_indexes(self.table_name):
            names = {str(c).lower() for c in index.get("column_names") or []}
            if index.get("unique") and names == wanted:
                return True
        return False

    def require_table(self, conn: Connection) -> None:
        """Raise SchemaError unless the table exists with gearmand's layout."""
        missing = self.missing(conn)
        if missing is not None:
            raise SchemaError(missing)  # it names the table and the database already
        problems = self._layout_problems(conn)
        if problems:
            raise SchemaError(
                f"{self.display_url} table {self.table_name!r}: " + "; ".join(problems)
            )

    def create_table(self, conn: Connection, name: str | None = None) -> None:
        """Create the table (or `name`) with gearmand's own DDL from sql/."""
        conn.exec_driver_sql(self.ddl(name or self.table_name))

    def ddl(self, name: str) -> str:
        text = (SQL_DIR / self.dialect.DDL_FILE).read_text()
        statement = "\n".join(
            line for line in text.splitlines() if not line.lstrip().startswith("--")
        ).strip()
        quoted = conn_quote(self.engine, name)
        return statement.format(table=quoted)

    def count(self, conn: Connection) -> int:
        return conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one()


def conn_quote(engine: Engine, name: str) -> str:
    """A table name quoted for raw SQL on this engine's backend."""
    return engine.dialect.identifier_preparer.quote_identifier(name)


def db_message(exc: DBAPIError) -> str:
    """The driver's own first line, without SQLAlchemy's statement dump."""
    orig = exc.orig
    if orig is not None and getattr(orig, "args", None):
        args = orig.args
        text = args[1] if len(args) > 1 and isinstance(args[0], int) else args[0]
        # A closed connection's message is empty (PyMySQL: (0, "")): say what it was.
        lines = str(text).strip().splitlines() or [type(orig).__name__]
        return lines[0] + _hint(orig, exc.statement)
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[0]


def _hint(orig: BaseException, statement: str | None) -> str:
    """What to do when PostgreSQL could not read a priority or when_to_run of the
    replay-safe TEXT layout as a number (a hand-edited row): reading it leniently on
    every query would cost each scan several times over."""
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in ("22P02", "22003") and statement and "AS BIGINT)" in statement:
        return (
            " (a job's priority or when_to_run is not an integer: `queuetool check` "
            "lists such jobs; gearmand's replay reads them as 0)"
        )
    return ""


def default_table(url: str | None) -> str:
    """The table gearmand's plugin uses for this queue URL when given none (`queue` on
    PostgreSQL, `gearman_queue` elsewhere); gearman_queue for no or an unusable URL."""
    if not url:
        return DEFAULT_TABLE
    try:
        return _dialect(parse_queue_url(url)).DEFAULT_TABLE
    except UsageError:
        return DEFAULT_TABLE


def open_store(url: str | None, table: str | None = None) -> QueueStore:
    """A store for the URL, or a UsageError saying how to name the queue."""
    if not url:
        raise UsageError(
            "no queue given: use --queue URL, QUEUETOOL_QUEUE, [queue] url in the config, "
            "or run on a host where gearmand is running"
        )
    return QueueStore(url, table or None)
