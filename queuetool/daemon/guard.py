"""The one place that decides whether the queue's gearmand is running.

gearmand reads its queue only at start-up and overwrites or deletes rows while it
runs (GEARMAND.md), so every command that writes to the table asks here first.
A daemon counts as running when a local gearmand process's command line names this
queue (same SQLite file, or same MySQL host/port/database/table), or when the
admin address given for the queue answers.

An address given for the queue (option, environment, config) is only believed when
it answers for the queue's own daemon: one that answers for another queue's daemon,
or does not answer while this queue's daemon runs elsewhere, is refused
(`WrongDaemon`) before anything is stopped, so a wrong address can neither stop
another queue's daemon nor be swapped silently for "some daemon found by scanning".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from ..errors import (
    DaemonRefused,
    DaemonRunning,
    DaemonTimeout,
    NotGearmand,
    QueuetoolError,
    QueuetoolWarning,
    WrongDaemon,
)
from ..table.store import QueueStore, mask_url
from .admin import Address, AdminClient
from .discover import PROC, DaemonInfo, local_daemons, process_info
from .reload import ReloadVerification, compare, count_cells, daemon_cells

ADMIN_TIMEOUT = 2.0
PRIORITY_NAMES = {0: "high", 1: "normal", 2: "low"}


class ForcedWhileRunning(QueuetoolWarning):
    """A write to a live queue was forced: the daemon may overwrite or lose it."""


def running_daemons(store: QueueStore, proc: Path = PROC) -> list[DaemonInfo]:
    """Local gearmand processes whose command line names this queue table."""
    return [d for d in local_daemons(proc) if uses_queue(d, store)]


def uses_queue(daemon: DaemonInfo, store: QueueStore) -> bool:
    """Whether this gearmand's queue is the store's table."""
    opts = daemon.options
    if opts.backend != store.backend or opts.table != store.table_name:
        return False
    return store.dialect.daemon_uses(store.url, opts)


def admin_state(
    address: str | Address, timeout: float = ADMIN_TIMEOUT
) -> tuple[int | None, str] | None:
    """None when nothing serves the admin address, else (pid if known, why it counts)."""
    try:
        with AdminClient(address, timeout) as client:
            pid = client.getpid()
            return pid, f"gearmand pid {pid} answers at {address}"
    except DaemonRefused:
        return None
    except DaemonTimeout:
        # A daemon replaying a large queue accepts connections and answers nothing
        # for minutes: that is a running daemon, not an absent one.
        return None, f"something at {address} accepts connections but does not answer (replaying?)"
    except NotGearmand:
        return None  # a misconfigured address, not a daemon that could own the queue
    except QueuetoolError:
        return None, f"gearmand answers at {address}"


def queue_name(store: QueueStore) -> str:
    """The queue as one phrase for messages (password masked)."""
    return f"{store.display_url} table {store.table_name}"


def daemon_queue(daemon: DaemonInfo) -> str:
    """The queue a gearmand serves, by its command line, as one phrase (password masked)."""
    url = daemon.options.queue_url
    if url is None:
        return f"a {daemon.options.queue_type} queue"
    return f"{mask_url(url)} table {daemon.options.table}"


_FIX = (
    "correct --gearmand / QUEUETOOL_GEARMAND / [gearmand] address or leave it out. "
    "Nothing was stopped"
)


def checked_address(
    store: QueueStore, address: str | Address, daemons: list[DaemonInfo] | None = None
) -> tuple[int | None, str] | None:
    """`admin_state` of the queue's address, refused unless it is this queue's daemon.

    `daemons` are the local gearmand processes of this queue (`running_daemons`).
    Raises WrongDaemon when the address answers for a local gearmand whose command line
    names another queue, answers for a pid that is not this queue's running daemon, or
    does not answer while this queue's daemon runs (at another address). A daemon that
    answers but is not a process here (another host, a container) cannot be proven
    either way: it is returned, and only a [gearmand] stop command can stop it.
    """
    if daemons is None:
        daemons = running_daemons(store)
    state = admin_state(address)
    if state is None:
        if daemons:
            d = daemons[0]
            raise WrongDaemon(
                f"the gearmand address {address} does not answer, but gearmand pid {d.pid} "
                f"of {queue_name(store)} runs at {d.options.address}: {_FIX}"
            )
        return None
    pid = state[0]
    if pid is None or pid in {d.pid for d in daemons}:
        return state
    info = process_info(pid)
    if info is not None and not uses_queue(info, store):
        raise WrongDaemon(
            f"gearmand pid {pid} at {address} serves {daemon_queue(info)}, not "
            f"{queue_name(store)}: that address belongs to another queue's daemon; {_FIX}"
        )
    if daemons:
        d = daemons[0]
        raise WrongDaemon(
            f"the gearmand address {address} answers for pid {pid}, but the daemon of "
            f"{queue_name(store)} is gearmand pid {d.pid} at {d.options.address}: {_FIX}"
        )
    return state


def live_reasons(store: QueueStore, gearmand_address: str | None) -> list[str]:
    """Why the queue's daemon counts as running; empty when it is stopped.

    Raises WrongDaemon when `gearmand_address` is not this queue's daemon.
    """
    daemons = running_daemons(store)
    reasons = [_describe(d) for d in daemons]
    if gearmand_address:
        state = checked_address(store, gearmand_address, daemons)
        if state is not None and state[0] not in {d.pid for d in daemons}:
            reasons.append(state[1])
    return reasons


def ensure_stopped(store: QueueStore, gearmand_address: str | None, force: bool) -> None:
    """Raise DaemonRunning unless no gearmand uses this queue; with force, only warn.

    With `force`, a `ForcedWhileRunning` warning (a UserWarning) is issued instead;
    the CLI shows it on stderr.
    """
    reasons = live_reasons(store, gearmand_address)
    if not reasons:
        return
    what = "; ".join(reasons)
    if force:
        warnings.warn(
            f"WRITING TO A LIVE QUEUE (--force): {what}. gearmand reads {store.display_url} "
            "only at start-up and may overwrite or delete what is written now.",
            ForcedWhileRunning,
            stacklevel=2,
        )
        return
    raise DaemonRunning(
        f"the queue's gearmand is running ({what}): stop it first (`queuetool stop`, or your "
        "service manager), or let the editing command run the maintenance window; "
        "--force writes anyway and the daemon may overwrite or lose the change"
    )


def _describe(daemon: DaemonInfo) -> str:
    text = f"{daemon.source} ({daemon.options.address})"
    if daemon.options.store_queue_on_shutdown:
        # With this flag the table is not the daemon's queue while it runs (new jobs
        # are written only at its shutdown, which rewrites the table): an edit now is lost.
        text += " with --store-queue-on-shutdown: the table is rewritten at its shutdown"
    return text


# -- what runs now, measured -------------------------------------------------------------


@dataclass
class Measured:
    """The queue's daemon as a probe found it just now: processes, an admin answer, and
    its counts against the table's. What a final message states, never a guess."""

    daemons: list[DaemonInfo] = field(default_factory=list)
    address: str | None = None  # where the admin protocol was asked
    pid: int | None = None  # what answered `getpid` there
    verification: ReloadVerification | None = None
    error: str = ""  # why the admin port or the table could not be read

    @property
    def up(self) -> bool:
        return self.pid is not None or bool(self.daemons)

    def summary(self) -> str:
        if len(self.daemons) > 1:
            pids = "pids " + ", ".join(str(d.pid) for d in self.daemons)
            return f"measured now: {len(self.daemons)} gearmand processes use this queue ({pids})"
        if self.pid is None:
            if self.daemons:
                why = f" ({self.error})" if self.error else ""
                return (
                    f"measured now: gearmand pid {self.daemons[0].pid} runs on this queue but "
                    f"does not answer at {self.address}{why}"
                )
            where = f" and nothing answers at {self.address}" if self.address else ""
            return f"measured now: gearmand is DOWN (no gearmand process uses this queue{where})"
        text = f"measured now: gearmand is UP (pid {self.pid} at {self.address})"
        v = self.verification
        if any(d.options.store_queue_on_shutdown for d in self.daemons):
            return text + (
                " with --store-queue-on-shutdown: its table is not its queue while it runs "
                "(it writes the queue at shutdown), so its counts cannot be compared with the "
                "table's"
            )
        if v is None:
            return text + f"; its counts could not be compared with the table's ({self.error})"
        if not v.differences():
            return text + f" and holds the table's {v.total_table:,} jobs"
        if v.ok:
            return text + f" and its counts equal the table's ({v.note})"
        shown = "; ".join(
            f"{f}/{PRIORITY_NAMES.get(p, p)}: table {t}, daemon {d}"
            for f, p, t, d in v.differences()[:10]
        )
        return text + (
            f" but its counts DIFFER from the table's (table {v.total_table:,} jobs, daemon "
            f"{v.total_daemon:,}: {shown})"
        )


def measure(store: QueueStore, address: str | Address | None = None) -> Measured:
    """Probe the queue's daemon now: the local processes whose command line names this
    queue, `getpid` at the daemon's own address (else `address`), and its
    `prioritystatus` against the table's counts. Never raises for what it cannot read:
    that is part of what it reports."""
    found = Measured(running_daemons(store))
    where = found.daemons[0].options.address if len(found.daemons) == 1 else address
    found.address = str(where) if where else None
    if where is None:
        return found
    try:
        with AdminClient(where, ADMIN_TIMEOUT) as client:
            found.pid = client.getpid()
            cells, running = daemon_cells(client)
    except QueuetoolError as exc:
        found.error = str(exc)
        return found
    try:
        table = count_cells(store)
    except (QueuetoolError, SQLAlchemyError) as exc:
        found.error = f"the table could not be read: {str(exc).splitlines()[0]}"
        return found
    found.verification = compare(table, cells, running, table)
    return found
