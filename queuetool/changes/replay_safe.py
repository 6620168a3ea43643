"""`make-replay-safe`: the layout fix for gearmand's PostgreSQL replay bug.

gearmand's libpq plugin replays INTEGER priority and when_to_run as 0: after every
restart each job is HIGH and due now (GEARMAND.md). With the two columns TEXT it
replays them right. The fix is one transaction (PostgreSQL's DDL is transactional):
a snapshot of the whole table, the ALTER TABLE, and a checksum that proves every row
kept its values. It runs on a stopped daemon, or inside the maintenance window, whose
verified restart (the daemon's per-priority counts equal the table's) proves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import DEFAULT_KEEP
from ..daemon.guard import ensure_stopped
from ..errors import VerifyError
from ..table.check import CheckResult
from ..table.store import QueueStore
from .apply import Undo
from .snapshot import SnapshotInfo, take
from .window import WindowResult, window


@dataclass
class ReplaySafeResult:
    """What `make-replay-safe` did: the layout it found, the columns it converted, its
    snapshot, and the window when gearmand ran."""

    problem: str | None  # what the layout was (None: it was replay-safe already)
    converted: list[str] = field(default_factory=list)  # the columns made TEXT
    snapshot: SnapshotInfo | None = None
    rows: int = 0
    window: WindowResult | None = None


def replay_problem(store: QueueStore) -> str | None:
    """Why gearmand would replay this queue's layout wrongly (None: it replays right)."""
    with store.connect(read_only=True) as conn:
        store.require_table(conn)
        return store.dialect.replay_problem(conn, store.table_name)


def make_replay_safe(
    store: QueueStore,
    snapshot_dir: str | Path | None = None,
    keep: int | None = DEFAULT_KEEP,
    *,
    gearmand: str | None = None,
    force: bool = False,
    guard: bool = True,
) -> ReplaySafeResult:
    """Convert the layout in one transaction after a whole-table snapshot; the daemon
    must be stopped (`guard`). Every row is verified unchanged before the commit."""
    if guard:
        ensure_stopped(store, gearmand, force)
    with store.connect() as conn, conn.begin():
        store.require_table(conn)
        problem = store.dialect.replay_problem(conn, store.table_name)
        if problem is None:
            return ReplaySafeResult(None)
        snap = take(store, snapshot_dir, keep=keep, reason="before-make-replay-safe", conn=conn)
        converted = store.dialect.make_replay_safe(conn, store.table_name)
        after = store.dialect.stored_checksum(conn, store.table)
        if after.rows != snap.rows or after.hex != snap.checksum:
            raise VerifyError(
                f"after the conversion the table holds {after}, before it {snap.rows} rows, "
                f"checksum {snap.checksum}: rolled back, nothing changed"
            )
        left = store.dialect.replay_problem(conn, store.table_name)
        if left is not None:
            raise VerifyError(f"the conversion left {left}: rolled back, nothing changed")
    return ReplaySafeResult(problem, converted, snap, snap.rows)


@dataclass
class _Converted:
    """The window's Change: the snapshot, and how to put its rows back."""

    undo: Undo
    checked: CheckResult | None = None

    @property
    def snapshot(self) -> Path:
        return self.undo.snapshot

    def restore(self) -> Path | None:
        return self.undo.restore()


def replay_safe_window(
    store: QueueStore,
    snapshot_dir: Path | None = None,
    keep: int | None = DEFAULT_KEEP,
    **options: Any,
) -> ReplaySafeResult:
    """Stop the running daemon, convert, start it again and verify the reload: the
    restarted daemon's counts per priority must equal the table's (the unfixed layout
    would come back with every job HIGH). `options` are `window()`'s."""
    done: list[ReplaySafeResult] = []

    def change() -> _Converted:
        result = make_replay_safe(store, snapshot_dir, keep, guard=False)
        done.append(result)
        assert result.snapshot is not None  # the caller saw the problem before the stop
        return _Converted(Undo(store, result.snapshot.path, snapshot_dir))

    outcome = window(store, change, **options)
    result = done[0] if done else ReplaySafeResult(None)
    result.window = outcome
    return result
