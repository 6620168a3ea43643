"""`queuetool exporter`: serve the queue's figures to Prometheus and a page to a person."""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING

import click

from ..errors import ConfigError, UsageError
from ..exporter import DEFAULT_LISTEN, DEFAULT_MIN_INTERVAL
from .options import TEXT, AppContext, discovered, queue_options

if TYPE_CHECKING:
    from ..exporter.figures import QueueSource


@click.command("exporter")
@queue_options
@click.option(
    "--listen",
    type=TEXT,
    metavar="HOST:PORT",
    help=f"Where to serve /metrics, /healthz and the page at / [default: {DEFAULT_LISTEN}; "
    "`:PORT` for every interface].",
)
@click.option(
    "--min-interval",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help=f"Scan a queue at most this often; scrapes in between get the cached figures "
    f"[default: {DEFAULT_MIN_INTERVAL:g}].",
)
@click.option(
    "--name",
    type=TEXT,
    default="default",
    show_default=True,
    help="The `queue` label of a queue given by --queue (config queues use their NAME).",
)
def exporter_cmd(
    app: AppContext, listen: str | None, min_interval: float | None, name: str
) -> None:
    """Serve Prometheus metrics (/metrics), /healthz and a live page (/) for the queue.

    Watches every [queues.NAME] of the config (each labelled queue="NAME"), or the one
    queue named by --queue (or [queue] url, or the local gearmand). Runs until SIGTERM
    or Ctrl-C.

    \b
    Example:
      queuetool exporter --listen 127.0.0.1:24730 -q sqlite:////var/lib/gearman/queue.db
    """
    from ..exporter.server import Exporter, ExporterServer, listen_address

    config = app.config
    listen = listen or config.get("exporter", "listen") or DEFAULT_LISTEN
    if min_interval is None:
        # a number: the loader checked its type; a negative one is as wrong as --min-interval -1
        min_interval = float(config.get("exporter", "min_interval", DEFAULT_MIN_INTERVAL))
        if not min_interval >= 0:  # nan too: it would never scan again
            raise ConfigError(f"{config.path}: exporter.min_interval must be at least 0")
    sources = _sources(app, name)
    exporter = Exporter(sources, min_interval)
    server = ExporterServer(listen_address(str(listen)), exporter)
    logging.basicConfig(level=logging.INFO, format="queuetool exporter: %(message)s")
    click.echo(
        f"queuetool exporter: {len(sources)} queue(s) "
        f"({', '.join(s.name for s in sources)}) on {server.url} (/metrics, /healthz)",
        err=True,
    )
    # SIGTERM (systemd's stop) ends the loop cleanly: exit 0, not an interrupted run.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        server.server_close()
        exporter.close()


def _sources(app: AppContext, name: str) -> list[QueueSource]:
    from ..exporter.figures import QueueSource
    from ..exporter.sources import config_sources

    explicit = app.params.get("queue") is not None
    if not explicit and app.config.queues():
        return config_sources(app.config)
    queue = app.queue_setting()
    if queue.value is None:
        raise UsageError(
            "no queue given: use --queue URL, [queue] url or [queues.NAME] in the config, "
            "or run on a host where gearmand is running"
        )
    address = app.gearmand_address
    if address is None and queue.source.startswith("discovered"):
        info = discovered(app)
        address = str(info.options.address) if info is not None else None
    return [QueueSource(name, app.store, address)]


COMMANDS = [exporter_cmd]
