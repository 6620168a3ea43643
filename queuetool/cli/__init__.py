"""The command line: a thin click layer over the library.

Every command parses its options, calls one library function and renders the
result. Errors, click's usage errors too, are turned into one line `Error: ...` and
an exit code in exactly one place, `QueuetoolGroup` (its `make_context` and `invoke`);
`--traceback` (or QUEUETOOL_TRACEBACK=1) shows the stack.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, TextIO

import click

from .. import __version__
from ..errors import QueuetoolError, QueuetoolWarning, one_line, reported_errors
from .options import env_flag

INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


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
        except click.exceptions.NoArgsIsHelpError:
            raise  # bare `queuetool`: click shows the help, as before
        except click.UsageError as exc:
            raise one_line_usage(exc) from exc
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
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # a command's own options, parsed in here
            raise one_line_usage(exc) from exc
        except reported_errors() as exc:
            if ctx.meta.get("traceback") or env_flag("QUEUETOOL_TRACEBACK"):
                raise
            raise CommandError(one_line(exc), exit_code_of(exc)) from exc
        except KeyboardInterrupt as exc:
            if ctx.meta.get("traceback") or env_flag("QUEUETOOL_TRACEBACK"):
                raise
            click.echo("Aborted: interrupted", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from exc


def one_line_usage(exc: click.UsageError) -> CommandError:
    """click's usage error (`Usage: ...`, `Try ...`, a blank line, `Error: ...`) as the one
    line every other error is, the pointer to the help kept at its end."""
    from ..table.store import mask_text

    # Some span lines ("Missing option '--to'. Choose from:\n\thigh,\n..."): join them.
    # A URL in one ("unexpected extra argument (mysql://u:PASS@h/db)") is masked.
    message = mask_text(" ".join(exc.format_message().split()).removesuffix("."), bare_ports=True)
    hint = f" ({exc.ctx.command_path} -h for help)" if exc.ctx is not None else ""
    return CommandError(message + hint, exc.exit_code)


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
