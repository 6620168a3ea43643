"""The test bed itself: ports no other test run can take, and daemons known by their pid.

Two concurrent test runs on one machine once flaked: a port handed out by "bind port 0,
close" was taken before our gearmand bound it, so another run's daemon answered for
ours (and ours, stuck in its bind retry, ignored SIGTERM).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from servers import PORT_LOCKS, Gearmand, free_port, pid_alive

TESTS = Path(__file__).parent


def test_free_port_is_outside_the_ephemeral_range_and_locked():
    port = free_port()
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert not low <= port <= high  # no connect() or bind(0) is given it by the kernel
    # Another process (another test run) can neither lock it nor be handed it.
    probe = (
        "import fcntl, os, sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "import servers\n"
        f"fd = os.open({str(PORT_LOCKS)!r}, os.O_RDWR)\n"
        "try:\n"
        f"    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, {port})\n"
        "    print('locked')\n"
        "except OSError:\n"
        "    print('held')\n"
        f"print({port} in [servers.free_port() for _ in range(300)])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["held", "False"]


def test_a_port_answered_by_another_daemon_is_not_taken_for_ours(tmp_path):
    first = Gearmand(tmp_path / "first", []).start()
    try:
        second = Gearmand(tmp_path / "second", [], port=first.port)
        with pytest.raises(RuntimeError, match=rf"answered by pid {first.pid}, not by our"):
            second.start()
        # Ours sat in gearmand's bind retry, deaf to SIGTERM: it was SIGKILLed.
        started = int(second.pidfile.read_text())
        assert second.pid is None and not pid_alive(started)
        assert first.running()
    finally:
        first.stop()
