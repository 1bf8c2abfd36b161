"""A reply from a service at an address, or at once the reason none will come (for
:class:`~qcg_pilotjob.api.manager.Manager`): the service closed the connection, nothing
listens any more, or the handshake failed. Without it a client waits out its request
timeout (600 s by default) for a service that died or that refused its keys.

The reasons come from the socket's monitor, read by
:class:`~qcg_pilotjob.protocol.linkwatch.LinkWatch`; the socket and the monitor are
polled together, so a reply costs no more waiting than before.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional, Tuple

import zmq

from ..protocol.linkwatch import LinkWatch
from ..protocol.transport import connect_requester, connect_watched_requester, link_events, unwatch
from . import errors

if TYPE_CHECKING:
    from ..keys import RunKeys

__all__ = ["LinkLost", "LinkReceiver", "close_requester", "deadline_after", "ms_left", "open_requester", "take_reply"]


def deadline_after(timeout_ms: Optional[int]) -> Optional[float]:
    """The ``time.monotonic()`` at which ``timeout_ms`` is over (None: no limit)."""
    return None if timeout_ms is None else time.monotonic() + timeout_ms / 1000


def ms_left(deadline: Optional[float]) -> Optional[int]:
    """Milliseconds until ``deadline`` (a ``time.monotonic()``; None: no limit), at least 0."""
    return None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))


def take_reply(sock: zmq.Socket[Any]) -> Optional[bytes]:
    """The reply waiting on a REQ socket that polled readable; None if what woke the wait
    was a late reply to an earlier request, which the socket drops (REQ_CORRELATE)."""
    try:
        return bytes(sock.recv(zmq.NOBLOCK))
    except zmq.Again:
        return None


class LinkLost(errors.ConnectionError):
    """The connection says no reply will come (the message says why)."""


class LinkReceiver:
    """Receives the replies on one REQ socket, watching its connection through ``monitor``
    (:func:`~qcg_pilotjob.protocol.transport.connect_watched_requester` makes both)."""

    def __init__(self, sock: zmq.Socket[Any], monitor: zmq.Socket[Any], address: str, has_keys: bool) -> None:
        self.sock = sock
        self.monitor = monitor
        self.watch = LinkWatch(address, has_keys)
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self.monitor, zmq.POLLIN)

    def _read_events(self) -> Optional[str]:
        why = None
        for kind, value in link_events(self.monitor):
            why = why or self.watch.event(kind, value)  # (the first reason; later events still followed)
        return why

    def before_send(self) -> None:
        """Take the events so far (an earlier connection's), before a request goes out."""
        self._read_events()

    def receive(self, timeout_ms: Optional[int]) -> bytes:
        """The reply to the request just sent; ``zmq.Again`` after ``timeout_ms`` (None: no
        limit); :class:`LinkLost` as soon as the connection says no reply will come. A late
        reply to an earlier request, which wakes the wait but is dropped by the socket
        (REQ_CORRELATE), does not end it."""
        deadline = deadline_after(timeout_ms)
        why = self.watch.sent()
        try:
            while why is None:
                left = ms_left(deadline)
                ready = dict(self.poller.poll(left))
                if self.sock in ready:
                    reply = take_reply(self.sock)
                    if reply is not None:
                        return reply
                if self.monitor in ready:
                    why = self._read_events()
                if why is None and left == 0:
                    raise zmq.Again()
            # (a reply read off the connection just before it closed may be polled after the
            # closing: it is taken, not lost)
            reply = take_reply(self.sock)
            if reply is None:
                raise LinkLost(why)
            return reply
        finally:
            self.watch.replied()

    def close(self) -> None:
        unwatch(self.sock, self.monitor)


def open_requester(ctx: zmq.Context[Any], address: str, timeout_ms: Optional[int], keys: Optional[RunKeys],
                   watched: bool) -> Tuple[zmq.Socket[Any], Optional[LinkReceiver]]:
    """A client's REQ socket to ``address`` and, if ``watched``, the receiver that watches
    its connection; ConnectionError for an address ZMQ cannot use."""
    try:
        if not watched:
            return connect_requester(ctx, address, timeout_ms, keys), None
        sock, monitor = connect_watched_requester(ctx, address, timeout_ms, keys)
    except zmq.ZMQError as exc:
        raise errors.ConnectionError(f"cannot connect to {address}: {exc}") from None
    return sock, LinkReceiver(sock, monitor, address, keys is not None)


def close_requester(sock: Optional[zmq.Socket[Any]], link: Optional[LinkReceiver]) -> None:
    if link is not None:
        link.close()
    if sock is not None:
        sock.close(linger=0)
