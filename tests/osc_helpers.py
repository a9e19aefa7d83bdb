"""Test helpers for the OSC bridge: a real UDP OSC client (python-osc messages on its own socket) and a
`msanii-osc` subprocess runner."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Received:
    address: str
    args: list
    at: float  # time.monotonic() on arrival


def build(address: str, *args: Any) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


class OscClient:
    """Sends from one UDP socket and records every OSC message that arrives on it (or on `listen_port`)."""

    def __init__(self, server: tuple[str, int], listen_port: int = 0) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", listen_port))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = OscMessage(data)
            with self._cond:
                self.received.append(Received(msg.address, list(msg.params), time.monotonic()))
                self._cond.notify_all()

    def send(self, address: str, *args: Any) -> float:
        self.sock.sendto(build(address, *args), self.server)
        return time.monotonic()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def wait_for(self, address: str, predicate: Callable[[Received], bool] = lambda m: True,
                 timeout: float = 30.0) -> Received:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.received:
                    if msg.address == address and predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {address} within {timeout} s; got "
                                         f"{[(m.address, m.args) for m in self.received][-10:]}")
                self._cond.wait(left)

    def outcome(self, job: str, timeout: float = 90.0) -> Received:
        """The first /msanii/done or /msanii/fail for `job`, whichever comes."""
        return self.wait_for_any(("/msanii/done", "/msanii/fail"), lambda m: m.args[:1] == [job], timeout)

    def wait_for_any(self, addresses: tuple[str, ...], predicate: Callable[[Received], bool] = lambda m: True,
                     timeout: float = 30.0) -> Received:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.received:
                    if msg.address in addresses and predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"none of {addresses} within {timeout} s; got "
                                         f"{[(m.address, m.args) for m in self.received][-10:]}")
                self._cond.wait(left)

    def of(self, address: str, job: str | None = None) -> list[Received]:
        with self._cond:
            return [m for m in self.received if m.address == address and (job is None or m.args[:1] == [job])]

    def close(self) -> None:
        self._stop = True
        self._thread.join(1)
        self.sock.close()


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ServerProcess:
    """`python -m bridge.cli ...` in a subprocess; waits for its "serving" line."""

    def __init__(self, args: list[str], env: dict | None = None, timeout: float = 60.0,
                 launcher: list[str] | None = None) -> None:
        """`launcher` replaces `python -m bridge.cli` (e.g. a wrapper that drops privileges first)."""
        self.port = free_udp_port()
        cmd = [*(launcher or [sys.executable, "-m", "bridge.cli"]), "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise AssertionError(f"server did not start: {self.output}")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if "serving" in line:
                self._ready.set()
        self._ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def signal(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.proc.send_signal(signum)
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
