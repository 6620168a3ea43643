"""Snapshots on both backends: byte-exact round trip, manifest, damage, retention, failures."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from queuetool.changes import snapshot
from queuetool.changes.restore import restore
from queuetool.errors import SnapshotError, UsageError, VerifyError
from queuetool.table.checksum import table_checksum
from queuetool.table.store import QueueStore

ODD_ROWS = [
    ("plain", "fn", 1, b"payload", 0),
    ("nul-bytes", "fn", 0, b"\x00\xff\x00\x80", 2_000_000_000),
    ("empty-payload", "fn", 2, b"", 0),
    ("backslash\\b", "other", 1, b"a\\b'\"", 1_700_000_000),
    ("latin-\u00e9", "other", 2, bytes(range(256)), 0),
]


def store_of(queue) -> QueueStore:
    return QueueStore(queue.url, queue.table)


def checksum_of(queue) -> str:
    store = store_of(queue)
    try:
        with store.connect() as conn:
            return table_checksum(conn, store.table).hex
    finally:
        store.close()


def typed_rows(queue) -> list[tuple]:
    """Rows with SQLite's storage classes, so a TEXT payload is not mistaken for a BLOB."""
    if queue.backend != "sqlite":
        return queue.rows()
    return sorted(
        queue.sql(
            f"SELECT unique_key, function_name, priority, data, when_to_run, typeof(data), "
            f"typeof(when_to_run), typeof(priority) FROM {queue.table}"
        ),
        key=repr,
    )


def test_round_trip_is_byte_exact(queue, snapdir):
    queue.insert(ODD_ROWS)
    if queue.backend == "sqlite":
        # Bad rows a snapshot must keep as they are: TEXT payload, NULL when_to_run.
        queue.sql(f"INSERT INTO {queue.table} VALUES ('text-data', 'fn', 1, 'TEXT!', NULL)")
    original = typed_rows(queue)
    original_sum = checksum_of(queue)
    store = store_of(queue)

    info = snapshot.take(store, snapdir, reason="test")
    assert info.rows == len(original)
    assert info.checksum == original_sum
    assert info.backend == queue.backend and info.table == queue.table
    assert info.path.parent == snapdir and info.path.name.endswith("-test.qtsnap")
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert [p.name for p in snapdir.iterdir()] == [info.path.name]  # no temporary left
    assert snapshot.verify(info.path).ok

    queue.sql(f"DELETE FROM {queue.table} WHERE unique_key = 'plain'")
    queue.sql(f"UPDATE {queue.table} SET priority = 0")
    queue.insert([("new", "fn", 1, b"new", 0)])
    result = restore(store, info.path, snapdir, guard=False)
    store.close()
    assert typed_rows(queue) == original
    assert checksum_of(queue) == original_sum
    assert result.rows == len(original) and result.checksum == original_sum
    assert result.before is not None and result.before.reason == "before-restore"
    assert result.rows_before == len(original)
    assert snapshot.verify(result.before.path).ok


def test_manifest_masks_password_and_lists(queue, snapdir, cli):
    queue.insert(ODD_ROWS)
    info = snapshot.take(store_of(queue), snapdir)
    if queue.backend in ("mysql", "postgres"):  # their URLs carry a password
        server = queue.mysql if queue.backend == "mysql" else queue.postgres
        assert server.password not in info.source
        assert quote(server.password, safe="") not in info.source
        assert "***" in info.source
    listed = cli("snapshots", *queue.cli_args(), "--snapshot-dir", str(snapdir), "--format", "json")
    assert listed.exit_code == 0, listed.output
    (entry,) = json.loads(listed.stdout)
    assert entry["rows"] == len(ODD_ROWS)
    assert entry["path"] == str(info.path)
    assert entry["source"] == info.source and entry["table"] == queue.table
    assert entry["bytes"] == info.path.stat().st_size


def test_cli_snapshot_out_and_verify(queue, tmp_path, cli):
    queue.insert(ODD_ROWS)
    out = tmp_path / "backup.qtsnap"
    made = cli("snapshot", *queue.cli_args(), "--out", str(out))
    assert made.exit_code == 0, made.output
    assert made.stdout.splitlines()[0] == f"snapshot: {out}"
    assert made.stdout.splitlines()[1].startswith(f"{len(ODD_ROWS)} rows, checksum ")
    again = cli("snapshot", *queue.cli_args(), "--out", str(out))
    assert again.exit_code == 2 and "already exists" in again.output
    ok = cli("snapshot", "--verify", str(out))
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith(f"{out}: ok, {len(ODD_ROWS)} rows")


def test_snapshot_of_another_checksum_algorithm_is_not_called_damaged(sqlite_queue, tmp_path, cli):
    sqlite_queue.insert(ODD_ROWS)
    out = tmp_path / "old.qtsnap"
    assert cli("snapshot", *sqlite_queue.cli_args(), "--out", str(out)).exit_code == 0
    with sqlite3.connect(out) as db:
        db.execute("DELETE FROM manifest WHERE key = 'checksum_algorithm'")
    db.close()
    result = cli("snapshot", "--verify", str(out))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: {out} was checksummed with blake2b-sum128, this queuetool uses md5-sum128: "
        "it cannot verify it (use the queuetool 0.1.0 that took it)"
    )
    restored = cli("restore", *sqlite_queue.cli_args(), str(out), "--yes")
    assert restored.exit_code == 2
    assert "cannot verify it" in restored.stderr


def damage(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE rows SET data = X'00' WHERE unique_key = 'plain'")
    db.close()


def test_damaged_snapshot_is_found_and_not_restored(queue, tmp_path, cli):
    queue.insert(ODD_ROWS)
    store = store_of(queue)
    info = snapshot.take(store, out=tmp_path / "s.qtsnap")
    damage(info.path)
    assert not snapshot.verify(info.path).ok
    checked = cli("snapshot", "--verify", str(info.path))
    assert checked.exit_code == 1
    assert "DAMAGED" in checked.stdout
    queue.sql(f"DELETE FROM {queue.table}")
    with pytest.raises(VerifyError, match="not restored"):
        restore(store, info.path, tmp_path, guard=False)
    refused = cli(
        "restore", *queue.cli_args(), str(info.path), "--yes", "--snapshot-dir", str(tmp_path)
    )
    assert refused.exit_code == 5, refused.output
    assert queue.rows() == []
    store.close()


def test_dry_run_of_a_damaged_snapshot_exits_as_the_restore_does(sqlite_queue, tmp_path, cli):
    sqlite_queue.insert(ODD_ROWS)
    store = store_of(sqlite_queue)
    info = snapshot.take(store, out=tmp_path / "s.qtsnap")
    store.close()
    damage(info.path)
    daemon = sqlite_queue.gearmand()
    before = sqlite_queue.rows()
    result = cli("restore", *sqlite_queue.cli_args(), str(info.path), "--dry-run")
    assert result.exit_code == 5, result.output
    assert "would replace" not in result.stdout and "Traceback" not in result.stderr
    line = result.stderr.splitlines()
    assert len(line) == 1 and line[0].startswith(f"Error: {info.path}: DAMAGED: ")
    assert line[0].endswith("; a restore would refuse it; nothing changed")
    assert daemon.running() and int(daemon.pidfile.read_text()) == daemon.pid
    assert sqlite_queue.rows() == before


def test_not_a_snapshot(tmp_path, cli):
    bogus = tmp_path / "bogus.qtsnap"
    bogus.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(SnapshotError, match=r"not a queuetool snapshot|cannot open"):
        snapshot.verify(bogus)
    result = cli("snapshot", "--verify", str(bogus))
    assert result.exit_code == 2
    assert result.output.startswith("Error: ")
    listed = snapshot.list_snapshots(tmp_path)
    assert [s.problem is not None for s in listed] == [True]


def test_retention_keeps_newest_of_same_queue(queue, snapdir, tmp_path):
    queue.insert(ODD_ROWS)
    store = store_of(queue)
    taken = [snapshot.take(store, snapdir, keep=3) for _ in range(5)]
    # A snapshot of another queue in the same directory is not counted or removed.
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute(
            "CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT, priority INTEGER,"
            " data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))"
        )
    db.close()
    foreign = snapshot.take(QueueStore(f"sqlite:///{other}"), snapdir, keep=1)
    names = {p.name for p in snapdir.iterdir()}
    assert names == {s.path.name for s in taken[2:]} | {foreign.path.name}
    with pytest.raises(UsageError):
        snapshot.take(store, snapdir, keep=0)
    store.close()


def test_restore_refuses_other_backend(sqlite_queue, tmp_path):
    sqlite_queue.insert(ODD_ROWS)
    info = snapshot.take(store_of(sqlite_queue), out=tmp_path / "s.qtsnap")
    with sqlite3.connect(info.path) as db:
        db.execute("UPDATE manifest SET value = 'mysql' WHERE key = 'backend'")
    db.close()
    with pytest.raises(UsageError, match="mysql queue"):
        restore(store_of(sqlite_queue), info.path, tmp_path, guard=False)


def test_restore_cli_dry_run_and_confirmation(queue, snapdir, cli):
    queue.insert(ODD_ROWS)
    info = snapshot.take(store_of(queue), snapdir)
    queue.sql(f"DELETE FROM {queue.table} WHERE unique_key = 'plain'")
    args = [*queue.cli_args(), "--snapshot-dir", str(snapdir)]
    dry = cli("restore", *args, str(info.path), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"would replace the {len(ODD_ROWS) - 1} rows" in dry.stdout
    unconfirmed = cli("restore", *args, str(info.path))
    assert unconfirmed.exit_code == 3
    assert "add --yes" in unconfirmed.output
    assert len(queue.rows()) == len(ODD_ROWS) - 1
    assert len(list(snapdir.iterdir())) == 1  # neither took a snapshot
    done = cli("restore", *args, str(info.path), "--yes")
    assert done.exit_code == 0, done.output
    assert f"restored {len(ODD_ROWS)} rows (were {len(ODD_ROWS) - 1})" in done.stdout
    assert len(queue.rows()) == len(ODD_ROWS)


def test_missing_or_bad_snapshot_dir_stops_the_edit(queue, tmp_path, cli):
    queue.insert(ODD_ROWS)
    before = queue.rows()
    missing = tmp_path / "no" / "such" / "dir"
    result = cli(
        "reprioritise",
        *queue.cli_args(),
        "--to",
        "high",
        "--all",
        "--yes",
        "--snapshot-dir",
        str(missing),
    )
    assert result.exit_code == 2
    assert f"snapshot directory {missing} does not exist" in result.output
    assert not missing.exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    result = cli("purge", *queue.cli_args(), "--all", "--yes", "--snapshot-dir", str(a_file))
    assert result.exit_code == 2
    assert queue.rows() == before


def test_default_dir_is_created(queue, tmp_path, cli):
    queue.insert(ODD_ROWS)
    state = tmp_path / "state"
    result = cli("snapshot", *queue.cli_args(), env={"XDG_STATE_HOME": str(state)})
    assert result.exit_code == 0, result.output
    (made,) = (state / "queuetool" / "snapshots").iterdir()
    assert stat.S_IMODE(made.parent.stat().st_mode) == 0o700


DISK_FULL = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
from queuetool.cli import main
sys.exit(main())
"""


def test_disk_full_stops_the_edit(queue, snapdir, tmp_path):
    """A snapshot that cannot be written (EFBIG, like a full disk) leaves no file and no edit."""
    queue.insert([(f"k{i}", "fn", 1, os.urandom(200), 0) for i in range(5000)])
    before = checksum_of(queue)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            DISK_FULL,
            "reprioritise",
            *queue.cli_args(),
            "--to",
            "high",
            "--all",
            "--yes",
            "--snapshot-dir",
            str(snapdir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "QUEUETOOL_CONFIG": ""},
    )
    assert proc.returncode == 2, proc.stderr
    assert "cannot write snapshot" in proc.stderr
    assert "full" in proc.stderr or "File too large" in proc.stderr
    assert list(snapdir.iterdir()) == []
    assert checksum_of(queue) == before


def test_rows_the_table_cannot_take_roll_back(mysql_queue, tmp_path):
    """A (consistent) snapshot whose key does not fit VARCHAR(64): strict mode refuses it,
    and the table is left as it was."""
    mysql_queue.insert(ODD_ROWS)
    store = store_of(mysql_queue)
    info = snapshot.take(store, out=tmp_path / "s.qtsnap")
    with sqlite3.connect(info.path) as db:
        db.execute("UPDATE rows SET unique_key = ? WHERE unique_key = 'plain'", ("k" * 100,))
    db.close()
    found = snapshot.verify(info.path)
    with sqlite3.connect(info.path) as db:
        db.execute("UPDATE manifest SET value = ? WHERE key = 'checksum'", (found.checksum,))
    db.close()
    assert snapshot.verify(info.path).ok
    mysql_queue.sql(f"DELETE FROM {mysql_queue.table} WHERE unique_key = 'plain'")
    before = mysql_queue.rows()
    with pytest.raises(VerifyError, match="does not take the rows"):
        restore(store, info.path, tmp_path, guard=False)
    assert mysql_queue.rows() == before
    store.close()


def test_snapshots_says_when_there_is_no_directory_or_no_snapshot(tmp_path, cli):
    missing = tmp_path / "nowhere"
    listed = cli("snapshots", "--snapshot-dir", str(missing))
    assert (listed.exit_code, listed.stdout) == (0, "")
    assert listed.stderr == f"no snapshot directory {missing}\n"
    assert not missing.exists()
    listed = cli("snapshots", "--snapshot-dir", str(missing), "--format", "json")
    assert (listed.exit_code, json.loads(listed.stdout)) == (0, [])
    empty = tmp_path / "empty"
    empty.mkdir()
    listed = cli("snapshots", "--snapshot-dir", str(empty))
    assert (listed.exit_code, listed.stdout, listed.stderr) == (0, "", f"no snapshots in {empty}\n")


def test_snapshots_refuses_a_configured_directory_that_is_a_file(tmp_path, cli):
    file = tmp_path / "snapshots"
    file.write_text("not a directory")
    config = tmp_path / "queuetool.toml"
    config.write_text(f'[snapshots]\ndir = "{file}"\n')
    listed = cli("snapshots", "--config", str(config))
    assert (listed.exit_code, listed.stdout) == (2, "")
    assert listed.stderr == f"Error: snapshot directory {file} is not a directory\n"
    assert file.read_text() == "not a directory"
