"""The command line: a thin click layer over the library.

Every command parses its options, calls one library function and renders the
result. Errors are turned into `Error: ...` and an exit code in exactly one place,
`QueuetoolGroup.invoke`; `--traceback` (or QUEUETOOL_TRACEBACK=1) shows the stack.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, TextIO

import click

from .. import __version__
from ..errors import QueuetoolError, QueuetoolWarning
from .options import env_flag

INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C

# Errors of SQLAlchemy and of the drivers themselves: where queuetool uses a DB-API
# cursor directly (bulk copies, checksums, snapshots) SQLAlchemy does not wrap them. A
# server that dies mid-command ends here too, as one line. They are looked up only
# among the modules a command has loaded: start-up imports none of them (`--help` must
# stay fast), and a module never imported cannot have raised.
SQLALCHEMY_ERROR = ("sqlalchemy.exc", "SQLAlchemyError")
DRIVER_ERROR_NAMES = (("pymysql.err", "Error"), ("sqlite3", "Error"), ("psycopg.errors", "Error"))


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """An exception class, if its module has been imported (None: it cannot have been raised)."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def driver_errors() -> tuple[type[BaseException], ...]:
    """The loaded drivers' own error classes (PyMySQL, sqlite3, psycopg)."""
    return tuple(e for e in (_loaded(m, n) for m, n in DRIVER_ERROR_NAMES) if e is not None)


def library_errors() -> tuple[type[BaseException], ...]:
    """What `Error: ...` reports besides QueuetoolError and OSError: SQLAlchemy's errors
    and the drivers', those loaded."""
    sqlalchemy_error = _loaded(*SQLALCHEMY_ERROR)
    return (*((sqlalchemy_error,) if sqlalchemy_error else ()), *driver_errors())


def handled() -> tuple[type[BaseException], ...]:
    """Every error that becomes the one line `Error: ...` and its exit code."""
    return (QueuetoolError, OSError, *library_errors())


class CommandError(click.ClickException):
    """A library error as click shows it: `Error: ...` and the error's own exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc] # click declares it a ClassVar


class QueuetoolGroup(click.Group):
    """The `queuetool` group: the one place where errors become a line and an exit code."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # Ctrl-C while the command line is parsed: the same one line as during a command
        # (click's own "Aborted!" would say exit 1).
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt as exc:
            if env_flag("QUEUETOOL_TRACEBACK"):
                raise
            click.echo("Aborted: interrupted", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from exc

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader (`| head`) went away: stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(1)
        except handled() as exc:
            if ctx.meta.get("traceback") or env_flag("QUEUETOOL_TRACEBACK"):
                raise
            raise CommandError(one_line(exc), exit_code_of(exc)) from exc
        except KeyboardInterrupt as exc:
            if ctx.meta.get("traceback") or env_flag("QUEUETOOL_TRACEBACK"):
                raise
            click.echo("Aborted: interrupted", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from exc


def one_line(exc: BaseException) -> str:
    """An error as the one line `Error: ...` shows (passwords masked)."""
    if _loaded(*SQLALCHEMY_ERROR) is not None:  # loaded: the error may be one of its own
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        from ..table.store import db_message, mask_text

        if isinstance(exc, DBAPIError):
            return f"database error: {mask_text(db_message(exc))}"
        if isinstance(exc, SQLAlchemyError):
            return f"database error: {str(exc).splitlines()[0]}"
    if isinstance(exc, driver_errors()):
        from ..table.store import mask_text

        # PyMySQL: (code, message); sqlite3: (message,). A closed connection: (0, "").
        args = exc.args
        text = args[1] if len(args) > 1 and isinstance(args[0], int) else args[0] if args else ""
        lines = str(text).strip().splitlines()
        return f"database error: {mask_text(lines[0]) if lines else type(exc).__name__}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def exit_code_of(exc: BaseException) -> int:
    """The documented exit code of an error (2 for what is not a QueuetoolError)."""
    return exc.exit_code if isinstance(exc, QueuetoolError) else 2


@click.group(cls=QueuetoolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="queuetool")
@click.option("--traceback", is_flag=True, help="Show the Python stack on errors.")
@click.pass_context
def main(ctx: click.Context, traceback: bool) -> None:
    """Inspect, repair and reshape gearmand's persistent job queue, safely.

    \b
    Example:
      queuetool report --queue sqlite:////var/lib/gearman/queue.db
    """
    ctx.meta["traceback"] = traceback
    _show_warnings_plainly()


def _show_warnings_plainly() -> None:
    """The library warns (it has no terminal); the CLI shows its warnings as `Warning: ...`."""
    original = warnings.showwarning
    if getattr(original, "queuetool", False):
        return

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, QueuetoolWarning):
            click.echo(f"Warning: {message}", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    show.queuetool = True  # type: ignore[attr-defined]
    warnings.showwarning = show
    warnings.simplefilter("always", QueuetoolWarning)


def _register() -> None:
    from . import daemon, edit, exporter, migrate, read, replay, schedule, snapshots, transfer

    for module in (read, edit, snapshots, daemon, migrate, replay, schedule, transfer, exporter):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
