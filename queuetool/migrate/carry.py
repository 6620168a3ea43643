"""Which rows can be carried to another queue table, and in what form.

`Carrier.carry(row)` turns a source row into the row gearmand can replay on the
target (when_to_run NULL -> 0, a NULL or TEXT payload -> its bytes), or records
why it cannot be carried. Refusals are counted per kind with a few example keys,
so they are reported all together at the end.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field

from ..table.store import INT32_MAX, INT64_MAX, MAX_FUNCTION_BYTES, MAX_UNIQUE_BYTES

EXAMPLES = 5
Row = tuple  # (unique_key, function_name, priority, data, when_to_run)

REASONS = {
    "unique_key_type": "unique_key is NULL or not text",
    "unique_key_empty": "unique_key is empty",
    "unique_key_length": f"unique_key of {MAX_UNIQUE_BYTES + 1} bytes or more (gearmand cuts it "
    "and corrupts the payload)",
    "unique_key_utf8": "unique_key is not valid UTF-8",
    "unique_key_charset": "unique_key has characters the target table's charset cannot hold",
    "function_name_type": "function_name is NULL or not text",
    "function_name_empty": "function_name is empty",
    "function_name_length": f"function_name longer than {MAX_FUNCTION_BYTES} bytes",
    "function_name_utf8": "function_name is not valid UTF-8",
    "function_name_charset": "function_name has characters the target table's charset cannot hold",
    "unique_key_nul": "unique_key holds a NUL byte (the target's text cannot: PostgreSQL)",
    "function_name_nul": "function_name holds a NUL byte (the target's text cannot: PostgreSQL)",
    "priority_range": "priority is not 0, 1 or 2 (gearmand crashes or reads HIGH)",
    "when_to_run_type": "when_to_run is not an integer",
    "when_to_run_range": "when_to_run outside the signed integer the target holds "
    "(32 bits in a MySQL or PostgreSQL INT, 64 bits on any backend)",
    "data_type": "data is neither bytes nor text",
    "key_collision": "the target's unique key treats this (unique_key, function_name) as "
    "equal to another job's (its collation ignores case or trailing spaces)",
    "conflict": "(unique_key, function_name) is already in the target (--on-conflict fail)",
}

# MySQL's latin1 is cp1252 with the five bytes cp1252 leaves undefined mapped to C1.
_LATIN1_EXTRA = frozenset("\x81\x8d\x8f\x90\x9d")


def fits_charset(text: str, charset: str | None) -> bool:
    """Whether MySQL can store `text` in a column of `charset` without a '?'."""
    if charset is None or charset in ("utf8mb4", "binary"):
        return True
    if charset in ("utf8", "utf8mb3"):
        return all(ord(c) <= 0xFFFF for c in text)
    if charset == "ascii":
        return text.isascii()
    if charset == "latin1":
        try:
            text.encode("cp1252")
            return True
        except UnicodeEncodeError:
            return all(_cp1252_ok(c) for c in text)
    try:
        codecs.lookup(charset)
    except LookupError:
        return True  # unknown to Python: the read-back checksum still catches a '?'
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        return False
    return True


def _cp1252_ok(char: str) -> bool:
    try:
        char.encode("cp1252")
        return True
    except UnicodeEncodeError:
        return char in _LATIN1_EXTRA


@dataclass
class Refusal:
    """Rows refused for one reason: how many, and a few examples to name."""

    kind: str
    count: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return REASONS.get(self.kind, self.kind)


@dataclass
class Refusals:
    """Rows that cannot be carried, per kind, with example (function, unique) pairs."""

    kinds: dict[str, Refusal] = field(default_factory=dict)
    sink: Callable[[Row, str], None] | None = None

    def add(self, row: Row, kind: str) -> None:
        refusal = self.kinds.setdefault(kind, Refusal(kind))
        refusal.count += 1
        if len(refusal.examples) < EXAMPLES:
            refusal.examples.append((_show(row[1]), _show(row[0])))
        if self.sink is not None:
            self.sink(row, kind)

    @property
    def total(self) -> int:
        return sum(r.count for r in self.kinds.values())

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def lines(self) -> list[str]:
        out = []
        for r in self.kinds.values():
            examples = ", ".join(f"{f}/{u}" for f, u in r.examples)
            out.append(f"{r.count} {r.kind}: {r.reason} (e.g. {examples})")
        return out

    def as_dict(self) -> list[dict[str, object]]:
        return [
            {
                "kind": r.kind,
                "count": r.count,
                "reason": r.reason,
                "examples": [{"function": f, "unique_key": u} for f, u in r.examples],
            }
            for r in self.kinds.values()
        ]


def _show(value: object) -> str:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return repr(value)


@dataclass
class Carrier:
    """Validates and normalises rows for one target.

    `int32`: the target's when_to_run is a MySQL INT; on every other target it is at
    most a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's BIGINT). `charsets`: the target's
    column charsets (MySQL), None for SQLite, which stores any UTF-8 text. `nul`: the
    target's text holds a NUL character (not PostgreSQL's). `utf8`: the target's text
    must be valid UTF-8; SQLite's TEXT holds any bytes, and gearmand replays such a key
    as it is (read here as lone surrogates, written back byte-exact).
    """

    refusals: Refusals
    int32: bool = False
    nul: bool = True
    utf8: bool = True
    key_charset: str | None = None
    function_charset: str | None = None
    normalised: dict[str, int] = field(default_factory=dict)
    when_min: int = field(init=False, default=0)
    when_max: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        # One range for every backend, the narrower where the target's column is 32 bits.
        bits = INT32_MAX if self.int32 else INT64_MAX
        self.when_min, self.when_max = -bits - 1, bits

    def carry(self, row: Row) -> Row | None:
        """The row as it will be written, or None (refused and recorded).

        A row that needs no change is returned as the very same object, so a caller
        can tell (`carried is row`) which rows were normalised.
        """
        unique, function, priority, data, when = row
        # The common row, checked in one expression: at a million rows the method
        # calls of the general path below cost more than the rest of the check.
        if (
            type(unique) is str
            and type(function) is str
            and type(priority) is int
            and type(data) is bytes
            and type(when) is int
            and 0 <= priority <= 2
            and 0 < len(unique) <= MAX_UNIQUE_BYTES
            and 0 < len(function) <= MAX_FUNCTION_BYTES
            and unique.isascii()
            and function.isascii()
            and self.when_min <= when <= self.when_max
            and type(row) is tuple
            and (self.nul or ("\0" not in unique and "\0" not in function))
        ):
            return row
        changed = False
        kind = self._text_problem(
            "unique_key", unique, MAX_UNIQUE_BYTES, self.key_charset, self.utf8
        )
        if kind is None:
            kind = self._text_problem(
                "function_name", function, MAX_FUNCTION_BYTES, self.function_charset, self.utf8
            )
        if kind is None and not self.nul:
            for name, value in (("unique_key", unique), ("function_name", function)):
                if kind is None and "\0" in value:
                    kind = f"{name}_nul"
        if kind is None and (type(priority) is not int or not 0 <= priority <= 2):
            kind = "priority_range"
        if kind is None:
            if when is None:
                when, changed = 0, True
                self._note("when_to_run NULL -> 0")
            elif type(when) is not int:
                kind = "when_to_run_type"
            elif not self.when_min <= when <= self.when_max:
                kind = "when_to_run_range"
        if kind is None and type(data) is not bytes:
            changed = True
            if data is None:
                data = b""
                self._note("data NULL -> empty payload")
            elif isinstance(data, bytearray | memoryview):
                data = bytes(data)
            elif isinstance(data, str):
                data = data.encode("utf-8", "surrogateescape")
                self._note("data TEXT -> BLOB")
            else:
                kind = "data_type"
        if kind is not None:
            self.refusals.add(row, kind)
            return None
        if not changed and type(row) is tuple:
            return row
        return (unique, function, priority, data, when)

    def _note(self, what: str) -> None:
        self.normalised[what] = self.normalised.get(what, 0) + 1

    @staticmethod
    def _text_problem(
        name: str, value: object, limit: int, charset: str | None, utf8: bool = True
    ) -> str | None:
        if type(value) is not str:
            return f"{name}_type"
        if not value:
            return f"{name}_empty"
        if value.isascii():
            return f"{name}_length" if len(value) > limit else None
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8
            if utf8:
                return f"{name}_utf8"
            raw = value.encode("utf-8", "surrogateescape")
            return f"{name}_length" if len(raw) > limit else None
        if len(raw) > limit:
            return f"{name}_length"
        if not fits_charset(value, charset):
            return f"{name}_charset"
        return None
