"""The stop path against real gearmand daemons that do not exit on SIGTERM in time.

Two real ways a gearmand hangs in a stop, both seen on 1.1.20:
- with --store-queue-on-shutdown it writes its queue at the clean shutdown; while
  another connection holds an exclusive lock on the SQLite file (a sqlite3 shell, a
  backup), it closes its port and then waits for the lock, alive, for as long as the
  lock is held; released, it writes every job and exits by itself;
- a SIGSTOPped (hung) gearmand neither answers nor acts on SIGTERM, while its port
  still accepts connections; SIGKILL ends it all the same.

Every daemon is stopped by its own pid; a test that kills one forgets its pid, so
that the fixture never signals a pid that may have been reused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Gearmand, JobSpec, pid_alive, priority_status, submit, wait_gone

from queuetool.daemon import stop as daemon_mod
from queuetool.daemon.discover import read_cmdline
from queuetool.daemon.process import service_unit
from queuetool.daemon.stop import DaemonWarning, stop
from queuetool.errors import DaemonError
from queuetool.table.store import QueueStore

JOBS = [JobSpec(f"fn{i % 2}", f"u{i}", bytes([i]), priority=i % 3) for i in range(30)]
SOS = "--store-queue-on-shutdown"


def env(tmp_path: Path, config: Path | None = None) -> dict:
    e = {"XDG_STATE_HOME": str(tmp_path / "state")}
    if config is not None:
        e["QUEUETOOL_CONFIG"] = str(config)
    return e


def store_of(queue) -> QueueStore:
    return QueueStore(queue.url, queue.table)


def port_accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def state(pid: int) -> str:
    """The process state letter from /proc (S sleeping, T stopped, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]


def forget(daemon: Gearmand) -> None:
    """The daemon is gone for good: the fixture must not signal its (reusable) pid."""
    assert daemon.pid is not None and not pid_alive(daemon.pid)
    daemon.pid = None


@contextlib.contextmanager
def sqlite_locked(path: Path) -> Iterator[sqlite3.Connection]:
    """An exclusive lock on the queue file, as a sqlite3 shell or a backup holds it."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield conn
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        conn.close()


def release_when_gone(conn: sqlite3.Connection, pid: int) -> threading.Thread:
    """Drop the lock once `pid` is gone (queuetool's at-rest check then gets the file)."""

    def run() -> None:
        if wait_gone(pid, 60):
            conn.execute("ROLLBACK")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def stuck_daemon(queue) -> Gearmand:
    """A --store-queue-on-shutdown gearmand holding JOBS (they are not in its table meanwhile)."""
    daemon = queue.gearmand(SOS)
    submit(daemon.port, JOBS)
    assert queue.rows() == []  # nothing written while it runs: a kill loses all 30
    return daemon


def killed_after(lines: list[str], pid: int, sent: str) -> float:
    """The seconds in the one note (or `note:` line) that says the kill was sent."""
    pattern = (
        rf"(?:note: )?gearmand pid {pid} was still running (\d+\.\d)s after {sent}: "
        r"sent SIGKILL \(--kill-after\)"
    )
    found = [float(m[1]) for line in lines if (m := re.fullmatch(pattern, line))]
    assert len(found) == 1, lines
    return found[0]


@pytest.fixture
def hung():
    """SIGSTOP a daemon; at the end, SIGCONT it if the test left it alive (by its pid)."""
    stopped: list[Gearmand] = []

    def hang(daemon: Gearmand) -> None:
        os.kill(daemon.pid, signal.SIGSTOP)
        stopped.append(daemon)
        deadline = time.monotonic() + 30
        while state(daemon.pid) != "T":
            assert time.monotonic() < deadline, "SIGSTOP did not take"
            time.sleep(0.01)

    yield hang
    for daemon in stopped:
        if daemon.pid is not None and pid_alive(daemon.pid):
            os.kill(daemon.pid, signal.SIGCONT)  # the fixture's SIGTERM can then act


# -- --kill-after ------------------------------------------------------------------------


def test_kill_after_sigkills_a_daemon_stuck_in_its_shutdown(sqlite_queue, tmp_path):
    daemon = stuck_daemon(sqlite_queue)
    pid = daemon.pid
    with sqlite_locked(sqlite_queue.sqlite_path) as lock:
        releaser = release_when_gone(lock, pid)
        with pytest.warns(DaemonWarning) as caught:
            began = time.monotonic()
            result = stop(store_of(sqlite_queue), kill_after=1.0, timeout=30.0)
            took = time.monotonic() - began
        releaser.join(10)
    assert [str(w.message) for w in caught] == [
        f"SIGKILL to gearmand pid {pid}, which runs with --store-queue-on-shutdown: it "
        "writes its queue only at a clean shutdown, so EVERY JOB SUBMITTED SINCE IT STARTED "
        "IS LOST (its table held only what it started with: no snapshot taken since holds "
        "them)"
    ]
    assert caught[0].filename == __file__  # pointed at the caller of stop()
    assert result.killed and result.pid == pid and result.store_queue_on_shutdown
    assert result.queued == 30  # recorded before the stop: what the kill lost
    # SIGKILL only once --kill-after had passed; measured within the call.
    assert 1.0 <= result.stop_seconds <= took + 1
    assert killed_after(result.notes, pid, "SIGTERM") >= 1.0
    assert result.at_rest
    assert not pid_alive(pid) and not port_accepts(daemon.port)
    forget(daemon)
    assert sqlite_queue.rows() == []  # as warned: the 30 jobs are gone


def test_kill_after_longer_than_timeout_still_kills(sqlite_queue, tmp_path):
    """--kill-after beyond --timeout: the wait lasts until the kill (and its grace)."""
    daemon = stuck_daemon(sqlite_queue)
    with sqlite_locked(sqlite_queue.sqlite_path) as lock:
        releaser = release_when_gone(lock, daemon.pid)
        with pytest.warns(DaemonWarning, match="EVERY JOB SUBMITTED SINCE IT STARTED IS LOST"):
            began = time.monotonic()
            result = stop(store_of(sqlite_queue), kill_after=1.5, timeout=0.5)
            took = time.monotonic() - began
        releaser.join(10)
    assert result.killed and 1.5 <= result.stop_seconds <= took + 1
    assert not pid_alive(daemon.pid)
    forget(daemon)


def test_cli_kill_after_a_hung_daemon(queue, cli, tmp_path, hung):
    """No --store-queue-on-shutdown: the rows are in the table, a kill loses none."""
    daemon = queue.gearmand()
    submit(daemon.port, JOBS)
    before = priority_status(daemon.port)
    pid = daemon.pid
    hung(daemon)
    assert port_accepts(daemon.port)  # hung, not gone: its port still takes connections
    result = cli(
        "stop", *queue.cli_args(), "--kill-after", "0.5", "--timeout", "10", env=env(tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"gearmand pid {pid} KILLED with SIGKILL (--kill-after) in ")
    assert "what it held is unknown (it did not answer before the stop)" in result.stdout
    assert "note: could not record the daemon's state before stopping" in result.stderr
    assert killed_after(result.stderr.splitlines(), pid, "SIGTERM") >= 0.5
    assert "Warning" not in result.stderr  # no queue is lost without the flag
    assert not pid_alive(pid) and not port_accepts(daemon.port)
    forget(daemon)
    assert queue.counts() == before  # every job still in the table


def test_cli_kill_after_warns_that_the_whole_queue_is_lost(sqlite_queue, cli, tmp_path):
    daemon = stuck_daemon(sqlite_queue)
    pid = daemon.pid
    with sqlite_locked(sqlite_queue.sqlite_path) as lock:
        releaser = release_when_gone(lock, pid)
        result = cli("stop", *sqlite_queue.cli_args(), "--kill-after", "1", env=env(tmp_path))
        releaser.join(10)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"gearmand pid {pid} KILLED with SIGKILL (--kill-after) in ")
    assert "it held 30 jobs" in result.stdout
    assert (
        f"Warning: SIGKILL to gearmand pid {pid}, which runs with --store-queue-on-shutdown: "
        "it writes its queue only at a clean shutdown, so EVERY JOB SUBMITTED SINCE IT "
        "STARTED IS LOST"
    ) in result.stderr
    assert not pid_alive(pid) and not port_accepts(daemon.port)
    forget(daemon)
    assert sqlite_queue.rows() == []


def test_kill_after_with_a_stop_command_that_does_not_stop(sqlite_queue, cli, tmp_path):
    """A service command that returns 0 and leaves gearmand running (a broken script)."""
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS[:4])
    config = tmp_path / "queuetool.toml"
    config.write_text('[gearmand]\nstop = "true"\n')
    result = cli("stop", *sqlite_queue.cli_args(), "--kill-after", "0.5", env=env(tmp_path, config))
    assert result.exit_code == 0, result.output
    assert (
        "KILLED with SIGKILL (--kill-after)" in result.stdout and "(command: true)" in result.stdout
    )
    assert killed_after(result.stderr.splitlines(), daemon.pid, "the stop command") >= 0.5
    assert not pid_alive(daemon.pid)
    forget(daemon)
    assert len(sqlite_queue.rows()) == 4


# -- without --kill-after: never a SIGKILL -------------------------------------------------


def test_no_kill_after_fails_and_leaves_the_daemon_alive(sqlite_queue, tmp_path):
    daemon = stuck_daemon(sqlite_queue)
    pid, argv = daemon.pid, read_cmdline(daemon.pid)
    with sqlite_locked(sqlite_queue.sqlite_path) as lock:
        with pytest.raises(DaemonError) as raised:
            stop(store_of(sqlite_queue), timeout=1.5)
        message = str(raised.value)
        assert message == (
            f"gearmand did not stop within 1.5s (pid {pid} still runs); nothing was changed. "
            "Use --kill-after SECONDS to SIGKILL it, or look at its log"
        )
        time.sleep(0.5)
        assert pid_alive(pid) and read_cmdline(pid) == argv  # not killed: the same process
        lock.execute("ROLLBACK")
    # Released, the daemon finishes the clean shutdown it was asked for: no job lost,
    # which is why queuetool never kills without --kill-after.
    assert wait_gone(pid, 30), "gearmand did not finish its shutdown after the lock went"
    forget(daemon)
    assert len(sqlite_queue.rows()) == 30


def test_cli_no_kill_after_one_line_error_and_the_daemon_alive(queue, cli, tmp_path, hung):
    daemon = queue.gearmand()
    submit(daemon.port, JOBS[:6])
    pid = daemon.pid
    hung(daemon)
    result = cli("stop", *queue.cli_args(), "--timeout", "1", env=env(tmp_path))
    assert result.exit_code == 6
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if not line.startswith("note: ")]
    assert errors == [
        f"Error: gearmand did not stop within 1s (pid {pid} still runs); nothing was changed. "
        "Use --kill-after SECONDS to SIGKILL it, or look at its log"
    ]
    time.sleep(0.5)
    assert pid_alive(pid) and state(pid) == "T"  # alive, never SIGKILLed
    # Clean up by its pid: SIGCONT, and it acts on the SIGTERM queuetool sent.
    os.kill(pid, signal.SIGCONT)
    assert wait_gone(pid, 30), "the pending SIGTERM did not stop gearmand"
    forget(daemon)
    assert len(queue.rows()) == 6


# -- systemd's Restart= -------------------------------------------------------------------


def fake_process(proc: Path, pid: int, argv: list[str], cgroup: str) -> None:
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / str(pid) / "cgroup").write_text(cgroup)


def fake_cgroup(root: Path, path: str, pids: list[int]) -> None:
    (root / path.strip("/")).mkdir(parents=True, exist_ok=True)
    (root / path.strip("/") / "cgroup.procs").write_text("".join(f"{p}\n" for p in pids))


UNIT = "/system.slice/gearman-job-server.service"
CRON = "/system.slice/cron.service"
V1 = "12:pids:{path}\n11:memory:{path}\n1:name=systemd:{path}\n"  # cgroup v1 / hybrid


@pytest.mark.parametrize(
    ("cgroup", "layout", "expected"),
    [
        (f"0::{UNIT}\n", "", "gearman-job-server.service"),  # cgroup v2
        (V1.format(path=UNIT) + f"0::{UNIT}\n", "unified", "gearman-job-server.service"),
        (V1.format(path=UNIT), "systemd", "gearman-job-server.service"),  # v1 only
        ("0::/user.slice/user-1000.slice/session-4.scope\n", "", None),  # by hand, ssh
        ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n", "", None),
        ("0::/\n", "", None),  # a container without systemd
        ("9:name=systemd:/\n4:memory:/system.slice/x.service\n0::/\n", "", None),
    ],
)
def test_service_unit_from_cgroup(tmp_path, cgroup, layout, expected):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    fake_process(proc, 700, ["/usr/sbin/gearmand", "-d"], cgroup)
    path = cgroup.splitlines()[-1].split(":", 2)[2]
    fake_cgroup(root / layout, path, [700])
    assert service_unit(700, proc, root) == expected


def test_service_unit_not_a_unit_gearmand_was_merely_started_from(tmp_path):
    """gearmand run from a cron job (or restarted by queuetool run from cron) lives in
    cron.service: `systemctl stop cron.service` is no way to stop it."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    fake_process(proc, 700, ["/usr/sbin/gearmand", "-d"], f"0::{CRON}\n")
    fake_process(proc, 80, ["/usr/sbin/cron", "-f"], f"0::{CRON}\n")
    fake_cgroup(root, CRON, [80, 700])
    assert service_unit(700, proc, root) is None
    # The same unit with gearmand alone in it (cron gone) is gearmand's own.
    fake_cgroup(root, CRON, [700])
    assert service_unit(700, proc, root) == "cron.service"
    # Members unreadable: named all the same (a warning too many beats one too few).
    (root / CRON.strip("/") / "cgroup.procs").unlink()
    assert service_unit(700, proc, root) == "cron.service"
    assert service_unit(701, proc, root) is None  # no such process


def under_systemd(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the daemon look as if gearman-job-server.service ran it; returns the pids
    asked about (the reader of /proc/PID/cgroup is tested above)."""
    asked: list[int] = []

    def fake(pid: int) -> str:
        asked.append(pid)
        return "gearman-job-server.service"

    monkeypatch.setattr(daemon_mod, "service_unit", fake)
    return asked


RESTART_WARNING = (
    "gearmand pid {pid} runs under systemd unit gearman-job-server.service: its Restart= "
    "may start it again behind queuetool's back; set [gearmand] stop = \"systemctl stop "
    'gearman-job-server.service" and start = "systemctl start gearman-job-server.service"'
)


def test_systemd_restart_warning(sqlite_queue, tmp_path, monkeypatch):
    asked = under_systemd(monkeypatch)
    daemon = sqlite_queue.gearmand()
    pid = daemon.pid
    with pytest.warns(DaemonWarning) as caught:
        result = stop(store_of(sqlite_queue))
    assert asked == [pid]
    assert [str(w.message) for w in caught] == [RESTART_WARNING.format(pid=pid)]
    assert caught[0].filename == __file__
    assert not result.killed and not pid_alive(pid)  # warned, and stopped all the same
    daemon.pid = None


def test_cli_systemd_restart_warning_and_none_with_a_stop_command(
    sqlite_queue, cli, tmp_path, monkeypatch
):
    asked = under_systemd(monkeypatch)
    daemon = sqlite_queue.gearmand()
    pid = daemon.pid
    result = cli("stop", *sqlite_queue.cli_args(), env=env(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"Warning: {RESTART_WARNING.format(pid=pid)}" in result.stderr.splitlines()
    assert asked == [pid]
    daemon.pid = None
    # With the service's own commands set, there is nothing to warn about.
    daemon = sqlite_queue.gearmand()
    config = tmp_path / "queuetool.toml"
    config.write_text(f'[gearmand]\nstop = "kill -TERM {daemon.pid}"\n')
    result = cli("stop", *sqlite_queue.cli_args(), env=env(tmp_path, config))
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr
    assert not pid_alive(daemon.pid)
    daemon.pid = None


# -- gone, but the port is not free ---------------------------------------------------------

RESTARTER = """\
import os, signal, socket, subprocess, sys, time
pid, port, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
os.kill(pid, signal.SIGTERM)
while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z":
    time.sleep(0.02)
subprocess.run(argv, check=True)
while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
    time.sleep(0.02)
"""


def test_cli_a_daemon_back_on_the_port_is_reported_not_killed(sqlite_queue, cli, tmp_path):
    """A stop command that stops gearmand and lets it come straight back (as a service
    manager's Restart= does): the old pid is gone, the port is not free. A SIGKILL to
    the old pid cannot help, so the error does not advise --kill-after."""
    daemon = sqlite_queue.gearmand()
    old = daemon.pid
    script = tmp_path / "restarter.py"
    script.write_text(RESTARTER)
    command = shlex.join([sys.executable, str(script), str(old), str(daemon.port), *daemon.argv])
    config = tmp_path / "queuetool.toml"
    config.write_text(f"[gearmand]\nstop = {json.dumps(command)}\n")
    result = cli("stop", *sqlite_queue.cli_args(), "--timeout", "1", env=env(tmp_path, config))
    new = int(daemon.pidfile.read_text())
    daemon.pid = new if pid_alive(new) else None  # the fixture stops the new one
    assert new != old and not pid_alive(old)
    assert result.exit_code == 6
    assert result.stderr.splitlines() == [
        f"Error: gearmand did not stop within 1s (port {daemon.address} still open); gearmand "
        f"pid {old} is gone but something listens at {daemon.address} (restarted by a service "
        "manager's Restart=?); look at what listens there"
    ]
    assert pid_alive(new)  # the newcomer was not signalled


@pytest.mark.parametrize(
    "command", [("stop",), ("reprioritise", "--to", "high", "-f", "x", "--yes")]
)
def test_negative_seconds_are_refused(sqlite_queue, cli, command):
    """A negative --kill-after would mean "kill at once": a typo must not do that."""
    result = cli(*command, *sqlite_queue.cli_args(), "--kill-after", "-1")
    assert result.exit_code == 2 and "not in the range x>=0" in result.output
