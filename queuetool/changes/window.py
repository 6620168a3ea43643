"""The maintenance window: stop -> change -> check -> start -> verify, or roll back.

The change itself is the caller's (`change()` takes a snapshot and edits, see
`UndoableChange`), so the window works for any edit. Whatever happens after the stop,
the window ends with the daemon running on a queue it can replay (unless `no_restart`):
- the edit leaves rows gearmand cannot replay, the daemon does not come up, dies
  in its replay, or comes up with other counts -> stop the daemon the restart
  brought up (if it runs: the table is never restored under a running daemon),
  restore the snapshot, start again, verify, raise VerifyError (exit 5) saying
  what happened;
- SIGINT/SIGTERM during the window is held until the window can end cleanly: before
  the change is committed it rolls back (restores), after it the window finishes;
  either way the daemon is started and Aborted (exit 3) says what was done.
Every failure message ends with what a probe measured at that moment (`guard.measure`:
daemon up or down, its pid, whether its counts equal the table's), never a guess.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from ..config import DEFAULT_KEEP
from ..daemon.discover import process_info
from ..daemon.guard import admin_state, measure, running_daemons
from ..daemon.reload import examine
from ..daemon.start import StartResult, start
from ..daemon.state import DaemonState, state_path
from ..daemon.stop import StopResult, stop
from ..errors import Aborted, DaemonError, ProblemsFound, QueuetoolError, VerifyError
from ..table.check import CheckResult, check
from ..table.store import QueueStore
from .apply import EditResult, Undo, apply_edits
from .kinds import Edit, Repair
from .restore import RestoreResult, check_target, restore
from .snapshot import verify


class UndoableChange(Protocol):
    """What `change()` returns: where the pre-edit snapshot is and how to put it back."""

    @property
    def snapshot(self) -> Path:
        """Where the pre-edit snapshot is (read-only: an attribute or a property)."""
        ...

    #: A clean `check` of the whole table that holds for the table the change left (an
    #: edit sets valid values only), or None: the window checks the table itself.
    checked: CheckResult | None

    def restore(self) -> Path | None:
        """Put the table back as the snapshot holds it; may return where the replaced
        (failed-edit) rows were saved."""
        ...


@dataclass
class WindowResult:
    """What a maintenance window did: the stop, the change, the start and, when the
    restart did not verify, the rollback."""

    stopped: StopResult
    change: UndoableChange | None = None
    started: StartResult | None = None
    rolled_back: bool = False
    interrupted: str | None = None  # the signal's name, when one arrived
    notes: list[str] = field(default_factory=list)

    @property
    def downtime(self) -> float | None:
        return self.started.downtime if self.started else None


class _Deferred:
    """Holds SIGINT/SIGTERM during the window instead of letting them tear it apart."""

    def __init__(self) -> None:
        self.signal: str | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Deferred]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set in the main thread
            return

        def hold(signum: int, frame: object) -> None:
            if self.signal is None:
                self.signal = signal.Signals(signum).name

        old = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)


def window(
    store: QueueStore,
    change: Callable[[], UndoableChange],
    *,
    address: str | None = None,
    drain: float | None = None,
    kill_after: float | None = None,
    stop_timeout: float = 60.0,
    stop_command: str | None = None,
    start_command: str | None = None,
    hashtable_buckets: int | str | None = None,
    state_dir: Path | None = None,
    no_restart: bool = False,
    check_before_start: bool = True,
) -> WindowResult:
    """Run `change()` with the queue's daemon stopped, then bring it back verified.

    `check_before_start=False` skips the refusal of unreplayable rows (so that the
    crash-and-roll-back path can be exercised); the rollback still happens.
    """
    deferred = _Deferred()
    with deferred.installed():
        result = WindowResult(
            stop(
                store,
                address=address,
                drain=drain,
                kill_after=kill_after,
                timeout=stop_timeout,
                stop_command=stop_command,
                state_dir=state_dir,
                may_lose_queue=False,
            )
        )
        restart = not no_restart and not result.stopped.already_stopped
        starter = _Starter(
            address=address,
            start_command=start_command,
            state_dir=state_dir,
            stopped_at=result.stopped.stopped_at,
        )
        stopper = dict(
            address=address,
            kill_after=kill_after,
            timeout=stop_timeout,
            stop_command=stop_command,
            state_dir=state_dir,
        )
        probe = address or result.stopped.address  # where a final message asks the daemon
        if deferred.signal:
            result.interrupted = deferred.signal
            _restart(store, result, restart, starter, "nothing was changed", probe)
            tail = _tail(store, result, probe)
            raise Aborted(f"{deferred.signal} during the stop: nothing was changed{tail}")
        try:
            result.change = change()
        except BaseException as exc:
            # The edit is one transaction: a failure left the table as it was.
            if restart:
                _restart(store, result, restart, starter, "the edit failed, nothing changed", probe)
            if isinstance(exc, QueuetoolError):
                exc.args = (str(exc) + _tail(store, result, probe),)
            raise
        snap = result.change.snapshot
        if deferred.signal:
            result.interrupted = deferred.signal
            why = f"{deferred.signal} during the edit"
            failed = _undo(store, result, restart, starter, why, probe)
            raise Aborted(
                f"{why}: it was rolled back to {snap}" + _kept(failed) + _tail(store, result, probe)
            )
        vouched = getattr(result.change, "checked", None)  # a caller's change may not vouch
        try:
            checked, expected = examine(store, count=restart, checked=vouched)
        except (QueuetoolError, SQLAlchemyError) as exc:
            why = f"reading the table after the edit failed: {exc}"
            failed = _undo(store, result, restart, starter, why, probe)
            raise VerifyError(
                f"{why}; rolled back to {snap}{_kept(failed)}{_tail(store, result, probe)}"
            ) from exc
        if check_before_start and not checked.startable:
            why = f"the edit left rows gearmand cannot replay ({checked.summary()})"
            failed = _undo(store, result, restart, starter, why, probe)
            raise VerifyError(
                f"{why}: rolled back to {snap}{_kept(failed)}{_tail(store, result, probe)}"
            )
        if not restart:
            return result
        try:
            result.started = start(
                store,
                hashtable_buckets=hashtable_buckets,
                check_first=check_before_start,
                checked=checked,  # the table is as just read: no second pair of scans
                expected=expected,
                **starter,
            )
        except (QueuetoolError, SQLAlchemyError) as exc:
            # Any failure of the start (it did not come up, other counts, a refusal, the
            # database gone while it verified) ends the same way: undo, then start again.
            what = f"after the edit gearmand failed: {exc}"
            stopped = _stop_restarted(store, result, stopper, exc, what, probe)
            failed = _undo(store, result, True, starter, what, probe)
            raise VerifyError(
                f"{what}; {stopped}rolled back to {snap}{_kept(failed)}"
                f"{_tail(store, result, probe)}"
            ) from exc
        if deferred.signal:
            # The change was committed and verified: finishing was the safe choice.
            result.interrupted = deferred.signal
            result.notes.append(
                f"{deferred.signal} arrived after the edit was committed: the window was "
                "finished, not rolled back"
            )
        return result


def _undo(
    store: QueueStore,
    result: WindowResult,
    restart: bool,
    starter: _Starter,
    why: str,
    probe: str | None,
) -> Path | None:
    """Roll the edit back, then start the daemon again, whatever the rollback did: the
    window never ends with the daemon down because an undo failed. Returns where the
    failed edit's rows were kept; raises VerifyError when the rollback itself failed
    (the edit then stays, on a daemon started again on it)."""
    snap = result.change.snapshot if result.change is not None else None
    try:
        failed = _roll_back(store, result)
    except BaseException as exc:
        done = f"{why}; rolling back to {snap} failed ({exc}), so the edit stays"
        _restart(store, result, restart, starter, done, probe)
        raise VerifyError(f"{done}{_tail(store, result, probe)}") from exc
    _restart(store, result, restart, starter, f"{why}; rolled back to {snap}", probe)
    return failed


def _roll_back(store: QueueStore, result: WindowResult) -> Path | None:
    """Restore the snapshot; returns where the failed edit's rows were kept, if anywhere
    (an edit's undo keeps them as a snapshot of what it replaces)."""
    assert result.change is not None
    kept = result.change.restore()
    result.rolled_back = True
    return kept


def _stop_restarted(
    store: QueueStore,
    result: WindowResult,
    stopper: dict[str, Any],
    failure: BaseException,
    what: str,
    probe: str | None,
) -> str:
    """Stop the daemon a failed start left running, so that the snapshot is never
    restored under it (it would go on serving, and later write, the edited queue).

    Only a daemon proven to be this queue's is stopped: a local process whose command
    line names the queue, or (the command way, a daemon not visible here) what answers
    at the queue's address. Its captured command line is kept as the original's, so the
    rollback starts the daemon as it ran before the window. Returns a phrase for the
    final message; raises DaemonError, with the table NOT rolled back, when the stop fails.
    """
    assert result.change is not None
    mine = running_daemons(store)
    address = stopper["address"]
    answer = admin_state(address) if address and not mine and stopper["stop_command"] else None
    # Not a process here (another host, a container): only the stop command can reach it.
    remote = answer is not None and (answer[0] is None or process_info(answer[0]) is None)
    partial = failure.result if isinstance(failure, VerifyError) else None
    pid = partial.pid if partial is not None else None
    other = ""
    if pid is not None and pid not in {d.pid for d in mine} and not remote:
        other = (
            f"gearmand pid {pid} answered after the start but its command line does not "
            "name this queue: not stopped; "
        )
    if not mine and not remote:
        return other
    path = state_path(store, stopper["state_dir"])
    captured = DaemonState.load(path)
    try:
        stopped = stop(
            store, **{**stopper, "address": address if remote else None}, may_lose_queue=False
        )
    except QueuetoolError as exc:
        raise DaemonError(
            f"{what}; stopping the daemon the restart brought up failed ({exc}), so the table "
            f"was NOT rolled back: the edit stays, its undo is {result.change.snapshot}; "
            + measure(store, probe).summary()
        ) from exc
    if captured is not None:
        captured.save(path)
    return f"{other}the daemon the restart brought up (pid {stopped.pid}) was stopped; "


class _Starter(TypedDict):
    """The arguments of `start` a window's every restart passes."""

    address: str | None
    start_command: str | None
    state_dir: Path | None
    stopped_at: float | None


def _restart(
    store: QueueStore,
    result: WindowResult,
    restart: bool,
    starter: _Starter,
    done: str,
    probe: str | None,
) -> None:
    """Start the daemon again after a window that did not finish; `done` says what
    happened to the table, for the message when this start fails too."""
    if not restart:
        if not result.stopped.already_stopped:  # it was not running: nothing to leave
            result.notes.append("gearmand left stopped (--no-restart)")
        return
    try:
        result.started = start(store, **starter)
    except QueuetoolError as exc:
        measured = measure(store, probe)
        head = "GEARMAND IS DOWN" if not measured.up else "GEARMAND DID NOT START CLEANLY"
        raise DaemonError(
            f"{head}: {done}, then starting it failed: {exc}; {measured.summary()}"
        ) from exc


def _kept(path: Path | None) -> str:
    return f"; the failed edit's rows are in {path}" if path else ""


def _tail(store: QueueStore, result: WindowResult, probe: str | None) -> str:
    """How the window ended: the restart's own verification, then a fresh probe."""
    text = ""
    if result.started is not None:
        v = result.started.verification
        text = f"; gearmand restarted (pid {result.started.pid})" + (
            f" and {v.summary()}" if v else ""
        )
    return f"{text}; {measure(store, probe).summary()}"


# -- edits in a window -----------------------------------------------------------------


@dataclass
class EditWindowResult:
    """An edit run inside a maintenance window: the window, and the edits' result."""

    window: WindowResult
    edits: EditResult | None  # None when the window stopped before the edit ran

    @property
    def repaired(self) -> int:
        if self.edits is None:
            return 0
        return sum(c.changed for c in self.edits.changes if isinstance(c.edit, Repair))


@dataclass
class _NoChange:
    """The jobs went away between the plan and the stop: nothing was written."""

    snapshot: Path = Path("(none: nothing was changed)")
    checked: CheckResult | None = None

    def restore(self) -> Path | None:
        return None


def refuse_replay_layout(store: QueueStore) -> None:
    """Refuse to stop a daemon whose restart would replay the queue wrongly (PostgreSQL's
    INTEGER layout: every job HIGH and due now), saying how to fix it."""
    with store.connect(read_only=True) as conn:
        problem = store.dialect.replay_problem(conn, store.table_name)
    if problem is not None:
        raise ProblemsFound(
            f"table {store.table_name!r}: {problem}. A restart now would flatten the queue's "
            "priorities and schedules, so gearmand was not stopped"
        )


def preflight(store: QueueStore) -> None:
    """Refuse to stop a daemon that could not come back on the queue as it is now.

    Rows a lossless repair fixes are allowed: the window repairs them. Anything else
    (a priority of 7, a bad key) would leave gearmand down after the restart.
    """
    refuse_replay_layout(store)
    found = check(store)
    if found.ok:
        return
    rest = check(store, where=sa.not_(store.dialect.repairable(store.table)))
    if rest.problems or rest.schema:
        raise ProblemsFound(
            f"the queue already holds rows gearmand cannot replay ({rest.summary()}): "
            "a restart would leave it down, so it was not stopped. See `queuetool check`; "
            "purge or reprioritise those rows (with the daemon stopped) first"
        )


def edit_window(
    store: QueueStore,
    edits: Sequence[Edit],
    snapshot_dir: Path | None = None,
    keep: int | None = DEFAULT_KEEP,
    full_snapshot: bool = False,
    after_stop: Callable[[], None] | None = None,
    **options: Any,
) -> EditWindowResult:
    """Stop the queue's daemon, apply `edits` in one transaction after a snapshot, start
    it again and verify the reload; roll back to the snapshot when it does not verify.

    `after_stop` runs once the daemon has stopped, before anything is written (a
    --store-queue-on-shutdown daemon has only then written the jobs to count and
    confirm); when it raises, nothing is changed and the daemon is started again.

    A SQLite batch also repairs, without loss, rows gearmand wrote but cannot replay
    (an empty payload stored as NULL), or the daemon would not come back at all.
    `options` are `window()`'s (address, drain, kill_after, no_restart, ...). The
    undo snapshot holds the rows the batch changes (`full_snapshot`: the whole table).
    """
    preflight(store)
    # Repair first: each later edit then finds rows it can leave replayable.
    batch = [Repair(), *edits] if store.dialect.REPAIRS_ROWS else list(edits)
    applied: list[EditResult] = []

    def change() -> UndoableChange:
        if after_stop is not None:
            after_stop()
        # The whole table is checked (the daemon is stopped now) while the edit reads
        # and snapshots its rows; clean, it vouches for the table the edit leaves.
        with ThreadPoolExecutor(1, thread_name_prefix="queuetool-check") as pool:
            result = apply_edits(
                store,
                batch,
                snapshot_dir,
                keep,
                guard=False,
                full_snapshot=full_snapshot,
                prechecked=pool.submit(check, store),
            )
        applied.append(result)
        return result.undo(store) if result.snapshot is not None else _NoChange()

    try:
        outcome = window(store, change, **options)
    except QueuetoolError as exc:
        exc.edit_result = applied[0] if applied else None
        raise
    return EditWindowResult(outcome, applied[0] if applied else None)


def restore_window(
    store: QueueStore,
    path: Path,
    snapshot_dir: Path | None = None,
    keep: int | None = DEFAULT_KEEP,
    *,
    onto_other_queue: bool = False,
    **options: Any,
) -> tuple[WindowResult, RestoreResult | None]:
    """`restore` inside the window: stop, put the snapshot back, start, verify.

    The state it replaces is snapshotted first and is what a failed reload rolls back
    to. No preflight: restoring over a queue gearmand cannot replay is the point.
    """
    found = verify(path)
    if not found.ok:
        raise VerifyError(found.summary() + "; not restored, gearmand not stopped")
    check_target(found.info, store, onto_other_queue)  # before the daemon is stopped
    refuse_replay_layout(store)
    done: list[RestoreResult] = []

    def change() -> UndoableChange:
        result = restore(
            store, path, snapshot_dir, keep=keep, guard=False, onto_other_queue=onto_other_queue
        )
        done.append(result)
        if result.before is None:
            return _NoChange()
        return Undo(store, result.before.path, snapshot_dir)

    outcome = window(store, change, **options)
    return outcome, done[0] if done else None
