"""Editing commands against a RUNNING gearmand run the whole maintenance window."""

from __future__ import annotations

from servers import JobSpec, pid_alive, priority_status, submit, work


def jobs() -> list[JobSpec]:
    trial = [JobSpec("copyTrial", f"t{i}", b"trial\x00" + bytes([i]), priority=1) for i in range(6)]
    pro = [JobSpec("copyPRO", f"p{i}", b"pro\xff" + bytes([i]), priority=2) for i in range(4)]
    return trial + pro


def test_reprioritise_while_running_runs_the_window(queue, cli):
    daemon = queue.gearmand()
    submit(daemon.port, jobs())
    old_pid = daemon.pid
    result = cli(
        "reprioritise", *queue.cli_args(), "--function", "copyPRO", "--to", "high", "--yes"
    )
    assert result.exit_code == 0, result.output
    assert "gearmand is running" in result.stderr
    assert "4 jobs changed: reprioritise" in result.stdout
    assert "downtime:" in result.stdout
    # The daemon came back under a new pid, with the edited queue, checked independently.
    assert not pid_alive(old_pid)
    daemon.pid = int(daemon.pidfile.read_text())
    assert pid_alive(daemon.pid)
    assert priority_status(daemon.port) == {"copyTrial": (0, 6, 0), "copyPRO": (4, 0, 0)}
    assert priority_status(daemon.port) == queue.counts()
    got = work(daemon.port, ["copyPRO"], 4, timeout=60)
    assert sorted(r.data for r in got) == sorted(s.data for s in jobs() if s.function == "copyPRO")


def test_window_repairs_empty_payloads_gearmand_itself_cannot_replay(sqlite_queue, cli):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, [JobSpec("fn", "empty", b""), JobSpec("fn", "full", b"x", priority=2)])
    # gearmand stores the empty payload as NULL, which its own replay refuses.
    assert sqlite_queue.sql("SELECT typeof(data) FROM gearman_queue WHERE unique_key='empty'") == [
        ("null",)
    ]
    result = cli("reprioritise", *sqlite_queue.cli_args(), "-f", "fn", "--to", "normal", "--yes")
    assert result.exit_code == 0, result.output
    assert "repaired 1 rows" in result.stdout
    daemon.pid = int(daemon.pidfile.read_text())
    assert priority_status(daemon.port) == {"fn": (0, 2, 0)}
    got = {r.unique: r.data for r in work(daemon.port, ["fn"], 2, timeout=60)}
    assert got == {"empty": b"", "full": b"x"}


def test_plan_file_applies_several_edits_in_one_stop(queue, cli, tmp_path):
    daemon = queue.gearmand()
    submit(daemon.port, jobs())
    plan = tmp_path / "tonight.toml"
    plan.write_text(
        """
[[edit]]
action = "reprioritise"
function = "copyPRO"
to = "high"

[[edit]]
action = "purge"
function = "copyTrial"
unique = ["t0", "t1"]
"""
    )
    dry = cli("window", *queue.cli_args(), str(plan), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would reprioritise" in dry.stdout and ": 2 jobs" in dry.stdout
    assert priority_status(daemon.port) == {"copyTrial": (0, 6, 0), "copyPRO": (0, 0, 4)}
    result = cli("window", *queue.cli_args(), str(plan), "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("stopped in") == 1  # one stop for the whole plan
    daemon.pid = int(daemon.pidfile.read_text())
    assert priority_status(daemon.port) == {"copyTrial": (0, 4, 0), "copyPRO": (4, 0, 0)}
    assert priority_status(daemon.port) == queue.counts()


def test_bad_plan_is_refused_before_anything(sqlite_queue, cli, tmp_path):
    daemon = sqlite_queue.gearmand()
    plan = tmp_path / "bad.toml"
    plan.write_text('[[edit]]\naction = "reprioritise"\nfunction = "x"\ncolour = "red"\n')
    result = cli("window", *sqlite_queue.cli_args(), str(plan), "--yes")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: plan {plan}, edit 1: unknown key(s) colour"
    ]
    assert daemon.running()


def test_no_restart_then_start(sqlite_queue, cli):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, jobs())
    result = cli("purge", *sqlite_queue.cli_args(), "-f", "copyTrial", "--yes", "--no-restart")
    assert result.exit_code == 0, result.output
    assert not daemon.running()
    assert sqlite_queue.counts() == {"copyPRO": (0, 0, 4)}
    started = cli("start", *sqlite_queue.cli_args())
    assert started.exit_code == 0, started.output
    daemon.pid = int(daemon.pidfile.read_text())
    assert priority_status(daemon.port) == {"copyPRO": (0, 0, 4)}


def test_window_refuses_to_stop_a_daemon_that_could_not_come_back(sqlite_queue, cli):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, jobs())
    # A careless hand edit of the live table: gearmand would crash on it at the next start.
    sqlite_queue.insert([("poison", "copyTrial", 7, b"x", 0)])
    result = cli("reprioritise", *sqlite_queue.cli_args(), "-f", "copyPRO", "--to", "high", "--yes")
    assert result.exit_code == 1
    assert "a restart would leave it down, so it was not stopped" in result.stderr
    assert daemon.running()
    assert priority_status(daemon.port) == {"copyTrial": (0, 6, 0), "copyPRO": (0, 0, 4)}


def test_restore_while_running_runs_the_window(queue, cli, tmp_path):
    daemon = queue.gearmand()
    submit(daemon.port, jobs())
    before = queue.rows()
    snap = cli("snapshot", *queue.cli_args(), "--out", str(tmp_path / "before.qtsnap"))
    assert snap.exit_code == 0, snap.output
    purged = cli("purge", *queue.cli_args(), "-f", "copyTrial", "--yes")
    assert purged.exit_code == 0, purged.output
    daemon.pid = int(daemon.pidfile.read_text())
    assert priority_status(daemon.port) == {"copyPRO": (0, 0, 4)}
    restored = cli("restore", *queue.cli_args(), str(tmp_path / "before.qtsnap"), "--yes")
    assert restored.exit_code == 0, restored.output
    assert "restored 10 rows" in restored.stdout
    daemon.pid = int(daemon.pidfile.read_text())
    assert queue.rows() == before
    assert priority_status(daemon.port) == {"copyTrial": (0, 6, 0), "copyPRO": (0, 0, 4)}


def test_migrate_while_running_stops_the_source_daemon_and_starts_the_new_one(
    sqlite_queue, mysql_queue, cli
):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, jobs())
    before = sqlite_queue.rows()
    new = mysql_queue.gearmand(start=False)  # the command line for the new queue
    result = cli(
        "migrate", sqlite_queue.url, mysql_queue.url, "--yes", "--quiet",
        "--start-with", " ".join(new.argv),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not daemon.running()  # restarted on the old queue it would run the jobs twice
    assert sqlite_queue.rows() == before  # the source is never changed
    assert mysql_queue.rows() == before
    new.pid = int(new.pidfile.read_text())
    assert priority_status(new.port) == {"copyTrial": (0, 6, 0), "copyPRO": (0, 0, 4)}


def test_failed_migration_restarts_the_source_daemon(sqlite_queue, mysql_queue, cli):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, jobs())
    mysql_queue.sql(f"ALTER TABLE {mysql_queue.table} DROP COLUMN when_to_run")
    result = cli("migrate", sqlite_queue.url, mysql_queue.url, "--yes", "--quiet")
    assert result.exit_code == 2
    assert "when_to_run" in result.stderr
    daemon.pid = int(daemon.pidfile.read_text())
    assert daemon.running()
    assert priority_status(daemon.port) == {"copyTrial": (0, 6, 0), "copyPRO": (0, 0, 4)}


def test_plan_values_must_have_their_type(sqlite_queue, cli, tmp_path):
    sqlite_queue.insert([("u1", "fn", 1, b"x", 0)])
    cases = {
        '[[edit]]\naction = "purge"\nall = "false"\n': "all must be true or false, not 'false'",
        '[[edit]]\naction = "reschedule"\nfunction = "fn"\nnow = "no"\n': "now must be true",
        "edit = [1]\n": "each edit must be an [[edit]] table",
        '[[edit]]\naction = "repair"\nfunction = 5\n': "function must be a string or a list",
    }
    for text, message in cases.items():
        plan = tmp_path / "plan.toml"
        plan.write_text(text)
        result = cli("window", *sqlite_queue.cli_args(), str(plan), "--yes")
        assert result.exit_code == 2, (text, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    result = cli("window", *sqlite_queue.cli_args(), str(binary), "--yes")
    assert result.exit_code == 2 and "is not valid TOML" in result.stderr
    assert sqlite_queue.rows() == [("u1", "fn", 1, b"x", 0)]


def test_restore_never_prunes_the_snapshot_it_restores(sqlite_queue, cli, tmp_path):
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    config = tmp_path / "q.toml"
    config.write_text(f'[snapshots]\ndir = "{snaps}"\nkeep = 2\n')
    args = [*sqlite_queue.cli_args(), "--config", str(config)]
    sqlite_queue.insert([("u1", "fn", 1, b"x", 0)])
    first = cli("snapshot", *args).stdout.splitlines()[0].removeprefix("snapshot: ")
    sqlite_queue.insert([("u2", "fn", 1, b"y", 0)])
    assert cli("snapshot", *args).exit_code == 0
    result = cli("restore", *args, first, "--yes")
    assert result.exit_code == 0, result.output
    assert sqlite_queue.rows() == [("u1", "fn", 1, b"x", 0)]
    assert (snaps / first.rsplit("/", 1)[1]).exists()  # the oldest, but being restored
