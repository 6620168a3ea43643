"""`migrate --skip-invalid`: the rows that cannot be carried, exported as JSON Lines.

One job per line, as `purge --export` writes them, plus the reason it was refused.
The file is created only when a first row is refused (mode 0600, never over an
existing file) and fsynced before the migration reports it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..table.export import check_export_path, job_line
from .carry import Row


@contextlib.contextmanager
def skipped_sink(
    path: Path, opened: Callable[[Path], None]
) -> Iterator[Callable[[Row, str], None]]:
    """A function that writes one refused row (and why) to `path`; `opened(path)` is
    called when the file is created."""
    out = None

    def sink(row: Row, kind: str) -> None:
        nonlocal out
        if out is None:
            check_export_path(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            out = open(fd, "w", encoding="utf-8")  # noqa: SIM115 (closed in finally)
            opened(path)
        record = json.loads(job_line(_exportable(row)))
        record["reason"] = kind
        out.write(json.dumps(record, ensure_ascii=False) + "\n")

    try:
        yield sink
    finally:
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
            out.close()


def _exportable(row: Row) -> tuple:
    """Odd payloads as their repr (text that is not UTF-8: job_line keeps its bytes)."""
    unique, function, priority, data, when = row
    if not isinstance(data, bytes | bytearray | memoryview | str | type(None)):
        data = repr(data).encode()
    return (unique, function, priority, data, when)
