"""One renderer for every command's output: rows in, table/JSON/CSV out.

Rows are dicts from a generator, so JSON and CSV stream; a table needs all its
rows to size its columns.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from typing import TextIO

from tabulate import tabulate

FORMATS = ("table", "json", "csv")


def render(
    rows: Iterable[dict[str, object]],
    fmt: str,
    out: TextIO,
    columns: Sequence[str] | None = None,
) -> int:
    """Write `rows` to `out` in `fmt`; returns how many rows were written.

    `columns` names the CSV header for when there are no rows: a script reading the
    CSV still gets its header line.
    """
    rows = map(_printable_row, rows)
    if fmt == "json":
        return _json(rows, out)
    if fmt == "csv":
        return _csv(rows, out, columns)
    if fmt == "table":
        return _table(list(rows), out)
    raise ValueError(f"unknown format {fmt!r}")


def render_json(document: object, out: TextIO, *, ascii_only: bool = False) -> None:
    """Write one structured result (a dict of a command's whole answer) as indented JSON.

    `ascii_only` escapes every non-ASCII character (as `status` always has); otherwise
    text is written as it is, as `check` and `migrate` always have.
    """
    out.write(json.dumps(document, indent=2, ensure_ascii=ascii_only, default=str))
    out.write("\n")


def printable(text: str) -> str:
    """Text as it can be printed: bytes that were not UTF-8 (a SQLite key read with
    surrogateescape; gearmand stores such keys) as backslash escapes, like b'\\xff'."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _printable_row(row: dict[str, object]) -> dict[str, object]:
    for value in row.values():
        if isinstance(value, str) and not value.isascii():
            return {k: printable(v) if isinstance(v, str) else v for k, v in row.items()}
    return row


def _table(rows: list[dict[str, object]], out: TextIO) -> int:
    if not rows:
        return 0
    headers = list(rows[0])
    # Numbers right-aligned with thousands separators; text exactly as stored
    # (tabulate's own number parsing would turn a unique key like "1e5" into 100000).
    align = ["right" if isinstance(rows[0][h], int) else "left" for h in headers]
    body = [[f"{v:,}" if isinstance(v, int) else v for v in row.values()] for row in rows]
    out.write(tabulate(body, headers=headers, disable_numparse=True, colalign=align))
    out.write("\n")
    return len(rows)


def _json(rows: Iterable[dict[str, object]], out: TextIO) -> int:
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n  " if count else "\n  ")
        out.write(json.dumps(row, ensure_ascii=False, default=str))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _csv(rows: Iterable[dict[str, object]], out: TextIO, columns: Sequence[str] | None) -> int:
    writer: csv.DictWriter | None = None
    count = 0
    for row in rows:
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
            writer.writeheader()
        writer.writerow(row)
        count += 1
    if writer is None and columns:
        csv.writer(out, lineterminator="\n").writerow(columns)
    return count
