"""Peers an authenticated server refused, each logged once. Pure: no sockets.

A CURVE server refuses a peer in one of two places, and this module turns both into one
WARNING line per peer:

- the ZAP handler (:mod:`.transport`), for a peer that speaks CURVE with a key that is not
  the run's: :meth:`PeerRefusals.wrong_key` gets its address and key;
- the handshake, for a peer that does not speak CURVE at all (QCG-PilotJob 0.14's own client,
  a plain ZMQ socket, a port scanner): ZMQ's socket monitor reports the accepted connection
  (with its file descriptor), then the failed handshake, then the disconnection of that
  descriptor. :meth:`PeerRefusals.on_event` follows that sequence; the address is read
  from the descriptor when the connection is accepted (:func:`.transport` does the I/O).
  A peer that fails at once is often gone before its address can be read: such peers are
  logged as "a peer at an unknown address", once, and counted in :attr:`refused`.

A client without CURVE sees the server's mechanism in the server's greeting and hangs up.
When the server is busy, it may hit the closed connection before it reads the client's
greeting: ZMQ then reports a handshake failure without detail (``EPIPE``, ``ECONNRESET``)
instead of the mechanism mismatch, and the line says so (the likely cause included). Either
way, such a client never reconnects (ZMQ ends a session on a protocol error), so it is one
refusal.

ZMQ emits a failed handshake and the disconnection of the same connection back to back in
its I/O thread, so a failure is attributed to the next disconnection.

>>> refusals = PeerRefusals("client interface")
>>> refusals.on_event(zmq.EVENT_ACCEPTED, 7, "10.0.0.5:40112")
>>> refusals.on_event(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, MECHANISM_MISMATCH)
>>> print(refusals.on_event(zmq.EVENT_DISCONNECTED, 7))  # doctest: +ELLIPSIS
client interface: refused a peer at 10.0.0.5:40112: it does not use CURVE ...
>>> refusals.on_event(zmq.EVENT_ACCEPTED, 8, "10.0.0.5:40113")  # the same host again: not logged
>>> refusals.on_event(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, MECHANISM_MISMATCH)
>>> refusals.on_event(zmq.EVENT_DISCONNECTED, 8)
>>> refusals.refused
2
"""

from __future__ import annotations

import logging
from typing import Dict, Optional, Set

import zmq

__all__ = ["MAX_LOGGED_PEERS", "MECHANISM_MISMATCH", "MONITORED_EVENTS", "PeerRefusals"]

_log = logging.getLogger("qcg_pilotjob.protocol.transport")

#: ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: the peer's security mechanism is not ours
MECHANISM_MISMATCH = 0x11000002
#: peers logged one by one; past that, one more line says that others are not
MAX_LOGGED_PEERS = 1000
#: the monitor events :meth:`PeerRefusals.on_event` follows (a refused key is the ZAP handler's)
MONITORED_EVENTS = (zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)

_NO_CURVE = ("it does not use CURVE (a client without this run's keys; QCG-PilotJob 0.14's own client "
             "can connect only to a service started with --insecure-net)")


_UNKNOWN = "an unknown address"


def _hung_up(errno_: int) -> str:
    """Why a handshake that failed without detail failed, as the log line says it."""
    detail = zmq.strerror(errno_) if errno_ else "no detail"
    return (f"it hung up during the handshake ({detail}; a client without this run's keys does that "
            f"when it sees the service wants CURVE)")


def _host(peer: str) -> str:
    """The host part of ``host:port`` (a peer's reconnections differ only in the port)."""
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() else peer


class PeerRefusals:
    """What the server called ``what`` refused, logged at WARNING once per peer host (and key)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._peers: Dict[int, str] = {}  # descriptor -> peer address, while connected
        self._failed: Optional[str] = None  # why the last handshake failed, until its disconnection
        self._logged: Set[str] = set()
        self.refused = 0  # handshakes refused, logged or not

    def on_event(self, event: int, value: int, peer: Optional[str] = None) -> Optional[str]:
        """Follow one monitor event; returns the line logged, if one was."""
        if event == zmq.EVENT_ACCEPTED:
            self._peers[value] = peer or _UNKNOWN
        elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            self._failed = _NO_CURVE if value == MECHANISM_MISMATCH else \
                f"its handshake broke the protocol (ZMQ protocol error {value:#x})"
        elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            self._failed = _hung_up(value)
        elif event == zmq.EVENT_DISCONNECTED:
            address = self._peers.pop(value, _UNKNOWN)
            why, self._failed = self._failed, None
            if why is not None:
                self.refused += 1
                return self._once(_host(address), f"{self.what}: refused a peer at {address}: {why}")
        return None

    def wrong_key(self, address: str, key: str) -> Optional[str]:
        """The ZAP handler refused ``key`` from ``address``; returns the line logged, if one was."""
        self.refused += 1
        return self._once(f"{address} {key}", f"{self.what}: refused a peer at {address}: its key is not "
                                               f"this run's (public key {key})")

    def summary(self) -> Optional[str]:
        """A line on what was refused in all (for the log when the server closes)."""
        if not self.refused:
            return None
        return f"{self.what}: {self.refused} connection(s) refused in all, from {len(self._logged)} peer(s)"

    def _once(self, peer: str, line: str) -> Optional[str]:
        if peer in self._logged or len(self._logged) > MAX_LOGGED_PEERS:
            return None
        self._logged.add(peer)
        if len(self._logged) > MAX_LOGGED_PEERS:
            line = f"{self.what}: more than {MAX_LOGGED_PEERS} peers refused; others are not logged one by one"
        _log.warning("%s", line)
        return line
