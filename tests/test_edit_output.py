"""What the edit commands say: dry runs with before -> after, the jobs an edit finds
already as asked counted apart from the ones it changes, and --quiet."""

from __future__ import annotations

import re

from servers import JobSpec, priority_status, submit

from queuetool.changes import snapshot

ROWS = [
    ("a", "fn", 2, b"x", 0),
    ("b", "fn", 0, b"yy", 0),
    ("c", "fn", 1, b"zzz", 1000),
    ("d", "other", 2, b"", 5),
]


def run(cli, queue, *args: str):
    result = cli(*args, *queue.cli_args())
    assert result.exit_code == 0, result.output
    return result


def test_dry_run_shows_before_and_after(queue, cli):
    queue.insert(ROWS)
    prio = run(cli, queue, "reprioritise", "-f", "fn", "--to", "high", "--dry-run")
    assert prio.stdout == (
        "dry run: would reprioritise (function fn) to high: 2 jobs (1 already at high)\n"
        "jobs:\n"
        "unique_key    function    priority        when_to_run             size\n"
        "------------  ----------  --------------  --------------------  ------\n"
        "c             fn          normal -> high  1970-01-01T00:16:40Z       3\n"
        "a             fn          low -> high     now                        1\n"
        "nothing changed, no snapshot taken\n"
    )
    spread = run(
        cli, queue, "reschedule", "--all", "--at", "@2000000000", "--spread", "1h", "--dry-run"
    )
    # Each job shows the time --spread gives it, in the order it hands them out.
    assert [re.split(r"\s{2,}", line) for line in spread.stdout.splitlines()[4:8]] == [
        ["b", "fn", "high", "now -> 2033-05-18T03:33:20Z", "2"],
        ["a", "fn", "low", "now -> 2033-05-18T03:48:20Z", "1"],
        ["d", "other", "low", "1970-01-01T00:00:05Z -> 2033-05-18T04:03:20Z", "0"],
        ["c", "fn", "normal", "1970-01-01T00:16:40Z -> 2033-05-18T04:18:20Z", "3"],
    ]
    purge = run(cli, queue, "purge", "-f", "other", "--dry-run")
    assert purge.stdout.splitlines()[2:5] == [
        "unique_key    function    priority    when_to_run             size  after",
        "------------  ----------  ----------  --------------------  ------  -------",
        "d             other       low         1970-01-01T00:00:05Z       0  deleted",
    ]
    assert queue.rows() == sorted(ROWS)


def test_jobs_already_as_asked_are_counted_apart(queue, cli, snapdir):
    queue.insert(ROWS)
    args = ["--yes", "--snapshot-dir", str(snapdir)]
    first = run(cli, queue, "reprioritise", "-f", "fn", "--to", "high", *args)
    assert first.stdout.splitlines()[1] == (
        "2 jobs changed, 1 already at high: reprioritise (function fn) to high"
    )
    assert queue.counts() == {"fn": (3, 0, 0), "other": (0, 0, 1)}
    # The undo holds the two changed jobs only.
    (snap,) = snapdir.iterdir()
    held = [r[0] for batch in snapshot.snapshot_rows(snap) for r in batch]
    assert sorted(held) == ["a", "c"]
    again = run(cli, queue, "reprioritise", "-f", "fn", "--to", "high", *args)
    assert again.stdout == "no jobs to change: 3 already at high (function fn)\nnothing changed\n"
    now = run(cli, queue, "reschedule", "-f", "fn", "--now", *args)
    assert now.stdout.splitlines()[1] == (
        "1 jobs changed, 2 already due now: reschedule (function fn) to now"
    )
    assert queue.rows() == sorted(
        [("a", "fn", 0, b"x", 0), ("b", "fn", 0, b"yy", 0), ("c", "fn", 0, b"zzz", 0), ROWS[3]]
    )


def test_quiet_prints_only_the_result(queue, cli, snapdir):
    queue.insert(ROWS)
    args = ["--yes", "--quiet", "--snapshot-dir", str(snapdir)]
    offline = run(cli, queue, "reschedule", "-f", "other", "--in", "1h", *args)
    assert offline.stderr == ""  # not even the wake-up note
    assert offline.stdout.splitlines()[1].startswith(
        "1 jobs changed: reschedule (function other) to 20"
    )
    queue.sql(f"DELETE FROM {queue.table}")
    daemon = queue.gearmand()
    submit(daemon.port, [JobSpec("fn", f"u{i}", b"%d" % i, priority=2) for i in range(3)])
    live = run(cli, queue, "reprioritise", "-f", "fn", "--to", "high", *args)
    assert live.stderr == ""  # no "gearmand is running", window or replay prediction
    lines = live.stdout.splitlines()
    assert lines[0].startswith(f"gearmand pid {daemon.pid} stopped in ")
    assert "3 jobs changed: reprioritise (function fn) to high" in lines
    assert "reload verified: the daemon holds the table's 3 jobs" in lines
    daemon.pid = int(daemon.pidfile.read_text())
    assert priority_status(daemon.port) == {"fn": (3, 0, 0)}
