"""`queuetool wake`: hand out scheduled jobs whose time has come on gearmand < 2.0.0.

Before 2.0.0 a job whose when_to_run passes while its function's workers sleep is
not handed out until something wakes them (GEARMAND.md). The documented wake-up,
submitting a far-future SUBMIT_JOB_EPOCH job and cancelling it (`cancel job`),
turned out to be harmful here (seen on 1.1.20): the cancelled trigger stays in the
function's NORMAL list, never due, so that list is never empty again and, by the
priority-list bug, the function's due LOW jobs are never handed out (until a restart);
a wake of LOW jobs with it hands out nothing.

What wakes the workers without leaving anything behind: queuetool connects as a
worker of the function (CAN_DO, GRAB_JOB), receives the first job a worker would get,
and disconnects without running it. gearmand puts that job back into its list and,
as for any job queued, wakes the sleeping workers, which then take it and every other
due job. The job is not run and not lost (its row never leaves the table); it only
counts one more attempt, which matters with `--job-retries N` (queuetool refuses then).
When no job can be handed out (nothing due, or a blocked list), there is nothing to
release and nothing a wake-up could change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from ..errors import DaemonTimeout, UsageError
from ..table.filters import JobFilter
from ..table.store import QueueStore
from .admin import DEFAULT_TIMEOUT, Address, open_socket, packet, read_packet

CAN_DO, GRAB_JOB = 1, 9
NO_JOB, JOB_ASSIGN = 10, 11


@dataclass(frozen=True)
class Woken:
    """One function's wake-up: `released` is the handle of the job handed back (None:
    gearmand had no job to hand out, so its workers had nothing to be woken for)."""

    function: str
    released: str | None


@dataclass
class WakePass:
    """One pass of `wake`: what it woke and the scheduled jobs still waiting."""

    at: int
    woken: list[Woken] = field(default_factory=list)
    waiting: dict[str, tuple[int, int]] = field(default_factory=dict)  # function: (jobs, next)


def release_one(
    address: str | Address, function: str, timeout: float = DEFAULT_TIMEOUT
) -> str | None:
    """Take the job gearmand would hand a worker of `function` and give it back at once
    (by disconnecting): the daemon re-queues it and wakes the function's sleeping workers.
    Returns the released job's handle, or None when gearmand had no job to hand out."""
    address = Address.parse(address)
    name = function.encode()
    sock = open_socket(address, timeout)
    with sock:
        try:
            sock.sendall(packet(CAN_DO, name) + packet(GRAB_JOB))
            while True:
                kind, body = read_packet(sock, address)
                if kind == NO_JOB:
                    return None
                if kind == JOB_ASSIGN:
                    return body.split(b"\0", 1)[0].decode()
                # NOOP and the like: keep reading until the answer to GRAB_JOB.
        except TimeoutError:
            raise DaemonTimeout(f"gearmand at {address} did not answer GRAB_JOB") from None


def due_functions(store: QueueStore, job_filter: JobFilter, since: int, now: int) -> list[str]:
    """Functions with scheduled jobs (when_to_run > 0) that came due in (since, now]."""
    t = store.table
    when = sa.func.coalesce(t.c.when_to_run, 0)
    query = (
        sa.select(t.c.function_name)
        .where(job_filter.where(t, store.dialect), when > max(since, 0), when <= now)
        .group_by(t.c.function_name)
    )
    with store.connect(read_only=True) as conn:
        return sorted(conn.execute(query).scalars())


def waiting(store: QueueStore, job_filter: JobFilter, now: int) -> dict[str, tuple[int, int]]:
    """function -> (scheduled jobs, the next when_to_run) for jobs still in the future."""
    t = store.table
    when = sa.func.coalesce(t.c.when_to_run, 0)
    query = (
        sa.select(t.c.function_name, sa.func.count(), sa.func.min(when))
        .where(job_filter.where(t, store.dialect), when > now)
        .group_by(t.c.function_name)
    )
    with store.connect(read_only=True) as conn:
        return {f: (int(n), int(w)) for f, n, w in conn.execute(query)}


def check_retries(job_retries: str | None) -> None:
    """Refuse with `--job-retries N`: a release counts as an attempt, and a job at its
    last attempt would be failed (deleted) instead of handed out."""
    if job_retries and job_retries.strip() not in ("0", ""):
        raise UsageError(
            f"gearmand runs with --job-retries {job_retries}: waking its workers by giving a "
            "job back counts as one attempt and could fail a job at its last one; restart "
            "or reconnect the workers instead"
        )


def wake_once(
    store: QueueStore,
    address: str | Address,
    job_filter: JobFilter,
    since: int = 0,
    now: int | None = None,
    functions: list[str] | None = None,
) -> WakePass:
    """Wake the workers of every function whose scheduled jobs came due in (since, now]
    (or of `functions`, when the table cannot tell: a --store-queue-on-shutdown daemon)."""
    now = int(time.time()) if now is None else now
    result = WakePass(now)
    names = functions if functions is not None else due_functions(store, job_filter, since, now)
    for name in names:
        result.woken.append(Woken(name, release_one(address, name)))
    if functions is None:
        result.waiting = waiting(store, job_filter, now)
    return result


def wake_every(
    store: QueueStore,
    address: str | Address,
    job_filter: JobFilter,
    every: float,
    report: Callable[[WakePass], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Wake as jobs come due, a pass every `every` seconds, until no scheduled job of
    the filter is left; returns the number of passes."""
    since = 0
    passes = 0
    while True:
        done = wake_once(store, address, job_filter, since)
        passes += 1
        report(done)
        if not done.waiting:
            return passes
        since = done.at
        sleep(every)
