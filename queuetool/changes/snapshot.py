"""Snapshots: one portable file holding rows of a queue table (`restore.py` puts
them back).

A snapshot is a SQLite database (the container, whatever the queue's backend) with
three tables: `rows`, the queue rows byte for byte, `manifest`, what they are
(source with the password masked, table, backend, row count, the order-independent
checksum of `checksum.py`, creation time, queuetool version, scope), and `keys`.

The scope is either the whole table (`queuetool snapshot`, a restore's "before")
or some rows (an edit's undo: the rows the edit is about to change). A rows
snapshot also lists in `keys` the (unique_key, function_name) pairs it covers:
restoring it replaces exactly the rows with those keys by its `rows` and leaves the
rest of the table alone. A key with no row there means "no such job" (a restore
that added jobs is undone by deleting them). The `rows` columns
are declared without a type, so SQLite keeps each value's storage class: a TEXT
payload stays TEXT, an INTEGER stays INTEGER, and a restore gives back exactly what
was there, bad rows included.

The file is written under a temporary name with journaling off (speed; a crash
leaves only the temporary file, never a partial snapshot under the final name),
fsynced, renamed, and its directory fsynced. It is created 0600: payloads can be
private. The container is our own file format, so it is written with the stdlib
`sqlite3` driver directly; the queue itself is only read and written through
SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import __version__
from ..config import DEFAULT_KEEP, default_snapshot_dir
from ..errors import QueuetoolError, QueuetoolWarning, SnapshotError, UsageError
from ..lockedfile import create_locked, remove_if_abandoned
from ..table.checksum import ALGORITHM, Checksum, stream_rows
from ..table.dialects.sqlite import insert_exact, lenient_text, not_utf8  # the file is SQLite
from ..table.store import COLUMNS, QueueStore, queue_table
from ..writable import cannot_create_in

FORMAT = "queuetool-snapshot/1"
SUFFIX = ".qtsnap"
BATCH = 5000
_SCHEMA = (
    "CREATE TABLE manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    # No declared types: no affinity, so every value keeps its storage class.
    "CREATE TABLE rows (unique_key, function_name, priority, data, when_to_run);"
    "CREATE TABLE keys (unique_key, function_name);"
)
TABLE, ROWS = "table", "rows"  # the scopes
# Which rows a rows snapshot holds: a WHERE clause on a table of the queue's layout.
Scope = Callable[[sa.Table], sa.ColumnElement[bool]]
# Puts the rows (and keys) into the new file; returns how many of each.
Fill = Callable[[sqlite3.Connection], tuple[int, int]]
_SELECT = "SELECT " + ", ".join(COLUMNS) + " FROM rows"
# `_write`'s temporary name: `.NAME.qtsnap.PID.tmp`.
_TEMPORARY = re.compile(rf"^\..+{re.escape(SUFFIX)}\.(\d+)\.tmp$")


class LeftoverRemoved(QueuetoolWarning):
    """A temporary snapshot file of a queuetool process that was killed was removed."""


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot file and its manifest (`problem` says why a file could not be read)."""

    path: Path
    source: str = ""
    table: str = ""
    backend: str = ""
    rows: int = 0
    checksum: str = ""
    created: float = 0.0
    version: str = ""
    reason: str = ""
    bytes: int = 0
    problem: str | None = None
    algorithm: str = ALGORITHM
    scope: str = TABLE
    keys: int = 0  # a rows snapshot: how many (unique_key, function_name) it covers
    location: str = ""  # QueueStore.location of the source ("": not recorded)
    file_id: str = ""  # QueueStore.file_id of a SQLite source

    @property
    def partial(self) -> bool:
        """Whether it holds only some rows (restoring it leaves the others alone)."""
        return self.scope == ROWS

    def describe(self) -> str:
        if self.partial:
            return f"{self.rows} rows (of {self.keys} jobs it covers)"
        return f"all {self.rows} rows"

    @property
    def created_iso(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))

    def record(self) -> dict[str, object]:
        """One row of `queuetool snapshots`."""
        return {
            "created": self.created_iso if self.created else "",
            "source": self.source,
            "table": self.table,
            "rows": self.rows,
            "scope": self.scope,
            "bytes": self.bytes,
            "reason": self.reason,
            "path": str(self.path),
            **({"problem": self.problem} if self.problem else {}),
        }


@dataclass(frozen=True)
class SnapshotVerification:
    """What `verify` found: the manifest, and the rows and checksum actually in the file."""

    info: SnapshotInfo
    rows: int
    checksum: str
    keys: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.rows == self.info.rows
            and self.checksum == self.info.checksum
            and self.keys == self.info.keys
        )

    def summary(self) -> str:
        if self.ok:
            return f"{self.info.path}: ok, {self.rows} rows, checksum {self.checksum}"
        return (
            f"{self.info.path}: DAMAGED: manifest says {self.info.rows} rows, checksum "
            f"{self.info.checksum}, {self.info.keys} keys; the file holds {self.rows} rows, "
            f"checksum {self.checksum}, {self.keys} keys"
        )


# -- writing ---------------------------------------------------------------------------


def snapshot_name(table: str, created: float, reason: str) -> str:
    """`TABLE-YYYYmmddTHHMMSS.ffffffZ-REASON.qtsnap`: sorts by time, says why."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(created))
    micros = int(created * 1_000_000) % 1_000_000
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in reason) or "manual"
    return f"{table}-{stamp}.{micros:06d}Z-{safe}{SUFFIX}"


def snapshot_dir(directory: str | os.PathLike[str] | None, create: bool | None = None) -> Path:
    """The directory to write snapshots to, checked to be writable.

    The default directory is created when missing; a configured one must exist (a
    typo should not scatter snapshots around), unless `create` says otherwise.
    """
    path = Path(directory) if directory is not None else default_snapshot_dir()
    if create is None:
        create = directory is None
    if not path.is_dir():
        if path.exists() or not create:
            raise SnapshotError(
                f"snapshot directory {path} does not exist: create it or set [snapshots] dir "
                "in the config; nothing was changed"
            )
        try:
            path.mkdir(parents=True, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise SnapshotError(f"cannot create snapshot directory {path}: {exc.strerror}") from exc
    why = cannot_create_in(path)
    if why is not None:
        raise SnapshotError(
            f"snapshot directory {path} is not writable ({why}); nothing was changed"
        )
    return path


def take(
    store: QueueStore,
    directory: str | os.PathLike[str] | None = None,
    *,
    keep: int | None = DEFAULT_KEEP,
    out: str | os.PathLike[str] | None = None,
    reason: str = "manual",
    conn: Connection | None = None,
    create: bool | None = None,
    scope: Scope | None = None,
    during: Callable[[int], None] | None = None,
) -> SnapshotInfo:
    """Write a snapshot of the whole table (or of the rows `scope(table)` selects) and
    return its manifest.

    `out` names the file exactly (no retention); otherwise it goes to `directory`
    (default: the state directory) and only the newest `keep` snapshots of the same
    source and table are kept there (None keeps all). Pass `conn` to read inside an
    open transaction, so the snapshot is exactly what that transaction then changes.
    `during(rows)` runs once the rows are in the file, while they are hashed: an edit
    makes its change meanwhile and commits it after `take` returns.
    """
    if conn is None:
        with store.connect() as own:
            return take(
                store,
                directory,
                keep=keep,
                out=out,
                reason=reason,
                conn=own,
                create=create,
                scope=scope,
                during=during,
            )
    store.require_table(conn)
    source = store.database_file
    if source is not None:
        # SQLite: copy inside the database engine (ATTACH + INSERT ... SELECT), several
        # times faster than rows through Python. The source is read on a second
        # connection, which sees exactly what `conn` sees as long as `conn` has not
        # written yet (its BEGIN IMMEDIATE keeps everyone else from writing).
        fill = functools.partial(_fill_from_sqlite, store, source, scope)
    elif scope is not None:
        rows = stream_rows(conn, store.table, scope(store.table))
        fill = functools.partial(_fill_from_rows, rows, None)
    else:
        fill = functools.partial(_fill_from_rows, stream_rows(conn, store.table), ())
    kind = TABLE if scope is None else ROWS
    return _take(
        store,
        directory,
        fill,
        kind,
        keep=keep,
        out=out,
        reason=reason,
        create=create,
        during=during,
    )


def take_rows(
    store: QueueStore,
    rows: Iterable[Iterable[object]],
    keys: Iterable[Iterable[object]],
    directory: str | os.PathLike[str] | None = None,
    *,
    keep: int | None = DEFAULT_KEEP,
    reason: str = "manual",
    create: bool | None = None,
) -> SnapshotInfo:
    """Write a rows snapshot: `rows` as they are now, covering the jobs `keys` name
    (a key without a row: the job does not exist). A restore reads the rows it is
    about to replace this way."""
    fill = functools.partial(_fill_from_rows, rows, keys)
    return _take(store, directory, fill, ROWS, keep=keep, reason=reason, create=create)


def _take(
    store: QueueStore,
    directory: str | os.PathLike[str] | None,
    fill: Fill,
    scope: str,
    *,
    keep: int | None,
    reason: str,
    create: bool | None,
    out: str | os.PathLike[str] | None = None,
    during: Callable[[int], None] | None = None,
) -> SnapshotInfo:
    check_keep(keep)
    created = time.time()
    if out is not None:
        target = Path(out)
        if target.exists():
            raise SnapshotError(f"{target} already exists; a snapshot never overwrites a file")
        if not target.parent.is_dir():
            raise SnapshotError(f"directory {target.parent} does not exist")
    else:
        target = snapshot_dir(directory, create) / snapshot_name(store.table_name, created, reason)
    remove_leftovers(target.parent)
    manifest = {
        "format": FORMAT,
        "source": store.display_url,
        "table": store.table_name,
        # Which queue it is, so that a restore can tell another queue from this one.
        "location": store.location,
        "file_id": store.file_id,
        "backend": store.backend,
        "created": repr(created),
        "version": __version__,
        "reason": reason,
        "checksum_algorithm": ALGORITHM,
        "scope": scope,
    }
    _write(target, manifest, fill, during)
    info = read_manifest(target)
    if out is None and keep is not None:
        prune(target.parent, keep, info)
    return info


def check_keep(keep: int | None) -> None:
    """Retention keeps at least the newest snapshot (None: keep all)."""
    if keep is not None and keep < 1:
        raise UsageError(f"[snapshots] keep must be at least 1, not {keep}")


def _write(
    target: Path,
    manifest: dict[str, str],
    fill: Fill,
    during: Callable[[int], None] | None = None,
) -> None:
    """Create the file under a temporary name, let `fill` put the rows in, hash them as
    they are in the file (while `during` runs), add the manifest, fsync, rename to
    `target`."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        lock = create_locked(tmp)  # held until the file is renamed or removed
    except OSError as exc:
        raise SnapshotError(f"cannot write snapshot {target}: {exc.strerror}") from exc
    try:
        _fill_file(tmp, target, manifest, fill, during)
    finally:
        os.close(lock)


def _fill_file(
    tmp: Path,
    target: Path,
    manifest: dict[str, str],
    fill: Fill,
    during: Callable[[int], None] | None,
) -> None:
    try:
        db = sqlite3.connect(_uri(tmp), uri=True, isolation_level=None)
        try:
            # Nothing to protect while writing: a crash leaves only the temporary name.
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA page_size=65536")
            # In pages (2 MB): the default, -2000 KiB, let the cache of a 64 KiB-page file
            # grow with what is written (32 MB more at 1M keys, measured), so an import's
            # or a whole-table snapshot's memory grew with the queue.
            db.execute("PRAGMA cache_size=32")
            db.executescript(_SCHEMA)
            rows, keys = fill(db)
            checksum = _hashed_while(tmp, during, rows)
            if checksum.rows != rows:
                raise SnapshotError(f"{target}: {rows} rows written, {checksum.rows} read back")
            manifest = {**manifest, "rows": str(checksum.rows), "checksum": checksum.hex}
            if manifest["scope"] == ROWS:
                manifest["keys"] = str(keys)
            db.executemany("INSERT INTO manifest VALUES (?, ?)", manifest.items())
        finally:
            db.close()
        _fsync(tmp)
        os.rename(tmp, target)
        _fsync(target.parent)
    except _CallerFailed as failed:
        # the edit's own error (a purge's export, the queue's database): not the snapshot's
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise failed.error from None
    except (sqlite3.Error, OSError) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SnapshotError(
            f"cannot write snapshot {target}: {detail}; nothing was changed"
        ) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class _CallerFailed(Exception):
    """An error raised by `during`, carried past the snapshot's own error handling."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _hashed_while(path: Path, during: Callable[[int], None] | None, rows: int) -> Checksum:
    """The checksum of the rows in the file, read back on a second connection while
    `during(rows)` runs: the caller's statements run in the database (the GIL is free),
    so the hashing costs them no time."""
    if during is None:
        return _hash_rows(path)
    with ThreadPoolExecutor(1, thread_name_prefix="queuetool-snapshot-sum") as pool:
        hashing = pool.submit(_hash_rows, path)
        try:
            during(rows)  # raising, it still waits for the thread (the file is then removed)
        except Exception as exc:
            raise _CallerFailed(exc) from exc
        return hashing.result()


def _fill_from_rows(
    rows: Iterable[Iterable[object]],
    keys: Iterable[Iterable[object]] | None,
    db: sqlite3.Connection,
) -> tuple[int, int]:
    """Insert streamed rows in big batches; `keys` are the keys the snapshot covers
    (None: those of its rows). Returns how many rows and keys went in."""
    count = 0
    db.execute("BEGIN")
    for batch in batched(rows, BATCH):
        insert_exact(db, "rows", batch)
        if keys is None:
            insert_exact(db, "keys", [(row[0], row[1]) for row in batch])
        count += len(batch)
    covered = count if keys is None else 0
    for batch in batched(keys or (), BATCH):
        insert_exact(db, "keys", batch)
        covered += len(batch)
    db.execute("COMMIT")
    return count, covered


def _fill_from_sqlite(
    store: QueueStore, source: Path, scope: Scope | None, db: sqlite3.Connection
) -> tuple[int, int]:
    """Copy a SQLite queue table (or the rows `scope` selects, and their keys) in the
    engine; returns how many rows and keys went in."""
    table = queue_table(store.table_name, schema="source")
    query = sa.select(*table.c)
    if scope is not None:
        query = query.where(scope(table))
    compiled = query.compile(
        dialect=store.engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    db.execute("ATTACH DATABASE ? AS source", (_uri(source, readonly=True),))
    try:
        db.execute("BEGIN")
        count = db.execute(f"INSERT INTO rows {compiled}", params).rowcount
        if scope is not None:
            db.execute("INSERT INTO keys SELECT unique_key, function_name FROM rows")
        db.execute("COMMIT")
    finally:
        db.execute("DETACH DATABASE source")
    return count, count if scope is not None else 0


def _uri(path: Path, readonly: bool = False) -> str:
    return f"file:{quote(str(Path(path).resolve()))}" + ("?mode=ro" if readonly else "")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def batched(rows: Iterable[Iterable[object]], size: int) -> Iterator[list]:
    """Lists of up to `size` rows (itertools.batched is Python 3.12+)."""
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


# -- reading ---------------------------------------------------------------------------


@contextlib.contextmanager
def _open(path: Path, lenient: bool = False) -> Iterator[sqlite3.Connection]:
    """The file, read-only; `lenient` reads TEXT that is not UTF-8 (a SQLite queue's keys
    can be), at some cost per value."""
    if not path.is_file():
        raise SnapshotError(f"snapshot not found: {path}")
    try:
        db = sqlite3.connect(_uri(path, readonly=True), uri=True)
    except sqlite3.Error as exc:
        raise SnapshotError(f"cannot open snapshot {path}: {exc}") from exc
    if lenient:
        db.text_factory = lenient_text
    try:
        yield db
    finally:
        db.close()


def read_manifest(path: str | os.PathLike[str]) -> SnapshotInfo:
    """The manifest of a snapshot file; SnapshotError if it is not one."""
    path = Path(path)
    with _open(path) as db:
        try:
            manifest = dict(db.execute("SELECT key, value FROM manifest").fetchall())
        except sqlite3.Error as exc:
            raise SnapshotError(f"{path} is not a queuetool snapshot ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not a queuetool snapshot (format {manifest.get('format')})")
    try:
        return SnapshotInfo(
            path=path,
            source=manifest["source"],
            table=manifest["table"],
            backend=manifest["backend"],
            rows=int(manifest["rows"]),
            checksum=manifest["checksum"],
            created=float(manifest["created"]),
            version=manifest["version"],
            reason=manifest.get("reason", ""),
            bytes=path.stat().st_size,
            # Snapshots from before the algorithm was recorded used BLAKE2b.
            algorithm=manifest.get("checksum_algorithm", "blake2b-sum128"),
            scope=manifest.get("scope", TABLE),
            keys=int(manifest.get("keys", 0)),
            location=manifest.get("location") or _location(manifest),
            file_id=manifest.get("file_id", ""),
        )
    except (KeyError, ValueError) as exc:
        raise SnapshotError(f"{path}: incomplete manifest ({exc})") from exc


def _location(manifest: dict[str, str]) -> str:
    """The location of a snapshot from before it was recorded: from its (masked) source
    URL ('' when that cannot be read)."""
    try:
        return QueueStore(manifest["source"], manifest["table"]).location
    except (QueuetoolError, OSError, RuntimeError, ValueError):
        return ""  # unknown: counts as another queue


def snapshot_rows(
    path: str | os.PathLike[str], batch: int = BATCH, lenient: bool = False
) -> Iterator[list[tuple]]:
    """The snapshot's rows in batches, streamed (values exactly as stored; TEXT that is
    not UTF-8 is an error unless `lenient`)."""
    return _batches(Path(path), _SELECT, batch, lenient)


def snapshot_keys(path: str | os.PathLike[str], batch: int = BATCH) -> Iterator[list[tuple]]:
    """The (unique_key, function_name) pairs a rows snapshot covers, in batches."""
    return _batches(Path(path), "SELECT unique_key, function_name FROM keys", batch, True)


def _batches(path: Path, query: str, batch: int, lenient: bool) -> Iterator[list[tuple]]:
    with _open(path, lenient) as db:
        try:
            cursor = db.execute(query)
            while rows := cursor.fetchmany(batch):
                yield rows
        except sqlite3.Error as exc:
            raise SnapshotError(f"cannot read snapshot {path}: {exc}") from exc


def _hash_rows(path: Path) -> Checksum:
    """The checksum of the rows in the file, as they are there: read strictly first (the
    faster decoder), again leniently if some TEXT is not UTF-8."""
    for lenient in (False, True):
        checksum = Checksum()
        try:
            for rows in snapshot_rows(path, lenient=lenient):
                checksum.update(rows)
        except SnapshotError as exc:
            if lenient or exc.__cause__ is None or not not_utf8(exc.__cause__):
                raise
            continue
        break
    return checksum


def verify(path: str | os.PathLike[str]) -> SnapshotVerification:
    """Re-read every row and compare count and checksum with the manifest."""
    info = read_manifest(path)
    if info.algorithm != ALGORITHM:
        raise SnapshotError(
            f"{info.path} was checksummed with {info.algorithm}, this queuetool uses "
            f"{ALGORITHM}: it cannot verify it (use the queuetool {info.version} that took it)"
        )
    checksum = _hash_rows(info.path)
    keys = sum(len(k) for k in snapshot_keys(path)) if info.partial else 0
    return SnapshotVerification(info, checksum.rows, checksum.hex, keys)


def list_snapshots(directory: str | os.PathLike[str] | None = None) -> list[SnapshotInfo]:
    """Every snapshot in the directory, newest first (unreadable ones with a `problem`)."""
    path = Path(directory) if directory is not None else default_snapshot_dir()
    if not path.is_dir():
        return []
    found = []
    for file in path.glob(f"*{SUFFIX}"):
        if file.name.startswith("."):
            continue  # a snapshot still being written (or left by a crash)
        try:
            found.append(read_manifest(file))
        except SnapshotError as exc:
            found.append(SnapshotInfo(path=file, bytes=_size(file), problem=str(exc)))
    return sorted(found, key=lambda s: (s.created, s.path.name), reverse=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def remove_leftovers(directory: Path) -> list[Path]:
    """Remove the temporary files of snapshots whose writer was killed (SIGKILL, a crash:
    nothing else leaves one), with a warning naming each; returns them.

    A file its writer still holds (lockedfile.py) is kept: it may be a snapshot being
    written right now, by a process of another PID namespace too."""
    removed = []
    with contextlib.suppress(OSError):
        for path in directory.iterdir():
            found = _TEMPORARY.match(path.name)
            if found is None:
                continue
            size = _size(path)
            if not remove_if_abandoned(path, int(found[1])):
                continue
            removed.append(path)
            warnings.warn(
                f"removed {path} ({size:,} bytes), the unfinished snapshot of a queuetool "
                f"process ({found[1]}) that was killed while writing it",
                LeftoverRemoved,
                stacklevel=2,
            )
    return removed


def prune(
    directory: Path, keep: int, newest: SnapshotInfo, protect: Path | None = None
) -> list[Path]:
    """Delete all but the newest `keep` snapshots of `newest`'s source and table, never
    `protect` (the snapshot a restore is reading), and what killed writers left."""
    remove_leftovers(directory)
    same = [
        s
        for s in list_snapshots(directory)
        if s.problem is None and s.source == newest.source and s.table == newest.table
    ]
    removed = []
    for old in same[keep:]:
        if old.path == newest.path or (protect is not None and _same(old.path, protect)):
            continue
        with contextlib.suppress(OSError):
            old.path.unlink()
            removed.append(old.path)
    return removed


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
