"""The job filter shared by `jobs` and every editing command.

It compiles to one SQL WHERE clause, so the database does the selection: the same
expression drives a count, a listing, an UPDATE or a DELETE.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..errors import UsageError
from ..priority import Priority

if TYPE_CHECKING:
    from .dialects import Dialect

GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class JobFilter:
    """Which jobs to act on. Empty (all defaults) matches every job."""

    functions: tuple[str, ...] = ()  # names or shell-style globs, any may match
    uniques: tuple[str, ...] = ()  # unique-key globs, any may match
    priorities: tuple[Priority, ...] = ()
    scheduled: bool | None = None  # True: when_to_run in the future; False: due now
    run_after: int | None = None  # when_to_run >= this epoch
    run_before: int | None = None  # when_to_run < this epoch
    # The submission time a UUIDv1 key carries (libgearman's own keys): only such keys
    # ever match, and a key that merely looks like one could lie, so it is a hint.
    submitted_after: int | None = None  # >= this epoch
    submitted_before: int | None = None  # < this epoch
    now: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (
            self.run_after is not None
            and self.run_before is not None
            and self.run_after >= self.run_before
        ):
            raise UsageError("--run-after must be earlier than --run-before")
        if (
            self.submitted_after is not None
            and self.submitted_before is not None
            and self.submitted_after >= self.submitted_before
        ):
            raise UsageError("--submitted-after must be earlier than --submitted-before")

    @property
    def is_empty(self) -> bool:
        return not (
            self.functions
            or self.uniques
            or self.priorities
            or self.scheduled is not None
            or self.run_after is not None
            or self.run_before is not None
            or self.submitted_after is not None
            or self.submitted_before is not None
        )

    def where(self, table: sa.Table, dialect: Dialect) -> sa.ColumnElement[bool]:
        """The WHERE clause for `table`; `dialect` supplies the glob operator."""
        now = int(time.time()) if self.now is None else self.now
        when = sa.func.coalesce(table.c.when_to_run, 0)
        clauses: list[sa.ColumnElement[bool]] = []
        if self.functions:
            clauses.append(_any_glob(table.c.function_name, self.functions, dialect))
        if self.uniques:
            clauses.append(_any_glob(table.c.unique_key, self.uniques, dialect))
        if self.priorities:
            clauses.append(table.c.priority.in_(sorted({int(p) for p in self.priorities})))
        if self.scheduled is True:
            clauses.append(when > now)
        elif self.scheduled is False:
            clauses.append(when <= now)
        if self.run_after is not None:
            clauses.append(when >= _epoch(self.run_after))
        if self.run_before is not None:
            clauses.append(when < _epoch(self.run_before))
        if self.submitted_after is not None or self.submitted_before is not None:
            submitted = dialect.uuid1_epoch(table.c.unique_key)  # NULL: no time in the key
            if self.submitted_after is not None:
                clauses.append(submitted >= _epoch(self.submitted_after))
            if self.submitted_before is not None:
                clauses.append(submitted < _epoch(self.submitted_before))
        return sa.and_(sa.true(), *clauses)

    def describe(self) -> str:
        """The filter in words, for confirmations and logs."""
        parts = []
        if self.functions:
            parts.append("function " + " or ".join(self.functions))
        if self.uniques:
            parts.append("unique " + " or ".join(self.uniques))
        if self.priorities:
            parts.append("priority " + " or ".join(p.label for p in self.priorities))
        if self.scheduled is True:
            parts.append("scheduled")
        elif self.scheduled is False:
            parts.append("due")
        if self.run_after is not None:
            parts.append(f"run after @{self.run_after}")
        if self.run_before is not None:
            parts.append(f"run before @{self.run_before}")
        if self.submitted_after is not None:
            parts.append(f"submitted after @{self.submitted_after} (UUIDv1 keys)")
        if self.submitted_before is not None:
            parts.append(f"submitted before @{self.submitted_before} (UUIDv1 keys)")
        return ", ".join(parts) if parts else "all jobs"


def _any_glob(
    column: sa.ColumnElement, patterns: Iterable[str], dialect: Dialect
) -> sa.ColumnElement[bool]:
    exact = sorted({p for p in patterns if not GLOB_CHARS & set(p)})
    globs = sorted({p for p in patterns if GLOB_CHARS & set(p)})
    clauses: list[sa.ColumnElement[bool]] = []
    if exact:
        # Plain names compare with IN: simpler and faster than a pattern.
        clauses.append(dialect.exact_match(column, exact))
    clauses.extend(dialect.glob_match(column, g) for g in globs)
    return sa.or_(*clauses)


def _epoch(value: int) -> sa.ColumnElement[int]:
    """A time to compare with as a BIGINT: bound as the column's INTEGER, PostgreSQL's
    driver casts it to int4, and a time after 2038 fails as out of range."""
    return sa.literal(value, sa.BigInteger)
