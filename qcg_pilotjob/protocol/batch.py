"""The one batching sender: the messages of one loop turn leave as one frame per peer.

The same class serves a DEALER (one peer: ``send(msg)``) and a ROUTER (many peers:
``send(msg, identity)``). Messages queued during one turn of the event loop are encoded
together by :func:`.codec.encode_batch` and sent in one non-blocking call per peer, in
the order they were queued. A send that fails (a peer gone, a full queue) is logged and
the batch is dropped: the heartbeat watcher decides whether the peer is lost.

>>> import asyncio
>>> class Sock:
...     frames = []
...     def send(self, data, flags=0): self.frames.append(data)
...     def send_multipart(self, parts, flags=0): self.frames.append(parts)
>>> async def demo():
...     from .messages import HeartbeatMsg
...     from .codec import decode_batch
...     s = Sock(); b = BatchSender(s, "peer")
...     b.send(HeartbeatMsg(1)); b.send(HeartbeatMsg(2)); b.send(HeartbeatMsg(3), b"p2")
...     await asyncio.sleep(0)
...     return [[m.used_cores for m in decode_batch(f)] if isinstance(f, bytes)
...             else (f[0], [m.used_cores for m in decode_batch(f[1])]) for f in s.frames]
>>> asyncio.run(demo())  # (the used_cores of the heartbeats in each frame)
[[1, 2], (b'p2', [3])]
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional

import zmq

from .codec import encode_batch
from .messages import Message

__all__ = ["BatchSender"]

_log = logging.getLogger(__name__)


class BatchSender:
    """Queues messages for ``sock`` and sends them in one frame per peer and loop turn.

    ``sock`` is the asyncio socket itself, never a blocking shadow of it: a send on a
    shadow consumes the edge-triggered event that the asyncio receive waits on, and the
    receive then stalls. A non-blocking send on an asyncio socket returns a future that
    is already done; its error is read here (so none is left unretrieved).
    """

    def __init__(self, sock: Any, peer: str, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        self.sock = sock
        self.peer = peer
        self.loop = loop
        self._outbox: Dict[Optional[bytes], List[Message]] = {}
        self._pending = False
        self.failed_sends = 0

    def send(self, msg: Message, to: Optional[bytes] = None) -> None:
        """Queue ``msg`` for the DEALER's peer (``to`` None) or the ROUTER peer ``to``."""
        box = self._outbox.get(to)
        if box is None:
            self._outbox[to] = [msg]
        else:
            box.append(msg)
        if not self._pending:
            self._pending = True
            (self.loop or asyncio.get_running_loop()).call_soon(self.flush)

    def discard(self, to: Optional[bytes]) -> None:
        """Drop what is queued for ``to`` (a peer that is gone)."""
        self._outbox.pop(to, None)

    def flush(self) -> None:
        """Send everything queued now."""
        self._pending = False
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, {}
        for to, msgs in outbox.items():
            frame = encode_batch(msgs)
            try:
                if to is None:
                    sent_error(self.sock.send(frame, flags=zmq.NOBLOCK))
                else:
                    sent_error(self.sock.send_multipart([to, frame], flags=zmq.NOBLOCK))
            except zmq.ZMQError as exc:
                self.failed_sends += 1
                name = self.peer if to is None else to.decode("utf-8", errors="replace")
                _log.warning("cannot send %d message(s) to %s: %s", len(msgs), name, exc)


def sent_error(result: Any) -> None:
    """Raise the error of a non-blocking send on an asyncio socket (a done future), if any;
    a blocking socket's send raised already."""
    done = getattr(result, "done", None)
    if done is not None and done():
        exc = result.exception()
        if exc is not None:
            raise exc


__all__ += ["sent_error"]
