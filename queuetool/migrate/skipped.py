"""`migrate --skip-invalid` (and `import --skip-invalid`): the rows that cannot be
carried, exported as a job file.

The same format as `export` and `purge --export` (`table/export.py`, so `import` reads it
back once the rows are fixed), each job with the reason it was refused. The file is
created only when a first row is refused (mode 0600, never over an existing file) and
ends with its trailer, fsynced, before the migration reports it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..table.export import JobWriter, check_export_path
from .carry import Row


@contextlib.contextmanager
def skipped_sink(
    path: Path, opened: Callable[[Path], None], header: dict[str, object] | None = None
) -> Iterator[Callable[[Row, str], None]]:
    """A function that writes one refused row (and why) to `path`; `opened(path)` is
    called when the file is created."""
    out = None
    writer: JobWriter | None = None

    def sink(row: Row, kind: str) -> None:
        nonlocal out, writer
        if writer is None:
            check_export_path(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            out = open(fd, "w", encoding="utf-8")  # noqa: SIM115 (closed in finally)
            writer = JobWriter(out, "jsonl", {"selection": "refused rows", **(header or {})})
            opened(path)
        writer.write(row, reason=kind)

    try:
        yield sink
    finally:
        if out is not None and writer is not None:
            writer.close()
            out.flush()
            os.fsync(out.fileno())
            out.close()
