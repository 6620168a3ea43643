"""Export jobs as JSON Lines or CSV: one format for `export`, `purge --export` and
`migrate --skip-invalid`, and what `import` reads back (`jobfile.py`).

JSON Lines: a header line {"format": "queuetool-jobs/1", ...}, one object per job
{"unique_key", "function", "priority", "when_to_run", "data"} with `data` the payload in
base64, and a trailer line {"trailer": true, "count", "checksum", "checksum_algorithm"}.
A key or function name that is not valid UTF-8 is written as "unique_key_base64" /
"function_base64" instead, so every byte comes back. CSV: a header row (`CSV_HEADER`),
a row per job (`encoded` names the text columns given in base64, and NULLs) and a trailer row
`#trailer,COUNT,CHECKSUM,ALGORITHM,,`.

The checksum is `checksum.py`'s, over the jobs as `import` decodes them; for a table's
ordinary rows that is the table's own checksum. A file is written under a temporary
name, fsynced and renamed, mode 0600 (payloads can be private), never over an
existing file; `-` writes to stdout.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import __version__
from ..errors import UsageError
from ..writable import cannot_create_in
from .checksum import ALGORITHM, COLUMNS, Checksum
from .store import QueueStore

FORMAT = "queuetool-jobs/1"
FORMATS = ("jsonl", "csv")
CSV_HEADER = ["unique_key", "function", "priority", "when_to_run", "data", "encoded"]
CSV_TRAILER = "#trailer"
BATCH = 5000
STDOUT = "-"
Row = tuple  # (unique_key, function_name, priority, data, when_to_run)


def check_export_path(path: Path) -> None:
    """Refuse before anything happens if the export cannot be written where asked."""
    if str(path) == STDOUT:
        return
    if path.exists():
        raise UsageError(f"export file {path} already exists; choose a new name")
    parent = path.parent
    why = cannot_create_in(parent) if parent.is_dir() else "no such directory"
    if why is not None:
        raise UsageError(
            f"cannot write the export file {path}: {parent} is not a writable directory ({why})"
        )


def format_of(path: Path, fmt: str | None = None) -> str:
    """The format asked for, else by the file name (.csv), else JSON Lines."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        return fmt
    return "csv" if str(path).lower().endswith(".csv") else "jsonl"


# -- one job ---------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _text_field(record: dict[str, Any], name: str, value: object) -> object:
    """Put a key or function name into `record`; returns the value `import` decodes."""
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8
            record[name + "_base64"] = _b64(value.encode("utf-8", "surrogateescape"))
            return value
    record[name] = value
    return value


def encode_job(row: Row) -> tuple[dict[str, Any], Row]:
    """The job's record and the row `import` reads back from it (what the trailer sums).

    Any row can be written, a bad one too (`migrate --skip-invalid`): a TEXT payload
    as its bytes, a payload of another type as its repr."""
    unique, function, priority, data, when = row
    record: dict[str, Any] = {}
    unique = _text_field(record, "unique_key", unique)
    function = _text_field(record, "function", function)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    elif isinstance(data, bytearray | memoryview):
        data = bytes(data)
    elif data is not None and not isinstance(data, bytes):
        data = repr(data).encode()
    record["priority"] = priority
    record["when_to_run"] = when
    record["data"] = _b64(data) if data is not None else None
    return record, (unique, function, priority, data, when)


def job_line(row: Row) -> str:
    """One job as a JSON Lines line."""
    return json.dumps(encode_job(row)[0], ensure_ascii=False) + "\n"


# -- a whole file ----------------------------------------------------------------------


@dataclass
class JobWriter:
    """Writes a job file: header, `write(row)` per job, `close()` adds the trailer.

    `extra` fields of a job (the refusal `reason` of --skip-invalid) are written along
    and ignored by `import`."""

    out: IO[str]
    fmt: str = "jsonl"
    header: dict[str, Any] = field(default_factory=dict)
    checksum: Checksum = field(default_factory=Checksum)

    def __post_init__(self) -> None:
        if self.fmt == "csv":
            self.csv = csv.writer(self.out, lineterminator="\n")
            self.csv.writerow(CSV_HEADER)
        else:
            head = {"format": FORMAT, "version": __version__, **self.header}
            self.out.write(json.dumps(head, ensure_ascii=False) + "\n")
        self.pending: list[Row] = []

    def write(self, row: Row, **extra: object) -> None:
        record, decoded = encode_job(row)
        self.pending.append(decoded)
        if len(self.pending) >= BATCH:
            self._sum()
        if self.fmt == "csv":
            # `encoded` names the text given in base64 and the NULLs (only bad rows have
            # them), so that an empty cell is never ambiguous.
            tokens = [k[: -len("_base64")] for k in record if k.endswith("_base64")]
            tokens += [f"null:{k}" for k, v in record.items() if v is None]
            self.csv.writerow(
                [
                    _cell(record.get("unique_key", record.get("unique_key_base64"))),
                    _cell(record.get("function", record.get("function_base64"))),
                    _cell(record["priority"]),
                    _cell(record["when_to_run"]),
                    _cell(record["data"]),
                    " ".join(tokens),
                ]
            )
        else:
            record.update(extra)
            self.out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def write_batch(self, rows: list[Row]) -> None:
        """`write` for each row, the common job (ASCII key and function, integer
        priority and time, a BLOB payload) formatted in one step: the same line
        json.dumps gives, several times faster, and summed with its batch."""
        if self.fmt != "jsonl":
            for row in rows:
                self.write(row)
            return
        lines: list[str] = []
        plain: list[Row] = []
        for row in rows:
            u, f, p, d, w = row
            if (
                type(u) is str
                and type(f) is str
                and type(p) is int
                and type(w) is int
                and type(d) is bytes
                and u.isascii()
                and f.isascii()
            ):
                lines.append(_LINE % (_quote(u), _quote(f), p, w, _b2a(d, newline=False).decode()))
                plain.append(row)
                continue
            self.out.write("".join(lines))  # in order: this one after those
            lines = []
            self.write(row)
        self.out.write("".join(lines))
        self.checksum.update(plain)

    def _sum(self) -> None:
        self.checksum.update(self.pending)
        self.pending = []

    def close(self) -> Checksum:
        """Write the trailer; returns what it says."""
        self._sum()
        c = self.checksum
        if self.fmt == "csv":
            self.csv.writerow([CSV_TRAILER, c.rows, c.hex, ALGORITHM, "", ""])
        else:
            trailer = {"trailer": True, "count": c.rows, "checksum": c.hex}
            self.out.write(json.dumps({**trailer, "checksum_algorithm": ALGORITHM}) + "\n")
        return c


_LINE = '{"unique_key": %s, "function": %s, "priority": %d, "when_to_run": %d, "data": "%s"}\n'
_quote = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses
_b2a = binascii.b2a_base64


def _cell(value: object) -> str:
    return "" if value is None else str(value)


@contextlib.contextmanager
def open_output(path: Path) -> Iterator[IO[str]]:
    """A new file (temporary name, fsynced, renamed into place), or stdout for `-`."""
    if str(path) == STDOUT:
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=False)
        try:
            yield out
        finally:
            out.flush()
            out.detach()
        return
    check_export_path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        # named here: the caller may be inside a snapshot, whose own errors name it
        raise UsageError(f"cannot write the export file {path}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def header_of(store: QueueStore, what: str = "") -> dict[str, Any]:
    """A job file's header for the queue (password masked) and the selection."""
    return {
        "source": store.display_url,
        "table": store.table_name,
        "backend": store.backend,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **({"selection": what} if what else {}),
    }


def raw_rows(
    store: QueueStore, conn: Connection, where: sa.ColumnElement[bool] | None
) -> Iterator[list[tuple]]:
    """The selected rows as plain tuples in batches, through a streaming DB-API cursor
    (SQLAlchemy's Row objects cost more per row than the rest of an export). On SQLite
    text that is not UTF-8 is read byte-exact (surrogate escapes) instead of failing."""
    table = store.table
    query = sa.select(*(table.c[name] for name in COLUMNS))
    if where is not None:
        query = query.where(where)
    compiled = query.compile(
        dialect=store.engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    if not params and compiled.params:
        params = compiled.params  # pyformat (PyMySQL)
    raw = conn.connection.dbapi_connection
    lenient = store.dialect.LENIENT_TEXT  # text that is not UTF-8 read byte-exact
    if lenient:
        old_factory = raw.text_factory  # type: ignore[union-attr]
        raw.text_factory = _lenient_text  # type: ignore[union-attr]
    cursor = store.dialect.stream_cursor(raw)
    try:
        cursor.execute(str(compiled), params or ())
        while rows := cursor.fetchmany(BATCH):
            yield rows
    finally:
        cursor.close()
        if lenient:
            raw.text_factory = old_factory  # type: ignore[union-attr]


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def write_jobs(
    store: QueueStore,
    conn: Connection,
    where: sa.ColumnElement[bool] | None,
    path: Path,
    fmt: str = "jsonl",
    what: str = "",
    progress: Callable[[int], None] | None = None,
) -> Checksum:
    """Write the rows `where` selects to `path` (`-`: stdout); returns the trailer's
    count and checksum."""
    with open_output(path) as out:
        writer = JobWriter(out, fmt, header_of(store, what))
        done = 0
        for rows in raw_rows(store, conn, where):
            writer.write_batch(rows)
            done += len(rows)
            if progress is not None:
                progress(done)
        return writer.close()


def read_export(path: Path) -> list[dict[str, object]]:
    """The exported jobs back (JSON Lines), with `data` decoded to bytes (for tests and
    quick looks; `import` streams through `jobfile.py`)."""
    jobs = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if "format" in record or "trailer" in record:
                continue
            if record["data"] is not None:
                record["data"] = base64.b64decode(record["data"])
            jobs.append(record)
    return jobs
