"""Coalescing sender: the messages of one loop iteration leave as one frame.

>>> import asyncio
>>> class Sock:
...     frames = []
...     def send(self, data, flags=0): self.frames.append(data)
>>> async def demo():
...     from .messages import HeartbeatMsg
...     from .codec import decode_batch
...     s = Sock(); b = BatchSender(s, "peer")
...     b.send(HeartbeatMsg(1)); b.send(HeartbeatMsg(2))
...     await asyncio.sleep(0)
...     return [decode_batch(f) for f in s.frames]
>>> asyncio.run(demo())
[[HeartbeatMsg(used_cores=1), HeartbeatMsg(used_cores=2)]]
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, List

import zmq

from .codec import encode_batch
from .messages import Message

__all__ = ["BatchSender"]

_log = logging.getLogger(__name__)


class BatchSender:
    """Queues messages for ``sock`` (a DEALER) and sends them in one frame per loop turn."""

    def __init__(self, sock: Any, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self._outbox: List[Message] = []
        self._pending = False

    def send(self, msg: Message) -> None:
        self._outbox.append(msg)
        if not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._pending = False
        if self._outbox:
            msgs, self._outbox = self._outbox, []
            try:
                self.sock.send(encode_batch(msgs), flags=zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                _log.warning("cannot send %d message(s) to %s: %s", len(msgs), self.peer, exc)
