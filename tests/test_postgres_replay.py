"""gearmand's PostgreSQL replay bug, end to end, against a real gearmand and PostgreSQL.

On gearmand's own layout (INTEGER priority and when_to_run) every restart replays
each job as HIGH and due now (upstream bug, GEARMAND.md). `check` flags the layout,
the window refuses it before stopping the daemon, `make-replay-safe` converts it
(snapshot, one transaction) and the verified restart keeps priorities and schedules.
"""

from __future__ import annotations

import json

import pytest
from conftest import make_postgres_queue
from servers import JobSpec, pid_alive, priority_status, submit, work

LATER = 1_999_999_999  # 2033: a scheduled job that must keep waiting


def jobs() -> list[JobSpec]:
    return [
        JobSpec("fn", "h1", b"high", priority=0),
        JobSpec("fn", "n1", b"normal-1", priority=1),
        JobSpec("fn", "n2", b"normal-2", priority=1),
        JobSpec("fn", "l1", b"low\x00\xff", priority=2),
        JobSpec("later", "s1", b"scheduled", when=LATER),
    ]


EXPECTED = {"fn": (1, 2, 1), "later": (0, 1, 0)}


@pytest.fixture
def gearmand_layout(tmp_path, postgres_server, postgres_db):
    """A queue table exactly as gearmand's libpq plugin makes it (INTEGER columns)."""
    queue = make_postgres_queue(tmp_path, postgres_server, postgres_db, "queue", replay_safe=False)
    try:
        yield queue
    finally:
        for daemon in queue.daemons:
            daemon.stop_all()


def restart(daemon) -> None:
    daemon.stop()
    daemon.start()


def test_the_replay_bug_is_found_refused_and_fixed_with_a_verified_restart(
    gearmand_layout, cli, snapdir
):
    queue = gearmand_layout
    daemon = queue.gearmand()
    submit(daemon.port, jobs())
    assert priority_status(daemon.port) == EXPECTED == queue.counts()
    assert queue.sql("SELECT when_to_run FROM queue WHERE unique_key = 's1'") == [(LATER,)]

    # The upstream bug: a plain restart flattens the queue (the rows keep their values).
    restart(daemon)
    assert priority_status(daemon.port) == {"fn": (4, 0, 0), "later": (1, 0, 0)}
    assert queue.counts() == EXPECTED

    # check says so, with the fix.
    result = cli("check", *queue.cli_args(), "--format", "json")
    assert result.exit_code == 1, result.output
    schema = json.loads(result.stdout)["schema"]
    assert schema == [
        "priority and when_to_run are integer columns: gearmand's PostgreSQL replay reads "
        "them as 0, so after a restart every job is HIGH and due now; fix: "
        "`queuetool make-replay-safe` (makes them TEXT, snapshot first)"
    ]

    # The window refuses before it stops anything: a restart would flatten the queue.
    pid = daemon.pid
    result = cli("reprioritise", *queue.cli_args(), "-f", "fn", "--to", "low", "--yes")
    assert result.exit_code == 1, result.output
    assert "A restart now would flatten the queue's priorities and schedules" in result.stderr
    assert "queuetool make-replay-safe" in result.stderr
    assert pid_alive(pid) and daemon.pidfile.read_text().strip() == str(pid)
    assert queue.counts() == EXPECTED

    # The fix, through the window (the daemon runs): stop, convert, start, verify.
    restart(daemon)  # a fresh daemon, flattened again in memory
    result = cli("make-replay-safe", *queue.cli_args(), "--yes", "--snapshot-dir", str(snapdir))
    assert result.exit_code == 0, result.output
    assert "converted priority, when_to_run to TEXT: 5 rows verified unchanged" in result.stdout
    assert "downtime:" in result.stdout
    assert len(list(snapdir.glob("*.qtsnap"))) == 1
    types = queue.sql(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'queue' AND column_name IN ('priority', 'when_to_run') ORDER BY 1"
    )
    assert types == [("priority", "text"), ("when_to_run", "text")]
    assert not pid_alive(pid)
    daemon.pid = int(daemon.pidfile.read_text())
    assert priority_status(daemon.port) == EXPECTED == queue.counts()

    # And again after one more plain restart: the fix holds.
    restart(daemon)
    assert priority_status(daemon.port) == EXPECTED
    assert cli("check", *queue.cli_args()).exit_code == 0

    # A worker gets the jobs in priority order; the scheduled one keeps waiting.
    # Exactly the four due ones, however long a loaded machine takes; that s1 stays is
    # checked below, on the daemon and in the table.
    got = work(daemon.port, ["fn", "later"], 4, timeout=60)
    assert got[0].unique == "h1"
    assert got[3].unique == "l1"
    assert sorted(r.unique for r in got[1:3]) == ["n1", "n2"]
    assert [r.data for r in got if r.unique == "l1"] == [b"low\x00\xff"]
    assert len(got) == 4  # s1 (2033) did not run
    assert priority_status(daemon.port) == {"later": (0, 1, 0)}
    assert queue.counts() == {"later": (0, 1, 0)}


def test_make_replay_safe_on_a_stopped_daemon_and_a_second_run_changes_nothing(
    gearmand_layout, cli, snapdir
):
    queue = gearmand_layout
    daemon = queue.gearmand()
    submit(daemon.port, jobs())
    daemon.stop()
    before = queue.rows()
    result = cli("make-replay-safe", *queue.cli_args(), "--dry-run")
    assert result.exit_code == 0 and "dry run: would convert" in result.stdout
    result = cli("make-replay-safe", *queue.cli_args(), "--yes", "--snapshot-dir", str(snapdir))
    assert result.exit_code == 0, result.output
    assert "gearmand replays this table right from its next start" in result.stdout
    assert queue.rows() == before
    # The rewrite dropped the two columns' statistics; they are gathered again.
    assert queue.sql(
        "SELECT attname FROM pg_stats WHERE tablename = 'queue' "
        "AND attname IN ('priority', 'when_to_run') ORDER BY 1"
    ) == [("priority",), ("when_to_run",)]
    result = cli("make-replay-safe", *queue.cli_args(), "--yes")
    assert result.stdout == "table queue replays right already: nothing to do\n"
    daemon.start()
    assert priority_status(daemon.port) == EXPECTED
    # gearmand keeps writing the TEXT layout with its own INSERT.
    submit(daemon.port, [JobSpec("fn", "l2", b"x", priority=2)])
    assert queue.counts()["fn"] == (1, 2, 2)


def test_reading_and_editing_work_on_both_layouts(tmp_path, postgres_server, postgres_db, cli):
    for table, safe in (("ints", False), ("texts", True)):
        queue = make_postgres_queue(tmp_path, postgres_server, postgres_db, table, replay_safe=safe)
        queue.insert(
            [("a", "fn", 1, b"1", 0), ("b", "fn", 2, b"2", 10), ("c", "fn", 0, b"3", LATER)]
        )
        args = queue.cli_args()
        assert cli.report_counts(*args) == {"fn": (1, 1, 1)}
        result = cli("jobs", *args, "--scheduled", "--format", "json")
        assert [j["unique_key"] for j in json.loads(result.stdout)] == ["c"]
        result = cli("reschedule", *args, "--unique", "b", "--in", "1h", "--yes", "--force")
        assert result.exit_code == 0, result.output
        result = cli("reprioritise", *args, "-p", "low", "--to", "high", "--yes", "--force")
        assert result.exit_code == 0, result.output
        assert queue.counts() == {"fn": (2, 1, 0)}
        whens = dict(queue.sql(f"SELECT unique_key, when_to_run FROM {table}"))
        assert whens["a"] == 0 and whens["c"] == LATER and whens["b"] > 10


def test_a_64_byte_key_is_stored_cut_to_63_so_the_window_goes_on_and_the_job_is_intact(
    postgres_queue, cli
):
    """Unlike the SQLite and MySQL plugins, the libpq plugin stores gearmand's cut key
    (63 bytes, its C string): the table holds no 64-byte key for the window to refuse,
    and after the restart the job is handed out with that key and its payload intact
    (no NUL in front of it, as on the other queues)."""
    queue = postgres_queue
    daemon = queue.gearmand()
    submit(daemon.port, [JobSpec("fn", "k" * 64, b"payload"), JobSpec("other", "o")])
    keys = queue.sql(f"SELECT unique_key, octet_length(unique_key) FROM {queue.table}")
    assert sorted(keys) == [("k" * 63, 63), ("o", 1)]
    result = cli("reprioritise", *queue.cli_args(), "-f", "other", "--to", "high", "--yes")
    assert result.exit_code == 0, result.output
    assert priority_status(daemon.port) == {"fn": (0, 1, 0), "other": (1, 0, 0)}
    got = work(daemon.port, ["fn"], 1)
    assert [(j.unique, j.data) for j in got] == [("k" * 63, b"payload")]


def test_check_reports_text_that_is_no_number_instead_of_failing_on_the_cast(
    tmp_path, postgres_server, postgres_db, cli
):
    queue = make_postgres_queue(tmp_path, postgres_server, postgres_db, "texts", replay_safe=True)
    queue.sql(
        "INSERT INTO texts VALUES ('a', 'fn', 'soon', 'x', '0'), ('b', 'fn', '1', 'y', 'later'), "
        "('c', 'fn', '7', 'z', '0'), ('d', 'fn', '1', 'w', '99999999999'), "
        "('e', 'fn', '2', '', '5'), ('f', 'fn', '1', 'v', '1234567890123456789'), "
        "('g', 'fn', '-', 'u', '0'), ('h', 'fn', '1', 't', '--5'), "
        "('i', 'fn', '1', 's', '-123456789012345678')"
    )
    result = cli("check", *queue.cli_args(), "--format", "json")
    assert result.exit_code == 1, result.output
    found = {
        p["kind"]: [e["unique_key"] for e in p["examples"]]
        for p in json.loads(result.stdout)["problems"]
    }
    # 19 digits could overflow the BIGINT every reading casts to: no integer either.
    # A sign and 18 digits is one (only out of range).
    assert {k: sorted(v) for k, v in found.items()} == {
        "priority_type": ["a", "g"],
        "when_to_run_type": ["b", "f", "h"],
        "priority_range": ["c"],
        "when_to_run_range": ["d", "i"],
    }
    # Reading such a table stops on the cast, in one line that says where to look.
    result = cli("report", *queue.cli_args())
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert 'invalid input syntax for type bigint: "' in result.stderr
    assert "is not an integer: `queuetool check` lists such jobs" in result.stderr
    # So does a snapshot, whose rows are streamed through the driver's own cursor.
    result = cli("snapshot", *queue.cli_args(), "--out", str(tmp_path / "s.qtsnap"))
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "is not an integer: `queuetool check` lists such jobs" in result.stderr


def test_migrate_while_the_source_runs_refuses_the_integer_layout_before_stopping(
    gearmand_layout, cli, tmp_path
):
    """A failed copy restarts the daemon on the source: on gearmand's INTEGER layout that
    restart would flatten the queue, so the migration's window refuses as the edit
    window does, before anything is stopped or written."""
    queue = gearmand_layout
    daemon = queue.gearmand()
    submit(daemon.port, jobs())
    pid = daemon.pid
    target = tmp_path / "target.db"
    result = cli("migrate", queue.url, f"sqlite:///{target}", "--yes")
    assert result.exit_code == 1, result.output
    assert "A restart now would flatten the queue's priorities and schedules" in result.stderr
    assert "queuetool make-replay-safe" in result.stderr
    assert pid_alive(pid) and daemon.pidfile.read_text().strip() == str(pid)
    assert priority_status(daemon.port) == EXPECTED == queue.counts()
    assert not target.exists()
