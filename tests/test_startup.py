"""Start-up: a command pays only for what it uses, and Ctrl-C at any moment is one line.

Every check runs a fresh interpreter: what a module imports shows only in a process
that has imported nothing yet.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from click.testing import CliRunner

from queuetool.cli import main

CLI_DIR = Path(__file__).resolve().parent.parent / "queuetool" / "cli"
CLI_MODULES = sorted(
    "queuetool.cli" + ("" if p.stem == "__init__" else f".{p.stem}") for p in CLI_DIR.glob("*.py")
)
# What `--help` must not pay for: the database layer, the drivers, the exporter's and
# the table renderer's libraries.
HEAVY = ("sqlalchemy", "pymysql", "psycopg", "prometheus_client", "tabulate")
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("QUEUETOOL_")}


def python(code: str, *args: str, **kwargs) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=CLEAN_ENV,
        **kwargs,
    )


# What the process had imported when it ended, printed last on stderr.
LOADED_AT_EXIT = textwrap.dedent(
    f"""
    import atexit, sys
    atexit.register(
        lambda: print("loaded:", [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)
    )
    """
)


@pytest.mark.parametrize("module", CLI_MODULES)
def test_every_command_module_imports_without_the_database_layer(module):
    ran = python(f"import sys, {module}; print([m for m in {HEAVY!r} if m in sys.modules])")
    assert (ran.returncode, ran.stderr) == (0, "")
    assert ran.stdout == "[]\n"


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["check", "--help"], ["jobs", "--help"]]
)
def test_help_and_version_import_no_database_layer(args):
    code = LOADED_AT_EXIT + "from queuetool.__main__ import run\nrun()\n"
    ran = python(code, *args)
    assert ran.returncode == 0
    assert ran.stderr == "loaded: []\n"
    if args == ["--version"]:
        assert ran.stdout == "queuetool, version 0.1.0\n"


def test_the_help_listing_still_shows_every_command_with_its_short_help():
    ran = python("from queuetool.__main__ import run\nrun()\n", "--help")
    assert ran.returncode == 0
    listed = ran.stdout.split("Commands:\n", 1)[1].splitlines()
    names = sorted(line.split()[0] for line in listed if line.strip())
    assert names == sorted(main.commands)
    assert all(len(line.split()) > 1 for line in listed if line.strip())  # each has its help


def test_a_choice_from_the_library_is_read_when_used():
    # report --by's choices are table.report's GROUPINGS, loaded only by report itself.
    result = CliRunner().invoke(main, ["report", "--by", "nonsense", "-q", "sqlite:///x"])
    assert result.exit_code == 2
    assert "'nonsense' is not one of 'function', 'priority', 'function,priority'" in (result.output)


def test_the_console_script_is_guarded():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "queuetool"]
    assert script.value == "queuetool.__main__:run"


# Ctrl-C while a module is being imported: a finder on sys.meta_path that, at the
# import of BLOCK, says so on the pipe and waits; the test then sends SIGINT, which
# interrupts the import exactly there. Deterministic: no timing luck.
BLOCKING_IMPORT = textwrap.dedent(
    """
    import os, sys, time

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == os.environ["BLOCK"]:
                os.write(int(os.environ["READY_FD"]), b"x")
                time.sleep(60)
            return None

    sys.meta_path.insert(0, Block())
    from queuetool.__main__ import run
    run()
    """
)


def interrupted_while_importing(block: str, *args: str) -> subprocess.CompletedProcess:
    read_fd, write_fd = os.pipe()
    env = {**CLEAN_ENV, "BLOCK": block, "READY_FD": str(write_fd)}
    proc = subprocess.Popen(
        [sys.executable, "-c", BLOCKING_IMPORT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 30)
        assert ready, f"the import of {block} never started"
        assert os.read(read_fd, 1) == b"x"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        os.close(read_fd)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize(
    ("block", "args"),
    [
        ("click", ["--help"]),  # before queuetool's CLI exists
        ("queuetool.cli.read", ["report", "--help"]),  # while the commands register
        ("sqlalchemy", ["report", "-q", "sqlite:///{db}"]),  # inside the command
        ("queuetool.table.store", ["check", "-q", "sqlite:///{db}"]),
    ],
)
def test_ctrl_c_while_importing_is_one_line_and_exit_130(block, args, tmp_path):
    db = tmp_path / "queue.db"
    args = [a.format(db=db) for a in args]
    ran = interrupted_while_importing(block, *args)
    assert "Traceback" not in ran.stderr
    assert (ran.returncode, ran.stdout, ran.stderr) == (130, "", "Aborted: interrupted\n")


def test_ctrl_c_while_the_command_line_is_parsed(monkeypatch):
    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr("click.core.Command.parse_args", interrupted)
    result = CliRunner().invoke(main, ["--help"])
    assert (result.exit_code, result.output) == (130, "Aborted: interrupted\n")
