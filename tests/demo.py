"""`make demo`: a local gearmand on a SQLite queue under ./demo, a few hundred jobs, a report.

python tests/demo.py start   # start (or reuse) the demo daemon, submit jobs, report
python tests/demo.py stop    # SIGTERM the demo daemon by its pid and wait for it
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from servers import Gearmand, JobSpec, free_port, pid_alive, sqlite_queue_args, submit

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
STATE = DEMO / "state.json"
QUEUETOOL = Path(sys.executable).parent / "queuetool"
FUNCTIONS = ("copyFilesForPROAccounts", "copyFilesForTrialAccounts", "convert", "sendEmail")


def load_state() -> dict | None:
    """The demo daemon, if it runs. queuetool's window restarts it under a new pid with
    the same command line, which rewrites its pid file: that file has the live pid."""
    if not STATE.exists():
        return None
    state = json.loads(STATE.read_text())
    pidfile = DEMO / f"gearmand-{state['port']}.pid"
    with contextlib.suppress(OSError, ValueError):
        state["pid"] = int(pidfile.read_text().strip())
    return state if pid_alive(state["pid"]) and _is_demo_gearmand(state) else None


def _is_demo_gearmand(state: dict) -> bool:
    """Never signal a reused pid: it must be gearmand on the demo's port."""
    try:
        argv = Path(f"/proc/{state['pid']}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"gearmand") and str(state["port"]).encode() in argv


def sample_jobs(n: int = 300) -> list[JobSpec]:
    rng = random.Random(7)
    tonight = int(time.time()) + 6 * 3600
    jobs = []
    for i in range(n):
        function = rng.choice(FUNCTIONS)
        payload = json.dumps({"recording": i, "bytes": rng.randrange(10**6)}).encode()
        if i % 10 == 9:  # a tenth waits until tonight
            jobs.append(JobSpec(function, f"rec-{i:05d}", payload, when=tonight))
        else:
            jobs.append(
                JobSpec(function, f"rec-{i:05d}", payload, priority=rng.choice((0, 1, 1, 2)))
            )
    return jobs


def start() -> int:
    DEMO.mkdir(exist_ok=True)
    db = DEMO / "queue.db"
    state = load_state()
    if state is None:
        port = int(os.environ.get("DEMO_PORT", "0")) or free_port()
        daemon = Gearmand(DEMO, sqlite_queue_args(db), port=port).start()
        state = {"pid": daemon.pid, "port": daemon.port, "queue": f"sqlite:///{db}"}
        STATE.write_text(json.dumps(state))
        print(f"started gearmand pid {daemon.pid} on 127.0.0.1:{daemon.port}, queue {db}")
        count = submit(daemon.port, sample_jobs())
        print(f"submitted {count} background jobs through the gearman protocol\n")
    else:
        print(f"demo gearmand already running: pid {state['pid']} on port {state['port']}\n")
    command = [str(QUEUETOOL), "report", "--queue", state["queue"]]
    print("$ queuetool report --queue " + state["queue"])
    subprocess.run(command, check=True)
    print(
        f"\nTry: {QUEUETOOL} jobs --queue {state['queue']} --function 'copyFiles*' --limit 5\n"
        f"     gearadmin -p {state['port']} --priority-status\n"
        f"     {QUEUETOOL} reprioritise --queue {state['queue']} --function 'copyFilesForPRO*' "
        "--to high   # stops gearmand, edits, restarts it, verifies\n"
        "Stop the demo daemon with: make demo-stop"
    )
    return 0


def stop() -> int:
    state = load_state()
    if state is None:
        print("no demo gearmand is running")
        return 0
    daemon = Gearmand(DEMO, [], port=state["port"], pid=state["pid"])
    daemon.stop()
    STATE.unlink(missing_ok=True)
    print(f"stopped gearmand pid {state['pid']}; the queue stays in {DEMO / 'queue.db'}")
    return 0


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else "start"
    sys.exit({"start": start, "stop": stop}[action]())
