"""Whether a file can be created in a directory, asked before anything is stopped."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cannot_create_in(directory: Path) -> str | None:
    """Why no file can be created in `directory` (an existing one), or None.

    os.access answers for other users, but root passes it everywhere, /proc and /sys
    included, where creating a file still fails. So a real file is made too: nameless
    (O_TMPFILE, or removed at once), it leaves nothing behind.
    """
    if not os.access(directory, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
