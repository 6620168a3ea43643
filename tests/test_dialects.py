"""The dialect boundary: one interface, a registry by name, never a silent MySQL."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from queuetool.errors import UsageError
from queuetool.table.dialects import (
    DIALECTS,
    Dialect,
    dialect_for,
    dialect_for_queue_type,
    dialect_for_url,
)
from queuetool.table.store import QueueStore


def _members() -> set[str]:
    names = set(Dialect.__annotations__) | {
        n for n in vars(Dialect) if not n.startswith("_") and callable(getattr(Dialect, n))
    }
    return names


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_every_dialect_provides_the_whole_interface(name):
    dialect = dialect_for(name)
    missing = sorted(m for m in _members() if not hasattr(dialect, m))
    assert missing == []
    assert name == dialect.NAME


def test_an_unknown_backend_is_an_error():
    with pytest.raises(UsageError, match="unknown queue backend 'oracle': queuetool knows "):
        dialect_for("oracle")


def test_a_url_object_of_an_unknown_backend_is_refused_not_taken_for_mysql():
    # A URL object skips parse_queue_url; the store used to treat it as MySQL.
    url = make_url("oracle://u:secret@db/gearman")
    assert dialect_for_url(url) is None
    with pytest.raises(UsageError) as caught:
        QueueStore(url)
    assert str(caught.value) == (
        "unsupported queue database 'oracle' in oracle://u:***@db/gearman: "
        "use sqlite:///PATH or mysql+pymysql://USER:PASS@HOST:PORT/DB or "
        "postgresql+psycopg://USER:PASS@HOST:5432/DB"
    )


def test_mariadb_urls_are_the_mysql_dialect():
    store = QueueStore("mariadb://u:p@127.0.0.1/q")
    assert store.backend == "mysql" and store.url.drivername == "mysql+pymysql"
    assert store.url.query["charset"] == "utf8mb4"


def test_the_dialect_of_a_gearmand_queue_type():
    assert dialect_for_queue_type("libsqlite3") is dialect_for("sqlite")
    assert dialect_for_queue_type("MySQL") is dialect_for("mysql")  # gearmand's spelling
    assert dialect_for_queue_type("Postgres") is dialect_for("postgres")
    assert dialect_for_queue_type("redis") is None
    assert dialect_for_queue_type("builtin") is None


def test_sqlite_deletes_the_rows_a_temp_table_and_the_queue_share():
    # SQLite imports from its spool (SPOOL_COPY), so no import runs these two: checked here.
    import sqlalchemy as sa

    sqlite = dialect_for("sqlite")
    assert sqlite.SPOOL_COPY and not dialect_for("mysql").SPOOL_COPY
    assert not dialect_for("postgres").SPOOL_COPY
    on = "q.unique_key = t.unique_key AND q.function_name = t.function_name"
    with sa.create_engine("sqlite://").begin() as conn:
        for name in ("queue", "temp.staged"):
            conn.exec_driver_sql(
                f"CREATE TABLE {name} (unique_key TEXT, function_name TEXT, "
                "PRIMARY KEY (unique_key, function_name))"
            )
        conn.exec_driver_sql("INSERT INTO queue VALUES ('a', 'f'), ('b', 'f'), ('c', 'g')")
        conn.exec_driver_sql("INSERT INTO staged VALUES ('a', 'f'), ('b', 'g'), ('c', 'g')")
        assert sqlite.delete_replaced(conn, "staged", "queue", on) == 2
        assert conn.exec_driver_sql("SELECT * FROM queue").all() == [("b", "f")]
        conn.exec_driver_sql("INSERT INTO queue VALUES ('a', 'f')")
        assert sqlite.delete_staged_conflicts(conn, "staged", "queue", on) == 1
        rows = conn.exec_driver_sql("SELECT * FROM staged ORDER BY 1").all()
        assert rows == [("b", "g"), ("c", "g")]


def test_the_lazy_registry_names_each_backend_as_its_module_does():
    import importlib

    from queuetool.table.dialects import _BACKENDS

    for name, (module, url_names, queue_type) in _BACKENDS.items():
        dialect = importlib.import_module(f"queuetool.table.dialects.{module}")
        assert (
            name,
            url_names,
            queue_type,
        ) == (dialect.NAME, dialect.URL_NAMES, dialect.QUEUE_TYPE)
        assert DIALECTS[name] is dialect
        for url_name in url_names:
            assert dialect_for_url(make_url(f"{url_name}://x/y")) is dialect
        assert dialect_for_queue_type(queue_type.upper()) is dialect


def test_a_sqlite_queue_loads_neither_pymysql_nor_the_postgresql_dialect(tmp_path):
    """The other backends' modules are imported on first use: not at a SQLite start-up."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from queuetool.table.store import QueueStore\n"
        f"import sqlite3; sqlite3.connect('{tmp_path}/q.db').close()\n"
        f"store = QueueStore('sqlite:///{tmp_path}/q.db')\n"
        "store.engine.connect().close()\n"
        "loaded = [m for m in ('pymysql', 'sqlalchemy.dialects.postgresql',"
        " 'queuetool.table.dialects.mysql') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
