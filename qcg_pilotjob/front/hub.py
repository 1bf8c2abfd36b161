"""The governor's side of the partition links: registration, heartbeats, batching.

Partitions connect with a DEALER socket to the governor's network endpoint (the same
ROUTER that serves clients: a client's REQ frames carry an empty delimiter, a
partition's frames do not). Every frame is a batch of :mod:`..protocol.messages`,
checked by the codec before anything here sees it; an invalid frame is logged with the
peer's identity and dropped.

A partition may register at any moment: at start, while work waits (it gets some at
once, in the frame that carries its acceptance), after another was lost, or with a
governor resumed after a crash. A version mismatch, a duplicate id, bad resources or a
governor that is finishing refuse it, which is fatal for that partition. A partition
declared lost stays lost: whatever it sends later is answered by a refusal, so it
stops; a new partition (another id) may join instead.

Heartbeats go both ways every ``heartbeat`` seconds through one
:class:`~..protocol.heartbeat.HeartbeatWatcher`; a partition silent for ``lost_after``
seconds is lost (:meth:`~.core.Front.lose_link`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Set

from ..errors import ResourceError
from ..protocol.batch import BatchSender
from ..protocol.codec import DecodeError, decode_batch
from ..protocol.heartbeat import HeartbeatWatcher
from ..protocol.messages import (
    PROTOCOL_VERSION,
    HeartbeatMsg,
    Message,
    RegisteredMsg,
    RegisterMsg,
    StoppedMsg,
)
from ..protocol.receive import FrameGuard
from ..resources import Node, ResourcePool

if TYPE_CHECKING:
    from .core import Front
    from .links import PartitionLink, Stopper

__all__ = ["PartitionHub"]

_log = logging.getLogger(__name__)


class PartitionHub:
    """Registered partitions of a governor, reachable through ``sender`` (of a ROUTER)."""

    def __init__(self, front: Front, sender: BatchSender, *, heartbeat: float = 1.0, lost_after: float = 5.0,
                 on_change: Optional[Callable[[], None]] = None,
                 stopper_for: Optional[Callable[[RegisterMsg], Optional[Stopper]]] = None) -> None:
        self.front = front
        self.sender = sender
        self.heartbeat = heartbeat
        self.on_change = on_change or (lambda: None)
        #: how to end what a partition leaves running if it is lost (None: no way from here)
        self.stopper_for = stopper_for
        self.links: Dict[bytes, PartitionLink] = {}
        self.registered: Set[str] = set()
        self.refused: Dict[str, str] = {}
        self.guard = FrameGuard(_log, "partition hub")
        self.watcher: HeartbeatWatcher[bytes] = HeartbeatWatcher(
            heartbeat, lost_after, send_beat=self._beat, on_lost=self._silent)

    def start(self) -> None:
        self.watcher.start()

    def close(self) -> None:
        self.watcher.close()

    def flush(self) -> None:
        self.sender.flush()

    # --- receiving -----------------------------------------------------------------------
    def on_frame(self, identity: bytes, payload: bytes) -> None:
        """One frame from a partition's DEALER (called under the receive loop's guard)."""
        peer = identity.decode("utf-8", errors="replace")
        link = self.links.get(identity)
        try:
            msgs = decode_batch(payload)
        except DecodeError as exc:
            self.guard.bad_frame(f"partition {peer}", exc)
            if link is None:  # a registration that cannot be read: refused, so it stops at once
                self.sender.send(RegisteredMsg(False, f"invalid registration: {exc}", self.heartbeat), identity)
            return
        if link is None:
            if msgs and isinstance(msgs[0], RegisterMsg):
                self._register(identity, msgs[0])
            else:
                _log.warning("dropped %d message(s) from %s, which has not registered", len(msgs), peer)
            return
        if link.lost:
            # declared lost: its tasks were failed or moved; it must stop, not come back
            self.sender.send(RegisteredMsg(False, f"partition {link.name} was declared lost by the governor",
                                           self.heartbeat), identity)
            return
        self.watcher.seen(identity)
        for msg in msgs:
            if isinstance(msg, HeartbeatMsg):
                link.used_cores = msg.used_cores
                link.node_used = msg.node_used
            elif isinstance(msg, RegisterMsg):
                _log.warning("partition %s registered twice; ignored", link.name)
            else:
                self.front.on_message(link, msg)
                if isinstance(msg, StoppedMsg):
                    self.watcher.forget(identity)
                    self.on_change()

    def _problem(self, msg: RegisterMsg) -> Optional[str]:
        if msg.version != PROTOCOL_VERSION:
            return f"protocol version {msg.version} does not match the governor's {PROTOCOL_VERSION}"
        if msg.id in self.registered:
            return f"a partition with id {msg.id!r} is registered already"
        if self.front.stopping:
            return "the governor is finishing"
        return None

    def _register(self, identity: bytes, msg: RegisterMsg) -> None:
        problem = self._problem(msg)
        pool: Optional[ResourcePool] = None
        if problem is None:
            try:
                pool = ResourcePool([Node.from_dict(n) for n in msg.nodes])
            except (ResourceError, KeyError, TypeError, ValueError) as exc:
                problem = f"bad resources: {exc}"
        if problem is not None or pool is None:
            _log.error("partition %s refused: %s", msg.id, problem)
            self.refused[msg.id] = str(problem)
            self.sender.send(RegisteredMsg(False, str(problem), self.heartbeat), identity)
            self.sender.flush()
            self.on_change()
            return
        # the acceptance goes first, in the same frame as any work routed to it at once
        self.sender.send(RegisteredMsg(True, "", self.heartbeat), identity)

        def send(m: Message) -> None:
            self.sender.send(m, identity)

        self.registered.add(msg.id)
        self.watcher.watch(identity)
        link = self.front.add_link(msg.id, pool, send, host=msg.host, pid=msg.pid)
        self.links[identity] = link
        if self.stopper_for is not None:
            link.stopper = self.stopper_for(msg)
        _log.info("partition %s registered from %s (pid %d): %d nodes, %d cores", msg.id, msg.host, msg.pid,
                  pool.total_nodes, pool.total_cores)
        self.on_change()

    # --- heartbeats ----------------------------------------------------------------------
    def _beat(self, identity: bytes) -> None:
        link = self.links.get(identity)
        if link is not None and link.live:
            self.sender.send(HeartbeatMsg(), identity)

    def _silent(self, identity: bytes, why: str) -> None:
        link = self.links.get(identity)
        if link is None or not link.live:
            return
        self.sender.discard(identity)
        self.front.lose_link(link, f"partition {link.name} lost: {why}")
        self.on_change()

    def exited(self, name: str, returncode: Optional[int]) -> None:
        """A partition's process ended (noticed by whoever started it).

        Exit code 0 means it stopped in order: its last task events and its StoppedMsg were
        sent before it exited and may still be on their way; they settle the link, in order
        (declaring it lost now would drop them and FAIL tasks it reported ended). Should they
        never come, the heartbeat watcher declares it lost. Any other end: lost at once."""
        if returncode == 0:
            _log.debug("partition %s exited with code 0; its stop report settles it", name)
            return
        self.lose(name, f"partition {name} lost: its process exited with code {returncode}")

    def lose(self, name: str, reason: str) -> None:
        """A partition is gone for good: lost at once."""
        for identity, link in self.links.items():
            if link.name == name and link.live:
                self.watcher.forget(identity)
                self.sender.discard(identity)
                self.front.lose_link(link, reason)
                self.on_change()

    def live_links(self) -> List[PartitionLink]:
        return [link for link in self.links.values() if link.live]
