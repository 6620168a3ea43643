"""The admin-protocol client against a real gearmand (and against things that are not one)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from servers import (
    JobSpec,
    free_port,
    gearadmin,
    holding_worker,
    submit,
)

from queuetool.daemon.admin import Address, AdminClient, answers, version_tuple
from queuetool.errors import AdminCommandError, DaemonRefused, DaemonTimeout, NotGearmand


def test_address_parse():
    assert Address.parse("gm.example:4731") == Address("gm.example", 4731)
    assert Address.parse("gm.example") == Address("gm.example", 4730)
    assert Address.parse(":4999") == Address("127.0.0.1", 4999)
    assert Address.parse("[::1]:4731") == Address("::1", 4731)
    assert str(Address("::1", 4731)) == "[::1]:4731"
    assert version_tuple("1.1.20+ds") == (1, 1, 20)


def test_commands_against_real_daemon(sqlite_queue):
    daemon = sqlite_queue.gearmand()
    submit(
        daemon.port,
        [
            JobSpec("resize", "a", priority=0),
            JobSpec("resize", "b"),
            JobSpec("resize", "c", priority=2),
            JobSpec("mail", "d"),
        ],
    )
    with AdminClient(daemon.address) as client:
        assert client.getpid() == daemon.pid
        assert client.version().startswith("1.1.") or client.version().startswith("2.")
        prio = {p.function: p.counts for p in client.priority_status()}
        assert prio == {"resize": (1, 1, 1), "mail": (0, 1, 0)}
        status = {s.function: (s.total, s.running, s.workers) for s in client.status()}
        assert status == {"resize": (3, 0, 0), "mail": (1, 0, 0)}
        assert sorted(client.show_unique_jobs()) == ["a", "b", "c", "d"]
        assert len(client.show_jobs()) == 4
        with pytest.raises(AdminCommandError) as err:
            client.command("shutdown")
        assert err.value.code == "UNKNOWN_COMMAND"
        with pytest.raises(AdminCommandError):
            client.cancel_job("H:nowhere:999")
        # The connection survives an ERR answer.
        assert client.getpid() == daemon.pid
    # Independent path: gearadmin sees the same counts.
    assert "resize\t3\t0\t0" in gearadmin(daemon.port, "--status")

    with holding_worker(daemon.port, "mail") as held:
        assert held.data == b"x" and held.function in ("mail", b"mail")
        with AdminClient(daemon.address) as client:
            # `show jobs` cannot tell a running job from a waiting one; `status` can.
            assert all(j.queued for j in client.show_jobs())
            status = {s.function: (s.total, s.running, s.workers) for s in client.status()}
            assert status["mail"] == (1, 1, 1)
            assert any("mail" in w.functions for w in client.workers())


def test_refused_timeout_and_not_gearmand():
    port = free_port()
    with pytest.raises(DaemonRefused, match="connection refused"):
        AdminClient(f"127.0.0.1:{port}", timeout=1).getpid()
    assert answers(f"127.0.0.1:{port}") is None

    # A server that accepts and says nothing: a timeout, not a hang.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    with silent, pytest.raises(DaemonTimeout, match="did not answer"):
        AdminClient(f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.5).getpid()

    # A server that answers something else (an SSH-like banner).
    chatty = socket.socket()
    chatty.bind(("127.0.0.1", 0))
    chatty.listen()

    def serve() -> None:
        conn, _ = chatty.accept()
        with conn:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            time.sleep(0.5)

    thread = threading.Thread(target=serve)
    thread.start()
    with chatty, pytest.raises(NotGearmand, match="not a gearmand"):
        AdminClient(f"127.0.0.1:{chatty.getsockname()[1]}", timeout=2).getpid()
    thread.join()
