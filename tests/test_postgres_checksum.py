"""The PostgreSQL server computes exactly checksum.py's checksum
(dialects.postgresql.server_checksum), on gearmand's INTEGER layout and on the
replay-safe TEXT one: arbitrary rows go into a real table, and the server's value must
equal the Python value over the same rows read back through plain psycopg (priority
and when_to_run as integers, as queuetool reads both layouts)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import postgres_ddl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from queuetool.table.checksum import Checksum, table_checksum
from queuetool.table.dialects.postgresql import server_checksum
from queuetool.table.store import QueueStore

INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
# Any character PostgreSQL's UTF8 text stores: no NUL, no lone surrogates.
TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


def rows() -> st.SearchStrategy[list[tuple]]:
    row = st.tuples(
        st.none() | st.text(TEXT_CHARS, max_size=64),
        st.none() | st.text(TEXT_CHARS, max_size=255),
        st.none() | INT32,
        st.none() | st.binary(max_size=300),
        st.none() | INT32,
    )
    return st.lists(row, max_size=12)


EDGES = [
    ("café", "fñ", 0, b"\x00caf\xc3\xa9\xff", 0),
    ("", "", -(2**31), b"", 2**31 - 1),
    (None, None, None, None, None),
    ("€\x81 trailing  ", "back\\slash'quote", 2, b"\\0'\"", -1),
    ("🂡" * 64, "x" * 255, 1, bytes(range(256)), 1),
]


@pytest.fixture(params=["integer", "text"])
def layout_queue(request, postgres_queue):
    """gearmand's table in one of the two layouts, emptied per example."""
    table = f"queue_{request.param}"
    postgres_queue.sql(postgres_ddl(table, replay_safe=request.param == "text"))
    store = QueueStore(postgres_queue.url, table)
    try:
        yield postgres_queue, store
    finally:
        store.close()


def fill(queue, table: str, generated: list[tuple]) -> list[tuple]:
    """Insert the rows (a repeated key is dropped) and return what the table holds."""
    queue.sql(f'DELETE FROM "{table}"')
    with queue.postgres.connect(queue.database) as conn, conn.cursor() as cur:
        cur.executemany(
            f'INSERT INTO "{table}" VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING', generated
        )
    got = queue.sql(
        "SELECT unique_key, function_name, priority::bigint, data, when_to_run::bigint "
        f'FROM "{table}"'
    )
    return [(u, f, p, bytes(d) if d is not None else None, w) for u, f, p, d, w in got]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
@example(data=None)
def test_server_checksum_equals_python_checksum(layout_queue, data):
    queue, store = layout_queue
    generated = EDGES if data is None else data.draw(rows())
    stored = fill(queue, store.table_name, generated)
    expected = Checksum().update(stored)
    with store.connect() as conn:
        on_server = server_checksum(conn, store.table_name)
        through_driver = table_checksum(conn, store.table)
        high = server_checksum(conn, store.table, store.table.c.priority == 0)
        none = server_checksum(conn, store.table, sa.false())
    assert (on_server.rows, on_server.hex) == (expected.rows, expected.hex)
    assert on_server == through_driver
    assert high == Checksum().update(r for r in stored if r[2] == 0)
    assert none == Checksum()
    if data is None:  # the edge rows all arrive, and as they were written
        assert sorted(map(repr, stored)) == sorted(map(repr, generated))
