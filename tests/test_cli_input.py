"""Bad command-line input is one line on stderr and exit 2, refused where the option is
read: never a traceback, and nothing written. Each case runs the real click entry point;
the bytes cases also run a real process, whose argv holds the bytes themselves."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from conftest import CLEAN_ENV

ROWS = [(f"job-{i}", f"fn{i % 2}", 1, b"payload", 0) for i in range(4)]


def run(cli, *args: str):
    return cli(*args, env=CLEAN_ENV)


# How Python hands an undecodable argv byte to the program: a lone surrogate.
FF = os.fsdecode(b"\xff")


def assert_one_line(result, start: str) -> None:
    """Exit 2, nothing on stdout, and one line on stderr that starts with `start`."""
    assert (result.exit_code, result.stdout) == (2, ""), result.output
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert result.stderr.startswith(start), result.stderr
    assert "Traceback" not in result.stderr


# -- bytes that are not UTF-8 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("jobs", "-f", FF), "'--function' / '-f'"),
        (("jobs", "--unique", f"rec-{FF}"), "'--unique'"),
        (("purge", "-f", FF, "--dry-run"), "'--function' / '-f'"),
        (("report", "-f", FF), "'--function' / '-f'"),
        (("export", "-f", FF, "out.jsonl"), "'--function' / '-f'"),
        (("jobs", "--table", f"gearman_queue{FF}"), "'--table'"),
    ],
)
def test_bytes_that_are_not_utf8_are_refused(sqlite_queue, cli, args, option, monkeypatch):
    monkeypatch.chdir(sqlite_queue.workdir)  # export's out.jsonl, were it written
    sqlite_queue.insert(ROWS)
    before = sqlite_queue.rows()
    result = run(cli, args[0], "-q", sqlite_queue.url, *args[1:])
    assert_one_line(result, f"Error: Invalid value for {option}: not valid UTF-8: ")
    assert "\\xff'" in result.stderr
    assert sqlite_queue.rows() == before
    assert not (sqlite_queue.workdir / "out.jsonl").exists()


@pytest.mark.parametrize("command", ["jobs", "report", "check", "status"])
def test_a_queue_url_that_is_not_utf8_is_refused(sqlite_queue, cli, command):
    # A file by that very name exists: the URL is refused, not the file missed.
    path = sqlite_queue.workdir / f"{FF}.db"
    sqlite_queue.sqlite_path.rename(path)
    result = run(cli, command, "-q", f"sqlite:///{path}")
    shown = f"sqlite:///{sqlite_queue.workdir}/\\xff.db"
    assert_one_line(
        result, f"Error: Invalid value for '--queue' / '-q': not valid UTF-8: '{shown}'"
    )


def test_migrate_sides_that_are_not_utf8_are_refused(sqlite_queue, cli, tmp_path):
    target = tmp_path / "new.db"
    for args in (
        (f"sqlite:///{tmp_path}/{FF}.db", f"sqlite:///{target}"),
        (sqlite_queue.url, f"sqlite:///{tmp_path}/{FF}.db"),
        ("sqlite", f"sqlite:///{target}", "--sqlite-db", f"{tmp_path}/{FF}.db"),
    ):
        result = run(cli, "migrate", *args, "--yes")
        assert_one_line(result, "Error: Invalid value for ")
        assert "not valid UTF-8" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["queue.db"]


def test_a_password_that_is_not_utf8_is_never_shown(cli):
    result = run(cli, "report", "-q", f"mysql+pymysql://gearman:s3cr{FF}et@127.0.0.1/gearman")
    assert_one_line(result, "Error: Invalid value for '--queue' / '-q': not valid UTF-8: ")
    assert "s3cr" not in result.stderr and "et@" not in result.stderr
    assert "gearman:***@127.0.0.1/gearman" in result.stderr


def test_a_real_process_refuses_the_bytes_in_one_line(sqlite_queue):
    sqlite_queue.insert(ROWS)
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    ran = subprocess.run(
        [sys.executable, "-m", "queuetool", "jobs", "-q", sqlite_queue.url.encode(), b"-f\xff"],
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert (ran.returncode, ran.stdout) == (2, b"")
    assert ran.stderr == (
        b"Error: Invalid value for '--function' / '-f': not valid UTF-8: '\\xff' "
        b"(queuetool jobs -h for help)\n"
    )


# -- a gearmand host that cannot be looked up -----------------------------------------


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("a..b:4730", "a..b"),
        (f"{'h' * 70}:4730", "h" * 70),  # a DNS label holds at most 63 characters
    ],
)
@pytest.mark.parametrize("command", ["status", "purge"])
def test_a_gearmand_host_that_cannot_be_looked_up_is_refused(
    sqlite_queue, cli, snapdir, command, address, host
):
    sqlite_queue.insert(ROWS)
    before = sqlite_queue.rows()
    more = ["-f", "fn0", "--yes", "--snapshot-dir", str(snapdir)] if command == "purge" else []
    result = run(cli, command, "-q", sqlite_queue.url, *more, "--gearmand", address)
    assert_one_line(
        result,
        f"Error: Invalid value for '--gearmand': invalid host {host!r} in gearmand "
        f"address {address!r} (main {command} -h for help)\n",
    )
    assert sqlite_queue.rows() == before
    assert list(snapdir.iterdir()) == []


def test_a_gearmand_host_from_the_config_is_checked_too(sqlite_queue, cli, tmp_path):
    config = tmp_path / "queuetool.toml"
    config.write_text('[gearmand]\naddress = "a..b:4730"\n')
    result = run(cli, "status", "-q", sqlite_queue.url, "--config", str(config))
    assert_one_line(result, "Error: invalid host 'a..b' in gearmand address 'a..b:4730'\n")


def test_a_gearmand_host_that_is_not_utf8_is_refused(sqlite_queue, cli):
    result = run(cli, "status", "-q", sqlite_queue.url, "--gearmand", f"h{FF}:1")
    assert_one_line(result, "Error: Invalid value for '--gearmand': not valid UTF-8: 'h\\xff:1'")


# -- --limit ---------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["-1", "99999999999999999999999", str(2**63)])
def test_a_limit_out_of_range_is_refused(sqlite_queue, cli, limit):
    sqlite_queue.insert(ROWS)
    result = run(cli, "jobs", "-q", sqlite_queue.url, "--limit", limit)
    assert_one_line(
        result,
        f"Error: Invalid value for '--limit': {limit} is not in the range "
        f"0<=x<={2**63 - 1} (main jobs -h for help)\n",
    )


@pytest.mark.parametrize(("limit", "shown"), [("0", 4), ("2", 2), (str(2**63 - 1), 4)])
def test_a_limit_in_range_is_taken(sqlite_queue, cli, limit, shown):
    sqlite_queue.insert(ROWS)
    result = run(cli, "jobs", "-q", sqlite_queue.url, "--limit", limit, "--format", "csv")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 + shown  # the header, then the jobs


# -- migrate --start-with --------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("gearmand 'unclosed", 'No closing quotation: "gearmand \'unclosed"'),
        ("gearmand -d \\", "No escaped character: 'gearmand -d \\\\'"),
        # The command is shown, its password never (PASS would be in the message).
        (
            "gearmand --mysql-password=PASS 'x",
            'No closing quotation: "gearmand --mysql-password=*** \'x"',
        ),
        ("  ", "no command given"),
    ],
)
def test_start_with_is_read_before_anything_is_written(
    sqlite_queue, cli, tmp_path, command, message
):
    sqlite_queue.insert(ROWS)
    before = sqlite_queue.rows()
    target = tmp_path / "new.db"
    result = run(
        cli, "migrate", sqlite_queue.url, f"sqlite:///{target}", "--start-with", command, "--yes"
    )
    assert_one_line(
        result,
        f"Error: Invalid value for '--start-with': {message} (main migrate -h for help)\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["queue.db"]  # no new.db
    assert sqlite_queue.rows() == before


# -- --scheduled with --due ------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [("jobs",), ("report",), ("purge", "--dry-run"), ("purge", "--yes"), ("export", "out.jsonl")],
)
@pytest.mark.parametrize("flags", [("--scheduled", "--due"), ("--due", "--scheduled")])
def test_scheduled_with_due_is_refused(sqlite_queue, cli, snapdir, command, flags, monkeypatch):
    monkeypatch.chdir(sqlite_queue.workdir)  # export's out.jsonl, were it written
    # One job each way: whichever flag won, something would have been selected.
    sqlite_queue.insert([("now", "fn", 1, b"x", 0), ("later", "fn", 1, b"x", 2**31 - 1)])
    before = sqlite_queue.rows()
    more = ["--snapshot-dir", str(snapdir)] if command[0] == "purge" else []
    result = run(cli, *command, "-q", sqlite_queue.url, *more, *flags)
    assert_one_line(result, "Error: --scheduled and --due exclude each other: choose one\n")
    assert sqlite_queue.rows() == before
    assert list(snapdir.iterdir()) == []
    assert not (sqlite_queue.workdir / "out.jsonl").exists()


def test_scheduled_and_due_each_still_select(sqlite_queue, cli):
    sqlite_queue.insert([("now", "fn", 1, b"x", 0), ("later", "fn", 1, b"x", 2**31 - 1)])
    for flag, key in (("--scheduled", "later"), ("--due", "now")):
        result = run(cli, "jobs", "-q", sqlite_queue.url, flag, "--format", "csv")
        assert result.exit_code == 0, result.output
        assert [line.split(",")[0] for line in result.stdout.splitlines()[1:]] == [key]


# -- a database URL's port ---------------------------------------------------------------

ENCODE = "URL-encode any @ : / in the password (@ is %40, : is %3A, / is %2F)"
NOT_A_PORT = "the part after ':' is not a port (USER:PASSWORD needs @HOST after it)"


@pytest.mark.parametrize(
    ("url", "fault"),
    [
        ("mysql://u:s3cr3t@h:notaport/db", "the port 'notaport' is not a number"),
        ("mysql+pymysql://u:s3cr3t@h:3306x/db", "the port '3306x' is not a number"),
        ("mysql://u:s3cr3t@[::1]:x/db", "the port 'x' is not a number"),
        # No @: the "port" may be a password (USER:PASS with no host), so never shown.
        ("mysql://h:s3cr3t/db", NOT_A_PORT),
        ("mysql+pymysql://gearman:s3cr3t", NOT_A_PORT),
        ("mysql://h:x/db?password=s3cr3t", NOT_A_PORT),
        # A password with an unencoded / before a bad port: the port is still named, and
        # nothing before the last @ (the password's part) is read for it.
        ("mysql://u:s3/cr3t@h:1a/db", "the port '1a' is not a number"),
        # Where the port is a number, an @ and a : in the password made the bad "port".
        ("mysql://u:s3cr@3t:x@h:12/db", ENCODE),
    ],
)
def test_a_port_that_is_not_a_number_is_named(cli, url, fault):
    result = run(cli, "jobs", "-q", url)
    assert_one_line(result, "Error: not a database URL: ")
    assert result.stderr.endswith(f"; {fault}\n"), result.stderr
    assert "s3" not in result.stderr and "cr3t" not in result.stderr


# -- a table name in another case ----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [("jobs",), ("report",), ("status",), ("purge", "-f", "fn0", "--yes"), ("snapshot",)],
)
def test_a_table_name_in_another_case_is_a_missing_table(sqlite_queue, cli, snapdir, command):
    # SQLite opens GEARMAN_QUEUE as gearman_queue, but its catalogue does not list it.
    sqlite_queue.insert(ROWS)
    before = sqlite_queue.rows()
    more = ["--snapshot-dir", str(snapdir)] if command[0] in ("purge", "snapshot") else []
    result = run(cli, *command, "-q", sqlite_queue.url, *more, "--table", "GEARMAN_QUEUE")
    assert_one_line(
        result,
        f"Error: table 'GEARMAN_QUEUE' does not exist in {sqlite_queue.url} "
        "(names are case-sensitive: 'gearman_queue' is)\n",
    )
    assert sqlite_queue.rows() == before
    assert list(snapdir.iterdir()) == []


def test_a_migration_onto_a_table_name_in_another_case_is_refused(sqlite_queue, cli):
    # Another file, so that the same-table check (test_migrate_trust) does not answer.
    sqlite_queue.insert(ROWS)
    target = f"sqlite:///{sqlite_queue.workdir / 'target.db'}"
    assert run(cli, "migrate", sqlite_queue.url, target, "--yes").exit_code == 0
    copied = sqlite3.connect(sqlite_queue.workdir / "target.db")
    with copied:
        copied.execute("DELETE FROM gearman_queue")
    result = run(
        cli, "migrate", sqlite_queue.url, target, "--target-table", "GEARMAN_QUEUE", "--yes"
    )
    assert_one_line(result, f"Error: target {target} table 'GEARMAN_QUEUE' cannot be used")
    assert copied.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [
        ("gearman_queue",)
    ]
    assert copied.execute("SELECT count(*) FROM gearman_queue").fetchone() == (0,)
    copied.close()


# -- queue URLs the driver cannot take ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fault"),
    [
        ("mysql://u:s3cr3t@127.0.0.1:1/", "it names no database"),
        ("mysql://u:s3cr3t@127.0.0.1:1", "it names no database"),
        ("mysql://u:s3cr3t@127.0.0.1:1/db?charset=utf9", "PyMySQL knows no charset 'utf9'"),
        ("mysql://u:s3cr3t@a..b:3306/db", "invalid host"),
        ("postgresql://u:s3cr3t@a..b:5432/db", "invalid host"),
        ("mysql://u:s3cr3t@127.0.0.1:1/db?colour=red", "unexpected keyword argument 'colour'"),
        ("mysql://u:s3cr3t@127.0.0.1:1/db?connect_timeout=abc", "invalid literal for int()"),
        ("mysql://u:s3cr3t@127.0.0.1:1/db?charset=utf8&charset=latin1", "given more than once"),
        ("sqlite:///queue.db?timeout=abc", "could not convert string to float"),
    ],
)
def test_a_queue_url_the_driver_cannot_take_is_one_line(cli, tmp_path, monkeypatch, url, fault):
    # Each raised a traceback (AttributeError, UnicodeError, TypeError) from the driver,
    # or reached the server without a database. Port 1: nothing is ever reached.
    monkeypatch.chdir(tmp_path)
    sqlite3.connect(tmp_path / "queue.db").close()  # the SQLite case's file exists
    result = run(cli, "jobs", "-q", url)
    assert_one_line(result, "Error: ")
    assert fault in result.stderr, result.stderr
    assert "s3cr3t" not in result.stderr


@pytest.mark.parametrize("query", ["read_default_file={cnf}", "database=gearman"])
def test_a_mysql_url_may_name_its_database_in_the_query(cli, tmp_path, query):
    # PyMySQL takes `database` from the query or from read_default_file: such a URL is
    # taken, and only the connection (port 1: refused) fails.
    cnf = tmp_path / "gearman.cnf"
    cnf.write_text("[client]\ndatabase = gearman\n")
    url = f"mysql://u:s3cr3t@127.0.0.1:1/?{query.format(cnf=cnf)}"
    result = run(cli, "jobs", "-q", url)
    assert_one_line(result, "Error: cannot open mysql+pymysql://u:***@127.0.0.1:1/")
    assert "Can't connect" in result.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql+pymysql://u:s3cr3t@h/db", "mysql+pymysql://u:***@h/db"),
        ("mysql://gearman:s3cr3t", "mysql://gearman:***"),  # no @: the "port" is masked
    ],
)
def test_a_url_in_a_usage_error_is_masked(cli, url, shown):
    # The queue URL given without -q: click names the argument it did not expect.
    result = run(cli, "report", url)
    assert_one_line(result, f"Error: Got unexpected extra argument ({shown}) (")
    assert "s3cr3t" not in result.stderr
