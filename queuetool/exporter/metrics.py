"""Figures as Prometheus metric families, through the official client library.

The names follow Prometheus conventions (base units, `_seconds`, `_bytes`, `_total`
only on counters) and are the same in the exporter and in `queuetool report
--format prometheus`. Every sample carries a `queue` label, so several queues
share one Prometheus; the table's figures also carry `function` and `priority`.
`gearman_queue_*` is what the queue holds, `gearmand_*` what its daemon says (apart
from the existing gearman exporter's `gearman_*` names), `queuetool_exporter_*`
the exporter itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest

from ..table.report import Report
from .cache import FiguresCache
from .figures import Cell, Figures, report_cells

CELL = ("queue", "function", "priority")
# (name, help, value of a cell or None when not known: no sample then). Oldest age has
# samples only where keys are UUIDv1; blocked only from the table, before gearmand 2.0.0.
TABLE_METRICS = (
    (
        "gearman_queue_jobs",
        "Jobs in gearmand's persistent queue (the daemon's own counts when "
        'gearman_queue_info has source="daemon").',
        lambda c: c.jobs,
    ),
    (
        "gearman_queue_scheduled_jobs",
        "Queued jobs whose when_to_run is in the future.",
        lambda c: c.scheduled,
    ),
    (
        "gearman_queue_due_jobs",
        "Queued jobs that may run now (when_to_run passed or 0).",
        lambda c: c.due,
    ),
    (
        "gearman_queue_payload_bytes",
        "Payload bytes of queued jobs.",
        lambda c: c.payload_bytes,
    ),
    (
        "gearman_queue_blocked_jobs",
        "Due jobs that gearmand will not hand out yet (from the scheduling report).",
        lambda c: c.blocked,
    ),
    (
        "gearman_queue_oldest_job_age_seconds",
        "Age of the oldest queued job, where its unique key tells its submission time.",
        lambda c: c.oldest_age_seconds,
    ),
)
ERROR_SOURCES = ("database", "daemon", "exporter")


def queue_families(figures: Figures) -> Iterator[Metric]:
    """What the queue holds: up, where the figures come from, and the per-cell gauges."""
    q = figures.queue
    up = GaugeMetricFamily(
        "gearman_queue_up",
        "1 when the queue's figures could be read (its table, or its daemon's counts).",
        labels=["queue"],
    )
    up.add_metric([q], 1 if figures.queue_up else 0)
    yield up
    info = InfoMetricFamily(
        "gearman_queue",
        "Where the queue's figures come from: source is table, daemon "
        "(a --store-queue-on-shutdown daemon, whose table is empty while it runs) or none.",
        labels=["queue"],
    )
    info.add_metric(
        [q],
        {
            "backend": figures.backend,
            "table": figures.table,
            "source": figures.source,
            "store_queue_on_shutdown": str(figures.store_queue_on_shutdown).lower(),
        },
    )
    yield info
    yield from cell_families(q, figures.cells)


def cell_families(queue: str, cells: Sequence[Cell]) -> Iterator[Metric]:
    """The table's `gearman_queue_*` families: one sample per function and priority."""
    for name, help_text, value in TABLE_METRICS:
        family = GaugeMetricFamily(name, help_text, labels=list(CELL))
        for cell in cells:
            v = value(cell)
            if v is not None:
                family.add_metric([queue, cell.function, cell.priority], v)
        yield family


def daemon_families(figures: Figures) -> Iterator[Metric]:
    """What the queue's gearmand says; nothing when no admin address is known."""
    if figures.daemon_up is None:
        return
    q = figures.queue
    up = GaugeMetricFamily(
        "gearmand_up", "1 when the queue's gearmand answered its admin protocol.", labels=["queue"]
    )
    up.add_metric([q], 1 if figures.daemon_up else 0)
    yield up
    d = figures.daemon
    version = InfoMetricFamily("gearmand_version", "gearmand's version.", labels=["queue"])
    jobs = GaugeMetricFamily(
        "gearmand_jobs",
        "Jobs waiting in gearmand's memory per priority (prioritystatus; running jobs "
        "not counted).",
        labels=list(CELL),
    )
    running = GaugeMetricFamily(
        "gearmand_running_jobs",
        "Jobs running on a worker now (status).",
        labels=["queue", "function"],
    )
    workers = GaugeMetricFamily(
        "gearmand_workers",
        "Workers registered for the function (status).",
        labels=["queue", "function"],
    )
    if d is not None:
        version.add_metric([q], {"version": d.version})
        for p in d.priorities:
            for prio, count in zip(("high", "normal", "low"), p.counts, strict=True):
                jobs.add_metric([q, p.function, prio], count)
        for s in d.status:
            running.add_metric([q, s.function], s.running)
            workers.add_metric([q, s.function], s.workers)
    yield from (version, jobs, running, workers)


def exporter_families(caches: Iterable[tuple[FiguresCache, Figures]]) -> Iterator[Metric]:
    """The exporter's own figures per queue: scan time, age, scans, errors."""
    duration = GaugeMetricFamily(
        "queuetool_exporter_scrape_duration_seconds",
        "Seconds the last collection of the queue's figures took (database and daemon).",
        labels=["queue"],
    )
    age = GaugeMetricFamily(
        "queuetool_exporter_figures_age_seconds",
        "Seconds since the figures served now were read (they are cached for the "
        "minimum interval).",
        labels=["queue"],
    )
    scans = CounterMetricFamily(
        "queuetool_exporter_scans", "Collections of the queue's figures.", labels=["queue"]
    )
    errors = CounterMetricFamily(
        "queuetool_exporter_errors",
        "Collections in which the database, the daemon or the exporter failed.",
        labels=["queue", "source"],
    )
    now = time.time()
    for cache, figures in caches:
        duration.add_metric([cache.name], figures.duration)
        age.add_metric([cache.name], max(0.0, now - figures.taken_at))
        scans.add_metric([cache.name], cache.scans)
        for source in ERROR_SOURCES:
            errors.add_metric([cache.name, source], cache.errors[source])
    yield from (duration, age, scans, errors)


class QueueCollector:
    """A prometheus_client collector over the exporter's caches (one per queue)."""

    def __init__(self, caches: Sequence[FiguresCache]) -> None:
        self.caches = caches

    def collect(self) -> Iterator[Metric]:
        current = [(cache, cache.get()) for cache in self.caches]
        families: dict[str, Metric] = {}
        # One family per name, whatever the number of queues: merge their samples.
        for _cache, figures in current:
            for family in (*queue_families(figures), *daemon_families(figures)):
                if family.name in families:
                    families[family.name].samples.extend(family.samples)
                else:
                    families[family.name] = family
        yield from families.values()
        yield from exporter_families(current)


def registry_for(caches: Sequence[FiguresCache], process: bool = True) -> CollectorRegistry:
    """A registry with the queue collector (and the process's own memory/CPU metrics)."""
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(caches))
    if process:
        ProcessCollector(registry=registry)
    return registry


class _Static:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def report_exposition(
    rep: Report, queue: str, backend: str, table: str, blocking: bool = True
) -> str:
    """`report --format prometheus`: the exporter's table metrics for one report
    (`blocking`: it counted the jobs gearmand before 2.0.0 blocks)."""
    return exposition(report_cells(rep, blocking), queue, backend, table, "table", rep.now)


def exposition(
    cells: list[Cell], queue: str, backend: str, table: str, source: str, taken_at: float
) -> str:
    """The exporter's queue metrics for these cells, as Prometheus text. `source` "daemon":
    a --store-queue-on-shutdown daemon's own counts (its table is not its queue)."""
    figures = Figures(
        queue=queue,
        backend=backend,
        table=table,
        source=source,
        store_queue_on_shutdown=source == "daemon",
        cells=cells,
        queue_up=True,
        daemon=None,
        daemon_up=None,
        taken_at=taken_at,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(list(queue_families(figures))))
    return generate_latest(registry).decode()
