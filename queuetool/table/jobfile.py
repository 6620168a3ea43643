"""Reading a job file back (`export.py` writes them): JSON Lines, CSV, or a plain list
of payloads, streamed from a file or stdin.

`JobSource.verify()` is the pass `import` makes: every line is parsed once (a JSON array
per batch of lines) and the jobs are counted and summed; the count and checksum must be
the trailer's, or the file is refused as cut short or altered, before anything is
stopped or written. The import is handed each decoded batch along the way (and spools
what it will write). `JobSource.batches()` reads the jobs again, for other readers.
Stdin cannot be read twice: the first pass copies it to a private temporary file, which
a second reads. Either way memory stays flat (one batch at a time).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import io
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from ..errors import UsageError, VerifyError
from ..lockedfile import create_locked, remove_if_abandoned, remove_locked
from ..priority import Priority
from .checksum import ALGORITHM, COMMON_ROW, MOD, Checksum
from .checksum import md5 as _md5
from .export import BATCH, CSV_HEADER, CSV_TRAILER, FORMAT, STDOUT

Row = tuple


class FileDamaged(VerifyError):
    """The file is not what its trailer says (cut short, altered) or not a job file."""


@dataclass
class FileCheck:
    """What the first pass found."""

    kind: str  # jsonl | csv | payloads
    rows: int
    checksum: Checksum
    header: dict[str, Any] = field(default_factory=dict)
    verified: bool = False  # a trailer was there and matched
    # Set by the import's first pass (`importing.check_file`): its rows, checked.
    spool: Any = None

    def describe(self) -> str:
        what = {"jsonl": "JSON Lines", "csv": "CSV", "payloads": "a list of payloads"}[self.kind]
        state = "count and checksum verified" if self.verified else "no trailer to verify"
        return f"{self.rows} jobs ({what}, {state}, checksum {self.checksum.hex})"


@dataclass
class JobSource:
    """A job file to import. `function` and `priority` make each line of a plain file a
    payload; `verify_trailer` False accepts a file without a trailer, or one whose
    trailer no longer matches (edited by hand)."""

    path: Path
    function: str | None = None
    priority: int = int(Priority.NORMAL)
    when_to_run: int = 0
    verify_trailer: bool = True
    _spool: Path | None = None
    _spool_lock: int | None = None  # scratch_file's descriptor: the spool's lock
    spools: list[Any] = field(default_factory=list)  # closed with the source

    @property
    def name(self) -> str:
        return "stdin" if self.stdin else str(self.path)

    @property
    def stdin(self) -> bool:
        return str(self.path) == STDOUT

    @contextlib.contextmanager
    def _open(self) -> Iterator[IO[bytes]]:
        if self._spool is not None:
            with self._spool.open("rb") as fh:
                yield fh
        elif self.stdin:
            yield sys.stdin.buffer
        else:
            try:
                fh = self.path.open("rb")
            except OSError as exc:
                raise UsageError(f"cannot read {self.path}: {exc.strerror}") from exc
            with fh:
                yield fh

    def close(self) -> None:
        """Remove the spooled copy of stdin and the import's spool of checked rows."""
        for spool in self.spools:
            spool.close()
        self.spools.clear()
        if self._spool is not None and self._spool_lock is not None:
            remove_locked(self._spool, self._spool_lock)
            self._spool = self._spool_lock = None

    def _spooled(self, fh: IO[bytes]) -> IO[bytes]:
        """Stdin copied to a private temporary file as it is read (for the second pass)."""
        self._spool_lock, self._spool = scratch_file(".spool")
        with os.fdopen(os.dup(self._spool_lock), "wb") as out:
            shutil.copyfileobj(fh, out, 1 << 20)
        return self._spool.open("rb")

    # -- the two passes ------------------------------------------------------------------

    def verify(self, each: Callable[[list[Row]], None] | None = None) -> FileCheck:
        """Parse every job and sum them; FileDamaged unless the trailer agrees. `each`
        is given every batch as decoded (the import checks and spools them in this same
        pass, so the file is parsed once)."""
        with self._open() as fh:
            if self.stdin and self._spool is None:
                fh = self._spooled(fh)
            with fh:
                return self._verify(fh, each)

    def _verify(self, fh: IO[bytes], each: Callable[[list[Row]], None] | None) -> FileCheck:
        kind = self._kind(fh)
        checksum = Checksum()
        reader = _Reader(kind, self, fh, summing=True)
        for batch in reader.batches():
            if reader.summed is not None:  # summed by the parser, from the line's bytes
                checksum.rows += len(batch)
                checksum.total = (checksum.total + reader.summed) % MOD
            else:
                checksum.update(batch)
            if each is not None:
                each(batch)
        check = FileCheck(kind, checksum.rows, checksum, reader.header)
        trailer = reader.trailer
        if kind == "payloads":
            return check
        if trailer is None:
            if reader.header and self.verify_trailer:
                raise FileDamaged(
                    f"{self.name} ends without its trailer after {checksum.rows} jobs: cut "
                    "short? Nothing was imported"
                )
            if self.verify_trailer:
                raise FileDamaged(
                    f"{self.name} has no header and no trailer, so it cannot be verified: "
                    "add --no-verify to import it as it is. Nothing was imported"
                )
            return check
        count, total, algorithm = trailer
        if algorithm != ALGORITHM:
            raise FileDamaged(f"{self.name}: checksum algorithm {algorithm!r} is not {ALGORITHM}")
        if (count, total) != (checksum.rows, checksum.hex):
            if self.verify_trailer:
                raise FileDamaged(
                    f"{self.name} holds {checksum.rows} jobs, checksum {checksum.hex}, but its "
                    f"trailer says {count} jobs, checksum {total}: cut short or altered. "
                    "Nothing was imported"
                )
            return check
        check.verified = True
        return check

    def _kind(self, fh: IO[bytes]) -> str:
        first = fh.peek(64)[:64] if hasattr(fh, "peek") else b""
        if self.function is not None:
            return "payloads"
        if first.lstrip().startswith(b"{"):
            return "jsonl"
        if first.startswith(",".join(CSV_HEADER).encode()):
            return "csv"
        if not first:
            raise FileDamaged(f"{self.name} is empty: nothing to import")
        raise UsageError(
            f"{self.name} is not a queuetool job file (JSON Lines or CSV): for a plain "
            "list of payloads, one a line, give --function (and --priority)"
        )

    def batches(self) -> Iterator[list[Row]]:
        """The second pass: the jobs in batches, as decoded (unique keys not yet made)."""
        with self._open() as fh:
            if not hasattr(fh, "peek"):
                fh = io.BufferedReader(cast(io.RawIOBase, fh))
            yield from _Reader(self._kind(fh), self, fh).batches()


class _Reader:
    """One pass over an open file."""

    def __init__(self, kind: str, source: JobSource, fh: IO[bytes], summing: bool = False) -> None:
        self.kind = kind
        self.source = source
        self.fh = fh
        # `summing`: the fast path sums the rows of each batch it parses (`summed`, the
        # sum of their row hashes, not reduced; None: the batch is not summed yet).
        self.summing = summing
        self.summed: int | None = None
        self.header: dict[str, Any] = {}
        self.trailer: tuple[int, str, str] | None = None
        self.line = 0

    def batches(self) -> Iterator[list[Row]]:
        if self.kind == "jsonl":
            yield from self._jsonl_batches()
            return
        rows = {"csv": self._csv, "payloads": self._payloads}[self.kind]()
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def _damaged(self, what: str) -> FileDamaged:
        return FileDamaged(
            f"{self.source.name} line {self.line}: {what}: cut short or altered? "
            "Nothing was imported"
        )

    def _after_trailer(self) -> None:
        if self.trailer is not None:
            raise self._damaged("more after the trailer")

    def _jsonl_batches(self) -> Iterator[list[Row]]:
        """BATCH lines parsed as one JSON array, and the common job (the five fields of
        an export, nothing else) turned into its row in one expression: per-line
        json.loads and per-field calls cost more than the rest of an import. Anything
        else (header, trailer, a base64 key, a damaged line) goes through `_record`,
        which knows its line number."""
        lines: list[bytes] = []
        numbers: list[int] = []
        for raw in self.fh:
            self.line += 1
            if raw.isspace():
                continue
            lines.append(raw)
            numbers.append(self.line)
            if len(lines) >= BATCH:
                yield self._parse(lines, numbers)
                lines, numbers = [], []
        if lines:
            yield self._parse(lines, numbers)

    def _parse(self, lines: list[bytes], numbers: list[int]) -> list[Row]:
        self.summed = None
        if self.trailer is None:
            fast = self._exported(lines)
            if fast is not None:
                return fast
        return self._parse_json(lines, numbers)

    def _exported(self, lines: list[bytes]) -> list[Row] | None:
        """A batch of lines every one of which is the line `export` writes for the
        common job (`_EXPORTED`), parsed by one regular expression over the batch and
        hashed with the texts' own bytes (they are the UTF-8 the row's hash is made
        of): no JSON objects, no re-encoding. None: some line is not such
        a line (header, trailer, escapes, another layout, bytes not UTF-8, bad base64),
        and the batch takes the JSON path, which says what is wrong where."""
        found = _EXPORTED.findall(b"".join(lines))
        if len(found) != len(lines):  # anchored at line starts: one match per line
            return None
        a2b = binascii.a2b_base64
        digest = _md5
        from_bytes = int.from_bytes
        total = 0
        rows: list[Row] = []
        append = rows.append
        try:
            for unique, function, priority, when, encoded in found:
                data = a2b(encoded, strict_mode=True)
                p, w = int(priority), int(when)
                append((unique.decode(), function.decode(), p, data, w))
                if self.summing:
                    message = COMMON_ROW % (
                        len(unique),
                        unique,
                        len(function),
                        function,
                        p,
                        len(data),
                        data,
                        w,
                    )
                    total += from_bytes(digest(message).digest(), "big")
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            return None
        if self.summing:
            self.summed = total
        return rows

    def _parse_json(self, lines: list[bytes], numbers: list[int]) -> list[Row]:
        last = self.line
        try:
            records = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:
            records = None  # which line: one by one below
        if records is not None and len(records) != len(lines):
            records = None  # a line holding more than one value
        rows: list[Row] = []
        append = rows.append
        a2b = binascii.a2b_base64
        for i, raw in enumerate(lines):
            record = records[i] if records is not None else _loads(raw)
            # A lone surrogate comes from an escape, or from its bytes (0xED 0xA0..0xBF),
            # which json.loads lets through.
            if (b"\\u" in raw or b"\xed" in raw) and type(record) is dict:
                self.line = numbers[i]
                self._require_text(record)
            if self.trailer is None and type(record) is dict and len(record) == 5:
                data = record.get("data")
                if type(data) is str:
                    try:
                        append(
                            (
                                record["unique_key"],
                                record["function"],
                                record["priority"],
                                a2b(data, strict_mode=True),
                                record["when_to_run"],
                            )
                        )
                        continue
                    except (KeyError, binascii.Error, ValueError):
                        pass  # the general path says what is wrong
            self.line = numbers[i]
            row = self._record(record)
            if row is not None:
                append(row)
        self.line = last
        return rows

    def _require_text(self, record: dict[str, Any]) -> None:
        """A JSON escape of half a UTF-16 pair (`\\ud800`) decodes to a lone surrogate:
        no bytes a queue can hold, so no row (and no checksum) can be made of it."""
        for name in ("unique_key", "function"):
            value = record.get(name)
            if isinstance(value, str):
                try:
                    value.encode("utf-8", "surrogateescape")
                except UnicodeEncodeError:
                    raise self._damaged(
                        f"{name} holds half a UTF-16 pair ({value!a}), which is no text "
                        f"a queue can hold (bytes that are not UTF-8 go in {name}_base64)"
                    ) from None

    def _jsonl(self) -> Iterator[Row]:
        for raw in self.fh:
            self.line += 1
            if not raw.strip():
                continue
            row = self._record(_loads(raw))
            if row is not None:
                yield row

    def _record(self, record: object) -> Row | None:
        """One JSON Lines record: the header, the trailer (None) or a job's row."""
        self._after_trailer()
        if record is _NOT_JSON or not isinstance(record, dict):
            raise self._damaged("not a JSON object")
        if "format" in record and self.line == 1:
            if record["format"] != FORMAT:
                raise self._damaged(f"unknown format {record['format']!r}")
            self.header = record
            return None
        if record.get("trailer") is True:
            self._set_trailer(record.get("count"), record.get("checksum"), record)
            return None
        return self._job(record)

    def _set_trailer(self, count: object, total: object, record: dict[str, Any]) -> None:
        if not isinstance(count, int) or not isinstance(total, str):
            raise self._damaged("a trailer without count and checksum")
        self.trailer = (count, total, str(record.get("checksum_algorithm", ALGORITHM)))

    def _job(self, record: dict[str, Any]) -> Row:
        try:
            unique = _text(record, "unique_key")
            function = _text(record, "function")
            data = record.get("data")
            data = base64.b64decode(data, validate=True) if data is not None else None
        except (binascii.Error, ValueError, TypeError) as exc:
            raise self._damaged(f"bad base64 ({exc})") from None
        return (unique, function, record.get("priority"), data, record.get("when_to_run"))

    def _csv(self) -> Iterator[Row]:
        text = io.TextIOWrapper(self.fh, encoding="utf-8", newline="")
        try:
            reader = csv.reader(text)
            for cells in reader:
                self.line = reader.line_num
                if self.line == 1:
                    if cells != CSV_HEADER:
                        raise self._damaged("not the CSV header")
                    self.header = {"format": FORMAT}
                    continue
                self._after_trailer()
                if len(cells) != len(CSV_HEADER):
                    raise self._damaged(f"{len(cells)} columns, not {len(CSV_HEADER)}")
                if cells[0] == CSV_TRAILER:
                    try:
                        count = int(cells[1])
                    except ValueError:
                        raise self._damaged("a trailer without a count") from None
                    self._set_trailer(count, cells[2], {"checksum_algorithm": cells[3]})
                    continue
                yield self._csv_job(cells)
        except UnicodeDecodeError:
            raise self._damaged("not UTF-8") from None
        finally:
            text.detach()

    def _csv_job(self, cells: list[str]) -> Row:
        unique, function, priority, when, data, encoded = cells
        tokens = set(encoded.split())
        record: dict[str, Any] = {
            "data": data,
            "priority": _int(priority),
            "when_to_run": _int(when),
        }
        for name, value in (("unique_key", unique), ("function", function)):
            record[name + "_base64" if name in tokens else name] = value
        for token in tokens:
            if token.startswith("null:"):
                record[token[len("null:") :]] = None
        return self._job(record)

    def _payloads(self) -> Iterator[Row]:
        s = self.source
        for raw in self.fh:
            self.line += 1
            payload = raw.rstrip(b"\n").rstrip(b"\r")
            if not payload.strip():
                continue
            yield (None, s.function, s.priority, payload, s.when_to_run)


_NOT_JSON = object()
# `scratch_file`'s names: the pid of the process that made it, for a person to read.
_SCRATCH = re.compile(r"^queuetool-import-(\d+)-.+\.spool(\.db)?$")


def scratch_file(suffix: str) -> tuple[int, Path]:
    """A new private temporary file (mode 0600) for an import's copy of stdin or its spool
    (`suffix` .spool or .spool.db), and a descriptor holding its lock (lockedfile.py):
    keep it open for the file's whole life and close it only after removing the file.
    An import killed before it could remove its own leaves the file unlocked, and the
    next import removes it (`remove_leftover_scratch`)."""
    remove_leftover_scratch()
    while True:
        name = f"queuetool-import-{os.getpid()}-{secrets.token_hex(6)}{suffix}"
        path = Path(tempfile.gettempdir()) / name
        try:
            return create_locked(path), path
        except FileExistsError:
            continue


def remove_leftover_scratch(directory: str | None = None) -> list[Path]:
    """Remove this user's import scratch files that no live import holds; returns them."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory or tempfile.gettempdir()):
            found = _SCRATCH.match(entry.name)
            if found is not None and remove_if_abandoned(Path(entry.path), int(found[1])):
                removed.append(Path(entry.path))
    return removed


# The line `export` writes for the common job (`export._LINE`): text without escapes or
# control characters (so the bytes are the value's UTF-8), integers as JSON writes them
# (any other form goes the JSON way, which judges it), standard base64. Anchored at a line's
# start and ending with its newline, so a match is a whole line.
_EXPORTED = re.compile(
    rb'^\{"unique_key": "([^"\\\x00-\x1f]*)", "function": "([^"\\\x00-\x1f]*)", '
    rb'"priority": (0|-?[1-9][0-9]*), "when_to_run": (0|-?[1-9][0-9]*), '
    rb'"data": "([A-Za-z0-9+/=]*)"\}\n',
    re.MULTILINE,
)


def _loads(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return _NOT_JSON


def _text(record: dict[str, Any], name: str) -> object:
    encoded = record.get(name + "_base64")
    if encoded is not None:
        return base64.b64decode(encoded, validate=True).decode("utf-8", "surrogateescape")
    return record.get(name)


def _int(cell: str) -> int | str:
    try:
        return int(cell)
    except ValueError:
        return cell  # kept as it is: the import refuses it with the other bad rows
