"""`report` against a model written plainly in Python, on every backend.

report reads everything in one GROUP BY: a filter selects inside the aggregates (the
blocking rule needs the jobs it leaves out), and the oldest submission time is a
string MIN proven afterwards (table/uuid1.py). Random queues and filters here, with
keys that are UUIDv1s, near misses and other text, must give exactly what the model
computes row by row.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_uuid1_sql import expected, near_misses, others, uuid1s

from queuetool.priority import Priority
from queuetool.table.blocked import blocked_lists
from queuetool.table.filters import JobFilter
from queuetool.table.report import report
from queuetool.table.store import QueueStore

NOW = 1_800_000_000
WHENS = (0, NOW - 5, NOW, NOW + 60, NOW + 3600)

rows = st.lists(
    st.tuples(
        st.one_of(uuid1s, near_misses, others),
        st.sampled_from(["f", "g"]),
        st.sampled_from([0, 1, 2]),
        st.binary(max_size=6),
        st.sampled_from(WHENS),
    ),
    min_size=1,
    max_size=14,
    unique_by=lambda r: r[0],
)
filters = st.one_of(
    st.none(),
    st.builds(lambda f: JobFilter(functions=(f,)), st.sampled_from(["f", "g"])),
    st.builds(lambda p: JobFilter(priorities=(Priority(p),)), st.sampled_from([0, 1, 2])),
    st.builds(lambda s: JobFilter(scheduled=s, now=NOW), st.booleans()),
)


def model(batch: list, job_filter: JobFilter | None) -> dict:
    """(function, priority) -> (count, scheduled, bytes, blocked, until, oldest age)."""

    def selected(row: tuple) -> bool:
        _k, f, p, _d, w = row
        if job_filter is None:
            return True
        if job_filter.functions:
            return f in job_filter.functions
        if job_filter.priorities:
            return p in job_filter.priorities
        return (w > NOW) == job_filter.scheduled

    lists: dict[tuple, list] = {}
    for row in batch:
        lists.setdefault((row[1], row[2]), []).append(row)
    out = {}
    for (f, p), own in lists.items():
        chosen = [r for r in own if selected(r)]
        if not chosen:
            continue
        top = min(q for g, q in lists if g == f)
        due = [r for r in chosen if r[4] <= NOW]
        top_due = any(r[4] <= NOW for r in lists[(f, top)])
        blocked = len(due) if p > top and not top_due else 0
        above = [r[4] for (g, q), rs in lists.items() if g == f and q < p for r in rs]
        times = [t for r in chosen if (t := expected(r[0])) is not None]
        out[(f, p)] = (
            len(chosen),
            sum(r[4] > NOW for r in chosen),
            sum(len(r[3]) for r in chosen),
            blocked,
            max(above) if blocked else None,
            NOW - min(times) if times else None,
        )
    return out


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=rows, job_filter=filters)
def test_report_equals_the_model(queue, batch, job_filter):
    queue.sql(f"DELETE FROM {queue.table}")
    queue.insert(batch)
    store = QueueStore(queue.url, queue.table)
    try:
        rep = report(store, job_filter, now=NOW)
    finally:
        store.close()
    got = {
        (g.function, int(g.priority)): (
            g.count,
            g.scheduled,
            g.bytes,
            g.blocked,
            g.blocked_until,
            g.oldest_age_seconds,
        )
        for g in rep.groups
    }
    assert got == model(batch, job_filter)


def test_a_key_that_sorts_first_but_is_no_uuid1_does_not_hide_the_oldest(queue):
    """'0000000-...' is shaped like a UUIDv1 and sorts below every real one, so the
    least order key proves nothing: report must find the real oldest anyway."""
    real = str(uuid.UUID(fields=(0x12345678, 0x9ABC, 0x11DE, 0x80, 0x01, 1)))
    lie = "0000000g-0000-1000-8000-000000000000"
    queue.insert([(real, "f", 1, b"x", 0), (lie, "f", 1, b"y", 0)])
    store = QueueStore(queue.url, queue.table)
    try:
        (group,) = report(store, now=NOW).groups
    finally:
        store.close()
    assert group.oldest_age_seconds == NOW - expected(real)


pytestmark = pytest.mark.mysql


@pytest.mark.parametrize(
    "odd",
    [
        ("odd", "g", 0, b"x", ""),  # a when_to_run of another storage class
        ("odd", "g", 0.5, b"x", 0),  # a priority that is no integer
        ("odd", "g", "0_1", b"x", 0),  # int() would read 1
        ("odd", "f", 0.5, b"x", NOW + 60),  # beside f's own lists
    ],
)
def test_rows_check_flags_do_not_break_report_nor_the_blocking_rule(sqlite_queue, odd):
    sqlite_queue.insert([("top", "f", 0, b"x", NOW + 60), ("low", "f", 1, b"x", 0), odd])
    store = QueueStore(sqlite_queue.url)
    try:
        rep = report(store, now=NOW)
        with store.connect(read_only=True) as conn:
            lists = blocked_lists(conn, store.table, NOW)
    finally:
        store.close()
    # f's HIGH list holds only a scheduled job: the due NORMAL job waits behind it; the
    # odd row is counted in its own group, and blocks and is blocked by nothing.
    assert [(b.function, b.priority, b.blocked) for b in lists] == [("f", 1, 1)]
    cells = {(g.priority, g.count): g.blocked for g in rep.groups}
    assert cells[(1, 1)] == 1
    assert sum(cells.values()) == 1  # nothing else counted blocked, the odd row included
