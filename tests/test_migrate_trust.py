"""migrate, trusted: the table it creates holds every job, a dry run counts what the real run
does, the old queue's daemon is not started by mistake, a dying database is one error line.

Against a real mariadbd (default charset latin1, as MariaDB ships), real gearmand daemons
and the gear client/worker.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_mysql_queue, make_sqlite_queue, mysql_ddl
from servers import (
    Gearmand,
    JobSpec,
    mysql_queue_args,
    priority_status,
    start_mariadb,
    submit,
    work,
)
from test_migrate import restart_mariadb

from queuetool.changes import snapshot as snapshot_module
from queuetool.migrate import copy as copy_module
from queuetool.table.store import QueueStore

QUEUETOOL = str(Path(sys.executable).with_name("queuetool"))

# Keys gearmand keeps apart that a latin1 or _ci or PAD SPACE table does not.
TRICKY = [
    ("Job1", "fn", 0, b"\x00upper", 0),
    ("job1", "fn", 1, b"lower\xff", 0),
    ("a", "fn", 2, b"", 0),
    ("a ", "fn", 1, b"space", 0),
    ("k-ü☃", "fn", 1, b"snow", 0),
    ("x", "Fn", 0, b"F", 0),
    ("x", "fn", 0, b"f", 0),
]
UNICODE = [(f"k-ü☃-{i}", f"uni{i % 3}", i % 3, bytes([i % 256]) * 3, 0) for i in range(400)]


def run_ok(cli, *args: str):  # type: ignore[no-untyped-def]
    result = cli("migrate", *args, "--yes", "--quiet")
    assert result.exit_code == 0, result.output + result.stderr
    return result


def dry_count(stdout: str) -> int:
    line = next(x for x in stdout.splitlines() if x.startswith("dry run: "))
    return int(line.split()[2])


def copied_count(stdout: str) -> int:
    line = next(x for x in stdout.splitlines() if x.startswith("verified and swapped in"))
    return int(line.split(": ")[2].split()[0])


# -- a table queuetool creates ---------------------------------------------------------------


def test_created_table_holds_every_key_distinct_and_gearmand_reloads_them(
    tmp_path, mysql_server, mysql_db, cli
):
    # The test server is a plain MariaDB: a table created in its default charset is latin1.
    assert mysql_server.query(mysql_db, "SELECT @@character_set_database") == [("latin1",)]
    src = make_sqlite_queue(tmp_path)
    rows = TRICKY + UNICODE
    src.insert(rows)
    dst = make_mysql_queue(tmp_path, mysql_server, mysql_db, create=False)

    dry = cli("migrate", src.url, dst.url, "--dry-run", "--quiet")
    assert dry.exit_code == 0, dry.stderr
    assert "would create the target table with gearmand's DDL, keys in utf8mb4 / " in dry.stdout
    assert dry_count(dry.stdout) == len(rows)
    assert mysql_server.query(mysql_db, "SHOW TABLES") == []  # the dry run wrote nothing

    out = run_ok(cli, src.url, dst.url).stdout
    assert (
        "created the target table with gearmand's DDL, keys in utf8mb4 / utf8mb4_nopad_bin: "
        "binary and no-pad, every distinct key stays distinct" in out
    )
    assert copied_count(out) == len(rows)
    ddl = mysql_server.query(mysql_db, "SHOW CREATE TABLE gearman_queue")[0][1]
    assert "CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin" in ddl
    assert "`unique_key` varchar(64)" in ddl and "`function_name` varchar(255)" in ddl
    assert dst.rows() == sorted(rows)  # byte-exact, every key distinct

    daemon = Gearmand(tmp_path / "g", mysql_queue_args(mysql_server, mysql_db))
    daemon.start()
    try:
        assert priority_status(daemon.port) == dst.counts()
        functions = sorted({f for _u, f, _p, _d, _w in rows})
        got = work(daemon.port, functions, len(rows), timeout=60)
        # The last WORK_COMPLETE is processed (its row deleted) just after it was sent.
        deadline = time.monotonic() + 60
        while priority_status(daemon.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert priority_status(daemon.port) == {}
    finally:
        daemon.stop()
    assert sorted((r.unique, r.function, r.data) for r in got) == sorted(
        (u, f, d) for u, f, _p, d, _w in rows
    )
    assert dst.rows() == []  # every job done, every row deleted by gearmand itself


def test_existing_latin1_table_still_refuses_what_it_cannot_hold(
    tmp_path, mysql_server, mysql_db, cli
):
    src = make_sqlite_queue(tmp_path)
    src.insert([("plain", "fn", 1, b"x", 0), *UNICODE[:3]])
    dst = make_mysql_queue(tmp_path, mysql_server, mysql_db)  # gearmand's DDL: latin1
    dry = cli("migrate", src.url, dst.url, "--dry-run", "--quiet")
    assert dry.exit_code == 0 and dry_count(dry.stdout) == 1
    assert "3 unique_key_charset" in dry.stdout
    real = cli("migrate", src.url, dst.url, "--yes", "--quiet")
    assert real.exit_code == 1
    assert "Error: 3 of 4 jobs cannot be carried" in real.stderr
    assert dst.rows() == []


# -- dry runs ----------------------------------------------------------------------------------


@pytest.fixture
def general_ci_db(mysql_server):  # type: ignore[no-untyped-def]
    """A database whose tables default to utf8mb4_general_ci (Debian's server config)."""
    name = "qt_trust_general_ci"
    with mysql_server.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    try:
        yield name
    finally:
        mysql_server.drop_database(name)


def test_dry_run_counts_the_collisions_the_real_run_refuses(
    tmp_path, mysql_server, general_ci_db, cli
):
    src = make_sqlite_queue(tmp_path)
    src.insert(TRICKY)
    dst = make_mysql_queue(tmp_path, mysql_server, general_ci_db)  # an existing _ci table
    dry = cli("migrate", src.url, dst.url, "--dry-run", "--quiet")
    assert dry.exit_code == 0, dry.stderr
    # Job1/job1, a/a , Fn/fn: one of each pair collides under utf8mb4_general_ci.
    assert dry_count(dry.stdout) == 4
    assert "3 key_collision" in dry.stdout
    assert dst.rows() == []
    assert mysql_server.query(general_ci_db, "SHOW TABLES") == [("gearman_queue",)]

    refused = cli("migrate", src.url, dst.url, "--yes", "--quiet")
    assert refused.exit_code == 1
    assert "Error: 3 of 7 jobs cannot be carried" in refused.stderr
    skipped = tmp_path / "skipped.jsonl"
    out = run_ok(cli, src.url, dst.url, "--skip-invalid", "--skipped-file", str(skipped)).stdout
    assert copied_count(out) == dry_count(dry.stdout) == len(dst.rows())
    assert len(skipped.read_text().splitlines()) == 3 + 2  # and the header and trailer


def test_dry_run_counts_collisions_after_another_refusal_like_the_real_run(
    tmp_path, mysql_server, general_ci_db, cli
):
    """A refused row does not stop the search for collisions: both runs list them all."""
    src = make_sqlite_queue(tmp_path)
    src.insert([("p7", "fn", 7, b"x", 0), *TRICKY])
    dst = make_mysql_queue(tmp_path, mysql_server, general_ci_db)
    dry = cli("migrate", src.url, dst.url, "--dry-run", "--quiet")
    assert "1 priority_range" in dry.stdout and "3 key_collision" in dry.stdout
    refused = cli("migrate", src.url, dst.url, "--yes", "--quiet")
    assert refused.exit_code == 1
    assert "Error: 4 of 8 jobs cannot be carried" in refused.stderr
    assert "note: 3 key_collision" in refused.stderr


def test_dry_run_of_a_merge_counts_conflicts_like_the_real_run(
    tmp_path, sqlite_queue, mysql_queue, cli
):
    mysql_queue.insert([("u1", "fn", 1, b"old", 0), ("u2", "fn", 1, b"old", 0)])
    sqlite_queue.insert([("u1", "fn", 0, b"new", 0), ("u3", "fn", 0, b"new", 0)])
    for choice, expected in (
        ("skip", "1 jobs would be copied, 1 skipped on conflict"),
        ("replace", "2 jobs would be copied, 1 replaced"),
    ):
        dry = cli(
            "migrate",
            sqlite_queue.url,
            mysql_queue.url,
            "--merge",
            "--on-conflict",
            choice,
            "--dry-run",
            "--quiet",
        )
        assert dry.exit_code == 0, dry.stderr
        assert f"dry run: {expected}, nothing was written" in dry.stdout
    fail = cli("migrate", sqlite_queue.url, mysql_queue.url, "--merge", "--dry-run", "--quiet")
    assert "1 conflict: " in fail.stdout and "dry run: 1 jobs would be copied" in fail.stdout
    assert mysql_queue.rows() == [("u1", "fn", 1, b"old", 0), ("u2", "fn", 1, b"old", 0)]
    out = run_ok(cli, sqlite_queue.url, mysql_queue.url, "--merge", "--on-conflict", "skip")
    assert "1 jobs copied, 1 skipped on conflict" in out.stdout


def test_dry_run_while_the_source_daemon_runs(tmp_path, sqlite_queue, mysql_queue, cli):
    daemon = sqlite_queue.gearmand()
    sqlite_queue.insert([("a", "fn", 1, b"x", 0)])
    dry = cli("migrate", sqlite_queue.url, mysql_queue.url, "--dry-run", "--quiet")
    assert dry.exit_code == 0, dry.stderr
    assert "dry run: 1 jobs would be copied, nothing was written" in dry.stdout
    assert "note: the source's gearmand is running" in dry.stderr
    assert daemon.running()
    assert mysql_queue.rows() == []
    with sqlite3.connect(sqlite_queue.sqlite_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM gearman_queue").fetchone() == (1,)
    conn.close()


def test_dry_run_probe_leaves_no_table_on_sqlite_target(tmp_path, mysql_queue, cli):
    mysql_queue.insert([("a", "fn", 1, b"x", 0)])
    target = tmp_path / "t.db"
    with sqlite3.connect(target) as conn:
        conn.execute(
            "CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT, priority INTEGER,"
            " data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))"
        )
        conn.execute("INSERT INTO gearman_queue VALUES ('a', 'fn', 0, x'00', 0)")
    conn.close()
    dry = cli(
        "migrate",
        mysql_queue.url,
        f"sqlite:///{target}",
        "--merge",
        "--on-conflict",
        "skip",
        "--dry-run",
        "--quiet",
    )
    assert dry.exit_code == 0, dry.stderr
    assert "dry run: 0 jobs would be copied, 1 skipped on conflict" in dry.stdout
    with sqlite3.connect(target) as conn:
        names = conn.execute("SELECT name FROM sqlite_master").fetchall()
    conn.close()
    assert ("gearman_queue",) in names and len([n for n in names if "qt" in n[0]]) == 0


# -- start after a migration -------------------------------------------------------------------


def test_start_refuses_the_queue_that_was_migrated_away_from(
    tmp_path, sqlite_queue, mysql_queue, cli
):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, [JobSpec("fn", f"u{i}", b"x", priority=i % 3) for i in range(6)])
    counts = priority_status(daemon.port)
    moved = cli("migrate", sqlite_queue.url, mysql_queue.url, "--yes", "--quiet")
    assert moved.exit_code == 0, moved.stderr
    assert not daemon.running()  # the window stopped it and left it stopped
    assert len(mysql_queue.rows()) == len(sqlite_queue.rows()) == 6

    refused = cli("start", *sqlite_queue.cli_args())
    assert refused.exit_code == 4
    assert refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(
        f"Error: not starting gearmand: this queue was migrated to "
        f"{QueueStore(mysql_queue.url).display_url} table gearman_queue at "
    )
    assert ":***@" in refused.stderr and "t3st" not in refused.stderr
    assert "--after-migration" in refused.stderr
    with pytest.raises(subprocess.CalledProcessError):
        priority_status(daemon.port)  # nothing was started

    started = cli("start", *sqlite_queue.cli_args(), "--after-migration", "--quiet")
    assert started.exit_code == 0, started.stderr
    assert priority_status(daemon.port) == counts
    daemon.stop_all()
    # Started here on purpose: the marker is gone, a plain start works again.
    again = cli("start", *sqlite_queue.cli_args(), "--quiet")
    assert again.exit_code == 0, again.stderr
    daemon.stop_all()


def test_migrating_back_clears_the_marker_of_the_queue_migrated_into(
    tmp_path, sqlite_queue, mysql_queue, cli
):
    sqlite_queue.insert([("a", "fn", 1, b"x", 0)])
    run_ok(cli, sqlite_queue.url, mysql_queue.url)
    run_ok(cli, mysql_queue.url, sqlite_queue.url, "--replace")
    # The SQLite queue holds the jobs again: its start is not refused as migrated away.
    result = cli("start", *sqlite_queue.cli_args(), "--quiet")
    assert result.exit_code == 6 and "no captured gearmand command line" in result.stderr
    refused = cli("start", *mysql_queue.cli_args(), "--quiet")
    assert refused.exit_code == 4 and "this queue was migrated to sqlite:///" in refused.stderr


# -- a dying database server -------------------------------------------------------------------


@pytest.fixture
def own_mariadb(tmp_path):  # type: ignore[no-untyped-def]
    """A mariadbd of this test's own: it gets SIGKILLed."""
    server = start_mariadb(tmp_path / "own-mariadb")
    try:
        yield server
    finally:
        server.stop()


def one_error_line(result, code: int) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


# A server lost mid-result must not leave PyMySQL reading a closed socket later either.
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_mysql_killed_mid_migrate_is_one_error_line(tmp_path, own_mariadb, cli, monkeypatch):
    db = own_mariadb.create_database("killme")
    own_mariadb.query(db, mysql_ddl())
    own_mariadb.query(db, "INSERT INTO gearman_queue VALUES ('old', 'fn', 1, 'kept', 0)")
    src = make_sqlite_queue(tmp_path)
    src.insert([(f"job{i}", f"fn{i % 5}", i % 3, b"\x00payload" * 8, 0) for i in range(30_000)])
    before = src.rows()
    flushes = []
    real_flush = copy_module._flush

    def kill_at_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        flushes.append(1)
        if len(flushes) == 3:
            own_mariadb.kill()
        return real_flush(*args, **kwargs)

    monkeypatch.setattr(copy_module, "_flush", kill_at_third)
    result = cli(
        "migrate",
        src.url,
        own_mariadb.url(db),
        "--replace",
        "--yes",
        "--quiet",
        "--config",
        str(_snapshots(tmp_path)),
    )
    line = one_error_line(result, 2)
    assert line.startswith("Error: database error: Lost connection to "), line
    assert own_mariadb.pid is None  # it really died
    assert src.rows() == before
    restart_mariadb(own_mariadb)
    assert own_mariadb.query(db, "SELECT unique_key, data FROM gearman_queue") == [("old", b"kept")]


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_mysql_killed_mid_reprioritise_is_one_error_line(tmp_path, own_mariadb, cli, monkeypatch):
    db = own_mariadb.create_database("killme")
    own_mariadb.query(db, mysql_ddl())
    with own_mariadb.connect(db) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO gearman_queue VALUES (%s, 'fn', 2, %s, 0)",
            [(f"job{i}", b"\x00payload" * 64) for i in range(20_000)],
        )
    real_stream = snapshot_module.stream_rows

    def kill_while_streaming(*args, **kwargs):  # type: ignore[no-untyped-def]
        for n, row in enumerate(real_stream(*args, **kwargs)):
            if n == 100:
                own_mariadb.kill()
            yield row

    monkeypatch.setattr(snapshot_module, "stream_rows", kill_while_streaming)
    result = cli(
        "reprioritise",
        "--queue",
        own_mariadb.url(db),
        "--to",
        "high",
        "--function",
        "fn",
        "--yes",
        "--config",
        str(_snapshots(tmp_path)),
    )
    line = one_error_line(result, 2)
    assert line == "Error: database error: Lost connection to MySQL server during query"
    assert own_mariadb.pid is None
    restart_mariadb(own_mariadb)
    assert own_mariadb.query(db, "SELECT priority, COUNT(*) FROM gearman_queue GROUP BY 1") == [
        (2, 20_000)
    ]


def _snapshots(tmp_path: Path) -> Path:
    snapdir = tmp_path / "snaps"
    snapdir.mkdir(exist_ok=True)
    config = tmp_path / "queuetool.toml"
    config.write_text(f'[snapshots]\ndir = "{snapdir}"\n')
    return config


def test_ctrl_c_is_one_line_and_exit_130(sqlite_queue, cli, monkeypatch):
    from queuetool.table import report

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "report", interrupted)
    result = cli("report", *sqlite_queue.cli_args())
    assert result.exit_code == 130
    assert result.stderr == "Aborted: interrupted\n"


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_mysql_killed_mid_cold_start_import_is_one_error_line(
    tmp_path, own_mariadb, cli, monkeypatch
):
    """The cold start writes while it reads the file: a server lost meanwhile is reported
    as lost (the rollback's own error on the dead connection must not replace it), and
    nothing was committed."""
    import io

    from queuetool.changes import importing
    from queuetool.table.export import JobWriter

    db = own_mariadb.create_database("killme")
    own_mariadb.query(db, mysql_ddl())
    out = io.StringIO()
    writer = JobWriter(out)
    for i in range(20_000):
        writer.write((f"job{i}", "fn", 1, b"\x00payload" * 8, 0))
    writer.close()
    path = tmp_path / "jobs.jsonl"
    path.write_text(out.getvalue())
    real_feed = importing._Feed.__call__
    fed = []

    def kill_after_the_first_batch(self, rows):  # type: ignore[no-untyped-def]
        if len(fed) == 1:  # once: the first batch went in, the second meets a dead server
            own_mariadb.kill()
        fed.append(len(rows))
        real_feed(self, rows)

    monkeypatch.setattr(importing._Feed, "__call__", kill_after_the_first_batch)
    result = cli(
        "import",
        "--queue",
        own_mariadb.url(db),
        str(path),
        "--yes",
        "--quiet",
        "--config",
        str(_snapshots(tmp_path)),
    )
    line = one_error_line(result, 2)
    assert line.startswith("Error: database error: "), line
    assert "InterfaceError" not in line and ("Lost connection" in line or "gone away" in line)
    assert own_mariadb.pid is None
    restart_mariadb(own_mariadb)
    assert own_mariadb.query(db, "SELECT COUNT(*) FROM gearman_queue") == [(0,)]


# -- one table under two names ---------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["dot", "symlink", "hardlink", "table case"])
def test_the_same_sqlite_table_by_another_name_is_refused(tmp_path, cli, spelling):
    # Copied onto itself and then emptied by --move, the only copy of the queue would go.
    src = make_sqlite_queue(tmp_path)
    src.insert([(f"job{i}", "fn", 1, b"x", 0) for i in range(5)])
    path, table = src.sqlite_path, "gearman_queue"
    other = tmp_path / "other"
    other.mkdir()
    if spelling == "dot":
        target = f"sqlite:///{path.parent}/./{path.name}"
    elif spelling == "symlink":
        (other / "link.db").symlink_to(path)
        target = f"sqlite:///{other / 'link.db'}"
    elif spelling == "hardlink":
        (other / "hard.db").hardlink_to(path)
        target = f"sqlite:///{other / 'hard.db'}"
    else:
        target, table = src.url, "GEARMAN_QUEUE"
    result = cli(
        "migrate", src.url, target, "--target-table", table, "--replace", "--move", "--yes",
        "--config", str(_snapshots(tmp_path)),
    )  # fmt: skip
    assert one_error_line(result, 2) == "Error: source and target are the same queue table"
    assert sorted(src.rows()) == [(f"job{i}", "fn", 1, b"x", 0) for i in range(5)]


def test_the_same_table_is_refused_before_its_running_daemon_is_stopped(sqlite_queue, cli):
    sqlite_queue.insert([(f"job{i}", "fn", 1, b"x", 0) for i in range(3)])
    daemon = sqlite_queue.gearmand()
    pid = daemon.pid
    path = sqlite_queue.sqlite_path
    target = f"sqlite:///{path.parent}/./{path.name}"
    result = cli("migrate", sqlite_queue.url, target, "--gearmand", daemon.address, "--yes")
    assert one_error_line(result, 2) == "Error: source and target are the same queue table"
    assert daemon.running() and int(daemon.pidfile.read_text()) == pid  # never stopped


def another_spelling(url: str) -> str:
    """The same server under another host name: localhost for 127.0.0.1, else its address."""
    head, at, rest = url.rpartition("@")
    host, colon, tail = rest.partition(":")
    other = "localhost" if host == "127.0.0.1" else socket.gethostbyname(host)
    assert other != host
    return f"{head}{at}{other}{colon}{tail}"


@pytest.mark.parametrize("backend", ["mysql", "postgres"])
def test_the_same_server_table_by_another_host_name_is_refused(tmp_path, cli, request, backend):
    queue = request.getfixturevalue(f"{backend}_queue")
    jobs = [(f"job{i}", "fn", 1, b"x", 0) for i in range(5)]
    queue.insert(jobs)
    target = another_spelling(queue.url)
    config = str(_snapshots(tmp_path))
    args = ["--source-table", queue.table, "--target-table", queue.table, "--config", config]
    result = cli("migrate", queue.url, target, *args, "--replace", "--move", "--yes")
    assert one_error_line(result, 2) == (
        "Error: source and target are the same queue table (one server's table, reached by "
        "two URLs)"
    )
    assert sorted(queue.rows()) == jobs
    assert not list((tmp_path / "snaps").iterdir())  # refused before any snapshot
    # Another table on that server is another queue: the check does not refuse it.
    other = cli("migrate", queue.url, target, *args[:3], "copy_of_queue", *args[4:], "--yes")
    assert other.exit_code == 0, other.stderr
    assert sorted(queue.rows()) == jobs


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_move_whose_source_dies_says_both_hold_the_jobs_and_start_refuses(
    tmp_path, own_mariadb, cli, monkeypatch
):
    db = own_mariadb.create_database("movesrc")
    own_mariadb.query(db, mysql_ddl())
    own_mariadb.query(
        db, "INSERT INTO gearman_queue VALUES ('a', 'fn', 0, 'x', 0), ('b', 'fn', 2, 'y', 0)"
    )
    dst = make_sqlite_queue(tmp_path, create=False)
    real_empty = copy_module.empty_source

    def die_first(*args, **kwargs):  # type: ignore[no-untyped-def]
        own_mariadb.kill()
        return real_empty(*args, **kwargs)

    monkeypatch.setattr(copy_module, "empty_source", die_first)
    src_url = own_mariadb.url(db)
    result = cli(
        "migrate", src_url, dst.url, "--move", "--yes", "--quiet",
        "--config", str(_snapshots(tmp_path)),
    )  # fmt: skip
    line = one_error_line(result, 2)
    assert line.startswith("Error: --move: the source was NOT emptied (cannot open "), line
    assert "the target holds the verified copy" in line
    assert sorted(dst.rows()) == [("a", "fn", 0, b"x", 0), ("b", "fn", 2, b"y", 0)]
    refused = cli("start", "--queue", src_url, "--quiet")
    assert refused.exit_code == 4 and "this queue was migrated to sqlite:///" in refused.stderr


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_mysql_source_killed_mid_migrate_is_one_error_line(tmp_path, own_mariadb, monkeypatch):
    db = own_mariadb.create_database("killsrc")
    own_mariadb.query(db, mysql_ddl())
    with own_mariadb.connect(db) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO gearman_queue VALUES (%s, 'fn', 1, %s, 0)",
            [(f"job{i}", b"\x00payload" * 64) for i in range(30_000)],
        )
    dst = make_sqlite_queue(tmp_path)
    dst.insert([("old", "fn", 1, b"kept", 0)])
    # A process of its own, killed from outside: the pool's complaint about a rollback on
    # the dead connection goes to stderr there, where pytest's logging does not catch it.
    args = ["migrate", own_mariadb.url(db), dst.url, "--replace", "--yes"]
    proc = subprocess.Popen(
        [QUEUETOOL, *args, "--config", str(_snapshots(tmp_path))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    # The progress line on stderr: the copy is under way, so kill the source's server.
    first = proc.stderr.read(1)
    own_mariadb.kill()
    stderr = first + proc.stderr.read()
    proc.wait(timeout=120)
    lines = [x for x in stderr.replace("\r", "\n").splitlines() if x.strip()]
    errors = [x for x in lines if "rows/s" not in x]  # all but the progress line
    assert proc.returncode == 2, stderr
    assert len(errors) == 1 and errors[0].startswith("Error: database error: Lost connection"), (
        stderr
    )
    assert sorted(dst.rows()) == [("old", "fn", 1, b"kept", 0)]
