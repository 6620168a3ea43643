"""gearmand 1.1.20's scheduling bugs against the real daemon and a real `gear` worker:
blocked priority lists, due jobs nobody wakes the workers for, and the age UUIDv1 keys
carry (GEARMAND.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import gear
import pytest
from conftest import make_sqlite_queue
from servers import JobSpec, priority_status, submit

QUEUETOOL = str(Path(sys.executable).with_name("queuetool"))


class Collector:
    """A worker already waiting for `function`, recording when each job arrived."""

    def __init__(self, port: int, function: str) -> None:
        self.got: list[tuple[str, float]] = []
        self.worker = gear.Worker("queuetool-test-scheduling")
        self.worker.addServer("127.0.0.1", port)
        self.worker.waitForServer(timeout=30)
        self.worker.registerFunction(function)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                job = self.worker.getJob()
            except gear.InterruptedError:
                return
            self.got.append((job.unique.decode(), time.time()))
            job.sendWorkComplete()

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.got) >= count:
                return True
            time.sleep(0.05)
        return len(self.got) >= count

    def stop(self) -> None:
        self.worker.stopWaitingForJobs()
        self.worker.shutdown()
        self.thread.join(10)


def test_scheduled_normal_jobs_block_due_low_jobs_until_moved_to_low(sqlite_queue, cli):
    now = int(time.time())
    later = now + 3600
    sqlite_queue.insert(
        [(f"n{i}", "f", 1, b"n", later) for i in range(2)]
        + [(f"l{i}", "f", 2, b"l", 0) for i in range(3)]
    )
    daemon = sqlite_queue.gearmand()
    args = [*sqlite_queue.cli_args(), "--gearmand", daemon.address]
    worker = Collector(daemon.port, "f")
    try:
        # A worker is waiting, three LOW jobs are due: gearmand 1.1 hands out none.
        assert not worker.wait_for(1, 3.0)
        assert priority_status(daemon.port)["f"] == (0, 2, 3)
        report = cli("report", *args, "--format", "json")
        cells = {c["priority"]: c for c in json.loads(report.stdout)}
        assert (cells["low"]["blocked"], cells["low"]["blocked_until"]) == (3, later)
        assert (cells["normal"]["blocked"], cells["normal"]["blocked_until"]) == (0, None)
        check = cli("check", *args)
        assert check.exit_code == 0
        assert "f: 3 due jobs blocked until" in check.stdout
        assert "--priority normal --scheduled --to low" in check.stdout
        # The fix `check` offers: the scheduled jobs wait in LOW, where they block nothing.
        fix = cli(
            "reprioritise",
            *args,
            "-f",
            "f",
            "--priority",
            "normal",
            "--scheduled",
            "--to",
            "low",
            "--yes",
        )
        assert fix.exit_code == 0, fix.output
    finally:
        worker.stop()
    worker = Collector(daemon.port, "f")
    try:
        assert worker.wait_for(3, 60.0)
        assert sorted(u for u, _ in worker.got) == ["l0", "l1", "l2"]
    finally:
        worker.stop()
    assert sorted(sqlite_queue.rows()) == [(f"n{i}", "f", 2, b"n", later) for i in range(2)]
    report = cli("report", *args, "--format", "json")
    assert all(c["blocked"] == 0 for c in json.loads(report.stdout))


def test_due_jobs_wait_for_a_wake_up_and_wake_every_hands_them_out(sqlite_queue, cli):
    daemon = sqlite_queue.gearmand()
    args = [*sqlite_queue.cli_args(), "--gearmand", daemon.address]
    specs = [JobSpec("w", f"n{i}", priority=1) for i in range(2)]
    specs += [JobSpec("w", f"l{i}", priority=2) for i in range(2)]
    keys = sorted(s.unique for s in specs)

    def reschedule_ahead() -> tuple[int, str]:
        submit(daemon.port, specs)
        # 15 s: the CLI, the window's restart and the worker's connect must all finish
        # before the jobs are due, also on a loaded machine.
        out = cli("reschedule", *args, "-f", "w", "--in", "15s", "--yes")
        assert out.exit_code == 0, out.output
        whens = {row[4] for row in sqlite_queue.rows()}  # the time gearmand has, not a guess
        assert len(whens) == 1, whens
        return whens.pop(), out.stderr

    # Without a wake-up: the worker waits past the jobs' time and gets nothing (the
    # upstream bug, fixed in 2.0.0). This 20 s window is the one deliberate wait.
    when, advice = reschedule_ahead()
    assert "queuetool wake" in advice and "systemd-run --on-calendar=" in advice
    worker = Collector(daemon.port, "w")
    try:
        assert time.time() < when  # the worker waits before the jobs are due
        assert not worker.wait_for(1, max(0.0, when - time.time()) + 20)
        assert priority_status(daemon.port)["w"] == (0, 2, 2)
    finally:
        worker.stop()
    # Reconnecting is what wakes gearmand: let that worker take them, then try again.
    worker = Collector(daemon.port, "w")
    try:
        assert worker.wait_for(4, 60.0)
    finally:
        worker.stop()

    when, _ = reschedule_ahead()
    worker = Collector(daemon.port, "w")
    registered = time.time()
    waker = subprocess.Popen(
        [QUEUETOOL, "wake", *args, "-f", "w", "--every", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert registered < when  # the worker waits before the jobs are due
        assert worker.wait_for(4, max(0.0, when - time.time()) + 10)
        out, err = waker.communicate(timeout=30)  # ends: no scheduled job is left
    finally:
        worker.stop()
        if waker.poll() is None:
            waker.kill()
            waker.wait()
    assert waker.returncode == 0, err
    assert sorted(u for u, _ in worker.got) == keys
    # Well inside the 20 s a worker waited in vain above: the wake handed them out.
    assert all(at - when < 10 for _, at in worker.got), [(u, at - when) for u, at in worker.got]
    assert "w: workers woken" in out
    # Nothing is left behind: no trigger job, no row.
    assert priority_status(daemon.port).get("w", (0, 0, 0)) == (0, 0, 0)
    assert sqlite_queue.rows() == []


@pytest.fixture
def other_queue(tmp_path):
    """A second SQLite queue with its own gearmand, stopped at the end of the test."""
    workdir = tmp_path / "other"
    workdir.mkdir()
    queue = make_sqlite_queue(workdir)
    try:
        yield queue
    finally:
        for daemon in queue.daemons:
            daemon.stop_all()


def test_wake_finds_the_queues_own_daemon_and_refuses_another_queues(
    sqlite_queue, other_queue, cli
):
    past = int(time.time()) - 60
    sqlite_queue.insert([("due-1", "mine", 1, b"x", past)])
    other_queue.insert([("due-2", "theirs", 1, b"y", past)])
    ours, theirs = sqlite_queue.gearmand(), other_queue.gearmand()
    # No --gearmand: the daemon running here for this queue is the one woken.
    found = cli("wake", *sqlite_queue.cli_args())
    assert found.exit_code == 0, found.output
    # Had another daemon been asked, it would have had no job of `mine` to hand out.
    assert found.stdout.startswith("mine: workers woken (job H:"), found.stdout
    # Another queue's daemon is never woken, even when named.
    wrong = cli("wake", *sqlite_queue.cli_args(), "--gearmand", theirs.address)
    assert wrong.exit_code != 0 and wrong.stdout == ""
    assert "belongs to another queue's daemon" in wrong.stderr, wrong.stderr
    assert wrong.stderr.count("\n") == 1
    assert priority_status(theirs.port)["theirs"] == (0, 1, 0)
    assert priority_status(ours.port)["mine"] == (0, 1, 0)
    assert other_queue.rows() == [("due-2", "theirs", 1, b"y", past)]


def test_wake_advice_is_not_printed_for_gearmand_2(sqlite_queue, cli, monkeypatch):
    from queuetool.daemon import version

    sqlite_queue.insert([("a", "f", 1, b"x", 0)])
    monkeypatch.setattr(version, "binary_version", lambda binary=None: "2.0.0")
    out = cli("reschedule", *sqlite_queue.cli_args(), "-f", "f", "--in", "1h", "--yes")
    assert out.exit_code == 0, out.output
    assert "wake" not in out.stderr and "Note" not in out.stderr


def test_report_gives_the_age_of_jobs_submitted_by_libgearman(sqlite_queue, cli):
    daemon = sqlite_queue.gearmand()
    submitted = time.time()
    for payload in ("one", "two"):
        subprocess.run(
            ["gearman", "-b", "-f", "aged", "-h", "127.0.0.1", "-p", str(daemon.port), payload],
            check=True,
            timeout=30,
        )
    all_submitted = time.time()
    submit(daemon.port, [JobSpec("plain", "my-own-key")])
    keys = [u for u, f, *_ in sqlite_queue.rows() if f == "aged"]
    assert len(keys) == 2 and all(k[14] == "1" for k in keys)  # libgearman's UUIDv1
    args = [*sqlite_queue.cli_args(), "--gearmand", daemon.address]
    asked = time.time()
    out = cli("report", *args, "--by", "function", "--format", "json")
    answered = time.time()
    ages = {r["function"]: r["oldest_age_seconds"] for r in json.loads(out.stdout)}
    assert ages["plain"] is None
    # The oldest was submitted within [submitted, all_submitted], its age read within
    # [asked, answered]: the age lies between the bounds those give (±1 s of rounding).
    low, high = asked - all_submitted - 1, answered - submitted + 1
    assert low <= ages["aged"] <= high, (ages, low, high)
    prom = cli("report", *args, "--format", "prometheus").stdout
    assert 'gearman_queue_oldest_job_age_seconds{function="aged"' in prom
    assert 'gearman_queue_oldest_job_age_seconds{function="plain"' not in prom
    jobs = cli("jobs", *args, "--submitted-after", f"@{int(submitted) - 5}", "--format", "json")
    assert sorted(j["unique_key"] for j in json.loads(jobs.stdout)) == sorted(keys)


pytestmark = pytest.mark.gearmand


def test_report_and_check_list_blocked_lists_of_two_functions(sqlite_queue, cli):
    # Two blocked lists are sorted for the listing: they must be orderable.
    later = int(time.time()) + 3600
    sqlite_queue.insert(
        [(f"{f}n", f, 1, b"n", later) for f in ("f", "g")]
        + [(f"{f}l", f, 2, b"l", 0) for f in ("f", "g")]
    )
    report = cli("report", *sqlite_queue.cli_args(), "--format", "json")
    assert report.exit_code == 0, report.output
    cells = {(c["function"], c["priority"]): c for c in json.loads(report.stdout)}
    assert [cells[(f, "low")]["blocked"] for f in ("f", "g")] == [1, 1]
    check = cli("check", *sqlite_queue.cli_args())
    assert check.exit_code == 0, check.output
    assert "f: 1 due jobs blocked until" in check.stdout
    assert "g: 1 due jobs blocked until" in check.stdout
