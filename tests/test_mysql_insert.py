"""migrate's multi-row INSERTs into MySQL are the very bytes PyMySQL's executemany sends.

dialects.mysql.insert_statements builds them itself (it is twice as fast); these
properties hold it to the driver's own escaping, with and without the server's
NO_BACKSLASH_ESCAPES, and to the statement-size limit.
"""

from __future__ import annotations

import pymysql
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymysql.constants.SERVER_STATUS import SERVER_STATUS_NO_BACKSLASH_ESCAPES

from queuetool.table.dialects.mysql import COLUMNS, insert_statements

TABLE = "`gearman_queue__qt_staging`"
PREFIX = f"INSERT INTO {TABLE} ({COLUMNS}) VALUES "
INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=70)
CARRIED = st.tuples(TEXT, TEXT, st.integers(0, 2), st.binary(max_size=300), INT32)
# Rows carry.py never hands over still go through the driver's escaping.
ODD = st.tuples(st.none() | TEXT, TEXT, st.none() | INT32, st.none() | st.binary(), st.none())


def offline_connection(no_backslash_escapes: bool) -> pymysql.connections.Connection:
    conn = pymysql.connections.Connection(defer_connect=True, charset="utf8mb4")
    conn.server_status = SERVER_STATUS_NO_BACKSLASH_ESCAPES if no_backslash_escapes else 0
    return conn


def driver_statement(conn: pymysql.connections.Connection, rows: list[tuple]) -> bytes:
    """What `cursor.executemany(INSERT ... VALUES (%s, ...), rows)` sends, as one statement."""
    cursor = conn.cursor()
    values = "(%s, %s, %s, %s, %s)"
    return PREFIX.encode() + b",".join(cursor.mogrify(values, r).encode("utf8") for r in rows)


@pytest.mark.parametrize("no_backslash_escapes", [False, True])
@settings(max_examples=150, deadline=None)
@given(rows=st.lists(CARRIED | ODD, min_size=1, max_size=20))
def test_statements_are_what_the_driver_sends(no_backslash_escapes, rows):
    conn = offline_connection(no_backslash_escapes)
    assert insert_statements(conn, TABLE, rows, 2**24) == [driver_statement(conn, rows)]


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(CARRIED, min_size=1, max_size=30), limit=st.integers(200, 5000))
def test_statements_stay_under_the_limit_and_keep_every_row(rows, limit):
    conn = offline_connection(False)
    statements = insert_statements(conn, TABLE, rows, limit)
    one_row = [insert_statements(conn, TABLE, [r], 2**24)[0] for r in rows]
    for statement in statements:
        # A single row longer than the limit goes alone (the server then refuses it).
        assert len(statement) <= limit or statement in one_row
    values = b",".join(s[len(PREFIX) :] for s in statements)
    assert values == b",".join(s[len(PREFIX) :] for s in one_row)


def test_backslashes_quotes_and_nul_bytes():
    conn = offline_connection(False)
    row = ("a\\b'c\x00", "fñ\n", 0, b"\x00'\\", -1)
    (statement,) = insert_statements(conn, TABLE, [row], 2**24)
    assert statement == PREFIX.encode() + "('a\\\\b\\'c\\0', 'fñ\\n', 0, X'00275c', -1)".encode()
