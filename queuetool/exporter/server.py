"""The HTTP side: `/metrics` for Prometheus, `/healthz`, and the page at `/`.

A stdlib threading HTTP server: a slow scan of one queue never holds up another
request (the cache serves the previous figures while it runs).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..daemon.admin import Address
from ..errors import ConnectError
from . import DEFAULT_MIN_INTERVAL, DEFAULT_PORT
from .cache import FiguresCache
from .figures import QueueSource
from .metrics import registry_for
from .page import render_page

log = logging.getLogger("queuetool.exporter")
PAGE_REFRESH = 5  # seconds


class Exporter:
    """The caches of the queues it watches, and the registry Prometheus reads."""

    def __init__(
        self,
        sources: Sequence[QueueSource],
        min_interval: float = DEFAULT_MIN_INTERVAL,
        page_refresh: int = PAGE_REFRESH,
    ) -> None:
        self.caches = [FiguresCache(s, min_interval) for s in sources]
        self.registry = registry_for(self.caches)
        self.page_refresh = page_refresh

    def metrics(self) -> bytes:
        return generate_latest(self.registry)

    def page(self) -> str:
        return render_page([c.get() for c in self.caches], self.page_refresh)

    def close(self) -> None:
        for cache in self.caches:
            cache.source.store.close()


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        exporter = self.server.exporter
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, exporter.metrics())
        elif path == "/healthz":
            self._send(200, "text/plain; charset=utf-8", b"ok\n")
        elif path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", exporter.page().encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /, /metrics, /healthz\n")

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class ExporterServer(ThreadingHTTPServer):
    """The exporter's HTTP server: a thread per request, so a slow client blocks no
    scrape."""

    daemon_threads = True  # a hung client must not keep the process from exiting

    def __init__(self, address: Address, exporter: Exporter) -> None:
        self.exporter = exporter
        try:
            super().__init__((address.host, address.port), _Handler)
        except OSError as exc:
            raise ConnectError(f"cannot listen on {address}: {exc.strerror or exc}") from exc

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{Address(str(host), int(port))}/"

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hung up mid-answer is not worth a stack trace on stderr.
        log.debug("request from %s failed", client_address, exc_info=True)


def listen_address(text: str) -> Address:
    """`HOST:PORT`, `:PORT` (all interfaces) or `HOST` (the default port)."""
    what = "listen address"
    if text.startswith(":"):
        return Address("0.0.0.0", Address.parse(text, what=what).port)
    return Address.parse(text, default_port=DEFAULT_PORT, what=what)


def serve_in_thread(server: ExporterServer) -> threading.Thread:
    """Serve until `server.shutdown()` (for tests and benchmarks)."""
    thread = threading.Thread(target=server.serve_forever, name="exporter", daemon=True)
    thread.start()
    return thread
