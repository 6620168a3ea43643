"""PLAN.toml: several edits in one file, for `queuetool window` (one snapshot, one
transaction and, when gearmand runs, one stop/start)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..priority import Priority
from ..table.filters import JobFilter
from ..timeparse import parse_duration, parse_time
from ..timeparse import when as parse_when
from .kinds import Edit, Purge, Repair, Reprioritise, Reschedule

FILTER_KEYS = {"function", "unique", "priority", "scheduled", "due", "run_after", "run_before"}
ACTION_KEYS = {
    "reprioritise": {"to", "all"},
    "reschedule": {"at", "in", "now", "spread", "all"},
    "purge": {"all", "export"},
    "repair": set(),
}


def load_plan(path: Path) -> list[Edit]:
    """Edits from a plan file: `[[edit]]` tables, applied in order in one transaction.

    Each has `action` (reprioritise, reschedule, purge, repair), the filter keys of the
    command line (function, unique, priority: lists or strings; scheduled/due: true;
    run_after, run_before: TIME) and the action's own keys (to; at/in/now/spread;
    export). An edit without a filter needs `all = true` (a repair needs neither: it
    touches only rows gearmand cannot replay). Any other key is an error: a misspelt
    one (`[[edits]]`, `dry_run = true`) must not leave the plan to run as it stands.
    """
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read plan {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"plan {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"edit"})
    if unknown:
        raise UsageError(
            f"plan {path}: unknown key {', '.join(unknown)} (a plan holds only [[edit]] tables)"
        )
    entries = data.get("edit")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"plan {path} has no [[edit]] tables")
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise UsageError(f"plan {path}, edit {i}: each edit must be an [[edit]] table")
    return [_edit(path, i, entry) for i, entry in enumerate(entries, 1)]


def _edit(path: Path, number: int, entry: dict[str, Any]) -> Edit:
    where = f"plan {path}, edit {number}"
    action = str(entry.get("action", "")).replace("reprioritize", "reprioritise")
    if action not in ACTION_KEYS:
        raise UsageError(f"{where}: action must be one of {', '.join(ACTION_KEYS)}")
    unknown = set(entry) - FILTER_KEYS - ACTION_KEYS[action] - {"action"}
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("all", "now", "scheduled", "due"):
        # A string "false" must not mean true (`all = "false"` would purge every job).
        if key in entry and not isinstance(entry[key], bool):
            raise UsageError(f"{where}: {key} must be true or false, not {entry[key]!r}")
    job_filter = _filter(where, entry)
    all_jobs = bool(entry.get("all", False))
    if action != "repair" and job_filter.is_empty and not all_jobs:
        does = "delete" if action == "purge" else "change"
        raise UsageError(
            f"{where}: {action} without a filter would {does} every job: give a filter, "
            "or all = true if that is what you mean"
        )
    if all_jobs and not job_filter.is_empty:
        raise UsageError(f"{where}: all = true means every job: do not combine it with a filter")
    if action == "reprioritise":
        if "to" not in entry:
            raise UsageError(f"{where}: reprioritise needs `to`")
        return Reprioritise(job_filter, Priority.parse(str(entry["to"])), all_jobs)
    if action == "reschedule":
        try:
            when = parse_when(
                str(entry["at"]) if "at" in entry else None,  # "" is refused, not dropped
                str(entry["in"]) if "in" in entry else None,
                bool(entry.get("now")),
                at_name=f"{where}: at",
                instead="now = true",
                exactly_one=f"{where}: reschedule needs exactly one of at, in, now",
            )
        except UsageError as exc:
            said = str(exc)
            raise UsageError(said if said.startswith(where) else f"{where}: {said}") from None
        spread = _parsed(where, entry, "spread", parse_duration) or 0
        return Reschedule(job_filter, when, spread, all_jobs)
    if action == "purge":
        export = Path(entry["export"]) if entry.get("export") else None
        return Purge(job_filter, all_jobs, export)
    return Repair(job_filter)


def _filter(where: str, entry: dict[str, Any]) -> JobFilter:
    def names(key: str) -> tuple[str, ...]:
        value = entry.get(key, ())
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
            raise UsageError(f"{where}: {key} must be a string or a list of strings")
        return tuple(values)

    if entry.get("scheduled") and entry.get("due"):
        raise UsageError(f"{where}: scheduled and due exclude each other")
    scheduled = True if entry.get("scheduled") else (False if entry.get("due") else None)
    return JobFilter(
        functions=names("function"),
        uniques=names("unique"),
        priorities=tuple(Priority.parse(p) for p in names("priority")),
        scheduled=scheduled,
        run_after=_parsed(where, entry, "run_after", parse_time),
        run_before=_parsed(where, entry, "run_before", parse_time),
    )


def _parsed(where: str, entry: dict[str, Any], key: str, parse: Callable[[str], int]) -> int | None:
    """A time or duration key; None when absent. An empty value is refused as the parser
    refuses it: dropped, run_before = "" (an unset variable in a template) would widen
    a purge to every job of the function."""
    if key not in entry:
        return None
    try:
        return parse(str(entry[key]))
    except UsageError as exc:
        raise UsageError(f"{where}: {key}: {exc}") from None
