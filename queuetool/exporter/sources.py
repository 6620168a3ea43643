"""Which queues the exporter watches: the config's `[queues.NAME]`, or one queue."""

from __future__ import annotations

from ..config import DEFAULT_TABLE, Config
from ..errors import ConfigError
from ..table.store import QueueStore
from .figures import QueueSource


def config_sources(config: Config) -> list[QueueSource]:
    """Every `[queues.NAME]` of the config (url, table, gearmand, store_queue_on_shutdown),
    labelled with its NAME."""
    sources = []
    for name, entry in sorted(config.queues().items()):
        where = f"{config.path}: [queues.{name}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        if not entry.get("url"):
            raise ConfigError(f"{where} has no url")
        # the loader checked each key's type (config.NAMED_QUEUE_KEYS)
        gearmand = entry.get("gearmand")
        sqos = entry.get("store_queue_on_shutdown")
        store = QueueStore(str(entry["url"]), str(entry.get("table") or DEFAULT_TABLE))
        sources.append(QueueSource(name, store, gearmand, sqos))
    return sources
