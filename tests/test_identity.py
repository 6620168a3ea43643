"""The daemon queuetool stops must be the daemon of THIS queue; a rollback stops the
daemon its restart brought up before restoring; final messages state what a probe
measured. Real daemons throughout.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import Queue, make_mysql_queue, make_postgres_queue, make_sqlite_queue
from servers import (
    JobSpec,
    admin,
    free_port,
    pid_alive,
    priority_status,
    submit,
    wait_gone,
    work,
)
from test_window import edit, run_window

from queuetool.changes import window as window_module
from queuetool.daemon import start as start_module
from queuetool.daemon.guard import running_daemons
from queuetool.errors import DaemonError, VerifyError
from queuetool.table.store import QueueStore, mask_url

JOBS = [JobSpec(f"fn{i % 2}", f"u{i}", bytes([65 + i]), priority=1) for i in range(12)]


def other_queue(queue: Queue, tmp_path: Path) -> Queue:
    """A second queue beside `queue` with no daemon: another SQLite file, or another
    table in the same MySQL or PostgreSQL database (same host, port, database; other
    table)."""
    if queue.backend == "sqlite":
        (tmp_path / "other").mkdir()
        other = make_sqlite_queue(tmp_path / "other")
    elif queue.backend == "postgres":
        assert queue.postgres is not None and queue.database is not None
        other = make_postgres_queue(tmp_path, queue.postgres, queue.database, table="other_queue")
    else:
        other = make_mysql_queue(tmp_path, queue.mysql, queue.database, table="other_queue")
    other.insert([(f"o{i}", "fnX", 1, b"o", 0) for i in range(3)])
    return other


def current_pid(daemon) -> int:
    return int(admin(daemon.port, "getpid").split()[1])


@pytest.fixture
def reap(queue):
    """After the test, stop by pid any gearmand still on the queue: the old code left a
    second daemon there that its pid file did not name, which the queue fixture misses."""
    yield
    for found in running_daemons(QueueStore(queue.url, queue.table)):
        os.kill(found.pid, signal.SIGTERM)
        if not wait_gone(found.pid, 10):  # one stuck retrying bind() ignores SIGTERM
            os.kill(found.pid, signal.SIGKILL)
            wait_gone(found.pid, 10)


# -- the address must answer for this queue's daemon ---------------------------------------


@pytest.mark.parametrize("how", ["config", "env"])
def test_address_of_another_queues_daemon_is_refused_and_nothing_stopped(queue, cli, tmp_path, how):
    """The demo case: [gearmand] address names the daemon of queue A, --queue names B.
    The old code stopped A's daemon, edited B, restarted A and exited 6 saying it was down."""
    daemon = queue.gearmand()
    submit(daemon.port, JOBS)
    other = other_queue(queue, tmp_path)
    before, pid = other.rows(), daemon.pid
    env = {}
    if how == "config":
        config = tmp_path / "queuetool.toml"
        config.write_text(f'[gearmand]\naddress = "{daemon.address}"\n')
        env["QUEUETOOL_CONFIG"] = str(config)
    else:
        env["QUEUETOOL_GEARMAND"] = daemon.address
    result = cli("reprioritise", *other.cli_args(), "--all", "--to", "high", "--yes", env=env)
    assert result.exit_code == 2, result.output
    theirs = mask_url(queue.url)  # from the daemon's command line
    mine = QueueStore(other.url).display_url
    assert result.stderr.splitlines() == [
        f"Error: gearmand pid {pid} at {daemon.address} serves {theirs} table {queue.table}, "
        f"not {mine} table {other.table}: that address belongs to another queue's daemon; "
        "correct --gearmand / QUEUETOOL_GEARMAND / [gearmand] address or leave it out. "
        "Nothing was stopped"
    ]
    assert "***" in theirs or queue.backend == "sqlite"  # the password is never shown
    assert current_pid(daemon) == pid and pid_alive(pid)
    assert priority_status(daemon.port) == {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}
    assert other.rows() == before
    # `stop` and `status` refuse the same way: neither acts on the wrong daemon.
    stopped = cli("stop", *other.cli_args(), env=env)
    assert stopped.exit_code == 2 and "belongs to another queue's daemon" in stopped.stderr
    status = cli("status", *other.cli_args(), env=env)
    assert status.exit_code == 2 and "belongs to another queue's daemon" in status.stderr
    assert current_pid(daemon) == pid


def test_address_that_does_not_answer_is_not_replaced_by_a_scanned_daemon(
    queue, cli, tmp_path, reap
):
    """--gearmand with a wrong port on a live queue. The old code found the real daemon by
    scanning, stopped it, edited, restarted it, rolled the TABLE back under it and exited
    6 saying it was down, leaving daemon and table apart."""
    daemon = queue.gearmand()
    submit(daemon.port, JOBS)
    before, pid = queue.rows(), daemon.pid
    wrong = f"127.0.0.1:{free_port()}"
    result = cli(
        "reprioritise", *queue.cli_args(), "--gearmand", wrong, "--all", "--to", "high", "--yes"
    )
    assert result.exit_code == 2, result.output
    mine = QueueStore(queue.url).display_url
    assert result.stderr.splitlines() == [
        f"Error: the gearmand address {wrong} does not answer, but gearmand pid {pid} of "
        f"{mine} table {queue.table} runs at {daemon.address}: correct --gearmand / "
        "QUEUETOOL_GEARMAND / [gearmand] address or leave it out. Nothing was stopped"
    ]
    assert current_pid(daemon) == pid
    assert queue.rows() == before
    assert priority_status(daemon.port) == queue.counts() == {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}
    stopped = cli("stop", *queue.cli_args(), "--gearmand", wrong)
    assert stopped.exit_code == 2 and f"{wrong} does not answer" in stopped.stderr
    assert current_pid(daemon) == pid


def test_the_right_address_still_runs_the_window(sqlite_queue, cli):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS)
    result = cli(
        "reprioritise",
        *sqlite_queue.cli_args(),
        "--gearmand",
        daemon.address,
        "-f",
        "fn0",
        "--to",
        "high",
        "--yes",
    )
    assert result.exit_code == 0, result.output
    daemon.pid = current_pid(daemon)
    assert (
        priority_status(daemon.port)
        == sqlite_queue.counts()
        == {
            "fn0": (6, 0, 0),
            "fn1": (0, 6, 0),
        }
    )


# -- a rollback stops the daemon its restart brought up ------------------------------------


def fail_verification_once(monkeypatch) -> None:
    """The first start's read of the daemon's counts shows one job more than it holds:
    the daemon is up on the edited queue and its verification fails; later reads are true."""
    real = start_module.daemon_cells
    calls = []

    def daemon_cells(client):
        cells, running = real(client)
        if not calls:
            cells = {**cells, ("phantom", 1): 1}
        calls.append(1)
        return cells, running

    monkeypatch.setattr(start_module, "daemon_cells", daemon_cells)


@pytest.mark.parametrize("sos", [False, True], ids=["plain", "store-queue-on-shutdown"])
def test_rollback_stops_the_restarted_daemon_then_restores_and_verifies(
    sqlite_queue, tmp_path, monkeypatch, sos
):
    rollback_after_failed_verification(sqlite_queue, tmp_path, monkeypatch, sos)


def test_rollback_stops_the_restarted_daemon_mysql(mysql_queue, tmp_path, monkeypatch):
    rollback_after_failed_verification(mysql_queue, tmp_path, monkeypatch, False)


def rollback_after_failed_verification(queue, tmp_path, monkeypatch, sos: bool) -> None:
    daemon = queue.gearmand(*(["--store-queue-on-shutdown"] if sos else []))
    submit(daemon.port, JOBS)
    first = daemon.pid
    original = {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}
    fail_verification_once(monkeypatch)
    restarted: list[int] = []
    real_start = window_module.start

    def start(store, **kw):
        try:
            return real_start(store, **kw)
        finally:
            restarted.extend(d.pid for d in running_daemons(store))

    monkeypatch.setattr(window_module, "start", start)
    sql = "UPDATE gearman_queue SET priority = 0 WHERE function_name = 'fn1'"
    change = edit(queue, tmp_path, sql)
    with pytest.raises(VerifyError) as err:
        run_window(queue, daemon, tmp_path, change)
    message = str(err.value)
    store = QueueStore(queue.url, queue.table)
    now = running_daemons(store)
    assert len(now) == 1 and now[0].pid == daemon.pid != first
    # The daemon the failed restart brought up was stopped (by its pid) before the restore.
    assert len(restarted) == 2 and restarted[0] != restarted[1] == daemon.pid
    assert not pid_alive(restarted[0])
    assert "after the edit gearmand failed: reload NOT verified" in message
    assert f"the daemon the restart brought up (pid {restarted[0]}) was stopped" in message
    assert "rolled back to" in message
    assert (
        f"measured now: gearmand is UP (pid {daemon.pid} at {daemon.address}) and holds "
        "the table's 12 jobs" in message
        if not sos
        else f"measured now: gearmand is UP (pid {daemon.pid} at {daemon.address})" in message
    )
    assert priority_status(daemon.port) == original
    if not sos:
        assert queue.counts() == original
    got = work(daemon.port, ["fn0", "fn1"], 12, timeout=20)
    assert sorted(r.data for r in got) == sorted(j.data for j in JOBS)


def test_a_rollback_that_cannot_start_reports_the_measured_state(sqlite_queue, tmp_path):
    """The restart fails every time: the message says what a probe found (down, no pid),
    not a guess; and a process check agrees."""
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS)
    change = edit(sqlite_queue, tmp_path, "DELETE FROM gearman_queue WHERE function_name='fn0'")
    with pytest.raises(DaemonError) as err:
        run_window(
            sqlite_queue,
            daemon,
            tmp_path,
            change,
            address=daemon.address,
            start_command="echo 'unit busy' >&2; exit 1",
        )
    message = str(err.value)
    assert err.value.exit_code == 6
    assert message.startswith("GEARMAND IS DOWN: ")
    assert (
        f"measured now: gearmand is DOWN (no gearmand process uses this queue and nothing "
        f"answers at {daemon.address})" in message
    )
    assert running_daemons(QueueStore(sqlite_queue.url)) == []
    assert len(sqlite_queue.rows()) == 12  # the table was rolled back all the same


def test_start_refuses_an_address_the_captured_command_line_does_not_listen_on(
    queue, cli, tmp_path, reap
):
    """The old code started the daemon, waited 30 s at the wrong port, and exited 6 with
    the daemon up all the same."""
    daemon = queue.gearmand()
    submit(daemon.port, JOBS)
    assert cli("stop", *queue.cli_args()).exit_code == 0
    daemon.pid = None
    wrong = f"127.0.0.1:{free_port()}"
    result = cli("start", *queue.cli_args(), "--gearmand", wrong, "--quiet")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"Error: the gearmand address {wrong} is not where the captured command line listens "
        f"({daemon.address}): correct --gearmand / QUEUETOOL_GEARMAND / [gearmand] address or "
        "leave it out. Nothing was started"
    ]
    assert running_daemons(QueueStore(queue.url, queue.table)) == []
    started = cli("start", *queue.cli_args(), "--gearmand", daemon.address, "--quiet")
    assert started.exit_code == 0, started.output
    daemon.pid = current_pid(daemon)
    assert priority_status(daemon.port) == queue.counts() == {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}
