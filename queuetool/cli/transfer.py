"""`export` and `import`: jobs out of a queue into a file, and back in (the cold start)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import DaemonRunning
from ..priority import Priority
from .daemon import _render_stop
from .edit import note
from .maintenance import _render_end, announce, is_live, window_options
from .migrate import ProgressLine
from .options import (
    TEXT,
    AppContext,
    LazyChoice,
    confirm,
    filter_options,
    queue_options,
    quiet_option,
    snapshot_settings,
    write_options,
)

if TYPE_CHECKING:
    from ..changes.importing import ImportResult
    from ..table.filters import JobFilter


@click.command("export")
@queue_options
@filter_options
@click.argument("file", metavar="FILE")
@click.option(
    "--format",
    "fmt",
    type=LazyChoice("queuetool.table.export", "FORMATS"),
    help="jsonl or csv [default: csv for a FILE ending in .csv, else jsonl].",
)
@quiet_option
def export_cmd(
    app: AppContext, job_filter: JobFilter, file: str, fmt: str | None, quiet: bool
) -> None:
    """Write the jobs a filter selects (every job by default) to a new FILE (- for
    stdout), with a trailer (count and checksum) that `import` verifies.

    Only reads: safe while gearmand runs.

    \b
    Examples:
      queuetool export all-jobs.jsonl
      queuetool export --function 'copyFiles*' --priority low - | gzip > low.jsonl.gz
    """
    from ..changes.importing import export_jobs
    from ..daemon.held import holding_daemon, why_empty
    from ..table.export import STDOUT

    store = app.store
    holder = holding_daemon(store)
    if holder is not None:
        raise DaemonRunning(
            f"{why_empty(holder)}: an export now would not hold its jobs. Stop it first "
            "(`queuetool stop`, which makes it write them), export, then `queuetool start`"
        )
    progress = None if quiet else ProgressLine()
    result = export_jobs(store, Path(file), job_filter, fmt, progress)
    if progress is not None:
        progress.end()
    text = (
        f"exported {result.rows} jobs to {'stdout' if file == STDOUT else file} "
        f"({result.fmt}), checksum {result.checksum.hex}, in {result.elapsed:.2f}s"
    )
    if file == STDOUT:
        note(quiet, text)
    else:
        click.echo(text)


@click.command("import")
@queue_options
@write_options
@window_options
@click.argument("file", metavar="FILE")
@click.option(
    "--on-conflict",
    type=LazyChoice("queuetool.migrate.staging", "CONFLICT_CHOICES"),
    default="fail",
    show_default=True,
    help="A job whose (unique_key, function) the table (or the file before it) already "
    "has: fail refuses the import, skip keeps the one there (as gearmand does), replace "
    "takes the new one.",
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Import the valid jobs and export those gearmand could not replay.",
)
@click.option(
    "--skipped-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where --skip-invalid exports [default: ./queuetool-skipped-TIME.jsonl].",
)
@click.option(
    "--function",
    "function",
    type=TEXT,
    metavar="NAME",
    help="FILE is a plain list, one payload a line: the jobs' function.",
)
@click.option(
    "--priority",
    type=click.Choice(["high", "normal", "low"], case_sensitive=False),
    default="normal",
    show_default=True,
    help="With --function: the jobs' priority.",
)
@click.option(
    "--no-verify",
    is_flag=True,
    help="Import a file without a trailer, or edited by hand (its trailer no longer matches).",
)
def import_cmd(
    app: AppContext,
    file: str,
    on_conflict: str,
    skip_invalid: bool,
    skipped_file: Path | None,
    function: str | None,
    priority: str,
    no_verify: bool,
    dry_run: bool,
    yes: bool,
    force: bool,
    quiet: bool,
    snapshot_dir: Path | None,
    **window: Any,
) -> None:
    """Add the jobs of FILE (- for stdin) to the queue: verified, in one transaction,
    after an undo snapshot; while gearmand runs, inside the maintenance window.

    The file is checked whole first (its trailer's count and checksum, and that
    gearmand can replay every job); a file cut short or altered is refused and nothing
    is written. Jobs without a unique key get a UUID version 1, as libgearman gives
    them. `queuetool restore SNAPSHOT` undoes the import: the jobs it added go, the ones
    it replaced come back.

    \b
    Examples:
      queuetool import all-jobs.jsonl --dry-run
      queuetool import all-jobs.jsonl --on-conflict skip --yes
      queuetool import ids.txt --function resubmit_order --priority high --yes
    """
    from ..changes.importing import (
        check_file,
        import_jobs,
        import_window,
        refuse_unreplayable,
        writes_as_it_reads,
    )
    from ..daemon.held import holding_daemon, why_empty
    from ..table.jobfile import JobSource

    store = app.store
    source = JobSource(
        Path(file),
        function=function,
        priority=int(Priority.parse(priority)),
        verify_trailer=not no_verify,
    )
    progress = None if quiet else ProgressLine()
    try:
        # Nothing to confirm and no daemon to stop, on a backend where the import writes
        # as it reads (MySQL's cold start): the import makes the first pass itself.
        streams = yes and not (dry_run or skip_invalid or force) and writes_as_it_reads(store)
        reasons = is_live(app) if streams else None
        checked = None if reasons == [] else check_file(store, source)
        if checked is not None:
            click.echo(f"{source.name}: {checked[0].describe()}")
            if checked[1] and not skip_invalid:
                for line in checked[1].lines():
                    click.echo(f"  {line}", err=True)
                refuse_unreplayable(checked)  # now, before a window stops the daemon
        invalid = _skipped_path(skipped_file) if skip_invalid else None
        options: dict[str, Any] = dict(on_conflict=on_conflict, skip_invalid=invalid)
        holder = holding_daemon(store)
        if dry_run:
            assert checked is not None
            if holder is not None:
                click.echo(
                    f"dry run: {why_empty(holder)}; conflicts with its jobs are known only "
                    "once it has stopped"
                )
            result = import_jobs(
                store, source, dry_run=True, guard=False, checked=checked, **options
            )
            _render(result, None)
            click.echo("nothing changed, no snapshot taken")
            return
        directory, keep = snapshot_settings(app, snapshot_dir)
        options["progress"] = progress
        jobs = f"{checked[0].rows} jobs" if checked is not None else "the jobs"
        what = f"import {jobs} from {source.name} (--on-conflict {on_conflict})"
        if reasons is None:
            reasons = [] if force else is_live(app)
        if reasons:
            assert checked is not None  # checked first: a bad file never stops the daemon
            announced = announce(
                app,
                what,
                reasons,
                yes=yes,
                confirm=confirm,
                quiet=quiet,
                count_after_stop=holder is not None,
                **window,
            )
            after_stop = None
            if holder is not None:

                def after_stop() -> None:
                    confirm(
                        f"gearmand stopped and wrote its queue. {what[0].upper()}{what[1:]}?", yes
                    )

            outcome, imported = import_window(
                store,
                source,
                directory,
                keep,
                checked=checked,
                import_options=options,
                after_stop=after_stop,
                **announced,
            )
            _end(progress)
            _render_stop(outcome.stopped, quiet)
            if imported is not None:
                _render(imported, imported.snapshot.path if imported.snapshot else None)
            _render_end(outcome, quiet)
            return
        confirm(
            f"{what[0].upper()}{what[1:]} into {store.display_url} table {store.table_name}?",
            yes,
        )
        if force:
            click.echo(
                "Warning: --force: the check that the queue's gearmand is stopped will not "
                "stop this import; a running gearmand may overwrite or lose it.",
                err=True,
            )
        result = import_jobs(
            store,
            source,
            directory,
            keep,
            gearmand=app.gearmand_address,
            force=force,
            checked=checked,
            **options,
        )
        _end(progress)
        if checked is None:
            click.echo(f"{source.name}: {result.file.describe()}")
        _render(result, result.snapshot.path if result.snapshot else None)
        click.echo(f"elapsed: {result.elapsed:.2f}s")
    finally:
        _end(progress)
        source.close()


def _skipped_path(given: Path | None) -> Path:
    if given is not None:
        return given
    return Path(f"queuetool-skipped-{time.strftime('%Y%m%dT%H%M%S')}.jsonl")


def _end(progress: ProgressLine | None) -> None:
    if progress is not None:
        progress.end()
        progress.drawn = False  # once: the line is ended


def _render(result: ImportResult, snapshot: Path | None) -> None:
    if snapshot is not None:
        click.echo(f"snapshot: {snapshot} (`queuetool restore` it to undo the import)")
    for line in result.lines()[1:]:
        click.echo(("dry run: " if result.dry_run and not line.startswith(" ") else "") + line)


COMMANDS = [export_cmd, import_cmd]
