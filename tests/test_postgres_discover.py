"""Discovery of a gearmand on PostgreSQL: conninfo fields the command line leaves out
come from the daemon's own environment (/proc/PID/environ: PG* variables) and its
user's password file, as its libpq resolves them; passwords are never printed."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from conftest import postgres_ddl
from servers import JobSpec, submit

from queuetool.daemon.discover import discover, libpq_environment, options_from_argv
from queuetool.errors import ConnectError
from queuetool.table.dialects.postgresql import daemon_server, pgpass_password
from queuetool.table.store import QueueStore

PG_VARS = ("PGUSER", "PGPASSWORD", "PGPASSFILE", "PGHOST", "PGPORT", "PGDATABASE")


@pytest.fixture
def no_pg_env(monkeypatch):
    """queuetool's own process has no PG* variables: what it finds is the daemon's."""
    for var in PG_VARS:
        monkeypatch.delenv(var, raising=False)


def start_with_env(queue, monkeypatch, conninfo: str, env: dict[str, str]):
    """A gearmand on `queue` whose --libpq-conninfo is `conninfo`, started with `env`
    (only the daemon gets it: it is taken away again before queuetool runs)."""
    daemon = queue.gearmand(start=False)
    daemon.queue_args = [
        "-q",
        "Postgres",
        "--libpq-conninfo",
        conninfo,
        "--libpq-table",
        queue.table,
    ]
    with monkeypatch.context() as m:
        for var, value in env.items():
            m.setenv(var, value)
        daemon.start()
    return daemon


def test_conninfo_without_user_and_password_takes_them_from_the_daemons_environment(
    postgres_queue, cli, monkeypatch, no_pg_env
):
    queue, server = postgres_queue, postgres_queue.postgres
    conninfo = f"host={server.host} port={server.port} dbname={queue.database}"
    daemon = start_with_env(
        queue, monkeypatch, conninfo, {"PGUSER": server.user, "PGPASSWORD": server.password}
    )
    submit(daemon.port, [JobSpec("fa", f"u{i}", priority=i % 3) for i in range(7)])
    assert os.environ.get("PGPASSWORD") is None
    # No --queue, no --table: the daemon at the address says where its queue is.
    env = {"QUEUETOOL_GEARMAND": daemon.address}
    assert cli.report_counts(env=env) == queue.counts() == {"fa": (3, 2, 2)}
    for args in (["report"], ["status"], ["check"]):
        result = cli(*args, env=env)
        assert result.exit_code == 0, result.output
        assert server.password not in result.output and server.password not in result.stderr
    info = discover(daemon.address)
    assert info is not None and info.options.env["PGUSER"] == server.user
    assert QueueStore(info.options.queue_url).url == QueueStore(queue.url).url


def test_password_from_the_daemons_password_file(
    postgres_queue, cli, monkeypatch, no_pg_env, tmp_path
):
    """PGPASSFILE in the daemon's environment names the file (~/.pgpass of its user
    otherwise); a field with ':' in it is escaped as libpq wants."""
    queue, server = postgres_queue, postgres_queue.postgres
    passfile = tmp_path / "pgpass"
    escaped = server.password.replace("\\", "\\\\").replace(":", "\\:")
    passfile.write_text(
        f"otherhost:*:*:*:wrong\n{server.host}:{server.port}:*:{server.user}:{escaped}\n"
    )
    passfile.chmod(0o600)
    conninfo = f"host={server.host} port={server.port} user={server.user} dbname={queue.database}"
    daemon = start_with_env(queue, monkeypatch, conninfo, {"PGPASSFILE": str(passfile)})
    submit(daemon.port, [JobSpec("fb", "x")])
    result = cli("report", env={"QUEUETOOL_GEARMAND": daemon.address})
    assert result.exit_code == 0, result.output
    assert "fb" in result.stdout and server.password not in result.output
    # libpq ignores a password file others may read: so does queuetool.
    passfile.chmod(0o644)
    result = cli("report", env={"QUEUETOOL_GEARMAND": daemon.address})
    assert result.exit_code != 0
    assert "no password supplied" in result.stderr
    assert server.password not in result.output and server.password not in result.stderr


def test_fake_proc_environment_and_libpq_defaults(tmp_path):
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    argv = ["/usr/sbin/gearmand", "-q", "Postgres", "--libpq-conninfo", "dbname=jobs"]
    (proc / "42" / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / "42" / "cwd").symlink_to(tmp_path)
    (proc / "42" / "environ").write_bytes(
        b"HOME=/nowhere\0PGHOST=db.example\0PGPORT=6432\0PGPASSWORD=s3cret\0PATH=/bin\0"
    )
    env, uid = libpq_environment(42, proc)
    assert env == {"PGHOST": "db.example", "PGPORT": "6432", "PGPASSWORD": "s3cret"}
    assert uid == os.getuid()
    found = discover(proc=proc, defaults=tmp_path / "x", conf=tmp_path / "y")
    assert found is not None and found.pid == 42
    # The conninfo wins, then the environment; the user is the daemon's OS user (libpq).
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    assert daemon_server(found.options) == {
        "host": "db.example",
        "port": "6432",
        "user": me,
        "dbname": "jobs",
        "password": "s3cret",
    }
    assert "s3cret" not in repr(found.options)


def test_password_file_is_read_only_as_the_daemons_libpq_would(tmp_path):
    server = {"host": "db", "port": "5432", "dbname": "q", "user": "gearman"}
    path = tmp_path / "pgpass"
    path.write_text("# comment\ndb:5432:q:gearman:pw\\:1\n")
    path.chmod(0o600)
    mine = os.getuid()
    assert pgpass_password(path, server, mine) == "pw:1"
    assert pgpass_password(path, server, mine + 1) is None  # another user's file
    assert pgpass_password(path, server, None) is None  # whose daemon: unknown
    path.chmod(0o640)
    assert pgpass_password(path, server, mine) is None  # libpq ignores it
    assert pgpass_password(Path(tmp_path / "missing"), server, mine) is None


def test_a_daemon_not_running_reads_no_password_file(tmp_path):
    """From Debian's start-up files there is no process: its user is unknown, and
    queuetool's own ~/.pgpass (root's, under sudo) is not the daemon's."""
    opts = options_from_argv(["gearmand", "-q", "Postgres", "--libpq-conninfo", "user=g dbname=q"])
    assert opts.uid is None and opts.env == {}
    assert daemon_server(opts)["password"] == ""


def test_a_conninfo_without_host_means_libpqs_unix_socket(tmp_path):
    """Debian's libpq, gearmand's, connects to /var/run/postgresql without a host, not
    to localhost over TCP: queuetool must read the same server the same way."""
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    argv = ["/usr/sbin/gearmand", "-q", "Postgres", "--libpq-conninfo", "dbname=jobs user=g"]
    (proc / "42" / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / "42" / "cwd").symlink_to(tmp_path)
    (proc / "42" / "environ").write_bytes(b"PATH=/bin\0")
    found = discover(proc=proc, defaults=tmp_path / "x", conf=tmp_path / "y")
    assert found is not None
    assert daemon_server(found.options)["host"] == "/var/run/postgresql"


def test_the_daemons_tls_demands_and_options_are_followed(tmp_path, no_pg_env, monkeypatch):
    """A daemon that verifies its server's certificate, or finds its table through a
    search_path, must not be read by a queuetool that does neither."""
    for var in ("PGSSLMODE", "PGSSLROOTCERT", "PGOPTIONS"):
        monkeypatch.delenv(var, raising=False)
    conninfo = "host=db port=5432 user=g dbname=q sslmode=verify-full options='-c search_path=gq'"
    opts = options_from_argv(["gearmand", "-q", "Postgres", "--libpq-conninfo", conninfo])
    opts = dataclasses.replace(opts, env={"PGSSLROOTCERT": "ca.pem"}, cwd=tmp_path)
    url = QueueStore(opts.queue_url).url
    assert url.query["sslmode"] == "verify-full"
    assert url.query["options"] == "-c search_path=gq"
    assert url.query["sslrootcert"] == str(tmp_path / "ca.pem")  # the daemon's cwd
    assert (url.host, url.port, url.database) == ("db", 5432, "q")


def test_a_followed_search_path_and_sslmode_reach_the_server(postgres_server, postgres_db):
    """On a real server: the table in the schema the daemon's options name is the one
    read, and sslmode=require is refused by a server without TLS (so it was sent)."""
    import psycopg

    server = postgres_server
    with psycopg.connect(server.conninfo(postgres_db, password=True), autocommit=True) as c:
        c.execute("CREATE SCHEMA gq")
        c.execute("SET search_path = gq")
        c.execute(postgres_ddl("queue", replay_safe=True))
        c.execute("INSERT INTO gq.queue VALUES ('k', 'f', '1', 'x', '0')")
    base = f"{server.conninfo(postgres_db)} password='{server._quoted()}'"
    for mode, ok in (("disable", True), ("require", False)):
        conninfo = f"{base} sslmode={mode} options='-c search_path=gq'"
        opts = options_from_argv(["gearmand", "-q", "Postgres", "--libpq-conninfo", conninfo])
        store = QueueStore(opts.queue_url, "queue")
        try:
            if ok:
                with store.connect() as conn:
                    assert store.count(conn) == 1
            else:
                with pytest.raises(ConnectError, match="SSL"), store.connect():
                    pass
        finally:
            store.close()
