"""The exporter seen by a real Prometheus server and a real headless browser, and the
Grafana dashboard checked against a live scrape."""

from __future__ import annotations

import json
import re
from pathlib import Path

from observers import chromium, chromium_open, http_get, page_table, prometheus, wait_for
from servers import JobSpec, priority_status, submit
from test_exporter import jobs, scrape, serving

from queuetool.exporter.figures import QueueSource
from queuetool.table.store import QueueStore

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "gearman-queue.json"
# Samples only for jobs whose keys are UUIDv1 (libgearman's own): these tests' keys are not.
ONLY_WITH_UUID1_KEYS = {"gearman_queue_oldest_job_age_seconds"}


def prom_counts(prom, metric: str, queue: str) -> dict[str, tuple[int, ...]]:
    """{function: (high, normal, low)} from Prometheus's query API, functions with jobs."""
    got: dict[str, list[int]] = {}
    for item in prom.query(f'{metric}{{queue="{queue}"}}'):
        labels = item["metric"]
        got.setdefault(labels["function"], [0, 0, 0])[
            ["high", "normal", "low"].index(labels["priority"])
        ] += int(float(item["value"][1]))
    return {f: tuple(c) for f, c in got.items() if any(c)}


def up(prom) -> list[str]:  # type: ignore[no-untyped-def]
    """The value of each `up` series of the exporter's job (one: ["1"] when scraped)."""
    return [item["value"][1] for item in prom.query('up{job="queuetool"}')]


def test_prometheus_sees_prioritystatus_before_and_after_an_edit_window(
    sqlite_queue, cli, tmp_path
):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, jobs())
    before = priority_status(daemon.port)
    assert before == {"resize": (3, 2, 2), "mail": (0, 1, 3)}
    store = QueueStore(sqlite_queue.url)
    with (
        serving([QueueSource("live", store, daemon.address)], min_interval=0.5) as server,
        prometheus(tmp_path / "prometheus", server.url.split("/")[2]) as prom,
    ):
        # Wait until Prometheus has scraped the series, then compare exactly.
        wait_for(
            "Prometheus to hold the queue's series",
            lambda: prom_counts(prom, "gearman_queue_jobs", "live") == before,
        )
        assert prom_counts(prom, "gearmand_jobs", "live") == before
        wait_for("Prometheus to see the exporter up", lambda: up(prom) == ["1"])

        result = cli(
            "reprioritise", *sqlite_queue.cli_args(), "--function", "mail", "--to", "high", "--yes"
        )
        assert result.exit_code == 0, result.output
        daemon.pid = int(daemon.pidfile.read_text())  # the window restarted it
        after = priority_status(daemon.port)
        assert after == {"resize": (3, 2, 2), "mail": (4, 0, 0)}
        wait_for(
            "Prometheus to see the edited queue",
            lambda: (
                prom_counts(prom, "gearman_queue_jobs", "live") == after
                and prom_counts(prom, "gearmand_jobs", "live") == after
            ),
        )
        # The window's stop showed as a daemon that did not answer, counted as an error
        # only if a scan fell inside it; the exporter itself never went away.
        wait_for("Prometheus to see the exporter up", lambda: up(prom) == ["1"])


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in board["templating"]["list"]]
    return exprs


def test_every_metric_the_dashboard_queries_is_served(sqlite_queue, tmp_path):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, jobs())
    store = QueueStore(sqlite_queue.url)
    exprs = dashboard_exprs()
    assert len(exprs) >= 14
    named = {m for e in exprs for m in re.findall(r"\b(?:gearman|gearmand|queuetool)_\w+", e)}
    with (
        serving([QueueSource("dash", store, daemon.address)], min_interval=0.5) as server,
        prometheus(tmp_path / "prometheus", server.url.split("/")[2]) as prom,
    ):
        samples, families = scrape(server.url)
        served = {name for name, _ in samples}
        # A family's samples may carry a suffix (_total, _info): either name counts.
        assert named - served - families == set()
        assert named & ONLY_WITH_UUID1_KEYS == ONLY_WITH_UUID1_KEYS
        wait_for(
            "Prometheus to hold the queue's series",
            lambda: prom.query('gearman_queue_jobs{queue="dash"}'),
        )
        for expr in exprs:
            concrete = expr.replace("$queue", "dash").replace("$function", ".*")
            if concrete.startswith("label_values("):
                metric = concrete[len("label_values(") :].rsplit(",", 1)[0]
                wait_for(f"data for {expr}", lambda m=metric: prom.query(m))
                continue
            prom.query(concrete)  # Prometheus parses every expression
            metrics = set(re.findall(r"\b(?:gearman|gearmand)_\w+", expr))
            needs_uuid1 = bool(metrics & ONLY_WITH_UUID1_KEYS)
            if "rate(" in concrete or not needs_uuid1:
                # Each has data once scraped (a rate: after two scrapes of its counter).
                wait_for(f"data for {expr}", lambda c=concrete: prom.query(c))


def test_page_in_headless_chromium_shows_every_function(sqlite_queue, tmp_path):
    daemon = sqlite_queue.gearmand()
    submit(daemon.port, [*jobs(), JobSpec('odd "name" <b>', "o1", b"x", priority=0)])
    expected = priority_status(daemon.port)
    store = QueueStore(sqlite_queue.url)
    with serving([QueueSource("web", store, daemon.address)], min_interval=0.5) as server:
        hits = [0]
        page = server.exporter.page

        def counted() -> str:
            hits[0] += 1
            return page()

        server.exporter.page = counted  # type: ignore[method-assign]
        server.exporter.page_refresh = 1
        # The virtual time budget must stay under the refresh: a reload restarts it.
        dom = chromium(server.url, tmp_path, "--dump-dom", budget_ms=500)
        table = page_table(dom)
        rows = table.queues["web"]
        got = {f: (r["high"], r["normal"], r["low"]) for f, r in rows.items() if f != "TOTAL"}
        assert got == expected
        assert rows["mail"]["scheduled"] == 1 and rows["mail"]["due"] == 3
        assert rows["TOTAL"]["total"] == sum(map(sum, expected.values()))
        assert table.meta_refresh == "1"
        assert (table.scripts, table.external) == (0, [])  # works offline, no framework
        assert "<b>" not in dom  # the odd function name was escaped, not parsed as markup
        # Left open, the page reloads itself (each reload is a request for /).
        hits[0] = 0
        with chromium_open(server.url, tmp_path):
            wait_for("the page to reload itself twice", lambda: hits[0] >= 3)

        shot = tmp_path / "page.png"
        chromium(
            server.url,
            tmp_path,
            f"--screenshot={shot}",
            "--window-size=1200,700",
            "--hide-scrollbars",
            budget_ms=500,
        )
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
        assert http_get(server.url)[0] == 200
