"""Discovery: gearmand command lines, its config file, Debian's defaults, /proc, the CLI hooks."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Gearmand, JobSpec, submit

from queuetool.daemon.discover import (
    configured_daemon,
    debian_params,
    discover,
    local_daemons,
    options_from_argv,
    parse_args,
)
from queuetool.errors import UsageError
from queuetool.table.dialects import DIALECTS
from queuetool.table.store import QueueStore


def test_parse_args_both_spellings_and_short_forms():
    values, at = parse_args(
        [
            "-dR",
            "-p4731",
            "-L",
            "10.0.0.5",
            "-P",
            "/run/g.pid",
            "-q",
            "MySQL",
            "--mysql-host",
            "db1",
            "--mysql-port=3307",
            "--mysql-password",
            "p@ss:w/rd",
            "--store-queue-on-shutdown",
            "--hashtable-buckets",
            "200003",
            "--port=9999",  # a repeat: the first one wins, as in gearmand
            "@/etc/other.conf",
        ]
    )
    assert values["daemon"] is True and values["round-robin"] is True
    assert values["port"] == "4731"
    assert values["listen"] == "10.0.0.5"
    assert values["pid-file"] == "/run/g.pid"
    assert values["queue-type"] == "MySQL"
    assert values["mysql-host"] == "db1" and values["mysql-port"] == "3307"
    assert values["store-queue-on-shutdown"] is True
    assert at == ["/etc/other.conf"]


def test_mysql_url_quotes_password_and_defaults():
    opts = options_from_argv(
        [
            "gearmand",
            "-q",
            "mysql",
            "--mysql-user=gm",
            "--mysql-password=p@ss:w/rd",
            "--mysql-db=jobs",
            "--config-file=/nonexistent/gearmand.conf",
        ]
    )
    assert opts.queue_url == "mysql+pymysql://gm:p%40ss%3Aw%2Frd@127.0.0.1:3306/jobs"
    assert opts.table == "gearman_queue"
    assert opts.port == 4730 and opts.hashtable_buckets == 991
    assert QueueStore(opts.queue_url).url.password == "p@ss:w/rd"
    assert options_from_argv(["gearmand", "-q", "redis"]).queue_url is None


def test_config_file_and_relative_paths(tmp_path):
    conf = tmp_path / "gearmand.conf"
    conf.write_text(
        "--port 4999\n--libsqlite3-db=rel/q.db --hashtable-buckets=4001\n-q libsqlite3\n"
    )
    opts = options_from_argv(["gearmand", f"--config-file={conf}", "--port=4800"], cwd=tmp_path)
    assert opts.port == 4800  # the command line wins over the file
    assert opts.hashtable_buckets == 4001
    assert opts.database_file == tmp_path / "rel" / "q.db"
    assert opts.queue_url == f"sqlite:///{tmp_path}/rel/q.db"


def test_debian_defaults(tmp_path):
    defaults = tmp_path / "gearman-job-server"
    defaults.write_text(
        "# comment\n"
        'PARAMS="--listen=localhost \\\n'
        " -q libsqlite3 --libsqlite3-db=/var/lib/gearman/queue.db \\\n"
        ' --log-file=/var/log/gearman-job-server/gearmand.log"\n'
    )
    assert debian_params(defaults) == [
        "--listen=localhost",
        "-q",
        "libsqlite3",
        "--libsqlite3-db=/var/lib/gearman/queue.db",
        "--log-file=/var/log/gearman-job-server/gearmand.log",
    ]
    info = configured_daemon(defaults, tmp_path / "none.conf")
    assert info is not None and info.pid is None
    assert info.options.queue_url == "sqlite:////var/lib/gearman/queue.db"
    assert info.options.address.host == "127.0.0.1"
    assert info.options.pid_file == Path("/run/gearman/gearmand.pid")
    assert "not running" in info.source


def _fake_proc(root: Path, pid: int, argv: list[str], cwd: Path) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (root / str(pid) / "cwd").symlink_to(cwd)


def test_fake_proc_one_several_none(tmp_path):
    proc = tmp_path / "proc"
    _fake_proc(proc, 100, ["bash"], tmp_path)
    _fake_proc(
        proc, 200, ["/usr/sbin/gearmand", "-q", "libsqlite3", "--libsqlite3-db=q.db"], tmp_path
    )
    found = discover(proc=proc, defaults=tmp_path / "x", conf=tmp_path / "y")
    assert found is not None and found.pid == 200
    assert found.options.queue_url == f"sqlite:///{tmp_path}/q.db"
    _fake_proc(proc, 300, ["gearmand", "-q", "libsqlite3", "--libsqlite3-db=/b.db"], tmp_path)
    with pytest.raises(UsageError, match="several gearmand processes"):
        discover(proc=proc)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert discover(proc=empty, defaults=tmp_path / "x", conf=tmp_path / "y") is None


def test_report_finds_queue_from_admin_address(queue, cli):
    """No --queue, no --table: the daemon at the address says where its queue is."""
    daemon = queue.gearmand()
    submit(daemon.port, [JobSpec("fa", f"u{i}", priority=i % 3) for i in range(7)])
    assert cli.report_counts("--gearmand", daemon.address) == queue.counts() == {"fa": (3, 2, 2)}
    assert cli.report_counts(env={"QUEUETOOL_GEARMAND": daemon.address}) == {"fa": (3, 2, 2)}
    info = discover(daemon.address)
    assert info is not None and info.pid == daemon.pid
    assert info.options.queue_url is not None
    assert QueueStore(info.options.queue_url).url == QueueStore(queue.url).url


def test_daemon_reading_its_config_file(sqlite_queue, cli, tmp_path):
    """gearmand itself takes the queue from --config-file; discovery reads it the same way."""
    conf = tmp_path / "gearmand.conf"
    conf.write_text(f"-q libsqlite3\n--libsqlite3-db={sqlite_queue.sqlite_path}\n")
    daemon = Gearmand(tmp_path, [], extra_args=[f"--config-file={conf}"])
    sqlite_queue.daemons.append(daemon)
    daemon.start()
    submit(daemon.port, [JobSpec("viaconf", "k1")])
    assert sqlite_queue.counts() == {"viaconf": (0, 1, 0)}  # the daemon really used it
    assert cli.report_counts("--gearmand", daemon.address) == {"viaconf": (0, 1, 0)}


def test_several_local_daemons_ask_which(tmp_path, cli):
    from conftest import make_sqlite_queue

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = make_sqlite_queue(tmp_path / "a")
    b = make_sqlite_queue(tmp_path / "b")
    try:
        a.gearmand()
        b.gearmand()
        assert len([d for d in local_daemons() if d.options.queue_url]) >= 2
        result = cli("report")
        assert result.exit_code == 2
        assert "several gearmand processes" in result.stderr
        assert "--gearmand HOST:PORT" in result.stderr
        # An explicit queue needs no discovery at all.
        assert cli("report", "--queue", a.url).exit_code == 0
    finally:
        for q in (a, b):
            for d in q.daemons:
                d.stop()


def test_pid_of_this_process_is_not_scanned():
    assert all(d.pid != os.getpid() for d in local_daemons())


@contextlib.contextmanager
def fake_redis() -> Iterator[int]:
    """A Redis stand-in on a free port that answers every command with an empty array:
    enough for gearmand's redis queue to replay nothing and serve."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.2)
                while not stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    conn.sendall(b"*0\r\n" * max(1, data.count(b"*")))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()


KNOWN = " or ".join(d.QUEUE_TYPE for d in DIALECTS.values())  # "libsqlite3 or mysql"


def test_daemon_on_a_queue_queuetool_cannot_use_says_which(tmp_path, cli):
    """A gearmand on a Redis queue: discovery names its queue type instead of the generic
    "no queue given" (the old message)."""
    with fake_redis() as port:
        daemon = Gearmand(
            tmp_path, ["-q", "redis", "--redis-server", "127.0.0.1", "--redis-port", str(port)]
        )
        daemon.start()
        try:
            result = cli("report", "--gearmand", daemon.address)
            assert result.exit_code == 2
            assert result.stderr.splitlines() == [
                f"Error: gearmand pid {daemon.pid} (answering at {daemon.address}) uses queue "
                f"type 'redis', which queuetool cannot use (it reads {KNOWN} queues): name the "
                "queue with --queue URL, QUEUETOOL_QUEUE or [queue] url in the config"
            ]
        finally:
            daemon.stop()


def test_why_no_queue():
    assert options_from_argv(["gearmand"]).why_no_queue() is None  # builtin: in memory
    assert options_from_argv(["gearmand", "-q", "libsqlite3"]).why_no_queue() == (
        "names no --libsqlite3-db on its command line"
    )
    assert options_from_argv(["gearmand", "-q", "libmemcached"]).why_no_queue() == (
        f"uses queue type 'libmemcached', which queuetool cannot use (it reads {KNOWN} queues)"
    )
