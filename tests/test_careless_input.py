"""Careless input is refused, not guessed (issue 9): a duration without a unit, an edit
without a filter, an --at that has passed, unknown keys in the config or a plan, a
password with an unencoded @, and a snapshot restored onto another queue. Each refusal
is one line, exit 2, and leaves the table (checked through sqlite3 / PyMySQL) and the
snapshot directory as they were."""

from __future__ import annotations

import os
import sqlite3

import pytest
from conftest import make_mysql_queue, make_sqlite_queue
from hypothesis import given
from hypothesis import strategies as st

from queuetool.changes import snapshot
from queuetool.changes.restore import restore
from queuetool.daemon.process import shown_command
from queuetool.errors import UsageError
from queuetool.table.store import QueueStore, mask_text, mask_url

ROWS = [(f"job-{i:02d}", f"fn{i % 3}", 1, f"payload {i}".encode(), 0) for i in range(30)]


def assert_refused(result, message: str, queue, before, snapdir=None) -> None:
    """One line on stderr, exit 2, nothing on stdout, and nothing changed."""
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {message}\n")
    assert queue.rows() == before
    if snapdir is not None:
        assert list(snapdir.iterdir()) == []


# -- a duration needs a unit -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("-f", "fn0", "--in", "15"), "15"),
        (("-f", "fn0", "--now", "--spread", "7200"), "7200"),
        (("-f", "fn0", "--in", "2h", "--spread", " 60 "), " 60 "),
    ],
)
def test_duration_without_a_unit_is_refused(queue, cli, snapdir, args, text):
    queue.insert(ROWS)
    before = queue.rows()
    result = cli("reschedule", *queue.cli_args(), *args, "--yes", "--snapshot-dir", str(snapdir))
    n = text.strip()
    message = f"a duration needs a unit: {text!r} (use e.g. {n}s, {n}m, {n}h, {n}d)"
    assert_refused(result, message, queue, before, snapdir)


@pytest.mark.parametrize(("line", "text"), [("in = 15", "15"), ('spread = "900"', "900")])
def test_plan_duration_without_a_unit_is_refused(sqlite_queue, cli, snapdir, tmp_path, line, text):
    sqlite_queue.insert(ROWS)
    before = sqlite_queue.rows()
    plan = tmp_path / "plan.toml"
    when = "" if line.startswith("in") else "now = true\n"
    plan.write_text(f'[[edit]]\naction = "reschedule"\nfunction = "fn0"\n{when}{line}\n')
    result = cli(
        "window", *sqlite_queue.cli_args(), str(plan), "--yes", "--snapshot-dir", str(snapdir)
    )
    key = "spread: " if line.startswith("spread") else ""
    message = f"a duration needs a unit: {text!r} (use e.g. {text}s, {text}m, {text}h, {text}d)"
    assert_refused(result, f"plan {plan}, edit 1: {key}{message}", sqlite_queue, before, snapdir)


# -- an empty time is refused, not dropped ---------------------------------------------


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("purge", ("-f", "fn0", "--run-before", "")),
        ("purge", ("-f", "fn0", "--run-after", "")),
        ("purge", ("-f", "fn0", "--submitted-before", "")),
        ("reprioritise", ("-f", "fn0", "--submitted-after", "", "--to", "high")),
        ("reschedule", ("-f", "fn0", "--at", "")),
        ("reschedule", ("-f", "fn0", "--in", "")),
    ],
)
def test_an_empty_time_is_refused_not_dropped(queue, cli, snapdir, command, args):
    # An unset "$CUTOFF" in a script: dropped, it widened the purge to every fn0 job.
    queue.insert(ROWS)
    before = queue.rows()
    result = cli(command, *queue.cli_args(), *args, "--yes", "--snapshot-dir", str(snapdir))
    message = (
        "not a duration: '' (use e.g. 90s, 15m, 2h, 1d, 1h30m)"
        if "--in" in args
        else "not a time: '' (use ISO-8601 like 2026-11-28T23:00, @EPOCH or now)"
    )
    assert_refused(result, message, queue, before, snapdir)


# -- every edit needs a filter or --all ------------------------------------------------


@pytest.mark.parametrize(
    ("command", "args", "does"),
    [
        ("reprioritise", ("--to", "high"), "change"),
        ("reprioritize", ("--to", "low"), "change"),
        ("reschedule", ("--in", "15m"), "change"),
        ("reschedule", ("--now",), "change"),
        ("purge", (), "delete"),
    ],
)
def test_edit_without_a_filter_needs_all(queue, cli, snapdir, command, args, does):
    queue.insert(ROWS)
    queue.sql(f"UPDATE {queue.table} SET when_to_run = 1999999999")  # so --now changes them
    before = queue.rows()
    common = [*queue.cli_args(), *args, "--yes", "--snapshot-dir", str(snapdir)]
    verb = command.replace("reprioritize", "reprioritise")
    assert_refused(
        cli(command, *common),
        f"{verb} without a filter would {does} every job: give a filter, or --all if that "
        "is what you mean",
        queue,
        before,
        snapdir,
    )
    assert_refused(
        cli(command, *common, "--all", "-f", "fn0"),
        "--all means every job: do not combine it with a filter",
        queue,
        before,
        snapdir,
    )
    done = cli(command, *common, "--all")
    assert done.exit_code == 0, done.output
    assert f"{len(ROWS)} jobs changed" in done.stdout
    assert queue.rows() != before
    assert len(list(snapdir.iterdir())) == 1


@pytest.mark.parametrize(
    ("action", "keys", "does"),
    [
        ("reprioritise", 'to = "high"', "change"),
        ("reschedule", 'in = "1h"', "change"),  # all 30 are due: each one changes
        ("purge", "", "delete"),
    ],
)
def test_plan_edit_without_a_filter_needs_all(
    sqlite_queue, cli, snapdir, tmp_path, action, keys, does
):
    sqlite_queue.insert(ROWS)
    before = sqlite_queue.rows()
    plan = tmp_path / "plan.toml"
    first = '[[edit]]\naction = "reprioritise"\nfunction = "fn1"\nto = "low"\n'
    plan.write_text(f'{first}[[edit]]\naction = "{action}"\n{keys}\n')
    args = [*sqlite_queue.cli_args(), str(plan), "--yes", "--snapshot-dir", str(snapdir)]
    assert_refused(
        cli("window", *args),
        f"plan {plan}, edit 2: {action} without a filter would {does} every job: give a "
        "filter, or all = true if that is what you mean",
        sqlite_queue,
        before,
        snapdir,
    )
    plan.write_text(f'{first}[[edit]]\naction = "{action}"\n{keys}\nall = true\nunique = "x"\n')
    assert_refused(
        cli("window", *args),
        f"plan {plan}, edit 2: all = true means every job: do not combine it with a filter",
        sqlite_queue,
        before,
        snapdir,
    )
    plan.write_text(f'{first}[[edit]]\naction = "{action}"\n{keys}\nall = true\n')
    done = cli("window", *args)
    assert done.exit_code == 0, done.output
    assert f"{len(ROWS)} jobs changed: {action} (all jobs)" in done.stdout


def test_plan_repair_needs_no_filter(sqlite_queue, cli, snapdir, tmp_path):
    """A repair touches only rows gearmand cannot replay: it is its own filter."""
    sqlite_queue.insert(ROWS)
    sqlite_queue.sql("UPDATE gearman_queue SET data = NULL WHERE unique_key = 'job-00'")
    plan = tmp_path / "plan.toml"
    plan.write_text('[[edit]]\naction = "repair"\n')
    done = cli(
        "window", *sqlite_queue.cli_args(), str(plan), "--yes", "--snapshot-dir", str(snapdir)
    )
    assert done.exit_code == 0, done.output
    assert sqlite_queue.sql(
        "SELECT typeof(data) FROM gearman_queue WHERE unique_key = 'job-00'"
    ) == [("blob",)]


# -- --at in the past ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "shown"),
    [("2020-01-01T00:00Z", "2020-01-01T00:00:00Z"), ("@1", "1970-01-01T00:00:01Z")],
)
def test_at_in_the_past_is_refused(queue, cli, snapdir, at, shown):
    queue.insert(ROWS)
    queue.sql(f"UPDATE {queue.table} SET when_to_run = 2000000000")
    before = queue.rows()
    result = cli(
        "reschedule",
        *queue.cli_args(),
        "-f",
        "fn0",
        "--at",
        at,
        "--yes",
        "--snapshot-dir",
        str(snapdir),
    )
    assert_refused(
        result,
        f"--at {at} has passed ({shown}): --now makes the jobs due now",
        queue,
        before,
        snapdir,
    )


def test_plan_at_in_the_past_is_refused(sqlite_queue, cli, snapdir, tmp_path):
    sqlite_queue.insert(ROWS)
    before = sqlite_queue.rows()
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[[edit]]\naction = "reschedule"\nfunction = "fn0"\nat = "2001-09-09T01:46:40Z"\n'
    )
    result = cli(
        "window", *sqlite_queue.cli_args(), str(plan), "--yes", "--snapshot-dir", str(snapdir)
    )
    assert_refused(
        result,
        f"plan {plan}, edit 1: at 2001-09-09T01:46:40Z has passed (2001-09-09T01:46:40Z): "
        "now = true makes the jobs due now",
        sqlite_queue,
        before,
        snapdir,
    )


# -- unknown keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('tabel = "other"\n', "unknown key 'tabel' in [queue]"),
        ('[snapshot]\ndir = "/nowhere"\n', "unknown key [snapshot]"),
        (
            '[queues.old]\nurl = "sqlite:///x"\ntable_name = "t"\n',
            "unknown key 'table_name' in [queues.old]",
        ),
        ('[gearmand]\nadress = "127.0.0.1:4730"\n', "unknown key 'adress' in [gearmand]"),
        ('[queues]\nold = "sqlite:///x"\n', "[queues.old] must be a table"),
    ],
)
def test_unknown_config_key_is_refused(sqlite_queue, cli, snapdir, tmp_path, extra, message):
    sqlite_queue.insert(ROWS)
    before = sqlite_queue.rows()
    config = tmp_path / "queuetool.toml"
    config.write_text(f'[queue]\nurl = "{sqlite_queue.url}"\n{extra}')
    result = cli("purge", "--config", str(config), "--all", "--yes", "--snapshot-dir", str(snapdir))
    assert_refused(result, f"{config}: {message}", sqlite_queue, before, snapdir)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('dry_run = true\n[[edit]]\naction = "purge"\nfunction = "fn0"\n', "dry_run"),
        ('[[edits]]\naction = "purge"\nfunction = "fn0"\n[[edit]]\naction = "repair"\n', "edits"),
    ],
)
def test_unknown_plan_key_is_refused(sqlite_queue, cli, snapdir, tmp_path, text, key):
    sqlite_queue.insert(ROWS)
    before = sqlite_queue.rows()
    plan = tmp_path / "plan.toml"
    plan.write_text(text)
    result = cli(
        "window", *sqlite_queue.cli_args(), str(plan), "--yes", "--snapshot-dir", str(snapdir)
    )
    assert_refused(
        result,
        f"plan {plan}: unknown key {key} (a plan holds only [[edit]] tables)",
        sqlite_queue,
        before,
        snapdir,
    )


# -- passwords ---------------------------------------------------------------------------


ENCODE = "URL-encode any @ : / in the password (@ is %40, : is %3A, / is %2F)"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql+pymysql://gearman:P@SS@127.0.0.1/db", "mysql+pymysql://gearman:***@127.0.0.1/db"),
        (
            "mysql+pymysql://gearman:P@SS:3306@127.0.0.1:3306/db",
            "mysql+pymysql://gearman:***@127.0.0.1:3306/db",
        ),
        ("mysql://gearman:P@S/S@localhost/db", "mysql://gearman:***@localhost/db"),
    ],
)
def test_password_with_an_unencoded_at_is_refused_and_never_shown(cli, url, shown):
    result = cli("report", "-q", url)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"Error: not a database URL: {shown!r}; {ENCODE}\n"
    assert "P" not in result.stderr.replace("Error", "").replace("URL", "")
    assert "SS" not in result.stderr


# Passwords of upper-case letters and URL delimiters; the rest of the URL is lower case,
# so any upper-case letter in the output is part of the password.
passwords = st.text(alphabet="ABCXYZ@:/?#&=% '", min_size=1, max_size=20).filter(
    lambda p: any(c.isupper() for c in p)
)


@given(password=passwords, port=st.sampled_from(["", ":3306"]))
def test_no_part_of_any_password_is_ever_shown(password, port):
    url = f"mysql+pymysql://gearman:{password}@db1.example{port}/gearman"
    assert not any(c.isupper() for c in mask_url(url))
    if not set(password) & set(" '"):  # in a message a URL ends at a space or quote
        assert not any(c.isupper() for c in mask_text(f"cannot open {url}: refused"))
    try:
        store = QueueStore(url)
    except UsageError as exc:
        assert not any(c.isupper() for c in str(exc).replace(ENCODE, "").replace("URL", ""))
        return
    assert not any(c.isupper() for c in store.display_url)
    assert not any(c.isupper() for c in repr(store).replace("QueueStore", ""))


def test_password_as_a_query_parameter_is_masked():
    store = QueueStore("mysql+pymysql://gearman@db1/gearman?password=Secret")
    assert "Secret" not in store.display_url
    assert store.display_url.endswith("password=***")


def test_url_encoded_password_with_at_colon_slash_works(mysql_server, mysql_db, cli):
    """The test server's password holds `:`, `@` and `/`: URL-encoded it connects; as
    typed it is refused, and no part of it is shown."""
    url = mysql_server.url(mysql_db)
    assert "%40" in url and "%3A" in url and "%2F" in url
    mysql_server.query(
        mysql_db,
        "CREATE TABLE gearman_queue (unique_key VARCHAR(64), "
        "function_name VARCHAR(255), priority INT, data LONGBLOB, "
        "when_to_run INT, unique key (unique_key, function_name))",
    )
    mysql_server.query(mysql_db, "INSERT INTO gearman_queue VALUES ('u', 'careless', 1, 'x', 0)")
    good = cli("jobs", "-q", url)
    assert good.exit_code == 0, good.output
    assert "careless" in good.stdout
    typed = f"mysql+pymysql://{mysql_server.user}:{mysql_server.password}@{mysql_server.host}:{mysql_server.port}/{mysql_db}"
    bad = cli("jobs", "-q", typed)
    shown = f"mysql+pymysql://{mysql_server.user}:***@{mysql_server.host}:{mysql_server.port}/{mysql_db}"
    assert (bad.exit_code, bad.stdout) == (2, "")
    assert bad.stderr == f"Error: not a database URL: {shown!r}; {ENCODE}\n"
    for part in mysql_server.password.replace("/", ":").replace("@", ":").split(":"):
        assert len(part) < 3 or part not in bad.stderr.replace("password", "")


# -- restore onto another queue ----------------------------------------------------------


@pytest.fixture
def two_sqlite_queues(tmp_path):
    """q.db with 20 jobs and other.db with 5 others, each in its own directory."""
    (tmp_path / "q").mkdir()
    (tmp_path / "other").mkdir()
    first = make_sqlite_queue(tmp_path / "q")
    second = make_sqlite_queue(tmp_path / "other")
    first.insert(ROWS[:20])
    second.insert([(f"other-{i}", "elsewhere", 2, b"o", 0) for i in range(5)])
    return first, second


def test_full_snapshot_onto_another_queue_needs_the_option(
    two_sqlite_queues, cli, snapdir, tmp_path
):
    mine, other = two_sqlite_queues
    info = snapshot.take(QueueStore(mine.url), out=tmp_path / "mine.qtsnap")
    before = other.rows()
    args = [*other.cli_args(), str(info.path), "--snapshot-dir", str(snapdir)]
    refused = cli("restore", *args, "--yes")
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert refused.stderr == (
        f"Error: {info.path} is a snapshot of {mine.url} table gearman_queue, not of "
        f"{other.url} table gearman_queue: add --onto-other-queue to replace that table with it\n"
    )
    assert other.rows() == before and list(snapdir.iterdir()) == []
    assert cli("restore", *args, "--dry-run").exit_code == 2
    dry = cli("restore", *args, "--dry-run", "--onto-other-queue")
    assert dry.exit_code == 0, dry.output
    assert (
        f"would replace the 5 rows in {other.url} table gearman_queue with the snapshot's 20 "
        f"rows of {mine.url} table gearman_queue; nothing changed"
    ) in dry.stdout
    unconfirmed = cli("restore", *args, "--onto-other-queue")
    assert unconfirmed.exit_code == 3
    assert (
        f"Replace table gearman_queue in {other.url} with the 20 rows of this snapshot of "
        f"{mine.url} table gearman_queue?"
    ) in unconfirmed.stderr
    assert other.rows() == before
    done = cli("restore", *args, "--onto-other-queue", "--yes")
    assert done.exit_code == 0, done.output
    assert other.rows() == mine.rows()


def test_an_edits_undo_never_goes_onto_another_queue(two_sqlite_queues, cli, snapdir):
    mine, other = two_sqlite_queues
    purged = cli("purge", *mine.cli_args(), "-f", "fn1", "--yes", "--snapshot-dir", str(snapdir))
    assert purged.exit_code == 0, purged.output
    (undo,) = snapdir.iterdir()
    before = other.rows()
    for extra in ([], ["--onto-other-queue"]):
        result = cli(
            "restore", *other.cli_args(), str(undo), "--yes", "--snapshot-dir", str(snapdir), *extra
        )
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr == (
            f"Error: {undo} is an edit's undo of {mine.url} table gearman_queue: it applies only "
            f"to that queue and table, never to {other.url} table gearman_queue\n"
        )
    assert other.rows() == before
    assert list(snapdir.iterdir()) == [undo]
    # On its own queue it is the undo it always was.
    back = cli("restore", *mine.cli_args(), str(undo), "--yes", "--snapshot-dir", str(snapdir))
    assert back.exit_code == 0, back.output
    assert mine.rows() == sorted(ROWS[:20])


def test_another_table_in_the_same_file_is_another_queue(sqlite_queue, tmp_path):
    sqlite_queue.insert(ROWS)
    sqlite_queue.sql("CREATE TABLE other_queue AS SELECT * FROM gearman_queue WHERE 0")
    info = snapshot.take(QueueStore(sqlite_queue.url), out=tmp_path / "s.qtsnap")
    with pytest.raises(UsageError, match="add --onto-other-queue"):
        restore(QueueStore(sqlite_queue.url, "other_queue"), info.path, tmp_path, guard=False)
    assert sqlite_queue.sql("SELECT COUNT(*) FROM other_queue") == [(0,)]


def test_the_same_file_by_another_path_is_the_same_queue(sqlite_queue, tmp_path, monkeypatch):
    """A relative path, a symlink and a hard link all name the queue the snapshot is of."""
    sqlite_queue.insert(ROWS)
    path = sqlite_queue.sqlite_path
    info = snapshot.take(QueueStore(sqlite_queue.url), out=tmp_path / "s.qtsnap")
    sqlite_queue.sql("DELETE FROM gearman_queue WHERE function_name = 'fn0'")
    (tmp_path / "link.db").symlink_to(path)
    os.link(path, tmp_path / "hard.db")
    monkeypatch.chdir(path.parent)
    for url in (
        f"sqlite:///{path.name}",
        f"sqlite:///{tmp_path / 'link.db'}",
        f"sqlite:///{tmp_path / 'hard.db'}",
    ):
        restore(QueueStore(url), info.path, tmp_path / "before", guard=False, take_snapshot=False)
        assert sqlite_queue.rows() == sorted(ROWS)
        sqlite_queue.sql("DELETE FROM gearman_queue WHERE function_name = 'fn0'")


def test_an_old_snapshot_without_a_location_is_judged_by_its_source(two_sqlite_queues, tmp_path):
    mine, other = two_sqlite_queues
    info = snapshot.take(QueueStore(mine.url), out=tmp_path / "old.qtsnap")
    with sqlite3.connect(info.path) as db:
        db.execute("DELETE FROM manifest WHERE key IN ('location', 'file_id')")
    db.close()
    with pytest.raises(UsageError, match="add --onto-other-queue"):
        restore(QueueStore(other.url), info.path, tmp_path, guard=False)
    restore(QueueStore(mine.url), info.path, guard=False, take_snapshot=False)


def test_mysql_snapshot_onto_another_database_needs_the_option(
    mysql_server, tmp_path, cli, snapdir
):
    first = make_mysql_queue(tmp_path, mysql_server, mysql_server.create_database("qt_careless_a"))
    second = make_mysql_queue(tmp_path, mysql_server, mysql_server.create_database("qt_careless_b"))
    try:
        first.insert(ROWS)
        second.insert(ROWS[:3])
        info = snapshot.take(QueueStore(first.url), out=tmp_path / "a.qtsnap")
        refused = cli(
            "restore", *second.cli_args(), str(info.path), "--yes", "--snapshot-dir", str(snapdir)
        )
        assert refused.exit_code == 2
        assert "add --onto-other-queue" in refused.stderr
        assert second.rows() == sorted(ROWS[:3])
        purged = cli(
            "purge", *first.cli_args(), "-f", "fn2", "--yes", "--snapshot-dir", str(snapdir)
        )
        assert purged.exit_code == 0, purged.output
        (undo,) = snapdir.iterdir()
        for extra in ([], ["--onto-other-queue"]):
            result = cli("restore", *second.cli_args(), str(undo), "--yes", *extra)
            assert result.exit_code == 2 and "is an edit's undo of" in result.stderr
        assert second.rows() == sorted(ROWS[:3])
        done = cli(
            "restore",
            *second.cli_args(),
            str(info.path),
            "--yes",
            "--onto-other-queue",
            "--snapshot-dir",
            str(snapdir),
        )
        assert done.exit_code == 0, done.output
        assert second.rows() == sorted(ROWS)
    finally:
        mysql_server.drop_database("qt_careless_a")
        mysql_server.drop_database("qt_careless_b")


def test_restore_onto_another_queue_is_refused_before_its_daemon_is_stopped(
    two_sqlite_queues, cli, snapdir, tmp_path
):
    mine, other = two_sqlite_queues
    daemon = other.gearmand()
    info = snapshot.take(QueueStore(mine.url), out=tmp_path / "mine.qtsnap")
    before = other.rows()
    result = cli(
        "restore", *other.cli_args(), str(info.path), "--yes", "--snapshot-dir", str(snapdir)
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert "add --onto-other-queue" in result.stderr
    assert daemon.running()
    assert other.rows() == before and list(snapdir.iterdir()) == []


def test_a_time_past_2038_filters_on_every_backend(queue, cli):
    # A filter's time is compared as a BIGINT: PostgreSQL's driver cast it to int4.
    queue.insert(ROWS)
    later = cli("jobs", *queue.cli_args(), "--run-after", "9999-12-31T23:59", "--format", "json")
    assert (later.exit_code, later.stderr, later.stdout.strip()) == (0, "", "[]")
    earlier = cli("jobs", *queue.cli_args(), "--run-before", "9999-12-31T23:59", "--format", "csv")
    assert earlier.exit_code == 0, earlier.stderr
    assert len(earlier.stdout.splitlines()) == len(ROWS) + 1  # the header and every job


# A stop or start command as messages and `status` show it (the rest is lower case, so
# an upper-case letter in what is shown is part of the password).
quoted = st.text(alphabet="ABCXYZ @:/=-", min_size=1, max_size=12).filter(
    lambda p: any(c.isupper() for c in p)
)
bare = quoted.map(lambda p: p.replace(" ", ""))  # unquoted: no space (its capitals stay)


@given(password=quoted, quote=st.sampled_from(["'", '"']), form=st.integers(0, 3))
def test_a_quoted_password_in_a_command_is_never_shown(password, quote, form):
    other = "'" if quote == '"' else '"'
    command = [
        f"gearmand --mysql-password {quote}{password}{quote} -d",
        f"gearmand --mysql-password={quote}{password}{quote} -d",
        f"gearmand --libpq-conninfo {other}host=h password={quote}{password}{quote} user=u{other}",
        f"gearmand -d --mysql-password {quote}{password}",  # unclosed: masked to the end
    ][form]
    assert not any(c.isupper() for c in shown_command(command)), shown_command(command)


@given(password=bare, between=st.sampled_from([" ", "=", "\t", " = "]))
def test_a_bare_password_in_a_command_is_never_shown(password, between):
    command = f"gearmand --mysql-password{between}{password} -d --port 4730"
    shown = shown_command(command)
    assert not any(c.isupper() for c in shown), shown
    assert shown.endswith(" -d --port 4730")


def test_a_command_without_a_password_is_shown_as_written():
    command = "systemctl start gearman-job-server --no-block"
    assert shown_command(command) == command
