"""export and import against real gearmand daemons and real SQLite / MariaDB queues."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid

import pytest
from conftest import Queue, make_mysql_queue, make_sqlite_queue, mysql_ddl
from servers import JobSpec, pid_alive, priority_status, submit, work

from queuetool.table.store import QueueStore

ALL_BYTES = bytes(range(256))
# Keys a careless format loses: separators, quotes, newlines, backslashes, spaces at
# the ends, non-ASCII (latin1 holds these, so gearmand's own MySQL table takes them).
ODD_KEYS = ["k,comma", 'k"quote', "k\nnewline", "k\\back\\slash", " spaced ", "clé-é", "k\ttab"]


def jobs() -> list[JobSpec]:
    odd = [
        JobSpec("copyOdd", key, ALL_BYTES + key.encode(), priority=i % 3)
        for i, key in enumerate(ODD_KEYS)
    ]
    plain = [JobSpec("copyTrial", f"t{i}", bytes([i]) * i, priority=2) for i in range(5)]
    return odd + plain


def ok(result) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output


def restart(daemon) -> None:  # type: ignore[no-untyped-def]
    """The window restarted gearmand under a new pid: follow it."""
    daemon.pid = int(daemon.pidfile.read_text())
    assert pid_alive(daemon.pid)


def test_round_trip_from_a_live_queue_is_byte_identical_and_gearmand_hands_out_every_job(
    queue: Queue, cli, tmp_path, snapdir
):
    daemon = queue.gearmand()
    submit(daemon.port, jobs())
    before = queue.rows()
    assert len(before) == len(jobs())
    out = tmp_path / "all.jsonl"
    # While the daemon runs: export only reads.
    result = cli("export", *queue.cli_args(), str(out), "--quiet")
    ok(result)
    assert result.stdout.startswith(f"exported {len(before)} jobs to {out} (jsonl)")
    assert out.stat().st_mode & 0o777 == 0o600
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0]["format"] == "queuetool-jobs/1" and lines[-1]["count"] == len(before)

    daemon.stop()
    ok(cli("purge", *queue.cli_args(), "--all", "--yes", "--snapshot-dir", str(snapdir)))
    assert queue.rows() == []
    result = cli("import", *queue.cli_args(), str(out), "--yes", "--snapshot-dir", str(snapdir))
    ok(result)
    assert f"{len(before)} jobs added, 0 replaced" in result.stdout
    # gearmand itself stored the empty payload as NULL (which its SQLite replay then
    # refuses): the import writes the empty BLOB it means, as migrate does, and says so.
    assert "normalised: 1 data NULL -> empty payload" in result.stdout
    before = [(u, f, p, b"" if d is None else d, w) for u, f, p, d, w in before]
    assert queue.rows() == before

    daemon.start()
    assert priority_status(daemon.port) == queue.counts()
    got = work(daemon.port, ["copyOdd", "copyTrial"], len(before), timeout=20)
    assert sorted((r.function, r.unique, r.data) for r in got) == sorted(
        (s.function, s.unique, s.data) for s in jobs()
    )


def test_csv_and_stdin_stdout_round_trip(queue: Queue, cli, tmp_path, snapdir):
    rows = [(k, "fn", 1, ALL_BYTES, 0) for k in ODD_KEYS] + [("empty", "fn", 0, b"", 7)]
    queue.insert(rows)
    before = queue.rows()
    csv_file = tmp_path / "jobs.csv"
    ok(cli("export", *queue.cli_args(), str(csv_file), "--quiet"))
    assert (
        csv_file.read_text().splitlines()[0]
        == "unique_key,function,priority,when_to_run,data,encoded"
    )
    piped = cli("export", *queue.cli_args(), "-", "--quiet")
    ok(piped)
    ok(cli("purge", *queue.cli_args(), "--all", "--yes", "--snapshot-dir", str(snapdir)))
    ok(cli("import", *queue.cli_args(), str(csv_file), "--yes", "--snapshot-dir", str(snapdir)))
    assert queue.rows() == before
    ok(cli("purge", *queue.cli_args(), "--all", "--yes", "--snapshot-dir", str(snapdir)))
    result = cli(
        "import",
        *queue.cli_args(),
        "-",
        "--yes",
        "--snapshot-dir",
        str(snapdir),
        input=piped.stdout,
    )
    ok(result)
    assert "stdin: 8 jobs (JSON Lines, count and checksum verified" in result.stdout
    assert queue.rows() == before


def test_import_while_gearmand_runs_goes_through_the_window(queue: Queue, cli, tmp_path, snapdir):
    daemon = queue.gearmand()
    submit(daemon.port, [JobSpec("copyTrial", "old", b"old", priority=1)])
    new = [(f"n{i}", "copyNew", i % 3, ALL_BYTES + bytes([i]), 0) for i in range(20)]
    path = tmp_path / "new.jsonl"
    path.write_text(_file(new))
    old_pid = daemon.pid
    result = cli("import", *queue.cli_args(), str(path), "--yes", "--snapshot-dir", str(snapdir))
    ok(result)
    assert "gearmand is running" in result.stderr
    assert "20 jobs added, 0 replaced" in result.stdout
    assert "downtime:" in result.stdout
    assert not pid_alive(old_pid)
    restart(daemon)
    assert (
        priority_status(daemon.port)
        == queue.counts()
        == {
            "copyTrial": (0, 1, 0),
            "copyNew": (7, 7, 6),
        }
    )
    got = work(daemon.port, ["copyNew"], 20, timeout=20)
    assert sorted((r.unique, r.data) for r in got) == sorted((u, d) for u, _f, _p, d, _w in new)


def _file(rows: list[tuple]) -> str:
    """A job file as `export` writes it, built with the library's writer."""
    import io

    from queuetool.table.export import JobWriter

    out = io.StringIO()
    writer = JobWriter(out)
    for row in rows:
        writer.write(row)
    writer.close()
    return out.getvalue()


@pytest.mark.parametrize("mode", ["fail", "skip", "replace"])
def test_conflicts_in_each_mode_and_restore_undoes_the_import(
    queue: Queue, cli, tmp_path, snapdir, mode
):
    queue.insert([("k1", "fn", 1, b"table", 0), ("k9", "fn", 2, b"other", 0)])
    before = queue.rows()
    path = tmp_path / "in.jsonl"
    # k2 twice in the file: the same rule settles it as a conflict with the table.
    path.write_text(
        _file([("k1", "fn", 0, b"file", 0), ("k2", "fn", 1, b"a", 0), ("k2", "fn", 1, b"b", 0)])
    )
    result = cli(
        "import",
        *queue.cli_args(),
        str(path),
        "--yes",
        "--on-conflict",
        mode,
        "--snapshot-dir",
        str(snapdir),
    )
    if mode == "fail":
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: 1 jobs of in.jsonl repeat") or (
            "repeat another job" in result.stderr
        )
        assert queue.rows() == before
        assert list(snapdir.iterdir()) == []
        # Without the duplicate, the conflict with the table is what refuses it.
        path.unlink()
        path.write_text(_file([("k1", "fn", 0, b"file", 0), ("k2", "fn", 1, b"a", 0)]))
        result = cli(
            "import", *queue.cli_args(), str(path), "--yes", "--snapshot-dir", str(snapdir)
        )
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines()[-1:] == [
            "Error: 1 jobs of the file are already in the table (e.g. fn/k1): --on-conflict "
            "fail refuses them; skip keeps the table's, replace takes the file's. Nothing was "
            "imported"
        ]
        assert queue.rows() == before
        return
    ok(result)
    got = {r[0]: r for r in queue.rows()}
    if mode == "skip":
        assert "1 jobs added, 0 replaced, 1 already in the table" in result.stdout
        assert got["k1"] == ("k1", "fn", 1, b"table", 0)
        assert got["k2"] == ("k2", "fn", 1, b"a", 0)  # the first of the file's two
    else:
        assert "1 jobs added, 1 replaced" in result.stdout
        assert got["k1"] == ("k1", "fn", 0, b"file", 0)
        assert got["k2"] == ("k2", "fn", 1, b"b", 0)  # the last of the file's two
    assert got["k9"] == ("k9", "fn", 2, b"other", 0)
    snapshot = next(p for p in snapdir.iterdir() if "before-import" in p.name)
    ok(cli("restore", *queue.cli_args(), str(snapshot), "--yes", "--snapshot-dir", str(snapdir)))
    assert queue.rows() == before  # the added job gone, the replaced one back


@pytest.mark.parametrize(
    "damage",
    ["cut", "altered", "no-trailer", "after-trailer", "half-line", "half-pair", "half-pair-bytes"],
)
def test_a_damaged_file_is_refused_with_one_line_and_nothing_written(
    queue: Queue, cli, tmp_path, snapdir, damage
):
    queue.insert([("keep", "fn", 1, b"x", 0)])
    before = queue.rows()
    good = _file([(f"k{i}", "fn", 1, ALL_BYTES, 0) for i in range(10)])
    lines = good.splitlines(keepends=True)
    if damage == "cut":
        text = "".join(lines[:5] + lines[-1:])
    elif damage == "altered":
        record = json.loads(lines[3])
        record["priority"] = 2
        text = "".join([*lines[:3], json.dumps(record) + "\n", *lines[4:]])
    elif damage == "no-trailer":
        text = "".join(lines[:-1])
    elif damage == "after-trailer":
        text = good + lines[2]
    elif damage == "half-pair":  # a JSON escape of half a UTF-16 pair: no bytes at all
        text = "".join([*lines[:3], lines[3].replace('"k2"', '"k\\ud800"'), *lines[4:]])
        assert text != good
    elif damage == "half-pair-bytes":  # the same half pair as UTF-8 would write it: ED A0 80
        text = "".join([*lines[:3], lines[3].replace('"k2"', '"k\ud800"'), *lines[4:]])
        assert text != good
    else:
        text = good[: len(good) // 2]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    daemon = queue.gearmand()  # a running daemon is not even stopped for a bad file
    pid = daemon.pid
    result = cli(
        "import", *queue.cli_args(), str(path), "--yes", "--quiet", "--snapshot-dir", str(snapdir)
    )
    assert result.exit_code == 5, result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ") and "Nothing was imported" in err[0]
    assert "Traceback" not in result.output
    assert daemon.pid == pid and pid_alive(pid)
    assert queue.rows() == before
    assert list(snapdir.iterdir()) == []


def test_a_file_from_the_other_backend(tmp_path, mysql_server, mysql_db, cli, snapdir):
    (tmp_path / "lite").mkdir()
    lite = make_sqlite_queue(tmp_path / "lite")
    my = make_mysql_queue(tmp_path / "my", mysql_server, mysql_db)
    rows = [(k, "fn", 2, ALL_BYTES, 1_900_000_000) for k in ODD_KEYS]
    lite.insert(rows)
    path = tmp_path / "from-sqlite.jsonl"
    ok(cli("export", *lite.cli_args(), str(path), "--quiet"))
    ok(cli("import", *my.cli_args(), str(path), "--yes", "--snapshot-dir", str(snapdir)))
    assert my.rows() == lite.rows()
    back = tmp_path / "from-mysql.csv"
    ok(cli("export", *my.cli_args(), str(back), "--quiet"))
    ok(cli("purge", *lite.cli_args(), "--all", "--yes", "--snapshot-dir", str(snapdir)))
    ok(cli("import", *lite.cli_args(), str(back), "--yes", "--snapshot-dir", str(snapdir)))
    assert lite.rows() == my.rows() == sorted(rows)
    daemon = my.gearmand()
    assert priority_status(daemon.port) == my.counts() == {"fn": (0, 0, len(rows))}


def test_utf8mb4_mysql_round_trip_of_keys_latin1_cannot_hold(
    tmp_path, mysql_server, mysql_db, cli, snapdir
):
    mysql_server.query(mysql_db, mysql_ddl() + " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin")
    queue = make_mysql_queue(tmp_path, mysql_server, mysql_db, create=False)
    keys = ["k-☃", "日本語", "emoji-😀", "a", "a "]
    queue.insert([(k, "fn-☃", 1, ALL_BYTES, 0) for k in keys])
    before = queue.rows()
    path = tmp_path / "u.jsonl"
    ok(cli("export", *queue.cli_args(), str(path), "--quiet"))
    ok(cli("purge", *queue.cli_args(), "--all", "--yes", "--snapshot-dir", str(snapdir)))
    ok(cli("import", *queue.cli_args(), str(path), "--yes", "--snapshot-dir", str(snapdir)))
    assert queue.rows() == before
    daemon = queue.gearmand()
    got = work(daemon.port, ["fn-☃"], len(keys), timeout=20)
    assert sorted(r.unique for r in got) == sorted(keys)


def _stored(path) -> list[tuple]:  # type: ignore[no-untyped-def]
    """The rows as SQLite holds them: every value's bytes and storage class."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT hex(unique_key), typeof(unique_key), hex(function_name), "
            "typeof(function_name), priority, hex(data), typeof(data), when_to_run "
            "FROM gearman_queue ORDER BY 1"
        ).fetchall()
    finally:
        conn.close()


def test_sqlite_key_that_is_not_utf8_round_trips_byte_exact_and_gearmand_replays_it(
    sqlite_queue: Queue, cli, tmp_path, snapdir
):
    with sqlite3.connect(sqlite_queue.sqlite_path) as conn:
        conn.execute("INSERT INTO gearman_queue VALUES (CAST(x'ff61' AS TEXT), 'fn', 1, x'00', 0)")
        conn.execute("INSERT INTO gearman_queue VALUES ('ok', 'fn', 1, x'01', 0)")
    conn.close()
    before = _stored(sqlite_queue.sqlite_path)
    assert before[-1][:2] == ("FF61", "text")
    path = tmp_path / "x.jsonl"
    ok(cli("export", *sqlite_queue.cli_args(), str(path), "--quiet"))
    records = [json.loads(x) for x in path.read_text().splitlines()[1:-1]]
    assert {
        "unique_key_base64": "/2E=",
        "function": "fn",
        "priority": 1,
        "when_to_run": 0,
        "data": "AA==",
    } in records
    ok(cli("purge", *sqlite_queue.cli_args(), "--all", "--yes", "--snapshot-dir", str(snapdir)))
    assert _stored(sqlite_queue.sqlite_path) == []
    result = cli(
        "import", *sqlite_queue.cli_args(), str(path), "--yes", "--snapshot-dir", str(snapdir)
    )
    ok(result)
    assert "2 jobs added, 0 replaced" in result.stdout
    assert _stored(sqlite_queue.sqlite_path) == before  # same bytes, TEXT, not BLOB
    # The undo snapshot covers the odd key too: restoring it takes both jobs out again.
    snapshot = next(p for p in snapdir.iterdir() if "before-import" in p.name)
    ok(
        cli(
            "restore",
            *sqlite_queue.cli_args(),
            str(snapshot),
            "--yes",
            "--snapshot-dir",
            str(snapdir),
        )
    )
    assert _stored(sqlite_queue.sqlite_path) == []
    # And once more through a conflict (--on-conflict replace), then gearmand replays it.
    ok(cli("import", *sqlite_queue.cli_args(), str(path), "--yes", "--snapshot-dir", str(snapdir)))
    replaced = cli(
        "import",
        *sqlite_queue.cli_args(),
        str(path),
        "--yes",
        "--on-conflict",
        "replace",
        "--snapshot-dir",
        str(snapdir),
    )
    ok(replaced)
    assert "0 jobs added, 2 replaced" in replaced.stdout
    assert _stored(sqlite_queue.sqlite_path) == before
    daemon = sqlite_queue.gearmand()
    assert priority_status(daemon.port) == {"fn": (0, 2, 0)}
    got = work(daemon.port, ["fn"], 2, timeout=20)
    assert sorted((r.unique, r.data) for r in got) == [("ok", b"\x01"), ("\udcffa", b"\x00")]


def test_a_key_that_is_not_utf8_is_refused_on_mysql_and_listed(
    tmp_path, mysql_server, mysql_db, cli, snapdir
):
    (tmp_path / "lite").mkdir()
    lite = make_sqlite_queue(tmp_path / "lite")
    my = make_mysql_queue(tmp_path / "my", mysql_server, mysql_db)
    with sqlite3.connect(lite.sqlite_path) as conn:
        conn.execute("INSERT INTO gearman_queue VALUES (CAST(x'ff61' AS TEXT), 'fn', 1, x'00', 0)")
        conn.execute("INSERT INTO gearman_queue VALUES ('ok', 'fn', 1, x'01', 0)")
    conn.close()
    path = tmp_path / "x.jsonl"
    ok(cli("export", *lite.cli_args(), str(path), "--quiet"))
    refused = cli("import", *my.cli_args(), str(path), "--yes", "--snapshot-dir", str(snapdir))
    assert refused.exit_code == 1
    assert "1 unique_key_utf8: unique_key is not valid UTF-8 (e.g. fn/\\xffa)" in refused.stderr
    assert my.rows() == []
    skipped = tmp_path / "skipped.jsonl"
    result = cli(
        "import",
        *my.cli_args(),
        str(path),
        "--yes",
        "--skip-invalid",
        "--skipped-file",
        str(skipped),
        "--snapshot-dir",
        str(snapdir),
    )
    ok(result)
    assert "1 jobs added" in result.stdout
    assert my.rows() == [("ok", "fn", 1, b"\x01", 0)]
    # The refused job's file is a job file too, byte-exact, with its reason.
    lines = [json.loads(x) for x in skipped.read_text().splitlines()]
    assert lines[1]["unique_key_base64"] == "/2E=" and lines[1]["reason"] == "unique_key_utf8"
    assert lines[-1]["count"] == 1


def test_a_plain_list_of_payloads_gets_uuid1_keys(queue: Queue, cli, tmp_path, snapdir):
    path = tmp_path / "ids.txt"
    path.write_bytes(b"order-1\norder-2\r\n\norder-\xff3\n")
    result = cli(
        "import",
        *queue.cli_args(),
        str(path),
        "--function",
        "resubmit",
        "--priority",
        "high",
        "--yes",
        "--snapshot-dir",
        str(snapdir),
    )
    ok(result)
    assert "3 jobs without a unique key given a UUID v1" in result.stdout
    rows = queue.rows()
    assert sorted(r[3] for r in rows) == [b"order-1", b"order-2", b"order-\xff3"]
    assert all(uuid.UUID(r[0]).version == 1 and r[1:3] == ("resubmit", 0) for r in rows)
    daemon = queue.gearmand()
    assert priority_status(daemon.port) == {"resubmit": (3, 0, 0)}
    got = work(daemon.port, ["resubmit"], 3, timeout=20)
    assert sorted(r.data for r in got) == [b"order-1", b"order-2", b"order-\xff3"]


def test_purge_export_is_import_input_and_a_bad_row_is_listed(queue: Queue, cli, tmp_path, snapdir):
    rows = [(f"p{i}", "fn", 1, ALL_BYTES, 0) for i in range(4)]
    queue.insert(rows)
    export = tmp_path / "purged.jsonl"
    ok(
        cli(
            "purge",
            *queue.cli_args(),
            "--all",
            "--export",
            str(export),
            "--yes",
            "--snapshot-dir",
            str(snapdir),
        )
    )
    ok(cli("import", *queue.cli_args(), str(export), "--yes", "--snapshot-dir", str(snapdir)))
    assert queue.rows() == sorted(rows)
    # A file with jobs gearmand could not replay: all listed, nothing written.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        _file([("x", "fn", 7, b"", 0), ("y", "fn", 1, b"", 2**40), ("z", "fn", 1, b"", 0)])
    )
    result = cli(
        "import",
        *queue.cli_args(),
        str(bad),
        "--yes",
        "--on-conflict",
        "skip",
        "--snapshot-dir",
        str(snapdir),
    )
    assert result.exit_code == 1
    assert "1 priority_range" in result.stderr
    if queue.backend == "mysql":
        assert "1 when_to_run_range" in result.stderr
    assert queue.rows() == sorted(rows)


def test_dry_run_counts_and_changes_nothing(queue: Queue, cli, tmp_path, snapdir):
    queue.insert([("k1", "fn", 1, b"t", 0)])
    path = tmp_path / "in.jsonl"
    path.write_text(_file([("k1", "fn", 1, b"f", 0), ("k2", "fn", 1, b"f", 0)]))
    result = cli("import", *queue.cli_args(), str(path), "--dry-run", "--on-conflict", "replace")
    ok(result)
    assert "dry run: 1 jobs would be added, 1 would be replaced" in result.stdout
    assert queue.rows() == [("k1", "fn", 1, b"t", 0)]
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob("*.qtsnap"))


def test_export_refuses_a_store_queue_on_shutdown_daemon(sqlite_queue: Queue, cli, tmp_path):
    daemon = sqlite_queue.gearmand("--store-queue-on-shutdown")
    submit(daemon.port, [JobSpec("fn", "a")])
    result = cli("export", *sqlite_queue.cli_args(), str(tmp_path / "x.jsonl"))
    assert result.exit_code == 4
    assert "--store-queue-on-shutdown" in result.stderr
    assert not (tmp_path / "x.jsonl").exists()


def _export_lines(rows) -> list[bytes]:  # type: ignore[no-untyped-def]
    from queuetool.table.export import job_line

    return [job_line(row).encode() for row in rows]


@pytest.mark.parametrize(
    "extra",
    [
        b"",  # every line as export writes it: the fast path
        b'{"unique_key": "k\\"q", "function": "fn", "priority": 1, "when_to_run": 0, "data": ""}\n',
        b'{"unique_key": "x", "function": "fn", "priority": -0, "when_to_run": 0, "data": ""}\n',
        b'{"unique_key": "y", "function": "fn", "priority": 1, "when_to_run": 0, "data": "QQ"}\n',
        b'{"unique_key": "z", "function": "fn", "when_to_run": 0, "priority": 1, "data": ""}\n',
        b'{"unique_key": "\xff", "function": "fn", "priority": 1, "when_to_run": 0, "data": ""}\n',
        b'x{"unique_key": "w", "function": "fn", "priority": 1, "when_to_run": 0, "data": ""}\n',
    ],
)
def test_the_fast_parse_of_exported_lines_is_the_json_parse(tmp_path, monkeypatch, extra):
    """The regular expression that parses (and sums) the lines export writes gives the
    rows, checksum and errors that json.loads gives, line for line."""
    from queuetool.table import jobfile

    rows = [(f"k{i}", "fn", i % 3, bytes([i % 256]) * (i % 7), i * 1000) for i in range(12)]
    rows += [("clé-é", "fünf", 2, ALL_BYTES, 2**40), (" sp ", "f\x7f", 0, b"", -5)]
    body = _export_lines(rows)
    body.insert(5, extra)
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(b"".join(body))

    def outcome():  # type: ignore[no-untyped-def]
        source = jobfile.JobSource(path, verify_trailer=False)
        try:
            check = source.verify()
        except jobfile.FileDamaged as exc:
            return str(exc)
        got = [row for batch in source.batches() for row in batch]
        return check.rows, check.checksum.hex, got, [tuple(map(type, r)) for r in got]

    for batch in (3, 5000):  # batches of one kind of line, and all in one
        monkeypatch.setattr(jobfile, "BATCH", batch)
        fast = outcome()
        with monkeypatch.context() as m:
            m.setattr(jobfile._Reader, "_exported", lambda self, lines: None)
            assert fast == outcome()
    if not extra:
        assert fast[0] == len(rows)


def test_a_killed_imports_scratch_files_are_removed_by_the_next(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from queuetool.changes.import_spool import Spool

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that has exited
    dead = [
        tmp_path / f"queuetool-import-{proc.pid}-abc.spool.db",
        tmp_path / f"queuetool-import-{proc.pid}-def.spool",
    ]
    # Held by a live import whose pid looks dead here (another PID namespace sharing
    # /tmp): its lock keeps it.
    held = tmp_path / f"queuetool-import-{proc.pid}-jkl.spool.db"
    # Not locked, but its pid runs: an older queuetool's import (no lock) may be writing it.
    alive = tmp_path / f"queuetool-import-{os.getppid()}-ghi.spool.db"
    other = tmp_path / "queuetool-import-notapid.spool.db"
    for path in (*dead, held, alive, other):
        path.write_bytes(b"x")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'rb'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); sys.stdin.read()",
            str(held),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        spool = Spool()
        try:
            assert spool.path.parent == tmp_path and f"-{os.getpid()}-" in spool.path.name
            assert not any(p.exists() for p in dead)
            assert held.exists() and alive.exists() and other.exists()
            # This import's own spool is locked too: another import leaves it alone.
            check = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys, tempfile; tempfile.tempdir = sys.argv[1]; "
                    "from queuetool.table.jobfile import remove_leftover_scratch as r; "
                    "print([p.name for p in r()])",
                    str(tmp_path),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            assert check.stdout == "[]\n" and spool.path.exists()
        finally:
            spool.close()
        assert not spool.path.exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()
    # The holder is gone, its lock with it: now a leftover.
    spool = Spool()
    spool.close()
    assert not held.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])


@pytest.mark.parametrize("mode", ["fail", "skip", "replace"])
def test_into_an_empty_table_and_a_file_holding_a_job_twice(
    queue: Queue, cli, tmp_path, snapdir, mode
):
    """The cold start (an empty table; on MySQL written straight in, no TEMPORARY
    table): the same outcome, one snapshot, and its restore empties the table again; a
    job the file holds twice sends the import the general way, leaving no snapshot of
    its own behind."""
    rows = [(f"k{i}", "fn", i % 3, bytes([i]) * i, 0) for i in range(20)]
    path = tmp_path / "in.jsonl"
    path.write_text(_file(rows))
    args = ("import", *queue.cli_args(), str(path), "--yes", "--snapshot-dir", str(snapdir))
    result = cli(*args)
    ok(result)
    assert "20 jobs added, 0 replaced" in result.stdout
    assert sorted(queue.rows()) == sorted(rows)
    (snapshot,) = snapdir.iterdir()
    ok(cli("restore", *queue.cli_args(), str(snapshot), "--yes", "--snapshot-dir", str(snapdir)))
    assert queue.rows() == []
    for p in snapdir.iterdir():
        p.unlink()
    path.unlink()
    path.write_text(_file([*rows, ("k3", "fn", 2, b"again", 0)]))
    result = cli(*args, "--on-conflict", mode)
    if mode == "fail":
        assert result.exit_code == 1 and "repeat another job" in result.stderr
        assert queue.rows() == [] and list(snapdir.iterdir()) == []
        return
    ok(result)
    assert "20 jobs added, 0 replaced" in result.stdout
    got = {r[0]: r for r in queue.rows()}
    assert len(got) == 20
    assert got["k3"] == (
        ("k3", "fn", 0, b"\3" * 3, 0) if mode == "skip" else ("k3", "fn", 2, b"again", 0)
    )
    assert len([p for p in snapdir.iterdir() if "before-import" in p.name]) == 1


@pytest.mark.mysql
def test_an_empty_myisam_table_is_not_written_straight(
    tmp_path, mysql_server, mysql_db, cli, snapdir
):
    """Straight into an empty table relies on ROLLBACK undoing every row written; MyISAM
    keeps them, so such a table takes the general way (and still gets every job)."""
    my = make_mysql_queue(tmp_path / "my", mysql_server, mysql_db)
    store = QueueStore(my.url, my.table)
    try:
        with store.connect(read_only=True) as conn:
            assert store.dialect.rolls_back(conn, my.table)
        my.sql(f"ALTER TABLE {my.table} ENGINE=MyISAM")
        with store.connect(read_only=True) as conn:
            assert not store.dialect.rolls_back(conn, my.table)
    finally:
        store.close()
    rows = [(f"k{i}", "fn", i % 3, ALL_BYTES, 0) for i in range(20)]
    path = tmp_path / "jobs.jsonl"
    path.write_text(_file(rows))
    ok(cli("import", *my.cli_args(), str(path), "--yes", "--snapshot-dir", str(snapdir)))
    assert my.rows() == sorted(rows)


@pytest.mark.mysql
def test_only_an_empty_table_is_written_straight_and_its_emptiness_locks_out_inserts(
    tmp_path, mysql_server, mysql_db, cli, snapdir, monkeypatch
):
    """The straight way relies on the table being empty and staying so: its check
    (one row read, not a count) must lock an empty table against inserts, and a table
    that holds jobs must go the general way."""
    import pymysql

    from queuetool.changes import importing

    straight = []
    real_init = importing._DirectWriter.__init__

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        straight.append(True)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(importing._DirectWriter, "__init__", spy)
    my = make_mysql_queue(tmp_path / "my", mysql_server, mysql_db)
    args = ("import", *my.cli_args(), "--yes", "--snapshot-dir", str(snapdir))
    first = [(f"a{i}", "fn", 1, b"x" * i, 0) for i in range(10)]
    (tmp_path / "a.jsonl").write_text(_file(first))
    ok(cli(*args[:-3], str(tmp_path / "a.jsonl"), *args[-3:]))
    assert straight == [True]
    more = [(f"b{i}", "fn", 2, b"y" * i, 0) for i in range(10)]
    (tmp_path / "b.jsonl").write_text(_file(more))
    result = cli(*args[:-3], str(tmp_path / "b.jsonl"), *args[-3:])
    ok(result)
    assert "10 jobs added, 0 replaced" in result.stdout
    assert straight == [True]  # not straight into a table that holds jobs
    assert my.rows() == sorted(first + more)

    store = QueueStore(my.url, my.table)
    my.sql("CREATE TABLE empty_q LIKE gearman_queue")
    other = mysql_server.connect(mysql_db)
    try:
        with other.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
        for table, empty in (("gearman_queue", False), ("empty_q", True)):
            with store.begin() as conn:
                assert store.dialect.empty_locked(conn, table) is empty
                if empty:
                    with other.cursor() as cur, pytest.raises(pymysql.OperationalError) as waited:
                        cur.execute(f"INSERT INTO {table} VALUES ('z', 'fn', 1, '', 0)")
                    assert waited.value.args[0] == 1205  # lock wait timeout
        with other.cursor() as cur:  # the commit let go of the lock
            cur.execute("INSERT INTO empty_q VALUES ('z', 'fn', 1, '', 0)")
    finally:
        other.close()
        store.close()


@pytest.mark.mysql
def test_a_straight_import_whose_commit_fails_after_the_server_committed_keeps_its_undo(
    tmp_path, mysql_server, mysql_db, cli, snapdir, monkeypatch
):
    """The connection lost during COMMIT: the server may have committed, so the undo
    snapshot is kept and the error says so; here it had, and the snapshot undoes it."""
    import pymysql

    real_commit = pymysql.connections.Connection.commit
    lost = []

    def commit(self):  # type: ignore[no-untyped-def]
        real_commit(self)
        if not lost:
            lost.append(True)
            raise pymysql.err.OperationalError(2013, "Lost connection to server during query")

    my = make_mysql_queue(tmp_path / "my", mysql_server, mysql_db)
    rows = [(f"k{i}", "fn", i % 3, bytes([i]) * i, 0) for i in range(20)]
    path = tmp_path / "jobs.jsonl"
    path.write_text(_file(rows))
    monkeypatch.setattr(pymysql.connections.Connection, "commit", commit)
    args = ("import", *my.cli_args(), str(path), "--yes", "--quiet", "--snapshot-dir", str(snapdir))
    result = cli(*args)
    monkeypatch.undo()
    assert lost == [True]
    (snapshot,) = snapdir.iterdir()
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "Error: the import's commit failed (database error: Lost connection to server during "
        "query): whether it took effect is unknown, the 20 jobs may be in the table; its "
        f"undo snapshot is kept: `queuetool restore {snapshot}` undoes it\n"
    )
    assert my.rows() == sorted(rows)
    restore = ("restore", *my.cli_args(), str(snapshot), "--yes", "--snapshot-dir", str(snapdir))
    ok(cli(*restore))
    assert my.rows() == []


@pytest.mark.mysql
@pytest.mark.parametrize("damage", ["cut", "altered-last"])
def test_a_cold_start_written_as_the_file_is_read_rolls_back_a_damaged_file(
    tmp_path, mysql_server, mysql_db, cli, snapdir, monkeypatch, damage
):
    """Into an empty MySQL table the first pass writes each batch as it reads it, so the
    server inserts while the file is parsed. A file found damaged only at its end (after
    rows went to the server) must leave the table empty and no snapshot: nothing is
    committed before the trailer has been checked."""
    from queuetool.changes import importing

    written = []  # rows handed to the writer's thread during the first pass
    real_feed = importing._Feed.__call__

    def spy(self, rows):  # type: ignore[no-untyped-def]
        written.append(len(rows))
        real_feed(self, rows)

    monkeypatch.setattr(importing._Feed, "__call__", spy)
    my = make_mysql_queue(tmp_path / "my", mysql_server, mysql_db)
    rows = [(f"k{i:05d}", "fn", i % 3, bytes([i % 256]) * (i % 50), 0) for i in range(12_000)]
    lines = _file(rows).splitlines(keepends=True)
    if damage == "cut":  # the last lines lost: the trailer's count says so
        text = "".join(lines[:-3] + lines[-1:])
    else:  # the last job's payload changed: only the trailer's checksum says so
        record = json.loads(lines[-2])
        record["priority"] = (record["priority"] + 1) % 3
        text = "".join([*lines[:-2], json.dumps(record) + "\n", lines[-1]])
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    args = ("import", *my.cli_args(), str(path), "--yes", "--quiet", "--snapshot-dir", str(snapdir))
    result = cli(*args)
    assert result.exit_code == 5, result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "Nothing was imported" in err[0], result.stderr
    assert sum(written) >= 9_000  # handed to the server before the damage showed
    assert my.rows() == []
    assert list(snapdir.iterdir()) == []
    # The same file undamaged goes in whole, written as read.
    written.clear()
    path.write_text("".join(lines))
    ok(cli(*args))
    assert sum(written) == len(rows)
    assert my.rows() == sorted(rows)
    assert len(list(snapdir.iterdir())) == 1


@pytest.mark.mysql
def test_a_cold_start_stops_writing_at_a_refused_job_and_tries_straight_once(
    tmp_path, mysql_server, mysql_db, cli, snapdir, monkeypatch
):
    """Written as read, a file holding a job gearmand cannot replay stops the writing at
    that job's batch (the import is refused, nothing goes in); one holding a job twice
    is rolled back and settled the general way, without writing it straight again. An
    empty file takes no snapshot (it would push out an older one)."""
    from queuetool.changes import importing

    fed: list[int] = []
    straight: list[bool] = []
    real_feed, real_init = importing._Feed.__call__, importing._DirectWriter.__init__

    def feed(self, rows):  # type: ignore[no-untyped-def]
        fed.append(len(rows))
        real_feed(self, rows)

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        straight.append(True)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(importing._Feed, "__call__", feed)
    monkeypatch.setattr(importing._DirectWriter, "__init__", init)
    my = make_mysql_queue(tmp_path / "my", mysql_server, mysql_db)
    args = ("import", *my.cli_args(), "--yes", "--quiet", "--snapshot-dir", str(snapdir))
    rows = [(f"k{i:05d}", "fn", 1, b"x", 0) for i in range(12_000)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_file([*rows[:6000], ("k" * 65, "fn", 1, b"x", 0), *rows[6000:]]))
    result = cli(*args[:-4], str(bad), *args[-4:])
    assert result.exit_code == 1 and "cannot be imported" in result.stderr, result.output
    assert sum(fed) < 6000  # the batches after the refused job never went to the server
    assert my.rows() == [] and list(snapdir.iterdir()) == []

    fed.clear()
    straight.clear()
    twice = tmp_path / "twice.jsonl"
    twice.write_text(_file([*rows, rows[7]]))
    ok(cli(*args[:-4], str(twice), *args[-4:], "--on-conflict", "skip"))
    assert straight == [True]  # the general way did not try straight again
    assert my.rows() == sorted(rows)

    my.sql(f"DELETE FROM {my.table}")
    for p in snapdir.iterdir():
        p.unlink()
    empty = tmp_path / "empty.jsonl"
    empty.write_text(_file([]))
    result = cli(*args[:-4], str(empty), *args[-4:])
    ok(result)
    assert "0 jobs added" in result.stdout
    assert my.rows() == [] and list(snapdir.iterdir()) == []


@pytest.mark.parametrize("when", [10**30, 2**63, -(2**63) - 1])
@pytest.mark.parametrize("verify", [True, False])
def test_a_time_beyond_64_bits_is_refused_by_the_check_on_every_backend(
    queue: Queue, cli, tmp_path, snapdir, when, verify
):
    """No backend holds an integer beyond 64 bits (SQLite's INTEGER, PostgreSQL's BIGINT):
    such a when_to_run is refused with the other bad values, before the daemon is
    stopped, and never reaches the driver (an OverflowError)."""
    queue.insert([("k1", "fn", 1, b"table", 0)])
    daemon = queue.gearmand()
    before = queue.rows()
    rows = [("big", "fn", 1, b"x", when), ("fine", "fn", 1, b"y", 0)]
    path = tmp_path / "in.jsonl"
    if verify:
        path.write_text(_file(rows))
    else:  # no header, no trailer: only --no-verify imports it
        job = ("unique_key", "function", "priority", "data", "when_to_run")
        lines = [dict(zip(job, (*row[:3], "eA==", row[4]), strict=True)) for row in rows]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    extra = [] if verify else ["--no-verify"]
    result = cli(
        "import", *queue.cli_args(), str(path), *extra, "--yes", "--snapshot-dir", str(snapdir)
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr and "gearmand" not in result.stderr
    assert "1 when_to_run_range" in result.stderr and "fn/big" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: 1 of 2 jobs cannot be imported")
    assert queue.rows() == before and list(snapdir.iterdir()) == []
    assert daemon.running() and int(daemon.pidfile.read_text()) == daemon.pid
