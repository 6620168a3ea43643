"""The touched-rows undo snapshot an edit takes, and restoring it, on both backends.

An edit's snapshot holds only the rows its batch matches; restoring it must give the
whole table back exactly, and leave rows outside its keys as they are then."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queuetool.changes import snapshot
from queuetool.changes.apply import apply_edits
from queuetool.changes.kinds import Purge, Repair, Reprioritise, Reschedule
from queuetool.changes.restore import restore
from queuetool.errors import VerifyError
from queuetool.priority import Priority
from queuetool.table.filters import JobFilter
from queuetool.table.store import QueueStore

ROWS = [
    (f"job-{i:02d}", f"fn{i % 4}", i % 3, bytes([i, 0]) * (i % 3), 1000 * (i % 2))
    for i in range(40)
]


@pytest.fixture
def store(queue):
    s = QueueStore(queue.url, queue.table)
    yield s
    s.close()


def test_a_chained_batch_is_undone_exactly(queue, store, tmp_path):
    """The second edit matches rows only because the first changed them."""
    queue.insert(ROWS)
    edits = [
        Reprioritise(JobFilter(functions=("fn1",)), Priority.HIGH),
        Purge(JobFilter(priorities=(Priority.HIGH,))),
        Reschedule(JobFilter(functions=("fn2",)), at=2_000_000_000),
    ]
    result = apply_edits(store, edits, tmp_path, guard=False)
    assert not [r for r in queue.rows() if r[1] == "fn1" or r[2] == 0]
    # fn1, every HIGH row before the edit, and fn2.
    touched = [r for r in ROWS if r[1] in ("fn1", "fn2") or r[2] == 0]
    assert result.snapshot.partial and result.snapshot.rows == len(touched) < len(ROWS)
    back = restore(store, result.snapshot.path, tmp_path, guard=False)
    assert queue.rows() == sorted(ROWS)
    assert back.rows == len(touched) and back.before.keys == len(touched)


def test_rows_outside_the_keys_are_left_alone(queue, store, tmp_path):
    queue.insert(ROWS)
    result = apply_edits(store, [Purge(JobFilter(functions=("fn0",)))], tmp_path, guard=False)
    # After the edit: a job arrives and another changes; neither is the undo's business.
    queue.insert([("new-job", "fn9", 1, b"x", 0)])
    queue.sql(f"UPDATE {queue.table} SET priority = 2 WHERE unique_key = 'job-01'")
    restore(store, result.snapshot.path, tmp_path, guard=False)
    rows = queue.rows()
    assert [r for r in rows if r[1] == "fn0"] == sorted(r for r in ROWS if r[1] == "fn0")
    assert ("new-job", "fn9", 1, b"x", 0) in rows
    assert [r[2] for r in rows if r[0] == "job-01"] == [2]


def test_the_undo_of_an_undo_gives_back_the_edit(queue, store, tmp_path):
    queue.insert(ROWS)
    apply_edits(
        store, [Reprioritise(JobFilter(functions=("fn3",)), Priority.LOW)], tmp_path, guard=False
    )
    edited = queue.rows()
    undo = snapshot.list_snapshots(tmp_path)[0]
    back = restore(store, undo.path, tmp_path, guard=False)
    assert queue.rows() == sorted(ROWS)
    restore(store, back.before.path, tmp_path, guard=False)
    assert queue.rows() == edited


def test_null_keys_are_put_back_once(sqlite_queue, tmp_path):
    """A NULL key never equals anything in SQL: the restore matches keys with IS."""
    queue = sqlite_queue
    queue.insert(ROWS[:5])
    queue.sql(f"INSERT INTO {queue.table} VALUES (NULL, 'fn0', 1, NULL, 0)")
    store = QueueStore(queue.url, queue.table)
    result = apply_edits(store, [Repair()], tmp_path, guard=False)
    assert result.changed == 1 and result.snapshot.rows == 1
    restore(store, result.snapshot.path, tmp_path, guard=False)
    assert queue.sql(f"SELECT unique_key, data FROM {queue.table} WHERE unique_key IS NULL") == [
        (None, None)
    ]
    assert queue.sql(f"SELECT COUNT(*) FROM {queue.table}") == [(6,)]
    store.close()


def test_a_damaged_key_list_is_refused(queue, store, tmp_path):
    queue.insert(ROWS)
    result = apply_edits(store, [Purge(JobFilter(functions=("fn0",)))], tmp_path, guard=False)
    path = result.snapshot.path
    path.chmod(0o600)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM keys WHERE rowid = 1")
    assert not snapshot.verify(path).ok
    with pytest.raises(VerifyError, match="DAMAGED"):
        restore(store, path, tmp_path, guard=False)
    assert len(queue.rows()) == 30


def test_full_snapshot_on_request(queue, store, tmp_path):
    queue.insert(ROWS)
    result = apply_edits(
        store, [Purge(JobFilter(functions=("fn0",)))], tmp_path, guard=False, full_snapshot=True
    )
    assert not result.snapshot.partial and result.snapshot.rows == len(ROWS)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["reprioritise", "purge", "reschedule"]),
            st.sets(st.sampled_from(["fn0", "fn1", "fn2", "fn3"]), max_size=2),
            st.sets(st.sampled_from(list(Priority)), max_size=2),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_batch_is_undone_exactly(sqlite_queue, tmp_path_factory, steps):
    """Whatever a batch does, in whatever order, its undo snapshot gives the table back."""
    queue = sqlite_queue
    queue.sql(f"DELETE FROM {queue.table}")
    queue.insert(ROWS)
    edits = []
    for verb, functions, priorities in steps:
        f = JobFilter(functions=tuple(sorted(functions)), priorities=tuple(sorted(priorities)))
        if verb == "reprioritise":
            edits.append(Reprioritise(f, Priority.LOW, all=f.is_empty))
        elif verb == "purge":
            edits.append(Purge(f, all=f.is_empty))
        else:
            edits.append(Reschedule(f, at=0, all=f.is_empty))
    store = QueueStore(queue.url, queue.table)
    directory = tmp_path_factory.mktemp("undo")
    result = apply_edits(store, edits, directory, guard=False)
    if result.snapshot is not None:
        restore(store, result.snapshot.path, directory, guard=False)
    assert queue.rows() == sorted(ROWS)
    store.close()


def test_cli_lists_scopes_and_restores_a_rows_snapshot(sqlite_queue, cli, tmp_path):
    import json

    queue = sqlite_queue
    queue.insert(ROWS)
    args = [*queue.cli_args(), "--yes", "--snapshot-dir", str(tmp_path)]
    done = cli("purge", "--function", "fn0", *args)
    assert done.exit_code == 0, done.output
    cli("purge", "--function", "fn1", "--full-snapshot", *args)
    listed = json.loads(
        cli("snapshots", "--snapshot-dir", str(tmp_path), "--format", "json").stdout
    )
    assert [(s["scope"], s["rows"]) for s in listed] == [("table", 30), ("rows", 10)]
    dry = cli("restore", listed[1]["path"], *queue.cli_args(), "--dry-run")
    assert "10 rows (of 10 jobs it covers)" in dry.stdout
    assert "would replace its 10 jobs" in dry.stdout
    back = cli("restore", listed[1]["path"], *args)
    assert back.exit_code == 0, back.output
    assert "restored 10 rows of the 10 jobs it covers (were 0)" in back.stdout
    # fn0 is back, fn1 (purged after, and outside that snapshot) stays purged.
    assert sorted({r[1] for r in queue.rows()}) == ["fn0", "fn2", "fn3"]


def test_a_refused_edit_leaves_no_snapshot(queue, store, tmp_path):
    """The rows are snapshotted before they are checked: a refusal removes the file."""
    queue.insert(ROWS)
    queue.sql(f"UPDATE {queue.table} SET priority = 7 WHERE unique_key = 'job-01'")
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    with pytest.raises(VerifyError, match="could not replay"):
        apply_edits(
            store, [Reschedule(JobFilter(functions=("fn1",)), at=0)], snapshots, guard=False
        )
    assert list(snapshots.iterdir()) == []


def test_a_clean_precheck_vouches_and_a_dirty_one_does_not(queue, store, tmp_path):
    from concurrent.futures import Future

    from queuetool.table.check import check

    def done(result):
        future = Future()
        future.set_result(result)
        return future

    queue.insert(ROWS)
    edit = [Reprioritise(JobFilter(functions=("fn1",)), Priority.LOW)]
    clean = check(store)
    result = apply_edits(store, edit, tmp_path, guard=False, prechecked=done(clean))
    assert result.checked is clean and result.changed == 7  # and 3 were low already
    assert result.changes[-1].already == 3
    # A check that found something vouches for nothing: the touched rows are checked,
    # and a bad one among them refuses the edit.
    queue.sql(f"UPDATE {queue.table} SET priority = 7 WHERE unique_key = 'job-05'")
    dirty = check(store)
    assert not dirty.ok
    with pytest.raises(VerifyError, match="could not replay"):
        apply_edits(
            store,
            [Reschedule(JobFilter(functions=("fn1",)), at=0)],
            tmp_path,
            guard=False,
            prechecked=done(dirty),
        )
    other = apply_edits(
        store,
        [Reschedule(JobFilter(functions=("fn2",)), at=1)],  # (they are at 0 already)
        tmp_path,
        guard=False,
        prechecked=done(dirty),
    )
    assert other.checked is None and other.changed == 10
