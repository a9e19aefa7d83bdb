"""Where replies go: per-sender registrations, the default reply port, and the guard against feedback loops.

Rules (docs/osc.md): a sender's replies go to what it registered with `/msanii/register`, else to
(sender host, default reply port), else back to the sender. A registered host must be the sender's own address
(or loopback for a loopback sender) so the server cannot be used to aim traffic at third parties, and nothing is
ever sent to the server's own port (it would come back as a request).
"""

from __future__ import annotations

import collections
import ipaddress
from typing import Callable

from bridge import protocol as p

Address = tuple[str, int]
MAX_REGISTRATIONS = 256


def is_same_socket(addr: Address, own: Address) -> bool:
    """Whether `addr` reaches the socket bound at `own` (same port; loopback, the same host, or a wildcard bind)."""
    host, port = own
    if addr[1] != port:
        return False
    try:
        other = ipaddress.ip_address(addr[0])
    except ValueError:
        return False
    return other.is_loopback or addr[0] == host or host in ("0.0.0.0", "::")


class ReplyRouter:
    """Reply addresses by sender. Used from the server thread only (no locking)."""

    def __init__(self, own_address: Callable[[], Address], default_port: int | None) -> None:
        self._own = own_address
        self.default_port = default_port
        self._registered: collections.OrderedDict[Address, Address] = collections.OrderedDict()

    def is_self(self, addr: Address) -> bool:
        return is_same_socket(addr, self._own())

    def address_for(self, sender: Address) -> Address:
        registered = self._registered.get(sender)
        if registered is not None:
            return registered
        if self.default_port:
            return sender[0], self.default_port
        return sender

    def register(self, sender: Address, host: str, port: int) -> Address:
        """Send `sender`'s replies to (host, port); `RequestError` if that is not allowed. Keeps the newest
        `MAX_REGISTRATIONS` senders."""
        target = (self._check_host(host, sender), port)
        if self.is_self(target):
            raise p.RequestError("reply port must not be the server's own port")
        self._registered[sender] = target
        self._registered.move_to_end(sender)
        while len(self._registered) > MAX_REGISTRATIONS:
            self._registered.popitem(last=False)
        return target

    @staticmethod
    def _check_host(host: str, sender: Address) -> str:
        if host == "localhost":
            host = "127.0.0.1"
        try:
            wanted = ipaddress.ip_address(host)
        except ValueError:
            raise p.RequestError(f"reply host must be a numeric IP address, got {host!r}") from None
        origin = ipaddress.ip_address(sender[0])
        if wanted.version != origin.version:  # e.g. "::1" for an IPv4 socket: every reply would be lost
            raise p.RequestError(f"reply host must be an IPv{origin.version} address like the sender's, got {host!r}")
        if wanted != origin and not (wanted.is_loopback and origin.is_loopback):
            raise p.RequestError("reply host must be the sender's own address")
        return str(wanted)
