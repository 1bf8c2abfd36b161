"""The governor's side of the partition links: registration, heartbeats, batching.

Partitions connect with a DEALER socket to the governor's network endpoint (the same
ROUTER that serves clients: a client's REQ frames carry an empty delimiter, a
partition's frames do not). Every frame is a batch of :mod:`..protocol.messages`.

A partition registers with :class:`RegisterMsg` (protocol version, nodes); a version
mismatch or a duplicate id is refused, and fatal for that partition. Both sides send a
heartbeat every ``heartbeat`` seconds; a partition silent for ``lost_after`` seconds is
declared lost (see :meth:`~.front.Front.lose_link`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Set

import zmq

from ..errors import ResourceError
from ..protocol.codec import DecodeError, decode_batch, encode_batch
from ..protocol.messages import (
    PROTOCOL_VERSION,
    HeartbeatMsg,
    Message,
    RegisteredMsg,
    RegisterMsg,
    StoppedMsg,
)
from ..resources import Node, ResourcePool

if TYPE_CHECKING:
    import zmq.asyncio

    from .front import Front, PartitionLink

__all__ = ["PartitionHub"]

_log = logging.getLogger(__name__)


class _Remote:
    __slots__ = ("identity", "last_seen", "link", "outbox")

    def __init__(self, identity: bytes, link: PartitionLink) -> None:
        self.identity = identity
        self.link = link
        self.outbox: List[Message] = []
        self.last_seen = time.monotonic()


class PartitionHub:
    """Registered partitions of a governor, reachable through ``sock`` (a ROUTER)."""

    def __init__(self, front: Front, sock: zmq.asyncio.Socket, *, heartbeat: float = 1.0,
                 lost_after: float = 5.0, on_change: Optional[Callable[[], None]] = None) -> None:
        self.front = front
        self.sock = sock
        self.heartbeat = heartbeat
        self.lost_after = lost_after
        self.on_change = on_change or (lambda: None)
        self.remotes: Dict[bytes, _Remote] = {}
        self.registered: Set[str] = set()
        self.refused: Dict[str, str] = {}
        self._dirty: List[_Remote] = []
        self._flush_pending = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(self.heartbeat, self._beat)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- sending -----------------------------------------------------------------------
    def _send_now(self, identity: bytes, msgs: List[Message]) -> None:
        try:
            self.sock.send_multipart([identity, encode_batch(msgs)], flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            _log.warning("cannot send to partition %s: %s", identity.decode(errors="replace"), exc)

    def _queue(self, remote: _Remote, msg: Message) -> None:
        if not remote.outbox:
            self._dirty.append(remote)
        remote.outbox.append(msg)
        if not self._flush_pending and self._loop is not None:
            self._flush_pending = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send every queued message, one frame per partition."""
        self._flush_pending = False
        dirty, self._dirty = self._dirty, []
        for remote in dirty:
            msgs, remote.outbox = remote.outbox, []
            if msgs and not remote.link.lost:
                self._send_now(remote.identity, msgs)

    # --- receiving -----------------------------------------------------------------------
    def on_frame(self, identity: bytes, payload: bytes) -> None:
        try:
            msgs = decode_batch(payload)
        except DecodeError as exc:
            _log.warning("dropped a bad frame from partition %s: %s", identity.decode(errors="replace"), exc)
            return
        remote = self.remotes.get(identity)
        if remote is None:
            if msgs and isinstance(msgs[0], RegisterMsg):
                self._register(identity, msgs[0])
            else:
                _log.warning("dropped %d message(s) from unregistered peer %s", len(msgs),
                             identity.decode(errors="replace"))
            return
        remote.last_seen = time.monotonic()
        link = remote.link
        if link.lost:
            return
        for msg in msgs:
            if isinstance(msg, HeartbeatMsg):
                link.used_cores = msg.used_cores
            elif isinstance(msg, RegisterMsg):
                _log.warning("partition %s registered twice; ignored", link.name)
            else:
                self.front.on_message(link, msg)
                if isinstance(msg, StoppedMsg):
                    self.on_change()

    def _register(self, identity: bytes, msg: RegisterMsg) -> None:
        problem = None
        if msg.version != PROTOCOL_VERSION:
            problem = f"protocol version {msg.version} does not match the governor's {PROTOCOL_VERSION}"
        elif msg.id in self.registered:
            problem = f"a partition with id {msg.id!r} is registered already"
        elif self.front.stopping:
            problem = "the governor is finishing"
        pool = None
        if problem is None:
            try:
                pool = ResourcePool([Node.from_dict(n) for n in msg.nodes])
            except (ResourceError, KeyError, TypeError, ValueError) as exc:
                problem = f"bad resources: {exc}"
        if problem is not None or pool is None:
            _log.error("partition %s refused: %s", msg.id, problem)
            self.refused[msg.id] = str(problem)
            self._send_now(identity, [RegisteredMsg(False, str(problem), self.heartbeat)])
            self.on_change()
            return
        remote_box: List[_Remote] = []

        def send(m: Message) -> None:
            self._queue(remote_box[0], m)

        link = self.front.add_link(msg.id, pool, send)
        remote = _Remote(identity, link)
        remote_box.append(remote)
        self.remotes[identity] = remote
        self.registered.add(msg.id)
        self._send_now(identity, [RegisteredMsg(True, "", self.heartbeat)])
        _log.info("partition %s registered from %s (pid %d): %d nodes, %d cores", msg.id, msg.host, msg.pid,
                  pool.total_nodes, pool.total_cores)
        self.on_change()

    # --- heartbeats ----------------------------------------------------------------------
    def _beat(self) -> None:
        now = time.monotonic()
        for remote in list(self.remotes.values()):
            link = remote.link
            if link.lost or link.stopped:
                continue
            silent = now - remote.last_seen
            if silent > self.lost_after:
                self.front.lose_link(link, f"partition {link.name} lost: no message for {silent:.1f}s")
                self.on_change()
                continue
            self._queue(remote, HeartbeatMsg())
        assert self._loop is not None
        self._timer = self._loop.call_later(self.heartbeat, self._beat)
