"""What differs between the queue backends, one small module each, and the registry.

A dialect is a module (sqlite.py, mysql.py) that provides everything in `Dialect`;
the rest of queuetool asks `store.dialect` and never tests a backend's name. A new
backend is a module here (listed in `DIALECTS`), its DDL file in queuetool/sql/, and
a test-server fixture in tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import URL, Engine

from ...errors import UsageError
from . import mysql, sqlite


class Dialect(Protocol):
    """The interface every dialect module provides (see sqlite.py and mysql.py)."""

    NAME: str  # as in snapshots and `store.backend`
    URL_NAMES: tuple[str, ...]  # SQLAlchemy backend names of its URLs
    URL_EXAMPLE: str
    DDL_FILE: str  # gearmand's own CREATE TABLE, in queuetool/sql/
    GROUP_BY_SORTS: bool

    def normalise_url(self, url: URL) -> URL: ...

    def database_file(self, url: URL) -> Path | None: ...

    def create_engine(self, url: URL) -> Engine: ...


DIALECTS: dict[str, Dialect] = {d.NAME: d for d in (sqlite, mysql)}  # type: ignore[misc]


def dialect_for(name: str) -> Dialect:
    """The dialect called `name` (a snapshot's backend); a UsageError for any other."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise UsageError(
            f"unknown queue backend {name!r}: queuetool knows {', '.join(DIALECTS)}"
        ) from None


def dialect_for_url(url: URL) -> Dialect | None:
    """The dialect of a queue URL (by its backend name), None when queuetool has none."""
    backend = url.get_backend_name()
    return next((d for d in DIALECTS.values() if backend in d.URL_NAMES), None)


def url_examples() -> str:
    return " or ".join(d.URL_EXAMPLE for d in DIALECTS.values())
