"""The status model as a library call (no command line), against a real gearmand."""

from __future__ import annotations

from servers import JobSpec, holding_worker, priority_status, submit

from queuetool.daemon.status import PriorityDifference, status
from queuetool.table.store import open_store

JOBS = [JobSpec(f"fn{i % 2}", f"u{i}", bytes([65 + i]), priority=1) for i in range(12)]


def test_status_sets_the_daemon_beside_the_table(queue):
    daemon = queue.gearmand()
    submit(daemon.port, JOBS)
    queue.sql("UPDATE gearman_queue SET priority = 0 WHERE function_name = 'fn1'")
    assert priority_status(daemon.port) == {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}
    store = open_store(queue.url, queue.table)
    try:
        with holding_worker(daemon.port, "fn0"):
            result = status(store, daemon.address)
    finally:
        store.close()
    assert result.daemon.up and result.daemon.pid == daemon.pid
    assert result.daemon.version.startswith("1.")
    assert result.address == daemon.address
    assert [(f.function, f.daemon_queued, f.running, f.table_rows) for f in result.functions] == [
        ("fn0", 6, 1, 6),
        ("fn1", 6, 0, 6),
    ]
    assert result.functions[0].priority_differences == []  # the held job is no difference
    assert result.functions[1].difference == 0  # equal totals...
    assert result.functions[1].priority_differences == [
        PriorityDifference("high", 6, 0),
        PriorityDifference("normal", 0, 6),
    ]
    assert result.differs and not result.held_in_memory


def test_status_of_a_stopped_daemon_is_down_with_the_reason(sqlite_queue):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS[:3])
    address = daemon.address
    daemon.stop()
    store = open_store(sqlite_queue.url, sqlite_queue.table)
    try:
        result = status(store, address)
    finally:
        store.close()
    assert not result.daemon.up and result.daemon.error
    assert result.daemon.as_dict() == {"up": False, "pid": None, "error": result.daemon.error}
    assert {f.function: (f.table_rows, f.difference) for f in result.functions} == {
        "fn0": (2, 0),
        "fn1": (1, 0),
    }
    assert not result.differs
