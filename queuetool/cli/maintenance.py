"""The maintenance window on the command line: an edit while gearmand runs, and
`queuetool window PLAN.toml` for several edits in one stop/start.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import DaemonRunning, QueuetoolError
from .daemon import _render_start, _render_stop, buckets_type, ways
from .options import AppContext

if TYPE_CHECKING:
    from ..changes.kinds import Edit
    from ..changes.prepare import EditRequest
    from ..changes.window import EditWindowResult, WindowResult

F = Callable[..., Any]


def window_options(f: F) -> F:
    """How the window stops and starts the daemon, when an edit finds it running."""
    for option in reversed(
        [
            click.option(
                "--no-window",
                is_flag=True,
                help="Refuse (exit 4) instead of stopping a running gearmand.",
            ),
            click.option(
                "--no-restart",
                is_flag=True,
                help="Leave gearmand stopped after the edit (start it with `queuetool start`).",
            ),
            click.option(
                "--drain",
                type=click.FloatRange(min=0),
                metavar="SECONDS",
                help="Before stopping, wait up to this long for running jobs to finish.",
            ),
            click.option(
                "--kill-after",
                type=click.FloatRange(min=0),
                metavar="SECONDS",
                help="SIGKILL gearmand if still alive this long after SIGTERM.",
            ),
            click.option(
                "--hashtable-buckets",
                "buckets",
                metavar="N|auto",
                type=buckets_type,
                help="Restart gearmand with this --hashtable-buckets (signal way only).",
            ),
        ]
    ):
        f = option(f)
    return f


def is_live(app: AppContext) -> list[str]:
    """Why the queue's daemon counts as running (empty: it is stopped)."""
    from ..daemon.guard import live_reasons

    return live_reasons(app.store, app.gearmand_address)


def announce(
    app: AppContext,
    what: str,
    reasons: Sequence[str],
    *,
    yes: bool,
    confirm: Callable[[str, bool], None],
    quiet: bool = False,
    count_after_stop: bool = False,
    held: int | None = None,
    no_window: bool = False,
    no_restart: bool = False,
    drain: float | None = None,
    kill_after: float | None = None,
    buckets: int | str | None = None,
) -> dict[str, Any]:
    """Say what the window will do (with the predicted replay time), confirm once, and
    return `window()`'s options; with --no-window refuse instead.

    `count_after_stop`: the daemon holds its queue in memory (--store-queue-on-shutdown),
    so its table tells nothing until the stop; the caller confirms after the stop, with
    the counts, and nothing is asked here. `held` is its own job count, if it told.
    """
    from ..changes.prepare import replayed_rows
    from ..daemon.buckets import restart_buckets
    from ..daemon.reload import predict_replay

    store = app.store
    if no_window:
        raise DaemonRunning(
            f"the queue's gearmand is running ({'; '.join(reasons)}) and --no-window was "
            "given: stop it first (`queuetool stop`), or drop --no-window to let queuetool "
            "stop, edit, restart and verify"
        )
    rows = held if count_after_stop else replayed_rows(store)
    restart = "leave it stopped" if no_restart else "start it again and verify the reload"
    if not quiet:
        click.echo(f"gearmand is running: {'; '.join(reasons)}", err=True)
        click.echo(f"maintenance window: stop gearmand, {what}, {restart}", err=True)
        if not no_restart and rows is not None:
            click.echo(
                predict_replay(rows, restart_buckets(app.store, buckets, rows)).summary(), err=True
            )
    if not count_after_stop:
        confirm(f"Run the window on {store.display_url} table {store.table_name}?", yes)
    stop_command, start_command, state_dir = ways(app)
    return dict(
        address=app.gearmand_address,
        drain=drain,
        kill_after=kill_after,
        stop_command=stop_command,
        start_command=start_command,
        hashtable_buckets=buckets,
        state_dir=state_dir,
        no_restart=no_restart,
    )


def run_window(
    app: AppContext,
    request: EditRequest,
    reasons: Sequence[str],
    *,
    quiet: bool,
    snapshot_dir: Path | None,
    keep: int,
    full_snapshot: bool = False,
    **announced: Any,
) -> EditWindowResult:
    """Edits while gearmand runs: confirm once, then stop, edit, start, verify.

    A request counted only after the stop: the daemon holds its queue in memory
    (--store-queue-on-shutdown) and its table is empty until it stops, so the jobs are
    counted and the edit confirmed after the stop; declined, the daemon is started
    again on its unchanged queue.
    """
    from ..changes.kinds import Repair
    from ..changes.prepare import replayed_rows
    from ..changes.window import edit_window

    edits = request.edits
    after_stop = None
    what = request.describe()
    if request.counted_after_stop:
        held = replayed_rows(app.store, request.holder)
        options = announce(
            app, what, reasons, quiet=quiet, count_after_stop=True, held=held, **announced
        )
        after_stop = functools.partial(
            _confirm_after_stop, app, edits, announced["confirm"], announced["yes"]
        )
    else:
        options = announce(app, what, reasons, quiet=quiet, **announced)
    try:
        outcome = edit_window(
            app.store,
            edits,
            snapshot_dir,
            keep,
            full_snapshot=full_snapshot,
            after_stop=after_stop,
            **options,
        )
    except QueuetoolError as exc:
        applied = exc.edit_result
        if applied is not None and applied.snapshot is not None:
            click.echo(f"snapshot: {applied.snapshot.path}", err=True)
        raise
    _render_stop(outcome.window.stopped, quiet)
    applied = outcome.edits
    if applied is not None:
        if applied.snapshot is not None:
            click.echo(f"snapshot: {applied.snapshot.path}")
        for change in applied.changes:
            if isinstance(change.edit, Repair) and not change.changed:
                continue
            click.echo(change.describe())
        if outcome.repaired:
            click.echo(
                f"repaired {outcome.repaired} rows gearmand had written but could not replay "
                "(an empty payload stored as NULL): without this it would not start"
            )
    _render_end(outcome.window, quiet)
    return outcome


def _confirm_after_stop(
    app: AppContext, edits: Sequence[Edit], confirm: Callable[[str, bool], None], yes: bool
) -> None:
    """With the daemon stopped and its queue written: count, show and confirm the edit.

    Raises Aborted when not confirmed; the window then starts the daemon again."""
    from ..changes.dryrun import plan
    from ..changes.prepare import EditRequest

    store = app.store
    request = EditRequest(edits, None, plan(store, edits))
    if not request.matched:
        return  # nothing to change, nothing to ask: the window restarts the daemon
    what = request.describe()
    confirm(
        f"gearmand stopped and wrote its queue. {what[0].upper()}{what[1:]} in "
        f"{store.display_url} table {store.table_name}?",
        yes,
    )


def run_restore_window(
    app: AppContext,
    path: Path,
    rows: int,
    reasons: Sequence[str],
    *,
    quiet: bool,
    snapshot_dir: Path | None,
    keep: int,
    onto_other_queue: bool = False,
    origin: str = "",
    **announced: Any,
) -> None:
    """`restore` while gearmand runs: confirm once, then stop, restore, start, verify.
    `origin` names the snapshot's queue when it is another one."""
    from ..changes.window import restore_window

    what = f"replace table {app.store.table_name} with the {rows} rows of {path}{origin}"
    options = announce(app, what, reasons, quiet=quiet, **announced)
    outcome, restored = restore_window(
        app.store, path, snapshot_dir, keep, onto_other_queue=onto_other_queue, **options
    )
    _render_stop(outcome.stopped, quiet)
    if restored is not None:
        if restored.before is not None:
            click.echo(f"snapshot of the replaced state: {restored.before.path}")
        click.echo(f"restored {restored.rows} rows, checksum {restored.checksum} verified")
    _render_end(outcome, quiet)


def _render_end(outcome: WindowResult, quiet: bool) -> None:
    if outcome.started is not None:
        _render_start(outcome.started, quiet)
    for text in outcome.notes:
        click.echo(f"note: {text}", err=True)
