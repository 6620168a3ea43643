"""`check`: every kind of problem, made by hand and found; and the rows GEARMAND.md says
break gearmand really do break it, so flagging them is justified."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time

import pytest
from servers import Gearmand, JobSpec, priority_status, submit, wait_gone, work

from queuetool.table.check import DESCRIPTIONS, Problem, check
from queuetool.table.store import QueueStore

GOOD = ("good", "fn", 1, b"payload", 0)

# (kind, the one bad row) on gearmand's SQLite table; each is inserted next to GOOD.
SQLITE_PROBLEMS = [
    ("data_type", ("u1", "fn", 1, "a TEXT payload", 0)),
    ("data_type", ("u1", "fn", 1, None, 0)),
    ("when_to_run_type", ("u1", "fn", 1, b"x", None)),
    ("when_to_run_type", ("u1", "fn", 1, b"x", "soon")),
    ("when_to_run_type", ("u1", "fn", 1, b"x", 1.5)),
    ("when_to_run_type", ("u1", "fn", 1, b"x", 3e9 + 0.5)),  # REAL, and out of range too
    ("priority_range", ("u1", "fn", 7, b"x", 0)),
    ("priority_range", ("u1", "fn", -1, b"x", 0)),
    ("priority_type", ("u1", "fn", "high", b"x", 0)),
    ("priority_type", ("u1", "fn", None, b"x", 0)),
    ("priority_type", ("u1", "fn", 1.5, b"x", 0)),
    ("unique_key_length", ("k" * 65, "fn", 1, b"x", 0)),
    ("unique_key_length", ("k" * 64, "fn", 1, b"x", 0)),  # gearmand cuts it: see below
    ("unique_key_length", ("é" * 33, "fn", 1, b"x", 0)),  # 33 characters, 66 bytes
    ("unique_key_length", ("é" * 32, "fn", 1, b"x", 0)),  # 32 characters, 64 bytes
    ("unique_key_empty", ("", "fn", 1, b"x", 0)),
    ("unique_key_type", (b"u1", "fn", 1, b"x", 0)),
    ("unique_key_type", (None, "fn", 1, b"x", 0)),
    ("function_name_empty", ("u1", "", 1, b"x", 0)),
    ("function_name_type", ("u1", b"fn", 1, b"x", 0)),
    ("when_to_run_range", ("u1", "fn", 1, b"x", 2**31)),
    ("when_to_run_range", ("u1", "fn", 1, b"x", -(2**31) - 1)),
]

# Rows at the edge of every rule that gearmand takes: none may be flagged.
EDGE_ROWS = [
    GOOD,
    ("k" * 63, "fn", 0, b"", 0),
    ("é" * 31 + "k", "fn", 2, b"\x00\xff", 2**31 - 1),  # 63 bytes
    (" ", "fn", 1, b"x", -(2**31)),
    ("u2", " ", 1, b"x", 1_700_000_000),
    ("U2", "fn", 1, b"x", 0),
]


def example_key(value):
    return value if value is None or isinstance(value, str) else repr(value)


def store_of(queue) -> QueueStore:
    return QueueStore(queue.url, queue.table)


def checked(queue):
    store = store_of(queue)
    try:
        return check(store)
    finally:
        store.close()


@pytest.mark.parametrize(("kind", "row"), SQLITE_PROBLEMS, ids=lambda x: repr(x)[:40])
def test_sqlite_problem_is_found(sqlite_queue, cli, kind, row):
    sqlite_queue.insert([GOOD, row])
    result = checked(sqlite_queue)
    example = (example_key(row[0]), example_key(row[1]))
    assert result.rows == 2
    assert result.schema == []
    assert result.problems == [Problem(kind, 1, [example])]

    out = cli("check", *sqlite_queue.cli_args())
    assert out.exit_code == 1
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["problem", "count", "examples", "what", "it", "means"]
    assert lines[2].split(None, 2)[:2] == [kind, "1"]
    assert lines[2].endswith(DESCRIPTIONS[kind])
    assert f"{example[1]}/{example[0]}" in lines[2]
    assert lines[3:] == [f"2 rows checked: 1 {kind}"]


def test_clean_queue_passes(queue, cli):
    queue.insert(EDGE_ROWS)
    result = checked(queue)
    assert (result.ok, result.rows, result.problems, result.schema) == (True, 6, [], [])
    out = cli("check", *queue.cli_args())
    assert (out.exit_code, out.stdout, out.stderr) == (0, "6 rows checked: no problems\n", "")
    out = cli("check", *queue.cli_args(), "--format", "json")
    assert out.exit_code == 0
    assert json.loads(out.stdout) == {
        "ok": True,
        "rows": 6,
        "schema": [],
        "problems": [],
        "blocked": [],
    }


def test_empty_queue_passes(queue, cli):
    out = cli("check", *queue.cli_args())
    assert (out.exit_code, out.stdout) == (0, "0 rows checked: no problems\n")


def test_every_problem_at_once_and_json_shape(sqlite_queue, cli):
    # Each bad row gets its own key (the table's primary key), unless the key is the problem.
    rows = [GOOD] + [
        (f"k{i}", *row[1:]) if row[0] == "u1" else row for i, (_, row) in enumerate(SQLITE_PROBLEMS)
    ]
    sqlite_queue.insert(rows)
    out = cli("check", *sqlite_queue.cli_args(), "--format", "json")
    assert out.exit_code == 1
    doc = json.loads(out.stdout)
    assert list(doc) == ["ok", "rows", "schema", "problems", "blocked"]
    assert (doc["ok"], doc["rows"], doc["schema"]) == (False, len(rows), [])
    counts = {p["kind"]: p["count"] for p in doc["problems"]}
    expected: dict[str, int] = {}
    for kind, _ in SQLITE_PROBLEMS:
        expected[kind] = expected.get(kind, 0) + 1
    assert counts == expected
    for p in doc["problems"]:
        assert list(p) == ["kind", "description", "count", "examples"]
        assert p["description"] == DESCRIPTIONS[p["kind"]]
        assert len(p["examples"]) == p["count"]
        for e in p["examples"]:
            assert list(e) == ["unique_key", "function"]
    priority_range = next(p for p in doc["problems"] if p["kind"] == "priority_range")
    assert sorted(e["unique_key"] for e in priority_range["examples"]) == ["k6", "k7"]


def test_examples_are_capped_at_five(sqlite_queue):
    sqlite_queue.insert([(f"u{i}", "fn", 9, b"x", 0) for i in range(8)])
    (problem,) = checked(sqlite_queue).problems
    assert (problem.kind, problem.count, len(problem.examples)) == ("priority_range", 8, 5)
    assert set(problem.examples) <= {(f"u{i}", "fn") for i in range(8)}


# -- MySQL ---------------------------------------------------------------------------

MYSQL_PROBLEMS = [
    ("priority_type", ("u1", "fn", None, b"x", 0)),
    ("priority_range", ("u1", "fn", 7, b"x", 0)),
    ("priority_range", ("u1", "fn", -1, b"x", 0)),
    ("unique_key_type", (None, "fn", 1, b"x", 0)),
    ("function_name_type", ("u1", None, 1, b"x", 0)),
    ("unique_key_empty", ("", "fn", 1, b"x", 0)),
    ("function_name_empty", ("u1", "", 1, b"x", 0)),
]


@pytest.mark.parametrize(("kind", "row"), MYSQL_PROBLEMS, ids=lambda x: repr(x)[:40])
def test_mysql_problem_is_found(mysql_queue, cli, kind, row):
    mysql_queue.insert([GOOD, row])
    assert checked(mysql_queue).problems == [Problem(kind, 1, [(row[0], row[1])])]
    out = cli("check", *mysql_queue.cli_args())
    assert out.exit_code == 1
    assert out.stdout.splitlines()[-1] == f"2 rows checked: 1 {kind}"


def test_mysql_null_when_to_run_is_fine(mysql_queue):
    # The MySQL replay reads NULL as 0 (run now): not a problem there, unlike SQLite.
    mysql_queue.insert([GOOD, ("u1", "fn", 1, b"x", None)])
    assert checked(mysql_queue).ok


def test_mysql_empty_payload_as_gearmand_writes_it_is_fine(mysql_queue):
    # gearmand stores an empty payload as NULL data and replays it as empty on MySQL.
    daemon = mysql_queue.gearmand()
    submit(daemon.port, [JobSpec("fn", "empty", b"")])
    daemon.stop()
    assert mysql_queue.sql(f"SELECT data IS NULL FROM {mysql_queue.table}") == [(1,)]
    assert checked(mysql_queue).ok
    daemon.start()
    assert [r.data for r in work(daemon.port, ["fn"], 1, timeout=60)] == [b""]


def test_mysql_unique_key_of_64_bytes_or_more_in_a_utf8mb4_table(mysql_queue):
    mysql_queue.sql(f"ALTER TABLE {mysql_queue.table} CONVERT TO CHARACTER SET utf8mb4")
    # VARCHAR(64) counts characters: 33 'é' fit, but they are 66 bytes to gearmand.
    mysql_queue.insert(
        [
            GOOD,
            ("é" * 33, "fn", 1, b"x", 0),
            ("é" * 32, "fn", 1, b"x", 0),
            ("é" * 31, "fn", 1, b"x", 0),
        ]
    )
    (problem,) = checked(mysql_queue).problems
    assert (problem.kind, problem.count) == ("unique_key_length", 2)
    assert sorted(problem.examples) == [("é" * 32, "fn"), ("é" * 33, "fn")]


def test_mysql_64_byte_key_flagged_63_not(mysql_queue, cli):
    mysql_queue.insert([("k" * 63, "fn", 1, b"x", 0), ("k" * 64, "fn", 1, b"x", 0)])
    assert checked(mysql_queue).problems == [Problem("unique_key_length", 1, [("k" * 64, "fn")])]
    out = cli("check", *mysql_queue.cli_args())
    assert out.exit_code == 1
    assert out.stdout.splitlines()[-1] == "2 rows checked: 1 unique_key_length"


# Hand-written SQLite/MySQL DDL and gearmand's key handling of those two plugins; the
# PostgreSQL layout has its own tests (test_postgres_replay.py).
@pytest.mark.parametrize("queue", ["sqlite", "mysql"], indirect=True)
def test_gearmand_corrupts_a_64_byte_key_after_a_restart(queue, cli):
    """GEARMAND.md: a job with a 64-byte key comes back with the key cut to 63 bytes and
    a NUL before its payload; 63 bytes are safe. `check` flags exactly the first."""
    daemon = queue.gearmand()
    submit(daemon.port, [JobSpec("fn", "a" * 64, b"payload"), JobSpec("fn", "b" * 63, b"payload")])
    daemon.stop()
    # gearmand itself stores the 64-byte key as 63 bytes and a NUL (64 bytes).
    stored = sorted(queue.sql(f"SELECT unique_key FROM {queue.table}"))
    assert [len(k.encode()) for (k,) in stored] == [64, 63]
    assert stored[0][0] == "a" * 63 + "\0"
    assert checked(queue).problems == [Problem("unique_key_length", 1, [("a" * 63 + "\0", "fn")])]
    out = cli("check", *queue.cli_args())
    assert out.exit_code == 1
    assert out.stdout.splitlines()[-1] == "2 rows checked: 1 unique_key_length"
    daemon.start()
    got = sorted(work(daemon.port, ["fn"], 2, timeout=30), key=lambda r: r.unique)
    assert [(r.unique, r.data) for r in got] == [
        ("a" * 63, b"\x00payload"),  # the job is corrupted
        ("b" * 63, b"payload"),
    ]


# -- duplicates and schema problems ----------------------------------------------------

SQLITE_NO_KEY = (
    "CREATE TABLE {t} (unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, "
    "when_to_run INTEGER)"
)
MYSQL_NO_KEY = (
    "CREATE TABLE {t} (unique_key VARCHAR(64), function_name VARCHAR(255), priority INT, "
    "data LONGBLOB, when_to_run INT)"
)
NO_KEY = "no primary or unique key on (unique_key, function_name)"


def recreate(queue, ddl: str) -> None:
    queue.sql(f"DROP TABLE {queue.table}")
    queue.sql(ddl.format(t=queue.table))


# Hand-written SQLite/MySQL DDL and gearmand's key handling of those two plugins; the
# PostgreSQL layout has its own tests (test_postgres_replay.py).
@pytest.mark.parametrize("queue", ["sqlite", "mysql"], indirect=True)
def test_duplicate_pairs_without_a_key(queue, cli):
    recreate(queue, SQLITE_NO_KEY if queue.backend == "sqlite" else MYSQL_NO_KEY)
    queue.insert(
        [
            ("a", "fn", 1, b"1", 0),
            ("a", "fn", 2, b"2", 0),
            ("a", "fn", 0, b"3", 0),
            ("a", "other", 1, b"x", 0),
            ("b", "fn", 1, b"x", 0),
        ]
    )
    result = checked(queue)
    assert result.rows == 5
    assert result.schema == [NO_KEY]
    assert result.problems == [Problem("duplicate_key", 1, [("a", "fn")])]
    out = cli("check", *queue.cli_args())
    assert out.exit_code == 1
    assert out.stdout.splitlines()[-1] == f"5 rows checked: 1 duplicate_key, {NO_KEY}"


def test_table_without_key_but_no_duplicates(sqlite_queue):
    recreate(sqlite_queue, SQLITE_NO_KEY)
    sqlite_queue.insert([GOOD, ("a", "fn", 1, b"x", 0)])
    result = checked(sqlite_queue)
    assert (result.problems, result.schema) == ([], [NO_KEY])


def test_missing_table(queue, cli):
    queue.sql(f"DROP TABLE {queue.table}")
    missing = f"table 'gearman_queue' does not exist in {store_of(queue).display_url}"
    result = checked(queue)
    assert (result.rows, result.problems, result.schema) == (0, [], [missing])
    out = cli("check", *queue.cli_args(), "--format", "json")
    assert out.exit_code == 1
    assert json.loads(out.stdout) == {
        "ok": False,
        "rows": 0,
        "schema": [missing],
        "problems": [],
        "blocked": [],
    }
    out = cli("check", *queue.cli_args())
    assert out.exit_code == 1
    assert out.stdout.splitlines()[2].split(None, 2) == ["schema", "1", missing]
    assert out.stdout.splitlines()[-1] == f"0 rows checked: {missing}"


@pytest.mark.parametrize(
    ("sqlite_ddl", "mysql_ddl", "problems"),
    [
        (
            "CREATE TABLE {t} (unique_key TEXT, function_name TEXT, priority INTEGER, "
            "data BLOB, PRIMARY KEY (unique_key, function_name))",
            "CREATE TABLE {t} (unique_key VARCHAR(64), function_name VARCHAR(255), "
            "priority INT, data LONGBLOB, unique key (unique_key, function_name))",
            ["column 'when_to_run' is missing"],
        ),
        (
            "CREATE TABLE {t} (unique_key TEXT, function_name TEXT, priority INTEGER, "
            "data TEXT, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))",
            "CREATE TABLE {t} (unique_key VARCHAR(64), function_name VARCHAR(255), "
            "priority INT, data TEXT, when_to_run INT, unique key (unique_key, function_name))",
            ["column 'data' is TEXT, gearmand needs {blob}"],
        ),
        (
            "CREATE TABLE {t} (unique_key TEXT, function_name TEXT, priority TEXT, "
            "data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))",
            "CREATE TABLE {t} (unique_key VARCHAR(64), function_name VARCHAR(255), "
            "priority VARCHAR(8), data LONGBLOB, when_to_run INT, "
            "unique key (unique_key, function_name))",
            ["column 'priority' is {text}, gearmand needs {int}"],
        ),
        (
            "CREATE TABLE {t} (unique_key TEXT, function_name TEXT, data BLOB, when_to_run REAL)",
            "CREATE TABLE {t} (unique_key VARCHAR(64), function_name VARCHAR(255), "
            "data LONGBLOB, when_to_run DOUBLE)",
            [
                "column 'priority' is missing",
                "column 'when_to_run' is {real}, gearmand needs {int}",
                NO_KEY,
            ],
        ),
    ],
    ids=["missing-column", "data-text", "priority-text", "several"],
)
@pytest.mark.parametrize("queue", ["sqlite", "mysql"], indirect=True)
def test_schema_problems(queue, cli, sqlite_ddl, mysql_ddl, problems):
    recreate(queue, sqlite_ddl if queue.backend == "sqlite" else mysql_ddl)
    words = (
        {"blob": "BLOB", "int": "INTEGER", "text": "TEXT", "real": "REAL"}
        if queue.backend == "sqlite"
        else {"blob": "LONGBLOB", "int": "INT", "text": "VARCHAR(8)", "real": "DOUBLE"}
    )
    expected = [p.format(**words) for p in problems]
    result = checked(queue)
    assert (result.problems, result.schema) == ([], expected)
    out = cli("check", *queue.cli_args())
    assert out.exit_code == 1
    assert out.stderr == ""
    assert out.stdout.splitlines()[-1] == f"{result.rows} rows checked: " + ", ".join(expected)


def test_wrong_column_type_and_bad_rows_are_both_reported(sqlite_queue, cli):
    recreate(
        sqlite_queue,
        "CREATE TABLE {t} (unique_key TEXT, function_name TEXT, priority INTEGER, "
        "data TEXT, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))",
    )
    sqlite_queue.insert([("u1", "fn", 1, b"blob", 0), ("u2", "fn", 1, "text", 0)])
    out = cli("check", *sqlite_queue.cli_args())
    assert out.exit_code == 1
    assert out.stdout.splitlines()[-1] == (
        "2 rows checked: 1 data_type, column 'data' is TEXT, gearmand needs BLOB"
    )


# -- exit code 2: the check could not run ----------------------------------------------


def test_check_on_missing_file_is_an_error(tmp_path, cli):
    path = tmp_path / "absent.db"
    out = cli("check", "--queue", f"sqlite:///{path}")
    assert (out.exit_code, out.stdout) == (2, "")
    assert out.stderr == f"Error: SQLite queue file not found: {path}\n"
    assert not path.exists()


def test_check_on_unreachable_mysql_is_an_error(cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        out = cli("check", "--queue", f"mysql://u:pw@127.0.0.1:{port}/db", "--format", "json")
    assert (out.exit_code, out.stdout) == (2, "")
    assert out.stderr.startswith("Error: cannot open mysql+pymysql://u:***@127.0.0.1:")
    assert out.stderr.count("\n") == 1


# -- the real daemon: what these rows do to gearmand 1.1.20 ---------------------------


def start_watching(daemon: Gearmand, timeout: float = 60.0) -> int:
    """Run the daemon's exact command line; return the pid it logged it runs as.

    A daemon whose replay fails removes its pid file on the way out, maybe before we
    look, so the log is the reliable witness. The pid goes to the fixture, which stops
    the daemon should it be alive after all.
    """
    subprocess.run(daemon.argv, check=True, timeout=30)
    deadline = time.monotonic() + timeout
    while True:
        log = daemon.logfile.read_text(errors="replace") if daemon.logfile.exists() else ""
        found = re.search(r"Starting up with pid (\d+)", log)
        if found:
            daemon.pid = int(found.group(1))
            return daemon.pid
        assert time.monotonic() < deadline, f"gearmand logged no pid: {log}"
        time.sleep(0.02)


def refused(port: int, within: float = 30.0) -> bool:
    """Whether the port refuses connections, waiting up to `within` seconds for it to.

    Seen once on a loaded machine (CI's two shared cores, ports leased so that no other
    run can take this one): the crashed daemon's pid was gone while its port still took
    a connection. Whatever held the socket a moment longer, the claim is that nothing
    serves the port once the crash is over, so it is awaited, not sampled."""
    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except ConnectionRefusedError:
            return True
        except OSError:
            pass  # a time-out under load: ask again
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def test_gearmand_starts_on_the_good_row(sqlite_queue):
    """The control: the same table with a valid row comes up and serves the job."""
    sqlite_queue.insert([GOOD])
    daemon = sqlite_queue.gearmand()
    assert priority_status(daemon.port) == {"fn": (0, 1, 0)}
    assert checked(sqlite_queue).ok


@pytest.mark.parametrize(
    ("kind", "row", "logged"),
    [
        ("data_type", ("u1", "fn", 1, "a TEXT payload", 0), "column 3 is not type TEXT"),
        ("data_type", ("u1", "fn", 1, None, 0), "column 3 is not type TEXT"),
        ("when_to_run_type", ("u1", "fn", 1, b"x", None), "column 3 is not type INTEGER"),
        ("priority_type", ("u1", "fn", "high", b"x", 0), "column 2 is not type INTEGER"),
    ],
    ids=["data-text", "data-null", "when-null", "priority-text"],
)
def test_rows_that_keep_gearmand_from_starting(sqlite_queue, kind, row, logged):
    sqlite_queue.insert([GOOD, row])
    daemon = sqlite_queue.gearmand(start=False)
    pid = start_watching(daemon)
    assert wait_gone(pid, 60), f"gearmand {pid} is still running: {daemon.log_tail()}"
    daemon.pid = None
    log = daemon.logfile.read_text()
    assert logged in log
    assert "failed to reload queue" in log
    assert log.rstrip().endswith("Shutdown complete")
    assert refused(daemon.port)
    assert [p.kind for p in checked(sqlite_queue).problems] == [kind]


def test_priority_7_crashes_gearmand(sqlite_queue):
    sqlite_queue.insert([GOOD, ("u1", "fn", 7, b"x", 0)])
    daemon = sqlite_queue.gearmand(start=False)
    pid = start_watching(daemon)
    assert wait_gone(pid, 60), f"gearmand {pid} is still running: {daemon.log_tail()}"
    daemon.pid = None
    log = daemon.logfile.read_text()
    # No clean refusal: the last thing it logged is the replay starting.
    assert log.rstrip().splitlines()[-1].endswith("sqlite replay start")
    assert "Shutdown complete" not in log
    assert daemon.pidfile.read_text().strip() == str(pid)  # left behind by the crash
    assert refused(daemon.port)
    # In the foreground the crash shows: a stack trace and a failure exit status.
    foreground = [a for a in daemon.argv if a != "-d"]
    ran = subprocess.run(foreground, capture_output=True, text=True, timeout=30)
    assert ran.returncode != 0
    assert "Begin stack trace" in ran.stderr
    assert [p.kind for p in checked(sqlite_queue).problems] == ["priority_range"]
