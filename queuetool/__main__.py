"""The `queuetool` command (and `python -m queuetool`).

Ctrl-C at any moment, even while a command's modules are still being imported, ends as
the one line `Aborted: interrupted` and exit 130 (128 + SIGINT), never a traceback. So
this module imports nothing of queuetool's before its guard is in place.
"""

from __future__ import annotations

import os
import sys


def run() -> None:
    """Parse the command line and run the command (the console script's entry point)."""
    try:
        from .cli import main

        main(prog_name="queuetool")
    except KeyboardInterrupt:
        if os.environ.get("QUEUETOOL_TRACEBACK", "").lower() not in ("", "0", "false", "no"):
            raise
        sys.stderr.write("Aborted: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    run()
