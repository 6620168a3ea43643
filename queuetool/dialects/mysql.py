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
    return sa.cast(converted, sa.LargeBinary).in_(
        [n.encode("utf-8", "surrogateescape") for n in names]
    )


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


# -- migration: staging table, bulk writes, atomic swap ---------------------------------

INSERT_ROWS = (
    "INSERT INTO {table} (unique_key, function_name, priority, data, when_to_run) "
    "VALUES (%s, %s, %s, %s, %s)"
)


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


def create_staging(conn: sa.Connection, store: object, staging: str, like: str | None) -> None:
    """The staging table: exactly the target's layout and charset (LIKE), or gearmand's DDL."""
    if like is None:
        store.create_table(conn, staging)  # type: ignore[attr-defined]
    else:
        conn.exec_driver_sql(f"CREATE TABLE `{staging}` LIKE `{like}`")


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


def default_charset(conn: sa.Connection) -> str:
    """The charset a table gearmand creates in this database would get."""
    return str(conn.exec_driver_sql("SELECT @@character_set_database").scalar_one())


def swap(conn: sa.Connection, target: str, staging: str, old: str | None) -> None:
    """Put staging in the target's place in one atomic RENAME TABLE; the old table becomes
    `old` (None: there is no target yet). The caller drops `old` unless it keeps it."""
    if old is None:
        conn.exec_driver_sql(f"RENAME TABLE `{staging}` TO `{target}`")
    else:
        conn.exec_driver_sql(f"RENAME TABLE `{target}` TO `{old}`, `{staging}` TO `{target}`")


def drop_table(conn: sa.Connection, name: str) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{name}`")


def repairable(table: sa.Table) -> sa.ColumnElement[bool]:
    """MySQL enforces the column types and replays NULL data and when_to_run fine."""
    return sa.false()


def repaired_values(table: sa.Table) -> dict[str, sa.ColumnElement]:
    return {}
