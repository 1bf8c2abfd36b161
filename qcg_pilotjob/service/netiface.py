"""The ZMQ network interface: a request endpoint and a status-event publisher.

Requests arrive on a ROUTER socket (REQ clients see a REP server), are decoded as msgpack
or JSON, handled by the front synchronously and answered in the request's encoding.
Undecodable frames get an error reply; the service keeps serving.

Events go out on a PUB socket as QCG-PilotJob formats them, ``"<TOPIC> <json>"``:
``IFI`` (an iteration finished), ``JFI`` (a job finished), ``NOJ`` (no unfinished jobs
remain), with ``{"job", "it", "state"}`` data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any, Callable, List, Optional

import zmq

from ..protocol.transport import async_context, bind_publisher, bind_request_server
from ..protocol.wire import WireError, decode_request, encode_reply

if TYPE_CHECKING:
    from ..governor.front import Front

__all__ = ["EventPublisher", "NetInterface"]

_log = logging.getLogger(__name__)


class EventPublisher:
    """Publishes finished iterations and jobs; never blocks (drops if subscribers lag)."""

    def __init__(self, host: str, port_min: int, port_max: int) -> None:
        self.sock, self.address = bind_publisher(async_context(), host, None, port_min, port_max)

    def publish(self, topic: str, data: Any) -> None:
        with contextlib.suppress(zmq.Again):
            self.sock.send_string(f"{topic} {json.dumps(data)}", flags=zmq.NOBLOCK)

    def close(self) -> None:
        self.sock.close(linger=0)


class NetInterface:
    """Serves client requests until :meth:`close`."""

    def __init__(self, front: Front, *, host: str = "*", port: Optional[int] = None, port_min: int = 2222,
                 port_max: int = 9999, on_request: Optional[Callable[[], None]] = None) -> None:
        self.front = front
        self.sock, self.address = bind_request_server(async_context(), host, port, port_min, port_max)
        self.on_request = on_request
        #: governor mode: frames without an empty delimiter come from partition DEALERs
        self.partition_handler: Optional[Callable[[bytes, bytes], None]] = None
        self._task: Optional[asyncio.Task[None]] = None
        self.requests = 0
        self.bad_frames = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        sock = self.sock
        while True:
            try:
                frames: List[bytes] = await sock.recv_multipart()
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError as exc:
                if exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                _log.warning("network interface: receive failed: %s", exc)
                continue
            if len(frames) < 2:
                self.bad_frames += 1
                _log.warning("network interface: dropped a message with %d frame(s)", len(frames))
                continue
            if len(frames) == 2 and self.partition_handler is not None:
                self.partition_handler(frames[0], frames[1])
                continue
            envelope, payload = frames[:-1], frames[-1]
            try:
                request, encoding = decode_request(payload)
            except WireError as exc:
                self.bad_frames += 1
                _log.warning("network interface: bad request (%d bytes): %s", len(payload), exc)
                reply = {"code": 1, "message": f"Invalid request: {exc}"}
                encoding = exc.encoding
            else:
                self.requests += 1
                reply = self.front.handle_request(request)
            try:
                await sock.send_multipart([*envelope, encode_reply(reply, encoding)])
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
        self.sock.close(linger=0)
