"""Settings: where the queue is, how to reach its daemon, where snapshots go.

Precedence, highest first: command-line option, environment variable, config file,
discovery from a running gearmand (see `discover`), built-in default. Every value
remembers where it came from so `queuetool status` can say so.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_TABLE = "gearman_queue"
DEFAULT_KEEP = 20
CONFIG_SEARCH = (Path("queuetool.toml"), Path("/etc/queuetool.toml"))
# The TOML types a key may hold, and how an error names them.
STRING = "a string"
INTEGER = "an integer"
NUMBER = "a number"
BOOLEAN = "true or false"
# Every key the file may hold, with its type. Anything else is refused: a misspelt key
# (`tabel`, `[snapshot]`) would otherwise be ignored and the default used without a
# word, and a value of another type (`address = 4730`) would crash where it is used.
SECTIONS: dict[str, dict[str, str]] = {
    "queue": {"url": STRING, "table": STRING},
    "gearmand": {"address": STRING, "stop": STRING, "start": STRING, "state_dir": STRING},
    "snapshots": {"dir": STRING, "keep": INTEGER},
    "exporter": {"listen": STRING, "min_interval": NUMBER},
}
# each [queues.NAME]: the queue, and for the exporter its daemon
NAMED_QUEUE_KEYS: dict[str, str] = {
    "url": STRING,
    "table": STRING,
    "gearmand": STRING,
    "store_queue_on_shutdown": BOOLEAN,
}


def default_snapshot_dir() -> Path:
    """The user's state directory (XDG), as an operator expects for data a tool keeps."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "queuetool" / "snapshots"


@dataclass
class Setting:
    """A setting's value and where it came from (`status` shows both)."""

    value: Any
    source: str  # "option", "env QUEUETOOL_QUEUE", "config /etc/queuetool.toml", "default", ...


@dataclass
class Config:
    """The parsed config file (empty when there is none)."""

    path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def get(self, section: str, key: str, default: Any = None) -> Any:
        value = self.data.get(section, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: [{section}] must be a table")
        return value.get(key, default)

    @property
    def source(self) -> str:
        return f"config {self.path}"

    def queue(self, name: str) -> dict[str, Any] | None:
        """A named queue, `[queues.NAME]`, or None."""
        queues = self.data.get("queues", {})
        entry = queues.get(name) if isinstance(queues, dict) else None
        if entry is not None and not isinstance(entry, dict):
            raise ConfigError(f"{self.path}: [queues.{name}] must be a table")
        return entry

    def queues(self) -> dict[str, dict[str, Any]]:
        queues = self.data.get("queues", {})
        return queues if isinstance(queues, dict) else {}


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the config file: `path` if given (it must exist), else the first of the search path."""
    if path is not None:
        candidate = Path(path)
        if not candidate.is_file():
            raise ConfigError(f"config file not found: {candidate}")
        return _read(candidate)
    for candidate in CONFIG_SEARCH:
        if candidate.is_file():
            return _read(candidate)
    return Config()


def _read(path: Path) -> Config:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text, as TOML must be "
            f"(byte {exc.start}: {exc.reason})"
        ) from exc
    _check_keys(path, data)
    return Config(path=path, data=data)


def _check_keys(path: Path, data: dict[str, Any]) -> None:
    """ConfigError naming the file and the first key queuetool does not know."""
    for section, value in data.items():
        if section != "queues" and section not in SECTIONS:
            raise ConfigError(f"{path}: unknown key [{section}]")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        if section == "queues":
            for name, entry in value.items():
                if not isinstance(entry, dict):
                    raise ConfigError(f"{path}: [queues.{name}] must be a table")
                _check_section(path, f"queues.{name}", entry, NAMED_QUEUE_KEYS)
        else:
            _check_section(path, section, value, SECTIONS[section])


def _check_section(path: Path, section: str, value: dict[str, Any], known: dict[str, str]) -> None:
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} in [{section}]")
    for key, wanted in known.items():
        if key in value and not _is(value[key], wanted):
            raise ConfigError(
                f"{path}: {section}.{key} must be {wanted}, not {_toml_type(value[key])}"
            )


def _is(value: Any, wanted: str) -> bool:
    # bool is an int in Python, never in TOML: `keep = true` is not a number
    if wanted == STRING:
        return isinstance(value, str)
    if wanted == BOOLEAN:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if wanted == INTEGER:
        return isinstance(value, int)
    return isinstance(value, int | float)


def _toml_type(value: Any) -> str:
    """What the file holds, named as TOML does; never the value (a url may hold a password)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return STRING
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"
