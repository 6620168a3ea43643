"""Real observers of the exporter for tests: a Prometheus server and headless Chromium.

Prometheus (Debian `prometheus`) runs in a temp dir on a free loopback port with a
scrape config pointing at the exporter, and is stopped by its own pid. Chromium
(Debian `chromium`) runs headless with a fresh profile for each call.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from servers import free_port, wait_gone

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def http_get(url: str, timeout: float = 10.0) -> tuple[int, str, str]:
    """(status, content type, body) of a GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll `probe` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            last = probe()
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Prometheus:
    workdir: Path
    target: str  # HOST:PORT of the exporter
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Prometheus:
        if not Path(PROMETHEUS).exists():
            raise RuntimeError("prometheus not found: apt-get install prometheus (make test does)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = self.workdir / "prometheus.yml"
        config.write_text(
            # 2 s: a loaded machine may take over 1 s for a scrape (the timeout may not
            # exceed the interval).
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n"
            "scrape_configs:\n  - job_name: queuetool\n"
            f"    static_configs:\n      - targets: ['{self.target}']\n"
        )
        log = (self.workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for("Prometheus ready", self._ready, timeout)
        except BaseException:
            self.stop()  # no server left behind by a start that failed
            raise
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.log_tail()}")
        return http_get(f"{self.url}/-/ready", timeout=2)[0] == 200

    def query(self, promql: str) -> list[dict]:
        """An instant query's result vector (raises on a query Prometheus refuses)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, _, body = http_get(url)
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"query {promql!r}: {status} {body[:300]}")
        return answer["data"]["result"]

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        wait_gone(self.proc.pid, 5)
        self.proc = None

    def log_tail(self) -> str:
        try:
            return (self.workdir / "prometheus.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def prometheus(workdir: Path, target: str) -> Iterator[Prometheus]:
    server = Prometheus(workdir, target).start()
    try:
        yield server
    finally:
        server.stop()


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _launch(workdir: Path, args: tuple[str, ...], url: str, **kw: Any) -> subprocess.Popen:
    if not Path(CHROMIUM).exists():
        raise RuntimeError("chromium not found: apt-get install chromium (make test does)")
    profile = workdir / f"chromium-profile-{time.monotonic_ns()}"
    # A session of its own: its renderer and zygote processes are stopped with it.
    return subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
        start_new_session=True,
        text=True,
        **kw,
    )


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def chromium(url: str, workdir: Path, *args: str, budget_ms: int = 2000) -> str:
    """Headless Chromium on `url` with a fresh profile, e.g. `--dump-dom` after the
    virtual time budget; returns its stdout."""
    proc = _launch(
        workdir,
        (f"--virtual-time-budget={budget_ms}", *args),
        url,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        _stop(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {err[-2000:]}")
    return out


@contextlib.contextmanager
def chromium_open(url: str, workdir: Path) -> Iterator[subprocess.Popen]:
    """Chromium keeping `url` open in real time (to see the page reload itself)."""
    proc = _launch(workdir, (), url, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        _stop(proc)


class PageTable(HTMLParser):
    """The page's rows: {queue: {function: {column class: count}}} from data-* attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.queues: dict[str, dict[str, dict[str, int]]] = {}
        self.meta_refresh: str | None = None
        self.external: list[str] = []  # src/href attributes: the page must have none
        self.scripts = 0
        self._queue: str | None = None
        self._row: dict[str, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if a.get(key):
                self.external.append(str(a[key]))
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            self.meta_refresh = a.get("content")
        if tag == "section" and a.get("data-queue") is not None:
            self._queue = str(a["data-queue"])
            self.queues[self._queue] = {}
        if tag == "tr" and a.get("data-function") is not None and self._queue is not None:
            self._row = self.queues[self._queue].setdefault(str(a["data-function"]), {})
        if tag == "td" and self._row is not None and a.get("data-count") is not None:
            column = str(a.get("class", "")).split()[-1]
            self._row[column] = int(str(a["data-count"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None


def page_table(html: str) -> PageTable:
    parser = PageTable()
    parser.feed(html)
    return parser
