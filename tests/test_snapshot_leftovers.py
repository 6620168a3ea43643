"""A snapshot is written under `.NAME.qtsnap.PID.tmp` and renamed when complete; a writer
killed with SIGKILL leaves that file. The next snapshot (or the pruning) removes the
files of dead processes, says so, and keeps those of processes still running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from queuetool.changes import snapshot
from queuetool.table.store import QueueStore

BIG = 200_000


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def growing_tmp(snapdir) -> bool:  # type: ignore[no-untyped-def]
    """A snapshot is being written: its temporary file exists and holds bytes."""
    for path in snapdir.iterdir():
        if path.name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):  # renamed meanwhile
                if path.stat().st_size > 0:
                    return True
    return False


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_snapshot_leaves_a_file_the_next_run_removes(sqlite_queue, snapdir, tmp_path, cli):
    sqlite_queue.insert([(f"k{i:07d}", f"fn{i % 4}", 1, b"p" * 40, 0) for i in range(BIG)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuetool", "snapshot", *sqlite_queue.cli_args(),
         "--snapshot-dir", str(snapdir)],
        cwd=tmp_path, env={**os.environ, "QUEUETOOL_CONFIG": ""},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert wait_for(lambda: growing_tmp(snapdir), 60)
        # Frozen mid-write (SIGSTOP): it cannot finish and rename the file before the kill.
        os.kill(proc.pid, signal.SIGSTOP)
        assert proc.poll() is None, "the snapshot finished before it could be stopped"
        assert any(p.name.endswith(".tmp") for p in snapdir.iterdir())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    (left,) = snapdir.glob(f".*.qtsnap.{proc.pid}.tmp")
    size = left.stat().st_size

    result = cli("snapshot", *sqlite_queue.cli_args(), "--snapshot-dir", str(snapdir))
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"Warning: removed {left} ({size:,} bytes), the unfinished snapshot of a queuetool "
        f"process ({proc.pid}) that was killed while writing it\n"
    )
    assert not left.exists()
    (kept,) = snapdir.iterdir()
    assert kept.suffix == ".qtsnap" and snapshot.verify(kept).ok


def test_leftover_of_a_live_process_is_kept(sqlite_queue, snapdir, cli):
    sqlite_queue.insert([("a", "fn", 1, b"x", 0)])
    name = "gearman_queue-20260101T000000.000000Z-manual.qtsnap"
    dead = snapdir / f".{name}.{dead_pid()}.tmp"
    dead.write_bytes(b"\0" * 4096)
    alive = snapdir / f".{name}.{os.getpid()}.tmp"  # this test's process: a writer at work
    alive.write_bytes(b"\0" * 10)
    other = snapdir / ".notes.1.tmp"  # not a snapshot's name: never touched
    other.write_bytes(b"")

    result = cli("snapshot", *sqlite_queue.cli_args(), "--snapshot-dir", str(snapdir))
    assert result.exit_code == 0, result.output
    assert f"Warning: removed {dead} (4,096 bytes)" in result.stderr
    assert not dead.exists()
    assert alive.exists() and other.exists()


def test_pruning_removes_leftovers_too(sqlite_queue, snapdir):
    sqlite_queue.insert([("a", "fn", 1, b"x", 0)])
    store = QueueStore(sqlite_queue.url, sqlite_queue.table)
    try:
        info = snapshot.take(store, snapdir, keep=None)
    finally:
        store.close()
    dead = snapdir / f".t-20260101T000000.000000Z-x.qtsnap.{dead_pid()}.tmp"
    dead.write_bytes(b"\0")
    with pytest.warns(snapshot.LeftoverRemoved, match=r"\(1 bytes\)"):
        assert snapshot.prune(snapdir, 5, info) == []
    assert not dead.exists()
    assert list(snapdir.iterdir()) == [info.path]


def test_a_leftover_held_by_a_writer_whose_pid_looks_dead_is_kept(sqlite_queue, snapdir, cli):
    """In another PID namespace sharing the directory a live writer's pid looks dead
    here: its lock on the file, not its pid, says that it is still writing."""
    sqlite_queue.insert([("a", "fn", 1, b"x", 0)])
    held = snapdir / f".t-20260101T000000.000000Z-x.qtsnap.{dead_pid()}.tmp"
    held.write_bytes(b"\0" * 10)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys; f = open(sys.argv[1], 'rb'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('locked', flush=True); sys.stdin.read()", str(held)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        result = cli("snapshot", *sqlite_queue.cli_args(), "--snapshot-dir", str(snapdir))
        assert result.exit_code == 0, result.output
        assert "removed" not in result.stderr and held.exists()
    finally:
        holder.communicate("")  # the writer ends: its lock goes with it
    result = cli("snapshot", *sqlite_queue.cli_args(), "--snapshot-dir", str(snapdir))
    assert result.exit_code == 0, result.output
    assert f"Warning: removed {held} (10 bytes)" in result.stderr
    assert not held.exists()
