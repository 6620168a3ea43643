"""The submission time of a UUIDv1 key, computed in SQL on SQLite and MySQL, against
Python's uuid module: the same seconds for every UUIDv1, NULL for every other key."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queuetool.table.filters import JobFilter
from queuetool.table.store import QueueStore

OFFSET = 0x01B21DD213814000  # 100 ns ticks from 1582-10-15 to 1970-01-01


def expected(key: str) -> int | None:
    """What the key says, by Python's uuid module (None: not a UUIDv1 as libgearman writes)."""
    try:
        u = uuid.UUID(key)
    except ValueError:
        return None
    if str(u) != key.lower() or u.version != 1 or u.variant != uuid.RFC_4122:
        return None
    return (u.time - OFFSET) // 10**7  # floor, also before 1970


def _uuid1(ticks: int, seq: int, node: int, upper: bool) -> str:
    fields = (
        ticks & 0xFFFFFFFF,
        (ticks >> 32) & 0xFFFF,
        (ticks >> 48) | 0x1000,  # the version digit
        0x80 | (seq >> 8),  # the RFC 4122 variant
        seq & 0xFF,
        node,
    )
    key = str(uuid.UUID(fields=fields))
    return key.upper() if upper else key


uuid1s = st.builds(
    _uuid1,
    st.integers(0, 2**60 - 1),
    st.integers(0, 2**14 - 1),
    st.integers(0, 2**48 - 1),
    st.booleans(),
)


def _mutate(key: str, index: int, char: str) -> str:
    return key[:index] + char + key[index + 1 :]


near_misses = st.builds(
    lambda key, i, c: _mutate(key, i % len(key), c),
    uuid1s,
    st.integers(0, 35),
    st.sampled_from("0123456789abcdefg-x4 7c"),
)
others = st.one_of(
    st.builds(lambda: str(uuid.uuid4())),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    uuid1s.map(lambda k: k + "0"),
    uuid1s.map(lambda k: k[:-1]),
)
keys = st.lists(st.one_of(uuid1s, near_misses, others), min_size=1, max_size=12, unique=True)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batch=keys)
def test_uuid1_epoch_matches_pythons_uuid_module(queue, batch):
    queue.sql(f"DELETE FROM {queue.table}")
    queue.insert([(k, "f", 1, b"x", 0) for k in batch])
    store = QueueStore(queue.url, queue.table)
    try:
        t = store.table
        query = sa.select(t.c.unique_key, store.dialect.uuid1_epoch(t.c.unique_key))
        with store.connect(read_only=True) as conn:
            got = dict(conn.execute(query).all())
        assert got == {k: expected(k) for k in batch}
    finally:
        store.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batch=keys, bounds=st.tuples(st.integers(-(2**34), 2**34), st.integers(1, 2**34)))
def test_submitted_filter_selects_exactly_the_uuid1_keys_in_range(queue, batch, bounds):
    after, width = bounds
    queue.sql(f"DELETE FROM {queue.table}")
    queue.insert([(k, "f", 1, b"x", 0) for k in batch])
    store = QueueStore(queue.url, queue.table)
    try:
        job_filter = JobFilter(submitted_after=after, submitted_before=after + width)
        t = store.table
        with store.connect(read_only=True) as conn:
            got = set(
                conn.execute(
                    sa.select(t.c.unique_key).where(job_filter.where(t, store.dialect))
                ).scalars()
            )
        want = {k for k in batch if (e := expected(k)) is not None and after <= e < after + width}
        assert got == want
    finally:
        store.close()


def test_a_libgearman_key_reads_as_its_time(queue):
    """The example key of GEARMAND.md: 2022-05-16, the '1' of 11ec."""
    key = "b46a91a2-d4fd-11ec-a3bd-fa86f9a96738"
    queue.insert([(key, "f", 1, b"x", 0), ("not-a-uuid", "f", 1, b"x", 0)])
    store = QueueStore(queue.url, queue.table)
    try:
        t = store.table
        with store.connect(read_only=True) as conn:
            got = dict(
                conn.execute(
                    sa.select(t.c.unique_key, store.dialect.uuid1_epoch(t.c.unique_key))
                ).all()
            )
    finally:
        store.close()
    assert got == {key: expected(key), "not-a-uuid": None}
    assert got[key] == 1652694666  # 2022-05-16T09:51:06Z


pytestmark = pytest.mark.mysql
