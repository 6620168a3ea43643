"""Keys gearmand mangles: a unique key of 64 bytes is cut to 63 after a restart and a NUL
put before the payload (GEARMAND.md; test_check shows the daemon doing it). No edit,
migration or window may pass over such a job silently."""

from __future__ import annotations

import json

from servers import JobSpec, priority_status, submit

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
    assert [json.loads(line)["unique_key"] for line in export.read_text().splitlines()] == [LONG]
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
    (line,) = [json.loads(x) for x in export.read_text().splitlines()]
    assert (line["unique_key"], line["reason"]) == (LONG, "unique_key_length")
    assert mysql_queue.sql(f"SELECT unique_key FROM {mysql_queue.table}") == [(SAFE,)]


def test_window_refuses_a_queue_holding_a_64_byte_key(queue, cli):
    daemon = queue.gearmand()
    submit(daemon.port, [JobSpec("fn", LONG), JobSpec("fn", SAFE), JobSpec("other", "o")])
    result = cli("reprioritise", *queue.cli_args(), "-f", "other", "--to", "high", "--yes")
    assert result.exit_code == 1
    assert "a restart would leave it down, so it was not stopped" in result.stderr
    assert "1 unique_key_length" in result.stderr
    assert daemon.running()
    assert priority_status(daemon.port) == {"fn": (0, 2, 0), "other": (0, 1, 0)}
