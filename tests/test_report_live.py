"""report against queues filled through a real gearmand by a real client."""

from __future__ import annotations

import json
import time

from servers import JobSpec, priority_status, submit, work


def fill(queue, daemon) -> list[JobSpec]:
    jobs = [
        JobSpec(f"fn{i % 3}", f"u{i}", bytes([i % 256, 0, 255]) * (i % 5), priority=i % 3)
        for i in range(60)
    ]
    jobs.append(JobSpec("fn0", "later", b"\x00later", when=2_000_000_000))
    submit(daemon.port, jobs)
    return jobs


def test_report_counts_equal_gearadmin(queue, cli):
    daemon = queue.gearmand()
    fill(queue, daemon)
    live = priority_status(daemon.port)
    assert cli.report_counts(*queue.cli_args()) == live
    assert live == queue.counts()
    result = cli("report", *queue.cli_args(), "--format", "json")
    # The scheduled job is counted as scheduled, not due.
    fn0 = [c for c in json.loads(result.stdout) if c["function"] == "fn0"]
    assert sum(c["scheduled"] for c in fn0) == 1


def test_report_table_and_prometheus(queue, cli):
    daemon = queue.gearmand()
    fill(queue, daemon)
    table = cli("report", *queue.cli_args())
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "function",
        "HIGH",
        "NORMAL",
        "LOW",
        "total",
        "scheduled",
        "due",
        "bytes",
    ]
    assert lines[-1].split()[:5] == ["TOTAL", "20", "21", "20", "61"]
    prom = cli("report", *queue.cli_args(), "--format", "prometheus")
    assert 'gearman_queue_jobs{function="fn1",priority="normal",queue="default"} 20.0' in (
        prom.stdout
    )


def test_worker_drains_queue_and_report_follows(queue, cli):
    daemon = queue.gearmand()
    submit(daemon.port, [JobSpec("drain", f"k{i}", b"\x00\xff" + bytes([i])) for i in range(5)])
    got = work(daemon.port, ["drain"], 5, timeout=60)
    assert sorted(r.data for r in got) == sorted(b"\x00\xff" + bytes([i]) for i in range(5))
    # gearmand deletes a row when it has processed WORK_COMPLETE, just after the worker
    # sent it: wait until the daemon itself counts no job, then read the table.
    deadline = time.monotonic() + 60
    while "drain" in priority_status(daemon.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    result = cli("report", *queue.cli_args(), "--format", "json")
    assert json.loads(result.stdout) == []
