"""prepare_edits as a library call: what an edit would change, or that it can be
counted only after a --store-queue-on-shutdown daemon has stopped."""

from __future__ import annotations

import pytest
from servers import JobSpec, priority_status, submit

from queuetool.changes.kinds import Reprioritise, Reschedule
from queuetool.changes.prepare import held_counts, prepare_edits, replayed_rows
from queuetool.errors import UsageError
from queuetool.priority import Priority
from queuetool.table.filters import JobFilter
from queuetool.table.store import open_store

JOBS = [JobSpec(f"fn{i % 2}", f"u{i}", bytes([65 + i]), priority=1) for i in range(6)]


@pytest.fixture
def store(sqlite_queue):
    store = open_store(sqlite_queue.url, sqlite_queue.table)
    yield store
    store.close()


def test_a_request_counts_each_edit_and_says_why_nothing_would_change(sqlite_queue, store):
    sqlite_queue.insert([(f"u{i}", "fn", 1 if i < 3 else 0, b"x", 0) for i in range(5)])
    high = Reprioritise(JobFilter(functions=("fn",)), Priority.HIGH)
    request = prepare_edits(store, [high])
    assert not request.counted_after_stop and request.holder is None
    assert request.matched == 3
    assert request.describe() == "reprioritise (function fn) to high: 3 jobs (2 already at high)"
    assert request.nothing_to_change() is None
    settled = prepare_edits(store, [Reprioritise(JobFilter(uniques=("u4",)), Priority.HIGH)])
    assert settled.nothing_to_change() == "no jobs to change: 1 already at high (unique u4)"
    none = prepare_edits(store, [Reprioritise(JobFilter(functions=("nope",)), Priority.LOW)])
    assert none.nothing_to_change() == "no jobs match (function nope)"
    assert sqlite_queue.rows()[0][2] == 1  # nothing written
    assert replayed_rows(store) == 5


def test_a_held_queue_is_counted_only_after_the_stop(sqlite_queue, store):
    daemon = sqlite_queue.gearmand("--store-queue-on-shutdown")
    submit(daemon.port, JOBS)
    edit = Reprioritise(JobFilter(functions=("fn0",)), Priority.HIGH)
    request = prepare_edits(store, [edit])
    assert request.counted_after_stop and request.holder.pid == daemon.pid
    assert request.nothing_to_change() is None
    assert request.describe() == "reprioritise (function fn0) to high (counted after the stop)"
    # A bad request is refused before anything could stop the daemon.
    with pytest.raises(UsageError, match="before 1970"):
        prepare_edits(store, [Reschedule(JobFilter(functions=("fn0",)), -5)])
    [(seen, held)] = list(held_counts(store, [edit], request.holder))
    assert seen is edit and held.total == 3
    assert (
        replayed_rows(store, request.holder) == 6
    )  # the daemon's count: the table is not its queue
    assert daemon.running() and priority_status(daemon.port) == {
        "fn0": (0, 3, 0),
        "fn1": (0, 3, 0),
    }


def test_a_restore_request_knows_whose_queue_a_snapshot_is_of(sqlite_queue, store, tmp_path):
    from conftest import make_sqlite_queue

    from queuetool.changes.prepare import prepare_restore, restore_dry_run
    from queuetool.changes.snapshot import take

    sqlite_queue.insert([(f"u{i}", "fn", 1, b"x", 0) for i in range(4)])
    info = take(store, tmp_path / "snaps", out=tmp_path / "whole.qtsnap")
    own = prepare_restore(store, info.path)
    assert own.same_queue and own.origin == ""
    sqlite_queue.insert([("u9", "fn", 1, b"x", 0)])
    checked, current = restore_dry_run(store, own)
    assert checked.ok and current == 5
    assert own.replaced(current) == "the 5 rows"

    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = make_sqlite_queue(other_dir)
    other_store = open_store(other.url, other.table)
    try:
        with pytest.raises(UsageError, match="--onto-other-queue"):
            prepare_restore(other_store, info)
        onto = prepare_restore(other_store, info, onto_other_queue=True)
    finally:
        other_store.close()
    assert not onto.same_queue
    assert onto.origin == f" of {info.source} table {info.table}"
    assert other.rows() == []  # nothing written
