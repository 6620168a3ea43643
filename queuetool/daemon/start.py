"""Start the queue's gearmand and verify it reloaded exactly the table.

Two ways, chosen per call (the CLI reads `[gearmand] start`): a command, or by default
the command line `stop` captured (state.py), run as the user it ran as. A start is
finished only when the daemon answers an admin command (it opens its port before the
replay) and its `prioritystatus` equals the table's counts taken before the start.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import (
    DaemonError,
    DaemonRefused,
    DaemonUnreachable,
    ProblemsFound,
    VerifyError,
    WrongDaemon,
)
from ..table.check import CheckResult
from ..table.store import QueueStore
from .admin import Address, AdminClient
from .discover import options_from_argv
from .guard import running_daemons
from .process import pid_alive, run_command, shown_command
from .reload import (
    Cell,
    ReloadVerification,
    ReplayPrediction,
    compare,
    count_cells,
    daemon_cells,
    examine,
    predict_replay,
    ready_timeout,
    recommended_buckets,
)
from .state import DaemonState, ensure_not_migrated, state_path
from .stop import find_daemon

POLL = 0.05
NO_DAEMON_GRACE = 15.0  # after the start way returned, how long "nothing there" may last


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
    verification: ReloadVerification | None = None
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
        assert expected is not None  # examine counts unless told not to
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
        f"command: {shown_command(start_command)}" if start_command else "signal",
        tuple(argv),
        checked,
        prediction,
    )
    began = time.monotonic()
    if start_command:
        run_command(start_command, "start")
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
        raise VerifyError(result.verification.summary(), result=result)
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


def log_tail(info_argv: list[str] | tuple[str, ...] | None, lines: int = 8) -> str:
    """The last lines of the log file a gearmand command line names (empty when it
    logs nowhere readable), for an error that says why the daemon failed."""
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
