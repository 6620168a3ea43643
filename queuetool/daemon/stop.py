"""Stop the queue's gearmand safely.

Two ways, chosen per call (the CLI reads `[gearmand] stop`): a command (systemctl,
supervisorctl, any shell command), or by default SIGTERM to the daemon's pid, after its
exact command line is captured from /proc into the state file (state.py) so that
`queuetool start` works after `queuetool stop` in another process.

A stop is finished only when the process is gone AND the port is closed, and the
queue is confirmed at rest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DaemonError, DaemonUnreachable, QueuetoolWarning, UsageError
from ..table.store import QueueStore
from .admin import Address, AdminClient, FunctionStatus, WorkerInfo
from .discover import DaemonInfo
from .guard import checked_address, running_daemons
from .process import (
    owner,
    pid_alive,
    port_open,
    read_cmdline,
    run_command,
    service_unit,
    shown_command,
)
from .state import DaemonState, state_path

POLL = 0.05
KILL_GRACE = 10.0  # after a SIGKILL, how long the process and its port may take to go


class DaemonWarning(QueuetoolWarning):
    """Something about stopping or starting the daemon the operator must know."""


@dataclass
class StopResult:
    """What a stop found and did."""

    pid: int | None
    address: str | None
    method: str  # "signal" or "command: ..."
    argv: tuple[str, ...] = ()
    status: list[FunctionStatus] = field(default_factory=list)
    workers: list[WorkerInfo] = field(default_factory=list)
    running: dict[str, int] = field(default_factory=dict)  # when the stop began
    still_running: dict[str, int] = field(default_factory=dict)  # left after --drain
    drain_seconds: float = 0.0
    killed: bool = False
    stopped_at: float | None = None  # epoch: the daemon stopped serving
    stop_seconds: float = 0.0  # from SIGTERM / the stop command to gone + port closed
    at_rest: bool = False
    state_file: Path | None = None
    store_queue_on_shutdown: bool = False
    already_stopped: bool = False
    recorded: bool = False  # status and workers were read before the stop
    notes: list[str] = field(default_factory=list)

    @property
    def queued(self) -> int:
        return sum(s.total for s in self.status)


def find_daemon(store: QueueStore, address: str | None = None) -> DaemonInfo | None:
    """The one local gearmand whose command line names this queue, or None.

    An `address` must answer for that very daemon (`guard.checked_address`, else
    WrongDaemon): a daemon is never picked because it merely answers there, and a
    wrong address is never quietly replaced by the daemon a scan found.
    """
    daemons = running_daemons(store)
    if len(daemons) > 1:
        pids = ", ".join(str(d.pid) for d in daemons)
        raise DaemonError(f"several gearmand processes use this queue (pids {pids}): stop them")
    if address:
        checked_address(store, address, daemons)
    return daemons[0] if daemons else None


def stop(
    store: QueueStore,
    *,
    address: str | None = None,
    drain: float | None = None,
    kill_after: float | None = None,
    timeout: float = 60.0,
    stop_command: str | None = None,
    state_dir: Path | None = None,
    may_lose_queue: bool = True,
) -> StopResult:
    """Stop the queue's gearmand safely; returns what was recorded and how long it took.

    Records status, workers and running jobs; with `drain`, waits up to that many
    seconds for running jobs to finish; stops (SIGTERM, or `stop_command`); waits
    until the process is gone and the port closed, up to `timeout`; SIGKILLs only
    after `kill_after` seconds; then confirms the queue is at rest. A kill loses the
    whole queue of a --store-queue-on-shutdown daemon: it warns, or with
    `may_lose_queue` False (the maintenance window) refuses before anything is done.
    """
    info = find_daemon(store, address)
    if (
        kill_after is not None
        and not may_lose_queue
        and info is not None
        and info.options.store_queue_on_shutdown
    ):
        raise UsageError(
            "--kill-after: this gearmand runs with --store-queue-on-shutdown, so killing "
            "it would lose every job submitted since it started; a maintenance window never "
            "does that. "
            "Nothing was stopped (`queuetool stop --kill-after` does it if you accept "
            "the loss)"
        )
    method = f"command: {shown_command(stop_command)}" if stop_command else "signal"
    addr = Address.parse(address) if address else (info.options.address if info else None)
    result = StopResult(info.pid if info else None, str(addr) if addr else None, method)
    path = state_path(store, state_dir)
    result.state_file = path
    if info is None and (addr is None or not port_open(addr)):
        result.already_stopped = True
        result.at_rest = _confirm_at_rest(store, result)
        return result
    if info is None and not stop_command:
        raise DaemonError(
            f"gearmand at {addr} is not a local process that queuetool can signal: "
            'set [gearmand] stop = "..." and start = "..." in the config'
        )
    if info is not None:
        result.argv = info.argv
        result.store_queue_on_shutdown = info.options.store_queue_on_shutdown
        unit = service_unit(info.pid or 0)
        if unit and not stop_command:
            warnings.warn(
                f"gearmand pid {info.pid} runs under systemd unit {unit}: its Restart= may "
                f"start it again behind queuetool's back; set [gearmand] stop = \"systemctl "
                f'stop {unit}" and start = "systemctl start {unit}"',
                DaemonWarning,
                stacklevel=2,
            )
    assert addr is not None
    _record(addr, result, drain)
    if info is not None:
        uid, gid = owner(info.pid or 0)
        DaemonState(
            argv=list(info.argv),
            cwd=str(info.options.cwd) if info.options.cwd else None,
            uid=uid,
            gid=gid,
            pid=info.pid,
            address=str(addr),
            queue=store.display_url,
            table=store.table_name,
            store_queue_on_shutdown=info.options.store_queue_on_shutdown,
        ).save(path)
    began = time.monotonic()
    result.stopped_at = time.time()
    if stop_command:
        run_command(stop_command, "stop")
    else:
        assert info is not None and info.pid is not None
        try:
            os.kill(info.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise DaemonError(
                f"not allowed to signal gearmand pid {info.pid} (run as its user or root, "
                "or set [gearmand] stop/start commands)"
            ) from exc
    _wait_stopped(info, addr, began, timeout, kill_after, result)
    result.stop_seconds = time.monotonic() - began
    result.at_rest = _confirm_at_rest(store, result)
    state = DaemonState.load(path)
    if state is not None:
        state.stopped_at = result.stopped_at
        state.save(path)
    return result


def _record(addr: Address, result: StopResult, drain: float | None) -> None:
    try:
        with AdminClient(addr, 5.0) as client:
            result.status = client.status()
            result.workers = client.workers()
            result.running = {s.function: s.running for s in result.status if s.running}
            result.recorded = True
            if drain:
                began = time.monotonic()
                still = dict(result.running)
                while still and time.monotonic() - began < drain:
                    time.sleep(0.2)
                    still = {s.function: s.running for s in client.status() if s.running}
                result.still_running = still
                result.drain_seconds = time.monotonic() - began
                if still:
                    listing = ", ".join(f"{f} ({n})" for f, n in sorted(still.items()))
                    result.notes.append(
                        f"--drain {drain:g}s ran out with jobs still running: {listing}; "
                        "they stay in the queue and run again after the restart"
                    )
    except DaemonUnreachable as exc:
        result.notes.append(f"could not record the daemon's state before stopping: {exc}")


def _wait_stopped(
    info: DaemonInfo | None,
    addr: Address,
    began: float,
    timeout: float,
    kill_after: float | None,
    result: StopResult,
) -> None:
    pid = info.pid if info else None
    # A --kill-after beyond --timeout still gets its SIGKILL, and the kill its grace.
    limit = timeout if kill_after is None else max(timeout, kill_after + KILL_GRACE)
    sent = "SIGTERM" if result.method == "signal" else "the stop command"
    while True:
        elapsed = time.monotonic() - began
        gone = pid is None or not pid_alive(pid)
        if gone and not port_open(addr):
            return
        if (
            not gone
            and kill_after is not None
            and elapsed >= kill_after
            and not result.killed
            and info is not None
            and read_cmdline(pid or 0) == info.argv  # the same process, not a reused pid
        ):
            if result.store_queue_on_shutdown:
                warnings.warn(
                    f"SIGKILL to gearmand pid {pid}, which runs with --store-queue-on-shutdown: "
                    "it writes its queue only at a clean shutdown, so EVERY JOB SUBMITTED SINCE IT "
                    "STARTED IS LOST (its table held only what it started with: no snapshot "
                    "taken since holds them)",
                    DaemonWarning,
                    stacklevel=3,
                )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid or 0, signal.SIGKILL)
            result.killed = True
            result.notes.append(
                f"gearmand pid {pid} was still running {elapsed:.1f}s after {sent}: "
                "sent SIGKILL (--kill-after)"
            )
        if elapsed > limit:
            what = f"pid {pid} still runs" if not gone else f"port {addr} still open"
            message = f"gearmand did not stop within {limit:g}s ({what})"
            if gone and pid is not None:
                # A SIGKILL to the old pid cannot help: another process has the port.
                message += (
                    f"; gearmand pid {pid} is gone but something listens at {addr} "
                    "(restarted by a service manager's Restart=?); look at what listens there"
                )
            elif result.killed:
                message += ", even after SIGKILL: look at the process"
            elif kill_after is None and pid is not None:
                message += (
                    "; nothing was changed. Use --kill-after SECONDS to SIGKILL it, "
                    "or look at its log"
                )
            else:
                message += "; nothing was changed. Look at its log"
            raise DaemonError(message)
        time.sleep(POLL)


def _confirm_at_rest(store: QueueStore, result: StopResult) -> bool:
    """No daemon uses the queue, and nobody holds it (SQLite: a lock on the file)."""
    others = running_daemons(store)
    if others:
        raise DaemonError(
            "after the stop, gearmand still uses this queue: pid "
            + ", ".join(str(d.pid) for d in others)
        )
    problem = store.dialect.still_held(store.url)
    if problem is not None:
        raise DaemonError(problem)
    return True
