"""The long-running exporter: queue figures for Prometheus, and a page for a person.

`figures` collects what one queue holds (its table, its daemon), `cache` keeps a
collection for a minimum interval so a scrape of a large queue is not a full scan,
`metrics` turns figures into Prometheus metric families (the same names as
`queuetool report --format prometheus`), `page` renders the HTML page, and `server`
serves `/metrics`, `/healthz` and `/`.
"""

from __future__ import annotations

DEFAULT_PORT = 24730  # see the README: outside the exporters' 9100-9999 block, which is full
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
DEFAULT_MIN_INTERVAL = 15.0  # seconds between two scans of a queue
