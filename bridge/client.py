"""A blocking client for a running `msanii-osc`: one request, over real UDP OSC, answered on its own socket.

The client binds its own UDP port and registers it (`/msanii/register <port>`, docs/osc.md "Where replies go"),
so replies come back to this socket whatever `--reply-port` the server uses, and several clients (DAW scripts,
shells) can wait at once. The registration's answer doubles as the "is a server there?" check. While a job runs,
a silence longer than `timeout` is answered with a `/msanii/ping`: a server that misses `MISSED_PINGS` of them is
gone (a job that waits in the queue sends nothing until it starts, so silence alone proves nothing).

Only python-osc and the standard library: a DAW script pays no torch import for a request.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.wire import MalformedPacket, split_packet

# on_event(kind, value): ("accepted", jobs ahead) or ("progress", fraction 0..1)
EventHandler = Callable[[str, Any], None]

# Pings a silent server may miss, `timeout` apart, before it counts as gone: a server busy importing a task's
# code for its first request, on a loaded machine, can be deaf for a few seconds.
MISSED_PINGS = 3
RESEND_SECONDS = 1.0

STATUS_FIELDS = ("state", "queue_length", "model", "device", "packets", "malformed", "oversized", "rejected",
                 "workers", "busy_workers", "restarts")


class ClientError(Exception):
    """A request did not succeed; `str(err)` is one line for the user."""


class NoServer(ClientError):
    """Nothing answered at the server's address (not running, wrong port, or it stopped mid-job)."""


class RequestFailed(ClientError):
    """The server answered `/msanii/fail`; `reason` is its own words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Cancelled(RequestFailed):
    """The job was cancelled (by us on Ctrl-C, or by another client)."""


@dataclass(frozen=True)
class Done:
    job_id: str
    path: Path  # absolute, complete (the server renames it into place before replying)
    seconds: float
    seed: int  # -1 when the server reports none
    bpm: float = 0.0  # the tempo the clip follows; 0: none (or a server before this field)


def _encode(address: str, args: Sequence[Any]) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class MsaniiClient:
    """One socket to one server. Use as a context manager; `connect()` before requests (the `with` does it)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, timeout: float = 5.0) -> None:
        if not 1 <= port <= 65535:
            raise ValueError(f"port must be 1..65535, got {port}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.server = (socket.gethostbyname(host), port)
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A loopback server sees us on loopback; any other server must be able to reach the address we send from.
        local = "127.0.0.1" if ipaddress.ip_address(self.server[0]).is_loopback else "0.0.0.0"
        self.sock.bind((local, 0))
        self.port = self.sock.getsockname()[1]
        self._backlog: list[tuple[str, list]] = []

    # ---- plumbing ----
    def send(self, address: str, *args: Any) -> None:
        try:
            self.sock.sendto(_encode(address, args), self.server)
        except OSError as exc:  # e.g. no route to a remote host
            raise NoServer(f"cannot send to {self._where()}: {exc.strerror or exc}") from None

    def _receive(self, until: float) -> tuple[str, list] | None:
        """The next OSC message that arrives before `until` (time.monotonic()), or None."""
        if self._backlog:
            return self._backlog.pop(0)
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(min(left, 0.25))
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except ConnectionRefusedError:  # Linux reports the ICMP "port unreachable" of an earlier send
                continue
            try:
                messages = split_packet(data)
            except MalformedPacket:  # not OSC: nothing a server of ours would send
                continue
            if not messages:
                continue
            self._backlog.extend((m.address, list(m.params)) for m in messages[1:])
            first = messages[0]
            return first.address, list(first.params)

    def _where(self) -> str:
        return f"udp://{self.server[0]}:{self.server[1]}"

    def _await(self, match: Callable[[str, list], Any], what: str,
               resend: tuple[str, Sequence[Any]] | None = None) -> Any:
        """Wait up to `timeout` for a message for which `match` returns something other than None. An idempotent
        request given as `resend` is sent again every RESEND_SECONDS: UDP may drop a datagram on a loaded host."""
        start = time.monotonic()
        until, sent = start + self.timeout, start
        while True:
            message = self._receive(min(until, sent + RESEND_SECONDS) if resend else until)
            if message is not None:
                result = match(*message)
                if result is not None:
                    return result
                continue
            now = time.monotonic()
            if now >= until:
                break
            if resend and now >= sent + RESEND_SECONDS:
                self.send(resend[0], *resend[1])
                sent = now
        raise NoServer(f"no msanii-osc server answered at {self._where()} within {self.timeout:g} s ({what}); "
                       "is msanii-osc running on that port?")

    # ---- requests ----
    def connect(self) -> None:
        """Register this socket as our reply address; `NoServer` if nothing answers."""
        self.send("/msanii/register", self.port)

        def registered(address: str, args: list) -> Any:
            if address == "/msanii/registered":
                return True
            if address == "/msanii/fail" and args[:1] == ["/msanii/register"]:
                raise RequestFailed(str(args[1]) if len(args) > 1 else "registration refused")
            return None
        self._await(registered, "registering the reply port", resend=("/msanii/register", [self.port]))

    def status(self) -> dict[str, Any]:
        self.send("/msanii/status")
        args = self._await(lambda a, x: x if a == "/msanii/status" else None, "status", resend=("/msanii/status", []))
        return dict(zip(STATUS_FIELDS, args))

    def set(self, key: str, *values: Any) -> list:
        """Change a server-wide render setting; returns the applied value(s)."""
        self.send("/msanii/set", key, *values)

        def applied(address: str, args: list) -> Any:
            if address == "/msanii/set" and args[:1] == [key]:
                return args[1:]
            if address == "/msanii/fail" and args[:1] == ["/msanii/set"]:
                raise RequestFailed(f"set {key}: {args[1]}")
            return None
        return self._await(applied, f"set {key}", resend=("/msanii/set", [key, *values]))

    def cancel(self, job_id: str) -> None:
        """Cancel a queued or running job (any client's). A ping after the cancel is the barrier: the server
        answers in order, so a pong without a fail first means the cancel was taken."""
        self.send("/msanii/cancel", job_id)
        self.send("/msanii/ping", "cancel-barrier")

        def answer(address: str, args: list) -> Any:
            if address == "/msanii/fail" and args[:1] == [job_id]:
                raise RequestFailed(f"cancel {job_id}: {args[1]}")
            return True if address == "/msanii/pong" and args == ["cancel-barrier"] else None
        self._await(answer, "cancel")

    def request(self, address: str, job_id: str, args: Sequence[Any], on_event: EventHandler | None = None,
                deadline: float | None = None) -> Done:
        """Submit a job (`/msanii/<verb> <job_id> args...`) and block until its file is written.

        Ctrl-C (KeyboardInterrupt) sends `/msanii/cancel` and waits for the server to confirm, then raises
        `Cancelled`. `deadline` (seconds) bounds the whole job: past it the job is cancelled the same way.
        """
        self.send(address, job_id, *args)
        started = time.monotonic()
        try:
            return self._follow(job_id, on_event or (lambda kind, value: None), deadline, started)
        except KeyboardInterrupt:
            self._cancel_own(job_id)
            raise Cancelled("cancelled (Ctrl-C)") from None

    def _follow(self, job_id: str, on_event: EventHandler, deadline: float | None, started: float) -> Done:
        heard = time.monotonic()
        ping_sent: float | None = None
        missed = 0
        accepted = False
        while True:
            now = time.monotonic()
            if deadline is not None and now - started > deadline:
                self._cancel_own(job_id)
                raise Cancelled(f"cancelled: no result within --deadline {deadline:g} s")
            message = self._receive(now + 0.25)
            if message is None:
                now = time.monotonic()
                if ping_sent is not None and now - ping_sent > self.timeout:
                    missed, ping_sent = missed + 1, None
                    if missed >= MISSED_PINGS:
                        state = f"while job {job_id} was pending" if accepted else "no answer to the request"
                        raise NoServer(f"the server at {self._where()} stopped answering ({state})")
                if ping_sent is None and now - heard > self.timeout:
                    self.send("/msanii/ping", "alive")
                    ping_sent = now
                continue
            heard, ping_sent, missed = time.monotonic(), None, 0
            address, args = message
            if args[:1] != [job_id]:
                continue  # a pong, or a stray reply
            if address == "/msanii/accepted":
                accepted = True
                on_event("accepted", int(args[1]) if len(args) > 1 else 0)
            elif address == "/msanii/progress":
                on_event("progress", float(args[1]) if len(args) > 1 else 0.0)
            elif address == "/msanii/done":
                return Done(job_id, Path(str(args[1])), float(args[2]), int(args[3]),
                            float(args[4]) if len(args) > 4 else 0.0)
            elif address == "/msanii/fail":
                reason = str(args[1]) if len(args) > 1 else "failed"
                raise (Cancelled if reason == "cancelled" else RequestFailed)(reason)

    def _cancel_own(self, job_id: str) -> None:
        """Cancel our job and wait (one timeout) for its fail, so no render keeps running for nobody."""
        self.send("/msanii/cancel", job_id)

        def gone(address: str, args: list) -> Any:
            return True if address in ("/msanii/fail", "/msanii/done") and args[:1] == [job_id] else None
        try:
            self._await(gone, "cancel")
        except ClientError:
            pass  # the server is gone or the job already ended: nothing left to stop

    # ---- lifecycle ----
    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "MsaniiClient":
        try:
            self.connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
