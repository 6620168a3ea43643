"""The MySQL/MariaDB queue (gearmand's MySQL plugin), through PyMySQL."""

from __future__ import annotations

import fnmatch

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

DDL_FILE = "mysql.sql"


def create_engine(url: URL) -> Engine:
    # pool_pre_ping: maintenance windows are long; a server may drop idle connections.
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


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
    """MySQL enforces column types; the replay reads NULL priority as 0 (HIGH!)."""
    return {
        "unique_key_type": table.c.unique_key.is_(None),
        "function_name_type": table.c.function_name.is_(None),
        "priority_type": table.c.priority.is_(None),
        "data_type": table.c.data.is_(None),
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


def glob_match(column: sa.ColumnElement, pattern: str) -> sa.ColumnElement[bool]:
    """Shell-style and case-sensitive, like gearmand's function names."""
    # fnmatch gives '(?s:...)\\Z'; PCRE reads the same syntax, but its \\Z allows a
    # trailing newline, so anchor with \\z (absolute end) instead.
    regex = "^" + fnmatch.translate(pattern)[: -len("\\Z")] + "\\z"
    return text_key(column).op("REGEXP")(regex)


def int_div(left: sa.ColumnElement[int], right: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """Integer division, truncating: MySQL's `/` is DECIMAL with 4 places, which rounds
    (N-1)/N up to 1 for large N; DIV is exact."""
    return sa.type_coerce(left.op("DIV")(right), sa.Integer)


def unflattened(query: sa.Select) -> sa.Select:
    """MySQL aggregates in a temporary table; nothing to keep apart."""
    return query
