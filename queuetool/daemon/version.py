"""Which gearmand version a queue belongs to, and which of its scheduling bugs apply.

Two bugs of gearmand before 2.0.0 decide whether a scheduled job ever runs
(GEARMAND.md): a due job is not handed out until the sleeping workers are woken, and
a higher priority list holding only scheduled jobs starves the lower lists of its
function. Both were fixed in 2.0.0. The version comes from the daemon itself (admin
`version`) when it answers, else from `gearmand --version` of the binary in its
command line (the running process, or the one `queuetool stop` captured), else of
the gearmand on PATH. Unknown means "assume 1.1.x": warning needlessly is cheaper
than a frozen backlog nobody was told about.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import AdminCommandError, DaemonUnreachable, NotGearmand
from .admin import Address, AdminClient, version_tuple

FIXED_IN = (2, 0, 0)


@dataclass(frozen=True)
class DaemonVersion:
    """A gearmand version and where it was learnt (`text` None: unknown)."""

    text: str | None
    source: str

    @property
    def known(self) -> bool:
        return self.text is not None

    @property
    def scheduling_bugs(self) -> bool:
        """True on 1.1.x (and when unknown): scheduled jobs need wake-ups and can block
        the lower priority lists of their function."""
        return self.text is None or version_tuple(self.text) < FIXED_IN

    def label(self) -> str:
        return f"gearmand {self.text}" if self.text else "gearmand (version unknown)"


def binary_version(binary: str | None = None) -> str | None:
    """`gearmand --version` of `binary` (default: the gearmand on PATH), e.g. `1.1.20+ds`."""
    binary = binary or shutil.which("gearmand") or "/usr/sbin/gearmand"
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.split()
    return words[1] if len(words) > 1 and words[0] == "gearmand" else None


def daemon_version(
    address: str | Address | None = None,
    argv: Sequence[str] | None = None,
    timeout: float = 2.0,
) -> DaemonVersion:
    """The version of the gearmand at `address` (admin `version`), else of the binary
    `argv[0]` names (its captured command line), else of the gearmand on PATH."""
    if address is not None:
        try:
            with AdminClient(address, timeout) as client:
                return DaemonVersion(client.version(), f"admin `version` at {address}")
        except (DaemonUnreachable, NotGearmand, AdminCommandError):
            pass
    if argv:
        found = binary_version(argv[0])
        if found is not None:
            return DaemonVersion(found, f"`{argv[0]} --version`")
    found = binary_version()
    if found is not None:
        return DaemonVersion(found, "`gearmand --version` on PATH")
    return DaemonVersion(None, "no daemon answered and no gearmand binary was found")


def queue_daemon_version(
    store: object, address: str | None = None, state_dir: object = None
) -> DaemonVersion:
    """The version of the gearmand that owns `store` (a QueueStore): the running one
    (by its address and binary), else the command line `queuetool stop` captured."""
    from ..errors import QueuetoolError
    from .state import DaemonState, state_path
    from .stop import find_daemon

    argv: Sequence[str] | None = None
    try:
        info = find_daemon(store, address)  # type: ignore[arg-type]
    except QueuetoolError:
        info = None
    if info is not None:
        address = address or str(info.options.address)
        argv = info.argv
    else:
        try:
            state = DaemonState.load(state_path(store, state_dir))  # type: ignore[arg-type]
        except QueuetoolError:
            state = None
        if state is not None:
            argv = state.argv or None
            address = address or state.address or None
    return daemon_version(address, argv)
