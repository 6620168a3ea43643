"""The oldest submission time among a group's keys, found by a MIN in SQL.

libgearman names a job without a unique key by a UUID version 1, whose 60-bit
timestamp is the submission time (GEARMAND.md). Its 15 hex digits stand in the key
as time_low-time_mid-1time_hi; `order_key` puts them first, most significant first
(time_hi, time_mid, then the key itself, which starts with time_low), so the least
`order_key` of a group is its oldest job: a string MIN the database computes as rows
stream, at the cost of two substrings per row. Parsing each key into a number in SQL,
as the filters do (dialects' `uuid1_epoch`), costs many times more on a large queue.

SQL only checks the shape (`________-____-1___-____-____________`); `order_epoch`
checks the winner in full. A winner that is not a UUIDv1 in lowercase hex digits
(`ValueError`) may hide the true oldest time behind it, so the caller then asks
`uuid1_epoch` for that group instead. A winner that passes is the true oldest: no
valid key can sort below it, as every valid key passed the shape check too, and
lowercase hex digits of equal length sort as their values do.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

SHAPE = "________-____-1___-____-____________"
HEX = frozenset("0123456789abcdef")
OFFSET_TICKS = 0x01B21DD213814000  # 100 ns ticks from 1582-10-15 to 1970-01-01


def order_key(column: sa.ColumnElement) -> sa.ColumnElement:
    """time_hi || time_mid || key for a key shaped like a UUIDv1, else NULL, in SQL."""
    digits = sa.func.substr(column, 16, 3, type_=sa.String).concat(
        sa.func.substr(column, 10, 4, type_=sa.String)
    )
    return sa.case((column.like(SHAPE), digits.concat(column)), else_=sa.null())


def order_epoch(value: object) -> int | None:
    """The Unix time (floor seconds) of a least `order_key`; None for no key.

    ValueError: the value is not a lowercase UUIDv1's, so it proves nothing."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str) or len(value) != 43:
        raise ValueError("not a UUIDv1 order key")
    digits, key = value[:15], value[7:]
    if not HEX.issuperset(digits) or not is_uuid1(key):
        raise ValueError("not a UUIDv1 order key")
    return (int(digits, 16) - OFFSET_TICKS) // 10**7


def is_uuid1(key: str) -> bool:
    """A UUID version 1 (RFC 4122 variant) written the canonical way, any case."""
    try:
        parsed = uuid.UUID(key)
    except ValueError:
        return False
    return str(parsed) == key.lower() and parsed.version == 1 and parsed.variant == uuid.RFC_4122
