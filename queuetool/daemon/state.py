"""The state file of a queue's gearmand: the command line `stop` captured for `start`,
and the marker a migration away from the queue leaves (so `start` refuses).

Mode 0600: a MySQL password may be on that command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import default_snapshot_dir
from ..errors import DaemonError, MigratedAway
from ..table.store import QueueStore


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
