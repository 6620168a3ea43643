"""gearmand's admin text protocol, and one binary-protocol call (waking workers).

The admin protocol shares the job port: a line in, a line back (`OK ...` or
`ERR CODE message+with+plus+signs`), or for listings lines ending with a `.` line.
Every socket operation has a timeout, and every failure becomes one of the
`DaemonUnreachable` errors, so a caller can tell "down" (refused) from "busy
replaying" (timed out) from "that is not a gearmand" (an answer we cannot parse).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from types import TracebackType

from ..errors import (
    AdminCommandError,
    DaemonRefused,
    DaemonTimeout,
    NotGearmand,
    UsageError,
)

DEFAULT_PORT = 4730
DEFAULT_TIMEOUT = 5.0
_MAX_ANSWER = 256 * 1024 * 1024  # a `show jobs` of a few million jobs, not more


@dataclass(frozen=True)
class Address:
    """Where gearmand listens: host and port."""

    host: str
    port: int = DEFAULT_PORT

    @classmethod
    def parse(
        cls, text: str | Address, default_port: int = DEFAULT_PORT, what: str = "gearmand address"
    ) -> Address:
        """`HOST:PORT`, `HOST`, `:PORT` or `[IPv6]:PORT`; the host defaults to 127.0.0.1.
        `what` names the address in an error."""
        if isinstance(text, Address):
            return text
        text = text.strip()
        host, port = text, ""
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest.lstrip(":")
        elif text.count(":") == 1:
            host, port = text.split(":")
        try:
            number = int(port) if port else default_port
        except ValueError:
            raise UsageError(f"not a {what} (HOST:PORT): {text!r}") from None
        if not 0 < number < 65536:
            raise UsageError(f"port out of range in {what} {text!r}")
        try:
            # As the connection will: a host name goes through the idna codec, which
            # refuses an empty label (`a..b`), one over 63 characters, or a bad character.
            host.encode("idna")
        except UnicodeError:
            raise UsageError(f"invalid host {host!r} in {what} {text!r}") from None
        return cls(host or "127.0.0.1", number)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class FunctionStatus:
    """One line of `status`: jobs queued in total (running included), running, workers."""

    function: str
    total: int
    running: int
    workers: int


@dataclass(frozen=True)
class PriorityStatus:
    """One line of `prioritystatus`: jobs waiting per priority (running ones not counted)."""

    function: str
    high: int
    normal: int
    low: int
    workers: int

    @property
    def counts(self) -> tuple[int, int, int]:
        return (self.high, self.normal, self.low)


@dataclass(frozen=True)
class WorkerInfo:
    """One line of `workers`: a connection and the functions it can do."""

    fd: int
    ip: str
    client_id: str
    functions: tuple[str, ...]


@dataclass(frozen=True)
class JobInfo:
    """One line of `show jobs`: a job the daemon holds in memory."""

    handle: str
    retries: int
    ignored: bool
    queued: bool  # gearmand's job_queued flag: stays 1 while a worker runs the job


class AdminClient:
    """One connection to gearmand's admin protocol; use as a context manager.

    The connection opens on the first command, so constructing a client never fails.
    """

    def __init__(self, address: str | Address, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.address = Address.parse(address)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = b""

    # -- raw protocol ------------------------------------------------------------

    def _connect(self) -> socket.socket:
        if self._sock is None:
            self._sock = open_socket(self.address, self.timeout)
        return self._sock

    def _readline(self, command: str) -> str:
        sock = self._connect()
        while b"\n" not in self._buffer:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                self.close()
                raise DaemonTimeout(
                    f"gearmand at {self.address} accepted the connection but did not answer "
                    f"{command!r} within {self.timeout:g}s (it may still be replaying its queue)"
                ) from None
            except OSError as exc:
                self.close()
                raise DaemonRefused(f"gearmand at {self.address}: {exc.strerror or exc}") from exc
            if not chunk:
                self.close()
                raise NotGearmand(
                    f"{self.address} closed the connection without answering {command!r}: "
                    "is it a gearmand?"
                )
            self._buffer += chunk
            if len(self._buffer) > _MAX_ANSWER:
                self.close()
                raise NotGearmand(f"{self.address} sent an endless answer to {command!r}")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def _send(self, command: str) -> None:
        if "\n" in command or "\r" in command:
            raise UsageError(f"an admin command is one line: {command!r}")
        sock = self._connect()
        try:
            sock.sendall(command.encode() + b"\n")
        except OSError as exc:
            self.close()
            raise DaemonRefused(f"gearmand at {self.address}: {exc.strerror or exc}") from exc

    def command(self, command: str) -> str:
        """Send a one-line command; return the text after `OK ` (or the whole line)."""
        self._send(command)
        line = self._readline(command)
        _raise_if_error(command, line)
        if line == "OK":
            return ""
        if line.startswith("OK "):
            return line[3:]
        raise NotGearmand(f"{self.address} answered {command!r} with {line[:60]!r}: not a gearmand")

    def listing(self, command: str) -> list[str]:
        """Send a command whose answer is lines ending with a `.` line."""
        self._send(command)
        lines: list[str] = []
        while True:
            line = self._readline(command)
            if line == ".":
                return lines
            if not lines:
                _raise_if_error(command, line)
            lines.append(line)

    # -- commands ----------------------------------------------------------------

    def status(self) -> list[FunctionStatus]:
        return [
            FunctionStatus(*_fields(self, "status", line, 3)) for line in self.listing("status")
        ]

    def priority_status(self) -> list[PriorityStatus]:
        return [
            PriorityStatus(*_fields(self, "prioritystatus", line, 4))
            for line in self.listing("prioritystatus")
        ]

    def workers(self) -> list[WorkerInfo]:
        result = []
        for line in self.listing("workers"):
            head, _, functions = line.partition(" :")
            parts = head.split(" ", 2)
            if len(parts) != 3 or not parts[0].lstrip("-").isdigit():
                raise NotGearmand(f"{self.address}: unexpected `workers` line {line[:60]!r}")
            fd, ip, client_id = parts
            result.append(WorkerInfo(int(fd), ip, client_id, tuple(functions.split())))
        return result

    def show_jobs(self) -> list[JobInfo]:
        result = []
        for line in self.listing("show jobs"):
            parts = line.rsplit("\t", 3)
            if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
                raise NotGearmand(f"{self.address}: unexpected `show jobs` line {line[:60]!r}")
            result.append(JobInfo(parts[0], int(parts[1]), parts[2] != "0", parts[3] != "0"))
        return result

    def show_unique_jobs(self) -> list[str]:
        return self.listing("show unique jobs")

    def getpid(self) -> int:
        answer = self.command("getpid")
        if not answer.strip().isdigit():
            raise NotGearmand(f"{self.address} answered getpid with {answer[:60]!r}")
        return int(answer)

    def version(self) -> str:
        return self.command("version").strip()

    def cancel_job(self, handle: str) -> None:
        """Cancel a queued background job (`ERR UNKNOWN_JOB` when there is none)."""
        if not handle or any(c.isspace() for c in handle):
            raise UsageError(f"not a job handle: {handle!r}")
        self.command(f"cancel job {handle}")


def open_socket(address: Address, timeout: float) -> socket.socket:
    """A connected socket, or DaemonRefused / DaemonTimeout."""
    try:
        return socket.create_connection((address.host, address.port), timeout=timeout)
    except TimeoutError:
        raise DaemonTimeout(f"gearmand at {address}: no connection within {timeout:g}s") from None
    except ConnectionRefusedError:
        raise DaemonRefused(f"gearmand at {address}: connection refused (not running?)") from None
    except OSError as exc:
        raise DaemonRefused(f"gearmand at {address}: {exc.strerror or exc}") from exc


def _raise_if_error(command: str, line: str) -> None:
    if line.startswith("ERR"):
        parts = line.split(" ", 2)
        code = parts[1] if len(parts) > 1 else "UNKNOWN"
        message = parts[2].replace("+", " ") if len(parts) > 2 else ""
        raise AdminCommandError(command, code, message)


def _fields(client: AdminClient, command: str, line: str, numbers: int) -> list:
    # Split from the right: the function name is the one field that may hold a tab.
    parts = line.rsplit("\t", numbers)
    if len(parts) != numbers + 1 or not all(p.isdigit() for p in parts[1:]):
        raise NotGearmand(f"{client.address}: unexpected `{command}` line {line[:60]!r}")
    return [parts[0], *(int(p) for p in parts[1:])]


def answers(address: str | Address, timeout: float = 1.0) -> int | None:
    """The daemon's pid if a gearmand answers `getpid` at the address, else None."""
    try:
        with AdminClient(address, timeout) as client:
            return client.getpid()
    except (DaemonRefused, DaemonTimeout, NotGearmand, AdminCommandError):
        return None


def version_tuple(version: str) -> tuple[int, ...]:
    """`1.1.20+ds` -> (1, 1, 20); unparseable parts count as 0."""
    numbers = []
    for part in version.split("+")[0].split("-")[0].split("."):
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers)


# -- binary protocol: the few packets `wake` sends as a worker (daemon/wake.py) ----------

_REQ = b"\0REQ"
_RES = b"\0RES"


def packet(kind: int, body: bytes = b"") -> bytes:
    """One request packet of gearman's binary protocol."""
    return _REQ + struct.pack(">II", kind, len(body)) + body


def read_packet(sock: socket.socket, address: Address) -> tuple[int, bytes]:
    """One response packet: (type, body); NotGearmand when it is not one."""
    header = _read_exact(sock, 12, address)
    magic, (kind, size) = header[:4], struct.unpack(">II", header[4:])
    if magic != _RES or size > _MAX_ANSWER:
        raise NotGearmand(f"{address} does not speak gearman's binary protocol")
    return kind, _read_exact(sock, size, address)


def _read_exact(sock: socket.socket, size: int, address: Address) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise NotGearmand(f"{address} closed the connection mid-packet")
        buf += chunk
    return buf
