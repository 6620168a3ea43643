"""Export jobs as JSON Lines (payload base64), so purged jobs can be inspected or re-submitted.

One object per line: {"unique_key", "function", "priority", "when_to_run", "data"},
with `data` the payload in base64. A key or function name that is not UTF-8 (gearmand
stores and replays such keys) is shown with backslash escapes, and its exact bytes
follow in base64 as "unique_key_base64" / "function_base64". The file is written under
a temporary name, fsynced and renamed, mode 0600 (payloads can be private), never over
an existing file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import UsageError
from .checksum import stream_rows
from .store import QueueStore


def check_export_path(path: Path) -> None:
    """Refuse before anything happens if the export cannot be written where asked."""
    if path.exists():
        raise UsageError(f"export file {path} already exists; choose a new name")
    parent = path.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write the export file: {parent} is not a writable directory")


def job_line(row: sa.Row | tuple) -> str:
    unique, function, priority, data, when = row
    if isinstance(data, str):  # a TEXT payload (a bad row): export its bytes all the same
        data = data.encode("utf-8", "surrogateescape")
    payload = base64.b64encode(bytes(data)).decode("ascii") if data is not None else None
    record = {
        "unique_key": _text(unique),
        "function": _text(function),
        "priority": priority,
        "when_to_run": when,
        "data": payload,
    }
    for name, value in (("unique_key", unique), ("function", function)):
        raw = not_utf8_bytes(value)
        if raw is not None:
            record[f"{name}_base64"] = base64.b64encode(raw).decode("ascii")
    return json.dumps(record, ensure_ascii=False) + "\n"


def not_utf8_bytes(value: object) -> bytes | None:
    """The exact bytes of text that is not UTF-8 (a str read with surrogateescape, or
    bytes); None for anything else."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    elif isinstance(value, str) and not value.isascii():
        raw = value.encode("utf-8", "surrogateescape")
    else:
        return None
    try:
        raw.decode()
    except UnicodeDecodeError:
        return raw
    return None


def _text(value: object) -> object:
    """Text to show: bytes that are not UTF-8 as backslash escapes (exact: `*_base64`)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, str) and not value.isascii():
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


def export_jobs(
    store: QueueStore, conn: Connection, where: sa.ColumnElement[bool], path: Path
) -> int:
    """Write the rows `where` selects to `path` as JSON Lines; returns how many."""
    check_export_path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "w", encoding="utf-8") as out:
            for row in stream_rows(conn, store.table, where):
                out.write(job_line(row))
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return count


def read_export(path: Path) -> list[dict[str, object]]:
    """The exported jobs back, with `data` decoded to bytes."""
    jobs = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record["data"] is not None:
                record["data"] = base64.b64decode(record["data"])
            jobs.append(record)
    return jobs
