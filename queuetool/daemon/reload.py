"""What a restart costs and whether it worked: replay-time prediction and reload check.

gearmand replays its queue into a hash table of `--hashtable-buckets` lists, so each
job walks a list about N/buckets long: quadratic with the default 991 buckets.
The model below is fitted to GEARMAND.md's measurements (1.1.20, 2 cores): ~2.5 s
per 1M jobs with buckets ~= N, ~110-120 s per 1M jobs at 991 buckets. It errs on the
slow side at 100k (predicts ~1.4 s where ~0.85 s was measured), which is the safe
side for a timeout and for what an operator is told to expect.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import sqlalchemy as sa

from ..table.check import CheckResult, check
from ..table.store import QueueStore
from .admin import AdminClient

DEFAULT_BUCKETS = 991
LINEAR_S_PER_JOB = 2.5e-6
LIST_WALK_S = 1.1e-7  # per job per job-per-bucket
WORTH_RETUNING_S = 5.0  # below this the default buckets cost too little to mention


@dataclass(frozen=True)
class ReplayPrediction:
    """How long a restart's replay will take, and a better bucket count when one
    saves enough."""

    jobs: int
    buckets: int
    seconds: float
    recommended_buckets: int | None  # None: the setting is fine for this queue
    seconds_with_recommended: float | None

    def summary(self) -> str:
        text = (
            f"predicted replay for {self.jobs:,} jobs with --hashtable-buckets "
            f"{self.buckets:,}: ~{self.seconds:.1f}s"
        )
        if self.recommended_buckets is not None:
            text += (
                f"; too few buckets for this queue: --hashtable-buckets "
                f"{self.recommended_buckets} would take ~{self.seconds_with_recommended:.1f}s"
            )
        return text


def replay_seconds(jobs: int, buckets: int = DEFAULT_BUCKETS) -> float:
    """The predicted replay time of `jobs` jobs into `buckets` hashtable buckets
    (linear, plus the walk of the bucket lists that grows with jobs per bucket)."""
    buckets = max(1, buckets)
    return jobs * LINEAR_S_PER_JOB + LIST_WALK_S * jobs * (jobs / buckets)


def recommended_buckets(jobs: int) -> int:
    """A prime at or above the job count (and never below gearmand's default)."""
    return next_prime(max(DEFAULT_BUCKETS, jobs))


def predict_replay(jobs: int, buckets: int = DEFAULT_BUCKETS) -> ReplayPrediction:
    """The replay prediction, with a recommended bucket count only when it is worth
    a retune."""
    seconds = replay_seconds(jobs, buckets)
    better = recommended_buckets(jobs)
    with_better = replay_seconds(jobs, better)
    if better > buckets and seconds - with_better > WORTH_RETUNING_S:
        return ReplayPrediction(jobs, buckets, seconds, better, with_better)
    return ReplayPrediction(jobs, buckets, seconds, None, None)


def ready_timeout(jobs: int, buckets: int = DEFAULT_BUCKETS) -> float:
    """How long to wait for the first admin answer: grows with the predicted replay."""
    return 30.0 + 3.0 * replay_seconds(jobs, buckets)


def next_prime(n: int) -> int:
    """The smallest prime at or above `n` (gearmand's hashtable wants a prime)."""
    n = max(2, n)
    while not _is_prime(n):
        n += 1
    return n


def _is_prime(n: int) -> bool:
    if n < 4:
        return n >= 2
    if n % 2 == 0:
        return False
    return all(n % d for d in range(3, math.isqrt(n) + 1, 2))


# -- reload verification ---------------------------------------------------------------

Cell = tuple[str, int]  # (function, priority)


@dataclass
class ReloadVerification:
    """The table's counts (before the start) against the daemon's `prioritystatus`."""

    table: dict[Cell, int]
    daemon: dict[Cell, int]
    running: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.differences() or bool(self.note)

    def differences(self) -> list[tuple[str, int, int, int]]:
        """(function, priority, in the table, in the daemon) for every cell that differs."""
        cells = sorted(set(self.table) | set(self.daemon))
        return [
            (f, p, self.table.get((f, p), 0), self.daemon.get((f, p), 0))
            for f, p in cells
            if self.table.get((f, p), 0) != self.daemon.get((f, p), 0)
        ]

    @property
    def total_table(self) -> int:
        return sum(self.table.values())

    @property
    def total_daemon(self) -> int:
        return sum(self.daemon.values())

    def summary(self) -> str:
        if not self.differences():
            return f"reload verified: the daemon holds the table's {self.total_table:,} jobs"
        if self.note:
            return f"reload verified: {self.note}"
        shown = "; ".join(
            f"{f}/{['high', 'normal', 'low'][p] if p in (0, 1, 2) else p}: table {t}, daemon {d}"
            for f, p, t, d in self.differences()[:10]
        )
        return (
            f"reload NOT verified: the table holds {self.total_table:,} jobs, the daemon "
            f"{self.total_daemon:,} ({shown})"
        )


def count_cells(store: QueueStore) -> dict[Cell, int]:
    """The table's jobs per (function, priority): what `prioritystatus` must show."""
    t = store.table
    query = sa.select(t.c.function_name, t.c.priority, sa.func.count()).group_by(
        t.c.function_name, t.c.priority
    )
    with store.connect(read_only=True) as conn:
        store.require_table(conn)
        return {(f or "", p or 0): int(n) for f, p, n in conn.execute(query)}


def examine(
    store: QueueStore, count: bool = True, checked: CheckResult | None = None
) -> tuple[CheckResult, dict[Cell, int] | None]:
    """`check` the whole table (unless `checked` already vouches for it) and, with
    `count`, count it per cell, for a start.

    Two full scans of a table nobody writes to (the daemon is stopped): they run at
    the same time on two connections, so with a core to spare the downtime pays for
    the longer one only.
    """
    if checked is not None or not count:
        return checked or check(store), count_cells(store) if count else None
    with ThreadPoolExecutor(2, thread_name_prefix="queuetool-examine") as pool:
        counted = pool.submit(count_cells, store)
        return check(store), counted.result()


def daemon_cells(client: AdminClient) -> tuple[dict[Cell, int], dict[str, int]]:
    """Queued jobs per (function, priority) and running jobs per function."""
    cells: dict[Cell, int] = {}
    for line in client.priority_status():
        for priority, count in enumerate(line.counts):
            if count:
                cells[(line.function, priority)] = count
    running = {s.function: s.running for s in client.status() if s.running}
    return cells, running


def compare(
    expected: dict[Cell, int],
    daemon: dict[Cell, int],
    running: dict[str, int],
    table_now: dict[Cell, int] | None = None,
) -> ReloadVerification:
    """Match the daemon against the table, allowing for jobs workers took meanwhile.

    `prioritystatus` does not count running jobs. A job a worker took after the
    reload is still a row (until it completes), so when the table can be re-read,
    per function `queued + running == rows now` with no cell above the table proves
    the reload just as well. (`table_now` is None with --store-queue-on-shutdown:
    the daemon empties the table after its replay.)
    """
    result = ReloadVerification(expected, daemon, running)
    if not result.differences() or table_now is None:
        return result
    functions = {f for f, _ in expected} | {f for f, _ in daemon}
    for f in functions:
        rows = sum(n for (g, _), n in table_now.items() if g == f)
        queued = sum(n for (g, _), n in daemon.items() if g == f)
        if rows != queued + running.get(f, 0):
            return result
        if any(n > table_now.get(c, 0) for c, n in daemon.items() if c[0] == f):
            return result
    taken = sum(expected.values()) - sum(table_now.values()) + sum(running.values())
    result.note = f"all jobs loaded; workers already took {taken} since the start"
    return result
