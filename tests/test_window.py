"""The maintenance window against real daemons: success, rollback paths, interrupts.

The edit here is a stand-in written with the plain driver (the real edit commands
live in queuetool.changes.kinds); it snapshots every row and restores them on demand.
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import JobSpec, admin, pid_alive, priority_status, submit, work

from queuetool.changes.window import window
from queuetool.errors import Aborted, DaemonError, UsageError, VerifyError
from queuetool.table.store import QueueStore

JOBS = [JobSpec(f"fn{i % 2}", f"u{i}", bytes([65 + i]), priority=1) for i in range(12)]


@dataclass
class RowsSnapshot:
    queue: object
    snapshot: Path
    rows: list

    def restore(self) -> Path | None:
        """Put the rows back; the replaced ones are kept beside the snapshot."""
        kept = self.snapshot.with_name(self.snapshot.name + ".failed-edit")
        kept.write_bytes(pickle.dumps(self.queue.sql(f"SELECT * FROM {self.queue.table}")))
        self.queue.sql(f"DELETE FROM {self.queue.table}")
        self.queue.insert(self.rows)
        return kept


def edit(queue, tmp_path: Path, sql: str, args: tuple = (), before=None):
    def change() -> RowsSnapshot:
        rows = queue.rows()
        snap = tmp_path / "snapshot.pickle"
        snap.write_bytes(pickle.dumps(rows))
        if before:
            before()
        queue.sql(sql, args)
        return RowsSnapshot(queue, snap, rows)

    return change


def adopt(daemon) -> int:
    daemon.pid = int(admin(daemon.port, "getpid").split()[1])
    return daemon.pid


def run_window(queue, daemon, tmp_path, change, **kw):
    try:
        return window(
            QueueStore(queue.url, queue.table), change, state_dir=tmp_path / "state", **kw
        )
    finally:
        with_retry_adopt(daemon)


def with_retry_adopt(daemon) -> None:
    try:
        adopt(daemon)
    except OSError:
        daemon.pid = None


def test_window_edits_and_verifies(queue, tmp_path):
    daemon = queue.gearmand()
    submit(daemon.port, JOBS)
    old = daemon.pid
    change = edit(
        queue, tmp_path, "UPDATE gearman_queue SET priority = 0 WHERE function_name = ?", ("fn1",)
    )
    before = time.time()
    result = run_window(queue, daemon, tmp_path, change)
    after = time.time()
    assert result.started is not None and result.started.verification.ok
    # The daemon was down for part of the window, never longer than the whole of it.
    assert result.downtime is not None and 0 < result.downtime <= after - before + 1
    assert not pid_alive(old) and daemon.pid != old
    assert priority_status(daemon.port) == {"fn0": (0, 6, 0), "fn1": (6, 0, 0)}
    # A worker for both functions gets every HIGH job first (1.1.x orders within a function).
    got = work(daemon.port, ["fn1"], 6, timeout=60)
    assert sorted(r.data for r in got) == sorted(j.data for j in JOBS if j.function == "fn1")


def test_window_store_queue_on_shutdown(sqlite_queue, tmp_path):
    daemon = sqlite_queue.gearmand("--store-queue-on-shutdown")
    submit(daemon.port, JOBS)
    change = edit(sqlite_queue, tmp_path, "DELETE FROM gearman_queue WHERE function_name = 'fn0'")
    result = run_window(sqlite_queue, daemon, tmp_path, change)
    assert result.started.verification.ok
    assert priority_status(daemon.port) == {"fn1": (0, 6, 0)}


def test_kill_after_is_refused_when_a_kill_would_lose_the_queue(sqlite_queue, tmp_path):
    """With --store-queue-on-shutdown the queue lives in the daemon: never SIGKILL it."""
    daemon = sqlite_queue.gearmand("--store-queue-on-shutdown")
    submit(daemon.port, JOBS)
    pid = daemon.pid
    change = edit(sqlite_queue, tmp_path, "DELETE FROM gearman_queue")
    with pytest.raises(UsageError, match="lose every job submitted since it started"):
        run_window(sqlite_queue, daemon, tmp_path, change, kill_after=5)
    assert daemon.pid == pid and pid_alive(pid)
    assert priority_status(daemon.port) == {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}


def test_window_command_way(sqlite_queue, tmp_path):
    from test_daemon import service_script

    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS)
    script = service_script(tmp_path, daemon)
    change = edit(sqlite_queue, tmp_path, "UPDATE gearman_queue SET priority = 2")
    result = run_window(
        sqlite_queue,
        daemon,
        tmp_path,
        change,
        address=daemon.address,
        stop_command=f"{script} stop",
        start_command=f"{script} start",
    )
    assert result.started.method.startswith("command:")
    assert priority_status(daemon.port) == {"fn0": (0, 0, 6), "fn1": (0, 0, 6)}


def test_unreplayable_edit_is_rolled_back_before_start(queue, tmp_path):
    daemon = queue.gearmand()
    submit(daemon.port, JOBS)
    original = queue.rows()
    change = edit(queue, tmp_path, "UPDATE gearman_queue SET priority = 7 WHERE unique_key = 'u3'")
    with pytest.raises(VerifyError) as err:
        run_window(queue, daemon, tmp_path, change)
    assert err.value.exit_code == 5
    message = str(err.value)
    assert "cannot replay" in message and "priority_range" in message
    assert "rolled back to" in message and "gearmand restarted" in message
    assert queue.rows() == original
    assert priority_status(daemon.port) == queue.counts() == {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}
    kept = tmp_path / "snapshot.pickle.failed-edit"
    assert f"failed edit's rows are in {kept}" in message
    assert [r[2] for r in pickle.loads(kept.read_bytes()) if r[0] == "u3"] == [7]


def test_daemon_crash_on_replay_rolls_back(sqlite_queue, tmp_path):
    """The priority-7 row really crashes gearmand; the window restores and restarts."""
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS)
    original = sqlite_queue.rows()
    change = edit(
        sqlite_queue, tmp_path, "INSERT INTO gearman_queue VALUES ('bad', 'fn0', 7, x'00', 0)"
    )
    with pytest.raises(VerifyError) as err:
        run_window(sqlite_queue, daemon, tmp_path, change, check_before_start=False)
    message = str(err.value)
    assert "after the edit gearmand failed" in message
    assert "died during start-up" in message or "no gearmand came up" in message
    assert "gearmand restarted" in message
    assert sqlite_queue.rows() == original
    assert priority_status(daemon.port) == {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_edit_rolls_back_and_restarts(sqlite_queue, tmp_path, signum):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS)
    original = sqlite_queue.rows()
    # What was in force before: Python's default, or SIG_IGN when the run was started in
    # the background by a non-interactive shell (`pytest &` ignores SIGINT).
    handler = signal.getsignal(signal.SIGINT)
    change = edit(
        sqlite_queue,
        tmp_path,
        "DELETE FROM gearman_queue",
        before=lambda: os.kill(os.getpid(), signum),  # Ctrl-C while the edit runs
    )
    with pytest.raises(Aborted) as err:
        run_window(sqlite_queue, daemon, tmp_path, change)
    assert err.value.exit_code == 3
    assert f"{signal.Signals(signum).name} during the edit: it was rolled back" in str(err.value)
    assert "gearmand restarted" in str(err.value)
    assert sqlite_queue.rows() == original
    assert priority_status(daemon.port) == {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}
    assert signal.getsignal(signal.SIGINT) is handler  # handlers restored


def test_no_restart_leaves_it_stopped_then_cli_start(mysql_queue, tmp_path, cli):
    daemon = mysql_queue.gearmand()
    submit(daemon.port, JOBS)
    change = edit(mysql_queue, tmp_path, "DELETE FROM gearman_queue WHERE function_name = 'fn1'")
    result = run_window(mysql_queue, daemon, tmp_path, change, no_restart=True)
    assert result.started is None and daemon.pid is None
    started = cli("start", *mysql_queue.cli_args(), env={"XDG_STATE_HOME": str(tmp_path / "xdg")})
    # The window kept its state in its own state_dir; the CLI looks in XDG: none there.
    assert started.exit_code == 6 and "no captured gearmand command line" in started.stderr
    from queuetool.daemon.start import start

    res = start(QueueStore(mysql_queue.url), state_dir=tmp_path / "state")
    adopt(daemon)
    assert res.verification.ok and res.downtime is not None
    assert priority_status(daemon.port) == {"fn0": (0, 6, 0)}


def test_a_real_edit_is_undone_by_its_rows_snapshot_when_the_start_fails(queue, tmp_path):
    """edit_window end to end: the start fails once, the undo (only the purged jobs) is
    put back, the daemon comes back on the original queue and a worker gets every job."""
    import shlex

    from queuetool.changes import snapshot
    from queuetool.changes.kinds import Purge
    from queuetool.changes.window import edit_window
    from queuetool.table.filters import JobFilter

    daemon = queue.gearmand()
    submit(daemon.port, JOBS)
    original = queue.rows()
    marker = tmp_path / "failed-once"
    script = tmp_path / "start"
    script.write_text(
        "#!/bin/sh\n"
        f"if [ ! -e {marker} ]; then touch {marker}; echo 'unit busy' >&2; exit 1; fi\n"
        f"exec {' '.join(shlex.quote(a) for a in daemon.argv)}\n"
    )
    script.chmod(0o755)
    (tmp_path / "snaps").mkdir()
    store = QueueStore(queue.url, queue.table)
    try:
        with pytest.raises(VerifyError, match="after the edit gearmand failed") as err:
            edit_window(
                store,
                [Purge(JobFilter(functions=("fn0",)))],
                tmp_path / "snaps",
                address=daemon.address,
                start_command=str(script),
                state_dir=tmp_path / "state",
            )
    finally:
        with_retry_adopt(daemon)
        store.close()
    message = str(err.value)
    assert "rolled back to" in message and "gearmand restarted" in message
    assert queue.rows() == original
    assert priority_status(daemon.port) == {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}
    got = work(daemon.port, ["fn0", "fn1"], 12, timeout=60)
    assert sorted(r.data for r in got) == sorted(j.data for j in JOBS)
    # The undo held the six purged jobs only; what it replaced is kept the same way.
    replaced, undo = snapshot.list_snapshots(tmp_path / "snaps")  # newest first
    assert undo.reason.endswith("purge") and (undo.scope, undo.rows) == ("rows", 6)
    assert replaced.reason == "before-restore" and (replaced.rows, replaced.keys) == (0, 6)
    assert f"failed edit's rows are in {replaced.path}" in message


def test_a_database_error_at_the_start_is_undone_and_the_daemon_restarted(
    sqlite_queue, tmp_path, monkeypatch
):
    """A start that fails with something other than a daemon error (here the database
    going away while it verifies) still ends in the rollback and a verified restart."""
    import sqlalchemy.exc

    from queuetool.changes import window as window_module

    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS)
    original = sqlite_queue.rows()
    real_start, calls = window_module.start, []

    def start_once_lost(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("server has gone away"))
        return real_start(*args, **kwargs)

    monkeypatch.setattr(window_module, "start", start_once_lost)
    change = edit(sqlite_queue, tmp_path, "DELETE FROM gearman_queue WHERE function_name = 'fn0'")
    with pytest.raises(VerifyError, match="after the edit gearmand failed") as err:
        run_window(sqlite_queue, daemon, tmp_path, change)
    assert "rolled back to" in str(err.value) and "measured now: gearmand is UP" in str(err.value)
    assert sqlite_queue.rows() == original
    assert priority_status(daemon.port) == {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}


def test_a_rollback_that_fails_still_restarts_the_daemon(sqlite_queue, tmp_path, monkeypatch):
    """The undo itself failing must not leave gearmand down: it is started again on the
    edited queue, and the message says the edit stays."""
    from queuetool.changes import window as window_module

    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS)
    real_start, calls = window_module.start, []

    def start_fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise DaemonError("the start command failed (exit 1): unit busy")
        return real_start(*args, **kwargs)

    @dataclass
    class BrokenUndo:
        snapshot: Path

        def restore(self) -> Path | None:
            raise OSError(5, "Input/output error", str(self.snapshot))

    def change() -> BrokenUndo:
        sqlite_queue.sql("DELETE FROM gearman_queue WHERE function_name = 'fn0'")
        return BrokenUndo(tmp_path / "undo.qtsnap")

    monkeypatch.setattr(window_module, "start", start_fails_once)
    with pytest.raises(VerifyError) as err:
        run_window(sqlite_queue, daemon, tmp_path, change)
    message = str(err.value)
    assert "unit busy; rolling back to" in message and "so the edit stays" in message
    assert "measured now: gearmand is UP" in message
    assert priority_status(daemon.port) == {"fn1": (0, 6, 0)}
