"""Snapshot commands: snapshot (take or verify), snapshots (list), restore."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..config import default_snapshot_dir
from ..errors import UsageError, VerifyError
from .maintenance import is_live, run_restore_window, window_options
from .options import (
    AppContext,
    confirm,
    format_option,
    queue_options,
    snapshot_options,
    snapshot_settings,
    write_options,
)


@click.command("snapshot")
@queue_options
@snapshot_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.option(
    "--verify",
    "verify_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check a snapshot file against its manifest instead (exit 1 if damaged).",
)
@click.pass_context
def snapshot_cmd(
    ctx: click.Context,
    app: AppContext,
    snapshot_dir: Path | None,
    out: Path | None,
    verify_path: Path | None,
) -> None:
    """Save the whole queue table to a snapshot file (safe while gearmand runs).

    \b
    Examples:
      queuetool snapshot
      queuetool snapshot --out /backup/queue-before-migration.qtsnap
      queuetool snapshot --verify /backup/queue-before-migration.qtsnap
    """
    from ..changes.snapshot import take, verify

    if verify_path is not None:
        if out is not None:
            raise UsageError("--verify reads a snapshot; do not combine it with --out")
        result = verify(verify_path)
        info = result.info
        click.echo(result.summary())
        click.echo(
            f"source {info.source} table {info.table} ({info.backend}), "
            f"taken {info.created_iso} by queuetool {info.version}"
        )
        if not result.ok:
            ctx.exit(1)
        return
    # --out writes one file, not into the directory: a missing directory is no matter.
    directory, keep = snapshot_settings(app, snapshot_dir, check=out is None)
    info = take(app.store, directory, keep=keep, out=out)
    click.echo(f"snapshot: {info.path}")
    click.echo(f"{info.rows} rows, checksum {info.checksum}, {info.bytes} bytes")


@click.command("snapshots")
@queue_options
@snapshot_options
@format_option()
def snapshots_cmd(app: AppContext, snapshot_dir: Path | None, fmt: str) -> None:
    """List the snapshots in the snapshot directory, newest first.

    \b
    Example:
      queuetool snapshots --format json
    """
    from ..changes.snapshot import list_snapshots
    from ..render import render

    directory, _ = snapshot_settings(app, snapshot_dir, check=False)
    path = directory if directory is not None else default_snapshot_dir()
    # An empty listing alone cannot tell a missing directory (a typo in the config)
    # from one without snapshots: a note says which (stdout keeps the format's empty list).
    if path.exists() and not path.is_dir():
        raise UsageError(f"snapshot directory {path} is not a directory")
    if not path.exists():
        click.echo(f"no snapshot directory {path}", err=True)
    found = list_snapshots(path)
    if path.is_dir() and not found:
        click.echo(f"no snapshots in {path}", err=True)
    render((s.record() for s in found), fmt, sys.stdout)


@click.command("restore")
@queue_options
@write_options
@window_options
@click.option(
    "--onto-other-queue",
    is_flag=True,
    help="Let a whole-table snapshot replace another queue or table than the one it was "
    "taken of (an edit's undo never applies to another queue).",
)
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def restore_cmd(
    app: AppContext,
    path: Path,
    dry_run: bool,
    yes: bool,
    force: bool,
    quiet: bool,
    snapshot_dir: Path | None,
    onto_other_queue: bool,
    **window: Any,
) -> None:
    """Put the queue table back exactly as a snapshot holds it (gearmand must be stopped).

    The snapshot's checksum is checked first, the current state is snapshotted,
    and the table is replaced in one transaction and checked again. The snapshot an
    edit takes holds only the jobs it changed: restoring it puts those jobs back as
    they were and leaves every other job as it is now. A snapshot goes back onto the
    queue and table it was taken of; --onto-other-queue lets a whole-table snapshot
    replace another one.

    \b
    Example:
      queuetool restore ~/.local/state/queuetool/snapshots/gearman_queue-...-before-purge.qtsnap
    """
    from ..changes.prepare import prepare_restore, restore_dry_run
    from ..changes.restore import restore
    from ..changes.snapshot import read_manifest

    info = read_manifest(path)  # a file that is no snapshot is refused before the queue opens
    store = app.store
    request = prepare_restore(store, info, onto_other_queue=onto_other_queue)
    click.echo(
        f"snapshot {info.path}: {info.describe()} of {info.source} table {info.table}, "
        f"taken {info.created_iso}"
    )
    # Onto another queue, every question names both: the snapshot's queue and this one.
    origin = request.origin
    if dry_run:
        checked, current = restore_dry_run(store, request)
        if not checked.ok:  # as the restore itself refuses it: exit 5, and no plan offered
            raise VerifyError(checked.summary() + "; a restore would refuse it; nothing changed")
        click.echo(checked.summary())
        click.echo(
            f"dry run: would replace {request.replaced(current)} in {store.display_url} table "
            f"{store.table_name} with the snapshot's {info.rows} rows{origin}; nothing changed"
        )
        return
    directory, keep = snapshot_settings(app, snapshot_dir)
    reasons = [] if force else is_live(app)
    if reasons:
        run_restore_window(
            app,
            path,
            info.rows,
            reasons,
            yes=yes,
            quiet=quiet,
            snapshot_dir=directory,
            keep=keep,
            confirm=confirm,
            onto_other_queue=onto_other_queue,
            origin=origin,
            **window,
        )
        return
    what = f"its {info.keys} jobs" if info.partial else f"table {store.table_name}"
    confirm(
        f"Replace {what} in {store.display_url} with the {info.rows} rows of this "
        f"snapshot{origin}?",
        yes,
    )
    if force:
        click.echo(
            "Warning: --force: the check that the queue's gearmand is stopped will not stop "
            "this restore; a running gearmand may overwrite or lose it.",
            err=True,
        )
    result = restore(
        store,
        path,
        directory,
        keep=keep,
        gearmand=app.gearmand_address,
        force=force,
        onto_other_queue=onto_other_queue,
    )
    if result.before is not None:
        click.echo(f"snapshot of the replaced state: {result.before.path}")
    scope = f" of the {info.keys} jobs it covers" if info.partial else ""
    click.echo(
        f"restored {result.rows} rows{scope} (were {result.rows_before}), checksum "
        f"{result.checksum} verified"
    )
    click.echo(f"elapsed: {result.elapsed:.2f}s")


COMMANDS = [snapshot_cmd, snapshots_cmd, restore_cmd]
