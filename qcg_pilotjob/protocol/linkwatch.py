"""Why a client's request will get no reply, told from its own socket's monitor. Pure: no
sockets (:func:`.transport.watch_requester` makes the monitor, the Python API reads it).

A REQ socket hides its connection: a service that died, a port where nothing listens, or a
handshake the service refused all look the same from ``recv``, which waits out its timeout
(600 s by default). ZMQ's socket monitor tells them apart, and :class:`LinkWatch` follows
its events and says, while a request waits, when no reply can come:

- the connection that carried the request closed (the service ended or was stopped): a
  REQ socket does not send a request again on a new connection;
- a connection attempt failed: nothing listens at the address any more;
- the handshake failed: the service refused this client's keys, or one side uses CURVE
  and the other does not.

Events read between requests only update the state; a verdict is given only while a
request waits. The monitor is read before each request, so the events of an earlier
connection (a service that restarted at the same address) are not blamed on the next one.

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
LINK_EVENTS = (zmq.EVENT_CONNECT_DELAYED | zmq.EVENT_CONNECTED | zmq.EVENT_CLOSED
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
        self.attempt_connected = False  # the last connection attempt got a TCP connection
        self.up = False         # a connection passed its handshake and has not closed
        self.refused: Optional[str] = None  # why the last handshake failed (ZMQ may not try again)

    def sent(self) -> Optional[str]:
        """A request went out; verdicts count from now until :meth:`replied`. Returns why
        it cannot be answered if that is known already (a handshake failed, none passed since)."""
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
        if kind == zmq.EVENT_CONNECT_DELAYED:
            self.attempt_connected = False
        elif kind == zmq.EVENT_CONNECTED:
            self.attempt_connected = True
        elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.up, self.refused = True, None
        elif kind == zmq.EVENT_CLOSED:
            # (an attempt's socket closed before it connected; a connection that closes is a
            # disconnection, and ZMQ's "retried" follows both, so it is not followed)
            if not self.attempt_connected:
                return f"no service listens at {self.address} (the connection was refused)"
        elif kind == zmq.EVENT_DISCONNECTED:
            was_up, self.up = self.up, False
            if was_up:
                return (f"the service at {self.address} closed the connection before it replied "
                        "(it ended or was stopped); the request may or may not have been carried out")
        elif kind in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                      zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL):
            self.refused = self._handshake_failed(kind, value)
            return self.refused
        return None

    def _handshake_failed(self, kind: int, value: int) -> str:
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return (f"the service at {self.address} refused this client's keys: they are not this run's "
                    f"(a key file left by an earlier run at the same address?); {_KEYS_HELP}")
        if kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            # a service that cannot use our greeting hangs up, often before we read its own:
            # the mismatch it saw is not told, only the hang-up
            broke_off = f"the service at {self.address} broke off the handshake ({_errno_name(value)})"
            if not self.has_keys:
                return f"{broke_off}: it uses CURVE and this client has no keys for it: {_NO_KEYS_HELP}"
            return (f"{broke_off}: this client's keys are not this run's (a key file left by an earlier run?), "
                    f"or the service does not use CURVE (--insecure-net); {_KEYS_HELP}")
        if value != MECHANISM_MISMATCH:
            return (f"the handshake with {self.address} failed (ZMQ protocol error {value:#x}): "
                    "is it a qcg_pilotjob service?")
        if self.has_keys:
            return (f"the service at {self.address} does not use CURVE, but this client has keys for that "
                    "address (a service started with --insecure-net, or a key file left by an earlier run)")
        return f"the service at {self.address} uses CURVE and this client has no keys for it: {_NO_KEYS_HELP}"


def _errno_name(value: int) -> str:
    return errno.errorcode.get(value, f"error {value}")
