"""Stop and start the queue's gearmand: a safe stop and a verified start.

Two ways to do each, chosen per call (the CLI reads `[gearmand] stop`/`start`):
- a command (systemctl, supervisorctl, any shell command), or
- by default the signal way: SIGTERM to the daemon's pid, and to start, the exact
  command line captured from /proc before the stop. The capture is saved in a state
  file (mode 0600: a MySQL password may be on that command line) so that
  `queuetool start` works after `queuetool stop` in another process.

A stop is finished only when the process is gone AND the port is closed, and the
queue is confirmed at rest. A start is finished only when the daemon answers an
admin command (it opens its port before the replay) and its `prioritystatus`
equals the table's counts taken before the start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import default_snapshot_dir
from ..errors import (
    DaemonError,
    DaemonRefused,
    DaemonUnreachable,
    MigratedAway,
    ProblemsFound,
    QueuetoolWarning,
    UsageError,
    VerifyError,
    WrongDaemon,
)
from ..table.check import CheckResult
from ..table.store import QueueStore
from .admin import Address, AdminClient, FunctionStatus, WorkerInfo, open_socket
from .discover import (
    PROC,
    DaemonInfo,
    is_gearmand,
    options_from_argv,
    read_cmdline,
)
from .guard import checked_address, running_daemons
from .reload import (
    Cell,
    ReplayPrediction,
    Verification,
    compare,
    count_cells,
    daemon_cells,
    examine,
    predict_replay,
    ready_timeout,
    recommended_buckets,
)

POLL = 0.05
COMMAND_TIMEOUT = 120.0
NO_DAEMON_GRACE = 15.0  # after the start way returned, how long "nothing there" may last
KILL_GRACE = 10.0  # after a SIGKILL, how long the process and its port may take to go
CGROUP_ROOT = Path("/sys/fs/cgroup")


class DaemonWarning(QueuetoolWarning):
    """Something about stopping or starting the daemon the operator must know."""


# -- the state file -------------------------------------------------------------------


@dataclass
class DaemonState:
    """What `stop` captured so that `start` can bring the same daemon back."""

    argv: list[str]
    cwd: str | None
    uid: int | None
    gid: int | None
    pid: int | None
    address: str
    queue: str  # masked
    table: str
    stopped_at: float | None = None
    store_queue_on_shutdown: bool = False
    # Set by a migration away from this queue: `start` refuses until told otherwise.
    migrated_to: str | None = None
    migrated_at: float | None = None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> DaemonState | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DaemonError(f"cannot read the daemon state file {path}: {exc}") from exc
        try:
            return cls(**data)
        except TypeError as exc:  # written by another version, or edited by hand
            raise DaemonError(
                f"{path} is not a daemon state file queuetool can read ({exc}); "
                "start gearmand with [gearmand] start in the config, or by hand"
            ) from exc


def mark_migrated(store: QueueStore, to: str, state_dir: Path | None = None) -> None:
    """Record that this queue's jobs were migrated to `to` (masked): its daemon started
    on it again would run them a second time, so `start` refuses (see `start`)."""
    path = state_path(store, state_dir)
    state = DaemonState.load(path) or DaemonState(
        [], None, None, None, None, "", store.display_url, store.table_name
    )
    state.migrated_to, state.migrated_at = to, time.time()
    state.save(path)


def ensure_not_migrated(store: QueueStore, state_dir: Path | None = None) -> None:
    """Raise MigratedAway when a migration moved this queue's jobs to another queue."""
    state = DaemonState.load(state_path(store, state_dir))
    if state is None or not state.migrated_to:
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.migrated_at or 0))
    raise MigratedAway(
        f"not starting gearmand: this queue was migrated to {state.migrated_to} at {when}, "
        "and its jobs would run a second time; start gearmand on the new queue, or add "
        "--after-migration to start it on this one anyway"
    )


def clear_migrated(store: QueueStore, state_dir: Path | None = None) -> None:
    """A migration INTO this queue: it holds the jobs now, so its daemon may start."""
    path = state_path(store, state_dir)
    state = DaemonState.load(path)
    if state is not None and state.migrated_to is not None:
        state.migrated_to = state.migrated_at = None
        state.save(path)


def state_path(store: QueueStore, state_dir: Path | None = None) -> Path:
    """Where the captured command line of this queue's daemon is kept."""
    base = state_dir or default_snapshot_dir().parent / "daemons"
    key = hashlib.sha256(f"{store.display_url}|{store.table_name}".encode()).hexdigest()[:16]
    return Path(base) / f"gearmand-{key}.json"


# -- processes --------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; only its parent has not reaped it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def port_open(address: Address) -> bool:
    try:
        with open_socket(address, 1.0):
            return True
    except DaemonRefused:
        return False
    except DaemonUnreachable:
        return True  # accepted but slow: something still listens


def _owner(pid: int) -> tuple[int | None, int | None]:
    try:
        st = os.stat(f"/proc/{pid}")
        return st.st_uid, st.st_gid
    except OSError:
        return None, None


def _service_unit(pid: int, proc: Path = PROC, cgroup_root: Path = CGROUP_ROOT) -> str | None:
    """The systemd service that runs gearmand `pid` as its own program, if any (its
    Restart= may start it again behind queuetool's back).

    A service whose cgroup holds other programs too (cron.service, a CI runner's unit)
    only happens to contain a gearmand started from it, by hand or by queuetool's own
    restart: stopping that unit is not the way to stop gearmand, so it is not named.
    """
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3 or parts[1] not in ("", "name=systemd"):  # v2, or v1's systemd
            continue
        path = parts[2]
        units = [p for p in path.split("/") if p.endswith(".service") and not p.startswith("user@")]
        if units and not _shared_cgroup(path, proc, cgroup_root):
            return units[-1]
    return None


def _shared_cgroup(path: str, proc: Path, cgroup_root: Path) -> bool:
    """Whether a program other than gearmand is in this cgroup (False when unreadable)."""
    rel = path.strip("/")
    for base in (cgroup_root, cgroup_root / "unified", cgroup_root / "systemd"):
        try:
            pids = (base / rel / "cgroup.procs").read_text().split()
        except OSError:
            continue
        return any(not is_gearmand(read_cmdline(int(p), proc) or ()) for p in pids)
    return False


def log_tail(info_argv: list[str] | tuple[str, ...] | None, lines: int = 8) -> str:
    if not info_argv:
        return ""
    log = options_from_argv(info_argv).get("log-file")
    if not log or log in ("stderr", "none"):
        return ""
    try:
        text = Path(log).read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f" (log {log}: " + " | ".join(t.strip() for t in text) + ")"


# -- stop -------------------------------------------------------------------------------


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
            "it would lose its whole queue; a maintenance window never does that. "
            "Nothing was stopped (`queuetool stop --kill-after` does it if you accept "
            "the loss)"
        )
    method = f"command: {stop_command}" if stop_command else "signal"
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
        unit = _service_unit(info.pid or 0)
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
        uid, gid = _owner(info.pid or 0)
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
        _run_command(stop_command, "stop")
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
                    "it writes its queue only at a clean shutdown, so the WHOLE QUEUE IS LOST "
                    "(its table stayed empty while it ran: no snapshot taken since holds it)",
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


def _run_command(command: str, what: str) -> None:
    try:
        done = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise DaemonError(
            f"the {what} command did not finish in {COMMAND_TIMEOUT:g}s: {command}"
        ) from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()
        raise DaemonError(
            f"the {what} command failed (exit {done.returncode}): {command}"
            + (f": {output[-1]}" if output else "")
        )


# -- start ------------------------------------------------------------------------------


@dataclass
class StartResult:
    """What a verified start did, and how long the daemon was away."""

    pid: int | None
    address: str
    method: str
    argv: tuple[str, ...]
    check: CheckResult
    prediction: ReplayPrediction
    ready_seconds: float = 0.0
    verification: Verification | None = None
    downtime: float | None = None
    notes: list[str] = field(default_factory=list)


def with_buckets(argv: list[str] | tuple[str, ...], buckets: int) -> list[str]:
    """The command line with `--hashtable-buckets` set to `buckets` (any old value removed)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--hashtable-buckets":
            skip = True
            continue
        if arg.startswith("--hashtable-buckets="):
            continue
        out.append(arg)
    return [*out, f"--hashtable-buckets={buckets}"]


def start(
    store: QueueStore,
    *,
    address: str | None = None,
    start_command: str | None = None,
    hashtable_buckets: int | str | None = None,
    state_dir: Path | None = None,
    check_first: bool = True,
    timeout: float | None = None,
    stopped_at: float | None = None,
    checked: CheckResult | None = None,
    expected: dict[Cell, int] | None = None,
    after_migration: bool = False,
) -> StartResult:
    """Start the queue's gearmand and verify it reloaded exactly the table.

    Refuses (ProblemsFound) when `check` finds rows gearmand cannot replay. The
    signal way starts the command line saved by `stop` (`hashtable_buckets` N or
    "auto" rewrites it); `start_command` runs that instead. Raises DaemonError when
    the daemon does not come up or dies, VerifyError (with `.result`) when its counts
    differ from the table's. `checked` and `expected` are a `check` of the table as it
    is now and its counts per cell (`reload.examine`; the window has just read them
    with the daemon stopped): given, they save two full scans. Refuses (MigratedAway) a
    queue that was migrated away from, unless `after_migration`.
    """
    path = state_path(store, state_dir)
    state = DaemonState.load(path)
    if not after_migration:
        ensure_not_migrated(store, state_dir)
    if find_daemon(store) is not None:
        raise DaemonError("gearmand already runs on this queue: `queuetool status` shows it")
    if checked is None or expected is None:
        checked, expected = examine(store)
    if check_first and not checked.startable:
        raise ProblemsFound(
            f"not starting gearmand: {checked.summary()} (gearmand would fail or crash "
            "replaying them); see `queuetool check`, or restore the last snapshot"
        )
    jobs = sum(expected.values())
    argv: list[str] = list(state.argv) if state else []
    buckets = options_from_argv(argv).hashtable_buckets if argv else 991
    if hashtable_buckets is not None:
        if start_command:
            raise DaemonError(
                "--hashtable-buckets needs the signal way: put it in your start command instead"
            )
        buckets = (
            recommended_buckets(jobs) if hashtable_buckets == "auto" else int(hashtable_buckets)
        )
        argv = with_buckets(argv, buckets)
    prediction = predict_replay(jobs, buckets)
    if (state is None or not state.argv) and not start_command:
        raise DaemonError(
            f"no captured gearmand command line for this queue ({path} missing): start it "
            'yourself, or set [gearmand] start = "..." in the config'
        )
    captured = state.address if state and state.address else "127.0.0.1:4730"
    addr = Address.parse(address or captured)
    listens = options_from_argv(argv).address if argv and not start_command else None
    if address and listens is not None and addr.port != listens.port:
        # Waiting for an answer where the daemon cannot listen would end in a time-out
        # with the daemon up all the same: refuse before anything is started.
        raise WrongDaemon(
            f"the gearmand address {addr} is not where the captured command line listens "
            f"({listens}): correct --gearmand / QUEUETOOL_GEARMAND / [gearmand] address or "
            "leave it out. Nothing was started"
        )
    sos = state.store_queue_on_shutdown if state else False
    result = StartResult(
        None,
        str(addr),
        f"command: {start_command}" if start_command else "signal",
        tuple(argv),
        checked,
        prediction,
    )
    began = time.monotonic()
    if start_command:
        _run_command(start_command, "start")
    else:
        assert state is not None
        _spawn(argv, state)
    wait = timeout if timeout is not None else ready_timeout(jobs, buckets)
    pid, cells, running = _wait_ready(store, addr, argv, began, wait)
    result.pid = pid
    result.ready_seconds = time.monotonic() - began
    result.verification = compare(expected, cells, running)
    if not result.verification.ok and not sos:
        # Only a mismatch needs the table re-read (workers may have taken jobs since
        # the start); a match is proof already, and the re-read is a full scan.
        result.verification = compare(expected, cells, running, count_cells(store))
    stopped = stopped_at if stopped_at is not None else (state.stopped_at if state else None)
    if stopped is not None:
        result.downtime = time.time() - stopped
    if not result.verification.ok:
        error = VerifyError(result.verification.summary())
        error.result = result  # type: ignore[attr-defined]
        raise error
    if state is not None:
        state.pid, state.stopped_at = pid, None
        state.migrated_to = state.migrated_at = None  # started here on purpose
        state.argv = argv or state.argv
        state.save(path)
    return result


def _spawn(argv: list[str], state: DaemonState) -> None:
    """Run the captured command line as the user it ran as (when we may)."""
    kwargs: dict = {}
    if os.geteuid() == 0 and state.uid not in (None, 0):
        kwargs.update(user=state.uid, group=state.gid)
    cwd = state.cwd if state.cwd and Path(state.cwd).is_dir() else "/"
    if options_from_argv(argv).flag("daemon"):
        # gearmand -d forks; the parent exits once the child is set up (before replay).
        try:
            done = subprocess.run(
                argv, cwd=cwd, capture_output=True, text=True, timeout=60, **kwargs
            )
        except OSError as exc:
            raise DaemonError(f"cannot run {argv[0]}: {exc.strerror}") from exc
        except subprocess.TimeoutExpired as exc:
            # Not str(exc): it holds the whole command line, MySQL password included.
            raise DaemonError(f"{argv[0]} did not return within {exc.timeout:g}s") from exc
        if done.returncode != 0:
            raise DaemonError(
                f"gearmand exited {done.returncode} at start: "
                f"{(done.stderr or done.stdout).strip()[:300]}{log_tail(argv)}"
            )
        return
    try:
        subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in queuetool's process group: Ctrl-C is not for it
            **kwargs,
        )
    except OSError as exc:
        raise DaemonError(f"cannot run {argv[0]}: {exc}") from exc


def _fresh_pid(pid_file: Path | None, since: float) -> int | None:
    """The pid in gearmand's pid file if the file was written by this start."""
    try:
        if pid_file is None or pid_file.stat().st_mtime < since - 1:
            return None
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _wait_ready(
    store: QueueStore, addr: Address, argv: list[str], began: float, wait: float
) -> tuple[int | None, dict, dict]:
    """Until an admin command is answered; then the counts, read at once (before workers)."""
    seen_pid: int | None = None
    pid_file = options_from_argv(argv).pid_file if argv else None
    wall_start = time.time() - (time.monotonic() - began)
    while True:
        elapsed = time.monotonic() - began
        if seen_pid is None:
            daemons = running_daemons(store)
            seen_pid = daemons[0].pid if daemons else _fresh_pid(pid_file, wall_start)
        elif not pid_alive(seen_pid):
            raise DaemonError(
                f"gearmand pid {seen_pid} died during start-up (replay failed or it "
                f"crashed){log_tail(argv)}"
            )
        try:
            with AdminClient(addr, max(0.5, min(2.0, wait - elapsed))) as client:
                pid = client.getpid()
                cells, running = daemon_cells(client)
                return pid, cells, running
        except DaemonRefused:
            if seen_pid is None and elapsed > NO_DAEMON_GRACE:
                raise DaemonError(
                    f"no gearmand came up at {addr} within {NO_DAEMON_GRACE:g}s of the start"
                    f"{log_tail(argv)}"
                ) from None
        except DaemonUnreachable:
            pass  # accepted but busy: the replay is running
        if elapsed > wait:
            raise DaemonError(
                f"gearmand at {addr} did not answer within {wait:.0f}s of the start{log_tail(argv)}"
            )
        time.sleep(POLL)


def uptime(pid: int) -> float | None:
    """Seconds since the process started, from /proc (None when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return max(0.0, time.time() - started)
