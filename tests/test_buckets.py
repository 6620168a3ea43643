"""restart_buckets: the --hashtable-buckets a restarted daemon will have, for the
replay prediction, from the option, else the running daemon's command line."""

from __future__ import annotations

from queuetool.daemon.buckets import restart_buckets
from queuetool.daemon.reload import DEFAULT_BUCKETS
from queuetool.table.store import open_store


def test_the_option_else_the_running_daemons_own_else_the_default(sqlite_queue):
    store = open_store(sqlite_queue.url, sqlite_queue.table)
    try:
        assert restart_buckets(store, 7, 10) == 7
        assert restart_buckets(store, "auto", 5000) == 5000
        assert restart_buckets(store, "auto", 10) == DEFAULT_BUCKETS
        assert restart_buckets(store, None, 10) == DEFAULT_BUCKETS  # no daemon runs
        daemon = sqlite_queue.gearmand("--hashtable-buckets=5003")
        assert restart_buckets(store, None, 10) == 5003
        daemon.stop()
        assert restart_buckets(store, None, 10) == DEFAULT_BUCKETS
    finally:
        store.close()
