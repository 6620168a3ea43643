"""Find gearmand on this host and work out which queue it uses.

A running daemon is found by its admin address (`getpid`) or by scanning
/proc/*/cmdline; its command line (plus its own `--config-file`, default
/etc/gearmand.conf) says where the queue is, the port, the listen address, the pid
file and the replay-relevant settings. When no daemon runs, Debian's
/etc/default/gearman-job-server PARAMS say how it would be started.

Nothing here signals or changes a process: it only reads.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..table.dialects import DIALECTS, Dialect, dialect_for_queue_type
from .admin import DEFAULT_PORT, Address, answers
from .process import PROC, is_gearmand, read_cmdline

GEARMAND_CONF = Path("/etc/gearmand.conf")
DEBIAN_DEFAULTS = Path("/etc/default/gearman-job-server")
# What Debian's unit adds in front of $PARAMS (gearman-job-server.service).
DEBIAN_UNIT_ARGS = ("/usr/sbin/gearmand", "--pid-file=/run/gearman/gearmand.pid")
DEFAULT_BUCKETS = 991

# gearmand's short options (boost::program_options names in gearmand.cc and the Gear
# protocol plugin): these take a value, the flags below do not.
SHORT_VALUE = {
    "b": "backlog",
    "f": "file-descriptors",
    "j": "job-retries",
    "l": "log-file",
    "L": "listen",
    "P": "pid-file",
    "r": "protocol",
    "q": "queue-type",
    "t": "threads",
    "u": "user",
    "w": "worker-wakeup",
    "p": "port",
}
SHORT_FLAG = {"d": "daemon", "R": "round-robin", "h": "help", "V": "version"}
LONG_FLAGS = {
    "daemon",
    "exceptions",
    "keepalive",
    "round-robin",
    "syslog",
    "coredump",
    "store-queue-on-shutdown",
    "check-args",
    "ssl",
    "help",
    "version",
}


@dataclass(frozen=True)
class GearmandOptions:
    """The settings of one gearmand command line that queuetool cares about.

    `values` holds every long option as given (first occurrence wins, as in
    boost::program_options, so the command line beats the config file).
    """

    argv: tuple[str, ...]
    values: dict[str, str | bool] = field(default_factory=dict)
    cwd: Path | None = None  # gearmand does not chdir: relative paths are from here
    # What libpq takes from the process: its PG* variables (PGPASSWORD too: never in a
    # repr) and its effective user, whose ~/.pgpass it reads. Empty/None: not running.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    uid: int | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else default

    def flag(self, name: str) -> bool:
        return self.values.get(name) is True

    @property
    def queue_type(self) -> str:
        return (self.get("queue-type") or "builtin").lower()

    @property
    def port(self) -> int:
        return _int(self.get("port"), DEFAULT_PORT, "--port")

    @property
    def listen(self) -> str | None:
        return self.get("listen")

    @property
    def address(self) -> Address:
        """Where to reach the admin port from this host."""
        host = self.listen
        if host in (None, "", "0.0.0.0", "::", "*", "localhost"):
            host = "127.0.0.1"
        return Address(host, self.port)

    @property
    def pid_file(self) -> Path | None:
        value = self.get("pid-file")
        return self.path(value) if value else None

    @property
    def config_file(self) -> str | None:
        return self.get("config-file")

    @property
    def store_queue_on_shutdown(self) -> bool:
        return self.flag("store-queue-on-shutdown")

    @property
    def hashtable_buckets(self) -> int:
        return _int(self.get("hashtable-buckets"), DEFAULT_BUCKETS, "--hashtable-buckets")

    @property
    def dialect(self) -> Dialect | None:
        """The dialect of the daemon's queue type, None for one queuetool cannot use."""
        return dialect_for_queue_type(self.queue_type)

    @property
    def backend(self) -> str | None:
        """The dialect's name (`sqlite`, `mysql`), or None for a queue queuetool cannot use."""
        return self.dialect.NAME if self.dialect else None

    @property
    def database_file(self) -> Path | None:
        """The file that holds the queue (--libsqlite3-db), None for a server."""
        return self.dialect.daemon_database_file(self) if self.dialect else None

    @property
    def table(self) -> str | None:
        return self.dialect.daemon_table(self) if self.dialect else None

    @property
    def queue_url(self) -> str | None:
        """The queue as a URL queuetool can open, or None (builtin, Redis, Postgres...)."""
        return self.dialect.daemon_queue_url(self) if self.dialect else None

    def why_no_queue(self) -> str | None:
        """Why this daemon has no queue queuetool can open, or None: it has one, or it
        keeps its jobs in memory only (builtin), which is no queue to name."""
        if self.queue_url is not None or self.queue_type == "builtin":
            return None
        if self.dialect is None:
            known = " or ".join(d.QUEUE_TYPE for d in DIALECTS.values())
            return (
                f"uses queue type {self.queue_type!r}, which queuetool cannot use "
                f"(it reads {known} queues)"
            )
        return f"names no {self.dialect.DAEMON_QUEUE_OPTION} on its command line"

    def number(self, name: str, default: int) -> int:
        """The option `--name` as a number; a UsageError when it is not one."""
        return _int(self.get(name), default, f"--{name}")

    def path(self, value: str) -> Path:
        """A path from the command line: relative to the daemon's working directory."""
        path = Path(value)
        if not path.is_absolute() and self.cwd is not None:
            path = self.cwd / path
        return path


@dataclass(frozen=True)
class DaemonInfo:
    """A gearmand found on this host (pid None: not running, read from its start-up files)."""

    pid: int | None
    options: GearmandOptions
    source: str  # "gearmand pid 123", "/etc/default/gearman-job-server (daemon not running)"

    @property
    def argv(self) -> tuple[str, ...]:
        return self.options.argv


def _int(value: str | None, default: int, name: str) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"gearmand's {name} is not a number: {value!r}") from None


# -- command lines -------------------------------------------------------------------


def parse_args(args: list[str] | tuple[str, ...]) -> tuple[dict[str, str | bool], list[str]]:
    """gearmand's options as {long name: value or True}; first occurrence wins.

    Returns the options and the `@file` arguments (gearmand's other spelling of
    --config-file). Accepts `--opt=value`, `--opt value`, `-p 4730`, `-p4730` and
    grouped flags such as `-dR`, as boost::program_options does.
    """
    values: dict[str, str | bool] = {}
    at_files: list[str] = []
    i = 0

    def put(name: str, value: str | bool) -> None:
        values.setdefault(name, value)

    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            if eq:
                put(name, value)
            elif name in LONG_FLAGS:
                put(name, True)
            elif i < len(args) and not args[i].startswith("-"):
                put(name, args[i])
                i += 1
            else:
                put(name, True)
        elif arg.startswith("-") and len(arg) > 1:
            chars = arg[1:]
            for pos, char in enumerate(chars):
                if char in SHORT_VALUE:
                    rest = chars[pos + 1 :]
                    if rest:
                        put(SHORT_VALUE[char], rest)
                    elif i < len(args):
                        put(SHORT_VALUE[char], args[i])
                        i += 1
                    break
                put(SHORT_FLAG.get(char, char), True)
        elif arg.startswith("@"):
            at_files.append(arg[1:])
    return values, at_files


def config_file_args(path: Path) -> list[str] | None:
    """The tokens of a gearmand config file (split on blanks, as gearmand does), or None."""
    try:
        return path.read_text().split()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None


def options_from_argv(
    argv: list[str] | tuple[str, ...],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    uid: int | None = None,
) -> GearmandOptions:
    """Parse a gearmand command line, then its config file (command line wins)."""
    values, at_files = parse_args(list(argv[1:]))
    if "config-file" not in values and at_files:
        values["config-file"] = at_files[0]
    conf = values.get("config-file")
    conf_path = Path(conf) if isinstance(conf, str) else GEARMAND_CONF
    if not conf_path.is_absolute() and cwd is not None:
        conf_path = cwd / conf_path
    extra = config_file_args(conf_path)
    if extra:
        from_file, _ = parse_args(extra)
        for name, value in from_file.items():
            values.setdefault(name, value)
    return GearmandOptions(tuple(argv), values, cwd, dict(env or {}), uid)


def debian_params(path: Path = DEBIAN_DEFAULTS) -> list[str] | None:
    """PARAMS from Debian's /etc/default/gearman-job-server, parsed without running it."""
    try:
        text = path.read_text()
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return None
    # Line continuations, then shell words: `PARAMS="..."` becomes one word `PARAMS=...`.
    text = text.replace("\\\n", " ")
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return None
    params = [w.partition("=")[2] for w in words if w.startswith("PARAMS=")]
    return shlex.split(params[-1]) if params else None


# -- processes -----------------------------------------------------------------------


def process_info(pid: int, proc: Path = PROC) -> DaemonInfo | None:
    """The gearmand with this pid, or None when it is not a (visible) gearmand."""
    argv = read_cmdline(pid, proc)
    if argv is None or not is_gearmand(argv):
        return None
    try:
        cwd: Path | None = Path(os.readlink(proc / str(pid) / "cwd"))
    except OSError:
        cwd = None
    env, uid = libpq_environment(pid, proc)
    return DaemonInfo(pid, options_from_argv(argv, cwd, env, uid), f"gearmand pid {pid}")


def libpq_environment(pid: int, proc: Path = PROC) -> tuple[dict[str, str], int | None]:
    """The PG* variables a process was started with (/proc/PID/environ: libpq reads
    them for conninfo fields the command line leaves out) and its effective uid (whose
    ~/.pgpass libpq reads); ({}, None) for what cannot be read (another user's process
    when queuetool is not root)."""
    try:
        uid: int | None = (proc / str(pid)).stat().st_uid
    except OSError:
        uid = None
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return {}, uid
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key.startswith(b"PG"):
            env[os.fsdecode(key)] = os.fsdecode(value)
    return env, uid


def local_daemons(proc: Path = PROC) -> list[DaemonInfo]:
    """Every gearmand process visible in /proc, by pid."""
    found = []
    try:
        entries = list(proc.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            info = process_info(int(entry.name), proc)
            if info is not None:
                found.append(info)
    return sorted(found, key=lambda d: d.pid or 0)


def configured_daemon(
    defaults: Path = DEBIAN_DEFAULTS, conf: Path = GEARMAND_CONF
) -> DaemonInfo | None:
    """How the packaged gearmand would start (for a host where it is down), or None."""
    params = debian_params(defaults)
    if params is None and not conf.is_file():
        return None
    argv = (*DEBIAN_UNIT_ARGS, *(params or []))
    options = options_from_argv(argv, Path("/"))
    where = defaults if params is not None else conf
    return DaemonInfo(None, options, f"{where} (gearmand not running)")


def discover(
    address: str | Address | None = None,
    proc: Path = PROC,
    defaults: Path = DEBIAN_DEFAULTS,
    conf: Path = GEARMAND_CONF,
) -> DaemonInfo | None:
    """The gearmand whose queue queuetool should use, or None when there is none.

    With an admin address, the daemon that answers `getpid` there (None when it does
    not answer or is not a local process). Without one: the only local gearmand; with
    several, a UsageError asks which; with none, the packaged start-up files.
    """
    if address is not None:
        pid = answers(address)
        if pid is None:
            return None
        info = process_info(pid, proc)
        if info is None:
            return None
        return DaemonInfo(info.pid, info.options, f"gearmand pid {pid} (answering at {address})")
    found = local_daemons(proc)
    daemons = [d for d in found if d.options.queue_url is not None]
    if len(daemons) > 1:
        listing = ", ".join(f"pid {d.pid} ({d.options.address})" for d in daemons)
        raise UsageError(
            f"several gearmand processes run here ({listing}): name one with "
            "--gearmand HOST:PORT, or the queue with --queue"
        )
    if daemons:
        return daemons[0]
    # None usable: the one running with a queue queuetool cannot use says so (queue_url_of).
    unusable = [d for d in found if d.options.why_no_queue() is not None]
    if len(unusable) == 1:
        return unusable[0]
    return configured_daemon(defaults, conf)


def queue_url_of(info: DaemonInfo) -> str | None:
    """The queue URL of a discovered gearmand; None when it keeps its jobs in memory
    (builtin). A UsageError saying which queue type it uses when queuetool cannot use
    that queue (Redis, PostgreSQL, ... with no dialect here), instead of "no queue"."""
    problem = info.options.why_no_queue()
    if problem is not None:
        raise UsageError(
            f"{info.source} {problem}: name the queue with --queue URL, QUEUETOOL_QUEUE or "
            "[queue] url in the config"
        )
    return info.options.queue_url
