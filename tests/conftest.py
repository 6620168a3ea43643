"""Fixtures: real gearmand daemons, a real MySQL-compatible server, queues on both backends.

The MySQL server is QUEUETOOL_TEST_MYSQL_URL when set, else (QUEUETOOL_TESTCONTAINERS=1
with a Docker engine) a testcontainers MariaDB, else a throwaway mariadbd started here;
PostgreSQL likewise. No test that needs a server is skipped: a missing server fails.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import servers
from click.testing import CliRunner, Result
from servers import (
    Gearmand,
    MySQLServer,
    PostgresServer,
    choose_source,
    mysql_container,
    mysql_from_url,
    mysql_queue_args,
    postgres_container,
    postgres_from_url,
    postgres_queue_args,
    sqlite_queue_args,
    start_mariadb,
    start_postgres,
)

from queuetool.cli import main
from queuetool.table.store import SQL_DIR

TABLE = "gearman_queue"
# Unset everything that could point a command at another queue than the test's.
CLEAN_ENV = {
    "QUEUETOOL_CONFIG": None,
    "QUEUETOOL_QUEUE": None,
    "QUEUETOOL_TABLE": None,
    "QUEUETOOL_GEARMAND": None,
    "QUEUETOOL_TRACEBACK": None,
}
_names = itertools.count(1)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A SIGTERM (a CI time-out, `timeout`) becomes Ctrl-C, so fixtures still stop the
    # servers they started instead of leaving them running.
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots and captured daemon command lines go under the test's own temp dir,
    never into the home directory of whoever runs the tests."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
def _no_daemon_left() -> Iterator[None]:
    """Stop every gearmand the test started and left running (and any that queuetool
    restarted from its command line), whichever fixture or helper made it."""
    first = len(servers.STARTED)
    yield
    started, servers.STARTED[first:] = servers.STARTED[first:], []
    errors = []
    for daemon in started:
        try:
            daemon.stop_all()
        except Exception as exc:  # keep stopping the others
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def mysql_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MySQLServer]:
    """QUEUETOOL_TEST_MYSQL_URL when set, else MariaDB from testcontainers when opted in
    (servers.server_source), else a throwaway mariadbd started here."""
    source = choose_source("QUEUETOOL_TEST_MYSQL_URL")
    if source == "env-url":
        yield mysql_from_url(os.environ["QUEUETOOL_TEST_MYSQL_URL"])
        return
    if source == "testcontainers":
        with mysql_container() as server:
            yield server
        return
    server = start_mariadb(tmp_path_factory.mktemp("mariadb"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mysql_db(mysql_server: MySQLServer) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"qt_test_{os.getpid()}_{next(_names)}"
    mysql_server.create_database(name)
    try:
        yield name
    finally:
        mysql_server.drop_database(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """QUEUETOOL_TEST_POSTGRES_URL when set, else PostgreSQL from testcontainers when
    opted in (servers.server_source), else a throwaway PostgreSQL started here."""
    source = choose_source("QUEUETOOL_TEST_POSTGRES_URL")
    if source == "env-url":
        yield postgres_from_url(os.environ["QUEUETOOL_TEST_POSTGRES_URL"])
        return
    if source == "testcontainers":
        with postgres_container() as server:
            yield server
        return
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"qt_test_{os.getpid()}_{next(_names)}"
    postgres_server.create_database(name)
    try:
        yield name
    finally:
        postgres_server.drop_database(name)


def postgres_ddl(table: str = TABLE, replay_safe: bool = False) -> str:
    """gearmand's own CREATE TABLE; `replay_safe`: priority and when_to_run TEXT."""
    text = (SQL_DIR / "postgresql.sql").read_text()
    body = "\n".join(x for x in text.splitlines() if not x.startswith("--"))
    if replay_safe:
        body = body.replace("priority INTEGER", "priority TEXT")
        body = body.replace("when_to_run INTEGER", "when_to_run TEXT")
    return body.format(table=f'"{table}"')


def sqlite_ddl(table: str = TABLE) -> str:
    text = (SQL_DIR / "sqlite.sql").read_text()
    body = "\n".join(x for x in text.splitlines() if not x.startswith("--"))
    return body.format(table=f'"{table}"')


def mysql_ddl(table: str = TABLE) -> str:
    text = (SQL_DIR / "mysql.sql").read_text()
    body = "\n".join(x for x in text.splitlines() if not x.startswith("--"))
    return body.format(table=f"`{table}`")


Row = tuple  # (unique_key, function_name, priority, data, when_to_run)


@dataclass
class Queue:
    """A gearmand queue table on one backend, with an independent way to read and write it
    (one subclass per backend).

    `sql()` goes through the plain driver (sqlite3 / PyMySQL), never through queuetool,
    so a test can check what queuetool did by another path.
    """

    backend: str
    url: str
    table: str
    workdir: Path
    sqlite_path: Path | None = None
    mysql: MySQLServer | None = None
    database: str | None = None
    postgres: PostgresServer | None = None
    daemons: list[Gearmand] = field(default_factory=list)

    def sql(self, statement: str, args: tuple | list = ()) -> list[tuple]:
        raise NotImplementedError  # each backend's Queue below

    def insert(self, rows: list[Row]) -> None:
        raise NotImplementedError

    def rows(self) -> list[Row]:
        """Every row, sorted, as the driver returns it (data as bytes)."""
        got = self.sql(
            f"SELECT unique_key, function_name, priority, data, when_to_run FROM {self.table}"
        )
        return sorted((u, f, p, bytes(d) if d is not None else None, w) for u, f, p, d, w in got)

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """function -> (high, normal, low) from the table, for comparing with gearadmin."""
        result: dict[str, list[int]] = {}
        for f, p, n in self.sql(
            f"SELECT function_name, priority, COUNT(*) FROM {self.table} GROUP BY 1, 2"
        ):
            result.setdefault(f, [0, 0, 0])[p] += n
        return {f: (c[0], c[1], c[2]) for f, c in result.items()}

    @property
    def queue_args(self) -> list[str]:
        """gearmand's options for this queue."""
        raise NotImplementedError

    def gearmand(self, *extra: str, start: bool = True) -> Gearmand:
        """A gearmand on this queue (stopped by the fixture at the end of the test)."""
        daemon = Gearmand(self.workdir, self.queue_args, extra_args=list(extra))
        self.daemons.append(daemon)
        if start:
            daemon.start()
        return daemon

    def cli_args(self) -> list[str]:
        return ["--queue", self.url, "--table", self.table]


class SQLiteQueue(Queue):
    def sql(self, statement: str, args: tuple | list = ()) -> list[tuple]:
        with sqlite3.connect(self.sqlite_path) as conn:
            rows = conn.execute(statement, args).fetchall()
        conn.close()
        return rows

    def insert(self, rows: list[Row]) -> None:
        placeholders = "(?, ?, ?, ?, ?)"
        with sqlite3.connect(self.sqlite_path) as conn:
            conn.executemany(f'INSERT INTO "{self.table}" VALUES {placeholders}', rows)
        conn.close()

    @property
    def queue_args(self) -> list[str]:
        assert self.sqlite_path is not None
        return sqlite_queue_args(self.sqlite_path, self.table)


class MySQLQueue(Queue):
    def sql(self, statement: str, args: tuple | list = ()) -> list[tuple]:
        assert self.mysql is not None and self.database is not None
        statement = statement.replace("?", "%s")
        return self.mysql.query(self.database, statement, args or None)

    def insert(self, rows: list[Row]) -> None:
        assert self.mysql is not None
        with self.mysql.connect(self.database) as conn, conn.cursor() as cur:
            cur.executemany(f"INSERT INTO `{self.table}` VALUES (%s, %s, %s, %s, %s)", rows)

    @property
    def queue_args(self) -> list[str]:
        assert self.mysql is not None and self.database is not None
        return mysql_queue_args(self.mysql, self.database, self.table)


class PostgresQueue(Queue):
    def sql(self, statement: str, args: tuple | list = ()) -> list[tuple]:
        """Plain psycopg; priority and when_to_run come back as integers on the TEXT
        layout too (by the result column's name), as on gearmand's INTEGER one."""
        assert self.postgres is not None and self.database is not None
        statement = statement.replace("?", "%s")
        with self.postgres.connect(self.database) as conn, conn.cursor() as cur:
            cur.execute(statement, args or None)
            if cur.description is None:
                return []
            ints = [d.name in ("priority", "when_to_run") for d in cur.description]
            return [
                tuple(
                    int(v) if i and isinstance(v, str) and v.lstrip("-").isdigit() else v
                    for v, i in zip(row, ints, strict=True)
                )
                for row in cur.fetchall()
            ]

    def rows(self) -> list[Row]:
        """Every row, priority and when_to_run as integers whatever the layout."""
        got = self.sql(
            f"SELECT unique_key, function_name, priority::bigint, data, when_to_run::bigint "
            f'FROM "{self.table}"'
        )
        return sorted((u, f, p, bytes(d) if d is not None else None, w) for u, f, p, d, w in got)

    def counts(self) -> dict[str, tuple[int, int, int]]:
        result: dict[str, list[int]] = {}
        for f, p, n in self.sql(
            f'SELECT function_name, priority::int, COUNT(*) FROM "{self.table}" GROUP BY 1, 2'
        ):
            result.setdefault(f, [0, 0, 0])[p] += n
        return {f: (c[0], c[1], c[2]) for f, c in result.items()}

    def insert(self, rows: list[Row]) -> None:
        assert self.postgres is not None
        with self.postgres.connect(self.database) as conn, conn.cursor() as cur:
            cur.executemany(f'INSERT INTO "{self.table}" VALUES (%s, %s, %s, %s, %s)', rows)

    @property
    def queue_args(self) -> list[str]:
        assert self.postgres is not None and self.database is not None
        return postgres_queue_args(self.postgres, self.database, self.table, password=True)


def make_sqlite_queue(workdir: Path, table: str = TABLE, create: bool = True) -> Queue:
    path = workdir / "queue.db"
    if create:
        with sqlite3.connect(path) as conn:
            conn.execute(sqlite_ddl(table))
        conn.close()
    return SQLiteQueue("sqlite", f"sqlite:///{path}", table, workdir, sqlite_path=path)


def make_mysql_queue(
    workdir: Path, server: MySQLServer, database: str, table: str = TABLE, create: bool = True
) -> Queue:
    if create:
        server.query(database, mysql_ddl(table))
    return MySQLQueue(
        "mysql", server.url(database), table, workdir, mysql=server, database=database
    )


def make_postgres_queue(
    workdir: Path,
    server: PostgresServer,
    database: str,
    table: str = TABLE,
    create: bool = True,
    replay_safe: bool = True,
) -> Queue:
    """A PostgreSQL queue; `replay_safe` (the default for the parametrised tests): the
    layout queuetool creates and gearmand replays right, else gearmand's own."""
    if create:
        server.query(database, postgres_ddl(table, replay_safe))
    return PostgresQueue(
        "postgres", server.url(database), table, workdir, postgres=server, database=database
    )


def _stop_all(queue: Queue) -> None:
    errors = []
    for daemon in queue.daemons:
        try:
            daemon.stop_all()
        except Exception as exc:  # keep stopping the others
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def sqlite_queue(tmp_path: Path) -> Iterator[Queue]:
    queue = make_sqlite_queue(tmp_path)
    try:
        yield queue
    finally:
        _stop_all(queue)


@pytest.fixture
def mysql_queue(tmp_path: Path, mysql_server: MySQLServer, mysql_db: str) -> Iterator[Queue]:
    queue = make_mysql_queue(tmp_path, mysql_server, mysql_db)
    try:
        yield queue
    finally:
        _stop_all(queue)


@pytest.fixture
def postgres_queue(
    tmp_path: Path, postgres_server: PostgresServer, postgres_db: str
) -> Iterator[Queue]:
    queue = make_postgres_queue(tmp_path, postgres_server, postgres_db)
    try:
        yield queue
    finally:
        _stop_all(queue)


# Every backend the `queue` fixture runs a test on; each has a `<name>_queue` fixture
# above. A new backend: its Queue subclass, make function and fixture, and its name here.
BACKENDS = ("sqlite", "mysql", "postgres")


@pytest.fixture(params=BACKENDS)
def queue(request: pytest.FixtureRequest) -> Queue:
    """The same test on a SQLite, a MySQL and a PostgreSQL queue (gearmand's own table;
    on PostgreSQL the replay-safe layout queuetool creates)."""
    return request.getfixturevalue(f"{request.param}_queue")


@pytest.fixture
def snapdir(tmp_path: Path) -> Path:
    """An empty snapshot directory of the test's own."""
    path = tmp_path / "snapshots"
    path.mkdir()
    return path


@pytest.fixture
def cli() -> CliRunnerHelper:
    return CliRunnerHelper()


class CliRunnerHelper:
    """Run the real click entry point; stdout and stderr apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, env: dict | None = None) -> Result:
        env = {"QUEUETOOL_CONFIG": None, "QUEUETOOL_QUEUE": None, **(env or {})}
        return self.runner.invoke(main, list(args), input=input, env=env, catch_exceptions=False)

    def report_counts(self, *args: str, env: dict | None = None) -> dict[str, tuple[int, int, int]]:
        """`queuetool report --format json` as {function: (high, normal, low)}, the shape
        of `gearadmin --priority-status` (servers.priority_status)."""
        result = self("report", *args, "--format", "json", env=env)
        assert result.exit_code == 0, result.output
        got: dict[str, list[int]] = {}
        for cell in json.loads(result.stdout):
            got.setdefault(cell["function"], [0, 0, 0])[
                ["high", "normal", "low"].index(cell["priority"])
            ] += cell["count"]
        return {f: (c[0], c[1], c[2]) for f, c in got.items()}
