"""Figures kept for a minimum interval, one scan at a time.

A scan of a 1M-job table takes seconds; Prometheus (and every open page) asks every
few seconds. So a scrape within `min_interval` of the last scan gets the same
figures, and a scrape that arrives while a scan runs gets the previous figures
instead of starting a second scan (only the very first scrape waits for one).
That first scan leaves out the oldest job's age, the one column that costs more than
counting (a string per row, table/uuid1.py): the first scrape after a start costs
only the counting, and the age comes with every later scan.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from .figures import Figures, QueueSource, collect

log = logging.getLogger("queuetool.exporter")


class FiguresCache:
    """The latest figures of one queue, with counters of scans and errors."""

    def __init__(
        self,
        source: QueueSource,
        min_interval: float,
        collector: Callable[..., Figures] = collect,
    ) -> None:
        self.source = source
        self.min_interval = min_interval
        self._collect = collector
        self._scan_lock = threading.Lock()
        self._figures: Figures | None = None
        self._finished = 0.0  # time.monotonic() when the last scan ended
        self.scans = 0
        self.errors: Counter[str] = Counter()  # database / daemon / exporter -> count

    @property
    def name(self) -> str:
        return self.source.name

    def get(self) -> Figures:
        """Fresh-enough figures: cached, the previous ones while a scan runs, or a new scan."""
        figures = self._figures
        if figures is not None and not self._stale():
            return figures
        # With figures to show, never wait for (or start) a second scan.
        if not self._scan_lock.acquire(blocking=figures is None):
            assert figures is not None
            return figures
        try:
            if self._figures is None or self._stale():  # another thread may have scanned
                self._figures = self._scan()
            return self._figures
        finally:
            self._scan_lock.release()

    def peek(self) -> Figures | None:
        """The figures held now, without scanning."""
        return self._figures

    def _stale(self) -> bool:
        return time.monotonic() - self._finished >= self.min_interval

    def _scan(self) -> Figures:
        try:
            figures = self._collect(self.source, ages=self.scans > 0)
        except Exception as exc:
            # collect() records database and daemon failures itself; anything else is a
            # bug, and a bug must cost one scrape's figures, not the exporter.
            log.exception("queue %s: collecting failed", self.name)
            figures = Figures(
                queue=self.name,
                backend=self.source.store.backend,
                table=self.source.store.table_name,
                source="none",
                store_queue_on_shutdown=False,
                cells=[],
                queue_up=False,
                daemon=None,
                daemon_up=None if not self.source.gearmand else False,
                errors=[("exporter", f"{type(exc).__name__}: {exc}")],
                taken_at=time.time(),
            )
        self.scans += 1
        for kind, message in figures.errors:
            self.errors[kind] += 1
            log.warning("queue %s: %s: %s", self.name, kind, message)
        self._finished = time.monotonic()
        return figures
