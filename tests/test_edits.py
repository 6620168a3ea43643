"""Edits through the library and the CLI on both backends: results, refusals, rollback,
--spread properties, and a SIGKILL in the middle of an edit."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queuetool.changes import snapshot
from queuetool.changes.apply import apply_edits, purge, reprioritise, reschedule
from queuetool.changes.dryrun import plan
from queuetool.changes.kinds import Purge, Reprioritise, Reschedule, spread_times
from queuetool.changes.restore import restore
from queuetool.errors import UsageError, VerifyError
from queuetool.priority import Priority
from queuetool.table.export import read_export
from queuetool.table.filters import JobFilter
from queuetool.table.store import INT32_MAX, QueueStore

ROWS = [
    (
        f"job-{i:02d}",
        f"fn{i % 3}",
        i % 3,
        bytes([i, 0, 255 - i]) * (i % 4),
        0 if i % 2 else 1000 + i,
    )
    for i in range(30)
]


@pytest.fixture
def store(queue):
    s = QueueStore(queue.url, queue.table)
    yield s
    s.close()


def only(fn: str) -> JobFilter:
    return JobFilter(functions=(fn,))


def test_reprioritise_changes_exactly_the_matched_jobs(queue, store, snapdir):
    queue.insert(ROWS)
    result = reprioritise(store, only("fn1"), Priority.HIGH, snapshot_dir=snapdir)
    assert result.changed == 10 and result.matched == 10
    expected = sorted((u, f, 0 if f == "fn1" else p, d, w) for u, f, p, d, w in ROWS)
    assert queue.rows() == expected
    assert result.snapshot is not None and snapshot.verify(result.snapshot.path).ok
    # The undo snapshot holds the rows the edit changed, as they were, and no others.
    assert result.snapshot.partial and result.snapshot.rows == result.snapshot.keys == 10
    held = [r for batch in snapshot.snapshot_rows(result.snapshot.path) for r in batch]
    assert sorted(held) == sorted(r for r in ROWS if r[1] == "fn1")
    assert result.snapshot.reason == "before-reprioritise"
    assert result.elapsed >= result.change_seconds > 0
    # The result knows how to put the table back.
    result.restore(store, guard=False)
    assert queue.rows() == sorted(ROWS)


def test_undo_for_the_maintenance_window(queue, store, snapdir):
    queue.insert(ROWS)
    result = purge(store, only("fn0"), snapshot_dir=snapdir)
    undo = result.undo(store)
    assert undo.snapshot == result.snapshot.path
    replaced = undo.restore()  # no arguments: what window.UndoableChange asks for
    assert queue.rows() == sorted(ROWS)
    # What the restore replaced: the ten purged jobs' keys, none of them there.
    kept = snapshot.read_manifest(replaced) if replaced is not None else None
    assert kept is not None and kept.partial and (kept.rows, kept.keys) == (0, 10)


def test_reschedule_at_now_and_range(queue, store, snapdir):
    queue.insert(ROWS)
    reschedule(store, only("fn0"), at=1_900_000_000, snapshot_dir=snapdir)
    assert {w for u, f, p, d, w in queue.rows() if f == "fn0"} == {1_900_000_000}
    reschedule(store, JobFilter(run_after=1), at=0, snapshot_dir=snapdir)
    assert {w for *_, w in queue.rows()} == {0}
    with pytest.raises(UsageError, match="32-bit INT"):
        reschedule(store, only("fn0"), at=INT32_MAX + 1, snapshot_dir=snapdir)
    with pytest.raises(UsageError, match="32-bit INT"):
        reschedule(store, only("fn0"), at=INT32_MAX - 10, spread=3600, snapshot_dir=snapdir)
    # The last second a MySQL INT holds is fine.
    reschedule(store, JobFilter(uniques=("job-01",)), at=INT32_MAX, snapshot_dir=snapdir)


def test_purge_exports_first(queue, store, snapdir, tmp_path):
    queue.insert(ROWS)
    export = tmp_path / "purged.jsonl"
    result = purge(store, only("fn2"), export=export, snapshot_dir=snapdir)
    assert result.changed == 10 and len(queue.rows()) == 20
    assert {f for _, f, *_ in queue.rows()} == {"fn0", "fn1"}
    exported = read_export(export)
    assert sorted(
        (j["unique_key"], j["function"], j["priority"], j["data"], j["when_to_run"])
        for j in exported
    ) == sorted(r for r in ROWS if r[1] == "fn2")
    assert oct(export.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(UsageError, match="already exists"):
        purge(store, only("fn1"), export=export, snapshot_dir=snapdir)


def test_purge_needs_a_filter_or_all(queue, store, snapdir):
    queue.insert(ROWS)
    with pytest.raises(UsageError, match="--all"):
        purge(store, JobFilter(), snapshot_dir=snapdir)
    with pytest.raises(UsageError, match="do not combine"):
        purge(store, only("fn1"), all=True, snapshot_dir=snapdir)
    assert len(queue.rows()) == 30
    assert list(snapdir.iterdir()) == []
    assert purge(store, JobFilter(), all=True, snapshot_dir=snapdir).changed == 30
    assert queue.rows() == []


def test_batch_is_one_transaction(queue, store, snapdir):
    queue.insert(ROWS)
    edits = [
        Reprioritise(only("fn0"), Priority.LOW),
        Reschedule(JobFilter(priorities=(Priority.LOW,)), at=1_800_000_000),
        Purge(only("fn1")),
    ]
    result = apply_edits(store, edits, snapdir)
    assert [c.changed for c in result.changes] == [10, 20, 10]
    assert len(list(snapdir.iterdir())) == 1  # one snapshot for the whole batch
    assert result.snapshot.reason == "before-reprioritise-reschedule-purge"
    rows = queue.rows()
    assert {f for _, f, *_ in rows} == {"fn0", "fn2"}
    assert {(p, w) for _, _, p, _, w in rows} == {(2, 1_800_000_000)}


def test_bad_touched_row_rolls_back(queue, store, snapdir):
    queue.insert(ROWS)
    if queue.backend == "sqlite":
        queue.sql(f"INSERT INTO {queue.table} VALUES ('bad', 'fn1', 1, 'TEXT payload', 0)")
    else:
        queue.sql(f"INSERT INTO {queue.table} VALUES (NULL, 'fn1', 1, 'x', 0)")
    table_now = f"SELECT * FROM {queue.table} ORDER BY unique_key, function_name"
    before = queue.sql(table_now)
    with pytest.raises(VerifyError, match="could not replay") as err:
        reprioritise(store, only("fn1"), Priority.HIGH, snapshot_dir=snapdir)
    assert "fn1/bad" in str(err.value) or "fn1/None" in str(err.value)
    after = queue.sql(table_now)
    assert after == before
    # Rows the edit does not touch do not stop it.
    assert reprioritise(store, only("fn2"), Priority.HIGH, snapshot_dir=snapdir).changed == 10


def test_plan_writes_nothing(queue, store):
    queue.insert(ROWS)
    (p,) = plan(store, [Purge(only("fn1"))], sample=3)
    assert p.matched == 10
    assert [j.unique_key for j in p.sample] == ["job-01", "job-07", "job-13"]  # due first
    assert len(queue.rows()) == 30


def test_nothing_matches(queue, store, snapdir, cli):
    queue.insert(ROWS)
    result = reprioritise(store, only("nope"), Priority.HIGH, snapshot_dir=snapdir)
    assert result.changed == 0 and result.snapshot is None
    out = cli("purge", *queue.cli_args(), "-f", "nope", "--yes", "--snapshot-dir", str(snapdir))
    assert out.exit_code == 0, out.output
    assert out.stdout == "no jobs match (function nope)\nnothing changed\n"
    assert list(snapdir.iterdir()) == []
    assert len(queue.rows()) == 30


# -- the CLI -----------------------------------------------------------------------------


def test_cli_dry_run(queue, snapdir, cli):
    queue.insert(ROWS)
    out = cli(
        "reprioritise",
        *queue.cli_args(),
        "-f",
        "fn1",
        "--to",
        "high",
        "--dry-run",
        "--snapshot-dir",
        str(snapdir),
    )
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == "dry run: would reprioritise (function fn1) to high: 10 jobs"
    assert "job-01" in out.stdout
    assert lines[-1] == "nothing changed, no snapshot taken"
    assert list(snapdir.iterdir()) == []
    assert queue.rows() == sorted(ROWS)


def test_cli_needs_confirmation(queue, snapdir, cli):
    queue.insert(ROWS)
    out = cli("purge", *queue.cli_args(), "-f", "fn1", "--snapshot-dir", str(snapdir))
    assert out.exit_code == 3
    assert "Purge (function fn1): 10 jobs" in out.output and "add --yes" in out.output
    assert len(queue.rows()) == 30 and list(snapdir.iterdir()) == []


def test_cli_reports_snapshot_count_elapsed(queue, snapdir, cli):
    queue.insert(ROWS)
    out = cli(
        "reprioritize",
        *queue.cli_args(),
        "-f",
        "fn*",
        "-p",
        "low",
        "--to",
        "normal",
        "--yes",
        "--snapshot-dir",
        str(snapdir),
    )
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    (snap,) = snapdir.iterdir()
    assert lines[0] == f"snapshot: {snap}"
    assert lines[1] == "10 jobs changed: reprioritise (function fn*, priority low) to normal"
    assert lines[2].startswith("elapsed: ")


def test_cli_reschedule_options(queue, snapdir, cli):
    queue.insert(ROWS)
    args = [*queue.cli_args(), "--yes", "--snapshot-dir", str(snapdir)]
    both = cli("reschedule", *args, "--now", "--in", "1h")
    assert both.exit_code == 2 and "exactly one of" in both.output
    late = cli("reschedule", *args, "--all", "--at", "2040-01-01T00:00Z")
    assert late.exit_code == 2 and "32-bit INT" in late.output
    out = cli("reschedule", *args, "-f", "fn0", "--in", "2h", "--spread", "1h")
    assert out.exit_code == 0, out.output
    assert "Note: gearmand 1.1" in out.stderr and "queuetool wake" in out.stderr
    whens = sorted(w for _, f, _, _, w in queue.rows() if f == "fn0")
    start = whens[0]
    assert abs(start - (time.time() + 7200)) < 60
    assert whens == [start + i * 3600 // 10 for i in range(10)]
    assert len(list(snapdir.iterdir())) == 1
    now = cli("reschedule", *args, "-f", "fn1", "--now")
    assert now.exit_code == 0, now.output
    assert "Note:" not in now.stderr  # due at once: nothing to wake
    assert {w for _, f, _, _, w in queue.rows() if f == "fn1"} == {0}


@pytest.mark.parametrize(
    "command", ["reprioritise", "reprioritize", "reschedule", "purge", "snapshot", "snapshots",
                "restore"],
)  # fmt: skip
def test_help_ends_with_an_example(cli, command):
    out = cli(command, "--help")
    assert out.exit_code == 0
    text = out.stdout.split("Options:")[0].rstrip().splitlines()
    example = next(i for i, line in enumerate(text) if line.strip().startswith("Example"))
    assert all(line.strip().startswith("queuetool ") for line in text[example + 1 :])


# -- --spread, as properties -------------------------------------------------------------

KEYS = st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=8)
JOBS = st.lists(
    st.tuples(
        KEYS,
        st.sampled_from(["fa", "fb", "f-c"]),
        st.integers(0, 2),
        st.sampled_from([0, 5, 1_700_000_000, 2_000_000_000]),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda j: (j[0], j[1]),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    jobs=JOBS,
    start=st.integers(1, 2_100_000_000),
    spread=st.integers(1, 40_000_000),
    just_fa=st.booleans(),
)
def test_spread_properties(queue, store, jobs, start, spread, just_fa):
    queue.sql(f"DELETE FROM {queue.table}")
    queue.insert([(u, f, p, f"{u}/{f}".encode(), w) for u, f, p, w in jobs])
    job_filter = only("fa") if just_fa else JobFilter()
    edit = Reschedule(job_filter, at=start, spread=spread, all=not just_fa)
    if start + spread - 1 > INT32_MAX:
        with pytest.raises(UsageError):
            apply_edits(store, [edit], snapshot=False, guard=False)
        return
    apply_edits(store, [edit], snapshot=False, guard=False)
    after = {(u, f): (p, d, w) for u, f, p, d, w in queue.rows()}
    matched = [j for j in jobs if not just_fa or j[1] == "fa"]
    # The stable order: when it was due, priority, function, unique key (byte-wise).
    matched.sort(key=lambda j: (j[3], j[2], j[1].encode(), j[0].encode()))
    got = [after[(u, f)][2] for u, f, _, _ in matched]
    assert got == spread_times(len(matched), start, spread)
    assert all(start <= w < start + spread for w in got)
    assert got == sorted(got)  # order kept
    gaps = [b - a for a, b in itertools.pairwise(got)]
    assert not gaps or max(gaps) - min(gaps) <= 1  # evenly spaced, to the second
    for u, f, p, w in jobs:  # nothing else changed
        assert after[(u, f)][:2] == (p, f"{u}/{f}".encode())
        if just_fa and f != "fa":
            assert after[(u, f)][2] == w


@given(count=st.integers(0, 5000), start=st.integers(0, 2**31), spread=st.integers(0, 10**9))
def test_spread_times_cover_the_window(count, start, spread):
    times = spread_times(count, start, spread)
    assert len(times) == count
    if spread and count:
        assert times[0] == start and times[-1] < start + spread
        assert times == sorted(times)


# -- crash safety --------------------------------------------------------------------------

BIG = 200_000


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def freeze(proc: subprocess.Popen) -> None:
    """Stop the child where it is (SIGSTOP): it can no longer finish before the SIGKILL,
    so the kill lands at the point the test waited for, not wherever the child got to."""
    os.kill(proc.pid, signal.SIGSTOP)
    assert proc.poll() is None, "the child finished before it could be stopped mid-work"


def growing_tmp(snapdir) -> bool:  # type: ignore[no-untyped-def]
    """A snapshot is being written: its temporary file exists and holds bytes."""
    for path in snapdir.iterdir():
        if path.name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):  # renamed meanwhile
                if path.stat().st_size > 0:
                    return True
    return False


@pytest.mark.parametrize("phase", ["snapshot", "change"])
def test_sigkill_mid_edit_leaves_old_or_new(queue, snapdir, tmp_path, phase):
    queue.insert([(f"k{i:07d}", f"fn{i % 4}", 1, b"p" * 40, 0) for i in range(BIG)])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "queuetool",
            "reprioritise",
            *queue.cli_args(),
            "--to",
            "high",
            "--all",
            "--yes",
            "--snapshot-dir",
            str(snapdir),
        ],
        cwd=tmp_path,
        env={**os.environ, "QUEUETOOL_CONFIG": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        if phase == "snapshot":
            seen = wait_for(lambda: growing_tmp(snapdir), 60)
        else:
            seen = wait_for(lambda: any(p.suffix == ".qtsnap" for p in snapdir.iterdir()), 60)
        assert seen, proc.communicate()
        freeze(proc)
        if phase == "snapshot":  # frozen while writing it: the file is still unfinished
            assert any(p.name.endswith(".tmp") for p in snapdir.iterdir())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    counts = queue.sql(f"SELECT priority, COUNT(*) FROM {queue.table} GROUP BY priority")
    assert [tuple(c) for c in counts] in ([(1, BIG)], [(0, BIG)])
    finished = [p for p in snapdir.iterdir() if p.suffix == ".qtsnap"]
    if not finished:  # no edit without a complete snapshot first
        assert [tuple(c) for c in counts] == [(1, BIG)]
    for path in finished:  # any snapshot under its final name is complete
        result = snapshot.verify(path)
        assert result.ok and result.rows == BIG


def test_sigkill_mid_restore_leaves_old_or_new(queue, snapdir, tmp_path):
    queue.insert([(f"k{i:07d}", f"fn{i % 4}", 1, b"p" * 40, 0) for i in range(BIG)])
    saved = snapshot.take(QueueStore(queue.url, queue.table), out=tmp_path / "saved.qtsnap")
    queue.sql(f"UPDATE {queue.table} SET priority = 0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuetool", "restore", str(saved.path), *queue.cli_args(),
         "--yes", "--snapshot-dir", str(snapdir)],
        cwd=tmp_path, env={**os.environ, "QUEUETOOL_CONFIG": ""},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        # The before-restore snapshot is complete: the restore's own writes come next.
        assert wait_for(lambda: any(p.suffix == ".qtsnap" for p in snapdir.iterdir()), 60)
        freeze(proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    counts = queue.sql(f"SELECT priority, COUNT(*) FROM {queue.table} GROUP BY priority")
    assert [tuple(c) for c in counts] in ([(0, BIG)], [(1, BIG)])
    # The next restore finishes the job (and clears what the killed one left behind).
    store = QueueStore(queue.url, queue.table)
    restore(store, saved.path, snapdir, guard=False)
    store.close()
    assert [
        tuple(c)
        for c in queue.sql(f"SELECT priority, COUNT(*) FROM {queue.table} GROUP BY priority")
    ] == [(1, BIG)]
