"""The dry run of edits: how many jobs each would change now, and a sample of them
before and after; nothing is written."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..table.filters import JobFilter
from ..table.jobs import Job, select_jobs
from ..table.store import QueueStore
from .kinds import Edit, Reschedule, count_edit, stable_order

SAMPLE = 10


@dataclass(frozen=True)
class Plan:
    """What an edit would do now: how many jobs it would change, how many it selects but
    finds already as asked, and the first few it would change, before and after."""

    edit: Edit
    matched: int
    sample: list[Job]
    already: int = 0
    after: list[Job | None] = field(default_factory=list)  # `sample` as the edit leaves it

    def describe(self) -> str:
        """ "reprioritise (...) to high: 5 jobs (2 already at high)"."""
        text = f"{self.edit.describe()}: {self.matched} jobs"
        if self.already:
            text += f" ({self.already} {self.edit.settled_phrase()})"
        return text


def plan(store: QueueStore, edits: Sequence[Edit], sample: int = SAMPLE) -> list[Plan]:
    """The dry run: each edit's count and sample against the current table; writes nothing.

    In a batch, later edits are counted against the table as it is, not as the
    earlier edits would leave it.
    """
    now = int(time.time())
    plans = []
    with store.connect() as conn:
        store.require_table(conn)
        for edit in edits:
            edit.validate(store)
            frozen = edit.frozen(now)
            counted = count_edit(conn, store, frozen)  # its rows and its settled ones
            matched = counted["matched"]
            # The edit's own WHERE (a repair narrows its filter to repairable rows).
            query = select_jobs(store, JobFilter()).where(frozen.where(store))
            if isinstance(frozen, Reschedule) and frozen.spread:
                # The order --spread hands out times in, so each job shows its own.
                query = query.order_by(None).order_by(*stable_order(store))
            jobs = [
                Job(r.unique_key, r.function_name, r.priority, r.when_to_run, int(r.size or 0))
                for r in conn.execute(query.limit(sample))
            ]
            after = [frozen.after(job, i, matched, now) for i, job in enumerate(jobs)]
            plans.append(Plan(edit, matched, jobs, counted.get("already", 0), after))
    return plans
