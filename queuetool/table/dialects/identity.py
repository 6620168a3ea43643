"""Whether two names point at the same file or the same host (for the daemon guard)."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def same_file(a: Path, b: Path) -> bool:
    """Same file by inode when both exist (symlinks, bind mounts), else by resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


_LOCAL = {"", "localhost", "127.0.0.1", "::1", "localhost.localdomain"}


def same_host(a: str, b: str) -> bool:
    """Whether two host names are the same host (every name of this machine is one)."""

    def norm(host: str) -> str:
        host = host.lower().strip("[]")
        if host.startswith("/"):  # a Unix socket's directory: always this machine
            return "local"
        if host in _LOCAL or host == socket.gethostname().lower():
            return "local"
        return host

    return norm(a) == norm(b)
