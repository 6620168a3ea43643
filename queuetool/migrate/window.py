"""A migration while the source's gearmand runs: stop it, copy, and leave it stopped.

A moving queue cannot be copied, so the source's daemon is stopped first (after one
confirmation); if the migration fails it is started again on the source, which a
migration never changes. After a successful one it stays stopped: restarted on the old
queue it would run the jobs the new queue now holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..daemon.guard import live_reasons
from ..daemon.stop import StopResult
from ..table.store import QueueStore
from .copy import MigrateOptions, MigrationResult, Note, Progress, check_sides, migrate
from .handover import source_stopped


def migrate_queue(
    source: QueueStore,
    target: QueueStore,
    options: MigrateOptions,
    *,
    address: str | None = None,
    stop_command: str | None = None,
    start_command: str | None = None,
    state_dir: Path | None = None,
    confirm_window: Callable[[Sequence[str]], None] | None = None,
    on_stopped: Callable[[StopResult], None] | None = None,
    confirm: Callable[[str], bool] | None = None,
    progress: Progress | None = None,
    note: Note | None = None,
) -> MigrationResult:
    """Migrate `source` to `target` as `queuetool migrate` does: `migrate()` (the
    copy, in migrate/copy.py), stopping the source's gearmand first when it runs.

    When the daemon runs (and neither `options.force` nor `options.dry_run`),
    `confirm_window(reasons)` is called once with why it counts as running (it raises,
    e.g. Aborted, to refuse); the daemon is stopped, `on_stopped(result)` is told,
    and the migration then runs without asking `confirm` again. Otherwise `confirm`,
    `progress` and `note` are `migrate()`'s own.
    """
    running = [] if (options.force or options.dry_run) else live_reasons(source, address)
    if not running:
        return migrate(source, target, options, confirm=confirm, progress=progress, note=note)
    check_sides(source, target, options)  # before the stop, not after it
    # A failed copy starts the daemon again on the source: on PostgreSQL's INTEGER layout
    # that replay would flatten every priority and schedule. Refused before the stop.
    from ..changes.window import refuse_replay_layout  # the edit window's own refusal

    refuse_replay_layout(source)
    if confirm_window is not None:
        confirm_window(running)
    with source_stopped(
        source,
        address=address,
        stop_command=stop_command,
        start_command=start_command,
        state_dir=state_dir,
    ) as stopped:
        if on_stopped is not None:
            on_stopped(stopped)
        # Confirmed once, for the whole window.
        return migrate(source, target, options, progress=progress, note=note)
