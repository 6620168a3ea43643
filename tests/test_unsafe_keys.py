"""Keys gearmand mangles: a unique key of 64 bytes is cut to 63 after a restart and a NUL
put before the payload (GEARMAND.md; test_check shows the daemon doing it). No edit,
migration or window may pass over such a job silently."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import gear
import pytest
from servers import JobSpec, gear_client, priority_status, submit, work

from queuetool.table.export import read_export

LONG = "k" * 64  # the shortest key gearmand corrupts
SAFE = "s" * 63
WARNING = (
    "Warning: 1 jobs in the table have a unique key of 64 bytes or more: after a restart "
    "gearmand cuts such a key to 63 bytes and puts a NUL before the payload."
)


def test_offline_edit_warns_about_long_keys_it_leaves(queue, snapdir, cli):
    queue.insert([(LONG, "other", 1, b"x", 0), (SAFE, "fn", 1, b"y", 0), ("a", "fn", 1, b"z", 0)])
    result = cli(
        "reprioritise", *queue.cli_args(), "-f", "fn", "--to", "high", "--yes",
        "--snapshot-dir", str(snapdir),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert WARNING in result.stderr
    assert "2 jobs changed: reprioritise" in result.stdout
    assert sorted(queue.sql(f"SELECT unique_key, priority FROM {queue.table}")) == [
        ("a", 0),
        (LONG, 1),
        (SAFE, 0),
    ]


def test_offline_edit_without_long_keys_has_no_warning(queue, snapdir, cli):
    queue.insert([(SAFE, "fn", 1, b"y", 0)])
    result = cli(
        "reprioritise", *queue.cli_args(), "-f", "fn", "--to", "high", "--yes",
        "--snapshot-dir", str(snapdir),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr


def test_purging_the_long_keys_is_not_warned_about(queue, snapdir, cli, tmp_path):
    queue.insert([(LONG, "other", 1, b"x", 0), (SAFE, "fn", 1, b"y", 0)])
    export = tmp_path / "long.jsonl"
    result = cli(
        "purge", *queue.cli_args(), "-f", "other", "--export", str(export), "--yes",
        "--snapshot-dir", str(snapdir),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr
    assert [job["unique_key"] for job in read_export(export)] == [LONG]
    assert queue.sql(f"SELECT unique_key FROM {queue.table}") == [(SAFE,)]


def test_edit_touching_a_long_key_is_refused(queue, snapdir, cli):
    queue.insert([(LONG, "fn", 1, b"x", 0), (SAFE, "fn", 1, b"y", 0)])
    result = cli(
        "reprioritise", *queue.cli_args(), "-f", "fn", "--to", "high", "--yes",
        "--snapshot-dir", str(snapdir),
    )  # fmt: skip
    assert result.exit_code == 5
    assert "1 unique_key of 64 bytes or more" in result.stderr
    assert sorted(queue.sql(f"SELECT priority FROM {queue.table}")) == [(1,), (1,)]


def test_migrate_refuses_a_64_byte_key_and_skip_invalid_exports_it(
    sqlite_queue, mysql_queue, cli, tmp_path
):
    sqlite_queue.insert([(LONG, "fn", 1, b"x", 0), (SAFE, "fn", 1, b"y", 0)])
    refused = cli("migrate", sqlite_queue.url, mysql_queue.url, "--yes", "--quiet")
    assert refused.exit_code == 1
    assert "1 unique_key_length: unique_key of 64 bytes or more" in refused.stderr
    assert "1 of 2 jobs cannot be carried" in refused.stderr
    assert mysql_queue.rows() == []

    export = tmp_path / "skipped.jsonl"
    result = cli(
        "migrate", sqlite_queue.url, mysql_queue.url, "--yes", "--quiet", "--skip-invalid",
        "--skipped-file", str(export),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (line,) = read_export(export)
    assert (line["unique_key"], line["reason"]) == (LONG, "unique_key_length")
    assert mysql_queue.sql(f"SELECT unique_key FROM {mysql_queue.table}") == [(SAFE,)]


# gearmand's libpq plugin stores such a key cut to 63 bytes (test_postgres_replay.py).
@pytest.mark.parametrize("queue", ["sqlite", "mysql"], indirect=True)
def test_window_refuses_a_queue_holding_a_64_byte_key(queue, cli):
    daemon = queue.gearmand()
    submit(daemon.port, [JobSpec("fn", LONG), JobSpec("fn", SAFE), JobSpec("other", "o")])
    result = cli("reprioritise", *queue.cli_args(), "-f", "other", "--to", "high", "--yes")
    assert result.exit_code == 1
    assert "a restart would leave it down, so it was not stopped" in result.stderr
    assert "1 unique_key_length" in result.stderr
    assert daemon.running()
    assert priority_status(daemon.port) == {"fn": (0, 2, 0), "other": (0, 1, 0)}


# -- keys that are not UTF-8 (SQLite) --------------------------------------------------------
# gearmand stores a unique key as the bytes the client sent and replays it as they are:
# a key that is not UTF-8 sits in its SQLite table as TEXT that Python cannot decode.

RAW_ROWS = [  # (unique_key hex, function_name hex, priority, data hex, when_to_run)
    ("6bff6b", "666e", 1, "00ff", 0),  # k\xffk / fn
    ("c3", "66fe", 2, "", 5),  # \xc3 / f\xfe: the function name too
    ("6f6b", "666e", 1, "01", 0),  # ok / fn
]


def insert_raw(queue, rows=RAW_ROWS) -> None:
    for unique, function, priority, data, when in rows:
        queue.sql(
            f"INSERT INTO {queue.table} VALUES "
            f"(CAST(x'{unique}' AS TEXT), CAST(x'{function}' AS TEXT), ?, x'{data}', ?)",
            (priority, when),
        )


def stored(queue) -> list[tuple]:
    """Every row as its stored bytes (hex) and storage classes: byte-exact, by sqlite3."""
    return sorted(
        queue.sql(
            "SELECT lower(hex(unique_key)), lower(hex(function_name)), priority, "
            "lower(hex(data)), when_to_run, typeof(unique_key), typeof(function_name), "
            f"typeof(data) FROM {queue.table}"
        )
    )


EXACT = sorted((*row, "text", "text", "blob") for row in RAW_ROWS)


def run(cli, *args: str):
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result


def restore(cli, queue, path, snapdir):
    return run(
        cli, "restore", str(path), *queue.cli_args(), "--yes", "--snapshot-dir", str(snapdir)
    )


def test_purge_all_with_export_and_undo_keep_the_bytes(sqlite_queue, snapdir, cli, tmp_path):
    insert_raw(sqlite_queue)
    assert stored(sqlite_queue) == EXACT
    export = tmp_path / "purged.jsonl"
    result = run(
        cli, "purge", *sqlite_queue.cli_args(), "--all", "--export", str(export), "--yes",
        "--snapshot-dir", str(snapdir),
    )  # fmt: skip
    assert "3 jobs changed: purge (all jobs)" in result.stdout
    assert stored(sqlite_queue) == []
    exact = [
        (
            base64.b64decode(r.get("unique_key_base64", "")) or r["unique_key"].encode(),
            base64.b64decode(r.get("function_base64", "")) or r["function"].encode(),
            r["data"],
        )
        for r in read_export(export)
    ]
    assert sorted(exact) == sorted(
        (bytes.fromhex(u), bytes.fromhex(f), bytes.fromhex(d)) for u, f, _, d, _ in RAW_ROWS
    )
    # A job file gives such a key as its bytes in base64, not as text (`export`'s format).
    shown = sorted(r.get("unique_key") or r["unique_key_base64"] for r in read_export(export))
    assert shown == sorted(["ww==", "a/9r", "ok"])
    (undo,) = snapdir.glob("*-before-purge.qtsnap")
    run(
        cli, "restore", str(undo), *sqlite_queue.cli_args(), "--yes", "--snapshot-dir", str(snapdir)
    )
    assert stored(sqlite_queue) == EXACT


def test_full_snapshot_and_restore_keep_the_bytes(sqlite_queue, snapdir, cli):
    insert_raw(sqlite_queue)
    out = snapdir / "all.qtsnap"
    run(cli, "snapshot", *sqlite_queue.cli_args(), "--out", str(out))
    assert "ok, 3 rows" in run(cli, "snapshot", "--verify", str(out)).stdout
    run(
        cli, "purge", *sqlite_queue.cli_args(), "-f", "fn", "--full-snapshot", "--yes",
        "--snapshot-dir", str(snapdir),
    )  # fmt: skip
    assert len(stored(sqlite_queue)) == 1
    restore(cli, sqlite_queue, out, snapdir)
    assert stored(sqlite_queue) == EXACT


def test_rows_snapshot_undo_of_an_edit_keeps_the_bytes(sqlite_queue, snapdir, cli):
    """The undo reads the edited rows back into a new snapshot (Python, not the engine),
    so the bytes go through sqlite3's binding both ways."""
    insert_raw(sqlite_queue)
    run(
        cli, "reprioritise", *sqlite_queue.cli_args(), "--all", "--to", "high", "--yes",
        "--snapshot-dir", str(snapdir),
    )  # fmt: skip
    assert {row[2] for row in stored(sqlite_queue)} == {0}
    (undo,) = snapdir.glob("*-before-reprioritise.qtsnap")
    run(
        cli, "restore", str(undo), *sqlite_queue.cli_args(), "--yes", "--snapshot-dir", str(snapdir)
    )
    assert stored(sqlite_queue) == EXACT
    # ... and the restore's own snapshot of the rows it replaced undoes it, exactly.
    (replaced,) = snapdir.glob("*-before-restore.qtsnap")
    restore(cli, sqlite_queue, replaced, snapdir)
    assert sorted(r[:2] + r[3:] for r in stored(sqlite_queue)) == sorted(
        r[:2] + r[3:] for r in EXACT
    )
    assert {row[2] for row in stored(sqlite_queue)} == {0}


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_read_commands_show_such_keys_escaped(sqlite_queue, tmp_path, fmt):
    """On an operator's UTF-8 terminal, not through CliRunner (which hides encode errors)."""
    insert_raw(sqlite_queue)
    env = {**os.environ, "QUEUETOOL_CONFIG": "", "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": ""}

    def qt(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "queuetool", *args, *sqlite_queue.cli_args()],
            cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip

    def shown(result: subprocess.CompletedProcess, column: str) -> set[str]:
        assert (result.returncode, result.stderr) == (0, "")
        if fmt == "json":
            return {row[column] for row in json.loads(result.stdout)}
        return set(result.stdout.replace(",", " ").split())

    assert {"k\\xffk", "\\xc3", "ok"} <= shown(qt("jobs", "--format", fmt), "unique_key")
    assert "f\\xfe" in shown(qt("report", "--format", fmt), "function")
    check = qt("check")
    assert (check.returncode, check.stdout, check.stderr) == (
        0,
        "3 rows checked: no problems\n",
        "",
    )


def test_check_examples_show_such_keys_escaped(sqlite_queue, cli):
    insert_raw(sqlite_queue, [("6bff6b", "666e", 7, "00", 0)])
    out = cli("check", *sqlite_queue.cli_args(), "--format", "json")
    assert out.exit_code == 1
    (problem,) = json.loads(out.stdout)["problems"]
    assert problem["examples"] == [{"unique_key": "k\\xffk", "function": "fn"}]


def test_gearmand_stores_and_replays_such_keys_and_so_does_an_undo(sqlite_queue, snapdir, cli):
    daemon = sqlite_queue.gearmand()
    with gear_client(daemon.port) as client:
        job = gear.Job(b"fn", b"payload", unique=b"k\xffk")
        client.submitJob(job, background=True)
        assert job.handle
    daemon.stop()
    assert stored(sqlite_queue) == [
        ("6bff6b", "666e", 1, "7061796c6f6164", 0, "text", "text", "blob")
    ]
    before = stored(sqlite_queue)
    run(
        cli, "purge", *sqlite_queue.cli_args(), "--all", "--yes", "--snapshot-dir", str(snapdir)
    )  # fmt: skip
    (undo,) = snapdir.glob("*-before-purge.qtsnap")
    run(
        cli, "restore", str(undo), *sqlite_queue.cli_args(), "--yes", "--snapshot-dir", str(snapdir)
    )
    assert stored(sqlite_queue) == before
    daemon.start()
    (got,) = work(daemon.port, ["fn"], 1, timeout=30)
    assert (got.unique.encode("utf-8", "surrogateescape"), got.data) == (b"k\xffk", b"payload")


def test_export_purge_import_keeps_the_bytes(sqlite_queue, snapdir, cli, tmp_path):
    """The cold start's round trip on SQLite: such keys (and function names) go back as
    TEXT with the same bytes, not refused as migrate's carry rule once did."""
    insert_raw(sqlite_queue)
    path = tmp_path / "all.jsonl"
    run(cli, "export", *sqlite_queue.cli_args(), str(path), "--quiet")
    run(cli, "purge", *sqlite_queue.cli_args(), "--all", "--yes", "--snapshot-dir", str(snapdir))
    assert stored(sqlite_queue) == []
    result = run(
        cli, "import", *sqlite_queue.cli_args(), str(path), "--yes", "--snapshot-dir", str(snapdir)
    )
    assert "3 jobs added, 0 replaced" in result.stdout
    assert stored(sqlite_queue) == EXACT


@pytest.mark.parametrize("merge", [False, True])
def test_migrate_sqlite_to_sqlite_keeps_the_bytes(sqlite_queue, cli, tmp_path, merge):
    """SQLite to SQLite carries such keys byte-exact (the rule is the target's: MySQL and
    PostgreSQL cannot hold them); --merge --on-conflict replace too, row by row."""
    from conftest import make_sqlite_queue

    insert_raw(sqlite_queue)
    (tmp_path / "dst").mkdir()
    dst = make_sqlite_queue(tmp_path / "dst")
    args = [sqlite_queue.url, dst.url, "--yes", "--quiet"]
    if merge:  # the target already holds two of the jobs, with other payloads
        insert_raw(dst, [(u, f, 0, "aa", 0) for u, f, _p, _d, _w in RAW_ROWS[:2]])
        args += ["--merge", "--on-conflict", "replace"]
    result = run(cli, "migrate", *args)
    assert "verified" in result.stdout
    assert stored(dst) == EXACT
    daemon = dst.gearmand()  # replays them: a worker gets the key's own bytes
    got = work(daemon.port, ["fn"], 2, timeout=30)
    assert sorted((r.unique, r.data) for r in got) == [("k\udcffk", b"\x00\xff"), ("ok", b"\x01")]
