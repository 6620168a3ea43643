"""`migrate`: carry the queue between SQLite, MySQL and PostgreSQL (a thin shell over
queuetool.migrate)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import Aborted
from .daemon import ways
from .options import (
    COMMAND,
    TEXT,
    AppContext,
    LazyChoice,
    config_option,
    dry_run_option,
    force_option,
    format_option,
    gearmand_option,
    quiet_option,
    yes_option,
)
from .options import confirm as ask_once

if TYPE_CHECKING:
    from ..daemon.stop import StopResult
    from ..migrate.copy import MigrationResult
    from ..table.store import QueueStore


class ProgressLine:
    """rows, rows/s and ETA on stderr, redrawn at most five times a second."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.shown = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.shown < 0.2 and (done < total or not total):
            return
        self.shown = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        if total:
            eta = (total - done) / rate if rate and total > done else 0
            line = f"{100 * done / total:5.1f}% {done:,}/{total:,} rows  {rate:,.0f} rows/s  "
            line += f"ETA {eta:,.0f}s "
        else:  # not known yet (an import's first pass)
            line = f"{done:,} rows  {rate:,.0f} rows/s "
        click.echo("\r" + line, err=True, nl=False)
        self.drawn = True

    def end(self) -> None:
        if self.drawn:
            click.echo("", err=True)


@click.command("migrate")
@click.argument("source", type=TEXT)
@click.argument("target", type=TEXT)
@config_option("TOML config file with [queues.NAME] url/table.")
@click.option(
    "--sqlite-db", type=TEXT, metavar="PATH", help="The SQLite queue file for the word `sqlite`."
)
@click.option(
    "--mysql-url",
    envvar="QUEUETOOL_MYSQL_URL",
    type=TEXT,
    metavar="URL",
    help="The MySQL queue for the word `mysql`: mysql+pymysql://USER:PASS@HOST:3306/DB.",
)
@click.option(
    "--postgres-url",
    envvar="QUEUETOOL_POSTGRES_URL",
    type=TEXT,
    metavar="URL",
    help="The PostgreSQL queue for the word `postgres`: postgresql+psycopg://USER:PASS@HOST/DB.",
)
@click.option(
    "--source-table",
    type=TEXT,
    metavar="NAME",
    help="Source table [default: config or gearman_queue].",
)
@click.option(
    "--target-table",
    type=TEXT,
    metavar="NAME",
    help="Target table [default: config or gearman_queue].",
)
@click.option("--merge", is_flag=True, help="Add to a target that already holds jobs.")
@click.option(
    "--on-conflict",
    type=LazyChoice("queuetool.migrate.staging", "CONFLICT_CHOICES"),
    default="fail",
    show_default=True,
    help="With --merge, a job whose (unique_key, function) the target already has.",
)
@click.option("--replace", is_flag=True, help="Replace the target's jobs (snapshot first).")
@dry_run_option("Report what would be copied and refused; write nothing.")
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Carry the valid jobs and export the refused ones as JSON Lines.",
)
@click.option(
    "--skipped-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where --skip-invalid exports [default: ./queuetool-skipped-TIME.jsonl].",
)
@click.option("--move", is_flag=True, help="Empty the source after the target verified.")
@yes_option()
@force_option("Write even though the queue's gearmand runs (loud).")
@gearmand_option("Admin address of the source queue's gearmand.")
@click.option("--show-password", is_flag=True, help="Print the MySQL password in the options.")
@click.option(
    "--start-with",
    type=COMMAND,
    metavar="COMMAND",
    help='Start gearmand on the new queue and verify its reload, e.g. "gearmand -d ...".',
)
@format_option(choices=("text", "json"), default="text")
@quiet_option
def migrate_cmd(
    source: str,
    target: str,
    config: str | None,
    sqlite_db: str | None,
    mysql_url: str | None,
    postgres_url: str | None,
    source_table: str | None,
    target_table: str | None,
    merge: bool,
    on_conflict: str,
    replace: bool,
    dry_run: bool,
    skip_invalid: bool,
    skipped_file: Path | None,
    move: bool,
    yes: bool,
    force: bool,
    gearmand: str | None,
    show_password: bool,
    start_with: str | None,
    fmt: str,
    quiet: bool,
) -> None:
    """Copy the queue from SOURCE to TARGET (SQLite, MySQL, PostgreSQL), verified, atomically.

    Each side is a URL, a [queues.NAME] from the config, or `sqlite` / `mysql` / `postgres`.
    The target table is created with gearmand's DDL when missing; the copy goes
    to a staging table, is verified (count and checksum on both sides) and then
    swapped in. The source is never changed (except by --move, after a snapshot).

    \b
    Example:
      queuetool migrate sqlite mysql --sqlite-db /var/lib/gearman/queue.db \\
        --mysql-url mysql+pymysql://gearman:PASS@db1:3306/gearman
    """
    from ..changes.snapshot import DEFAULT_KEEP
    from ..migrate.copy import MigrateOptions
    from ..migrate.handover import command_line, gearmand_options
    from ..migrate.handover import start_with as start_daemon_on
    from ..migrate.sides import resolve_side
    from ..migrate.window import migrate_queue
    from ..render import render_json

    app = AppContext({"config": config, "gearmand": gearmand}, {})
    ctx = click.get_current_context()
    ctx.call_on_close(app.close)
    given = {"sqlite": sqlite_db, "mysql": mysql_url, "postgres": postgres_url}
    src = resolve_side(source, app.config, given=given, table=source_table)
    ctx.call_on_close(src.close)
    dst = resolve_side(target, app.config, given=given, table=target_table)
    ctx.call_on_close(dst.close)
    keep = app.setting("keep", "snapshots", "keep", DEFAULT_KEEP).value
    stop_command, start_command, state_dir = ways(app)
    options = MigrateOptions(
        merge=merge,
        on_conflict=on_conflict,
        replace=replace,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        skipped_file=skipped_file,
        move=move,
        gearmand=gearmand,
        force=force,
        snapshot_dir=app.setting("snapshot_dir", "snapshots", "dir").value,
        keep=keep,
        state_dir=state_dir,
    )
    bar = None if quiet else ProgressLine()

    def confirm(plan: str) -> bool:
        if bar is not None:
            bar.started = time.monotonic()
        if not sys.stdin.isatty():
            raise Aborted(f"not confirmed: {plan}; no terminal to ask on, add --yes")
        return click.confirm(f"About to {plan}. Go on?", err=True)

    def note(line: str) -> None:
        if bar is not None:
            bar.end()
            bar.drawn = False
        click.echo(f"note: {line}", err=True)

    def confirm_window(reasons: Sequence[str]) -> None:
        click.echo(f"the source's gearmand is running: {'; '.join(reasons)}", err=True)
        _confirm_window(src, dst, yes)

    def stopped(result: StopResult) -> None:
        click.echo(
            f"gearmand pid {result.pid} stopped in {result.stop_seconds:.2f}s "
            f"({result.method}); it stays stopped after the migration",
            err=True,
        )

    try:
        result = migrate_queue(
            src,
            dst,
            options,
            address=app.gearmand_address,
            stop_command=stop_command,
            start_command=start_command,
            state_dir=state_dir,
            confirm_window=confirm_window,
            on_stopped=stopped,
            # With --yes the plan is never shown: not asking spares counting the source.
            confirm=None if yes else confirm,
            progress=bar,
            note=note,
        )
    finally:
        if bar is not None:
            bar.end()
    options_text = command_line(gearmand_options(dst, show_password))
    if fmt == "json":
        render_json({**result.as_dict(), "gearmand_options": options_text}, sys.stdout)
    else:
        for line in summary_lines(result, options_text):
            click.echo(line)
    if start_with and not dry_run:
        started = start_daemon_on(dst, start_with)
        assert started.verification is not None  # a start always verifies
        click.echo(f"gearmand started (pid {started.pid}): {started.verification.summary()}")


def _confirm_window(src: QueueStore, dst: QueueStore, yes: bool) -> None:
    ask_once(
        f"Stop gearmand and move its queue from {src.display_url} to {dst.display_url}? "
        "(If the migration fails it is started again on the unchanged source.)",
        yes,
    )


def summary_lines(result: MigrationResult, options_text: str) -> list[str]:
    """What the operator reads after a migration (or a dry run)."""
    lines = [f"source: {result.source}: {result.source_rows} jobs read"]
    if result.layout:
        created = "would create" if result.dry_run else "created"
        lines.append(f"{created} the target table with {result.layout}")
    if result.dry_run:
        skipped = result.skipped_conflicts
        lines.append(
            f"dry run: {result.written} jobs would be copied"
            + (f", {skipped} skipped on conflict" if skipped else "")
            + (f", {result.replaced} replaced" if result.replaced else "")
            + ", nothing was written"
        )
        lines.append(f"source checksum (jobs to copy): {result.source_checksum}")
        if result.refusals:
            lines.append(f"{result.refusals.total} jobs cannot be carried:")
            lines.extend(f"  {line}" for line in result.refusals.lines())
        for what, count in result.normalised.items():
            lines.append(f"would normalise {count}: {what}")
        return lines
    lines.append(f"source checksum:   {result.source_checksum}")
    if result.expected_checksum is not None and result.target_rows_before:
        lines.append(f"expected in target: {result.expected_checksum}")
    lines.append(f"target checksum:   {result.target_checksum}")
    lines.append(
        f"verified and swapped in: {result.target}: {result.written} jobs copied"
        + (f", {result.skipped_conflicts} skipped on conflict" if result.skipped_conflicts else "")
        + (f", {result.replaced} replaced" if result.replaced else "")
        + f" in {result.seconds:.2f}s ({result.rows_per_second:,.0f} rows/s)"
    )
    for what, count in result.normalised.items():
        lines.append(f"normalised {count}: {what}")
    if result.refusals:
        lines.append(f"{result.refusals.total} jobs were not carried (--skip-invalid):")
        lines.extend(f"  {line}" for line in result.refusals.lines())
        if result.skipped_file:
            lines.append(f"  exported to {result.skipped_file}")
    for path in result.snapshots:
        lines.append(f"snapshot: {path}")
    if result.moved:
        lines.append("source emptied (--move)")
    lines.append("gearmand options for the new queue:")
    lines.append(f"  {options_text}")
    return lines


COMMANDS = [migrate_cmd]
