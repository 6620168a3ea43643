"""gearmand's three priorities as stored in the queue table's `priority` column."""

from __future__ import annotations

from enum import IntEnum

from .errors import UsageError


class Priority(IntEnum):
    """gearmand's priorities, as the numbers its table stores."""

    HIGH = 0
    NORMAL = 1
    LOW = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Priority:
        """`high`, `NORMAL`, `low`, or the column value `0`/`1`/`2`."""
        word = text.strip().upper()
        if word in cls.__members__:
            return cls[word]
        if word in {"0", "1", "2"}:
            return cls(int(word))
        raise UsageError(f"unknown priority {text!r}: use high, normal or low")


def label(value: int | None) -> str:
    """Name a stored priority value, including ones gearmand cannot use."""
    if value in (0, 1, 2):
        return Priority(value).label
    return f"invalid({value})"
