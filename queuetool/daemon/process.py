"""What /proc and the cgroup tree say about a process: its command line, whether it
lives, who owns it, its systemd service, its uptime; whether a port still listens; and
running the operator's stop/start command.

Nothing here knows about queues: discover.py and guard.py build on these readers.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from ..errors import DaemonError, DaemonRefused, DaemonUnreachable
from .admin import Address, open_socket

PROC = Path("/proc")
COMMAND_TIMEOUT = 120.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
# gearmand's --mysql-password VALUE (or =VALUE), password=VALUE in a libpq conninfo or
# PGPASSWORD=, MYSQL_PWD= before the command; a value quoted, or left unclosed (to the end).
_PASSWORD_IN_COMMAND = re.compile(
    r"(--mysql-password(?:\s*=\s*|\s+)|password\s*=\s*|mysql_pwd\s*=\s*)"
    r"('[^']*'?|\"[^\"]*\"?|[^\s'\"]+)",
    re.IGNORECASE,
)


def shown_command(command: str) -> str:
    """An operator's stop or start command as messages show it: passwords masked, in
    options and in any URL it holds."""
    from ..table.store import mask_text

    return mask_text(_PASSWORD_IN_COMMAND.sub(r"\1***", command))


def read_cmdline(pid: int, proc: Path = PROC) -> tuple[str, ...] | None:
    """A process's command line from /proc; None when it is gone or has none."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None  # a kernel thread, or a zombie
    return tuple(p.decode("utf-8", "surrogateescape") for p in raw.rstrip(b"\0").split(b"\0"))


def is_gearmand(argv: tuple[str, ...]) -> bool:
    """Whether a command line runs gearmand (by its program's name)."""
    return bool(argv) and os.path.basename(argv[0]) in ("gearmand", "gearmand.bin")


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; only its parent has not reaped it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def port_open(address: Address) -> bool:
    """Whether something still listens on the address (a refusal is the only no)."""
    try:
        with open_socket(address, 1.0):
            return True
    except DaemonRefused:
        return False
    except DaemonUnreachable:
        return True  # accepted but slow: something still listens


def owner(pid: int) -> tuple[int | None, int | None]:
    """The uid and gid a process runs as; (None, None) when it is gone."""
    try:
        st = os.stat(f"/proc/{pid}")
        return st.st_uid, st.st_gid
    except OSError:
        return None, None


def service_unit(pid: int, proc: Path = PROC, cgroup_root: Path = CGROUP_ROOT) -> str | None:
    """The systemd service that runs gearmand `pid` as its own program, if any (its
    Restart= may start it again behind queuetool's back).

    A service whose cgroup holds other programs too (cron.service, a CI runner's unit)
    only happens to contain a gearmand started from it, by hand or by queuetool's own
    restart: stopping that unit is not the way to stop gearmand, so it is not named.
    """
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3 or parts[1] not in ("", "name=systemd"):  # v2, or v1's systemd
            continue
        path = parts[2]
        units = [p for p in path.split("/") if p.endswith(".service") and not p.startswith("user@")]
        if units and not _shared_cgroup(path, proc, cgroup_root):
            return units[-1]
    return None


def _shared_cgroup(path: str, proc: Path, cgroup_root: Path) -> bool:
    """Whether a program other than gearmand is in this cgroup (False when unreadable)."""
    rel = path.strip("/")
    for base in (cgroup_root, cgroup_root / "unified", cgroup_root / "systemd"):
        try:
            pids = (base / rel / "cgroup.procs").read_text().split()
        except OSError:
            continue
        return any(not is_gearmand(read_cmdline(int(p), proc) or ()) for p in pids)
    return False


def uptime(pid: int) -> float | None:
    """Seconds since the process started, from /proc (None when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return max(0.0, time.time() - started)


def run_command(command: str, what: str) -> None:
    """Run the operator's stop or start command (`what` names it in errors); a
    DaemonError when it fails or times out."""
    try:
        done = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise DaemonError(
            f"the {what} command did not finish in {COMMAND_TIMEOUT:g}s: {shown_command(command)}"
        ) from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()
        raise DaemonError(
            f"the {what} command failed (exit {done.returncode}): {shown_command(command)}"
            + (f": {output[-1]}" if output else "")
        )
