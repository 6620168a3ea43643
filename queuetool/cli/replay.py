"""`make-replay-safe`: the fix for gearmand's PostgreSQL replay bug, on the command line.

A command of its own, not a `repair` option: repair fixes rows (with a job filter, a
plan and a rows snapshot), this changes the table's layout, for the whole table, once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .daemon import _render_stop
from .maintenance import _render_end, announce, is_live, window_options
from .options import AppContext, confirm, queue_options, snapshot_settings, write_options


@click.command("make-replay-safe")
@queue_options
@write_options
@window_options
def make_replay_safe_cmd(
    app: AppContext,
    dry_run: bool,
    yes: bool,
    force: bool,
    quiet: bool,
    snapshot_dir: Path | None,
    **window: Any,
) -> None:
    """Make a PostgreSQL queue table replay right: priority and when_to_run as TEXT.

    gearmand's PostgreSQL replay reads INTEGER priority and when_to_run as 0, so after
    every restart each job is HIGH and due now. This converts both columns to TEXT in
    one transaction, after a snapshot of the whole table, and verifies every row kept
    its values. gearmand keeps writing the table as before. With the daemon running,
    the maintenance window stops it, converts, starts it and verifies the reload (its
    counts per priority equal the table's).

    \b
    Example:
      queuetool make-replay-safe --queue postgresql+psycopg://gearman:PASS@db1/gearman
    """
    from ..changes.replay_safe import make_replay_safe, replay_problem, replay_safe_window

    store = app.store
    problem = replay_problem(store)
    if problem is None:
        click.echo(f"table {store.table_name} replays right already: nothing to do")
        return
    click.echo(f"table {store.table_name}: {problem}")
    if dry_run:
        click.echo("dry run: would convert priority and when_to_run to TEXT; nothing changed")
        return
    directory, keep = snapshot_settings(app, snapshot_dir)
    reasons = [] if force else is_live(app)
    what = f"convert priority and when_to_run of table {store.table_name} to TEXT"
    if reasons:
        options = announce(app, what, reasons, yes=yes, confirm=confirm, quiet=quiet, **window)
        result = replay_safe_window(store, directory, keep, **options)
        assert result.window is not None
        _render_stop(result.window.stopped, quiet)
    else:
        confirm(f"{what[0].upper()}{what[1:]} in {store.display_url}?", yes)
        result = make_replay_safe(
            store, directory, keep, gearmand=app.gearmand_address, force=force
        )
    if result.snapshot is not None:
        click.echo(f"snapshot: {result.snapshot.path}")
    click.echo(
        f"converted {', '.join(result.converted)} to TEXT: {result.rows} rows verified unchanged"
    )
    if result.window is not None:
        _render_end(result.window, quiet)
    else:
        click.echo("gearmand replays this table right from its next start")


COMMANDS = [make_replay_safe_cmd]
