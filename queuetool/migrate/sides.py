"""Naming the two sides of a migration: a URL, a `[queues.NAME]` of the config, or the
words `sqlite` / `mysql` (so an operator with a config runs `queuetool migrate sqlite
mysql`)."""

from __future__ import annotations

from ..config import Config
from ..errors import UsageError
from ..table.dialects import DIALECTS
from ..table.store import QueueStore


def resolve_side(
    text: str,
    config: Config,
    *,
    given: dict[str, str | None] | None = None,
    table: str | None = None,
) -> QueueStore:
    """A side given as a URL, a `[queues.NAME]` from the config, or a backend's name
    (`sqlite` / `mysql`); `given` maps a backend's name to its queue from the command line
    (the dialect's SIDE_OPTION)."""
    entry: dict | None = None
    if text in DIALECTS:
        dialect = DIALECTS[text]
        explicit = (given or {}).get(text)
        if explicit:
            return QueueStore(dialect.side_url(explicit), table or None)
        matches = {
            name: q
            for name, q in config.queues().items()
            if isinstance(q, dict) and str(q.get("url", "")).startswith(text)
        }
        option = dialect.SIDE_OPTION
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
        return QueueStore(str(entry["url"]), table or entry.get("table") or None)
    if "://" in text:
        return QueueStore(text, table or None)
    words = "/".join(DIALECTS)
    raise UsageError(f"{text!r} is not a queue URL, a [queues.NAME] in the config, or {words}")
