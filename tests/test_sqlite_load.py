"""A whole copy into SQLite (dialects/sqlite_load.py): rows in key order straight into
staging, the rest through the sorted TEMP table, summed as stored, and still proven."""

from __future__ import annotations

import random
import sqlite3

import pytest
from conftest import make_sqlite_queue

import queuetool.table.dialects.sqlite_load as sqlite_load
from queuetool.errors import VerifyError
from queuetool.migrate.carry import Refusals
from queuetool.migrate.copy import MigrateOptions, migrate
from queuetool.migrate.staging import COLUMNS, open_writer
from queuetool.table.checksum import Checksum
from queuetool.table.store import QueueStore, queue_table


def job(key: str, fn: str = "fn", data: bytes = b"x") -> tuple:
    return (key, fn, 1, data, 0)


def keys(n: int, start: int = 0) -> list[str]:
    return [f"k{i:05d}" for i in range(start, start + n)]


def load(tmp_path, batches: list[list[tuple]]) -> tuple:  # type: ignore[no-untyped-def]
    """Write `batches` through open_writer into a staging table of a new SQLite queue;
    (refusals, the rows staging holds, its full checksum, the writer)."""
    tmp_path.mkdir(exist_ok=True)
    queue = make_sqlite_queue(tmp_path)
    store = QueueStore(queue.url)
    refusals = Refusals()
    try:
        with store.begin() as conn:
            store.dialect.create_staging(conn, store, "staged", None)
            writer = open_writer(store, conn, "staged", refusals)
            assert isinstance(writer, sqlite_load.OrderedLoad)
            for batch in batches:
                writer.write(batch)
            writer.close()
            whole = store.dialect.stored_checksum(conn, queue_table("staged"))
            got = conn.exec_driver_sql(
                "SELECT unique_key, function_name, priority, data, when_to_run FROM staged"
            ).all()
            conn.rollback()
    finally:
        store.close()
    return refusals, sorted(tuple(r) for r in got), whole, writer


ZIGZAG = [k for pair in zip(keys(15, 15)[::-1], keys(15), strict=True) for k in pair]
ORDERS = {
    "ascending": [keys(30)[i : i + 10] for i in range(0, 30, 10)],
    # A second round of keys between the first's (UUIDv1 after its time field wrapped).
    "wrapped": [
        keys(8, 20),
        [*keys(2, 28), *keys(8, 0)],
        keys(10, 8),
        [f"k{i:05d}a" for i in range(10)],
    ],
    # In no order: every batch is cut into more runs than a straight write takes.
    "shuffled": [ZIGZAG[i : i + 10] for i in range(0, 30, 10)],
    "mixed": [keys(10, 40), random.Random(3).sample(keys(10, 10), 10), keys(10, 60), keys(10, 0)],
}


@pytest.mark.parametrize("order", ORDERS)
def test_every_order_lands_whole_and_summed_as_stored(tmp_path, order):
    batches = [[job(k, data=k.encode()) for k in ks] for ks in ORDERS[order]]
    rows = [row for batch in batches for row in batch]
    refusals, got, whole, writer = load(tmp_path, batches)
    assert not refusals
    assert got == sorted(rows)
    assert whole == Checksum().update(rows)
    assert writer.stored == whole


def test_non_utf8_and_nul_keys_summed_byte_exact(tmp_path):
    rows = [
        job("a\udcff\udcfe", data=b"\xff"),  # bytes that are not UTF-8, read back as surrogates
        job("b\x00nul", "f\x00n"),
        job("c\u00e9t\u00e9", "f\U0001f600"),
    ]
    _refusals, got, whole, writer = load(tmp_path, [rows])
    assert got == sorted(rows)
    assert writer.stored == whole == Checksum().update(rows)


SHUFFLED = [job(k) for k in ("k09", "k01", "k08", "k02", "k07", "k03", "k06", "k04")]


@pytest.mark.parametrize(
    "batches",
    [
        # the later copy in the same batch, in a later batch of keys in order, after a
        # batch in no order (the TEMP table), and in such a batch after a straight one
        [[job("k01"), job("k02"), job("k01", data=b"again")], [job("k03")]],
        [[job("k01"), job("k02")], [job("k00"), job("k02", data=b"again"), job("k04")]],
        [SHUFFLED, [job("k03", data=b"again"), job("k10")]],
        [SHUFFLED, [job("k10"), job("k11")], [job("k03", data=b"again")]],
        [
            [job("k01"), job("k02")],
            [
                job(k, data=b"again" if k == "k02" else b"x")
                for k in ("k09", "k02", "k08", "k03", "k07", "k04", "k06", "k05")
            ],
        ],
    ],
    ids=[
        "same-batch",
        "straight-then-straight",
        "temp-then-later",
        "temp-far",
        "straight-then-temp",
    ],
)
def test_key_written_twice_refuses_the_later_copy(tmp_path, batches):
    """Whichever way each copy went (straight or through the TEMP table), the key keeps
    the first copy in source order and refuses the later one, as the dry run's
    row-by-row writer does; staging holds, and sums to, the rows kept."""
    rows = [row for batch in batches for row in batch]
    later = [r for r in rows if r[3] == b"again"]
    kept = [r for r in rows if r[3] != b"again"]
    refusals, got, whole, writer = load(tmp_path, batches)
    assert refusals.kinds["key_collision"].count == 1
    assert [u for _f, u in refusals.kinds["key_collision"].examples] == [later[0][0]]
    assert writer.not_written == Checksum().update(later)
    assert got == sorted(kept)
    assert whole == Checksum().update(kept)
    assert writer.stored in (None, whole)  # None: copy.py sums staging again


def test_many_batches_in_key_order_go_straight_into_staging(tmp_path, monkeypatch):
    loaded: list[int] = []
    to_temp = sqlite_load.OrderedLoad._to_temp
    monkeypatch.setattr(
        sqlite_load.OrderedLoad,
        "_to_temp",
        lambda self, rows, low, high: (loaded.append(len(rows)), to_temp(self, rows, low, high)),
    )
    batches = [[job(k) for k in ks] for ks in ORDERS["wrapped"]]
    load(tmp_path, batches)
    assert loaded == []
    loaded.clear()
    load(tmp_path / "2", [[job(k) for k in ks] for ks in ORDERS["shuffled"]])
    assert sum(loaded) == 30


def _source(tmp_path) -> tuple[QueueStore, QueueStore, list[tuple]]:  # type: ignore[no-untyped-def]
    src = make_sqlite_queue(tmp_path / "src")
    rows = [job(k, f"fn{i % 3}", k.encode() * 3) for i, k in enumerate(keys(50))]
    src.insert(rows)
    return QueueStore(src.url), QueueStore(f"sqlite:///{tmp_path / 'dst.db'}"), rows


@pytest.mark.parametrize("how", ["changed", "extra"])
def test_a_row_staging_holds_wrongly_is_caught(tmp_path, monkeypatch, how):
    """The proof is staging's own rows against the source's checksum: a row that landed
    changed, or one more row than was summed as written, fails the copy and leaves the
    target as it was (here: not created)."""
    (tmp_path / "src").mkdir()
    source, target, _rows = _source(tmp_path)
    insert = sqlite_load.insert_exact
    extra: list[int] = []

    def damaging(db: sqlite3.Connection, table: str, rows: list) -> None:
        insert(db, table, rows)
        if table.startswith("temp."):
            return
        if how == "changed":
            db.execute(
                f"UPDATE {table} SET data = X'00' WHERE rowid = (SELECT max(rowid) FROM {table})"
            )
        elif not extra:  # below every rowid summed: only the count sees it
            extra.append(1)
            db.execute(f"INSERT INTO {table} (rowid, {COLUMNS}) VALUES (-1, 'zz', 'fn', 1, X'', 0)")

    monkeypatch.setattr(sqlite_load, "insert_exact", damaging)
    try:
        with pytest.raises(VerifyError, match="did not verify"):
            migrate(source, target, MigrateOptions(batch=20))
    finally:
        source.close()
        target.close()
    assert not (tmp_path / "dst.db").exists()


def test_migrate_into_sqlite_verified_as_stored_without_a_second_pass(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    source, target, rows = _source(tmp_path)
    import queuetool.migrate.copy as copy

    summed: list[str] = []
    monkeypatch.setattr(copy, "staging_checksum", lambda *a: summed.append("whole"))
    try:
        result = migrate(source, target, MigrateOptions(batch=20))
    finally:
        source.close()
        target.close()
    assert summed == []
    assert result.target_checksum == result.source_checksum == Checksum().update(rows)
