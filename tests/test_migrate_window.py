"""migrate_queue as a library call: the source's running gearmand is stopped for the
copy (after one confirmation) and stays stopped; refused, nothing is stopped or written."""

from __future__ import annotations

import pytest
from conftest import make_sqlite_queue
from servers import JobSpec, priority_status, submit

from queuetool.errors import Aborted
from queuetool.migrate.copy import MigrateOptions
from queuetool.migrate.window import migrate_queue
from queuetool.table.store import open_store

JOBS = [JobSpec(f"fn{i % 2}", f"u{i}", bytes([65 + i]), priority=i % 3) for i in range(9)]


@pytest.fixture
def target_queue(tmp_path):
    workdir = tmp_path / "target"
    workdir.mkdir()
    return make_sqlite_queue(workdir)


def test_a_running_source_is_stopped_once_confirmed_and_stays_stopped(sqlite_queue, target_queue):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS)
    before = sqlite_queue.rows()
    asked, told = [], []
    src = open_store(sqlite_queue.url, sqlite_queue.table)
    dst = open_store(target_queue.url, target_queue.table)
    try:
        result = migrate_queue(
            src,
            dst,
            MigrateOptions(),
            address=daemon.address,
            confirm_window=asked.append,
            on_stopped=told.append,
            confirm=lambda plan: pytest.fail(f"asked twice: {plan}"),
        )
    finally:
        src.close()
        dst.close()
    assert len(asked) == 1 and asked[0]  # why it counted as running
    assert [s.pid for s in told] == [daemon.pid]
    assert not daemon.running()
    assert result.written == 9
    assert target_queue.rows() == before == sqlite_queue.rows()


def test_a_refused_window_stops_nothing_and_writes_nothing(sqlite_queue, target_queue):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS)
    counts = priority_status(daemon.port)

    def refuse(reasons):  # type: ignore[no-untyped-def]
        raise Aborted("not confirmed")

    src = open_store(sqlite_queue.url, sqlite_queue.table)
    dst = open_store(target_queue.url, target_queue.table)
    try:
        with pytest.raises(Aborted):
            migrate_queue(src, dst, MigrateOptions(), confirm_window=refuse)
    finally:
        src.close()
        dst.close()
    assert daemon.running() and priority_status(daemon.port) == counts
    assert target_queue.rows() == []
