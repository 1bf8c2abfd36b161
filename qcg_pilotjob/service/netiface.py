"""The ZMQ network interface: a request endpoint and a status-event publisher.

Requests arrive on a ROUTER socket (REQ clients see a REP server), are decoded as msgpack
or JSON, handled by the front synchronously and answered in the request's encoding.
Undecodable frames get an error reply and are logged at WARNING with the peer's identity;
the service keeps serving.

Events go out on an XPUB socket as QCG-PilotJob formats them, ``"<TOPIC> <json>"``:
``JST`` (a job's state), ``IST`` (an iteration's state), ``IFI`` (an iteration finished),
``JFI`` (a job finished), ``NOJ`` (no unfinished jobs remain), with ``{"manager", "job",
"it", "state"}`` data. ``IST`` is a few events per task, so it is made only while some
subscriber's topic covers it; XPUB tells which topics are subscribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Set

import zmq

from ..protocol.batch import sent_error
from ..protocol.receive import FrameGuard, identity_of, receive_loop
from ..protocol.transport import async_context, bind_publisher, bind_request_server, close_server
from ..protocol.wire import WireError, decode_request, encode_reply

if TYPE_CHECKING:
    from ..front.core import Front
    from ..keys import RunKeys

__all__ = ["EventPublisher", "NetInterface", "Subscriptions"]

_log = logging.getLogger(__name__)


class Subscriptions:
    """The topics subscribers hold, from XPUB's subscription messages (``\\x01topic`` to
    subscribe, ``\\x00topic`` to unsubscribe; XPUB passes on the first subscriber of a topic
    and the last one leaving). ``covers(topic)`` says whether an event would reach anyone.

    >>> subs = Subscriptions()
    >>> subs.update(b"\\x01IFI"), subs.covers("IST")
    (True, False)
    >>> subs.update(b"\\x01I"), subs.covers("IST")
    (True, True)
    >>> subs.update(b"\\x00I"), subs.update(b"junk"), subs.covers("IST")
    (True, False, False)
    """

    def __init__(self) -> None:
        self.topics: Set[bytes] = set()

    def update(self, frame: bytes) -> bool:
        """Apply one subscription message; False for anything else (ignored)."""
        if not frame or frame[0] not in (0, 1):
            return False
        if frame[0] == 1:
            self.topics.add(frame[1:])
        else:
            self.topics.discard(frame[1:])
        return True

    def covers(self, topic: str) -> bool:
        """True if some subscribed prefix matches some ``"<topic> <json>"`` event."""
        event = f"{topic} ".encode()
        return any(event.startswith(t) or t.startswith(event) for t in self.topics)


class EventPublisher:
    """Publishes status events; never blocks (drops if subscribers lag). ``on_topics`` is
    called with :attr:`subscriptions` whenever they change."""

    def __init__(self, host: str, port_min: int, port_max: int, keys: Optional[RunKeys] = None,
                 port: Optional[int] = None, on_topics: Optional[Callable[[Subscriptions], None]] = None) -> None:
        self.sock, self.address = bind_publisher(async_context(), host, port, port_min, port_max, keys)
        self.subscriptions = Subscriptions()
        self.on_topics = on_topics
        self.guard = FrameGuard(_log, "event publisher")
        self._task: Optional[asyncio.Task[None]] = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            receive_loop(self.sock, self._on_frames, self.guard, lambda _: "a subscriber"))

    def _on_frames(self, frames: List[bytes]) -> None:
        if not self.subscriptions.update(frames[-1]):
            self.guard.bad_frame("a subscriber", f"a {len(frames[-1])}-byte message that is no subscription")
        elif self.on_topics is not None:
            self.on_topics(self.subscriptions)

    def publish(self, topic: str, data: Any) -> None:
        with contextlib.suppress(zmq.Again):
            self.sock.send_string(f"{topic} {json.dumps(data)}", flags=zmq.NOBLOCK)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        close_server(self.sock)


class NetInterface:
    """Serves client requests until :meth:`close`.

    One :func:`~..protocol.receive.receive_loop` serves clients and, in governor mode,
    partitions (frames without an empty delimiter go to ``partition_handler``). Each
    frame is handled under the loop's guard: no frame can stop the loop.
    """

    def __init__(self, front: Front, *, host: str = "*", port: Optional[int] = None, port_min: int = 2222,
                 port_max: int = 9999, on_request: Optional[Callable[[], None]] = None,
                 keys: Optional[RunKeys] = None) -> None:
        self.front = front
        self.sock, self.address = bind_request_server(async_context(), host, port, port_min, port_max, keys)
        self.on_request = on_request
        #: governor mode: frames without an empty delimiter come from partition DEALERs
        self.partition_handler: Optional[Callable[[bytes, bytes], None]] = None
        self.guard = FrameGuard(_log, "network interface")
        self._task: Optional[asyncio.Task[None]] = None
        self.requests = 0

    @property
    def bad_frames(self) -> int:
        return self.guard.bad_frames

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            receive_loop(self.sock, self._on_frames, self.guard, identity_of))

    def _on_frames(self, frames: List[bytes]) -> None:
        if len(frames) < 2:
            self.guard.bad_frame(identity_of(frames), f"a message with {len(frames)} frame(s)")
            return
        if len(frames) == 2 and self.partition_handler is not None:
            self.partition_handler(frames[0], frames[1])
            return
        envelope, payload = frames[:-1], frames[-1]
        try:
            request, encoding = decode_request(payload)
        except WireError as exc:
            self.guard.bad_frame(f"client {identity_of(frames)}", f"bad request ({len(payload)} bytes): {exc}")
            reply: Any = {"code": 1, "message": f"Invalid request: {exc}"}
            encoding = exc.encoding
        else:
            self.requests += 1
            reply = self.front.handle_request(request)
        try:
            data = encode_reply(reply, encoding)
        except Exception as exc:  # a reply that cannot be encoded still gets an answer
            _log.exception("network interface: cannot encode a reply")
            data = encode_reply({"code": 1, "message": f"Failed to encode the reply: {type(exc).__name__}"},
                                encoding)
        try:
            sent_error(self.sock.send_multipart([*envelope, data], flags=zmq.NOBLOCK))
        except zmq.ZMQError as exc:
            _log.warning("network interface: cannot send a reply: %s", exc)
        if self.on_request is not None:
            self.on_request()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        close_server(self.sock)
