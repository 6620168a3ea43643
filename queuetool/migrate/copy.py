"""Carry a queue between backends, streamed, verified, swapped in atomically.

`migrate(source, target, options)` reads the source once through a server-side
cursor, checks every row against what gearmand can replay on the target
(`carry`), writes the rows into a staging table beside the target in batched
multi-row INSERTs (staging.py; PostgreSQL: COPY, dialects/postgresql.py), takes the
source checksum while streaming (a MySQL or PostgreSQL source's own server computes
it meanwhile: sourcesum.py), then the staging table's checksum from the rows as they
are in it (computed by a MySQL server: targetsum.py; a PostgreSQL server sums each
batch as it is stored, and each SQLite batch is read back and summed as it is stored:
the writer's `stored`, else the whole table is summed after the copy), and only
when both agree puts the staging table in the target's place: MySQL with one RENAME
TABLE, SQLite and PostgreSQL inside the one transaction that did the whole copy.
The source is never written, except that `--move` empties it after the target
verified, under a lock and only while it provably still holds the rows that were
read (move.py; a snapshot is taken first). sides.py names the two sides; skipped.py
exports the rows --skip-invalid leaves behind."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..changes import snapshot
from ..daemon import guard
from ..daemon.state import clear_migrated, mark_migrated
from ..errors import (
    Aborted,
    ProblemsFound,
    QueuetoolError,
    SchemaError,
    UsageError,
    VerifyError,
    one_line,
    reported_errors,
)
from ..table.checksum import Checksum, raw_batches
from ..table.export import check_export_path
from ..table.store import QueueStore, conn_quote
from .carry import Carrier, Refusals, Row
from .move import empty_source
from .skipped import skipped_sink
from .sourcesum import SourceChecksum
from .staging import CONFLICT_CHOICES, Writer, combine, open_probe, open_writer
from .targetsum import staging_checksum

BATCH_ROWS = 5000
BATCH_BYTES = 8 * 1024 * 1024  # a batch of big payloads is cut early: memory stays flat
READ_BATCH = 1000
STAGING_SUFFIX = "__qt_staging"
OLD_SUFFIX = "__qt_old"
PROBE_SUFFIX = "__qt_probe"

Progress = Callable[[int, int], None]
Note = Callable[[str], None]


@dataclass
class MigrateOptions:
    """How `migrate` treats a non-empty target, refused rows and the source (`--move`)."""

    merge: bool = False
    on_conflict: str = "fail"
    replace: bool = False
    dry_run: bool = False
    skip_invalid: bool = False
    skipped_file: Path | None = None
    move: bool = False
    gearmand: str | None = None  # admin address of the source's daemon, for the guard
    force: bool = False
    snapshot_dir: str | None = None
    keep: int | None = snapshot.DEFAULT_KEEP
    batch: int = BATCH_ROWS
    state_dir: Path | None = None  # where the daemons' state files are (daemon/state.py)


@dataclass
class MigrationResult:
    """What a migration did (or, with `dry_run`, would do): counts, checksums, refusals."""

    source: str
    target: str
    dry_run: bool
    source_rows: int = 0
    carried: int = 0
    written: int = 0
    skipped_conflicts: int = 0
    replaced: int = 0
    target_rows_before: int = 0
    created_table: bool = False
    collation: str | None = None  # of the key columns of a MySQL table queuetool creates
    layout: str | None = None  # what a created table is like, for the operator
    refusals: Refusals = field(default_factory=Refusals)
    normalised: dict[str, int] = field(default_factory=dict)
    source_checksum: Checksum = field(default_factory=Checksum)
    source_read: Checksum = field(default_factory=Checksum)  # the rows as read, unchanged
    expected_checksum: Checksum | None = None
    target_checksum: Checksum | None = None
    snapshots: list[str] = field(default_factory=list)
    skipped_file: Path | None = None
    moved: bool = False
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.source_rows / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "source_rows": self.source_rows,
            "carried": self.carried,
            "written": self.written,
            "skipped_conflicts": self.skipped_conflicts,
            "replaced": self.replaced,
            "created_table": self.created_table,
            "collation": self.collation,
            "refused": self.refusals.total,
            "refusals": self.refusals.as_dict(),
            "normalised": self.normalised,
            "source_checksum": str(self.source_checksum),
            "target_checksum": str(self.target_checksum) if self.target_checksum else None,
            "snapshots": self.snapshots,
            "skipped_file": str(self.skipped_file) if self.skipped_file else None,
            "moved": self.moved,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class CopyRun:
    """One pass of the copy (`_copy`, `_stream`): the two sides and how to report."""

    source: QueueStore
    target: QueueStore
    opts: MigrateOptions
    result: MigrationResult
    total: int  # the source's rows, for the progress bar (0: not counted)
    progress: Progress | None
    say: Note
    lenient: bool  # read text that is not UTF-8 byte-exact (the second pass)


# -- the migration -------------------------------------------------------------------------


def migrate(
    source: QueueStore,
    target: QueueStore,
    options: MigrateOptions | None = None,
    *,
    confirm: Callable[[str], bool] | None = None,
    progress: Progress | None = None,
    note: Note | None = None,
) -> MigrationResult:
    """Copy every job gearmand can replay from `source` to `target`; see the module doc.

    `confirm(plan)` is asked once before anything is written (False: Aborted);
    `progress(rows_read, total)` after each batch; `note(line)` for what the
    operator should know (leftovers removed, refusals, normalised values).
    """
    opts = options or MigrateOptions()
    say = note or (lambda _line: None)
    check_sides(source, target, opts)
    started = time.monotonic()
    if opts.dry_run:
        # A dry run writes nothing: a running daemon is no reason to refuse, only to warn.
        for reason in guard.live_reasons(source, opts.gearmand):
            say(
                f"the source's gearmand is running ({reason}): its queue may change "
                "before the real run"
            )
    else:
        guard.ensure_stopped(source, opts.gearmand, opts.force)
        guard.ensure_stopped(target, None, opts.force)
    result = MigrationResult(source.display_url, target.display_url, opts.dry_run)
    with source.connect() as sconn:
        source.require_table(sconn)
        # Only for the operator's eyes (the plan, the progress bar): at 1M rows a COUNT
        # costs up to 0.6 s, and the copy counts what it reads anyway.
        total = source.count(sconn) if confirm is not None or progress is not None else 0
    created_file = _new_target_file(target, opts.dry_run)
    try:
        plan = _inspect_target(target, opts, result, say)
        if not opts.dry_run:
            text = (
                f"copy {total} jobs from {source.display_url} table {source.table_name} to "
                f"{target.display_url} table {target.table_name} ({plan})"
            )
            if confirm is not None and not confirm(text):
                raise Aborted("migration not confirmed; nothing was written")
            if opts.replace and result.target_rows_before:
                info = snapshot.take(
                    target, opts.snapshot_dir, keep=opts.keep, reason="migrate-replace"
                )
                result.snapshots.append(str(info.path))
        for attempt in (False, True):
            try:
                _copy(CopyRun(source, target, opts, result, total, progress, say, attempt))
                break
            # The rows are read through the raw DB-API cursor: its error comes unwrapped.
            except (
                sa.exc.OperationalError,
                source.engine.dialect.loaded_dbapi.OperationalError,
            ) as exc:
                message = str(getattr(exc, "orig", exc))
                if attempt or "decode" not in message or not source.dialect.LENIENT_TEXT:
                    raise
                say("the source has text that is not UTF-8: reading it again byte-exact")
                result.refusals.kinds.clear()
                if result.skipped_file is not None:  # the first pass's export: written anew
                    result.skipped_file.unlink(missing_ok=True)
                    result.skipped_file = None
    except BaseException:
        if created_file is not None and not opts.dry_run:
            target.close()
            with contextlib.suppress(OSError):
                created_file.unlink()
        raise
    if not opts.dry_run:
        # The jobs are in the target now: a gearmand started on the source again would
        # run them a second time, so `queuetool start` there refuses until told otherwise.
        # Marked before --move empties it: a source it fails to empty still holds them.
        clear_migrated(target, opts.state_dir)
        mark_migrated(source, f"{target.display_url} table {target.table_name}", opts.state_dir)
    if not opts.dry_run and opts.move:
        _empty_source(source, opts, result, say)
    result.seconds = time.monotonic() - started
    return result


def check_sides(source: QueueStore, target: QueueStore, opts: MigrateOptions) -> None:
    """UsageError for a migration its sides and options alone refuse; the window asks
    before it stops the source's gearmand, and `migrate` again."""
    if _same_table(source, target):
        raise UsageError("source and target are the same queue table")
    if opts.merge and opts.replace:
        raise UsageError("--merge and --replace exclude each other")
    if opts.on_conflict not in CONFLICT_CHOICES:
        raise UsageError(f"--on-conflict must be one of {', '.join(CONFLICT_CHOICES)}")
    if len(target.table_name) + len(STAGING_SUFFIX) > 64:
        raise UsageError(f"target table name {target.table_name!r} is too long for staging")
    if opts.skip_invalid and not opts.dry_run and opts.skipped_file is not None:
        check_export_path(opts.skipped_file)
    if _same_server_table(source, target):
        raise UsageError(
            "source and target are the same queue table (one server's table, reached by two URLs)"
        )


def _same_table(source: QueueStore, target: QueueStore) -> bool:
    """Whether both sides name one table, however spelled: a SQLite file by any path
    (a symlink, `./`, a hard link: its inode) and the table's name in any case, as
    SQLite reads it. Copied onto itself, `--move` would then empty the only copy."""
    if source.backend != target.backend:
        return False
    same_file = bool(source.file_id) and source.file_id == target.file_id
    if not same_file and source.location != target.location:
        return False
    if source.database_file is not None:
        return source.table_name.lower() == target.table_name.lower()
    return source.table_name == target.table_name


def _same_server_table(source: QueueStore, target: QueueStore) -> bool:
    """Whether two server URLs whose text differs (localhost and 127.0.0.1, a name and an
    address) reach one table: the server itself is asked (`Dialect.same_table`)."""
    if source.backend != target.backend or source.database_file is not None:
        return False
    with source.connect() as a, target.connect() as b:
        return source.dialect.same_table(a, b, source.table_name, target.table_name)


def _new_target_file(target: QueueStore, dry_run: bool) -> Path | None:
    """A new database file is created for the target (only): returns it, to remove on
    failure."""
    path = target.database_file
    if path is None or path.exists() or dry_run:
        return None
    if not path.parent.is_dir():
        raise UsageError(f"directory {path.parent} does not exist")
    target.dialect.create_database_file(path)
    return path


def _inspect_target(
    target: QueueStore, opts: MigrateOptions, result: MigrationResult, say: Note
) -> str:
    """Refuse a target gearmand could not use, or one that holds jobs without --merge/--replace."""
    if target.database_file is not None and not target.database_file.exists():
        result.created_table = True
        result.layout = "gearmand's DDL in a new SQLite file"
        return f"table created with {result.layout}"
    with target.connect() as conn:
        inspector = sa.inspect(conn)
        for leftover in _leftovers(target):
            if inspector.has_table(leftover):
                if opts.dry_run:
                    say(f"a leftover table {leftover} from an interrupted run will be removed")
                else:
                    target.dialect.drop_table(conn, leftover)
                    conn.commit()
                    say(f"removed leftover table {leftover} from an interrupted migration")
        if not target.exists(conn):
            result.created_table = True
            result.collation, why = target.dialect.key_collation(conn)
            result.layout = f"gearmand's DDL, {why}"
            return f"table created with {result.layout}"
        problems = target.schema_problems(conn)
        if problems:
            raise SchemaError(
                f"target {target.display_url} table {target.table_name!r} cannot be used by "
                "gearmand: " + "; ".join(problems) + " (drop or rename it, or choose another)"
            )
        replay = target.dialect.replay_problem(conn, target.table_name)
        if replay is not None:
            say(f"target table {target.table_name}: {replay}")
        rows = target.count(conn)
    result.target_rows_before = rows
    if rows and not (opts.merge or opts.replace):
        raise UsageError(
            f"target table {target.table_name!r} already holds {rows} jobs: --merge adds to them "
            "(--on-conflict skip|replace|fail), --replace empties it first (after a snapshot)"
        )
    if opts.merge and rows:
        return f"merged with its {rows} jobs, on conflict {opts.on_conflict}"
    if opts.replace and rows:
        return f"replacing its {rows} jobs"
    return "into the existing empty table"


def _leftovers(target: QueueStore) -> tuple[str, str]:
    return (target.table_name + STAGING_SUFFIX, target.table_name + OLD_SUFFIX)


def _copy(run: CopyRun) -> None:
    """One pass: stream, check, write to staging, verify, swap."""
    target, opts, result, say = run.target, run.opts, run.result, run.say
    result.source_rows = result.carried = 0
    result.source_checksum = Checksum()
    staging = target.table_name + STAGING_SUFFIX
    exists = not result.created_table
    with _skipped_sink(opts, result) as sink:
        result.refusals = Refusals(sink=sink)
        if opts.dry_run:
            with _probe(target, opts, result) as (probe, charsets):
                _stream(run, probe, charsets)
                if probe is not None:
                    probe.close()
                    result.skipped_conflicts, result.replaced = probe.skipped, probe.replaced
                    result.written = result.carried - probe.not_written.rows
                else:
                    result.written = result.carried
            return
        with _target_conn(target) as tconn:
            like = target.table_name if exists else None
            target.dialect.create_staging(tconn, target, staging, like, result.collation)
            try:
                base = Checksum()
                merging = opts.merge and result.target_rows_before > 0
                if merging:
                    base = _copy_target_rows(target, tconn, staging)
                writer = open_writer(
                    target, tconn, staging, result.refusals, opts.on_conflict if merging else None
                )
                charsets = _charsets(target, tconn, staging)
                try:
                    _stream(run, writer, charsets)
                except BaseException:
                    writer.abort()  # before anything else touches the connection
                    raise
                # Every batch, even after a refusal: the last ones may hold collisions,
                # which are listed with the other refusals (and counted by the dry run).
                writer.close()
                result.skipped_conflicts, result.replaced = writer.skipped, writer.replaced
                if result.refusals and not opts.skip_invalid:
                    for line in result.refusals.lines():
                        say(line)
                    raise ProblemsFound(
                        f"{result.refusals.total} of {result.source_rows} jobs cannot be carried "
                        "(listed above); nothing was written. --skip-invalid carries the rest and "
                        "exports these to a JSON Lines file"
                    )
                expected = combine(
                    [base, result.source_checksum], [writer.not_written, writer.removed]
                )
                result.expected_checksum = expected
                result.written = result.carried - writer.not_written.rows
                # The staging table's own rows, not what we sent: on MySQL the server
                # computes it, so nothing is read back through the driver. A writer that
                # summed the rows as they were stored (PostgreSQL's server, SQLite's read
                # back batch by batch) gives that sum; if it does not match, the whole
                # table is summed again before anything fails.
                found = writer.stored
                if found is None or (found.rows, found.total) != (expected.rows, expected.total):
                    found = staging_checksum(target, tconn, staging)
                result.target_checksum = found
                if (found.rows, found.total) != (expected.rows, expected.total):
                    raise VerifyError(
                        f"the copy did not verify: expected {expected}, the staging table holds "
                        f"{found}; the target was left as it was"
                    )
                _swap(target, tconn, staging, exists)
            except BaseException:
                if not target.dialect.TRANSACTIONAL_DDL:  # else the rollback removes it
                    with contextlib.suppress(Exception):
                        target.dialect.drop_table(tconn, staging)
                raise


@contextlib.contextmanager
def _target_conn(target: QueueStore) -> Iterator[Connection]:
    """One transaction for the whole copy (transactional DDL, SQLite), else autocommit:
    batches commit (MySQL)."""
    if target.dialect.TRANSACTIONAL_DDL:
        with target.begin() as conn:
            yield conn
    else:
        with target.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")


@contextlib.contextmanager
def _probe(
    target: QueueStore, opts: MigrateOptions, result: MigrationResult
) -> Iterator[tuple[Writer | None, tuple[str | None, str | None]]]:
    """The dry run's staging table: a TEMPORARY one of the target's layout and collation
    (with the target's keys under --merge), written by the same writer as the real run
    but with the keys only, so it finds exactly the collisions and conflicts the real run
    finds. Only this session sees it, and it is dropped at the end: nothing is written.
    A new SQLite file is not opened at all: its keys compare byte for byte."""
    if target.database_file is not None and not target.database_file.exists():
        yield None, (None, None)
        return
    probe = target.table_name + PROBE_SUFFIX
    exists = not result.created_table
    like = target.table_name if exists else None
    # With transactional DDL the probe lives in the session's temp schema inside a read
    # transaction (SQLite: no write lock on the file); otherwise DDL commits by itself.
    read_only = target.dialect.TRANSACTIONAL_DDL
    with target.connect(read_only=read_only) as conn:
        if not read_only:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        charsets = _charsets(target, conn, like)
        drop = target.dialect.drop_table
        drop(conn, probe, temporary=True)
        target.dialect.create_staging(conn, target, probe, like, result.collation, temporary=True)
        try:
            merging = opts.merge and result.target_rows_before > 0
            if merging:
                cols = "unique_key, function_name, priority, data, when_to_run"
                # The payload as a parameter: X'' is a bit string to PostgreSQL.
                keys = "unique_key, function_name, priority, :empty, when_to_run"
                src = conn_quote(target.engine, target.table_name)
                dst = conn_quote(target.engine, probe)
                insert = f"INSERT INTO {dst} ({cols}) SELECT {keys} FROM {src}"
                conn.execute(sa.text(insert), {"empty": b""})
            if read_only:
                conn.commit()  # the target's shared lock goes; the writer's units are its own
            writer = open_probe(
                target, conn, probe, result.refusals, opts.on_conflict if merging else None
            )
            try:
                yield writer, charsets
            finally:
                writer.abort()
        finally:
            with contextlib.suppress(Exception):  # a lost connection took the table with it
                drop(conn, probe, temporary=True)
                if read_only:
                    conn.commit()


def _charsets(
    target: QueueStore, conn: Connection, table: str | None
) -> tuple[str | None, str | None]:
    """The key columns' charsets of `table`; None: a table queuetool creates, in utf8mb4."""
    if table is None:
        return None, None
    return target.dialect.column_charsets(conn, table)


def _copy_target_rows(target: QueueStore, conn: Connection, staging: str) -> Checksum:
    """--merge: staging starts as a copy of the target; returns that copy's checksum."""
    cols = "unique_key, function_name, priority, data, when_to_run"
    src = conn_quote(target.engine, target.table_name)
    dst = conn_quote(target.engine, staging)
    conn.exec_driver_sql(f"INSERT INTO {dst} ({cols}) SELECT {cols} FROM {src}")
    return staging_checksum(target, conn, staging)


def _stream(run: CopyRun, writer: Writer | None, charsets: tuple[str | None, str | None]) -> None:
    """Read the source once, carry each row, and write the carried ones in batches."""
    source, target, opts, result = run.source, run.target, run.opts, run.result
    total, progress, lenient = run.total, run.progress, run.lenient
    carrier = Carrier(
        result.refusals,
        int32=target.dialect.INT32_WHEN_TO_RUN,
        nul=target.dialect.TEXT_HOLDS_NUL,
        # Text that is not UTF-8 (gearmand replays such keys) where the backend keeps it
        # byte-exact (SQLite's TEXT); refused where it cannot.
        utf8=not target.dialect.LENIENT_TEXT,
        key_charset=charsets[0],
        function_charset=charsets[1],
    )
    carry = carrier.carry
    source_sum = SourceChecksum(source)
    source_sum.start()
    batch: list[Row] = []
    size = 0
    read = 0
    with source.connect() as sconn:
        raw = sconn.connection.dbapi_connection
        # Strict first where the driver decodes text: its default decoder is faster than
        # the lenient one, and text that is not UTF-8 is refused on the target anyway.
        source.dialect.decode_text(raw, lenient)
        cursor = source.dialect.stream_cursor(raw)
        for rows in raw_batches(sconn, source.table, cursor, READ_BATCH):
            for row in rows:
                read += 1
                carried = carry(row)
                if carried is not row:
                    source_sum.changed(row, carried)
                    if carried is None:
                        continue
                batch.append(carried)
                size += len(carried[3])
                if len(batch) >= opts.batch or size >= BATCH_BYTES:
                    _flush(batch, source_sum, writer, result, opts)
                    batch, size = [], 0
                    if progress is not None:
                        progress(read, total)
        if batch:
            _flush(batch, source_sum, writer, result, opts)
    result.source_rows = read
    result.source_checksum = source_sum.finish(read)
    result.source_read = source_sum.raw()
    result.carried = result.source_checksum.rows
    result.normalised = carrier.normalised
    if progress is not None:
        progress(read, total)


def _flush(
    batch: list[Row],
    source_sum: SourceChecksum,
    writer: Writer | None,
    result: MigrationResult,
    opts: MigrateOptions,
) -> None:
    source_sum.carried(batch)
    if writer is None:
        return
    # Once a row is refused (without --skip-invalid) nothing will be kept, and a dry run
    # keeps nothing: only the keys are written then, to find every collision the same way.
    if opts.dry_run or (result.refusals and not opts.skip_invalid):
        batch = [(u, f, p, b"", w) for u, f, p, _d, w in batch]
    writer.write(batch)


def _swap(target: QueueStore, conn: Connection, staging: str, exists: bool) -> None:
    # Transactional DDL: the old table is dropped inside the transaction (see the swap).
    transactional = target.dialect.TRANSACTIONAL_DDL
    old = target.table_name + OLD_SUFFIX if exists and not transactional else None
    target.dialect.swap(conn, target.table_name, staging, old)
    if old is not None:
        target.dialect.drop_table(conn, old)


@contextlib.contextmanager
def _skipped_sink(
    opts: MigrateOptions, result: MigrationResult
) -> Iterator[Callable[[Row, str], None] | None]:
    """--skip-invalid: refused rows go to a JSON Lines file (skipped.py)."""
    if not opts.skip_invalid or opts.dry_run:
        yield None
        return
    path = opts.skipped_file or Path(f"queuetool-skipped-{int(time.time())}.jsonl")
    with skipped_sink(path, lambda p: setattr(result, "skipped_file", p)) as sink:
        yield sink


def _empty_source(
    source: QueueStore, opts: MigrateOptions, result: MigrationResult, say: Note
) -> None:
    """--move: after the target verified, empty the source (snapshot first), only if it
    still holds exactly the rows that were read (move.py proves it under a lock)."""
    if result.refusals.total or result.skipped_conflicts:
        say(
            "--move: the source was NOT emptied, because some of its jobs were not carried; "
            "it is unchanged"
        )
        return
    try:
        path = empty_source(
            source, result.source_read, snapshot_dir=opts.snapshot_dir, keep=opts.keep
        )
    except VerifyError:
        raise  # its message says the source was not emptied and the target holds the copy
    except reported_errors() as exc:  # e.g. the source's server went away meanwhile
        error = QueuetoolError(
            f"--move: the source was NOT emptied ({one_line(exc)}); the target holds the "
            "verified copy, and `queuetool start` on the source refuses (its jobs would run "
            "twice)"
        )
        error.exit_code = exc.exit_code if isinstance(exc, QueuetoolError) else 2
        raise error from exc
    result.snapshots.append(path)
    result.moved = True
