"""The MySQL server computes exactly checksum.py's checksum (dialects.mysql.server_checksum).

Arbitrary rows go into gearmand's table in a real MariaDB, in the latin1 gearmand gets
from a default server and in utf8mb4; the server's value must equal the Python value
over the same rows read back through the plain driver, NULLs, empty and binary
payloads, non-ASCII keys and extreme integers included.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import mysql_ddl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from queuetool.migrate.carry import fits_charset
from queuetool.table.checksum import Checksum, row_hash, table_checksum
from queuetool.table.dialects.mysql import server_checksum
from queuetool.table.store import QueueStore, queue_table

INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
# Any character MySQL's utf8mb4 stores, astral planes included (no lone surrogates).
TEXT_CHARS = st.characters(blacklist_categories=("Cs",))


def text(charset: str, max_size: int) -> st.SearchStrategy[str | None]:
    chars = st.text(TEXT_CHARS, max_size=max_size).filter(lambda s: fits_charset(s, charset))
    return st.none() | chars


def rows(charset: str) -> st.SearchStrategy[list[tuple]]:
    row = st.tuples(
        text(charset, 64),
        text(charset, 255),
        st.none() | INT32,
        st.none() | st.binary(max_size=300),
        st.none() | INT32,
    )
    return st.lists(row, max_size=12)


@pytest.fixture(params=["latin1", "utf8mb4"])
def charset_queue(request, mysql_queue):
    """gearmand's table in `charset` (a fresh MariaDB makes it latin1), emptied per example."""
    charset = request.param
    table = f"gearman_queue_{charset}"
    ddl = mysql_ddl(table) + f" DEFAULT CHARSET={charset}"
    mysql_queue.sql(ddl)
    store = QueueStore(mysql_queue.url, table)
    try:
        yield charset, mysql_queue, store
    finally:
        store.close()


def fill(queue, table: str, generated: list[tuple]) -> list[tuple]:
    """Insert the rows (a key the collation calls equal to an earlier one is dropped) and
    return what the table holds, read by the plain driver."""
    queue.sql(f"DELETE FROM `{table}`")
    with queue.mysql.connect(queue.database) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT IGNORE INTO `{table}` VALUES (%s, %s, %s, %s, %s)", generated)
    return queue.sql(f"SELECT unique_key, function_name, priority, data, when_to_run FROM {table}")


EDGES = [
    ("café", "fñ", 0, b"\x00caf\xc3\xa9\xff", 0),
    ("", "", -(2**31), b"", 2**31 - 1),
    (None, None, None, None, None),
    ("€\x81 trailing  ", "back\\slash'quote", 2, b"\\0'\"", -1),
]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
@example(data=None)
def test_server_checksum_equals_python_checksum(charset_queue, data):
    charset, queue, store = charset_queue
    generated = EDGES if data is None else data.draw(rows(charset))
    if data is None and charset == "latin1":
        assert all(fits_charset(r[0] or "", "latin1") for r in generated)
    stored = fill(queue, store.table_name, generated)
    expected = Checksum().update(stored)
    with store.connect() as conn:
        on_server = server_checksum(conn, store.table_name)
        through_driver = table_checksum(conn, store.table)
        high = server_checksum(conn, store.table, store.table.c.priority == 0)
    assert (on_server.rows, on_server.hex) == (expected.rows, expected.hex)
    assert on_server == through_driver
    wanted = Checksum().update(r for r in stored if r[2] == 0)
    assert high == wanted
    if data is None:  # the edge rows all arrive, and as they were written
        assert sorted(map(repr, stored)) == sorted(map(repr, generated))


def test_empty_table_and_where_nothing(charset_queue):
    _, queue, store = charset_queue
    queue.sql(f"DELETE FROM `{store.table_name}`")
    with store.connect() as conn:
        assert server_checksum(conn, store.table_name) == Checksum()
        fill(queue, store.table_name, EDGES[:1])
        none = server_checksum(conn, queue_table(store.table_name), sa.false())
    assert none == Checksum()


def test_row_hash_is_md5_of_the_encoding():
    """The row hash is the MD5 the server computes, over the documented encoding."""
    import hashlib

    row = ("café", "fñ", 1, b"\x00", None)
    message = b"s5:caf\xc3\xa9s3:f\xc3\xb1i1;b1:\x00n"
    assert row_hash(row) == int.from_bytes(hashlib.md5(message).digest(), "big")
    assert row_hash(list(row)) == row_hash(row)
