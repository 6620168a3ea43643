"""Where an edit writes (its --export file, its snapshot directory) is checked before a
window stops gearmand: a file that cannot be created there, or a configured snapshot
directory that does not exist, is one line and exit 2 with the daemon untouched (its
pid unchanged) and the table as it was. An export that fails while it is written is
named as the export, not as the snapshot."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROWS = [(f"job-{i:02d}", "urgent" if i % 2 else "bulk", 1, b"payload", 0) for i in range(10)]
QUEUETOOL = Path(sys.executable).parent / "queuetool"


def assert_untouched(result, message: str, queue, before, daemon, snapdir) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert "Traceback" not in result.stderr and "stop" not in result.stderr
    assert daemon.running() and int(daemon.pidfile.read_text()) == daemon.pid
    assert queue.rows() == before and list(snapdir.iterdir()) == []


def test_an_export_that_cannot_be_created_is_refused_before_the_stop(sqlite_queue, cli, snapdir):
    sqlite_queue.insert(ROWS)
    daemon = sqlite_queue.gearmand()
    before = sqlite_queue.rows()
    # /proc exists and root passes os.access there, but no file can be created in it
    result = cli(
        "purge",
        *sqlite_queue.cli_args(),
        "-f",
        "urgent",
        "--export",
        "/proc/x.jsonl",
        "--yes",
        "--snapshot-dir",
        str(snapdir),
    )
    message = (
        "cannot write the export file /proc/x.jsonl: /proc is not a writable directory "
        "(No such file or directory)"
    )
    assert_untouched(result, message, sqlite_queue, before, daemon, snapdir)
    assert not Path("/proc/x.jsonl").exists()


@pytest.mark.parametrize(
    ("directory", "message"),
    [
        (
            "/proc/qt",
            "snapshot directory /proc/qt does not exist: create it or set [snapshots] dir "
            "in the config; nothing was changed",
        ),
        (
            "/proc",
            "snapshot directory /proc is not writable (No such file or directory); "
            "nothing was changed",
        ),
    ],
)
def test_a_snapshot_directory_that_cannot_take_one_is_refused_before_the_stop(
    sqlite_queue, cli, snapdir, tmp_path, directory, message
):
    sqlite_queue.insert(ROWS)
    daemon = sqlite_queue.gearmand()
    before = sqlite_queue.rows()
    config = tmp_path / "queuetool.toml"
    config.write_text(
        f'[queue]\nurl = "{sqlite_queue.url}"\ntable = "{sqlite_queue.table}"\n'
        f'[snapshots]\ndir = "{directory}"\n'
    )
    result = cli("purge", "--config", str(config), "-f", "urgent", "--yes")
    assert_untouched(result, message, sqlite_queue, before, daemon, snapdir)


def test_an_export_that_fails_while_written_names_the_export(sqlite_queue, snapdir, tmp_path):
    """The snapshot (raw payloads, 60 one-page rows: ~3.9 MB) fits under a file size
    limit the export (base64, ~4.8 MB) does not: the write fails with EFBIG (Python
    ignores SIGXFSZ), inside the snapshot's writing."""
    sqlite_queue.insert([(f"k{i}", "urgent", 1, os.urandom(60000), 0) for i in range(60)])
    before = sqlite_queue.rows()
    export = tmp_path / "purged.jsonl"
    limit = 4400 * 1024

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUETOOL_")}
    ran = subprocess.run(
        [
            str(QUEUETOOL),
            "purge",
            *sqlite_queue.cli_args(),
            "-f",
            "urgent",
            "--export",
            str(export),
            "--yes",
            "--quiet",
            "--snapshot-dir",
            str(snapdir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=small_files,
    )
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr == f"Error: cannot write the export file {export}: File too large\n"
    assert sqlite_queue.rows() == before
    assert list(snapdir.iterdir()) == [] and list(tmp_path.glob("*purged.jsonl*")) == []


def test_snapshot_out_needs_no_snapshot_directory(sqlite_queue, cli, tmp_path):
    # --out writes one named file: the configured directory, missing here, is not used.
    sqlite_queue.insert(ROWS)
    config = tmp_path / "queuetool.toml"
    config.write_text('[snapshots]\ndir = "/proc/qt"\n')
    out = tmp_path / "before-migration.qtsnap"
    args = ["--config", str(config), *sqlite_queue.cli_args()]
    made = cli("snapshot", *args, "--out", str(out))
    assert made.exit_code == 0, made.output
    assert cli("snapshot", "--verify", str(out)).exit_code == 0
    assert cli("snapshot", *args).exit_code == 2  # without --out, the directory counts
