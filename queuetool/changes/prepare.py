"""Before an edit or a restore: what it would change, and whether that can be known yet.

`prepare_edits` is the step between a request (edits built from options or a plan file)
and `apply_edits` or the maintenance window: it counts each edit's jobs, or, when the
queue's gearmand holds its queue in memory (--store-queue-on-shutdown, its table is
not its queue while it runs), says they can be counted only once it has stopped.
The caller confirms what it was told and then applies. `prepare_restore` does the
same for a snapshot: refused unless it may go onto this queue, and what it replaces.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ..daemon.discover import DaemonInfo
from ..daemon.held import HeldQueue, held_queue, holding_daemon
from ..daemon.version import DaemonVersion
from ..errors import QueuetoolError
from ..table.store import QueueStore
from .blocking import NewBlock, new_blocks, unblock_edits
from .dryrun import Plan, plan
from .kinds import Edit
from .restore import check_target, same_queue
from .snapshot import SnapshotInfo, SnapshotVerification, read_manifest, verify


@dataclass
class EditRequest:
    """Edits and what is known of them before anything changes."""

    edits: Sequence[Edit]
    holder: DaemonInfo | None  # a running daemon that holds the queue in memory
    plans: list[Plan] | None  # None: counted only once `holder` has stopped
    # Due jobs the edits would leave blocked on gearmand before 2.0.0 (`prepare_edits`
    # with a version); with `unblock`, the edits that prevent it are in `edits` and
    # `plans` already and this lists what they would have blocked.
    blocks: list[NewBlock] = field(default_factory=list)
    unblocked: bool = False

    @property
    def would_block(self) -> bool:
        """The edits as they stand would leave due jobs blocked (not prevented)."""
        return bool(self.blocks) and not self.unblocked

    @property
    def counted_after_stop(self) -> bool:
        """The jobs can be counted (and the edit confirmed) only after the daemon's stop."""
        return self.plans is None

    @property
    def matched(self) -> int:
        """How many jobs the edits would change (0 when not counted yet)."""
        return sum(p.matched for p in self.plans or ())

    def describe(self) -> str:
        """Each edit with its count, as one sentence for a question; or, not counted yet,
        each edit and that it is counted after the stop."""
        if self.plans is None:
            return "; ".join(e.describe() for e in self.edits) + " (counted after the stop)"
        text = "; ".join(p.describe() for p in self.plans)
        if self.would_block:
            text += " (it would block " + ", ".join(b.short() for b in self.blocks) + ")"
        return text

    def nothing_to_change(self) -> str | None:
        """Why nothing would change, in words (None: some job would, or not counted yet).

        Jobs the filters select that are already as asked are named, so that a rerun
        of the same edit says so instead of "no jobs match".
        """
        if self.plans is None or self.matched:
            return None
        already = "; ".join(
            f"{p.already} {p.edit.settled_phrase()} ({p.edit.job_filter.describe()})"
            for p in self.plans
            if p.already
        )
        if already:
            return f"no jobs to change: {already}"
        return "no jobs match (" + "; ".join(e.job_filter.describe() for e in self.edits) + ")"


def prepare_edits(
    store: QueueStore,
    edits: Sequence[Edit],
    *,
    force: bool = False,
    dry_run: bool = False,
    version: DaemonVersion | Callable[[], DaemonVersion] | None = None,
    unblock: bool = False,
) -> EditRequest:
    """Count what `edits` would change now (each edit validated first); writes nothing.

    When a running daemon holds the queue in memory, nothing is counted (its table says
    nothing until it stops): unless `dry_run`, the edits are validated, so that a bad
    request is refused before the daemon is stopped. With `force` (and not `dry_run`)
    the table is counted as it stands.

    With `version` (the queue's gearmand, or a function that finds it, called only when
    the edits would block something), the due jobs the edits would leave blocked on a
    gearmand before 2.0.0 are in `blocks`; with `unblock` the request also holds the
    edits that prevent them (`blocking.Unblock`, applied last, in the same batch).
    """
    holder = holding_daemon(store)
    if holder is not None and (dry_run or not force):
        if not dry_run:
            for edit in edits:
                edit.validate(store)
        return EditRequest(edits, holder, None)
    plans = plan(store, edits)
    if version is None or not any(p.matched for p in plans):
        return EditRequest(edits, holder, plans)
    now = int(time.time())
    frozen = [e.frozen(now) for e in edits]
    with store.connect() as conn:
        blocks = new_blocks(conn, store, frozen, now)
        if not blocks:
            return EditRequest(edits, holder, plans)
        found = version() if callable(version) else version
        if not found.scheduling_bugs:
            return EditRequest(edits, holder, plans)
        if not unblock:
            return EditRequest(edits, holder, plans, blocks)
        extra = unblock_edits(conn, store, frozen, blocks, now)
    plans += [Plan(edit, moved, []) for edit, moved in extra]
    return EditRequest([*edits, *(e for e, _ in extra)], holder, plans, blocks, True)


def replayed_rows(store: QueueStore, holder: DaemonInfo | None = None) -> int | None:
    """How many jobs a restarted daemon will replay, for the window's prediction: the
    table's rows, or the count a daemon holding the queue in memory tells (None when it
    does not answer: the prediction is left out, nothing else depends on it)."""
    if holder is None:
        with store.connect() as conn:
            return store.count(conn)
    try:
        return held_queue(holder).total
    except QueuetoolError:
        return None


def held_counts(
    store: QueueStore, edits: Sequence[Edit], holder: DaemonInfo
) -> Iterator[tuple[Edit, HeldQueue]]:
    """A dry run while `holder` holds the queue in memory, which must not stop it: each
    edit (validated) with the daemon's own counts for its filter, one at a time."""
    for edit in edits:
        edit.validate(store)
        yield edit, held_queue(holder, edit.job_filter)


@dataclass
class RestoreRequest:
    """A snapshot that may be restored onto a queue, and whose queue it was taken of."""

    info: SnapshotInfo
    same_queue: bool  # taken of this very queue and table

    @property
    def origin(self) -> str:
        """ " of QUEUE table T" when the snapshot is of another queue (every question then
        names both), else empty."""
        if self.same_queue:
            return ""
        return f" of {self.info.source} table {self.info.table}"

    def replaced(self, current_rows: int) -> str:
        """What a restore replaces: an undo only its own jobs, a whole snapshot every row."""
        if self.info.partial:
            return f"its {self.info.keys} jobs"
        return f"the {current_rows} rows"


def prepare_restore(
    store: QueueStore,
    snapshot: SnapshotInfo | str | os.PathLike[str],
    *,
    onto_other_queue: bool = False,
) -> RestoreRequest:
    """Refuse the snapshot (UsageError) unless it may go onto `store`: its own queue and
    table, or with `onto_other_queue` another one for a whole-table snapshot.

    `snapshot` is its manifest (`snapshot.read_manifest`) or its path; nothing else is
    read and nothing changes."""
    info = snapshot if isinstance(snapshot, SnapshotInfo) else read_manifest(snapshot)
    check_target(info, store, onto_other_queue)
    return RestoreRequest(info, same_queue(info, store))


def restore_dry_run(store: QueueStore, request: RestoreRequest) -> tuple[SnapshotVerification, int]:
    """A restore's dry run: the snapshot file checked against its manifest, and how many
    rows the table holds now; writes nothing."""
    checked = verify(request.info.path)
    with store.connect() as conn:
        store.require_table(conn)
        current = store.count(conn)
    return checked, current
