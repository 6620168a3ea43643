"""stop / start / status through the CLI, against real gearmand daemons.

Every result is checked by another path too: gearadmin --priority-status, the plain
driver (queue.counts()), /proc, and a gear worker receiving the jobs.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from servers import (
    Gearmand,
    JobSpec,
    admin,
    holding_worker,
    pid_alive,
    priority_status,
    submit,
    work,
)

from queuetool.daemon.discover import read_cmdline

JOBS = [JobSpec(f"fn{i % 2}", f"u{i}", bytes([i]), priority=i % 3) for i in range(30)]


def env(tmp_path: Path, config: Path | None = None) -> dict:
    e = {"XDG_STATE_HOME": str(tmp_path / "state")}
    if config is not None:
        e["QUEUETOOL_CONFIG"] = str(config)
    return e


def adopt(daemon: Gearmand) -> int:
    """Point the fixture's Gearmand at the daemon queuetool started (so it is stopped)."""
    daemon.pid = int(admin(daemon.port, "getpid").split()[1])
    return daemon.pid


def test_stop_then_start_signal_way(queue, cli, tmp_path):
    stop_then_start(queue, cli, tmp_path, sos=False)


def test_stop_then_start_store_queue_on_shutdown(sqlite_queue, cli, tmp_path):
    stop_then_start(sqlite_queue, cli, tmp_path, sos=True)


def stop_then_start(queue, cli, tmp_path: Path, sos: bool) -> None:
    daemon = queue.gearmand(*(["--store-queue-on-shutdown"] if sos else []))
    submit(daemon.port, JOBS)
    before = priority_status(daemon.port)
    old_pid, old_argv = daemon.pid, read_cmdline(daemon.pid)

    stopped = cli("stop", *queue.cli_args(), env=env(tmp_path))
    assert stopped.exit_code == 0, stopped.output
    assert f"gearmand pid {old_pid} stopped" in stopped.stdout
    assert "it held 30 jobs" in stopped.stdout
    assert not pid_alive(old_pid)
    assert queue.counts() == before  # written at the clean stop with --store-queue-on-shutdown

    started = cli("start", *queue.cli_args(), env=env(tmp_path))
    assert started.exit_code == 0, started.output
    assert "reload verified: the daemon holds the table's 30 jobs" in started.stdout
    assert "downtime: " in started.stdout
    new_pid = adopt(daemon)
    assert new_pid != old_pid
    assert read_cmdline(new_pid) == old_argv  # the exact command line came back
    assert priority_status(daemon.port) == before
    got = work(daemon.port, ["fn0", "fn1"], 30, timeout=60)
    assert sorted(r.data for r in got) == sorted(j.data for j in JOBS)


def test_status_shows_daemon_table_and_sources(queue, cli, tmp_path):
    daemon = queue.gearmand()
    submit(daemon.port, JOBS[:5])
    result = cli("status", *queue.cli_args(), "--gearmand", daemon.address)
    assert result.exit_code == 0, result.output
    assert f"gearmand is up: pid {daemon.pid}, version 1." in result.stdout
    assert "  queue: " in result.stdout and "[option]" in result.stdout
    out = json.loads(cli("status", "--gearmand", daemon.address, "--format", "json").stdout)
    assert out["daemon"]["pid"] == daemon.pid
    assert out["settings"]["queue"]["source"] == (
        f"discovered from gearmand pid {daemon.pid} (answering at {daemon.address})"
    )
    by_function = {f["function"]: f for f in out["functions"]}
    assert by_function["fn0"]["daemon queued"] == by_function["fn0"]["table rows"] == 3
    # A row the daemon does not know (written behind its back) shows as a difference.
    queue.insert([("sneaky", "fn0", 1, b"x", 0)])
    out = json.loads(cli("status", "--gearmand", daemon.address, "--format", "json").stdout)
    assert {f["function"]: f["difference"] for f in out["functions"]}["fn0"] == 1
    daemon.stop()
    down = cli("status", *queue.cli_args(), "--gearmand", daemon.address)
    assert down.exit_code == 0 and "gearmand is down" in down.stdout


def service_script(tmp_path: Path, daemon: Gearmand) -> Path:
    """A tiny service manager: `svc start` runs the daemon's command line, `svc stop` TERMs it."""
    script = tmp_path / "svc"
    argv = " ".join(shlex.quote(a) for a in daemon.argv)
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$1" >> {tmp_path}/svc.log\n'
        'case "$1" in\n'
        f"  start) {argv} ;;\n"
        f'  stop) kill -TERM "$(cat {daemon.pidfile})" ;;\n'
        "  *) exit 2 ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    return script


def test_command_way(queue, cli, tmp_path):
    daemon = queue.gearmand()
    submit(daemon.port, JOBS)
    script = service_script(tmp_path, daemon)
    config = tmp_path / "queuetool.toml"
    # The script ignores the password; the output must never show it.
    start = f"{script} start --mysql-password=S3CRET"
    config.write_text(f'[gearmand]\nstop = "{script} stop"\nstart = "{start}"\n')
    args = [*queue.cli_args(), "--gearmand", daemon.address]
    old = daemon.pid
    stopped = cli("stop", *args, env=env(tmp_path, config))
    assert stopped.exit_code == 0, stopped.output
    assert f"(command: {script} stop)" in stopped.stdout
    assert not pid_alive(old)
    started = cli("start", *args, env=env(tmp_path, config))
    assert started.exit_code == 0, started.output
    assert "reload verified" in started.stdout
    assert f"(command: {script} start --mysql-password=***)" in started.stdout
    assert "S3CRET" not in started.output
    shown = cli("status", *args, env=env(tmp_path, config))
    assert f"start: {script} start --mysql-password=***  [config]" in shown.stdout
    assert "S3CRET" not in shown.output
    adopt(daemon)
    assert (tmp_path / "svc.log").read_text().split() == ["stop", "start"]
    assert priority_status(daemon.port) == queue.counts()


def test_failing_start_command(sqlite_queue, cli, tmp_path):
    daemon = sqlite_queue.gearmand()
    config = tmp_path / "queuetool.toml"
    config.write_text(
        "[gearmand]\nstart = \"sh -c 'echo unit gearman.service not found >&2; exit 5'\"\n"
    )
    assert cli("stop", *sqlite_queue.cli_args(), env=env(tmp_path)).exit_code == 0
    result = cli("start", *sqlite_queue.cli_args(), env=env(tmp_path, config))
    assert result.exit_code == 6
    assert "start command failed (exit 5)" in result.stderr
    assert "unit gearman.service not found" in result.stderr
    assert not daemon.running()


def test_refuses_to_start_on_a_row_that_crashes_gearmand(sqlite_queue, cli, tmp_path):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS[:6])
    assert cli("stop", *sqlite_queue.cli_args(), env=env(tmp_path)).exit_code == 0
    sqlite_queue.insert([("bad", "fn0", 7, b"x", 0)])  # a careless hand edit
    result = cli("start", *sqlite_queue.cli_args(), env=env(tmp_path))
    assert result.exit_code == 1
    assert "not starting gearmand" in result.stderr and "priority_range" in result.stderr
    assert admin_refused(daemon.port)
    sqlite_queue.sql("DELETE FROM gearman_queue WHERE priority = 7")
    result = cli("start", *sqlite_queue.cli_args(), env=env(tmp_path))
    assert result.exit_code == 0, result.output
    adopt(daemon)
    assert priority_status(daemon.port) == sqlite_queue.counts()


def admin_refused(port: int) -> bool:
    try:
        admin(port, "getpid", timeout=1)
    except OSError:
        return True
    return False


def test_drain_reports_a_held_job_which_runs_again_after_start(queue, cli, tmp_path):
    daemon = queue.gearmand()
    submit(daemon.port, [JobSpec("slow", "held", b"payload-held")])
    with holding_worker(daemon.port, "slow"):
        result = cli("stop", *queue.cli_args(), "--drain", "1", env=env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "1 running" in result.stdout
    assert "ran out with jobs still running: slow (1)" in result.stderr
    assert [r[0] for r in queue.rows()] == ["held"]  # the running job is still queued
    assert cli("start", *queue.cli_args(), env=env(tmp_path)).exit_code == 0
    adopt(daemon)
    got = work(daemon.port, ["slow"], 1, timeout=60)
    assert [r.data for r in got] == [b"payload-held"]


def test_wrong_counts_after_start_exit_5(sqlite_queue, cli, tmp_path):
    """A start command that brings up a daemon on another file: the reload does not verify."""
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, JOBS[:4])
    wrong_dir = tmp_path / "wrong"
    wrong_dir.mkdir()
    import shutil

    shutil.copy(sqlite_queue.sqlite_path, wrong_dir / "queue.db")
    impostor = Gearmand(
        wrong_dir,
        ["-q", "libsqlite3", f"--libsqlite3-db={wrong_dir / 'queue.db'}"],
        port=daemon.port,
    )
    sqlite_queue.daemons.append(impostor)
    assert cli("stop", *sqlite_queue.cli_args(), env=env(tmp_path)).exit_code == 0
    sqlite_queue.insert([("extra", "fn0", 0, b"x", 0)])
    config = tmp_path / "queuetool.toml"
    config.write_text(f'[gearmand]\nstart = "{shlex.join(impostor.argv)}"\n')
    result = cli(
        "start", *sqlite_queue.cli_args(), "--gearmand", daemon.address, env=env(tmp_path, config)
    )
    adopt(impostor)
    assert result.exit_code == 5
    assert "reload NOT verified: the table holds 5 jobs, the daemon 4" in result.stderr
    assert "fn0/high: table 2, daemon 1" in result.stderr


def test_hashtable_buckets_rewrites_the_command_line(sqlite_queue, cli, tmp_path):
    daemon = sqlite_queue.gearmand("--hashtable-buckets", "991")
    submit(daemon.port, JOBS[:3])
    assert cli("stop", *sqlite_queue.cli_args(), env=env(tmp_path)).exit_code == 0
    result = cli(
        "start", *sqlite_queue.cli_args(), "--hashtable-buckets", "5003", env=env(tmp_path)
    )
    assert result.exit_code == 0, result.output
    argv = read_cmdline(adopt(daemon))
    assert argv[-1] == "--hashtable-buckets=5003" and "991" not in argv
    assert priority_status(daemon.port) == sqlite_queue.counts()


IDENTICAL = [JobSpec(f"fn{i % 2}", f"u{i}", bytes([65 + i]), priority=1) for i in range(12)]


# -- status compares per function AND priority ---------------------------------------------


def test_status_flags_a_priority_that_differs_when_totals_agree(queue, cli, tmp_path):
    daemon = queue.gearmand()
    submit(daemon.port, IDENTICAL)
    # Behind the daemon's back (as `--force` would): same totals, other priorities.
    queue.sql("UPDATE gearman_queue SET priority = 0 WHERE function_name = 'fn1'")
    assert priority_status(daemon.port) == {"fn0": (0, 6, 0), "fn1": (0, 6, 0)}
    assert queue.counts() == {"fn0": (0, 6, 0), "fn1": (6, 0, 0)}
    args = (*queue.cli_args(), "--gearmand", daemon.address)
    out = json.loads(cli("status", *args, "--format", "json").stdout)
    by_function = {f["function"]: f for f in out["functions"]}
    assert by_function["fn1"]["difference"] == 0  # the totals agree...
    assert by_function["fn1"]["priority differences"] == [
        {"priority": "high", "table": 6, "daemon": 0},
        {"priority": "normal", "table": 0, "daemon": 6},
    ]
    assert by_function["fn0"]["priority differences"] == []
    text = cli("status", *args)
    assert text.exit_code == 0, text.output
    fn1 = next(line for line in text.stdout.splitlines() if line.startswith("fn1"))
    assert "high: table 6, daemon 0; normal: table 0, daemon 6" in fn1
    assert "note: the table and the daemon differ" in text.stdout


def test_status_does_not_flag_a_job_a_worker_holds(sqlite_queue, cli):
    """A running job is still a row but not in prioritystatus: not a difference."""
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, IDENTICAL)
    args = (*sqlite_queue.cli_args(), "--gearmand", daemon.address, "--format", "json")
    with holding_worker(daemon.port, "fn0"):
        out = json.loads(cli("status", *args).stdout)
    by_function = {f["function"]: f for f in out["functions"]}
    assert by_function["fn0"]["running"] == 1
    assert by_function["fn0"]["priority differences"] == []
