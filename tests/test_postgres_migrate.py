"""migrate to and from PostgreSQL: sqlite -> postgres -> mysql -> sqlite, each queue
reloaded by a real gearmand, payloads byte-exact; PostgreSQL's limits refused together."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_postgres_queue
from servers import JobSpec, priority_status, submit

from queuetool.migrate import copy as copy_module
from queuetool.migrate.carry import Refusals
from queuetool.migrate.copy import MigrateOptions, migrate
from queuetool.migrate.staging import open_writer
from queuetool.table.checksum import Checksum
from queuetool.table.store import QueueStore, queue_table

FAR = 2_000_000_000


def jobs() -> list[JobSpec]:
    specs = [
        JobSpec(f"fn{i % 3}", f"u{i}", bytes([i % 256, 0, 255]) * (i % 4), priority=i % 3)
        for i in range(30)
    ]
    specs += [
        JobSpec("bytes", "every-byte", bytes(range(256)), priority=0),
        JobSpec("fñ", "café ☃", b"\x00caf\xc3\xa9\xff", priority=0),
        JobSpec("fñ", "naïve ü", b"\xff" * 3, priority=2),
        JobSpec("fn0", "back\\slash'quote", b"a\\b\\0", priority=1),
        JobSpec("fn1", "due-epoch", b"\x01epoch", when=int(time.time()) + 1),
        JobSpec("fn1", "later", b"\x00later", when=FAR),
    ]
    return specs


def migrate_ok(cli, *args: str) -> str:  # type: ignore[no-untyped-def]
    result = cli("migrate", *args, "--yes", "--quiet")
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def test_sqlite_postgres_mysql_sqlite_each_reloaded_by_gearmand(
    tmp_path, sqlite_queue, postgres_server, postgres_db, mysql_queue, cli
):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, jobs())
    expected = priority_status(daemon.port)
    daemon.stop()
    # gearmand stores an empty payload as NULL; migrate carries it as empty bytes.
    rows = sorted((u, f, p, d or b"", w) for u, f, p, d, w in sqlite_queue.rows())
    assert len(rows) == len(jobs())

    pg = make_postgres_queue(tmp_path / "pg", postgres_server, postgres_db, create=False)
    mysql_queue.sql("DROP TABLE gearman_queue")  # created by migrate, in utf8mb4
    back = tmp_path / "back.db"
    try:
        out = migrate_ok(cli, sqlite_queue.url, pg.url)
        assert "priority and when_to_run as TEXT: the replay-safe layout" in out
        assert "collation 'C.UTF-8' (deterministic: equal only when byte-identical" in out
        assert "-q Postgres --libpq-conninfo" in out and "password=*****" in out
        assert "t3st" not in out
        pg.table = "queue"  # the PostgreSQL plugin's default table
        assert pg.rows() == rows
        assert pg.sql(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'queue' "
            "AND column_name IN ('priority', 'when_to_run')"
        ) == [("text",), ("text",)]
        assert priority_status(pg.gearmand().port) == expected
        pg.daemons[-1].stop()

        migrate_ok(cli, pg.url, mysql_queue.url)
        assert mysql_queue.rows() == rows
        assert priority_status(mysql_queue.gearmand().port) == expected
        mysql_queue.daemons[-1].stop()

        migrate_ok(cli, mysql_queue.url, f"sqlite:///{back}")
        from conftest import make_sqlite_queue

        again = make_sqlite_queue(tmp_path / "again", create=False)
        again.sqlite_path = back
        assert again.rows() == rows
        assert priority_status(again.gearmand().port) == expected
        again.daemons[-1].stop()
    finally:
        for q in (pg, mysql_queue):
            for d in q.daemons:
                d.stop_all()


def test_postgres_refuses_nul_in_text_and_long_keys_listed_together(
    tmp_path, sqlite_queue, postgres_server, postgres_db, cli
):
    sqlite_queue.insert(
        [
            ("ok", "fn", 1, b"x", 0),
            ("a\x00b", "fn", 1, b"x", 0),
            ("ok2", "f\x00n", 1, b"x", 0),
            ("k" * 64, "fn", 1, b"x", 0),
        ]
    )
    pg = make_postgres_queue(tmp_path / "pg", postgres_server, postgres_db, create=False)
    result = cli("migrate", sqlite_queue.url, pg.url, "--yes", "--quiet")
    assert result.exit_code != 0
    text = result.output + result.stderr
    assert "1 unique_key_nul" in text and "1 function_name_nul" in text
    assert "1 unique_key_length" in text
    tables = pg.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == []  # nothing written


# Column types the COPY writes, by layout: binary COPY for text/integer/bigint, text COPY
# (psycopg's write_row) for a type it has no encoder for (smallint).
LAYOUTS = {
    "new": None,
    "replay-safe": "priority TEXT, data BYTEA, when_to_run TEXT",
    "gearmand": "priority INTEGER, data BYTEA, when_to_run INTEGER",
    "wide": "priority SMALLINT, data BYTEA, when_to_run BIGINT",
}
ROWS = [(f"u{i}", f"fn{i % 2}", i % 3, bytes([i, 0, 255]) * i, i * 1000) for i in range(23)] + [
    ("café ☃", "fñ", 0, bytes(range(256)), -1),
    ("back\\slash\t'", "f\nn\r", 1, b"\\", 2**31 - 1),
    ("e", "fn", 2, b"", FAR),
]


def create_layout(server, database: str, layout: str) -> None:  # type: ignore[no-untyped-def]
    columns = LAYOUTS[layout]
    if columns is not None:
        server.query(
            database,
            "CREATE TABLE gearman_queue (unique_key VARCHAR(64), function_name VARCHAR(255), "
            f"{columns}, UNIQUE (unique_key, function_name))",
        )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_migrate_into_each_layout_byte_exact_and_verified_as_stored(
    tmp_path, sqlite_queue, postgres_server, postgres_db, layout, snapdir
):
    """Every column layout takes the COPY (binary, or text for smallint), in many
    batches; the rows arrive byte-exact, and the sum of the rows as the server stored
    them, batch by batch, is the one checked: no pass over the table afterwards."""
    sqlite_queue.insert(ROWS)
    create_layout(postgres_server, postgres_db, layout)
    pg = make_postgres_queue(tmp_path / "pg", postgres_server, postgres_db, create=False)
    source, target = QueueStore(sqlite_queue.url), QueueStore(pg.url, pg.table)
    summed_again: list[str] = []
    staging_checksum = copy_module.staging_checksum
    try:
        copy_module.staging_checksum = lambda *a: summed_again.append(a[2]) or staging_checksum(*a)
        result = migrate(source, target, MigrateOptions(batch=4, snapshot_dir=str(snapdir)))
    finally:
        copy_module.staging_checksum = staging_checksum
        source.close()
        target.close()
    assert pg.rows() == sorted(ROWS)
    assert result.target_checksum == result.source_checksum == Checksum().update(ROWS)
    assert summed_again == []
    # The unique key, dropped while the rows went in, is back under gearmand's name.
    assert pg.sql(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'gearman_queue'::regclass"
    ) == [("gearman_queue_unique_key_function_name_key", "UNIQUE (unique_key, function_name)")]
    # Analysed before the swap: report's GROUP BY is planned on statistics, not guesses.
    assert pg.sql("SELECT attname FROM pg_stats WHERE tablename = 'gearman_queue' ORDER BY 1") == [
        ("function_name",),
        ("priority",),
        ("when_to_run",),
    ]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_copy_finds_keys_written_twice_and_refuses_the_later_copies(
    tmp_path, postgres_server, postgres_db, layout
):
    """A key written again (in the same batch, or one an earlier batch wrote) is found
    when staging's unique key is built after the COPY: exactly the later copies are
    refused (unreachable from a source with a unique key, hence through the writer
    itself), and staging then holds, and sums to, the rows kept."""
    create_layout(postgres_server, postgres_db, layout)
    pg = make_postgres_queue(tmp_path / "pg", postgres_server, postgres_db, create=False)
    batches = [ROWS[i : i + 4] for i in range(0, len(ROWS), 4)]
    batches[1] = [*batches[1], ("u1", "fn1", 2, b"again", 0)]  # an earlier batch's key
    batches[2] = [batches[2][0], (*batches[2][0][:3], b"twice", 0), *batches[2][1:]]
    target = QueueStore(pg.url, pg.table)
    refusals = Refusals()
    try:
        with target.begin() as conn:
            like = None if LAYOUTS[layout] is None else pg.table
            target.dialect.create_staging(conn, target, "staged", like)
            writer = open_writer(target, conn, "staged", refusals)
            for batch in batches:
                writer.write(batch)
            writer.close()
            whole = target.dialect.stored_checksum(conn, queue_table("staged"))
            got = conn.exec_driver_sql(
                "SELECT unique_key, function_name, priority::bigint, data, when_to_run::bigint "
                "FROM staged"
            ).all()
            conn.rollback()
    finally:
        target.close()
    assert refusals.kinds["key_collision"].count == 2
    assert sorted((u, f, p, bytes(d), w) for u, f, p, d, w in got) == sorted(ROWS)
    assert whole == Checksum().update(ROWS)
    assert writer.stored in (None, whole)  # None: copy.py sums staging again
    assert writer.not_written.rows == 2
    assert sorted(u for _f, u in refusals.kinds["key_collision"].examples) == ["u1", "u8"]


@pytest.mark.parametrize("encoding", ["SQL_ASCII", "LATIN1"])
def test_a_database_not_in_utf8_is_refused_up_front_in_one_line(
    tmp_path, postgres_server, sqlite_queue, cli, snapdir, encoding
):
    from conftest import postgres_ddl
    from test_import import _file

    name = f"qt_enc_{encoding.lower()}_{os.getpid()}"
    with postgres_server.connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(
            f"CREATE DATABASE \"{name}\" ENCODING '{encoding}' TEMPLATE template0 "
            "LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    try:
        postgres_server.query(name, postgres_ddl("queue", replay_safe=True))
        postgres_server.query(name, "INSERT INTO queue VALUES ('k0', 'f', '1', 'x', '0')")
        sqlite_queue.insert([("k1", "f", 1, b"y", 0)])
        jobs_file = tmp_path / "jobs.jsonl"
        jobs_file.write_text(_file([("k2", "f", 1, b"z", 0)]))
        url = postgres_server.url(name)
        snaps = ("--snapshot-dir", str(snapdir))
        runs = {
            "import": ("import", "-q", url, str(jobs_file), "--yes", *snaps),
            "migrate to": ("migrate", sqlite_queue.url, url, "--merge", "--yes"),
            "migrate from": ("migrate", url, f"sqlite:///{tmp_path / 'new.db'}", "--yes"),
            "purge": ("purge", "-q", url, "--all", "--yes", *snaps),
            "report": ("report", "-q", url),
        }
        for what, args in runs.items():
            result = cli(*args)
            assert result.exit_code == 2, (what, result.output)
            assert result.stdout == "", what
            assert result.stderr == (
                f"Error: database {name!r} on {postgres_server.host}:{postgres_server.port} "
                f"has encoding {encoding}: queuetool needs a UTF8 database (keys and function "
                "names are UTF-8 text); put the queue in one created with ENCODING 'UTF8' "
                "TEMPLATE template0; nothing was changed\n"
            ), what
        # Nothing written: the row is alone, no staging table, no snapshot, no new file.
        assert postgres_server.query(name, "SELECT unique_key FROM queue") in (
            [("k0",)],
            [(b"k0",)],
        )
        tables = postgres_server.query(
            name,
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = "
            "'public'::regnamespace",
        )
        assert tables in ([("queue",)], [(b"queue",)])
        assert list(snapdir.iterdir()) == [] and not (tmp_path / "new.db").exists()
    finally:
        postgres_server.drop_database(name)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked-rows", "named-cursor"])
def test_postgres_source_streamed_whole_and_its_connection_free_after_an_early_close(
    tmp_path, postgres_server, postgres_db, monkeypatch, snapdir, chunked
):
    """The source is read in libpq's chunked rows mode where psycopg and libpq have it
    (else through a named cursor): every row, byte-exact, into SQLite, verified; a read
    stopped early cancels the query, and the connection answers the next one."""
    import psycopg

    from queuetool.table.checksum import raw_batches
    from queuetool.table.dialects import postgresql

    if not chunked:
        monkeypatch.setattr(psycopg.capabilities, "has_stream_chunked", lambda: False)
    elif not psycopg.capabilities.has_stream_chunked():
        pytest.skip("psycopg or its libpq has no chunked rows mode")
    monkeypatch.setattr(postgresql, "STREAM_CHUNK", 3)  # the early close leaves rows unsent
    pg = make_postgres_queue(tmp_path / "pg", postgres_server, postgres_db)
    for row in ROWS:
        pg.sql(f'INSERT INTO "{pg.table}" VALUES (?, ?, ?, ?, ?)', row)
    source = QueueStore(pg.url, pg.table)
    target = QueueStore(f"sqlite:///{tmp_path / 'back.db'}")
    try:
        with source.connect() as conn:
            raw = conn.connection.dbapi_connection
            cursor = source.dialect.stream_cursor(raw)
            assert isinstance(cursor, postgresql._ChunkedCursor) is chunked
            got = [row for rows in raw_batches(conn, source.table, cursor, 5) for row in rows]
            assert sorted(got) == sorted(ROWS)
            cursor = source.dialect.stream_cursor(raw)
            cursor.execute(f'SELECT unique_key FROM "{pg.table}"')
            assert len(cursor.fetchmany(2)) == 2
            cursor.close()
            count = conn.exec_driver_sql(f'SELECT count(*) FROM "{pg.table}"').scalar_one()
            assert count == len(ROWS)
        result = migrate(source, target, MigrateOptions(batch=4, snapshot_dir=str(snapdir)))
        with target.connect() as conn:
            back = conn.exec_driver_sql("SELECT * FROM gearman_queue").all()
    finally:
        source.close()
        target.close()
    assert sorted(tuple(r) for r in back) == sorted(ROWS)
    assert result.target_checksum == result.source_checksum == Checksum().update(ROWS)


def test_a_row_the_batch_sums_never_saw_drops_them_for_a_whole_sum(
    tmp_path, postgres_server, postgres_db
):
    """The batches' sums look past the last row summed; a row stored where they did not
    look must not pass unseen: the closing count differs, and copy.py sums it all."""
    create_layout(postgres_server, postgres_db, "replay-safe")
    pg = make_postgres_queue(tmp_path / "pg", postgres_server, postgres_db, create=False)
    target = QueueStore(pg.url, pg.table)
    try:
        with target.begin() as conn:
            target.dialect.create_staging(conn, target, "staged", pg.table)
            writer = open_writer(target, conn, "staged", Refusals())
            writer.write(ROWS[:4])
            writer._settle()  # the batch in flight stored and summed
            assert writer.stored is not None and writer.stored.rows == 4
            writer.raw.execute("INSERT INTO staged VALUES ('x', 'fn', '1', 'x', '0')")
            writer.after = "(4294967295,0)"  # as if the extra row had been looked at
            writer.write(ROWS[4:8])
            writer.close()
            assert writer.stored is None
            conn.rollback()
    finally:
        target.close()


@pytest.mark.parametrize("on_conflict", ["skip", "replace", "fail"])
def test_merge_into_postgres_dry_run_counts_and_real_run_is_quiet(
    tmp_path, sqlite_queue, postgres_server, postgres_db, cli, on_conflict
):
    pg = make_postgres_queue(tmp_path / "pg", postgres_server, postgres_db)
    pg.insert([("held", "fn", 1, b"old", 0), ("only-pg", "fn", 2, b"pg", 0)])
    sqlite_queue.insert([("held", "fn", 0, b"new", 0), ("only-lite", "fn", 1, b"lite", 0)])
    args = (sqlite_queue.url, pg.url, "--target-table", pg.table, "--merge", "--on-conflict")
    args += (on_conflict,)
    dry = cli("migrate", *args, "--dry-run", "--quiet")
    assert dry.exit_code == 0, dry.stderr
    would = {"skip": "1 jobs would be copied, 1 skipped on conflict",
             "replace": "2 jobs would be copied, 1 replaced",
             "fail": ""}[on_conflict]  # fmt: skip
    if on_conflict == "fail":
        assert "1 jobs cannot be carried" in dry.stdout and "conflict" in dry.stdout, dry.stdout
    else:
        assert f"dry run: {would}, nothing was written" in dry.stdout, dry.stdout
    assert sorted(pg.rows()) == [("held", "fn", 1, b"old", 0), ("only-pg", "fn", 2, b"pg", 0)]
    # A process of its own: in pytest's, the driver's log lines go to pytest, not stderr.
    real = subprocess.run(
        [str(Path(sys.executable).with_name("queuetool")), "migrate", *args, "--yes", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert real.returncode == (1 if on_conflict == "fail" else 0), real.stderr
    # Nothing but queuetool's own lines: no driver's note about an aborted pipeline.
    assert all(
        line.startswith(("Error: ", "note: 1 conflict")) for line in real.stderr.splitlines()
    ), real.stderr
