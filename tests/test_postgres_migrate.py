"""migrate to and from PostgreSQL: sqlite -> postgres -> mysql -> sqlite, each queue
reloaded by a real gearmand, payloads byte-exact; PostgreSQL's limits refused together."""

from __future__ import annotations

import time

from conftest import make_postgres_queue
from servers import JobSpec, priority_status, submit

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
