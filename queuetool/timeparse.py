"""Times and durations as operators type them.

TIME: ISO-8601 (`2026-11-28T23:00`, `2026-11-28 23:00:00+01:00`, `...Z`; local time
when no zone is given), `@EPOCH`, or `now`. DURATION: `90s`, `15m`, `2h`, `1d`, `1w`,
or combinations like `1h30m`. A number without a unit is refused: `15` once moved 69
jobs 15 seconds ahead when 15 minutes were meant.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from .errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# ASCII digits only: \d and str.isdigit() also accept "²" or "١", which int() rejects
# or reads in ways an operator did not mean.
_DURATION = re.compile(r"([0-9]+)([smhdw])")
_SECONDS = re.compile(r"[0-9]+")
_EPOCH = re.compile(r"-?[0-9]+")
# The epochs an ISO-8601 time can name (years 1..9999): beyond them a value cannot be
# shown, and SQLite cannot even bind it (over 64 bits).
EPOCH_MIN = -62135596800
EPOCH_MAX = 253402300799


def parse_duration(text: str) -> int:
    """Seconds in a DURATION such as `90s`, `15m` or `1h30m`; every number needs a unit."""
    raw = text.strip().lower()
    if _SECONDS.fullmatch(raw):
        if int(raw) == 0:
            return 0  # zero in any unit (a plan's `spread = 0`)
        raise UsageError(
            f"a duration needs a unit: {text!r} (use e.g. {raw}s, {raw}m, {raw}h, {raw}d)"
        )
    if not raw or _DURATION.sub("", raw) != "":
        raise UsageError(f"not a duration: {text!r} (use e.g. 90s, 15m, 2h, 1d, 1h30m)")
    if "M" in text:  # often a month; read as a minute, 1M would reschedule by a minute
        raise UsageError(f"{text!r}: M is ambiguous (minutes are m; there is no month unit)")
    parts = _DURATION.findall(raw)
    units = [unit for _, unit in parts]
    if len(set(units)) != len(units):  # 15m15m: a typo more likely than 30 minutes
        raise UsageError(f"not a duration: {text!r} (each unit once, e.g. 1h30m)")
    return sum(int(n) * _UNITS[unit] for n, unit in parts)


def parse_time(text: str, now: float | None = None) -> int:
    """Unix seconds for a TIME; fractions are dropped (gearmand stores whole seconds)."""
    raw = text.strip()
    if raw.lower() == "now":
        return int(time.time() if now is None else now)
    if raw.startswith("@"):
        digits = raw[1:]
        if not _EPOCH.fullmatch(digits):
            raise UsageError(f"not an epoch time: {text!r} (use @SECONDS)")
        if not EPOCH_MIN <= int(digits) <= EPOCH_MAX:
            raise UsageError(f"time out of range: {text!r}")
        return int(digits)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(
            f"not a time: {text!r} (use ISO-8601 like 2026-11-28T23:00, @EPOCH or now)"
        ) from None
    # No zone given: the operator means their local time, which .timestamp() assumes.
    # Drop the fraction first: a float timestamp rounds 0.99999 s up into the next second.
    try:
        return int(moment.replace(microsecond=0).timestamp())
    except (OverflowError, OSError, ValueError):
        raise UsageError(f"time out of range: {text!r}") from None


def parse_start(text: str, name: str = "--at", instead: str = "--now") -> int:
    """A TIME for jobs to start at, which must not have passed: a past time would make
    them due at once, which `instead` (`--now`) says honestly. `now` itself is fine."""
    current = time.time()
    when = parse_time(text, now=current)
    if when < int(current):
        raise UsageError(
            f"{name} {text.strip()} has passed ({format_epoch(when)}): "
            f"{instead} makes the jobs due now"
        )
    return when


def when(
    at: str | None = None,
    in_: str | None = None,
    now: bool = False,
    *,
    at_name: str = "--at",
    instead: str = "--now",
    exactly_one: str = "give exactly one of --at TIME, --in DURATION, --now",
) -> int:
    """The when_to_run an operator means by exactly one of `at` (a TIME that has not
    passed), `in_` (a DURATION from now) or `now` (0: run at once).

    The command line and PLAN.toml spell the three differently: `at_name` and `instead`
    name them in the message for a past time, `exactly_one` is the message when not
    exactly one is given.
    """
    # An empty value is given (an unset "$TIME" in a script), and refused as a time.
    given = [
        name for name, value in (("at", at), ("in", in_), ("now", now or None)) if value is not None
    ]
    if len(given) != 1:
        raise UsageError(exactly_one)
    if at is not None:
        return parse_start(at, at_name, instead)
    if in_ is not None:
        return parse_time("now") + parse_duration(in_)
    return 0


def format_epoch(value: int | None) -> str:
    """when_to_run for people: ISO-8601 UTC, or `now` for 0/NULL (run at once)."""
    if not value:
        return "now"
    try:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"@{value}"
