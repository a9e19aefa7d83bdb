"""The UDP side of the OSC server: a python-osc server that hands every datagram, whole, to the bridge, and the
packet counters `/msanii/status` reports."""
from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pythonosc import osc_server
from pythonosc.dispatcher import Dispatcher

from bridge.replies import Address

if TYPE_CHECKING:
    from bridge.server import OscBridge

log = logging.getLogger(__name__)


@dataclass
class PacketCounts:
    """docs/osc.md, `/msanii/status`: `packets` every datagram; `malformed` and `oversized` datagrams dropped
    unread; then per message: `rejected` requests to a known address refused with a fail by the server thread
    (bad arguments, busy, duplicate id...), `unknown` messages to an address that is no request (answered with
    fail "unknown address"), `ignored` messages not answered (another server's replies, our own port)."""
    packets: int = 0
    malformed: int = 0
    oversized: int = 0
    rejected: int = 0
    unknown: int = 0
    ignored: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


class PacketDispatcher(Dispatcher):
    """Hands every datagram to the bridge (python-osc's default would drop bad packets without counting them and
    would sleep the server thread for future time tags)."""

    def __init__(self, bridge: "OscBridge") -> None:
        super().__init__()
        self._bridge = bridge

    def call_handlers_for_packet(self, data: bytes, client_address: Address) -> list:
        self._bridge.handle_datagram(data, client_address)
        return []


class UDPServer(osc_server.BlockingOSCUDPServer):
    max_packet_size = 65536  # read whole datagrams so oversized ones are seen (and counted), not truncated

    def server_bind(self) -> None:
        try:  # room for bursts (the kernel caps this at net.core.rmem_max)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        except OSError:
            pass
        super().server_bind()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return True  # the dispatcher counts non-OSC datagrams as malformed

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("error while handling a packet from %s", client_address)
