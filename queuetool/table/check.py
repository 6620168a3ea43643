"""`check`: find every row gearmand could not replay, or would crash on.

The counting is one full-table scan: a SUM(CASE ...) per kind of problem. Only
the kinds that were found cost a second, small query for example keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..render import printable
from .store import COLUMNS, INT32_MAX, MAX_UNIQUE_BYTES, QueueStore

EXAMPLES = 5

DESCRIPTIONS = {
    "unique_key_type": "unique_key is not TEXT (replay fails: daemon does not start)",
    "function_name_type": "function_name is not TEXT (replay fails: daemon does not start)",
    "priority_type": "priority is not an INTEGER (replay fails, or NULL is read as HIGH)",
    "data_type": "data is not a BLOB (replay fails: daemon does not start)",
    "when_to_run_type": "when_to_run is not an INTEGER (replay fails: daemon does not start)",
    "priority_range": "priority outside 0..2 (gearmand crashes on replay)",
    "unique_key_empty": "unique_key is empty",
    "unique_key_length": f"unique_key of {MAX_UNIQUE_BYTES + 1} bytes or more (gearmand cuts the "
    f"key to {MAX_UNIQUE_BYTES} bytes and puts a NUL before the payload after a restart)",
    "function_name_empty": "function_name is empty",
    "when_to_run_range": "when_to_run outside the 32-bit range a MySQL queue can hold",
    "duplicate_key": "duplicate (unique_key, function_name) pairs (no key enforces them)",
}


@dataclass(frozen=True)
class Problem:
    """Rows with one kind of problem: how many, and examples (unique key, function)."""

    kind: str
    count: int
    examples: list[tuple[str | None, str | None]]

    @property
    def description(self) -> str:
        return DESCRIPTIONS.get(self.kind, self.kind)


@dataclass
class CheckResult:
    """What `check` found: row problems, layout problems and replay problems."""

    rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    schema: list[str] = field(default_factory=list)
    # A layout gearmand starts on but replays wrongly (PostgreSQL's INTEGER columns).
    replay: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.startable and not self.replay

    @property
    def startable(self) -> bool:
        """gearmand comes up on this table (a wrong `replay` does not keep it down)."""
        return not self.problems and not self.schema

    def summary(self) -> str:
        if self.ok:
            return f"{self.rows} rows checked: no problems"
        parts = [f"{p.count} {p.kind}" for p in self.problems] + self.schema + self.replay
        return f"{self.rows} rows checked: " + ", ".join(parts)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "schema": self.schema + self.replay,
            "problems": [
                {
                    "kind": p.kind,
                    "description": p.description,
                    "count": p.count,
                    "examples": [{"unique_key": u, "function": f} for u, f in p.examples],
                }
                for p in self.problems
            ],
        }


def conditions(store: QueueStore) -> dict[str, sa.ColumnElement[bool]]:
    """Per kind of problem, the rows that have it (duplicates are counted apart)."""
    t = store.table
    d = store.dialect
    wrong_type = d.storage_type_conditions(t)
    conds = dict(wrong_type)

    def typed(column: str, cond: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
        # A value of the wrong type is that problem only: SQLite orders any TEXT after
        # every number, so 'soon' would also be "beyond 2**31". CASE, not AND: only
        # CASE fixes the order, and PostgreSQL's cast of 'soon' (TEXT layout) is an error.
        wrong = wrong_type.get(f"{column}_type")
        return cond if wrong is None else sa.case((wrong, sa.false()), else_=cond)

    # BETWEEN, not NOT IN (0, 1, 2): the same rows, at a third of the cost in SQLite.
    conds["priority_range"] = typed("priority", sa.not_(t.c.priority.between(0, 2)))
    # `= ''` alone is not enough: MySQL's PAD SPACE collations find ' ' = ''.
    conds["unique_key_empty"] = typed(
        "unique_key", sa.and_(t.c.unique_key == "", d.byte_length(t.c.unique_key) == 0)
    )
    conds["unique_key_length"] = typed(
        "unique_key", d.byte_length(t.c.unique_key) > MAX_UNIQUE_BYTES
    )
    conds["function_name_empty"] = typed(
        "function_name",
        sa.and_(t.c.function_name == "", d.byte_length(t.c.function_name) == 0),
    )
    conds["when_to_run_range"] = typed(
        "when_to_run",
        sa.or_(t.c.when_to_run > INT32_MAX, t.c.when_to_run < -INT32_MAX - 1),
    )
    return conds


def check(
    store: QueueStore,
    conn: Connection | None = None,
    where: sa.ColumnElement[bool] | None = None,
) -> CheckResult:
    """Check the whole table, or just the rows `where` selects (inside `conn`'s transaction)."""
    if conn is None:
        with store.connect(read_only=True) as own:
            return check(store, own, where)
    result = CheckResult(schema=store.schema_problems(conn))
    if store.missing(conn) is not None:
        return result
    replay = store.dialect.replay_problem(conn, store.table_name)
    if replay is not None and where is None:
        result.replay.append(replay)
    present = {c["name"].lower() for c in sa.inspect(conn).get_columns(store.table_name)}
    if not present.issuperset(COLUMNS):
        return result  # the schema problem says which column; rows cannot be read
    t = store.table
    conds = conditions(store)
    scope = sa.true() if where is None else where
    query = sa.select(sa.func.count(), *map(count_if, conds.values())).where(scope)
    counts = conn.execute(query).one()
    result.rows = int(counts[0])
    for (kind, cond), count in zip(conds.items(), counts[1:], strict=True):
        if count:
            examples = conn.execute(
                sa.select(t.c.unique_key, t.c.function_name).where(scope, cond).limit(EXAMPLES)
            ).all()
            result.problems.append(Problem(kind, int(count), [_ex(e) for e in examples]))
    if not store.has_unique_key(conn):
        dup = _duplicates(store, conn, scope)
        if dup is not None:
            result.problems.append(dup)
    return result


def count_if(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    """How many rows `cond` holds for, as an aggregate (0, not NULL, over no rows)."""
    return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)


def _duplicates(
    store: QueueStore, conn: Connection, scope: sa.ColumnElement[bool]
) -> Problem | None:
    t = store.table
    groups = (
        sa.select(t.c.unique_key, t.c.function_name, sa.func.count().label("n"))
        .where(scope)
        .group_by(t.c.unique_key, t.c.function_name)
        .having(sa.func.count() > 1)
        .subquery()
    )
    total = conn.execute(sa.select(sa.func.count()).select_from(groups)).scalar_one()
    if not total:
        return None
    examples = conn.execute(sa.select(groups.c.unique_key, groups.c.function_name).limit(EXAMPLES))
    return Problem("duplicate_key", int(total), [_ex(e) for e in examples])


def _ex(row: sa.Row) -> tuple[str | None, str | None]:
    return tuple(  # type: ignore[return-value]
        v if v is None else printable(v) if isinstance(v, str) else repr(v) for v in row
    )
