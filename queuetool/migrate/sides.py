"""Naming the two sides of a migration: a URL, a `[queues.NAME]` of the config, or the
words `sqlite` / `mysql` (so an operator with a config runs `queuetool migrate sqlite
mysql`)."""

from __future__ import annotations

from pathlib import Path

from ..config import DEFAULT_TABLE, Config
from ..errors import UsageError
from ..table.store import QueueStore


def resolve_side(
    text: str,
    config: Config,
    *,
    sqlite_db: str | None = None,
    mysql_url: str | None = None,
    table: str | None = None,
) -> QueueStore:
    """A side given as a URL, a `[queues.NAME]` from the config, or `sqlite` / `mysql`."""
    entry: dict | None = None
    if text in ("sqlite", "mysql"):
        explicit = sqlite_db if text == "sqlite" else mysql_url
        if explicit:
            url = f"sqlite:///{Path(explicit).resolve()}" if text == "sqlite" else explicit
            return QueueStore(url, table or DEFAULT_TABLE)
        matches = {
            name: q
            for name, q in config.queues().items()
            if isinstance(q, dict) and str(q.get("url", "")).startswith(text)
        }
        option = "--sqlite-db PATH" if text == "sqlite" else "--mysql-url URL"
        if not matches:
            raise UsageError(
                f"no {text} queue named: give {option} or a [queues.NAME] in the config"
            )
        if len(matches) > 1:
            raise UsageError(
                f"several {text} queues in the config ({', '.join(sorted(matches))}): name one"
            )
        entry = next(iter(matches.values()))
    else:
        entry = config.queue(text)
    if entry is not None:
        if not entry.get("url"):
            raise UsageError(f"[queues.{text}] in {config.path} has no url")
        return QueueStore(str(entry["url"]), table or entry.get("table") or DEFAULT_TABLE)
    if "://" in text:
        return QueueStore(text, table or DEFAULT_TABLE)
    raise UsageError(f"{text!r} is not a queue URL, a [queues.NAME] in the config, or sqlite/mysql")
