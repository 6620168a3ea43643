"""After a migration: the gearmand options for the new queue, and starting gearmand on it."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..daemon.discover import options_from_argv
from ..daemon.process import shown_command
from ..daemon.start import StartResult, start
from ..daemon.stop import StopResult, stop
from ..errors import UsageError
from ..table.store import QueueStore

MASK = "*****"


def gearmand_options(store: QueueStore, show_password: bool = False) -> list[str]:
    """The exact `-q ...` options that make gearmand use this queue table."""
    mask = None if show_password else MASK
    return store.dialect.gearmand_options(store.url, store.table_name, mask)


def command_line(options: list[str]) -> str:
    """Options as one shell-quoted line, ready to paste."""
    return " ".join(shlex.quote(o) for o in options)


def start_with(store: QueueStore, command: str) -> StartResult:
    """Run `command` (a gearmand command line or a service command) and verify that the
    daemon it starts replays exactly the table's jobs (prioritystatus vs GROUP BY)."""
    address = options_from_argv(split_command(command)).address
    return start(store, address=str(address), start_command=command)


def split_command(command: str) -> list[str]:
    """`--start-with`'s words, split as a shell would; a UsageError for unbalanced quotes
    or no command (the CLI calls this on reading the option, before the copy)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise UsageError(f"--start-with: {exc}: {shown_command(command)!r}") from None
    if not argv:
        raise UsageError("--start-with: no command given")
    return argv


@contextmanager
def source_stopped(
    store: QueueStore,
    *,
    address: str | None = None,
    drain: float | None = None,
    stop_command: str | None = None,
    start_command: str | None = None,
    state_dir: Path | None = None,
) -> Iterator[StopResult]:
    """Stop the source queue's gearmand for a migration (a moving queue cannot be
    copied); if the migration fails, start it again on the source, which a
    migration never changes, so nothing is lost either way.

    After a successful migration the old daemon stays stopped: restarted on the old
    queue it would run the same jobs the new queue now holds.
    """
    stopped = stop(
        store, address=address, drain=drain, stop_command=stop_command, state_dir=state_dir
    )
    try:
        yield stopped
    except BaseException:
        if not stopped.already_stopped:
            start(
                store,
                address=address,
                start_command=start_command,
                state_dir=state_dir,
                stopped_at=stopped.stopped_at,
            )
        raise
