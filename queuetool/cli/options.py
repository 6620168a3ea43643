"""Options shared by several commands, declared once, and the lazily connecting context."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

# Only light modules at the top: every command module imports this one, and `queuetool
# --help` must not pay for SQLAlchemy or a driver. The store, discovery and the filter
# are imported where they are first used.
from ..config import DEFAULT_KEEP, DEFAULT_TABLE, Config, Setting, load_config
from ..errors import Aborted, UsageError
from ..priority import Priority
from ..timeparse import parse_time

if TYPE_CHECKING:
    from ..daemon.discover import DaemonInfo
    from ..table.store import QueueStore

F = Callable[..., Any]


class LazyChoice(click.Choice):
    """A click.Choice whose choices are a library constant, read on first use (parsing
    the option, or its command's --help): declaring the option imports nothing."""

    def __init__(self, module: str, name: str) -> None:
        self.where = (module, name)  # e.g. ("queuetool.table.report", "GROUPINGS")
        self._choices: tuple[Any, ...] | None = None
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[Any, ...]:
        """The choices, read from their module on first use (it may be a heavy one)."""
        if self._choices is None:
            module, name = self.where
            self._choices = tuple(getattr(importlib.import_module(module), name))
        return self._choices

    @choices.setter
    def choices(self, value: Sequence[Any]) -> None:
        """Set by click.Choice's own __init__; kept for when they are read."""
        self._choices = tuple(value)


class Utf8Text(click.ParamType):
    """Text that is valid UTF-8. Python hands on undecodable argv bytes as lone
    surrogates, which crash later in a driver or a codec (SQL, URLs, hostnames), so
    they are refused here, naming the option."""

    name = "text"  # as click.STRING: --help shows the same

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        value = click.STRING.convert(value, param, ctx)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            from ..table.store import mask_text  # a URL's password is never shown

            self.fail(f"not valid UTF-8: '{mask_text(_shown(value), bare_ports=True)}'", param, ctx)
        return value


def _shown(value: str) -> str:
    """Undecodable text printable: its bytes as \\xNN escapes (as `ls -b` shows them)."""
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte made
        return value.encode("utf-8", "backslashreplace").decode()
    return raw.decode("utf-8", "backslashreplace")


class GearmandAddress(Utf8Text):
    """HOST:PORT of a gearmand, read as its connection will read it, so that a host that
    cannot be looked up (`a..b`, a 64-character label) is refused before anything runs."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..daemon.admin import Address

        value = super().convert(value, param, ctx)
        try:
            Address.parse(value)
        except UsageError as exc:
            self.fail(str(exc), param, ctx)
        return value


class CommandLine(Utf8Text):
    """A command line (`migrate --start-with`), split as a shell would when the option is
    read: unbalanced quotes are refused before the work it was to follow, not after."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..migrate.handover import split_command

        value = super().convert(value, param, ctx)
        try:
            split_command(value)
        except UsageError as exc:
            self.fail(str(exc).removeprefix("--start-with: "), param, ctx)
        return value


TEXT = Utf8Text()
GEARMAND = GearmandAddress()
COMMAND = CommandLine()

CONFIG_HELP = "TOML config file [default: ./queuetool.toml, else /etc/queuetool.toml]."
GEARMAND_HELP = "Admin address of the gearmand that owns the queue."


class AppContext:
    """What a command needs, resolved on first use and closed with the click context."""

    def __init__(self, params: dict[str, Any], sources: dict[str, str]) -> None:
        self.params = params
        self.sources = sources  # param name -> "option" / "env VAR"
        self._config: Config | None = None
        self._store: QueueStore | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.params.get("config"))
        return self._config

    def setting(self, param: str, section: str, key: str, default: Any = None) -> Setting:
        """A value with where it came from: option/env, then config, then default."""
        value = self.params.get(param)
        if value is not None:
            return Setting(value, self.sources.get(param, "option"))
        from_config = self.config.get(section, key)
        if from_config is not None:
            return Setting(from_config, self.config.source)
        return Setting(default, "default")

    @property
    def gearmand_address(self) -> str | None:
        """The daemon's admin address: --gearmand, QUEUETOOL_GEARMAND or [gearmand] address."""
        return self.setting("gearmand", "gearmand", "address").value

    def queue_setting(self) -> Setting:
        setting = self.setting("queue", "queue", "url")
        if setting.value is None:
            discovered = discover_queue(self)
            if discovered is not None:
                return discovered
        return setting

    def table_setting(self) -> Setting:
        setting = self.setting("table", "queue", "table")
        if setting.value is None:
            discovered = discover_table(self)
            if discovered is not None:
                return discovered
            from ..table.store import default_table

            return Setting(default_table(self.queue_setting().value), "default")
        return setting

    @property
    def store(self) -> QueueStore:
        if self._store is None:
            from ..table.store import open_store

            self._store = open_store(self.queue_setting().value, self.table_setting().value)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


# Discovery from a running gearmand (queuetool.discover) is the lowest-precedence
# source: it runs only when no option, env var or config names the queue. Each hook
# returns a Setting or None.
def discovered(app: AppContext) -> DaemonInfo | None:
    """The gearmand this command is about (cached): found by address, process or files."""
    if not hasattr(app, "_discovered"):
        from ..daemon.discover import discover

        address = app.gearmand_address
        app._discovered = discover(address)  # type: ignore[attr-defined]
    return app._discovered  # type: ignore[attr-defined]


def discover_queue(app: AppContext) -> Setting | None:
    """The queue URL of the gearmand this command is about, if one was found."""
    from ..daemon.discover import queue_url_of

    info = discovered(app)
    url = queue_url_of(info) if info is not None else None
    if info is None or url is None:
        return None
    return Setting(url, f"discovered from {info.source}")


def discover_table(app: AppContext) -> Setting | None:
    """The table of the gearmand found for the queue (only when it uses this queue)."""
    queue = app.queue_setting()
    if queue.value is not None and not queue.source.startswith("discovered"):
        # An explicit queue: the daemon's table only if that daemon uses this very queue.
        address = app.gearmand_address
        info = discovered(app) if address else None
        if info is None or info.options.queue_url != queue.value:
            return None
    info = discovered(app)
    if info is None or info.options.table is None:
        return None
    return Setting(info.options.table, f"discovered from {info.source}")


def _source(ctx: click.Context, name: str) -> str:
    source = ctx.get_parameter_source(name)
    if source is click.core.ParameterSource.ENVIRONMENT:
        param = next(p for p in ctx.command.params if p.name == name)
        return f"env {param.envvar}"
    return "option"


def config_option(help: str = CONFIG_HELP) -> Callable[[F], F]:
    """--config (QUEUETOOL_CONFIG): the TOML config file."""
    return click.option(
        "--config", envvar="QUEUETOOL_CONFIG", type=click.Path(dir_okay=False), help=help
    )


def gearmand_option(help: str = GEARMAND_HELP) -> Callable[[F], F]:
    """--gearmand (QUEUETOOL_GEARMAND): the admin address of the queue's daemon."""
    return click.option(
        "--gearmand", envvar="QUEUETOOL_GEARMAND", type=GEARMAND, metavar="HOST:PORT", help=help
    )


def dry_run_option(help: str = "Show what would change; change nothing.") -> Callable[[F], F]:
    """--dry-run: every command that writes can show what it would do instead."""
    return click.option("--dry-run", is_flag=True, help=help)


def yes_option(help: str = "Do not ask for confirmation.") -> Callable[[F], F]:
    """--yes/-y: go ahead without asking."""
    return click.option("--yes", "-y", is_flag=True, help=help)


def force_option(
    help: str = "Write even if the queue's gearmand seems to run (it may lose the change).",
) -> Callable[[F], F]:
    """--force: write although the queue's gearmand seems to run."""
    return click.option("--force", is_flag=True, help=help)


def queue_options(f: F) -> F:
    """--config, --queue, --table, --gearmand: every command that touches a queue."""

    @config_option()
    @click.option(
        "--queue",
        "-q",
        envvar="QUEUETOOL_QUEUE",
        type=TEXT,
        metavar="URL",
        help="Queue database: sqlite:////var/lib/gearman/queue.db or "
        "mysql+pymysql://USER:PASS@HOST:3306/DB.",
    )
    @click.option(
        "--table",
        envvar="QUEUETOOL_TABLE",
        type=TEXT,
        metavar="NAME",
        help=f"Queue table [default: {DEFAULT_TABLE}].",
    )
    @gearmand_option()
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        names = ("config", "queue", "table", "gearmand")
        params = {name: kwargs.pop(name) for name in names}
        sources = {name: _source(ctx, name) for name in names if params[name] is not None}
        app = AppContext(params, sources)
        ctx.call_on_close(app.close)
        return f(app, *args, **kwargs)

    return wrapper


def filter_options(f: F) -> F:
    """The job filter: every option narrows the selection further."""

    @click.option(
        "--function",
        "-f",
        "functions",
        multiple=True,
        type=TEXT,
        metavar="NAME",
        help="Function name or shell glob (repeat for any of several).",
    )
    @click.option(
        "--unique",
        "uniques",
        multiple=True,
        type=TEXT,
        metavar="GLOB",
        help="Unique key or shell glob.",
    )
    @click.option(
        "--priority",
        "-p",
        "priorities",
        multiple=True,
        type=click.Choice(["high", "normal", "low"], case_sensitive=False),
        help="Priority (repeatable).",
    )
    # Two flags, not click's --scheduled/--due switch, where the last one silently won
    # (`purge --scheduled --due` purged the due jobs): together they are refused.
    @click.option("--scheduled", is_flag=True, help="Only jobs whose when_to_run is in the future.")
    @click.option("--due", is_flag=True, help="Only jobs whose when_to_run has passed.")
    @click.option("--run-after", metavar="TIME", help="Only jobs with when_to_run >= TIME.")
    @click.option("--run-before", metavar="TIME", help="Only jobs with when_to_run < TIME.")
    @click.option(
        "--submitted-after",
        metavar="TIME",
        help="Only jobs whose UUIDv1 key (libgearman's own) says they were submitted at or "
        "after TIME; other keys never match.",
    )
    @click.option(
        "--submitted-before",
        metavar="TIME",
        help="Only jobs whose UUIDv1 key says they were submitted before TIME.",
    )
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..table.filters import JobFilter

        # Not `if after`: an empty TIME (an unset "$CUTOFF") must be refused, not dropped,
        # which would widen the filter to every job.
        after = kwargs.pop("run_after")
        before = kwargs.pop("run_before")
        sub_after = kwargs.pop("submitted_after")
        sub_before = kwargs.pop("submitted_before")
        scheduled, due = kwargs.pop("scheduled"), kwargs.pop("due")
        if scheduled and due:
            raise UsageError("--scheduled and --due exclude each other: choose one")
        kwargs["job_filter"] = JobFilter(
            functions=tuple(kwargs.pop("functions")),
            uniques=tuple(kwargs.pop("uniques")),
            priorities=tuple(Priority.parse(p) for p in kwargs.pop("priorities")),
            scheduled=True if scheduled else False if due else None,
            run_after=parse_time(after) if after is not None else None,
            run_before=parse_time(before) if before is not None else None,
            submitted_after=parse_time(sub_after) if sub_after is not None else None,
            submitted_before=parse_time(sub_before) if sub_before is not None else None,
        )
        return f(*args, **kwargs)

    return wrapper


def format_option(
    *extra: str, default: str = "table", choices: Sequence[str] | None = None
) -> Callable[[F], F]:
    """--format: table, json, csv (and `extra`), or exactly `choices`; every format is
    written by queuetool.render."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices) if choices else ["table", "json", "csv", *extra]),
        default=default,
        show_default=True,
        help="Output format.",
    )


def quiet_option(f: F) -> F:
    """--quiet: no progress or notes on stderr."""
    return click.option("--quiet", is_flag=True, help="No progress or notes on stderr.")(f)


def snapshot_options(f: F) -> F:
    """Where snapshots go: --snapshot-dir, else [snapshots] dir, else the state directory."""
    return click.option(
        "--snapshot-dir",
        envvar="QUEUETOOL_SNAPSHOT_DIR",
        type=click.Path(file_okay=False, path_type=Path),
        help="Snapshot directory [default: [snapshots] dir in the config, else "
        "~/.local/state/queuetool/snapshots].",
    )(f)


def write_options(f: F) -> F:
    """--dry-run, --yes, --force, --quiet and the snapshot directory: every command that writes."""
    for option in reversed(
        [
            dry_run_option(),
            yes_option(),
            force_option(),
            quiet_option,
            snapshot_options,
        ]
    ):
        f = option(f)
    return f


def snapshot_settings(
    app: AppContext, snapshot_dir: Path | None, check: bool = True
) -> tuple[Path | None, int]:
    """The snapshot directory (None: the default, created when missing) and `keep`.

    `check`: the directory must take a snapshot now (a configured one exists, any one
    is writable), so a command that writes is refused before a window stops gearmand,
    not when the snapshot is taken with the daemon down."""
    directory = snapshot_dir or app.setting("snapshot_dir", "snapshots", "dir").value
    keep = app.setting("keep", "snapshots", "keep", DEFAULT_KEEP).value
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise UsageError(f"[snapshots] keep must be a whole number of at least 1, not {keep!r}")
    path = Path(directory).expanduser() if directory else None
    if check:
        from ..changes.snapshot import snapshot_dir as usable_dir

        usable_dir(path)
    return path, keep


def confirm(question: str, yes: bool) -> None:
    """Ask on the terminal; without one (and without --yes) refuse."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Aborted(f"{question} Not confirmed: no terminal to ask on; add --yes to go ahead")
    if not click.confirm(question, default=False, err=True):
        raise Aborted("not confirmed: nothing changed")


def env_flag(name: str) -> bool:
    """Whether an environment variable is set to something other than empty/0/false/no."""
    return os.environ.get(name, "").lower() not in ("", "0", "false", "no")
