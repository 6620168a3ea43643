"""Editing commands: reprioritise, reschedule, purge, repair, and `window PLAN.toml`.

Each plans (count + sample), asks for confirmation, then calls `apply.apply_edits`
(or the maintenance window when gearmand runs), which does the safety sequence.
Snapshot commands (snapshot, snapshots, restore) are in cli/snapshots.py.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import UsageError
from ..priority import Priority
from ..timeparse import parse_duration
from ..timeparse import when as parse_when
from .maintenance import is_live, run_window, window_options
from .options import (
    AppContext,
    confirm,
    filter_options,
    queue_options,
    snapshot_settings,
    write_options,
)

if TYPE_CHECKING:
    from ..changes.apply import EditResult
    from ..changes.dryrun import Plan
    from ..changes.kinds import Edit
    from ..changes.prepare import EditRequest
    from ..daemon.discover import DaemonInfo
    from ..table.filters import JobFilter
    from ..table.jobs import Job
    from ..table.store import QueueStore

F = Callable[..., Any]


def note(quiet: bool, text: str) -> None:
    """A note on stderr, unless --quiet."""
    if not quiet:
        click.echo(text, err=True)


def run_edits(
    app: AppContext,
    edits: Sequence[Edit],
    *,
    dry_run: bool,
    yes: bool,
    force: bool,
    quiet: bool,
    snapshot_dir: Path | None,
    full_snapshot: bool = False,
    unblock: bool = False,
    accept_block: bool = False,
    **window: Any,
) -> EditResult | None:
    """Plan, confirm, apply and report; None when nothing was applied.

    When the queue's gearmand runs (and no --force), the edit runs inside the
    maintenance window: stop, snapshot, edit, check, start, verify, or roll back.
    A --store-queue-on-shutdown daemon holds its queue in memory (its table is not its
    queue while it runs): the jobs are counted, and the edit confirmed, after the stop.

    On gearmand before 2.0.0 an edit that would leave due jobs blocked says so in its
    dry run and its question, and warns (even with --yes); --unblock adds the edits
    that prevent it, --accept-block goes ahead without a word.
    """
    from ..changes.apply import apply_edits
    from ..changes.prepare import prepare_edits

    store = app.store
    if unblock and accept_block:
        raise UsageError("--unblock and --accept-block exclude each other: choose one")
    from ..daemon.version import queue_daemon_version

    request = prepare_edits(
        store,
        edits,
        force=force,
        dry_run=dry_run,
        version=lambda: queue_daemon_version(store, app.gearmand_address),
        unblock=unblock,
    )
    if accept_block:
        request = dataclasses.replace(request, blocks=[])
    if dry_run:
        if request.holder is not None:
            _held_dry_run(store, edits, request.holder)
        else:
            _dry_run(request.plans or [])
            _dry_run_blocks(request)
        click.echo("nothing changed, no snapshot taken")
        return None
    nothing = request.nothing_to_change()
    if nothing is not None:
        click.echo(nothing)
        click.echo("nothing changed")
        return None
    directory, keep = snapshot_settings(app, snapshot_dir)
    if request.would_block:
        click.echo(_block_warning(request), err=True)  # even with --quiet: it is the surprise
    edits = request.edits  # with --unblock, the edits that prevent the block too
    reasons = [] if force else is_live(app)
    # A daemon holding the queue in memory is stopped by the window to count it at all.
    if reasons or request.counted_after_stop:
        outcome = run_window(
            app,
            request,
            reasons,
            yes=yes,
            quiet=quiet,
            snapshot_dir=directory,
            keep=keep,
            full_snapshot=full_snapshot,
            confirm=confirm,
            **window,
        )
        return outcome.edits
    what = request.describe()
    confirm(f"{what[0].upper()}{what[1:]} in {store.display_url} table {store.table_name}?", yes)
    if force:
        click.echo(
            "Warning: --force: the check that the queue's gearmand is stopped will not stop "
            "this edit; a running gearmand may overwrite or lose it.",
            err=True,
        )
    result = apply_edits(
        store,
        edits,
        directory,
        keep,
        gearmand=app.gearmand_address,
        force=force,
        full_snapshot=full_snapshot,
    )
    if result.snapshot is not None:
        click.echo(f"snapshot: {result.snapshot.path}")
    for change in result.changes:
        click.echo(change.describe())
    if not result.changed:
        click.echo("no jobs matched any more: nothing changed")
    click.echo(
        f"elapsed: {result.elapsed:.2f}s (snapshot {result.snapshot_seconds:.2f}s, "
        f"change {result.change_seconds:.2f}s)"
    )
    return result


def _dry_run(plans: Sequence[Plan]) -> None:
    """Each edit's count and its first jobs, with the values it changes as before -> after."""
    from ..render import render

    for p in plans:
        click.echo(f"dry run: would {p.describe()}")
        if p.sample:
            shown = "" if p.matched <= len(p.sample) else f" (first {len(p.sample)})"
            click.echo(f"jobs{shown}:")
            rows = (_before_after(j, a) for j, a in zip(p.sample, p.after, strict=True))
            render(rows, "table", sys.stdout)


def _dry_run_blocks(request: EditRequest) -> None:
    """The due jobs the edits would leave blocked, or that --unblock's edits prevent it."""
    if not request.blocks:
        return
    if request.unblocked:
        for block in request.blocks:
            click.echo(f"dry run: without --unblock it would block {block.describe()}")
        return
    for block in request.blocks:
        click.echo(f"dry run: would block {block.describe()}")
    click.echo(BLOCK_WAYS)


BLOCK_WAYS = (
    "gearmand before 2.0.0 hands out a function's jobs only from its highest non-empty "
    "priority list: --unblock also moves those scheduled jobs down to the lowest priority "
    "holding due jobs (their times kept), --accept-block goes ahead as is"
)


def _block_warning(request: EditRequest) -> str:
    blocks = "; ".join(b.describe() for b in request.blocks)
    return f"Warning: this edit would block {blocks}. {BLOCK_WAYS}"


def _before_after(before: Job, after: Job | None) -> dict[str, object]:
    from ..table.jobs import job_record

    record = job_record(before)
    if after is None:
        record["after"] = "deleted"
        return record
    for key, value in job_record(after).items():
        if value != record[key]:
            record[key] = f"{record[key]} -> {value}"
    return record


def _held_dry_run(store: QueueStore, edits: Sequence[Edit], holder: DaemonInfo) -> None:
    """A dry run must not stop the daemon: show what its own counts can tell."""
    from ..changes.prepare import held_counts
    from ..daemon.held import why_empty
    from ..render import render

    click.echo(f"dry run: {why_empty(holder)}; the jobs are counted only once it has stopped")
    for edit, held in held_counts(store, edits, holder):
        names = " or ".join(edit.job_filter.functions) or "every function"
        click.echo(
            f"would {edit.describe()}; the daemon's own counts (prioritystatus) for {names}:"
        )
        render(held.table(), "table", sys.stdout)
        if held.unjudged:
            click.echo(
                f"{' and '.join(held.unjudged)}: cannot be evaluated without stopping the "
                "daemon (these counts are every waiting job of those functions"
                + (" and priorities)" if edit.job_filter.priorities else ")")
            )
    click.echo(
        "without --dry-run: gearmand is stopped (it writes its queue then), the matching "
        "jobs are counted, and you are asked before anything changes"
    )


# Every edit of every job must say so (purge, reprioritise, reschedule): a forgotten
# filter must not change the whole queue.
all_option = click.option(
    "--all", "all_", is_flag=True, help="Needed to change every job (no filter)."
)


def block_options(f: F) -> F:
    """--unblock / --accept-block: what to do when an edit would leave due jobs blocked."""
    f = click.option(
        "--accept-block",
        is_flag=True,
        help="On gearmand before 2.0.0, go ahead without a word when the edit would leave "
        "due jobs of a function blocked behind scheduled ones.",
    )(f)
    return click.option(
        "--unblock",
        is_flag=True,
        help="On gearmand before 2.0.0, when the edit would leave due jobs blocked behind "
        "scheduled ones, also move those scheduled jobs down to the lowest priority holding "
        "due jobs (their times kept), in the same batch.",
    )(f)


full_snapshot_option = click.option(
    "--full-snapshot",
    is_flag=True,
    envvar="QUEUETOOL_FULL_SNAPSHOT",
    help="Snapshot the whole table before the edit, not only the jobs it changes "
    "(slower on a big queue; either one undoes the edit).",
)


def edit_command(f: F) -> F:
    """The options every editing command shares, in a fixed order."""

    @queue_options
    @filter_options
    @write_options
    @full_snapshot_option
    @block_options
    @window_options
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return f(*args, **kwargs)

    return wrapper


@click.command("reprioritise")
@edit_command
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Choice(["high", "normal", "low"], case_sensitive=False),
    help="The new priority.",
)
@all_option
def reprioritise_cmd(
    app: AppContext, job_filter: JobFilter, to: str, all_: bool, **opts: Any
) -> None:
    """Give the matched jobs another priority (gearmand must be stopped).

    Takes a snapshot first and changes all matched jobs in one transaction.
    Refuses without a filter unless --all is given.

    \b
    Example:
      queuetool reprioritise --function 'copyFilesForPRO*' --to high
    """
    from ..changes.kinds import Reprioritise

    run_edits(app, [Reprioritise(job_filter, Priority.parse(to), all_)], **opts)


reprioritize_cmd = click.Command(
    "reprioritize",
    callback=reprioritise_cmd.callback,
    params=reprioritise_cmd.params,
    help="Same as `reprioritise`.\n\n\b\nExample:\n"
    "  queuetool reprioritize --function 'copyFilesForPRO*' --to high",
    short_help="Same as reprioritise.",
)


@click.command("reschedule")
@edit_command
@click.option("--at", "at", metavar="TIME", help="ISO-8601 (local time if no zone) or @EPOCH.")
@click.option("--in", "in_", metavar="DURATION", help="From now: 90s, 15m, 2h, 1d.")
@click.option("--now", "now", is_flag=True, help="Run at once (when_to_run = 0).")
@click.option(
    "--spread",
    metavar="DURATION",
    help="Spread the jobs evenly over [start, start + DURATION) in a stable order.",
)
@all_option
def reschedule_cmd(
    app: AppContext,
    job_filter: JobFilter,
    at: str | None,
    in_: str | None,
    now: bool,
    spread: str | None,
    all_: bool,
    **opts: Any,
) -> None:
    """Set when the matched jobs may run (gearmand must be stopped).

    Exactly one of --at, --in, --now; a time that has passed is refused (--now makes
    jobs due now). With --spread, job i of n runs at start + i*DURATION/n (start is
    now for --now), in the order they were due. Refuses without a filter unless
    --all is given.

    \b
    Examples:
      queuetool reschedule --function nightly_report --at 2026-11-29T02:00 --spread 2h
      queuetool reschedule --function 'mail*' --scheduled --now
    """
    from ..changes.kinds import Reschedule

    when = parse_when(at, in_, now)
    seconds = parse_duration(spread) if spread is not None else 0
    result = run_edits(app, [Reschedule(job_filter, when, seconds, all_)], **opts)
    if result is not None and result.changed and (when or seconds):
        # Only a future when_to_run waits for a wake-up; --now (0) is handed out at once.
        from ..daemon.version import queue_daemon_version
        from .schedule import wake_advice

        version = queue_daemon_version(app.store, app.gearmand_address)
        advice = wake_advice(app, job_filter, when or int(time.time()), version)
        if advice:
            note(opts["quiet"], advice)


@click.command("purge")
@edit_command
@all_option
@click.option(
    "--export",
    type=click.Path(dir_okay=False, path_type=Path),
    help="First write the purged jobs to this new file as JSON Lines (payload base64).",
)
def purge_cmd(
    app: AppContext, job_filter: JobFilter, all_: bool, export: Path | None, **opts: Any
) -> None:
    """Delete the matched jobs (gearmand must be stopped).

    Refuses without a filter unless --all is given. Takes a snapshot first.

    \b
    Example:
      queuetool purge --function obsolete_task --export obsolete.jsonl
    """
    from ..changes.kinds import Purge

    run_edits(app, [Purge(job_filter, all_, export)], **opts)


@click.command("repair")
@edit_command
def repair_cmd(app: AppContext, job_filter: JobFilter, **opts: Any) -> None:
    """Fix, without loss, rows gearmand cannot replay whose meaning is clear.

    gearmand 1.1.20 stores an empty payload as NULL data, and then its own SQLite
    replay refuses the row: the daemon does not start. repair makes such a payload an
    empty BLOB, a TEXT payload the BLOB of the same bytes, and a NULL when_to_run 0.
    Rows it cannot fix without guessing (a priority of 7) stay for `check` to report.

    \b
    Example:
      queuetool repair --dry-run && queuetool repair --yes && queuetool check
    """
    from ..changes.kinds import Repair

    run_edits(app, [Repair(job_filter)], **opts)


@click.command("window")
@queue_options
@write_options
@full_snapshot_option
@block_options
@window_options
@click.argument("plan_file", metavar="PLAN.toml", type=click.Path(dir_okay=False, path_type=Path))
def window_cmd(app: AppContext, plan_file: Path, **opts: Any) -> None:
    """Apply several edits from a plan file in one snapshot, one transaction and, when
    gearmand runs, one stop/start.

    \b
    PLAN.toml holds [[edit]] tables, applied in order:
      [[edit]]
      action = "reprioritise"          # reprioritise | reschedule | purge | repair
      function = ["copyFilesForPRO*"]  # filter keys: function unique priority
      to = "high"                      #   scheduled due run_after run_before
      [[edit]]
      action = "reschedule"
      function = "nightly_report"
      at = "2026-11-29T02:00"          # or in = "2h", or now = true
      spread = "2h"
      [[edit]]
      action = "purge"
      function = "obsolete_task"
      export = "obsolete.jsonl"

    \b
    Example:
      queuetool window tonight.toml --dry-run && queuetool window tonight.toml --yes
    """
    from ..changes.planfile import load_plan

    run_edits(app, load_plan(plan_file), **opts)


COMMANDS = [
    reprioritise_cmd,
    reprioritize_cmd,
    reschedule_cmd,
    purge_cmd,
    repair_cmd,
    window_cmd,
]
