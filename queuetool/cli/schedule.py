"""`wake`, and what `reschedule` tells the operator about waking scheduled jobs."""

from __future__ import annotations

import shlex
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import click

from ..errors import UsageError
from ..timeparse import format_epoch
from .daemon import gearmand_setting
from .options import AppContext, discovered, filter_options, queue_options

if TYPE_CHECKING:
    from ..daemon.version import DaemonVersion
    from ..daemon.wake import WakePass
    from ..table.filters import JobFilter


def _address(app: AppContext) -> str:
    """The admin address of the queue's own gearmand: the one running here for the
    queue, or --gearmand, which must then be that daemon (never another queue's)."""
    from ..daemon.stop import find_daemon
    from ..daemon.wake import check_retries

    found = find_daemon(app.store, app.gearmand_address)
    address = gearmand_setting(app, found).value
    if not address:
        raise UsageError(
            "no gearmand to wake: none runs here for this queue; name it with --gearmand HOST:PORT"
        )
    info = found if found is not None else discovered(app)
    if info is not None:
        check_retries(info.options.get("job-retries"))
    return str(address)


def _render(done: WakePass) -> None:
    for w in done.woken:
        if w.released is None:
            click.echo(f"{w.function}: nothing to hand out (no job due, or its list is blocked)")
        else:
            click.echo(f"{w.function}: workers woken (job {w.released} handed back to them)")
    if not done.woken:
        click.echo("no scheduled job came due: nothing to wake")
    for function, (jobs, nxt) in sorted(done.waiting.items()):
        click.echo(f"{function}: {jobs} scheduled jobs still waiting, next at {format_epoch(nxt)}")
    sys.stdout.flush()


@click.command("wake")
@queue_options
@filter_options
@click.option(
    "--every",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Keep waking as jobs come due, a pass every SECONDS, until no scheduled job "
    "(of the filter) is left.",
)
def wake_cmd(app: AppContext, job_filter: JobFilter, every: float | None) -> None:
    """Hand out scheduled jobs whose time has come (gearmand before 2.0.0 does not).

    Wakes the workers of every function with scheduled jobs that are due (or of the
    functions the filter names): queuetool takes the job a worker would get and gives
    it back at once; gearmand re-queues it and wakes the sleeping workers, which then
    take it and the other due jobs. No job is run, added or lost.

    \b
    Examples:
      queuetool wake
      queuetool wake --function nightly_report --every 30
    """
    from ..daemon.held import holding_daemon
    from ..daemon.wake import wake_every, wake_once
    from ..table.filters import GLOB_CHARS

    address = _address(app)
    store = app.store
    if holding_daemon(store) is not None:
        # Its table is not its queue while it runs: only the names the filter gives can be woken.
        names = [f for f in job_filter.functions if not GLOB_CHARS & set(f)]
        if not names or every:
            raise UsageError(
                "this gearmand keeps its queue in memory (--store-queue-on-shutdown), so "
                "its table cannot tell which jobs are due: name the functions with "
                "--function NAME (no glob, no --every)"
            )
        _render(wake_once(store, address, job_filter, functions=names))
        return
    if every:
        wake_every(store, address, job_filter, every, _render)
        return
    _render(wake_once(store, address, job_filter))


def wake_advice(
    app: AppContext, job_filter: JobFilter, start: int, version: DaemonVersion
) -> str | None:
    """After `reschedule` to `start`: how the jobs will be handed out on time, or None on
    a gearmand that wakes its workers itself (2.0.0 and later)."""
    from ..table.store import mask_url

    if not version.scheduling_bugs:
        return None
    args = ["queuetool", "wake"]
    queue, table = app.params.get("queue"), app.params.get("table")
    secret = bool(queue) and mask_url(str(queue)) != str(queue)
    if queue and not secret:  # a password is never printed
        args += ["--queue", str(queue)]
    if table:
        args += ["--table", str(table)]
    address = gearmand_setting(app).value
    if address:
        args += ["--gearmand", str(address)]
    for function in job_filter.functions:
        args += ["--function", function]
    args += ["--every", "30"]
    command = shlex.join(args)
    when = datetime.fromtimestamp(start).strftime("%Y-%m-%d %H:%M:%S")
    lines = [
        f"Note: {version.label()} (before 2.0.0) does not wake sleeping workers when a "
        "scheduled job's time comes. To hand these jobs out on time, run from their time on:",
        f"  {command}",
        "(it wakes each function as its jobs come due and ends when no scheduled job is "
        "left), for instance from a one-shot timer:",
        f"  systemd-run --on-calendar='{when}' --timer-property=AccuracySec=1s {command}",
    ]
    if secret:
        lines.append("  (add --queue: its URL holds a password, so it is not shown; or --config)")
    return "\n".join(lines)


COMMANDS = [wake_cmd]
