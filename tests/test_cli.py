"""What a user sees from the command line: errors, configuration, help, output formats."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from urllib.parse import quote

import pytest
from conftest import CLEAN_ENV, make_sqlite_queue, sqlite_ddl

from queuetool.cli import main
from queuetool.table.store import QueueStore


def run(cli, *args: str, env: dict | None = None):
    return cli(*args, env={**CLEAN_ENV, **(env or {})})


def assert_error(result, message: str, exit_code: int = 2) -> None:
    """Exactly one line, `Error: message`, on stderr; nothing on stdout; no traceback."""
    assert (result.exit_code, result.stdout, result.stderr) == (
        exit_code,
        "",
        f"Error: {message}\n",
    )


def closed_port() -> tuple[socket.socket, int]:
    """A loopback port that refuses connections (bound, never listening)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["report", "jobs", "check"])
def test_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path, cli, command):
    path = tmp_path / "nowhere" / "queue.db"
    other = tmp_path / "queue.db"
    assert_error(
        run(cli, command, "-q", f"sqlite:///{path}"), f"SQLite queue file not found: {path}"
    )
    assert_error(
        run(cli, command, "-q", f"sqlite:///{other}"), f"SQLite queue file not found: {other}"
    )
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notaurl", "not a database URL: 'notaurl'"),
        ("://x", "not a database URL: '://x'"),
        (
            "oracle://u:s3cr3t@db/gearman",
            "unsupported queue database 'oracle' in oracle://u:***@db/gearman: "
            "use sqlite:///PATH or mysql+pymysql://USER:PASS@HOST:PORT/DB or "
            "postgresql+psycopg://USER:PASS@HOST:5432/DB",
        ),
        (
            "redis://:s3cr3t@localhost:6379/0",
            "unsupported queue database 'redis' in redis://:***@localhost:6379/0: "
            "use sqlite:///PATH or mysql+pymysql://USER:PASS@HOST:PORT/DB or "
            "postgresql+psycopg://USER:PASS@HOST:5432/DB",
        ),
        ("mysql+nosuchdriver://u:s3cr3t@h/db", None),
    ],
)
def test_bad_or_unsupported_url(cli, url, message):
    result = run(cli, "report", "--queue", url)
    if message is None:
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr.startswith("Error: cannot use mysql+nosuchdriver://u:***@h/db")
        assert result.stderr.count("\n") == 1
    else:
        assert_error(result, message)
    assert "s3cr3t" not in result.output


def test_bad_table_name(sqlite_queue, cli):
    result = run(cli, "report", "-q", sqlite_queue.url, "--table", "gearman_queue; DROP")
    assert_error(result, "not a valid table name: 'gearman_queue; DROP'")


def test_unreachable_mysql(cli):
    sock, port = closed_port()
    with sock:
        result = run(cli, "report", "--queue", f"mysql://gearman:s3cr3t@127.0.0.1:{port}/gearman")
    assert_error(
        result,
        f"cannot open mysql+pymysql://gearman:***@127.0.0.1:{port}/gearman?charset=utf8mb4: "
        "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)",
    )


def secrets_of(password: str) -> list[str]:
    return [password, quote(password, safe=""), quote(password)]


@pytest.mark.parametrize("command", ["report", "jobs", "check"])
def test_wrong_mysql_password_is_an_error_and_never_shown(mysql_server, mysql_db, cli, command):
    url = (
        f"mysql+pymysql://{mysql_server.user}:{quote('Wr0ng:p@ss/word', safe='')}"
        f"@{mysql_server.host}:{mysql_server.port}/{mysql_db}"
    )
    result = run(cli, command, "--queue", url)
    assert_error(
        result,
        f"cannot open mysql+pymysql://{mysql_server.user}:***@{mysql_server.host}:"
        f"{mysql_server.port}/{mysql_db}?charset=utf8mb4: Access denied for user "
        f"'{mysql_server.user}'@'localhost' (using password: YES)",
    )
    for secret in secrets_of("Wr0ng:p@ss/word"):
        assert secret not in result.output


def test_the_right_mysql_password_is_never_shown_either(mysql_server, mysql_db, cli, tmp_path):
    url = mysql_server.url(mysql_db)  # the password has : @ / in it, %-quoted here
    cases = [
        ("report", "--queue", url),  # no table yet: an error naming the URL
        ("check", "--queue", url),
        ("check", "--queue", url, "--format", "json"),
        ("jobs", "--queue", url, "--table", "t1"),
    ]
    for args in cases:
        result = run(cli, *args)
        assert result.exit_code in (1, 2)
        assert "***@" in result.output
        for secret in secrets_of(mysql_server.password):
            assert secret not in result.output, args
    # From the environment and the config file, too.
    config = tmp_path / "queuetool.toml"
    config.write_text(f'[queue]\nurl = "{url}"\n')
    for env in ({"QUEUETOOL_QUEUE": url}, {"QUEUETOOL_CONFIG": str(config)}):
        result = run(cli, "report", env=env)
        assert result.exit_code == 2
        assert result.stderr.startswith("Error: table 'gearman_queue' does not exist in ")
        for secret in secrets_of(mysql_server.password):
            assert secret not in result.output


def test_missing_table(queue, cli):
    queue.sql(f"DROP TABLE {queue.table}")
    shown = QueueStore(queue.url).display_url
    if queue.backend == "mysql":
        assert shown == queue.url.replace(quote(queue.mysql.password, safe=""), "***") + (
            "?charset=utf8mb4"
        )
    if queue.backend == "postgres":
        assert shown == queue.url.replace(quote(queue.postgres.password, safe=""), "***")
    for command in ("report", "jobs"):
        result = run(cli, command, *queue.cli_args())
        assert_error(result, f"table 'gearman_queue' does not exist in {shown}")


def test_table_with_wrong_columns(sqlite_queue, cli):
    sqlite_queue.sql(f"DROP TABLE {sqlite_queue.table}")
    sqlite_queue.sql(
        f"CREATE TABLE {sqlite_queue.table} (unique_key TEXT, function_name TEXT, "
        "priority INTEGER, data TEXT)"
    )
    for command in ("report", "jobs"):
        result = run(cli, command, *sqlite_queue.cli_args())
        assert_error(
            result,
            f"{sqlite_queue.url} table 'gearman_queue': column 'data' is TEXT, gearmand needs "
            "BLOB; column 'when_to_run' is missing; no primary or unique key on "
            "(unique_key, function_name)",
        )


def test_not_a_sqlite_database(tmp_path, cli):
    path = tmp_path / "queue.db"
    path.write_bytes(b"this is not a database, just some text\n" * 100)
    result = run(cli, "report", "-q", f"sqlite:///{path}")
    assert_error(result, "database error: file is not a database")


def test_bad_config_path(sqlite_queue, cli, tmp_path):
    missing = tmp_path / "nope.toml"
    result = run(cli, "report", "--config", str(missing))
    assert_error(result, f"config file not found: {missing}")
    result = run(cli, "report", env={"QUEUETOOL_CONFIG": str(missing)})
    assert_error(result, f"config file not found: {missing}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[queue\nurl = 'x'\n",
            "is not valid TOML: Expected ']' at the end of a table declaration",
        ),
        ("queue = 'sqlite:///x'\n", "[queue] must be a table"),
        ("[queue]\nurl = 'notaurl'\n", None),
    ],
)
def test_bad_config_file(cli, tmp_path, text, message):
    config = tmp_path / "queuetool.toml"
    config.write_text(text)
    result = run(cli, "report", "--config", str(config))
    if message is None:
        assert_error(result, "not a database URL: 'notaurl'")
    elif message.startswith("["):
        assert_error(result, f"{config}: {message}")
    else:
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr.startswith(f"Error: config file {config} {message}")
        assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("jobs", "--run-after", "yesterday"),
            "not a time: 'yesterday' (use ISO-8601 like 2026-11-28T23:00, @EPOCH or now)",
        ),
        (
            ("jobs", "--run-before", "2026-02-30"),
            "not a time: '2026-02-30' (use ISO-8601 like 2026-11-28T23:00, @EPOCH or now)",
        ),
        (("report", "--run-after", "@soon"), "not an epoch time: '@soon' (use @SECONDS)"),
        (
            ("jobs", "--run-after", "@99999999999999999999"),
            "time out of range: '@99999999999999999999'",
        ),
        (
            ("jobs", "--run-after", "@10", "--run-before", "@10"),
            "--run-after must be earlier than --run-before",
        ),
        (
            ("reschedule", "--in", "soon", "--dry-run"),
            "not a duration: 'soon' (use e.g. 90s, 15m, 2h, 1d, 1h30m)",
        ),
        (
            ("reschedule", "--now", "--spread", "2 hours", "--dry-run"),
            "not a duration: '2 hours' (use e.g. 90s, 15m, 2h, 1d, 1h30m)",
        ),
    ],
)
def test_bad_time_and_duration_values(sqlite_queue, cli, args, message):
    sqlite_queue.insert([("u", "fn", 1, b"x", 0)])
    before = sqlite_queue.rows()
    assert_error(run(cli, args[0], *sqlite_queue.cli_args(), *args[1:]), message)
    assert sqlite_queue.rows() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("jobs", "--priority", "urgent"),
            "Invalid value for '--priority' / '-p': 'urgent' is not one of 'high', 'normal', 'low'",
        ),
        (
            ("jobs", "--priority", "7"),
            "Invalid value for '--priority' / '-p': '7' is not one of 'high', 'normal', 'low'",
        ),
        (
            ("jobs", "--limit", "many"),
            "Invalid value for '--limit': 'many' is not a valid integer",
        ),
        (
            ("report", "--by", "queue"),
            "Invalid value for '--by': 'queue' is not one of 'function', 'priority', "
            "'function,priority'",
        ),
        (
            ("report", "--format", "xml"),
            "Invalid value for '--format': 'xml' is not one of 'table', 'json', 'csv', "
            "'prometheus'",
        ),
        (
            ("reprioritise", "--to", "urgent", "-f", "fn"),
            "Invalid value for '--to': 'urgent' is not one of 'high', 'normal', 'low'",
        ),
        # click's own message spans lines here: it is joined into one.
        (("reprioritise", "-f", "fn"), "Missing option '--to'. Choose from: high, normal, low"),
        (("export",), "Missing argument 'FILE'"),
        (("jobs", "--colour"), "No such option '--colour'"),
    ],
)
def test_bad_option_values_are_usage_errors(sqlite_queue, cli, args, message):
    result = run(cli, args[0], *sqlite_queue.cli_args(), *args[1:])
    # One line, as every other error, the pointer to --help at its end.
    assert_error(result, f"{message} (main {args[0]} -h for help)")


def test_a_usage_error_of_the_group_is_one_line_too(cli):
    assert_error(run(cli, "nosuch"), "No such command 'nosuch' (main -h for help)")
    assert_error(run(cli, "--colour"), "No such option '--colour' (main -h for help)")


def test_help_is_not_an_error(cli):
    result = run(cli, "jobs", "-h")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: main jobs [OPTIONS]\n")
    assert result.stderr == ""


def python_m(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real entry point in a fresh interpreter."""
    full_env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    return subprocess.run(
        [sys.executable, "-m", "queuetool", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**full_env, **(env or {})},
    )


def test_a_real_process_prints_one_line_and_no_traceback(tmp_path):
    path = tmp_path / "absent.db"
    ran = python_m("report", "-q", f"sqlite:///{path}")
    assert (ran.returncode, ran.stdout) == (2, "")
    assert ran.stderr == f"Error: SQLite queue file not found: {path}\n"


def test_a_real_process_prints_a_usage_error_as_one_line(tmp_path):
    ran = python_m("jobs", "-q", f"sqlite:///{tmp_path}/q.db", "--limit", "abc")
    assert (ran.returncode, ran.stdout) == (2, "")
    assert ran.stderr == (
        "Error: Invalid value for '--limit': 'abc' is not a valid integer "
        "(queuetool jobs -h for help)\n"
    )


@pytest.mark.parametrize("how", ["option", "env"])
def test_traceback_shows_the_stack(tmp_path, how):
    path = tmp_path / "absent.db"
    if how == "option":
        ran = python_m("--traceback", "report", "-q", f"sqlite:///{path}")
    else:
        ran = python_m("report", "-q", f"sqlite:///{path}", env={"QUEUETOOL_TRACEBACK": "1"})
    assert ran.returncode == 1
    assert ran.stderr.startswith("Traceback (most recent call last):\n")
    assert 'queuetool/table/store.py", line' in ran.stderr
    assert ran.stderr.endswith(
        f"queuetool.errors.ConnectError: SQLite queue file not found: {path}\n"
    )
    assert not path.exists()


# -- configuration precedence ---------------------------------------------------------


@pytest.fixture
def three_queues(tmp_path):
    """Queues holding 1, 2 and 3 jobs: the count says which one a command read."""
    queues = []
    for n in (1, 2, 3):
        workdir = tmp_path / f"q{n}"
        workdir.mkdir()
        q = make_sqlite_queue(workdir)
        q.insert([(f"u{i}", "fn", 1, b"x", 0) for i in range(n)])
        queues.append(q)
    return queues


def count_read(result) -> int:
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    return row["count"]


def test_queue_precedence_option_env_config(three_queues, cli, tmp_path):
    by_option, by_env, by_config = three_queues
    config = tmp_path / "queuetool.toml"
    config.write_text(f'[queue]\nurl = "{by_config.url}"\n')
    report = ("report", "--by", "function", "--format", "json")
    env = {"QUEUETOOL_QUEUE": by_env.url, "QUEUETOOL_CONFIG": str(config)}
    assert count_read(run(cli, *report, "--queue", by_option.url, env=env)) == 1
    assert count_read(run(cli, *report, env=env)) == 2
    assert count_read(run(cli, *report, env={"QUEUETOOL_CONFIG": str(config)})) == 3
    assert count_read(run(cli, *report, "--config", str(config))) == 3
    assert count_read(run(cli, *report, "--config", str(config), "-q", by_option.url)) == 1


def test_table_precedence_option_env_config(sqlite_queue, cli, tmp_path):
    for name, n in (("t_option", 1), ("t_env", 2), ("t_config", 3)):
        sqlite_queue.sql(sqlite_ddl(name))
        with sqlite3.connect(sqlite_queue.sqlite_path) as conn:
            conn.executemany(
                f"INSERT INTO {name} VALUES (?, 'fn', 1, x'00', 0)", [(f"u{i}",) for i in range(n)]
            )
        conn.close()
    config = tmp_path / "queuetool.toml"
    config.write_text(f'[queue]\nurl = "{sqlite_queue.url}"\ntable = "t_config"\n')
    report = ("report", "--config", str(config), "--by", "function", "--format", "json")
    env = {"QUEUETOOL_TABLE": "t_env"}
    assert count_read(run(cli, *report, "--table", "t_option", env=env)) == 1
    assert count_read(run(cli, *report, env=env)) == 2
    assert count_read(run(cli, *report)) == 3


# -- help ----------------------------------------------------------------------------


def command_names() -> list[str]:
    return sorted(main.commands)


def test_there_are_commands():
    assert {"report", "jobs", "check"} <= set(command_names())


@pytest.mark.parametrize("name", [None, *command_names()])
def test_every_command_has_help_ending_with_an_example(cli, name):
    args = [name, "--help"] if name else ["--help"]
    result = run(cli, *args)
    assert result.exit_code == 0
    description = result.stdout.split("\nOptions:\n")[0].rstrip()
    lines = description.splitlines()
    heading = max(i for i, line in enumerate(lines) if line.strip() in ("Example:", "Examples:"))
    examples = [line.strip() for line in lines[heading + 1 :]]
    assert examples, f"{name}: nothing after {lines[heading].strip()!r}"
    command = f"queuetool {name}" if name else "queuetool "
    previous = ""
    for line in examples:
        # Each example is a queuetool command line (or continues the one before it).
        assert line.startswith(command) or previous.endswith("\\"), (name, line)
        previous = line


# -- output formats ------------------------------------------------------------------

REPORT_ROWS = [
    ("a", "resize", 0, b"ab", 0),
    ("b", "resize", 1, b"cde", 2_000_000_000),
    ("c", "resize", 1, b"", 0),
    ("d", "mail", 2, b"\x00\xff\x00\xff", 0),
    ("e", "mail", 0, b"\x00", 1_000_000_000),
]


@pytest.fixture
def report_queue(queue):
    queue.insert(REPORT_ROWS)
    return queue


def report_out(cli, queue, *args: str) -> str:
    result = run(cli, "report", *queue.cli_args(), *args)
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    return result.stdout


def test_report_default_table(report_queue, cli):
    assert report_out(cli, report_queue) == (
        "function      HIGH    NORMAL    LOW    total    scheduled    due    bytes\n"
        "----------  ------  --------  -----  -------  -----------  -----  -------\n"
        "mail             1         0      1        2            0      2        5\n"
        "resize           1         2      0        3            1      2        5\n"
        "TOTAL            2         2      1        5            1      4       10\n"
    )


@pytest.mark.parametrize(
    ("by", "table"),
    [
        (
            "function",
            "function      count    scheduled    due    bytes\n"
            "----------  -------  -----------  -----  -------\n"
            "mail              2            0      2        5\n"
            "resize            3            1      2        5\n"
            "TOTAL             5            1      4       10\n",
        ),
        (
            "priority",
            "priority      count    scheduled    due    bytes\n"
            "----------  -------  -----------  -----  -------\n"
            "high              2            0      2        3\n"
            "normal            2            1      1        3\n"
            "low               1            0      1        4\n"
            "TOTAL             5            1      4       10\n",
        ),
        (
            "function,priority",
            "function    priority      count    scheduled    due    bytes\n"
            "----------  ----------  -------  -----------  -----  -------\n"
            "mail        high              1            0      1        1\n"
            "mail        low               1            0      1        4\n"
            "resize      high              1            0      1        2\n"
            "resize      normal            2            1      1        3\n"
            "TOTAL                         5            1      4       10\n",
        ),
    ],
)
def test_report_by_as_table(report_queue, cli, by, table):
    assert report_out(cli, report_queue, "--by", by) == table


def test_report_by_as_json_and_csv(report_queue, cli):
    assert json.loads(report_out(cli, report_queue, "--by", "function", "--format", "json")) == [
        {
            "function": "mail",
            "count": 2,
            "scheduled": 0,
            "due": 2,
            "bytes": 5,
            "blocked": 0,
            "blocked_until": None,
            "oldest_age_seconds": None,
        },
        {
            "function": "resize",
            "count": 3,
            "scheduled": 1,
            "due": 2,
            "bytes": 5,
            "blocked": 0,
            "blocked_until": None,
            "oldest_age_seconds": None,
        },
    ]
    assert report_out(cli, report_queue, "--by", "priority", "--format", "csv") == (
        "priority,count,scheduled,due,bytes,blocked,blocked_until,oldest_age_seconds\nhigh,2,0,2,3,0,,\nnormal,2,1,1,3,0,,\nlow,1,0,1,4,0,,\n"
    )
    by_both = (
        '[\n  {"function": "mail", "priority": "high", "count": 1, "scheduled": 0, "due": 1, '
        '"bytes": 1, "blocked": 0, "blocked_until": null, "oldest_age_seconds": null},\n'
        '  {"function": "mail", "priority": "low", "count": 1, "scheduled": 0, "due": 1, '
        '"bytes": 4, "blocked": 0, "blocked_until": null, "oldest_age_seconds": null},\n'
        '  {"function": "resize", "priority": "high", "count": 1, "scheduled": 0, "due": 1, '
        '"bytes": 2, "blocked": 0, "blocked_until": null, "oldest_age_seconds": null},\n'
        '  {"function": "resize", "priority": "normal", "count": 2, "scheduled": 1, "due": 1, '
        '"bytes": 3, "blocked": 0, "blocked_until": null, "oldest_age_seconds": null}\n]\n'
    )
    # function,priority is the default grouping for json and csv.
    assert report_out(cli, report_queue, "--format", "json") == by_both
    assert report_out(cli, report_queue, "--by", "function,priority", "--format", "json") == by_both
    assert report_out(cli, report_queue, "--format", "csv") == (
        "function,priority,count,scheduled,due,bytes,blocked,blocked_until,oldest_age_seconds\n"
        "mail,high,1,0,1,1,0,,\nmail,low,1,0,1,4,0,,\nresize,high,1,0,1,2,0,,\nresize,normal,2,1,1,3,0,,\n"
    )


def test_report_filtered(report_queue, cli):
    assert report_out(cli, report_queue, "-f", "mail", "--format", "csv") == (
        "function,priority,count,scheduled,due,bytes,blocked,blocked_until,oldest_age_seconds\nmail,high,1,0,1,1,0,,\nmail,low,1,0,1,4,0,,\n"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            (),
            "function      HIGH    NORMAL    LOW    total    scheduled    due    bytes\n"
            "----------  ------  --------  -----  -------  -----------  -----  -------\n"
            "TOTAL            0         0      0        0            0      0        0\n",
        ),
        (
            ("--by", "function"),
            "function      count    scheduled    due    bytes\n"
            "----------  -------  -----------  -----  -------\n"
            "TOTAL             0            0      0        0\n",
        ),
        (("--format", "json"), "[]\n"),
        (
            ("--format", "csv"),
            "function,priority,count,scheduled,due,bytes,blocked,blocked_until,oldest_age_seconds\n",
        ),
        (
            ("--by", "priority", "--format", "csv"),
            "priority,count,scheduled,due,bytes,blocked,blocked_until,oldest_age_seconds\n",
        ),
    ],
)
def test_report_of_an_empty_queue(queue, cli, args, expected):
    assert report_out(cli, queue, *args) == expected


def test_report_prometheus_escapes_labels(sqlite_queue, cli):
    sqlite_queue.insert([("u", 'say "hi"\\now', 1, b"abc", 0)])
    lines = report_out(cli, sqlite_queue, "--format", "prometheus").splitlines()
    assert (
        'gearman_queue_jobs{function="say \\"hi\\"\\\\now",priority="normal",queue="default"} 1.0'
    ) in lines


# Payloads are arbitrary bytes: NUL, invalid UTF-8, a literal backslash, control bytes.
PAYLOADS = [
    ("nul", "fn", 0, b"a\x00b", 0),
    ("bin", "fn", 1, b"\xff\xfe\\xff\t\n", 1_700_000_000),
    ("utf8", "fn", 1, "é€".encode(), 0),
    ("long", "fn", 2, bytes(range(50)), 0),
    ("empty", "fn", 2, b"", 0),
]


def jobs_out(cli, queue, *args: str) -> str:
    result = run(cli, "jobs", *queue.cli_args(), *args)
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    return result.stdout


def test_jobs_show_data_escapes_payloads(queue, cli):
    queue.insert(PAYLOADS)
    # The first 40 of bytes 0..49: control bytes escaped, then printable ASCII, then "...".
    long_preview = (
        "".join(f"\\x{b:02x}" for b in range(9))
        + "\\t\\n\\x0b\\x0c\\r"
        + "".join(f"\\x{b:02x}" for b in range(14, 32))
        + " !\"#$%&'..."
    )
    assert jobs_out(cli, queue, "--show-data", "--format", "csv") == (
        "unique_key,function,priority,when_to_run,size,data\n"
        "nul,fn,high,now,3,a\\x00b\n"
        "utf8,fn,normal,now,5,\\xc3\\xa9\\xe2\\x82\\xac\n"
        "bin,fn,normal,2023-11-14T22:13:20Z,8,\\xff\\xfe\\\\xff\\t\\n\n"
        "empty,fn,low,now,0,\n"
        f'long,fn,low,now,50,"{long_preview.replace(chr(34), chr(34) * 2)}"\n'
    )
    records = json.loads(jobs_out(cli, queue, "--show-data", "--format", "json"))
    assert [(r["unique_key"], r["data"]) for r in records] == [
        ("nul", "a\\x00b"),
        ("utf8", "\\xc3\\xa9\\xe2\\x82\\xac"),
        ("bin", "\\xff\\xfe\\\\xff\\t\\n"),
        ("empty", ""),
        ("long", long_preview),
    ]
    table = jobs_out(cli, queue, "--show-data")
    assert "\x00" not in table and "\t" not in table
    assert len(table.splitlines()) == 2 + len(PAYLOADS)  # one line per job


def test_jobs_formats_without_data(sqlite_queue, cli):
    sqlite_queue.insert(PAYLOADS[:2])
    assert jobs_out(cli, sqlite_queue) == (
        "unique_key    function    priority    when_to_run             size\n"
        "------------  ----------  ----------  --------------------  ------\n"
        "nul           fn          high        now                        3\n"
        "bin           fn          normal      2023-11-14T22:13:20Z       8\n"
    )
    assert jobs_out(cli, sqlite_queue, "--format", "json") == (
        '[\n  {"unique_key": "nul", "function": "fn", "priority": "high", "when_to_run": "now", '
        '"size": 3},\n'
        '  {"unique_key": "bin", "function": "fn", "priority": "normal", '
        '"when_to_run": "2023-11-14T22:13:20Z", "size": 8}\n]\n'
    )
    assert jobs_out(cli, sqlite_queue, "--format", "csv", "--limit", "1") == (
        "unique_key,function,priority,when_to_run,size\nnul,fn,high,now,3\n"
    )


def test_jobs_of_an_empty_selection(sqlite_queue, cli):
    sqlite_queue.insert(PAYLOADS[:2])
    assert jobs_out(cli, sqlite_queue, "-f", "none", "--format", "json") == "[]\n"
    assert jobs_out(cli, sqlite_queue, "-f", "none", "--format", "csv") == (
        "unique_key,function,priority,when_to_run,size\n"
    )
    assert jobs_out(cli, sqlite_queue, "-f", "none") == ""


def test_jobs_limit(sqlite_queue, cli):
    sqlite_queue.insert([(f"u{i:03}", "fn", 1, b"x", 0) for i in range(120)])
    for args, n in (((), 50), (("--limit", "7"), 7), (("--limit", "0"), 120)):
        assert len(json.loads(jobs_out(cli, sqlite_queue, "--format", "json", *args))) == n


def test_jobs_show_names_and_invalid_values_as_stored(sqlite_queue, cli):
    sqlite_queue.insert([("1e5", "ünïcode", 7, b"x", 0), ("00", "fn", 1, b"x", 2**31)])
    assert json.loads(jobs_out(cli, sqlite_queue, "--format", "json")) == [
        {
            "unique_key": "00",
            "function": "fn",
            "priority": "normal",
            "when_to_run": "2038-01-19T03:14:08Z",
            "size": 1,
        },
        {
            "unique_key": "1e5",
            "function": "ünïcode",
            "priority": "invalid(7)",
            "when_to_run": "now",
            "size": 1,
        },
    ]
    table = jobs_out(cli, sqlite_queue).splitlines()
    assert table[2].split() == ["00", "fn", "normal", "2038-01-19T03:14:08Z", "1"]
    assert table[3].split() == ["1e5", "ünïcode", "invalid(7)", "now", "1"]


def test_sqlite_path_is_used_as_given(tmp_path, cli, monkeypatch):
    workdir = tmp_path / "w"
    workdir.mkdir()
    q = make_sqlite_queue(workdir)
    q.insert([("u", "fn", 1, b"x", 0)])
    monkeypatch.chdir(workdir)
    result = run(cli, "report", "-q", "sqlite:///queue.db", "--by", "function", "--format", "csv")
    assert (result.exit_code, result.stdout) == (
        0,
        "function,count,scheduled,due,bytes,blocked,blocked_until,oldest_age_seconds\nfn,1,0,1,1,0,,\n",
    )
    assert sorted(p.name for p in workdir.iterdir()) == ["queue.db"]


def test_version(cli):
    from queuetool import __version__

    result = run(cli, "--version")
    assert (result.exit_code, result.stdout) == (0, f"queuetool, version {__version__}\n")
