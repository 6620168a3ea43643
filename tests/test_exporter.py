"""`queuetool exporter`: metrics from a real queue and its real gearmand, the cache,
--store-queue-on-shutdown, faults (database killed, daemon stopped, table dropped),
several queues from the config, and `report --format prometheus` with the same names."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from observers import http_get, page_table, wait_for
from prometheus_client.parser import text_string_to_metric_families
from servers import (
    JobSpec,
    admin,
    free_port,
    holding_worker,
    launch_mariadbd,
    priority_status,
    start_mariadb,
    submit,
)

from queuetool.daemon.admin import Address
from queuetool.exporter.cache import FiguresCache
from queuetool.exporter.figures import QueueSource, collect
from queuetool.exporter.server import Exporter, ExporterServer, serve_in_thread
from queuetool.table.store import QueueStore

FUTURE = 2_000_000_000


def jobs() -> list[JobSpec]:
    return [
        *(JobSpec("resize", f"r{i}", b"img" * (i + 1), priority=i % 3) for i in range(7)),
        *(JobSpec("mail", f"m{i}", b"\x00\xff", priority=2) for i in range(3)),
        JobSpec("mail", "later", b"later", when=FUTURE),  # scheduled, NORMAL
    ]


@contextlib.contextmanager
def serving(sources: Sequence[QueueSource], min_interval: float = 0.0) -> Iterator[ExporterServer]:
    """The library's exporter on a free loopback port, in a thread of this process."""
    exporter = Exporter(sources, min_interval)
    server = ExporterServer(Address("127.0.0.1", 0), exporter)
    serve_in_thread(server)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()


Samples = dict[tuple[str, frozenset], float]


def scrape(server_url: str) -> tuple[Samples, set[str]]:
    """(samples by name and labels, names of every declared family) of /metrics."""
    status, ctype, body = http_get(server_url + "metrics")
    assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
    samples: Samples = {}
    families = set()
    for family in text_string_to_metric_families(body):
        families.add(family.name)
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def per_priority(samples: Samples, name: str, queue: str) -> dict[str, tuple[int, ...]]:
    """{function: (high, normal, low)} of a per-cell metric, functions with jobs only."""
    got: dict[str, list[int]] = {}
    for (n, labels), v in samples.items():
        lab = dict(labels)
        if n == name and lab["queue"] == queue:
            got.setdefault(lab["function"], [0, 0, 0])[
                ["high", "normal", "low"].index(lab["priority"])
            ] += int(v)
    return {f: tuple(c) for f, c in got.items() if any(c)}


def test_metrics_equal_the_daemons_prioritystatus(queue):
    daemon = queue.gearmand()
    submit(daemon.port, jobs())
    expected = priority_status(daemon.port)
    assert expected == {"resize": (3, 2, 2), "mail": (0, 1, 3)}
    store = QueueStore(queue.url, queue.table)
    with serving([QueueSource("main", store, daemon.address)]) as server:
        with holding_worker(daemon.port, "resize"):
            samples, _ = scrape(server.url)
        assert per_priority(samples, "gearman_queue_jobs", "main") == expected
        # The job a worker held is running, not waiting: prioritystatus has one less.
        assert per_priority(samples, "gearmand_jobs", "main") == {
            "resize": (2, 2, 2),
            "mail": (0, 1, 3),
        }
        assert value(samples, "gearmand_running_jobs", queue="main", function="resize") == 1
        assert value(samples, "gearmand_workers", queue="main", function="resize") == 1
        assert value(samples, "gearman_queue_up", queue="main") == 1
        assert value(samples, "gearmand_up", queue="main") == 1
        version = [lab for (n, lab) in samples if n == "gearmand_version_info"]
        daemon_says = admin(daemon.port, "version").split()[1]  # "OK 1.1.20+ds"
        assert [dict(lab)["version"] for lab in version] == [daemon_says]
        mail = {"queue": "main", "function": "mail"}
        assert value(samples, "gearman_queue_scheduled_jobs", **mail, priority="normal") == 1
        assert value(samples, "gearman_queue_due_jobs", **mail, priority="normal") == 0
        assert value(samples, "gearman_queue_due_jobs", **mail, priority="low") == 3
        # Payload bytes: the table's own sum, by the independent driver.
        ((low_bytes,),) = queue.sql(
            f"SELECT SUM(LENGTH(data)) FROM {queue.table} "
            "WHERE function_name='resize' AND priority='2'"  # a literal: TEXT or INTEGER
        )
        resize_low = {"queue": "main", "function": "resize", "priority": "low"}
        assert value(samples, "gearman_queue_payload_bytes", **resize_low) == low_bytes
        info = {
            "queue": "main",
            "backend": queue.backend,
            "table": queue.table,
            "source": "table",
            "store_queue_on_shutdown": "false",
        }
        assert value(samples, "gearman_queue_info", **info) == 1
        assert (
            value(samples, "queuetool_exporter_errors_total", queue="main", source="database") == 0
        )


def test_cached_figures_for_the_minimum_interval_and_their_age(sqlite_queue):
    sqlite_queue.insert([("a", "fn", 1, b"x", 0)])
    store = QueueStore(sqlite_queue.url)
    with serving([QueueSource("q", store)], min_interval=3600) as server:
        first, _ = scrape(server.url)
        sqlite_queue.insert([("b", "fn", 1, b"x", 0)])
        second, _ = scrape(server.url)
        # Within the interval: the same figures, one scan, and an age that grows.
        normal = {"queue": "q", "function": "fn", "priority": "normal"}
        assert value(first, "gearman_queue_jobs", **normal) == 1
        assert value(second, "gearman_queue_jobs", **normal) == 1
        assert value(second, "queuetool_exporter_scans_total", queue="q") == 1
        assert value(second, "queuetool_exporter_figures_age_seconds", queue="q") > value(
            first, "queuetool_exporter_figures_age_seconds", queue="q"
        )
    with serving([QueueSource("q", store)], min_interval=0) as server:
        samples, _ = scrape(server.url)
        assert value(samples, "gearman_queue_jobs", **normal) == 2


def test_the_first_scan_leaves_out_the_age_and_every_later_one_has_it(sqlite_queue):
    key = "b46a91a2-d4fd-11ec-a3bd-fa86f9a96738"  # 2022-05-16T09:51:06Z
    sqlite_queue.insert([(key, "fn", 1, b"x", 0)])
    store = QueueStore(sqlite_queue.url)
    normal = {"queue": "q", "function": "fn", "priority": "normal"}
    with serving([QueueSource("q", store)], min_interval=0) as server:
        first, families = scrape(server.url)
        assert "gearman_queue_oldest_job_age_seconds" in families
        assert not [n for n, _ in first if n == "gearman_queue_oldest_job_age_seconds"]
        assert value(first, "gearman_queue_jobs", **normal) == 1
        for _ in range(2):
            later, _ = scrape(server.url)
            age = value(later, "gearman_queue_oldest_job_age_seconds", **normal)
            assert abs(age - (time.time() - 1652694666)) < 120


def test_never_two_scans_at_once_and_scrapes_during_a_scan_get_the_last_figures(sqlite_queue):
    sqlite_queue.insert([("a", "fn", 0, b"x", 0)])
    source = QueueSource("q", QueueStore(sqlite_queue.url))
    inside, release = threading.Event(), threading.Event()
    active, most = [0], [0]
    lock = threading.Lock()

    def slow_collect(src: QueueSource, **options):  # the real collection, held by the test
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        inside.set()
        release.wait(30)
        try:
            return collect(src, **options)
        finally:
            with lock:
                active[0] -= 1

    cache = FiguresCache(source, min_interval=0, collector=slow_collect)
    release.set()
    first = cache.get()
    release.clear()
    inside.clear()
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get())) for _ in range(8)]
    threads[0].start()
    assert inside.wait(10)  # one scan is running and held
    for t in threads[1:]:
        t.start()
    for t in threads[1:]:
        t.join(10)
    # Every other scrape returned at once, with the previous figures.
    assert len(results) == 7 and all(r is first for r in results)
    release.set()
    threads[0].join(10)
    assert most[0] == 1 and cache.scans == 2
    source.store.close()


def test_store_queue_on_shutdown_is_counted_from_the_daemon(sqlite_queue):
    daemon = sqlite_queue.gearmand("--store-queue-on-shutdown")
    submit(daemon.port, jobs())
    assert sqlite_queue.rows() == []  # not this daemon's queue while it runs
    expected = priority_status(daemon.port)
    store = QueueStore(sqlite_queue.url)
    # No store_queue_on_shutdown in the source: found from the daemon's command line.
    with serving([QueueSource("soqs", store, daemon.address)]) as server:
        samples, _ = scrape(server.url)
        assert per_priority(samples, "gearman_queue_jobs", "soqs") == expected
        info = dict(next(lab for (n, lab) in samples if n == "gearman_queue_info"))
        assert (info["source"], info["store_queue_on_shutdown"]) == ("daemon", "true")
        # Schedule and payload are not known from the daemon: no such samples.
        assert not [n for (n, _) in samples if n == "gearman_queue_payload_bytes"]
        page = page_table(http_get(server.url)[2]).queues["soqs"]
        assert {f: (r["high"], r["normal"], r["low"]) for f, r in page.items() if f != "TOTAL"} == (
            expected
        )
        daemon.stop()  # a clean stop writes the queue into the table
        assert sqlite_queue.counts() == expected
        samples, _ = scrape(server.url)
        assert per_priority(samples, "gearman_queue_jobs", "soqs") == expected
        info = dict(next(lab for (n, lab) in samples if n == "gearman_queue_info"))
        assert info["source"] == "table"
        assert value(samples, "gearmand_up", queue="soqs") == 0


def test_daemon_down_and_table_dropped_keep_it_serving(sqlite_queue):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, jobs())
    store = QueueStore(sqlite_queue.url)
    with serving([QueueSource("q", store, daemon.address)]) as server:
        samples, _ = scrape(server.url)
        assert value(samples, "gearmand_up", queue="q") == 1
        daemon.stop()
        samples, _ = scrape(server.url)
        assert value(samples, "gearmand_up", queue="q") == 0
        assert value(samples, "queuetool_exporter_errors_total", queue="q", source="daemon") == 1
        # The table is still read: the queue's own figures stay up.
        assert value(samples, "gearman_queue_up", queue="q") == 1
        assert per_priority(samples, "gearman_queue_jobs", "q") == sqlite_queue.counts()
        sqlite_queue.sql("DROP TABLE gearman_queue")
        samples, _ = scrape(server.url)
        assert value(samples, "gearman_queue_up", queue="q") == 0
        assert value(samples, "queuetool_exporter_errors_total", queue="q", source="database") == 1
        assert value(samples, "queuetool_exporter_errors_total", queue="q", source="daemon") == 2
        assert not [n for (n, _) in samples if n == "gearman_queue_jobs"]
        status, _, html = http_get(server.url)
        assert status == 200
        assert "database: table &#x27;gearman_queue&#x27; does not exist" in html
        assert http_get(server.url + "healthz")[:3:2] == (200, "ok\n")


@pytest.mark.mysql
def test_database_killed_mid_run_then_back(tmp_path, sqlite_queue):
    """A MariaDB of this test's own, SIGKILLed while the exporter runs, then restarted."""
    from conftest import make_mysql_queue

    server = start_mariadb(tmp_path / "own-mariadb")
    try:
        server.create_database("q")
        queue = make_mysql_queue(tmp_path / "mq", server, "q")
        daemon = queue.gearmand()
        try:
            submit(daemon.port, jobs())
            expected = priority_status(daemon.port)
            store = QueueStore(queue.url)
            with serving([QueueSource("my", store, daemon.address)]) as exp:
                samples, _ = scrape(exp.url)
                assert per_priority(samples, "gearman_queue_jobs", "my") == expected
                server.kill()
                samples, _ = scrape(exp.url)
                assert value(samples, "gearman_queue_up", queue="my") == 0
                errors = {"queue": "my", "source": "database"}
                assert value(samples, "queuetool_exporter_errors_total", **errors) == 1
                assert value(samples, "gearmand_up", queue="my") == 1  # the daemon still answers
                page = http_get(exp.url)[2]
                assert 'queue: <span class="down">DOWN</span>' in page
                assert server.password not in page
                # The server comes back on the same port: the next scrape reads it again.
                proc = launch_mariadbd(server.workdir, server.port)
                server.pid, server._proc = proc.pid, proc  # type: ignore[attr-defined]
                samples = wait_for(
                    "the exporter to read the restarted MariaDB",
                    lambda: (
                        (s := scrape(exp.url)[0])
                        and value(s, "gearman_queue_up", queue="my") == 1
                        and s
                    ),
                    60,
                )
                assert per_priority(samples, "gearman_queue_jobs", "my") == expected
                assert value(samples, "queuetool_exporter_errors_total", **errors) >= 1
        finally:
            daemon.stop()
    finally:
        server.stop()


def test_several_queues_from_the_config_in_the_real_command(tmp_path, sqlite_queue, mysql_queue):
    a = sqlite_queue.gearmand()
    submit(a.port, jobs())
    mysql_queue.insert([("u1", "bulk", 2, b"x", 0), ("u2", "bulk", 2, b"y", FUTURE)])
    config = tmp_path / "queuetool.toml"
    config.write_text(
        f'[queues.front]\nurl = "{sqlite_queue.url}"\ngearmand = "{a.address}"\n'
        f'[queues.back]\nurl = "{mysql_queue.url}"\ntable = "{mysql_queue.table}"\n'
        "[exporter]\nmin_interval = 0\n"
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUETOOL_")}
    listen = ["--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuetool", "exporter", "--config", str(config), *listen],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for("the exporter to answer /healthz", lambda: http_get(url + "healthz")[0] == 200)
        samples, _ = scrape(url)
        assert per_priority(samples, "gearman_queue_jobs", "front") == priority_status(a.port)
        assert per_priority(samples, "gearman_queue_jobs", "back") == {"bulk": (0, 0, 2)}
        assert value(samples, "gearmand_up", queue="front") == 1
        assert value(samples, "gearmand_up", queue="back") is None  # no daemon named
        back = {"queue": "back", "function": "bulk", "priority": "low"}
        assert value(samples, "gearman_queue_scheduled_jobs", **back) == 1
        assert http_get(url + "nothing")[0] == 404
        page = page_table(http_get(url)[2])
        assert sorted(page.queues) == ["back", "front"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()  # no exporter left behind; the test fails on the timeout
            proc.communicate()
            raise
    assert proc.returncode == 0, err
    assert out == ""
    assert f"2 queue(s) (back, front) on http://127.0.0.1:{port}/" in err
    assert mysql_queue.mysql.password not in err


def test_report_prometheus_uses_the_exporters_names(sqlite_queue, cli):
    sqlite_queue.insert([("a", "fn", 0, b"abc", 0), ("b", "fn", 2, b"", FUTURE)])
    result = cli("report", *sqlite_queue.cli_args(), "--format", "prometheus")
    assert result.exit_code == 0, result.output
    report_samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(result.stdout)
        for s in f.samples
    }
    with serving([QueueSource("default", QueueStore(sqlite_queue.url))]) as server:
        samples, _ = scrape(server.url)
    # Every sample of the text file is one the exporter serves, with the same value.
    assert report_samples and all(samples[k] == v for k, v in report_samples.items())
    hi = {"queue": "default", "function": "fn", "priority": "high"}
    assert value(report_samples, "gearman_queue_payload_bytes", **hi) == 3


def test_listen_address_in_use_is_one_line(cli, sqlite_queue):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = cli("exporter", *sqlite_queue.cli_args(), "--listen", f"127.0.0.1:{port}")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize(
    ("listen", "error"),
    [
        ("127.0.0.1:99999", "port out of range in listen address '127.0.0.1:99999'"),
        (":http", "not a listen address (HOST:PORT): ':http'"),
    ],
)
def test_a_wrong_listen_address_is_named_as_such(cli, sqlite_queue, listen, error):
    result = cli("exporter", *sqlite_queue.cli_args(), "--listen", listen)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {error}\n")


def test_config_queue_without_url_is_refused(cli, tmp_path):
    config = tmp_path / "q.toml"
    config.write_text('[queues.x]\ntable = "t"\n')
    result = cli("exporter", "--config", str(config))
    assert (result.exit_code, result.stderr) == (2, f"Error: {config}: [queues.x] has no url\n")


def test_first_scrape_of_a_missing_queue_file_is_up_zero(tmp_path):
    store = QueueStore(f"sqlite:///{tmp_path / 'gone.db'}")
    with serving([QueueSource("gone", store)]) as server:
        samples, _ = scrape(server.url)
    assert value(samples, "gearman_queue_up", queue="gone") == 0
    assert value(samples, "queuetool_exporter_errors_total", queue="gone", source="database") == 1
    assert (tmp_path / "gone.db").exists() is False
