"""Why a client's request will get no reply, told from its own socket's monitor. Pure: no
sockets (:func:`.transport.connect_watched_requester` makes the monitor, the Python API
reads it).

A REQ socket hides its connection: a service that died, a port where nothing listens, or a
handshake the service refused all look the same from ``recv``, which waits out its timeout
(600 s by default). ZMQ's socket monitor tells them apart, and :class:`LinkWatch` follows
its events and says, while a request waits, when no reply can come:

- the connection that carried the request closed (the service ended or was stopped): a
  REQ socket does not send a request again on a new connection;
- a connection attempt failed: nothing listens at the address any more, or the name does
  not resolve;
- the handshake failed: the service refused this client's keys, one side uses CURVE and
  the other does not, or the peer hung up during it. A handshake that timed out is no
  verdict: the service may only be slow.

Events read between requests only update the state; a verdict is given only while a
request waits. The monitor is read before each request, so the events of an earlier
connection (a service that restarted at the same address) are not blamed on the next one.
After a verdict the client makes a new socket (:class:`~qcg_pilotjob.api.manager.Manager`):
the old one may still hold the request, to send it if a service comes back.

>>> watch = LinkWatch("tcp://10.0.0.5:5555", has_keys=True)
>>> for kind in (zmq.EVENT_CONNECT_DELAYED, zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_SUCCEEDED):
...     watch.event(kind, 0)
>>> watch.sent()
>>> print(watch.event(zmq.EVENT_DISCONNECTED, 7))  # doctest: +ELLIPSIS
the service at tcp://10.0.0.5:5555 closed the connection before it replied ...
"""

from __future__ import annotations

import errno
from typing import Optional

import zmq

from .refusals import MECHANISM_MISMATCH

__all__ = ["LINK_EVENTS", "LinkWatch"]

#: the monitor events :meth:`LinkWatch.event` follows
LINK_EVENTS = (zmq.EVENT_CONNECT_DELAYED | zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CLOSED
               | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
               | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)

_KEYS_HELP = ("a client finds them in ~/.qcg-pilotjob by the service's address, in the run's aux dir, "
              "or in QCG_PM_ZMQ_KEYS (a task of the service)")
_NO_KEYS_HELP = f"{_KEYS_HELP}; a service of another user cannot be reached"


class LinkWatch:
    """The state of one client socket's connection, from its monitor's events."""

    def __init__(self, address: str, has_keys: bool) -> None:
        self.address = address
        self.has_keys = has_keys
        self.pending = False    # a request waits for its reply
        self.attempt_connected = False  # the current connection attempt got a TCP connection
        self.attempted = False  # an attempt was seen since ZMQ last scheduled a retry
        self.up = False         # a connection passed its handshake and has not closed
        self.refused: Optional[str] = None  # why a handshake failed for good (ZMQ does not try again)

    def sent(self) -> Optional[str]:
        """A request went out; verdicts count from now until :meth:`replied`. Returns why
        it cannot be answered if that is known already (the keys or the mechanism were
        refused, and ZMQ does not try again)."""
        self.pending = True
        return self.refused

    def replied(self) -> None:
        self.pending = False

    def event(self, kind: int, value: int) -> Optional[str]:
        """Take one monitor event. While a request waits, return why no reply will come (if
        this event says so); otherwise None."""
        why = self._follow(kind, value)
        return why if self.pending else None

    def _follow(self, kind: int, value: int) -> Optional[str]:
        if kind == zmq.EVENT_CONNECT_RETRIED:
            # (scheduled after every failed or closed attempt; with none seen since the last
            # one, ZMQ could not even start one: a name that does not resolve, an address it
            # cannot use)
            attempted, self.attempted = self.attempted, False
            if not attempted:
                return (f"cannot connect to {self.address}: its host name does not resolve or the address "
                        "cannot be used")
            return None
        self.attempted = True
        if kind == zmq.EVENT_CONNECT_DELAYED:
            self.attempt_connected = False
        elif kind == zmq.EVENT_CONNECTED:
            self.attempt_connected = True
        elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.up, self.refused = True, None
        elif kind == zmq.EVENT_CLOSED:
            # (an attempt's socket closed before it connected: refused, or unreachable; a
            # connection that closes later is a disconnection)
            if not self.attempt_connected:
                return f"no service listens at {self.address} (the connection was refused)"
        elif kind == zmq.EVENT_DISCONNECTED:
            was_up, self.up, self.attempt_connected = self.up, False, False
            if was_up:
                return (f"the service at {self.address} closed the connection before it replied "
                        "(it ended or was stopped); the request may or may not have been carried out")
        elif kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            return self._hung_up(value)
        elif kind in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
            self.refused = self._refused(kind, value)
            return self.refused
        return None

    def _hung_up(self, value: int) -> Optional[str]:
        """A handshake that ended on a connection error. ZMQ tries again, so nothing is
        remembered. A timeout is no verdict: a service that is only slow to answer (its
        authenticator busy) may pass the next handshake."""
        if value == errno.EAGAIN:
            return None
        # a CURVE service hangs up on a client it cannot authenticate, often before the
        # client reads its greeting: the mismatch it saw is not told, only the hang-up
        hung_up = f"the service at {self.address} hung up during the handshake ({_errno_name(value)})"
        if not self.has_keys:
            return (f"{hung_up}: most likely it uses CURVE and this client has no keys for it ({_NO_KEYS_HELP}); "
                    "or what listens there is no qcg_pilotjob service (a tunnel whose far end is gone?)")
        return (f"{hung_up}: this client's keys are not this run's (a key file left by an earlier run?), the "
                f"service does not use CURVE (--insecure-net), or what listens there is no qcg_pilotjob service "
                f"(a tunnel whose far end is gone?); {_KEYS_HELP}")

    def _refused(self, kind: int, value: int) -> str:
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return (f"the service at {self.address} refused this client's keys: they are not this run's "
                    f"(a key file left by an earlier run at the same address?); {_KEYS_HELP}")
        if value != MECHANISM_MISMATCH:
            return (f"the handshake with {self.address} failed (ZMQ protocol error {value:#x}): "
                    "is it a qcg_pilotjob service?")
        if self.has_keys:
            return (f"the service at {self.address} does not use CURVE, but this client has keys for that "
                    "address (a service started with --insecure-net, or a key file left by an earlier run)")
        return f"the service at {self.address} uses CURVE and this client has no keys for it: {_NO_KEYS_HELP}"


def _errno_name(value: int) -> str:
    return errno.errorcode.get(value, f"error {value}")
