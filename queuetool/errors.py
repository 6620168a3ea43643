"""One error hierarchy for the library; the CLI turns it into `Error: ...` and an exit code.

Exit codes (documented in the README):
  0  success
  1  `check` found problems / a verification found a difference
  2  bad input, configuration, connection or schema error (also: a gearmand address
     that is not the queue's own daemon)
  3  aborted: the change was not confirmed
  4  refused: the queue's gearmand is running, or `start` on a queue migrated away from
  5  the change failed verification or the daemon did not reload it (rolled back)
  6  gearmand could not be stopped or started (stop/start command failed, timed out)
  130  interrupted (Ctrl-C), in the CLI only
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .changes.apply import EditResult
    from .daemon.start import StartResult


class QueuetoolError(Exception):
    """Base class: the message is one line a person can act on."""

    exit_code = 2
    #: Set by a maintenance window that failed after its edit was applied (whatever
    #: the failure's class): the edit's result, so its snapshot can still be named.
    edit_result: EditResult | None = None


class UsageError(QueuetoolError):
    """The request itself is wrong (bad filter, time, option combination)."""


class ConfigError(QueuetoolError):
    """The configuration file or environment is wrong."""


class WrongDaemon(ConfigError):
    """The gearmand address given for the queue answers for another queue's daemon, or
    does not answer while the queue's own daemon runs elsewhere: nothing is stopped."""


class ConnectError(QueuetoolError):
    """The queue database or the daemon cannot be reached."""


class SchemaError(QueuetoolError):
    """The queue table is missing or is not laid out the way gearmand needs."""


class Aborted(QueuetoolError):
    """The operator did not confirm a change."""

    exit_code = 3


class DaemonRunning(QueuetoolError):
    """A gearmand that owns this queue is running: writing now would be lost or clobbered."""

    exit_code = 4


class MigratedAway(QueuetoolError):
    """`start` on a queue whose jobs were migrated to another: they would run twice."""

    exit_code = 4


class VerifyError(QueuetoolError):
    """A change did not verify (counts, checksums, reload); it was not kept.

    `result` is the start whose reload did not verify (`daemon.start`), else None.
    """

    exit_code = 5

    def __init__(self, message: str, result: StartResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class ProblemsFound(QueuetoolError):
    """A check found rows gearmand cannot replay."""

    exit_code = 1


class DaemonUnreachable(ConnectError):
    """gearmand's admin port could not be used (refused, timed out, or not a gearmand)."""


class DaemonRefused(DaemonUnreachable):
    """Nothing listens on the admin address: the daemon is down or the address is wrong."""


class DaemonTimeout(DaemonUnreachable):
    """The daemon accepted the connection but did not answer in time (often: still replaying)."""


class NotGearmand(DaemonUnreachable):
    """Something answered on the address, but not with gearmand's admin protocol."""


class AdminCommandError(QueuetoolError):
    """gearmand answered an admin command with `ERR CODE message`."""

    def __init__(self, command: str, code: str, message: str = "") -> None:
        self.command = command
        self.code = code
        super().__init__(
            f"gearmand refused {command!r}: {code}" + (f" ({message})" if message else "")
        )


class DaemonError(QueuetoolError):
    """gearmand could not be stopped or started the way it was asked to be."""

    exit_code = 6


class SnapshotError(QueuetoolError):
    """A snapshot could not be written or read (directory, permissions, disk full, not a
    snapshot); when it happens before an edit, the edit does not start."""


class QueuetoolWarning(UserWarning):
    """Something the operator must hear about that does not stop the command (stderr)."""
