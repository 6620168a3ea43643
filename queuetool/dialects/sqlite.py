"""The SQLite queue (gearmand's libsqlite3 plugin)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

DDL_FILE = "sqlite.sql"

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
        conn.exec_driver_sql("BEGIN IMMEDIATE")

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


def glob_match(column: sa.ColumnElement, pattern: str) -> sa.ColumnElement[bool]:
    """SQLite's GLOB is shell-style and case-sensitive; it negates a class with ^, not !."""
    return column.op("GLOB")(_sqlite_glob(pattern))


def _sqlite_glob(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "[":
            end = _class_end(pattern, i)
            if end < 0:
                out.append("[[]")  # a lone '[' is a literal, as in fnmatch
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body + "]")
                i = end
        else:
            out.append(char)
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


def int_div(left: sa.ColumnElement[int], right: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """Integer division, truncating: SQLite's `/` on two INTEGERs already is."""
    return sa.type_coerce(left.op("/")(right), sa.Integer)
