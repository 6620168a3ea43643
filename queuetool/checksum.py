"""An order-independent checksum over queue rows, the same on SQLite and MySQL.

Each row is hashed (BLAKE2b, 128 bits) over a length-prefixed encoding that keeps
types apart (NULL vs 0 vs '', TEXT vs BLOB); the row hashes are summed modulo
2**128. Order-independent, so two tables compare without sorting; a sum, unlike
XOR, still sees a row that is there twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from hashlib import blake2b

import sqlalchemy as sa
from sqlalchemy.engine import Connection

MOD = 2**128
BATCH = 5000


def encode_value(value: object) -> bytes:
    if value is None:
        return b"n"
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return b"b%d:" % len(raw) + raw
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        return b"s%d:" % len(raw) + raw
    if isinstance(value, int):
        return b"i%d;" % value
    raw = repr(value).encode()
    return b"o%d:" % len(raw) + raw


def row_hash(row: Iterable[object]) -> int:
    values = tuple(row)
    if len(values) == 5:
        u, f, p, d, w = values
        # The common row (text, text, int, bytes, int) in one formatting call: the same
        # bytes encode_value() gives, several times faster on a million rows.
        if (
            type(u) is str
            and type(f) is str
            and type(p) is int
            and type(w) is int
            and (type(d) is bytes)
        ):
            ub = u.encode("utf-8", "surrogateescape")
            fb = f.encode("utf-8", "surrogateescape")
            message = b"s%d:%bs%d:%bi%d;b%d:%bi%d;" % (len(ub), ub, len(fb), fb, p, len(d), d, w)
            return int.from_bytes(blake2b(message, digest_size=16).digest(), "big")
    message = b"".join(encode_value(v) for v in values)
    return int.from_bytes(blake2b(message, digest_size=16).digest(), "big")


@dataclass
class Checksum:
    """Row count plus the sum of row hashes; `hex` is what people compare."""

    rows: int = 0
    total: int = 0

    def add(self, row: Iterable[object]) -> None:
        self.rows += 1
        self.total = (self.total + row_hash(row)) % MOD

    def update(self, rows: Iterable[Iterable[object]]) -> Checksum:
        for row in rows:
            self.add(row)
        return self

    @property
    def hex(self) -> str:
        return f"{self.total:032x}"

    def __str__(self) -> str:
        return f"{self.rows} rows, checksum {self.hex}"


def stream_rows(
    conn: Connection,
    table: sa.Table,
    where: sa.ColumnElement[bool] | None = None,
    batch: int = BATCH,
) -> Iterator[sa.Row]:
    """Every row (unique_key, function_name, priority, data, when_to_run), streamed.

    On MySQL this is a server-side cursor, so memory stays flat whatever the size.
    """
    query = sa.select(
        table.c.unique_key,
        table.c.function_name,
        table.c.priority,
        table.c.data,
        table.c.when_to_run,
    )
    if where is not None:
        query = query.where(where)
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
    yield from result


def table_checksum(
    conn: Connection, table: sa.Table, where: sa.ColumnElement[bool] | None = None
) -> Checksum:
    """The checksum of a table (or of the rows `where` selects)."""
    return Checksum().update(stream_rows(conn, table, where))
