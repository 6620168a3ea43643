"""guard.ensure_stopped: refuse to write while the queue's own gearmand runs."""

from __future__ import annotations

import socket
import warnings

import pytest
from servers import free_port

from queuetool.daemon.guard import ForcedWhileRunning, ensure_stopped, running_daemons
from queuetool.errors import DaemonRunning, WrongDaemon
from queuetool.table.store import QueueStore


def test_refuses_while_daemon_runs_and_allows_after_stop(queue):
    daemon = queue.gearmand()
    store = QueueStore(queue.url, queue.table)
    assert [d.pid for d in running_daemons(store)] == [daemon.pid]
    with pytest.raises(DaemonRunning) as err:
        ensure_stopped(store, None, force=False)
    assert err.value.exit_code == 4
    assert f"gearmand pid {daemon.pid}" in str(err.value)
    assert "queuetool stop" in str(err.value)
    # The same queue named through the admin address only: still one reason, same pid.
    with pytest.raises(DaemonRunning, match=f"pid {daemon.pid}"):
        ensure_stopped(store, daemon.address, force=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ensure_stopped(store, daemon.address, force=True)
    forced = [w for w in caught if w.category is ForcedWhileRunning]
    assert len(forced) == 1
    assert "LIVE QUEUE" in str(forced[0].message)

    daemon.stop()
    assert running_daemons(store) == []
    ensure_stopped(store, daemon.address, force=False)


def test_other_table_or_file_is_not_this_queue(queue, tmp_path):
    daemon = queue.gearmand()
    other_table = QueueStore(queue.url, "other_queue")
    assert running_daemons(other_table) == []
    ensure_stopped(other_table, None, force=False)
    # An admin address that answers for the daemon of ANOTHER queue is refused (it
    # used to count as this queue's daemon, and the window then stopped it).
    with pytest.raises(WrongDaemon, match="belongs to another queue's daemon") as err:
        ensure_stopped(other_table, daemon.address, force=True)
    assert err.value.exit_code == 2
    assert f"table gearman_queue, not {other_table.display_url} table other_queue" in str(err.value)


def test_sqlite_path_compared_resolved(sqlite_queue, tmp_path):
    sqlite_queue.gearmand()
    link = tmp_path / "elsewhere" / "link.db"
    link.parent.mkdir()
    link.symlink_to(sqlite_queue.sqlite_path)
    with pytest.raises(DaemonRunning):
        ensure_stopped(QueueStore(f"sqlite:///{link}"), None, force=False)
    relative = QueueStore(f"sqlite:///{sqlite_queue.sqlite_path.parent}/./queue.db")
    with pytest.raises(DaemonRunning):
        ensure_stopped(relative, None, force=False)


def test_store_queue_on_shutdown_is_explained(sqlite_queue):
    sqlite_queue.gearmand("--store-queue-on-shutdown")
    with pytest.raises(DaemonRunning, match="store-queue-on-shutdown"):
        ensure_stopped(QueueStore(sqlite_queue.url), None, force=False)


def test_admin_address_states(sqlite_queue):
    store = QueueStore(sqlite_queue.url)
    ensure_stopped(store, f"127.0.0.1:{free_port()}", force=False)  # refused: not running
    with socket.socket() as silent:  # accepts, never answers: a daemon mid-replay
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(DaemonRunning, match="does not answer"):
            ensure_stopped(store, f"127.0.0.1:{silent.getsockname()[1]}", force=False)
