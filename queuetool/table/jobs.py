"""`jobs`: list the jobs a filter matches, streamed from the database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from ..priority import label
from ..timeparse import format_epoch
from .filters import JobFilter
from .store import QueueStore


@dataclass(frozen=True)
class Job:
    """One job as `jobs` lists it (its payload only when asked for)."""

    unique_key: str
    function_name: str
    priority: int | None
    when_to_run: int | None
    size: int
    data: bytes | None = None  # only when asked for


def select_jobs(store: QueueStore, job_filter: JobFilter, with_data: bool = False) -> sa.Select:
    """The SELECT behind `jobs` and every edit's sample, ordered the way gearmand serves."""
    t = store.table
    columns = [
        t.c.unique_key,
        t.c.function_name,
        t.c.priority,
        t.c.when_to_run,
        store.dialect.payload_length(t.c.data).label("size"),
    ]
    if with_data:
        columns.append(t.c.data)
    return (
        sa.select(*columns)
        .where(job_filter.where(t, store.dialect))
        .order_by(t.c.function_name, t.c.priority, t.c.when_to_run, t.c.unique_key)
    )


def list_jobs(
    store: QueueStore,
    job_filter: JobFilter | None = None,
    limit: int | None = 50,
    with_data: bool = False,
) -> Iterator[Job]:
    """Yield the matching jobs (at most `limit`; None for all), streamed."""
    query = select_jobs(store, job_filter or JobFilter(), with_data)
    if limit is not None:
        query = query.limit(limit)
    with store.connect() as conn:
        store.require_table(conn)
        result = conn.execute(query.execution_options(stream_results=True, yield_per=1000))
        for row in result:
            data = row.data if with_data else None
            if isinstance(data, str):  # a TEXT payload (a bad row); show it all the same
                data = data.encode()
            yield Job(
                row.unique_key,
                row.function_name,
                row.priority,
                row.when_to_run,
                int(row.size or 0),
                data,
            )


_ESCAPES = {ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def preview(data: bytes | None, width: int = 40) -> str:
    """A safe one-line view of a payload: printable ASCII as is, the rest escaped.

    A backslash is doubled, so the bytes `\\xff` and the byte 0xff look different.
    """
    if data is None:
        return ""
    shown = "".join(
        _ESCAPES.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in data[:width]
    )
    return shown + ("..." if len(data) > width else "")


JOB_COLUMNS = ["unique_key", "function", "priority", "when_to_run", "size"]  # job_record's keys


def job_record(job: Job, show_data: bool = False) -> dict[str, object]:
    """A job as an output row: priority as a word, time as ISO-8601."""
    record: dict[str, object] = {
        "unique_key": job.unique_key,
        "function": job.function_name,
        "priority": label(job.priority),
        "when_to_run": format_epoch(job.when_to_run),
        "size": job.size,
    }
    if show_data:
        record["data"] = preview(job.data)
    return record
