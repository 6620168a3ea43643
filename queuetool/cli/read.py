"""Read-only commands: report, jobs, check. All are safe while gearmand runs."""

from __future__ import annotations

import sys

import click

from ..daemon.discover import DaemonInfo
from ..daemon.held import HeldQueue, held_queue, holding_daemon, why_empty
from ..render import render, render_json
from ..table.check import check
from ..table.filters import JobFilter
from ..table.jobs import JOB_COLUMNS, job_record, list_jobs
from ..table.report import (
    COUNT_COLUMNS,
    GROUPINGS,
    function_table,
    group_record,
    prometheus,
    report,
)
from .options import AppContext, filter_options, format_option, queue_options


@click.command("report")
@queue_options
@filter_options
@click.option(
    "--by",
    type=click.Choice(list(GROUPINGS)),
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
    out = sys.stdout
    holder = holding_daemon(app.store)
    if holder is not None:
        _held_report(holder, job_filter, by, fmt, app.store.table_name)
        return
    rep = report(app.store, job_filter)
    if fmt == "prometheus":
        for line in prometheus(rep, app.store.table_name):
            out.write(line + "\n")
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
    render(rows, fmt, out, columns=[*keys, *COUNT_COLUMNS])


@click.command("jobs")
@queue_options
@filter_options
@click.option("--limit", default=50, show_default=True, help="At most this many jobs; 0 for all.")
@click.option("--show-data", is_flag=True, help="Add an escaped preview of each payload.")
@format_option()
def jobs_cmd(app: AppContext, job_filter: JobFilter, limit: int, show_data: bool, fmt: str) -> None:
    """List the jobs a filter matches (unique key, function, priority, when_to_run, size).

    \b
    Example:
      queuetool jobs --function 'copyFiles*' --priority low --limit 20
    """
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
    holder: DaemonInfo, job_filter: JobFilter, by: str | None, fmt: str, table: str
) -> None:
    """`report` while a --store-queue-on-shutdown daemon runs: its own counts, since its
    table is empty; when jobs are due and how big they are is unknown until it stops."""
    held = held_queue(holder, job_filter)
    click.echo(
        f"note: {why_empty(holder)}; these are the daemon's own counts (prioritystatus)"
        f"{_held_scope(held, job_filter)}; scheduled, due and bytes are known only once "
        "it has stopped",
        err=True,
    )
    out = sys.stdout
    if fmt == "prometheus":
        for line in held.prometheus(table):
            out.write(line + "\n")
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
    result = check(app.store)
    if fmt == "json":
        render_json(result.as_dict(), sys.stdout)
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
            for s in result.schema
        ]
        render(rows, fmt, sys.stdout)
        if fmt == "table":
            click.echo(result.summary())
    if not result.ok:
        ctx.exit(1)


COMMANDS = [report_cmd, jobs_cmd, check_cmd]
