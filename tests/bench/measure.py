"""Run a command in a child process and measure its wall time and peak memory (RSS).

Linux hands a forked child its parent's RSS high-water mark, so the max RSS of a
direct child of this (large) benchmark process would include our own. The command
therefore runs under a small Python wrapper, and the figure is the wrapper's child's
(which still inherits the wrapper's ~11 MB: the figure errs high by that much).

The command runs with Python's bytecode cache on (in a directory of its own, so no
__pycache__ lands in the tree), as an installed queuetool has it: with
PYTHONDONTWRITEBYTECODE set, as it can be in a development shell, every queuetool
module was compiled again at each start, ~0.45 s of a 0.5 s start-up that no
deployment pays (measured: a tiny `queuetool import` 0.90-0.99 s, 0.50-0.54 s cached).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

WRAPPER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


@dataclass
class Measured:
    seconds: float
    peak_mb: float
    returncode: int
    stdout: str


PYCACHE = os.path.join(tempfile.gettempdir(), "queuetool-bench-pycache")


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**out, "PYTHONPYCACHEPREFIX": PYCACHE, **(env or {})}


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> Measured:
    with tempfile.NamedTemporaryFile("r", suffix=".maxrss") as report:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", WRAPPER, report.name, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_environment(env),
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        peak_kb = int(report.read() or 0)
    return Measured(seconds, peak_kb / 1024, proc.returncode, proc.stdout)
