"""One error hierarchy for the library; the CLI turns it into `Error: ...` and an exit code.

Exit codes (documented in the README):
  0  success
  1  `check` found problems / a verification found a difference
  2  bad input, configuration, connection or schema error
  3  aborted: the change was not confirmed
  4  refused: the queue's gearmand is running
  5  the change failed verification or the daemon did not reload it (rolled back)
"""

from __future__ import annotations


class QueuetoolError(Exception):
    """Base class: the message is one line a person can act on."""

    exit_code = 2


class UsageError(QueuetoolError):
    """The request itself is wrong (bad filter, time, option combination)."""


class ConfigError(QueuetoolError):
    """The configuration file or environment is wrong."""


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


class VerifyError(QueuetoolError):
    """A change did not verify (counts, checksums, reload); it was not kept."""

    exit_code = 5


class ProblemsFound(QueuetoolError):
    """A check found rows gearmand cannot replay."""

    exit_code = 1
