"""Real servers for tests and benchmarks: gearmand, a throwaway MariaDB, a gear client/worker.

Every server binds to 127.0.0.1 on a free port, lives in a temp dir, and is stopped
by its own pid (never by name). Nothing here mocks anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gear
import pymysql

GEARMAND = shutil.which("gearmand") or "/usr/sbin/gearmand"
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"

PRECEDENCE = {0: gear.PRECEDENCE_HIGH, 1: gear.PRECEDENCE_NORMAL, 2: gear.PRECEDENCE_LOW}


# -- ports ------------------------------------------------------------------------
#
# "Bind port 0, close, hand the number to a server" races: until the server binds it,
# any process may take the number (another test run's free port, or the kernel's pick
# of a client's source port), and gearmand then sits in its bind retry (~22 s) while
# another daemon answers on "its" port and its SIGTERMs are ignored (1.1.20 installs the
# shutdown pipe only after the bind). So a port is leased instead:
# - from outside the kernel's ephemeral range, so no connect() or bind(0) picks it;
# - under a lock held by this process until it exits (one byte per port in a shared
#   lock file, so any number of leases costs one descriptor), so no other test run
#   leases it while our daemon is between a stop and a restart;
# - and only if it can be bound now (a program that ignores the locks may hold it).

PORT_LOCKS = Path(os.environ.get("QUEUETOOL_TEST_PORT_LOCKS", "/tmp/queuetool-test-ports.lock"))
_leases: set[int] = set()
_lease_lock = threading.Lock()
_lock_fd: int | None = None


def _port_ranges() -> list[range]:
    """Candidate ports: 10000-65535 outside the ephemeral range (all of it if none left)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    ranges = [r for r in (range(10000, low), range(high + 1, 65536)) if len(r) > 100]
    return ranges or [range(10000, 65536)]


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gearmand/mariadbd bind
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port leased to this process until it exits (see above): no other test
    run gets it, and nothing else is expected to bind it."""
    global _lock_fd
    with _lease_lock:
        if _lock_fd is None:
            _lock_fd = os.open(PORT_LOCKS, os.O_RDWR | os.O_CREAT, 0o666)
            with contextlib.suppress(OSError):  # another user's test run shares it
                os.fchmod(_lock_fd, 0o666)
        ports = [p for r in _port_ranges() for p in r]
        start = random.SystemRandom().randrange(len(ports))  # concurrent runs start apart
        for port in ports[start:] + ports[:start]:
            if port in _leases:  # POSIX locks do not conflict within one process
                continue
            try:
                fcntl.lockf(_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
            except OSError:
                continue  # leased by another process
            if _bindable(port):
                _leases.add(port)
                return port
            fcntl.lockf(_lock_fd, fcntl.LOCK_UN, 1, port)
    raise RuntimeError(f"no free port to lease in {_port_ranges()}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return not pid_alive(pid)


def admin(port: int, command: str, timeout: float = 10.0) -> str:
    """One admin-protocol command; returns the raw answer (up to the '.' line for lists)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(command.encode() + b"\n")
        buf = b""
        listing = command.split()[0] in ("status", "prioritystatus", "workers", "show")
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if listing and (buf == b".\n" or buf.endswith(b"\n.\n")):
                break
            if not listing and buf.endswith(b"\n"):
                break
    return buf.decode()


def gearadmin(port: int, *args: str) -> str:
    """The independent path: Debian's gearadmin binary."""
    out = subprocess.run(
        ["gearadmin", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def priority_status(port: int) -> dict[str, tuple[int, int, int]]:
    """function -> (high, normal, low) queued, from `gearadmin --priority-status`."""
    result = {}
    for line in gearadmin(port, "--priority-status").splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[0] != ".":
            counts = (int(parts[1]), int(parts[2]), int(parts[3]))
            if any(counts):
                result[parts[0]] = counts
    return result


# -- gearmand ---------------------------------------------------------------------


# Every daemon a test started, so that none outlives it: a queue made by hand in a test
# (not through a fixture) is stopped all the same (conftest's `_no_daemon_left`).
STARTED: list[Gearmand] = []


@dataclass
class Gearmand:
    """One gearmand daemon with a known pid and exact command line."""

    workdir: Path
    queue_args: list[str]
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    pid: int | None = None

    @property
    def pidfile(self) -> Path:
        return self.workdir / f"gearmand-{self.port}.pid"

    @property
    def logfile(self) -> Path:
        return self.workdir / f"gearmand-{self.port}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def argv(self) -> list[str]:
        return [
            GEARMAND,
            "-d",
            "-p",
            str(self.port),
            "-L",
            "127.0.0.1",
            "-P",
            str(self.pidfile),
            "-l",
            str(self.logfile),
            "--verbose",
            "INFO",
            *self.queue_args,
            *self.extra_args,
        ]

    def start(self, timeout: float = 60.0, expect_ready: bool = True) -> Gearmand:
        """Start the daemon; with expect_ready, wait until it answers an admin command."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pidfile.unlink(missing_ok=True)
        STARTED.append(self)  # stopped after the test whoever made it (conftest)
        subprocess.run(self.argv, check=True, timeout=30)
        deadline = time.monotonic() + timeout
        while not self.pidfile.exists() or not self.pidfile.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError(f"gearmand wrote no pid file: {self.log_tail()}")
            time.sleep(0.02)
        self.pid = int(self.pidfile.read_text())
        if expect_ready:
            self.wait_ready(deadline - time.monotonic())
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until OUR daemon answers: `getpid` must name our pid. gearmand writes its pid
        file before it binds and then retries the bind for ~22 s, so an answer from
        another process on the port does not mean ours is up."""
        deadline = time.monotonic() + timeout
        while True:
            if self.pid is not None and not pid_alive(self.pid):
                raise RuntimeError(f"gearmand exited: {self.log_tail()}")
            with contextlib.suppress(OSError):
                answer = admin(self.port, "getpid", timeout=2).split()
                if answer and answer[-1] == str(self.pid):
                    return
                if answer:
                    ours = self.pid
                    self.kill()  # in its bind retry it ignores SIGTERM
                    raise RuntimeError(
                        f"port {self.port} is answered by pid {answer[-1]}, not by our "
                        f"gearmand {ours}: another process holds the port"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"gearmand not ready: {self.log_tail()}")
            time.sleep(0.05)

    def running(self) -> bool:
        return self.pid is not None and pid_alive(self.pid)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean shutdown) and wait until the process is gone."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if not wait_gone(self.pid, timeout):
            os.kill(self.pid, signal.SIGKILL)
            wait_gone(self.pid, 5)
            raise RuntimeError(f"gearmand {self.pid} ignored SIGTERM for {timeout}s")
        self.pid = None

    def stop_all(self) -> None:
        """Stop this daemon and any later one on the same pid file: queuetool's window
        restarts gearmand under a new pid, which a test may not have looked up."""
        self.stop()
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                ours = str(self.pidfile).encode() in fh.read()
        except OSError:
            return
        if ours and pid_alive(pid):
            self.pid = pid
            self.stop()

    def kill(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            wait_gone(self.pid, 10)
            self.pid = None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def sqlite_queue_args(db: Path, table: str = "gearman_queue") -> list[str]:
    return ["-q", "libsqlite3", f"--libsqlite3-db={db}", f"--libsqlite3-table={table}"]


def mysql_queue_args(server: MySQLServer, database: str, table: str = "gearman_queue") -> list[str]:
    return [
        "-q",
        "MySQL",
        "--mysql-host",
        server.host,
        "--mysql-port",
        str(server.port),
        "--mysql-user",
        server.user,
        "--mysql-password",
        server.password,
        "--mysql-db",
        database,
        "--mysql-table",
        table,
    ]


# -- MySQL / MariaDB ----------------------------------------------------------------


@dataclass
class MySQLServer:
    """A MySQL-compatible server we may create databases on (ours or the environment's)."""

    host: str
    port: int
    user: str
    password: str
    workdir: Path | None = None
    pid: int | None = None

    def url(self, database: str) -> str:
        from urllib.parse import quote

        return (
            f"mysql+pymysql://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{database}"
        )

    def connect(self, database: str | None = None, **kw: object) -> pymysql.Connection:
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            autocommit=True,
            charset="utf8mb4",
            **kw,
        )

    def create_database(self, name: str) -> str:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}`")
        return name

    def drop_database(self, name: str) -> None:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def query(self, database: str, sql: str, args: object = None) -> list[tuple]:
        with self.connect(database) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def stop(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            if not wait_gone(self.pid, 60):
                os.kill(self.pid, signal.SIGKILL)
                wait_gone(self.pid, 10)
            self.pid = None

    def kill(self) -> None:
        """SIGKILL the server (ours only), to test a lost connection mid-change."""
        assert self.pid is not None, "only a server we started can be killed"
        os.kill(self.pid, signal.SIGKILL)
        wait_gone(self.pid, 10)
        self.pid = None


def start_mariadb(workdir: Path, timeout: float = 60.0) -> MySQLServer:
    """A throwaway mariadbd in `workdir` on a free loopback port, with a password user."""
    if not Path(MARIADBD).exists():
        raise RuntimeError("mariadbd not found: apt-get install mariadb-server (make test does)")
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    socket_path = workdir / "mysqld.sock"
    install_db(data, workdir)
    port = free_port()
    proc = launch_mariadbd(workdir, port)
    server = MySQLServer("127.0.0.1", port, "queuetool", "t3st:p@ss/word", workdir, proc.pid)
    try:
        _create_user(server, socket_path, proc, timeout)
    except BaseException:
        server.stop()  # a half-started server must not outlive the test run
        raise
    # Popen's child is reaped by us; remember the Popen so it is not a zombie.
    server._proc = proc  # type: ignore[attr-defined]
    return server


def install_db(data: Path, workdir: Path, attempts: int = 2) -> None:
    """mariadb-install-db into `data`; a failure says why (its own output), and is tried
    once more on a clean directory (seen once under load: exit 1, cause not kept)."""
    tmpdir = workdir / "tmp"
    tmpdir.mkdir(exist_ok=True)
    for attempt in range(1, attempts + 1):
        done = subprocess.run(
            [
                INSTALL_DB,
                "--no-defaults",
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TMPDIR": str(tmpdir)},
        )
        if done.returncode == 0:
            return
        if attempt == attempts:
            output = (done.stderr or done.stdout).strip()[-2000:]
            raise RuntimeError(f"mariadb-install-db exited {done.returncode}:\n{output}")
        shutil.rmtree(data, ignore_errors=True)


def launch_mariadbd(workdir: Path, port: int) -> subprocess.Popen:
    """mariadbd on the data directory in `workdir` (made by start_mariadb), on `port`."""
    # A temp dir of its own: with /tmp shared by several servers, a query's on-disk
    # temporary table vanished mid-query ("Error on delete of '/tmp/#sql-temptable-...'").
    tmpdir = workdir / "tmp"
    tmpdir.mkdir(exist_ok=True)
    return subprocess.Popen(
        [
            MARIADBD,
            "--no-defaults",
            f"--datadir={workdir / 'data'}",
            f"--tmpdir={tmpdir}",
            f"--socket={workdir / 'mysqld.sock'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            f"--pid-file={workdir / 'mysqld.pid'}",
            f"--log-error={workdir / 'error.log'}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=256M",
            "--innodb-flush-log-at-trx-commit=2",
            "--max-allowed-packet=64M",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _create_user(
    server: MySQLServer, socket_path: Path, proc: subprocess.Popen, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            root = pymysql.connect(unix_socket=str(socket_path), user="root", autocommit=True)
            break
        except pymysql.err.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                assert server.workdir is not None
                log = (server.workdir / "error.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mariadbd did not start:\n{log}") from None
            time.sleep(0.1)
    with root, root.cursor() as cur:
        cur.execute(f"CREATE USER '{server.user}'@'%%' IDENTIFIED BY %s", (server.password,))
        cur.execute(f"GRANT ALL ON *.* TO '{server.user}'@'%'")  # no args: no % escaping


def mysql_from_url(url: str) -> MySQLServer:
    """A server named by QUEUETOOL_TEST_MYSQL_URL (mysql://user:pass@host:port)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return MySQLServer(
        u.host or "127.0.0.1", u.port or 3306, u.username or "root", u.password or ""
    )


# -- where a database server comes from ------------------------------------------------
#
# The local throwaway servers are the default. testcontainers is for a machine with a
# Docker engine and no MariaDB/PostgreSQL installed: opted in, never guessed, because a
# container pulls an image and behaves unlike the Debian server gearmand is used with.

TESTCONTAINERS = "QUEUETOOL_TESTCONTAINERS"
MARIADB_IMAGE = "mariadb:10.11"  # Debian 12's MariaDB
POSTGRES_IMAGE = "postgres:15"  # Debian 12's PostgreSQL
ServerSource = Literal["env-url", "testcontainers", "local"]


def server_source(
    env: Mapping[str, str],
    url_variable: str,
    engine_answers: Callable[[], bool],
    package_installed: Callable[[], bool],
) -> ServerSource:
    """Where the test bed's server comes from: the URL in `url_variable` when set; else a
    testcontainers container when QUEUETOOL_TESTCONTAINERS=1 and the package is installed
    and a Docker engine answers; else the local throwaway server. The probes run only
    when asked for, so a run that does not opt in never touches Docker."""
    if env.get(url_variable):
        return "env-url"
    if env.get(TESTCONTAINERS) == "1" and package_installed() and engine_answers():
        return "testcontainers"
    return "local"


def have_testcontainers() -> bool:
    """Whether testcontainers (and the docker client it drives) can be imported."""
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("testcontainers", "docker"))


def docker_available() -> bool:
    """Whether a Docker engine answers a ping (DOCKER_HOST, else the local socket)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def choose_source(url_variable: str) -> ServerSource:
    """server_source for this process's environment, with the real probes."""
    return server_source(os.environ, url_variable, docker_available, have_testcontainers)


def _container_host(container: Any) -> str:
    # gearmand's MySQL plugin reads "localhost" as the unix socket: give it an address.
    host = container.get_container_host_ip()
    return "127.0.0.1" if host == "localhost" else host


@contextlib.contextmanager
def mysql_container(image: str = MARIADB_IMAGE) -> Iterator[MySQLServer]:
    """A MariaDB container from testcontainers, as a MySQLServer (root: the tests create
    and drop databases), removed on exit."""
    from testcontainers.community.mysql import MySqlContainer

    password = "t3st:p@ss/word"
    with MySqlContainer(image, username="root", password=password) as container:
        port = int(container.get_exposed_port(3306))
        yield MySQLServer(_container_host(container), port, "root", password)


@contextlib.contextmanager
def postgres_container(image: str = POSTGRES_IMAGE) -> Iterator[PostgresServer]:
    """A PostgreSQL container from testcontainers, as a PostgresServer, removed on exit."""
    from testcontainers.community.postgres import PostgresContainer

    password = "t3st:p@ss/w'rd"
    with PostgresContainer(image, username="queuetool", password=password) as container:
        port = int(container.get_exposed_port(5432))
        yield PostgresServer(_container_host(container), port, "queuetool", password)


# -- gear client and worker ------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    function: str
    unique: str
    data: bytes = b"x"
    priority: int = 1  # 0 high, 1 normal, 2 low (the column's values)
    when: int = 0  # epoch; 0 = now


@contextlib.contextmanager
def gear_client(port: int) -> Iterator[gear.Client]:
    client = gear.Client("queuetool-test")
    client.addServer("127.0.0.1", port)
    client.waitForServer(timeout=30)
    try:
        yield client
    finally:
        client.shutdown()


def submit(port: int, jobs: Iterable[JobSpec]) -> int:
    """Submit background jobs through the real protocol; returns how many."""
    n = 0
    with gear_client(port) as client:
        for spec in jobs:
            job = gear.Job(spec.function.encode(), spec.data, unique=spec.unique.encode())
            if spec.when:
                _submit_epoch(client, job, spec.when)
            else:
                client.submitJob(job, background=True, precedence=PRECEDENCE[spec.priority])
            if not job.handle:
                raise RuntimeError(f"gearmand refused {spec}")
            n += 1
    return n


def _submit_epoch(client: gear.Client, job: gear.Job, when: int, timeout: float = 30) -> None:
    """SUBMIT_JOB_EPOCH (packet 36), which gear has no method for: a background job
    with a when_to_run (always NORMAL priority: the protocol has no priority for it)."""
    data = b"\x00".join(
        (job.binary_name, job.binary_unique, str(when).encode(), job.binary_arguments)
    )
    packet = gear.Packet(gear.constants.REQ, gear.constants.SUBMIT_JOB_EPOCH, data)
    conn = client.getConnection()
    task = gear.SubmitJobTask(job)
    conn.pending_tasks.append(task)
    client.sendPacket(packet, conn)
    if not task.wait(timeout):
        raise RuntimeError("no answer to SUBMIT_JOB_EPOCH")


@dataclass(frozen=True)
class Received:
    function: str
    unique: str
    data: bytes


def _text(value: str | bytes | None) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value or ""


def _received(job: gear.WorkerJob) -> Received:
    # gear hands out the name as str but the unique key as bytes: make both text.
    return Received(_text(job.name), _text(job.unique), bytes(job.arguments))


def work(
    port: int,
    functions: Iterable[str],
    count: int,
    timeout: float = 30.0,
    fail: bool = False,
) -> list[Received]:
    """Be a worker: take up to `count` jobs in the order gearmand hands them out.

    Stops after `count` jobs or `timeout` seconds of waiting, whichever comes first.
    Each job is completed (or failed, with fail=True), which deletes its row.
    """
    worker = gear.Worker("queuetool-test-worker")
    worker.addServer("127.0.0.1", port)
    worker.waitForServer(timeout=30)
    for name in functions:
        worker.registerFunction(name)
    received: list[Received] = []
    timer = threading.Timer(timeout, worker.stopWaitingForJobs)
    timer.start()
    try:
        while len(received) < count:
            try:
                job = worker.getJob()
            except gear.InterruptedError:
                break
            received.append(_received(job))
            if fail:
                job.sendWorkFail()
            else:
                job.sendWorkComplete()
    finally:
        timer.cancel()
        worker.shutdown()
    return received


def wait_registered(port: int, function: str, timeout: float = 60.0) -> None:
    """Until a worker for `function` is connected to the daemon (admin `workers`)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in admin(port, "workers").splitlines():
            if ":" in line and function in line.split(":", 1)[1].split():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no worker for {function} registered within {timeout:g}s")
        time.sleep(0.05)


@contextlib.contextmanager
def holding_worker(port: int, function: str, timeout: float = 30.0) -> Iterator[Received]:
    """A worker that takes one job and holds it (running) until the block ends."""
    worker = gear.Worker("queuetool-test-holder")
    worker.addServer("127.0.0.1", port)
    worker.waitForServer(timeout=30)
    worker.registerFunction(function)
    timer = threading.Timer(timeout, worker.stopWaitingForJobs)
    timer.start()
    try:
        job = worker.getJob()
        timer.cancel()
        yield _received(job)
        with contextlib.suppress(Exception):
            job.sendWorkComplete()
    finally:
        timer.cancel()
        worker.shutdown()


# -- PostgreSQL ----------------------------------------------------------------------

PG_BIN = Path("/usr/lib/postgresql")
PG_USER = "postgres"  # the system user Debian's package creates: postgres refuses root


def pg_bin(name: str) -> str:
    """A PostgreSQL server binary (Debian keeps them in /usr/lib/postgresql/N/bin)."""
    found = sorted(PG_BIN.glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL not found: apt-get install postgresql (make test does)")
    return str(found[-1])


@dataclass
class PostgresServer:
    """A PostgreSQL server we may create databases on (ours or the environment's)."""

    host: str
    port: int
    user: str
    password: str
    workdir: Path | None = None
    pid: int | None = None

    def url(self, database: str) -> str:
        from urllib.parse import quote

        return (
            f"postgresql+psycopg://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{database}"
        )

    def conninfo(self, database: str, password: bool = False) -> str:
        """libpq's key=value form, as gearmand's --libpq-conninfo takes it."""
        info = f"host={self.host} port={self.port} user={self.user} dbname={database}"
        return info + (f" password='{self._quoted()}'" if password else "")

    def _quoted(self) -> str:
        return self.password.replace("\\", "\\\\").replace("'", "\\'")

    def connect(self, database: str = "postgres"):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            autocommit=True,
        )

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def query(self, database: str, sql: str, args: object = None) -> list[tuple]:
        with self.connect(database) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall()) if cur.description else []

    def stop(self) -> None:
        """SIGINT: PostgreSQL's fast shutdown (SIGTERM waits for every client)."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)
            if not wait_gone(self.pid, 60):
                os.kill(self.pid, signal.SIGKILL)
                wait_gone(self.pid, 10)
            self.pid = None
        if self.workdir is not None and self.workdir.name.startswith("queuetool-pg-"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def _as_pg_user() -> dict[str, object]:
    """Popen's arguments that run a server binary as the `postgres` user when we are root
    (the process itself, not a runuser around it: its pid is the postmaster's)."""
    if os.geteuid() != 0:
        return {}
    return {"user": PG_USER, "group": PG_USER, "extra_groups": []}


def start_postgres(timeout: float = 60.0) -> PostgresServer:
    """A throwaway PostgreSQL in a temp dir of its own on a free loopback port, with a
    password user; `stop()` removes the dir.

    Not under pytest's tmp_path: its parents are private to root, and the server runs
    as the `postgres` user, which must reach its data directory.
    """
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="queuetool-pg-"))
    data = workdir / "data"
    pwfile = workdir / "pw"
    server = PostgresServer("127.0.0.1", free_port(), "queuetool", "t3st:p@ss/w'rd", workdir)
    pwfile.write_text(server.password + "\n")
    if os.geteuid() == 0:
        shutil.chown(workdir, PG_USER)
        shutil.chown(pwfile, PG_USER)
    try:
        subprocess.run(
            [
                pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                server.user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
            timeout=120,
            **_as_pg_user(),  # type: ignore[arg-type]
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)  # no server yet: nothing else to stop
        raise
    pwfile.unlink()
    log = workdir / "postgres.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                pg_bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(server.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={workdir}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "max_connections=200",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **_as_pg_user(),  # type: ignore[arg-type]
        )
    server.pid = proc.pid
    server._proc = proc  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.connect().close()
            return server
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(
                    f"postgres did not start:\n{log.read_text(errors='replace')[-2000:]}"
                ) from None
            time.sleep(0.1)


def postgres_from_url(url: str) -> PostgresServer:
    """A server named by QUEUETOOL_TEST_POSTGRES_URL (postgresql://user:pass@host:port)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return PostgresServer(
        u.host or "127.0.0.1", u.port or 5432, u.username or "postgres", u.password or ""
    )


def postgres_queue_args(
    server: PostgresServer, database: str, table: str = "queue", password: bool = False
) -> list[str]:
    return [
        "-q",
        "Postgres",
        "--libpq-conninfo",
        server.conninfo(database, password),
        "--libpq-table",
        table,
    ]
