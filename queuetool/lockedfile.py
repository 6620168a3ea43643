"""Temporary files that are live while their writer holds an flock on them.

A killed writer (SIGKILL, a crash) leaves its temporary file behind, and the next run
removes it. Whether the writer still runs cannot be told by the pid in the name: in
another PID namespace sharing the directory (a container) a live pid looks dead. The
lock can: the kernel drops it when the writer dies, whatever the namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path

from .daemon.process import pid_alive


def create_locked(path: Path) -> int:
    """Create `path` (mode 0600, FileExistsError if it exists) and return a descriptor
    holding an flock on it: keep it open for the file's whole life and close it only
    after removing the file. The file is locked under a name no cleanup matches before
    it gets its own, so no cleanup ever sees it unlocked."""
    made = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
    fd = os.open(made, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.link(made, path)
    except BaseException:
        os.close(fd)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(made)
    return fd


def remove_locked(path: Path, fd: int) -> None:
    """Remove a file `create_locked` made, then drop its lock: in this order, so that
    no cleanup ever finds it there unlocked."""
    path.unlink(missing_ok=True)
    os.close(fd)


def remove_if_abandoned(path: Path, pid: int) -> bool:
    """Remove `path`, this user's, if no live writer holds it; True when removed.

    A file whose `pid` runs here is kept all the same: an older queuetool, which takes
    no lock, may be writing it."""
    if pid == os.getpid() or pid_alive(pid):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_uid != os.getuid():
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a live writer: fails
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
