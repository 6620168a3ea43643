"""Commands that select jobs on a queue whose gearmand runs with --store-queue-on-shutdown.

Such a daemon holds its queue in memory and writes it to its (empty) table only at a
clean shutdown (GEARMAND.md). An edit must stop it first and count then; a dry run,
`report` and `jobs` must not stop it and show the daemon's own counts instead.
"""

from __future__ import annotations

import json

from servers import JobSpec, pid_alive, priority_status, submit

SOS = "--store-queue-on-shutdown"
JOBS = [
    *(JobSpec("copyFiles", f"u{i}", b"u\x00%d" % i, priority=1) for i in range(5)),
    *(JobSpec("copyFiles", f"other{i}", b"o%d" % i, priority=2) for i in range(3)),
    *(JobSpec("mail", f"m{i}", b"m%d" % i, priority=1) for i in range(2)),
]
BEFORE = {"copyFiles": (0, 5, 3), "mail": (0, 2, 0)}


def holding(queue):
    """A --store-queue-on-shutdown gearmand holding JOBS; its table stays empty."""
    daemon = queue.gearmand(SOS)
    submit(daemon.port, JOBS)
    assert queue.rows() == []
    assert priority_status(daemon.port) == BEFORE
    return daemon


def adopt(daemon) -> None:
    """The window restarted the daemon under a new pid (same pid file)."""
    daemon.pid = int(daemon.pidfile.read_text())
    assert pid_alive(daemon.pid)


def written_at_stop(queue, daemon) -> dict[str, tuple[int, int, int]]:
    """Stop the daemon cleanly (it writes its queue) and count the table."""
    daemon.stop()
    return queue.counts()


def test_reprioritise_acts_on_the_queue_the_daemon_holds(sqlite_queue, cli):
    daemon = holding(sqlite_queue)
    old = daemon.pid
    result = cli(
        "reprioritise", *sqlite_queue.cli_args(), "--to", "high", "--unique", "u*", "--yes"
    )
    assert result.exit_code == 0, result.output
    assert "no jobs match" not in result.stdout
    assert "5 jobs changed: reprioritise (unique u*) to high" in result.stdout.splitlines()
    assert not pid_alive(old)
    adopt(daemon)
    assert priority_status(daemon.port) == {"copyFiles": (5, 0, 3), "mail": (0, 2, 0)}
    assert written_at_stop(sqlite_queue, daemon) == {"copyFiles": (5, 0, 3), "mail": (0, 2, 0)}
    assert {u for u, _, p, _, _ in sqlite_queue.rows() if p == 0} == {f"u{i}" for i in range(5)}


def test_declined_edit_restarts_the_daemon_on_its_unchanged_queue(sqlite_queue, cli):
    """The count is only known after the stop, so the question comes then; not confirmed
    (here: no terminal and no --yes), the daemon is started again and verified."""
    daemon = holding(sqlite_queue)
    old = daemon.pid
    result = cli("reprioritise", *sqlite_queue.cli_args(), "--to", "high", "--unique", "u*")
    assert result.exit_code == 3, result.output
    *announced, line = result.stderr.splitlines()
    assert announced[1] == (
        "maintenance window: stop gearmand, reprioritise (unique u*) to high (counted after "
        "the stop), start it again and verify the reload"
    )
    assert announced[2].startswith("predicted replay for 10 jobs")  # the daemon's own count
    assert line.startswith(
        "Error: gearmand stopped and wrote its queue. Reprioritise (unique u*) to high: 5 jobs "
        f"in {sqlite_queue.url} table gearman_queue? Not confirmed: no terminal to ask on; "
        "add --yes to go ahead; gearmand restarted (pid "
    )
    assert "reload verified: the daemon holds the table's 10 jobs; measured now: " in line
    assert line.endswith("so its counts cannot be compared with the table's")
    assert "5 jobs changed" not in result.stdout
    assert not pid_alive(old)
    adopt(daemon)
    assert priority_status(daemon.port) == BEFORE
    assert written_at_stop(sqlite_queue, daemon) == BEFORE


def test_nothing_to_change_after_the_stop(sqlite_queue, cli):
    daemon = holding(sqlite_queue)
    args = [*sqlite_queue.cli_args(), "--to", "normal", "--yes"]
    result = cli("reprioritise", *args, "--function", "mail")
    assert result.exit_code == 0, result.output
    assert "0 jobs changed, 2 already at normal: reprioritise (function mail) to normal" in (
        result.stdout.splitlines()
    )
    adopt(daemon)
    assert priority_status(daemon.port) == BEFORE


def test_dry_run_shows_the_daemons_counts_and_does_not_stop_it(sqlite_queue, cli):
    daemon = holding(sqlite_queue)
    pid = daemon.pid
    args = [*sqlite_queue.cli_args(), "--to", "high", "--dry-run"]
    result = cli("reprioritise", *args, "--function", "copy*", "--unique", "u*")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"dry run: gearmand pid {pid} runs with --store-queue-on-shutdown: while it runs its "
        "table holds only what it started with, not its queue (it holds its queue in memory "
        "and writes it at shutdown); the jobs are counted only once it has stopped\n"
        "would reprioritise (function copy*, unique u*) to high; the daemon's own counts "
        "(prioritystatus) for copy*:\n"
        "function      HIGH    NORMAL    LOW    total    running\n"
        "----------  ------  --------  -----  -------  ---------\n"
        "copyFiles        0         5      3        8          0\n"
        "TOTAL            0         5      3        8          0\n"
        "unique u*: cannot be evaluated without stopping the daemon (these counts are every "
        "waiting job of those functions)\n"
        "without --dry-run: gearmand is stopped (it writes its queue then), the matching jobs "
        "are counted, and you are asked before anything changes\n"
        "nothing changed, no snapshot taken\n"
    )
    assert result.stderr == ""
    # Not stopped: the same process, the same queue, nothing written.
    assert daemon.pid == pid and pid_alive(pid)
    assert priority_status(daemon.port) == BEFORE
    assert sqlite_queue.rows() == []
    every = cli("purge", *sqlite_queue.cli_args(), "--priority", "low", "--dry-run")
    assert every.exit_code == 0, every.output
    assert "for every function:\n" in every.stdout
    assert "copyFiles        0         0      3        3" in every.stdout
    assert "cannot be evaluated" not in every.stdout  # priorities are in the counts
    assert pid_alive(pid) and priority_status(daemon.port) == BEFORE


# What only the table tells, unknown from the daemon's counts: null in JSON.
UNKNOWN = dict.fromkeys(
    ("scheduled", "due", "bytes", "blocked", "blocked_until", "oldest_age_seconds")
)


def test_report_and_jobs_show_the_daemons_counts(sqlite_queue, cli):
    daemon = holding(sqlite_queue)
    pid = daemon.pid
    note = (
        f"note: gearmand pid {pid} runs with --store-queue-on-shutdown: while it runs its "
        "table holds only what it started with, not its queue (it holds its queue in memory "
        "and writes it at shutdown)"
    )
    table = cli("report", *sqlite_queue.cli_args())
    assert table.exit_code == 0, table.output
    assert table.stdout == (
        "function      HIGH    NORMAL    LOW    total    running\n"
        "----------  ------  --------  -----  -------  ---------\n"
        "copyFiles        0         5      3        8          0\n"
        "mail             0         2      0        2          0\n"
        "TOTAL            0         7      3       10          0\n"
    )
    assert table.stderr == (
        f"{note}; these are the daemon's own counts (prioritystatus); scheduled, due and "
        "bytes are known only once it has stopped\n"
    )
    assert cli.report_counts(*sqlite_queue.cli_args()) == BEFORE == priority_status(daemon.port)
    by = cli("report", *sqlite_queue.cli_args(), "--by", "priority", "--format", "json")
    assert json.loads(by.stdout) == [
        {"priority": "normal", "count": 7, **UNKNOWN},
        {"priority": "low", "count": 3, **UNKNOWN},
    ]
    prom = cli("report", *sqlite_queue.cli_args(), "--format", "prometheus", "-f", "mail")
    held = [line for line in prom.stdout.splitlines() if not line.startswith("#")]
    assert [line for line in held if line.startswith("gearman_queue_jobs{")] == [
        f'gearman_queue_jobs{{function="mail",priority="{p}",queue="default"}} {n}'
        for p, n in (("high", 0.0), ("normal", 2.0), ("low", 0.0))
    ]
    assert (
        'gearman_queue_info{backend="sqlite",queue="default",source="daemon",'
        'store_queue_on_shutdown="true",table="gearman_queue"} 1.0'
    ) in held
    assert "of function mail;" in prom.stderr
    jobs = cli("jobs", *sqlite_queue.cli_args(), "--unique", "u*", "--format", "csv")
    assert jobs.exit_code == 0, jobs.output
    assert jobs.stdout == "unique_key,function,priority,when_to_run,size\n"
    assert jobs.stderr == (
        f"{note}; it holds 10 waiting jobs (unique u* cannot be evaluated without stopping "
        "it), which can be listed only once it has stopped (`queuetool stop`, `queuetool "
        "jobs`, `queuetool start`)\n"
    )
    assert daemon.pid == pid and pid_alive(pid)
    assert priority_status(daemon.port) == BEFORE


def test_quiet_window_prints_only_the_result(sqlite_queue, cli):
    daemon = holding(sqlite_queue)
    args = [*sqlite_queue.cli_args(), "--function", "mail", "--to", "low", "--yes", "--quiet"]
    result = cli("reprioritise", *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "2 jobs changed: reprioritise (function mail) to low" in result.stdout.splitlines()
    adopt(daemon)
    assert priority_status(daemon.port) == {"copyFiles": (0, 5, 3), "mail": (0, 0, 2)}


def test_plan_file_counts_every_edit_after_the_one_stop(sqlite_queue, cli, tmp_path):
    daemon = holding(sqlite_queue)
    plan = tmp_path / "tonight.toml"
    plan.write_text(
        '[[edit]]\naction = "reprioritise"\nunique = "u*"\nto = "high"\n\n'
        '[[edit]]\naction = "purge"\nfunction = "mail"\n'
    )
    refused = cli("window", *sqlite_queue.cli_args(), str(plan), "--no-window")
    assert refused.exit_code == 4, refused.output
    assert daemon.running() and priority_status(daemon.port) == BEFORE  # not even stopped
    declined = cli("window", *sqlite_queue.cli_args(), str(plan))
    assert declined.exit_code == 3, declined.output
    assert (
        "Reprioritise (unique u*) to high: 5 jobs; purge (function mail): 2 jobs in "
        in declined.stderr
    )
    adopt(daemon)
    assert priority_status(daemon.port) == BEFORE
    done = cli("window", *sqlite_queue.cli_args(), str(plan), "--yes")
    assert done.exit_code == 0, done.output
    assert done.stdout.count("stopped in") == 1
    lines = done.stdout.splitlines()
    assert "5 jobs changed: reprioritise (unique u*) to high" in lines
    assert "2 jobs changed: purge (function mail)" in lines
    adopt(daemon)
    assert priority_status(daemon.port) == {"copyFiles": (5, 0, 3)}
    assert written_at_stop(sqlite_queue, daemon) == {"copyFiles": (5, 0, 3)}
