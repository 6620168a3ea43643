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

import sys
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
    """The queue table is missing or is not laid out the way gearmand needs, or its
    database cannot hold it (a PostgreSQL database whose encoding is not UTF8)."""


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


# -- an error as one line ----------------------------------------------------------------

# Errors of SQLAlchemy and of the drivers themselves: where queuetool uses a DB-API
# cursor directly (bulk copies, checksums, snapshots) SQLAlchemy does not wrap them, and
# a server that dies mid-command raises them too. They are looked up only among the
# modules already loaded: start-up imports none of them (`--help` must stay fast), and a
# module never imported cannot have raised.
SQLALCHEMY_ERROR = ("sqlalchemy.exc", "SQLAlchemyError")
DRIVER_ERROR_NAMES = (("pymysql.err", "Error"), ("sqlite3", "Error"), ("psycopg.errors", "Error"))


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """An exception class, if its module has been imported (None: it cannot have been raised)."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def driver_errors() -> tuple[type[BaseException], ...]:
    """The loaded drivers' own error classes (PyMySQL, sqlite3, psycopg)."""
    return tuple(e for e in (_loaded(m, n) for m, n in DRIVER_ERROR_NAMES) if e is not None)


def reported_errors() -> tuple[type[BaseException], ...]:
    """Every error that is reported as one line (`Error: ...` on the command line, an
    error counted by the exporter) rather than as a crash: queuetool's own, OSError,
    and SQLAlchemy's and the drivers' errors, those loaded."""
    sqlalchemy_error = _loaded(*SQLALCHEMY_ERROR)
    return (
        QueuetoolError,
        OSError,
        *((sqlalchemy_error,) if sqlalchemy_error else ()),
        *driver_errors(),
    )


def one_line(exc: BaseException) -> str:
    """An error as one line a person can read, with any password in it masked."""
    if _loaded(*SQLALCHEMY_ERROR) is not None:  # loaded: the error may be one of its own
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        from .table.store import db_message, mask_text

        if isinstance(exc, DBAPIError):
            return f"database error: {mask_text(db_message(exc))}"
        if isinstance(exc, SQLAlchemyError):  # e.g. a URL it cannot parse: mask it too
            return f"database error: {mask_text(_first_line(exc))}"
    if isinstance(exc, driver_errors()):
        from .table.store import mask_text

        # PyMySQL: (code, message); sqlite3 and psycopg: (message,). Closed: (0, "").
        args = exc.args
        text = args[1] if len(args) > 1 and isinstance(args[0], int) else args[0] if args else ""
        return f"database error: {mask_text(_first_line(text, type(exc).__name__))}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return _first_line(exc, type(exc).__name__)


def _first_line(text: object, empty: str = "") -> str:
    """The first non-blank line of `text` (`empty` when it has none)."""
    lines = str(text).strip().splitlines()
    return lines[0] if lines else empty
