"""Read-only commands: report, jobs, check. All are safe while gearmand runs."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from ..priority import Priority, label
from .options import AppContext, LazyChoice, filter_options, format_option, queue_options

if TYPE_CHECKING:
    from ..daemon.discover import DaemonInfo
    from ..daemon.held import HeldQueue
    from ..table.blocked import Blocker
    from ..table.filters import JobFilter


@click.command("report")
@queue_options
@filter_options
@click.option(
    "--by",
    type=LazyChoice("queuetool.table.report", "GROUPINGS"),
    default=None,
    help="Grouping [default: a row per function with HIGH/NORMAL/LOW columns; "
    "function,priority for json/csv/prometheus].",
)
@format_option("prometheus")
def report_cmd(app: AppContext, job_filter: JobFilter, by: str | None, fmt: str) -> None:
    """What is queued, by function and priority: scheduled vs due, payload bytes.

    \b
    Examples:
      queuetool report --queue sqlite:////var/lib/gearman/queue.db
      queuetool report --format prometheus > /var/lib/node_exporter/gearman.prom
    """
    from ..daemon.held import holding_daemon
    from ..daemon.version import queue_daemon_version
    from ..render import render
    from ..table.report import COUNT_COLUMNS, GROUPINGS, function_table, group_record, report

    out = sys.stdout
    holder = holding_daemon(app.store)
    if holder is not None:
        _held_report(holder, job_filter, by, fmt, app.store.backend, app.store.table_name)
        return
    version = queue_daemon_version(app.store, app.gearmand_address)
    rep = report(app.store, job_filter, blocking=version.scheduling_bugs)
    if fmt == "prometheus":
        from ..exporter.metrics import report_exposition

        store = app.store
        blocking = version.scheduling_bugs
        out.write(report_exposition(rep, "default", store.backend, store.table_name, blocking))
        return
    if by is None and fmt == "table":
        render(function_table(rep), fmt, out)
        return
    grouping = by or "function,priority"
    keys = GROUPINGS[grouping]
    rows = [group_record(g) for g in rep.by(grouping)]
    if fmt == "table":
        # The totals row keeps the grouping columns (first one says TOTAL), even when
        # the queue is empty.
        label = {key: "TOTAL" if i == 0 else "" for i, key in enumerate(keys)}
        rows.append({**label, **group_record(rep.total())})
    columns = [*keys, *COUNT_COLUMNS]
    if fmt == "table":
        # As in the default table: the scheduling columns only when they say something.
        shown = [c for c in columns if c not in COUNT_COLUMNS[4:] or any(r.get(c) for r in rows)]
        rows = [{c: r.get(c) for c in shown} for r in rows]
    render(rows, fmt, out, columns=columns)


MAX_LIMIT = 2**63 - 1  # the largest LIMIT every backend takes (a signed 64-bit integer)


class Limit(click.IntRange):
    """--limit: 0 (all) up to MAX_LIMIT."""

    name = "integer"  # click's "integer range" would say "'abc' is not a valid integer range"

    def __init__(self) -> None:
        super().__init__(min=0, max=MAX_LIMIT)


@click.command("jobs")
@queue_options
@filter_options
@click.option(
    "--limit",
    # A negative LIMIT means "no limit" to SQLite, and one past a 64-bit integer no
    # driver can send: both refused here rather than guessed or crashed on.
    type=Limit(),
    default=50,
    show_default=True,
    help="At most this many jobs; 0 for all.",
)
@click.option("--show-data", is_flag=True, help="Add an escaped preview of each payload.")
@format_option()
def jobs_cmd(app: AppContext, job_filter: JobFilter, limit: int, show_data: bool, fmt: str) -> None:
    """List the jobs a filter matches (unique key, function, priority, when_to_run, size).

    \b
    Example:
      queuetool jobs --function 'copyFiles*' --priority low --limit 20
    """
    from ..daemon.held import held_queue, holding_daemon, why_empty
    from ..render import render
    from ..table.jobs import JOB_COLUMNS, job_record, list_jobs

    columns = [*JOB_COLUMNS, "data"] if show_data else JOB_COLUMNS
    holder = holding_daemon(app.store)
    if holder is not None:
        # No admin command lists a job's unique key or time: only the counts can be shown.
        held = held_queue(holder, job_filter)
        click.echo(
            f"note: {why_empty(holder)}; it holds {held.total} waiting jobs"
            f"{_held_scope(held, job_filter)}, which can be listed only once it has stopped "
            "(`queuetool stop`, `queuetool jobs`, `queuetool start`)",
            err=True,
        )
        render(iter(()), fmt, sys.stdout, columns=columns)
        return
    jobs = list_jobs(app.store, job_filter, limit=limit or None, with_data=show_data)
    render((job_record(j, show_data) for j in jobs), fmt, sys.stdout, columns=columns)


def _held_scope(held: HeldQueue, job_filter: JobFilter) -> str:
    """What the daemon's counts cover, when a filter narrows them."""
    parts = []
    if job_filter.functions:
        parts.append("function " + " or ".join(job_filter.functions))
    if job_filter.priorities:
        parts.append("priority " + " or ".join(p.label for p in job_filter.priorities))
    scope = f" of {', '.join(parts)}" if parts else ""
    if held.unjudged:
        scope += f" ({' and '.join(held.unjudged)} cannot be evaluated without stopping it)"
    return scope


def _held_report(
    holder: DaemonInfo, job_filter: JobFilter, by: str | None, fmt: str, backend: str, table: str
) -> None:
    """`report` while a --store-queue-on-shutdown daemon runs: its own counts, since its
    table is not its queue; when jobs are due and how big they are is unknown until it stops."""
    from ..daemon.held import held_queue, why_empty
    from ..exporter.figures import Cell
    from ..exporter.metrics import exposition
    from ..render import render
    from ..table.report import COUNT_COLUMNS, GROUPINGS

    held = held_queue(holder, job_filter)
    click.echo(
        f"note: {why_empty(holder)}; these are the daemon's own counts (prioritystatus)"
        f"{_held_scope(held, job_filter)}; scheduled, due and bytes are known only once "
        "it has stopped",
        err=True,
    )
    out = sys.stdout
    if fmt == "prometheus":
        # Every priority of a function, 0 where none: as the table's figures are exported.
        cells = [
            Cell(f, p.label, held.cells.get((f, int(p)), 0))
            for f in held.functions()
            for p in Priority
        ]
        out.write(exposition(cells, "default", backend, table, "daemon", time.time()))
        return
    if by is None and fmt == "table":
        render(held.table(), fmt, out)
        return
    grouping = by or "function,priority"
    rows = held.records(grouping, total=fmt == "table")
    render(rows, fmt, out, columns=[*GROUPINGS[grouping], *COUNT_COLUMNS])


@click.command("check")
@queue_options
@format_option()
@click.pass_context
def check_cmd(ctx: click.Context, app: AppContext, fmt: str) -> None:
    """Find rows gearmand could not replay or would crash on; exit 1 if any.

    \b
    Example:
      queuetool check -q sqlite:////var/lib/gearman/queue.db && systemctl start gearman-job-server
    """
    from ..render import render, render_json
    from ..table.check import check

    result = check(app.store)
    # Blocked lists read priority and when_to_run as numbers: not where some are not
    # (PostgreSQL's TEXT layout holding 'soon' cannot be cast; the check reports it).
    unreadable = {"priority_type", "when_to_run_type"} & {p.kind for p in result.problems}
    blocked = _blockers(app) if (result.ok or not result.schema) and not unreadable else []
    if fmt == "json":
        out = result.as_dict()
        out["blocked"] = [
            {
                "function": b.function,
                "blocked": b.blocked,
                "blocked_until": b.until,
                "by_priority": label(b.priority),
                "by_scheduled_jobs": b.scheduled,
                "first_run": b.first,
                "remedy": b.remedy(),
            }
            for b in blocked
        ]
        render_json(out, sys.stdout)
    else:
        rows = [
            {
                "problem": p.kind,
                "count": p.count,
                "examples": ", ".join(f"{f}/{u}" for u, f in p.examples),
                "what it means": p.description,
            }
            for p in result.problems
        ] + [
            {"problem": "schema", "count": 1, "examples": "", "what it means": s}
            for s in result.schema + result.replay
        ]
        blocked_rows = [
            {
                "problem": "blocked",
                "count": b.blocked,
                "examples": b.function,
                "what it means": b.describe() + "; to free it: " + b.remedy(),
            }
            for b in blocked
        ]
        if fmt == "csv":
            render(rows + blocked_rows, fmt, sys.stdout)
        else:
            render(rows, fmt, sys.stdout)
            click.echo(result.summary())
            for b in blocked:
                click.echo(
                    f"blocked (gearmand before 2.0.0 hands these to no worker): {b.describe()}"
                )
                click.echo(f"  to free it: {b.remedy()}")
    # Blocked jobs are not lost and replay fine: they do not fail the check.
    if not result.ok:
        ctx.exit(1)


def _blockers(app: AppContext) -> list[Blocker]:
    """Blocked functions under gearmand 1.1.x's rules (none on 2.0.0 and later)."""
    from ..daemon.version import queue_daemon_version
    from ..table.blocked import blockers

    if not queue_daemon_version(app.store, app.gearmand_address).scheduling_bugs:
        return []
    store = app.store
    with store.connect(read_only=True) as conn:
        if not store.exists(conn):
            return []
        return blockers(conn, store.table, int(time.time()))


COMMANDS = [report_cmd, jobs_cmd, check_cmd]
