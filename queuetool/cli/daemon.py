"""Daemon commands: status, stop, start. Each calls one library function and renders it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..config import Setting
from ..errors import VerifyError
from .options import AppContext, discovered, format_option, queue_options

if TYPE_CHECKING:
    from ..daemon.start import StartResult
    from ..daemon.stop import StopResult


def gearmand_setting(app: AppContext, store_daemon: Any = None) -> Setting:
    """The admin address: option/env/config, else the daemon found for the queue."""
    setting = app.setting("gearmand", "gearmand", "address")
    if setting.value is not None:
        return setting
    info = store_daemon
    if info is None and app.queue_setting().source.startswith("discovered"):
        info = discovered(app)
    if info is not None:
        return Setting(str(info.options.address), f"discovered from {info.source}")
    return Setting(None, "default")


def ways(app: AppContext) -> tuple[str | None, str | None, Path | None]:
    """[gearmand] stop, start and state_dir from the config (None: the signal way, the
    captured command line, the default state directory)."""
    stop_cmd = app.config.get("gearmand", "stop")
    start_cmd = app.config.get("gearmand", "start")
    state_dir = app.config.get("gearmand", "state_dir")
    return stop_cmd, start_cmd, Path(state_dir) if state_dir else None


def note(text: str) -> None:
    """A note for the operator on stderr, so stdout stays clean for pipes."""
    click.echo(text, err=True)


@click.command("status")
@queue_options
@format_option()
def status_cmd(app: AppContext, fmt: str) -> None:
    """Is the queue's gearmand up: pid, version, uptime, and per function the daemon's
    queued/running/workers beside the table's rows (differences shown, per priority too).

    \b
    Example:
      queuetool status --gearmand 127.0.0.1:4730
    """
    from ..daemon.process import shown_command
    from ..daemon.status import status
    from ..daemon.stop import find_daemon
    from ..render import render, render_json

    store = app.store
    found = find_daemon(store, app.gearmand_address)
    address = gearmand_setting(app, found)
    result = status(store, address.value, found=found)
    stop_cmd, start_cmd, _ = ways(app)
    settings = {
        "queue": app.queue_setting(),
        "table": app.table_setting(),
        "gearmand": address,
        "stop": Setting(
            shown_command(stop_cmd) if stop_cmd else "SIGTERM to the daemon's pid",
            "config" if stop_cmd else "default",
        ),
        "start": Setting(
            shown_command(start_cmd) if start_cmd else "the command line captured at the stop",
            "config" if start_cmd else "default",
        ),
    }
    daemon = result.daemon
    if fmt == "json":
        out: dict[str, Any] = {
            "daemon": daemon.as_dict(),
            "functions": [line.record(result.blocked) for line in result.functions],
            "settings": {k: {"value": s.value, "source": s.source} for k, s in settings.items()},
        }
        if settings["queue"].value:
            out["settings"]["queue"]["value"] = store.display_url
        render_json(out, sys.stdout, ascii_only=True)
        return
    lines = []
    for line in result.functions:
        record = line.record(result.blocked)
        record["priority differences"] = "; ".join(
            f"{d.priority}: table {d.table}, daemon {d.daemon}" for d in line.priority_differences
        )
        lines.append(record)
    if daemon.up:
        up = f"gearmand is up: pid {daemon.pid}, version {daemon.version}"
        if daemon.uptime_seconds is not None:
            up += f", up {daemon.uptime_seconds:.0f}s"
        click.echo(up + f", at {address.value}")
    else:
        click.echo("gearmand is down" + (f" ({daemon.error})" if daemon.error is not None else ""))
    if lines:
        render(lines, fmt, sys.stdout)
    if result.held_in_memory:
        click.echo(
            "note: --store-queue-on-shutdown: the table is not the queue while the daemon runs"
        )
    elif result.differs:
        click.echo(
            "note: the table and the daemon differ (the difference and priority differences "
            "columns): the daemon does not hold what the table holds"
        )
    if result.blocked:
        click.echo(
            "note: blocked: due jobs gearmand before 2.0.0 hands to no worker while a higher "
            "list of their function holds only scheduled jobs (`queuetool check` says how "
            "to free them)"
        )
    if fmt == "table":
        click.echo("settings:")
        for key, s in settings.items():
            value = store.display_url if key == "queue" else s.value
            click.echo(f"  {key}: {value}  [{s.source}]")


def _render_stop(result: StopResult, quiet: bool) -> None:
    if result.already_stopped:
        click.echo("gearmand is not running on this queue: nothing to stop")
        return
    how = "KILLED with SIGKILL (--kill-after)" if result.killed else "stopped"
    held = (
        f"it held {result.queued} jobs, {sum(result.running.values())} running, "
        f"{len(result.workers)} connections"
        if result.recorded
        else "what it held is unknown (it did not answer before the stop)"
    )
    click.echo(
        f"gearmand pid {result.pid} {how} in {result.stop_seconds:.2f}s ({result.method}); {held}"
    )
    for text in result.notes:
        note(f"note: {text}")
    if result.at_rest and not quiet:
        note("the queue is at rest: safe to edit")


def _render_start(result: StartResult, quiet: bool) -> None:
    v = result.verification
    click.echo(
        f"gearmand pid {result.pid} answered after {result.ready_seconds:.2f}s ({result.method})"
    )
    if v is not None:
        click.echo(v.summary())
    if result.downtime is not None:
        click.echo(f"downtime: {result.downtime:.2f}s")
    if not quiet:
        note(result.prediction.summary())
    for text in result.notes:
        note(f"note: {text}")


@click.command("stop")
@queue_options
@click.option(
    "--drain",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Wait up to this long for running jobs.",
)
@click.option(
    "--kill-after",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="SIGKILL if still alive this long after SIGTERM (with --store-queue-on-shutdown "
    "that loses every job submitted since it started).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Give up after.",
)
@click.option("--quiet", is_flag=True, help="No notes on stderr.")
def stop_cmd(
    app: AppContext, drain: float | None, kill_after: float | None, timeout: float, quiet: bool
) -> None:
    """Stop the queue's gearmand safely, keeping its command line for `queuetool start`.

    Records status, workers and running jobs, optionally drains, sends SIGTERM (or runs
    [gearmand] stop from the config), waits until the process is gone and the port is
    closed, and confirms the queue is at rest.

    \b
    Example:
      queuetool stop --drain 30 && queuetool purge --function old_job --yes
    """
    from ..daemon.stop import stop

    store = app.store
    stop_cmd_, _, state_dir = ways(app)
    result = stop(
        store,
        address=app.gearmand_address,
        drain=drain,
        kill_after=kill_after,
        timeout=timeout,
        stop_command=stop_cmd_,
        state_dir=state_dir,
    )
    _render_stop(result, quiet)


def buckets_type(text: str) -> int | str:
    """--hashtable-buckets: a number of at least 1, or `auto`."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise click.BadParameter("a number of buckets, or auto") from None
    if value < 1:
        raise click.BadParameter("must be at least 1")
    return value


@click.command("start")
@queue_options
@click.option(
    "--hashtable-buckets",
    "buckets",
    metavar="N|auto",
    type=buckets_type,
    help="Restart with this --hashtable-buckets (auto: a prime near the job count); "
    "signal way only.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    help="Wait this long for the daemon [default: grows with the queue].",
)
@click.option(
    "--after-migration",
    is_flag=True,
    help="Start even though this queue was migrated away from (its jobs may run twice).",
)
@click.option("--quiet", is_flag=True, help="No notes on stderr.")
def start_cmd(
    app: AppContext,
    buckets: int | str | None,
    timeout: float | None,
    after_migration: bool,
    quiet: bool,
) -> None:
    """Check the queue, start its gearmand and verify it reloaded exactly the table.

    Uses [gearmand] start from the config, or the command line `queuetool stop`
    captured. Refuses to start on rows gearmand cannot replay (see `check`), and
    (exit 4) on a queue `migrate` moved the jobs away from, unless --after-migration.
    Exit 5 when the daemon's counts differ from the table's.

    \b
    Example:
      queuetool start --hashtable-buckets auto
    """
    from ..daemon.reload import predict_replay
    from ..daemon.start import start
    from ..daemon.state import ensure_not_migrated, state_path

    store = app.store
    _, start_cmd_, state_dir = ways(app)
    if not after_migration:
        ensure_not_migrated(store, state_dir)  # before the notes: a refusal is one line
    if not quiet:
        with store.connect() as conn:
            rows = store.count(conn)  # a count, not a whole GROUP BY report
        note(predict_replay(rows).summary() if buckets is None else f"{rows:,} jobs to replay")
    try:
        result = start(
            store,
            address=app.gearmand_address,
            start_command=start_cmd_,
            hashtable_buckets=buckets,
            state_dir=state_dir,
            timeout=timeout,
            after_migration=after_migration,
        )
    except VerifyError as exc:
        if exc.result is not None:
            _print_differences(exc.result)
        raise
    _render_start(result, quiet)
    if not quiet:
        note(f"state: {state_path(store, state_dir)}")


def _print_differences(result: StartResult) -> None:
    from ..render import render

    v = result.verification
    if v is None:
        return
    rows = [
        {"function": f, "priority": p, "table": t, "daemon": d} for f, p, t, d in v.differences()
    ]
    render(rows, "table", sys.stderr)


COMMANDS = [status_cmd, stop_cmd, start_cmd]
