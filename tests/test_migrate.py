"""migrate: SQLite <-> MySQL through real gearmand daemons, a real MariaDB and the gear client."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import make_mysql_queue, make_sqlite_queue, mysql_ddl
from servers import (
    Gearmand,
    JobSpec,
    MySQLServer,
    free_port,
    launch_mariadbd,
    priority_status,
    sqlite_queue_args,
    start_mariadb,
    submit,
    work,
)

from queuetool.errors import QueuetoolError
from queuetool.migrate.copy import MigrateOptions, migrate
from queuetool.table.checksum import Checksum, table_checksum
from queuetool.table.store import QueueStore, conn_quote

FAR = 2_000_000_000  # a scheduled job that stays queued


def jobs_for_daemon() -> list[JobSpec]:
    """Binary payloads (NUL, 0xFF, empty), all priorities, scheduled jobs, non-ASCII keys
    that the latin1 table gearmand creates on a fresh MariaDB can hold."""
    jobs = [
        JobSpec(f"fn{i % 3}", f"u{i}", bytes([i % 256, 0, 255]) * (i % 4), priority=i % 3)
        for i in range(45)
    ]
    jobs += [
        JobSpec("fñ", "café", b"\x00caf\xc3\xa9\xff", priority=0),
        JobSpec("fñ", "naïve ü", b"", priority=2),
        JobSpec("fn0", "back\\slash", b"a\\b\\0", priority=1),
        JobSpec("fn1", "due-epoch", b"\x01epoch", when=int(time.time()) + 1),
        JobSpec("fn1", "later", b"\x00later", when=FAR),
    ]
    return jobs


def run_ok(cli, *args: str):  # type: ignore[no-untyped-def]
    result = cli("migrate", *args, "--yes", "--quiet")
    assert result.exit_code == 0, result.output + result.stderr
    return result


def verify_lines(stdout: str) -> tuple[str, str]:
    src = next(x for x in stdout.splitlines() if x.startswith("source checksum"))
    dst = next(x for x in stdout.splitlines() if x.startswith("target checksum"))
    return src.split(":", 1)[1].strip(), dst.split(":", 1)[1].strip()


def received_map(got) -> dict[tuple[str, str], bytes]:  # type: ignore[no-untyped-def]
    return {
        (r.function, r.unique.decode() if isinstance(r.unique, bytes) else r.unique): r.data
        for r in got
    }


def test_round_trip_sqlite_mysql_sqlite_through_gearmand(
    tmp_path, sqlite_queue, mysql_server, mysql_db, cli
):
    src = sqlite_queue
    dst = make_mysql_queue(tmp_path, mysql_server, mysql_db, create=False)
    try:
        _round_trip(tmp_path, src, dst, mysql_server, mysql_db, cli)
    finally:
        for daemon in dst.daemons:
            daemon.stop()


def _round_trip(tmp_path, src, dst, mysql_server, mysql_db, cli):  # type: ignore[no-untyped-def]
    daemon = src.gearmand()
    jobs = jobs_for_daemon()
    submit(daemon.port, jobs)
    expected_counts = priority_status(daemon.port)
    daemon.stop()
    source_rows = src.rows()
    assert len(source_rows) == len(jobs)
    # gearmand itself stores an empty payload as NULL; migrate carries it as an empty BLOB.
    carried = sorted((u, f, p, d or b"", w) for u, f, p, d, w in source_rows)

    # The MySQL table as gearmand's plugin creates it: latin1 on a fresh MariaDB.
    dst.gearmand().stop()
    assert "latin1" in mysql_server.query(mysql_db, "SHOW CREATE TABLE gearman_queue")[0][1]

    out = run_ok(cli, src.url, dst.url).stdout
    a, b = verify_lines(out)
    assert a == b and a.startswith(f"{len(jobs)} rows")
    assert "-q MySQL --mysql-host 127.0.0.1" in out and "--mysql-password '*****'" in out
    assert "data NULL -> empty payload" in out
    assert dst.rows() == carried  # byte-exact, keys included
    assert src.rows() == source_rows  # the source is untouched
    assert mysql_server.query(mysql_db, "SHOW TABLES") == [("gearman_queue",)]

    mysql_daemon = dst.gearmand()
    assert priority_status(mysql_daemon.port) == expected_counts
    mysql_daemon.stop()

    # Back to a new SQLite file, started by --start-with and verified by migrate itself.
    back = tmp_path / "back.db"
    port = free_port()
    pidfile = tmp_path / "back.pid"
    start = " ".join(
        [
            "gearmand",
            "-d",
            "-p",
            str(port),
            "-L",
            "127.0.0.1",
            "-P",
            str(pidfile),
            "-l",
            str(tmp_path / "back.log"),
            *sqlite_queue_args(back),
        ]
    )
    out = run_ok(cli, dst.url, f"sqlite:///{back}", "--start-with", start).stdout
    assert "reload verified" in out
    back_daemon = Gearmand(tmp_path, sqlite_queue_args(back), port=port)
    back_daemon.pid = int(pidfile.read_text())
    try:
        assert priority_status(port) == expected_counts
        with sqlite3.connect(back) as conn:
            assert conn.execute(
                "SELECT COUNT(*) FROM gearman_queue WHERE typeof(data) != 'blob'"
            ).fetchone() == (0,)
        due = [j for j in jobs if j.when != FAR]
        got = work(port, sorted({j.function for j in due}), len(due), timeout=30)
    finally:
        back_daemon.stop()
    assert received_map(got) == {(j.function, j.unique): j.data for j in due}

    # And the MySQL queue hands out the same jobs with the same payloads.
    mysql_daemon = dst.gearmand()
    got = work(mysql_daemon.port, sorted({j.function for j in due}), len(due), timeout=30)
    assert received_map(got) == {(j.function, j.unique): j.data for j in due}


def test_non_ascii_keys_latin1_refused_utf8mb4_round_trip(tmp_path, mysql_server, cli):
    src = make_sqlite_queue(tmp_path)
    rows = [
        ("ключ-☃", "fñ☃", 1, b"\x00\xff", 0),
        ("café", "f", 0, b"", 5),
        ("k", "emoji-🦄", 2, b"x", 0),
    ]
    src.insert(rows)
    latin = mysql_server.create_database("qt_mig_latin1")
    utf = "qt_mig_utf8mb4"
    with mysql_server.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{utf}`")
        cur.execute(f"CREATE DATABASE `{utf}` CHARACTER SET utf8mb4")
    try:
        latin_q = make_mysql_queue(tmp_path, mysql_server, latin)
        result = cli("migrate", src.url, latin_q.url, "--yes", "--quiet")
        assert result.exit_code == 1
        assert "2 unique_key_charset" in result.stderr or "unique_key_charset" in result.stderr
        assert "2 of 3 jobs cannot be carried" in result.stderr
        assert latin_q.rows() == []  # nothing written, no staging left
        assert mysql_server.query(latin, "SHOW TABLES") == [("gearman_queue",)]

        utf_q = make_mysql_queue(tmp_path, mysql_server, utf)
        run_ok(cli, src.url, utf_q.url)
        assert utf_q.rows() == sorted(rows)
        hexed = mysql_server.query(utf, "SELECT HEX(unique_key) FROM gearman_queue ORDER BY 1")
        assert ("D0BAD0BBD18ED1872DE29883",) in hexed
        back = tmp_path / "back.db"
        run_ok(cli, utf_q.url, f"sqlite:///{back}")
        with sqlite3.connect(back) as conn:
            got = conn.execute(
                "SELECT unique_key, function_name, priority, data, when_to_run FROM gearman_queue"
            ).fetchall()
        assert sorted(got) == sorted(rows)
    finally:
        mysql_server.drop_database(latin)
        mysql_server.drop_database(utf)


def test_invalid_rows_refused_then_skipped_and_exported(tmp_path, mysql_queue, cli):
    (tmp_path / "s").mkdir()
    src = make_sqlite_queue(tmp_path / "s")
    good = [(f"g{i}", "fn", 1, bytes([i]), 0) for i in range(10)]
    bad = [
        ("p7", "fn", 7, b"x", 0),
        ("far", "fn", 1, b"x", 2**40),
        ("k" * 65, "fn", 1, b"x", 0),
    ]
    fixable = [("nullwhen", "fn", 1, b"y", None)]
    src.insert(good + bad + fixable)
    with sqlite3.connect(src.sqlite_path) as conn:
        conn.execute("INSERT INTO gearman_queue VALUES ('textdata', 'fn', 2, 'abc', 0)")

    dry = cli("migrate", src.url, mysql_queue.url, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "12 jobs would be copied" in dry.stdout
    for kind in ("1 priority_range", "1 when_to_run_range", "1 unique_key_length"):
        assert kind in dry.stdout
    assert "would normalise 1: when_to_run NULL -> 0" in dry.stdout
    assert mysql_queue.rows() == []

    refused = cli("migrate", src.url, mysql_queue.url, "--yes", "--quiet")
    assert refused.exit_code == 1
    assert "3 of 15 jobs cannot be carried" in refused.stderr
    assert mysql_queue.rows() == []

    export = tmp_path / "skipped.jsonl"
    run_ok(cli, src.url, mysql_queue.url, "--skip-invalid", "--skipped-file", str(export))
    lines = [json.loads(x) for x in export.read_text().splitlines()][1:-1]  # header, trailer
    assert sorted(x["reason"] for x in lines) == [
        "priority_range",
        "unique_key_length",
        "when_to_run_range",
    ]
    assert export.stat().st_mode & 0o777 == 0o600
    got = {r[0]: r for r in mysql_queue.rows()}
    assert len(got) == 12
    assert got["nullwhen"][4] == 0
    assert got["textdata"][3] == b"abc"


def test_mysql_source_summed_by_its_server_with_normalised_and_refused_rows(
    tmp_path, mysql_queue, cli
):
    """A MySQL source's checksum comes from its server; the rows carry.py changes or
    refuses are taken out and put back in Python, so it is the sum of what is written."""
    good = [(f"g{i}", "fñ", i % 3, bytes([i, 0, 255]), 0) for i in range(20)]
    normalised = [("nulldata", "fn", 1, None, 5), ("nullwhen", "fn", 2, b"w", None)]
    refused = [("p7", "fn", 7, b"x", 0), ("é" * 40, "fn", 1, b"x", 0)]  # 80 bytes > 64
    mysql_queue.insert(good + normalised + refused)
    carried = sorted([*good, ("nulldata", "fn", 1, b"", 5), ("nullwhen", "fn", 2, b"w", 0)])
    back = tmp_path / "back.db"

    dry = cli("migrate", mysql_queue.url, f"sqlite:///{back}", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"source checksum (jobs to copy): {Checksum().update(carried)}" in dry.stdout

    out = run_ok(
        cli,
        mysql_queue.url,
        f"sqlite:///{back}",
        "--skip-invalid",
        "--skipped-file",
        str(tmp_path / "skipped.jsonl"),
    ).stdout
    assert verify_lines(out) == (str(Checksum().update(carried)),) * 2
    with sqlite3.connect(back) as conn:
        assert sorted(conn.execute("SELECT * FROM gearman_queue")) == carried
    conn.close()


def test_target_with_wrong_layout_refused(tmp_path, sqlite_queue, mysql_server, mysql_db, cli):
    sqlite_queue.insert([("a", "fn", 1, b"x", 0)])
    mysql_server.query(
        mysql_db,
        "CREATE TABLE gearman_queue (unique_key VARCHAR(64), function_name VARCHAR(255), "
        "priority INT, data TEXT, when_to_run INT)",
    )
    result = cli("migrate", sqlite_queue.url, mysql_server.url(mysql_db), "--yes", "--quiet")
    assert result.exit_code == 2
    assert "cannot be used by gearmand" in result.stderr
    assert "gearmand needs LONGBLOB" in result.stderr
    assert "no primary or unique key" in result.stderr


def test_non_empty_target_merge_and_replace(tmp_path, sqlite_queue, mysql_queue, cli):
    sqlite_queue.insert([("a", "fn", 1, b"new-a", 0), ("b", "fn", 2, b"new-b", 0)])
    mysql_queue.insert([("A", "fn", 0, b"old-A", 0), ("c", "fn", 0, b"old-c", 0)])
    args = (sqlite_queue.url, mysql_queue.url, "--yes", "--quiet")

    refused = cli("migrate", *args)
    assert refused.exit_code == 2 and "already holds 2 jobs" in refused.stderr

    # latin1_swedish_ci calls 'a' and 'A' the same key: a conflict in the target.
    fail = cli("migrate", *args, "--merge")
    assert fail.exit_code == 1 and "1 conflict" in fail.stderr
    assert [r[3] for r in mysql_queue.rows()] == [b"old-A", b"old-c"]

    skip = cli("migrate", *args, "--merge", "--on-conflict", "skip")
    assert skip.exit_code == 0, skip.stderr
    assert "1 skipped on conflict" in skip.stdout
    assert sorted(r[3] for r in mysql_queue.rows()) == [b"new-b", b"old-A", b"old-c"]

    replace = cli("migrate", *args, "--merge", "--on-conflict", "replace")
    assert replace.exit_code == 0, replace.stderr
    a, b = verify_lines(replace.stdout)
    assert a != b  # the target also holds its own jobs: expected vs found is what verifies
    assert sorted(r[3] for r in mysql_queue.rows()) == [b"new-a", b"new-b", b"old-c"]

    snapdir = tmp_path / "snaps"
    snapdir.mkdir()
    config = tmp_path / "q.toml"
    config.write_text(f'[snapshots]\ndir = "{snapdir}"\n')
    whole = cli("migrate", *args, "--replace", "--config", str(config))
    assert whole.exit_code == 0, whole.stderr
    assert "snapshot: " in whole.stdout and list(snapdir.iterdir())
    assert mysql_queue.rows() == sqlite_queue.rows()


def test_dry_run_no_tty_and_running_daemon(tmp_path, sqlite_queue, mysql_queue, cli):
    sqlite_queue.insert([("a", "fn", 1, b"x", 0)])
    no_tty = cli("migrate", sqlite_queue.url, mysql_queue.url, "--quiet")
    assert no_tty.exit_code == 3 and "add --yes" in no_tty.stderr
    assert mysql_queue.rows() == []
    # With the source's daemon running, migrate runs the window (test_window_cli.py):
    # --no-tty without --yes still refuses, and the daemon keeps running.
    daemon = sqlite_queue.gearmand()
    refused = cli("migrate", sqlite_queue.url, mysql_queue.url, "--quiet")
    assert refused.exit_code == 3
    assert daemon.running()
    daemon.stop()
    assert mysql_queue.rows() == []


def test_config_names_and_backend_words(tmp_path, sqlite_queue, mysql_queue, cli):
    sqlite_queue.insert([("a", "fn", 1, b"x", 0)])
    config = tmp_path / "queuetool.toml"
    config.write_text(
        f'[queues.old]\nurl = "{sqlite_queue.url}"\n[queues.new]\nurl = "{mysql_queue.url}"\n'
    )
    out = run_ok(cli, "sqlite", "mysql", "--config", str(config)).stdout
    assert "1 jobs copied" in out
    assert mysql_queue.rows() == sqlite_queue.rows()
    back = tmp_path / "b.db"
    run_ok(cli, "new", "sqlite", "--config", str(config), "--sqlite-db", str(back))
    assert sqlite_queue.rows() == [("a", "fn", 1, b"x", 0)]  # the source is untouched
    with sqlite3.connect(back) as conn:
        assert conn.execute("SELECT unique_key FROM gearman_queue").fetchall() == [("a",)]


def restart_mariadb(server: MySQLServer) -> None:
    """Start a killed throwaway mariadbd again on its own datadir and port."""
    assert server.workdir is not None
    proc = launch_mariadbd(server.workdir, server.port)
    server.pid = proc.pid
    server._proc = proc  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while True:
        try:
            server.connect().close()
            return
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_mysql_killed_mid_copy_leaves_target_and_source(tmp_path, cli):
    server = start_mariadb(tmp_path / "own-mariadb")
    try:
        db = server.create_database("killme")
        server.query(db, mysql_ddl())
        server.query(db, "INSERT INTO gearman_queue VALUES ('old', 'fn', 1, 'kept', 0)")
        src = make_sqlite_queue(tmp_path)
        with sqlite3.connect(src.sqlite_path) as conn:
            conn.executemany(
                "INSERT INTO gearman_queue VALUES (?, ?, ?, ?, 0)",
                ((f"job{i}", f"fn{i % 5}", i % 3, b"\x00payload" * 8) for i in range(150_000)),
            )
        source = QueueStore(src.url)
        with source.connect() as conn:
            before = table_checksum(conn, source.table)
        target = QueueStore(server.url(db))

        def kill_at_third(done: int, total: int) -> None:
            if done > total // 3 and server.pid is not None:
                server.kill()

        with pytest.raises((QueuetoolError, Exception)):
            migrate(source, target, MigrateOptions(replace=True), progress=kill_at_third)
        target.close()
        assert server.pid is None
        with source.connect() as conn:
            assert table_checksum(conn, source.table) == before
        restart_mariadb(server)
        assert server.query(db, "SELECT unique_key, data FROM gearman_queue") == [("old", b"kept")]
        again = cli(
            "migrate",
            src.url,
            server.url(db),
            "--replace",
            "--yes",
            "--quiet",
            "--config",
            str(_snapshot_config(tmp_path)),
        )
        assert again.exit_code == 0, again.stderr
        assert "removed leftover table gearman_queue__qt_staging" in again.stderr
        assert server.query(db, "SELECT COUNT(*) FROM gearman_queue") == [(150_000,)]
        assert server.query(db, "SHOW TABLES") == [("gearman_queue",)]
    finally:
        server.stop()


def _snapshot_config(tmp_path: Path) -> Path:
    snaps = tmp_path / "snaps"
    snaps.mkdir(exist_ok=True)
    config = tmp_path / "snap.toml"
    config.write_text(f'[snapshots]\ndir = "{snaps}"\n')
    return config


# -- --move: the source is emptied only while it provably holds what was copied ---------


def _sides(direction: str, sqlite_queue, mysql_queue):  # type: ignore[no-untyped-def]
    return (
        (sqlite_queue, mysql_queue) if direction == "sqlite->mysql" else (mysql_queue, sqlite_queue)
    )


MOVE_ROWS = [(f"m{i}", f"fn{i % 3}", i % 3, bytes([i, 0, 255]), 0) for i in range(30)] + [
    ("nullwhen", "fn0", 1, b"n", None)  # normalised on the way: the raw sum still proves it
]


@pytest.mark.parametrize("direction", ["sqlite->mysql", "mysql->sqlite"])
def test_move_empties_the_source_after_a_snapshot(
    direction, tmp_path, sqlite_queue, mysql_queue, cli
):
    src, dst = _sides(direction, sqlite_queue, mysql_queue)
    src.insert(MOVE_ROWS)
    config = _snapshot_config(tmp_path)
    out = run_ok(cli, src.url, dst.url, "--move", "--config", str(config)).stdout
    assert "source emptied (--move)" in out
    assert src.rows() == []
    assert len(dst.rows()) == len(MOVE_ROWS)
    (snap,) = (tmp_path / "snaps").iterdir()
    assert f"snapshot: {snap}" in out


CHANGES = {
    # one more job: the count differs
    "insert": "INSERT INTO gearman_queue VALUES ('late', 'fn0', 1, ?, 0)",
    # one job swapped for another: the count is the same, only the checksum differs
    "swap": "UPDATE gearman_queue SET data = ? WHERE unique_key = 'm7'",
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("direction", ["sqlite->mysql", "mysql->sqlite"])
def test_move_refused_when_the_source_changed_after_the_copy(
    direction, change, tmp_path, sqlite_queue, mysql_queue, cli, monkeypatch
):
    import queuetool.migrate.copy as migrate_module

    src, dst = _sides(direction, sqlite_queue, mysql_queue)
    src.insert(MOVE_ROWS)
    copy = migrate_module._copy

    def copy_then_change(*args, **kwargs):  # type: ignore[no-untyped-def]
        copy(*args, **kwargs)
        src.sql(CHANGES[change], (b"changed meanwhile",))

    monkeypatch.setattr(migrate_module, "_copy", copy_then_change)
    before = src.rows()
    config = _snapshot_config(tmp_path)
    result = cli("migrate", src.url, dst.url, "--move", "--yes", "--quiet", "--config", str(config))
    assert result.exit_code == 5, result.output + result.stderr
    (error,) = result.stderr.strip().splitlines()
    assert error.startswith("Error: --move: the source changed after it was copied (31 jobs")
    assert "it was NOT emptied" in error
    after = src.rows()
    assert len(after) == len(MOVE_ROWS) + (change == "insert")
    assert set(before) - set(after) == (
        {("m7", "fn1", 1, bytes([7, 0, 255]), 0)} if change == "swap" else set()
    )
    assert len(dst.rows()) == len(MOVE_ROWS)  # the target holds the verified copy
    assert list((tmp_path / "snaps").iterdir()) == []  # no snapshot of a move that did not happen


@pytest.mark.parametrize("direction", ["sqlite->mysql", "mysql->sqlite"])
def test_move_locks_the_source_while_it_proves_and_empties_it(
    direction, tmp_path, sqlite_queue, mysql_queue, mysql_server, monkeypatch
):
    """While the emptying transaction checks the source, no other writer gets in."""
    import pymysql

    import queuetool.migrate.move as move_module

    src, dst = _sides(direction, sqlite_queue, mysql_queue)
    src.insert(MOVE_ROWS)
    take = move_module.snapshot.take
    refused: list[str] = []

    def writers_wait(*args, **kwargs):  # type: ignore[no-untyped-def]
        attempts = [
            "INSERT INTO gearman_queue VALUES ('late', 'fn0', 1, 'x', 0)",
            "UPDATE gearman_queue SET data = 'y' WHERE unique_key = 'm7'",
            "DELETE FROM gearman_queue WHERE unique_key = 'm8'",
        ]
        for statement in attempts:
            if src.backend == "sqlite":
                other = sqlite3.connect(src.sqlite_path, timeout=0.2)
                try:
                    other.execute(statement)
                    other.commit()
                except sqlite3.OperationalError as exc:
                    refused.append(str(exc))
                finally:
                    other.close()
            else:
                with mysql_server.connect(src.database) as other, other.cursor() as cur:
                    cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
                    try:
                        cur.execute(statement)
                        other.commit()
                    except pymysql.err.OperationalError as exc:
                        refused.append(str(exc.args[1]))
        return take(*args, **kwargs)

    monkeypatch.setattr(move_module.snapshot, "take", writers_wait)
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    source, target = QueueStore(src.url), QueueStore(dst.url)
    try:
        result = migrate(source, target, MigrateOptions(move=True, snapshot_dir=str(snaps)))
    finally:
        source.close()
        target.close()
    assert result.moved and src.rows() == []
    assert len(refused) == 3, refused
    assert all(("locked" in r) or ("Lock wait timeout" in r) for r in refused), refused


# -- --merge: conflicts found row by row, each batch from a clean state --------------------

MERGE_SOURCE = [(f"k{i}", "fn", i % 3, b"src-%d" % i, 0) for i in range(40)]
MERGE_TARGET = [(f"k{i}", "fn", 0, b"dst-%d" % i, 9) for i in (3, 15, 27)] + [
    (f"t{i}", "fn", 1, b"own-%d" % i, 0) for i in range(5)
]


def _tables(q) -> list[str]:  # type: ignore[no-untyped-def]
    if q.backend == "sqlite":
        return [r[0] for r in q.sql("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return [r[0] for r in q.sql("SHOW TABLES")]


@pytest.mark.parametrize("on_conflict", ["fail", "skip", "replace"])
@pytest.mark.parametrize("direction", ["sqlite->mysql", "mysql->sqlite"])
def test_merge_with_duplicates_in_several_batches(
    direction, on_conflict, sqlite_queue, mysql_queue
):
    """Conflicts in three of four batches (10 rows each): every batch is undone and
    retried row by row from a clean state, and the staging table verifies."""
    src, dst = _sides(direction, sqlite_queue, mysql_queue)
    src.insert(MERGE_SOURCE)
    dst.insert(MERGE_TARGET)
    source, target = QueueStore(src.url), QueueStore(dst.url)
    options = MigrateOptions(merge=True, on_conflict=on_conflict, batch=10)
    try:
        if on_conflict == "fail":
            with pytest.raises(QueuetoolError, match="3 of 40 jobs cannot be carried"):
                migrate(source, target, options)
            assert dst.rows() == sorted(MERGE_TARGET)
            assert _tables(dst) == ["gearman_queue"]
            return
        result = migrate(source, target, options)
    finally:
        source.close()
        target.close()
    conflicting = {"k3", "k15", "k27"}
    if on_conflict == "skip":
        expected = MERGE_TARGET + [r for r in MERGE_SOURCE if r[0] not in conflicting]
        assert (result.skipped_conflicts, result.replaced, result.written) == (3, 0, 37)
    else:
        expected = [r for r in MERGE_TARGET if r[0] not in conflicting] + MERGE_SOURCE
        assert (result.skipped_conflicts, result.replaced, result.written) == (0, 3, 40)
    assert dst.rows() == sorted(expected)
    assert result.target_checksum == Checksum().update(expected)
    assert _tables(dst) == ["gearman_queue"]


# Reads PyMySQL's / sqlite3's own transaction state; PostgreSQL's writer is not covered here.
@pytest.mark.parametrize("queue", ["sqlite", "mysql"], indirect=True)
def test_writer_failure_in_the_row_by_row_retry_leaves_no_transaction(queue, monkeypatch):
    """The retry after a conflict runs in a unit of its own: when it fails, that unit is
    rolled back too and the connection is clean (no open transaction or savepoint)."""
    from pymysql.constants import SERVER_STATUS

    from queuetool.migrate.carry import Refusals
    from queuetool.migrate.staging import StagingWriter

    store = QueueStore(queue.url)
    stage = "gearman_queue__writer_test"
    try:
        with contextlib.ExitStack() as stack:
            if store.backend == "sqlite":
                conn = stack.enter_context(store.begin())  # as a copy into SQLite runs
            else:
                conn = stack.enter_context(store.connect())
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            store.create_table(conn, stage)
            writer = StagingWriter(store, conn, stage, Refusals(), "skip")
            writer.write([("a", "fn", 1, b"x", 0)])
            one = writer._one
            seen: list[tuple] = []

            def fail_second(row: tuple) -> None:
                seen.append(row)
                if len(seen) == 2:
                    raise RuntimeError("lost in the retry")
                one(row)

            monkeypatch.setattr(writer, "_one", fail_second)
            with pytest.raises(RuntimeError, match="lost in the retry"):
                writer.write(
                    [("b", "fn", 1, b"y", 0), ("a", "fn", 1, b"z", 0), ("c", "fn", 1, b"w", 0)]
                )
            raw = writer.raw
            if store.backend == "sqlite":
                with pytest.raises(sqlite3.OperationalError, match="no such savepoint"):
                    raw.execute("RELEASE queuetool_batch")
            else:
                assert not raw.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS
            table = conn_quote(store.engine, stage)
            rows = conn.exec_driver_sql(f"SELECT unique_key FROM {table}").all()
            assert [r[0] for r in rows] == ["a"]  # nothing of the failed batch is left
            monkeypatch.setattr(writer, "_one", one)
            writer.write([("b", "fn", 1, b"y", 0), ("a", "fn", 1, b"z", 0)])  # usable again
            assert (writer.skipped, writer.not_written.rows) == (1, 1)
            rows = conn.exec_driver_sql(f"SELECT unique_key FROM {table} ORDER BY 1").all()
            assert [r[0] for r in rows] == ["a", "b"]
            writer.close()
            store.dialect.drop_table(conn, stage)
    finally:
        store.close()


def test_target_checksum_in_two_halves_equals_the_whole(mysql_queue):
    """The staging table's checksum, summed by two connections over two halves of the
    rows, is exactly the one of every row read through the driver (NULLs included)."""
    from queuetool.migrate.targetsum import staging_checksum

    rows = [(f"k{i}", "fñ", i % 3, bytes([i, 0]), i) for i in range(50)]
    rows += [(None, "fn", 1, b"x", 0), ("nulldata", "fn", None, None, None)]
    mysql_queue.insert(rows)
    store = QueueStore(mysql_queue.url)
    try:
        with store.connect() as conn:
            whole = table_checksum(conn, store.table)
            assert staging_checksum(store, conn, "gearman_queue") == whole
        assert whole.rows == len(rows)
    finally:
        store.close()


def test_skip_invalid_with_non_utf8_text_exports_each_refused_row_once(tmp_path, mysql_queue):
    """A first pass that exported refused rows and then met text that is not UTF-8 is
    read again byte-exact: the export is written anew, not refused as existing."""
    (tmp_path / "s").mkdir()
    src = make_sqlite_queue(tmp_path / "s")
    # The refused row comes in the first read batch, the undecodable one in a later one.
    good = [(f"ok{i}", "fn", 1, b"y", 0) for i in range(1500)]
    src.insert([("p7", "fn", 7, b"x", 0), *good])
    with sqlite3.connect(src.sqlite_path) as conn:
        conn.execute("INSERT INTO gearman_queue VALUES (CAST(x'ff61' AS TEXT), 'fn', 1, x'00', 0)")
    conn.close()
    export = tmp_path / "skipped.jsonl"
    source, target = QueueStore(src.url), QueueStore(mysql_queue.url)
    notes: list[str] = []
    try:
        result = migrate(
            source,
            target,
            MigrateOptions(skip_invalid=True, skipped_file=export),
            note=notes.append,
        )
    finally:
        source.close()
        target.close()
    assert any("not UTF-8" in n for n in notes)
    assert result.skipped_file == export
    reasons = sorted(json.loads(x)["reason"] for x in export.read_text().splitlines()[1:-1])
    assert reasons == ["priority_range", "unique_key_utf8"]
    assert len(mysql_queue.rows()) == len(good)
