"""How many hashtable buckets a restarted gearmand will have: its replay time depends
on it (see reload.predict_replay)."""

from __future__ import annotations

from ..table.store import QueueStore
from .discover import local_daemons
from .guard import uses_queue
from .reload import DEFAULT_BUCKETS


def restart_buckets(store: QueueStore, option: int | str | None, rows: int) -> int:
    """The --hashtable-buckets the queue's daemon restarts with: `option` (a number, or
    `auto` for one near the job count `rows`), else what its running command line says,
    else gearmand's default."""
    if isinstance(option, int):
        return option
    if option == "auto":
        return max(rows, DEFAULT_BUCKETS)
    for daemon in local_daemons():
        if uses_queue(daemon, store) and daemon.options.hashtable_buckets:
            return int(daemon.options.hashtable_buckets)
    return DEFAULT_BUCKETS
