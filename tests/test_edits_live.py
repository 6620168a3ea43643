"""Edits proven by a real gearmand: jobs submitted with gear, the daemon stopped (SIGTERM,
wait), the queuetool CLI run, the daemon started with the same command line, and a gear
worker showing the effect. Restoring each edit's snapshot gives back the original table."""

from __future__ import annotations

import time

from servers import JobSpec, priority_status, submit, work

from queuetool.table.checksum import table_checksum
from queuetool.table.export import read_export
from queuetool.table.store import QueueStore


def checksum_of(queue) -> str:
    store = QueueStore(queue.url, queue.table)
    try:
        with store.connect() as conn:
            return table_checksum(conn, store.table).hex
    finally:
        store.close()


def text(value: str | bytes) -> str:
    """gear hands names and unique keys over as bytes."""
    return value.decode() if isinstance(value, bytes) else value


def edit(cli, queue, snapdir, *args: str):
    result = cli(*args, *queue.cli_args(), "--yes", "--snapshot-dir", str(snapdir))
    assert result.exit_code == 0, result.output
    return result


def snapshot_path(result) -> str:
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("snapshot: ")]
    return line.removeprefix("snapshot: ")


def edit_restore_edit(cli, queue, snapdir, *args: str, again: tuple[str, ...] | None = None):
    """Edit; restore its snapshot and check the table is the original; edit again
    (with `again`'s arguments if given)."""
    original = checksum_of(queue)
    rows = queue.rows()
    first = edit(cli, queue, snapdir, *args)
    assert checksum_of(queue) != original
    restored = edit(cli, queue, snapdir, "restore", snapshot_path(first))
    assert "verified" in restored.stdout
    assert checksum_of(queue) == original and queue.rows() == rows
    return edit(cli, queue, snapdir, *(args if again is None else again))


def test_reprioritised_jobs_arrive_first(queue, cli, snapdir):
    daemon = queue.gearmand()
    trial = [JobSpec("copyFiles", f"trial-{i}", b"trial\x00%d" % i) for i in range(8)]
    pro = [JobSpec("copyFiles", f"pro-{i}", b"pro\xff\x00%d" % i, priority=2) for i in range(4)]
    submit(daemon.port, trial + pro)
    daemon.stop()
    result = edit_restore_edit(
        cli, queue, snapdir, "reprioritise", "--unique", "pro-*", "--to", "high"
    )
    assert "4 jobs changed: reprioritise (unique pro-*) to high" in result.stdout
    daemon.start()
    assert queue.counts() == {"copyFiles": (4, 8, 0)}
    got = work(daemon.port, ["copyFiles"], 12, timeout=60)
    assert {text(r.unique) for r in got[:4]} == {s.unique for s in pro}
    assert {text(r.unique): r.data for r in got} == {s.unique: s.data for s in trial + pro}


def test_purged_jobs_never_arrive(queue, cli, snapdir, tmp_path):
    daemon = queue.gearmand()
    keep = [JobSpec("resize", f"keep-{i}", bytes([i, 0, 200])) for i in range(5)]
    drop = [JobSpec("resize", f"drop-{i}", b"drop%d\x00" % i) for i in range(3)]
    drop += [JobSpec("obsolete", f"old-{i}", b"\xff" * i, priority=i % 3) for i in range(4)]
    submit(daemon.port, keep + drop)
    daemon.stop()
    export = tmp_path / "purged.jsonl"
    args = ("purge", "-f", "obsolete", "--unique", "drop-*", "--unique", "old-*", "--export")
    result = edit_restore_edit(
        cli, queue, snapdir, *args, str(tmp_path / "first.jsonl"), again=(*args, str(export))
    )
    assert "4 jobs changed" in result.stdout
    # gearmand 1.1.20 stores an empty SQLite payload as NULL (and then cannot replay it).
    assert {(j["unique_key"], j["data"] or b"") for j in read_export(export)} == {
        (s.unique, s.data) for s in drop if s.function == "obsolete"
    }
    # Only the obsolete function matched --function; the resize drop-* jobs stay.
    daemon.start()
    expected = keep + [s for s in drop if s.function == "resize"]
    got = work(daemon.port, ["resize", "obsolete"], len(expected), timeout=60)
    assert sorted((text(r.function), text(r.unique), r.data) for r in got) == sorted(
        (s.function, s.unique, s.data) for s in expected
    )
    # And no purged job waits behind them: the daemon ends up holding nothing.
    deadline = time.monotonic() + 60
    while priority_status(daemon.port) and time.monotonic() < deadline:
        time.sleep(0.05)  # the last WORK_COMPLETE is processed just after it was sent
    assert priority_status(daemon.port) == {}


def test_rescheduled_jobs_wait_for_their_time(queue, cli, snapdir):
    daemon = queue.gearmand()
    jobs = [JobSpec("report", f"r{i}", b"report\x00%d" % i) for i in range(3)]
    submit(daemon.port, jobs)
    daemon.stop()
    # Room for a restart and a worker on a loaded machine before the jobs are due.
    result = edit_restore_edit(cli, queue, snapdir, "reschedule", "-f", "report", "--in", "15s")
    assert "Note: gearmand 1.1" in result.stderr
    (when,) = {w for *_, w in queue.rows()}
    assert when >= time.time() + 1
    daemon.start()
    early = work(daemon.port, ["report"], 3, timeout=max(when - time.time() - 0.5, 0.1))
    assert early == []
    time.sleep(max(when - time.time() + 1, 0))
    # A worker connecting after the time is what wakes gearmand 1.1.x (GEARMAND.md).
    got = work(daemon.port, ["report"], 3, timeout=60)
    assert sorted((text(r.unique), r.data) for r in got) == sorted((s.unique, s.data) for s in jobs)


def test_refused_while_daemon_runs(queue, cli, snapdir):
    daemon = queue.gearmand()
    submit(daemon.port, [JobSpec("fn", f"u{i}") for i in range(3)])
    before = queue.rows()
    for args in (
        ("reprioritise", "-f", "fn", "--to", "high"),
        ("purge", "--all"),
        ("reschedule", "-f", "fn", "--in", "1h"),  # (--now: they are due now already)
    ):
        # --no-window: refuse rather than run the maintenance window (test_window_cli.py).
        result = cli(
            *args, *queue.cli_args(), "--yes", "--no-window", "--snapshot-dir", str(snapdir)
        )
        assert result.exit_code == 4, result.output
        assert f"gearmand pid {daemon.pid}" in result.output
        assert "stop it first" in result.output
    assert queue.rows() == before
    assert list(snapdir.iterdir()) == []
    forced = cli("reprioritise", "-f", "fn", "--to", "low", *queue.cli_args(), "--yes",
                 "--force", "--snapshot-dir", str(snapdir))  # fmt: skip
    assert forced.exit_code == 0, forced.output
    assert "Warning: --force" in forced.stderr
    assert "WRITING TO A LIVE QUEUE" in forced.stderr and f"pid {daemon.pid}" in forced.stderr
    assert "3 jobs changed" in forced.stdout
    snap = cli("snapshot", *queue.cli_args(), "--snapshot-dir", str(snapdir))
    assert snap.exit_code == 0, snap.output  # a snapshot only reads: fine while it runs
    refused = cli("restore", *queue.cli_args(), snapshot_path(snap), "--yes", "--no-window",
                  "--snapshot-dir", str(snapdir))  # fmt: skip
    assert refused.exit_code == 4
