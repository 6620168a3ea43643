"""The one place that decides whether the queue's gearmand is running.

gearmand reads its queue only at start-up and overwrites or deletes rows while it
runs (GEARMAND.md), so every command that writes to the table asks here first.
A daemon counts as running when a local gearmand process's command line names this
queue (same SQLite file, or same MySQL host/port/database/table), or when the
admin address given for the queue answers.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ..errors import (
    DaemonRefused,
    DaemonRunning,
    DaemonTimeout,
    NotGearmand,
    QueuetoolError,
    QueuetoolWarning,
)
from ..table.store import QueueStore
from .admin import Address, AdminClient
from .discover import PROC, DaemonInfo, local_daemons

ADMIN_TIMEOUT = 2.0


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


def live_reasons(store: QueueStore, gearmand_address: str | None) -> list[str]:
    """Why the queue's daemon counts as running; empty when it is stopped."""
    daemons = running_daemons(store)
    reasons = [_describe(d) for d in daemons]
    if gearmand_address:
        state = admin_state(gearmand_address)
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
        # With this flag the table is empty while the daemon runs and is rewritten
        # wholesale at shutdown: an edit now is simply lost.
        text += " with --store-queue-on-shutdown: the table is rewritten at its shutdown"
    return text
