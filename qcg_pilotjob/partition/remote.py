"""A partition manager in its own process, driven by a governor (``--parent ADDR``).

It registers with the governor, then runs what it is sent with a
:class:`~.manager.PartitionManager`, batching its messages into one frame per loop
iteration. Work may arrive in the same frame as the acceptance (a governor with work
waiting routes some at once). It stops when the governor says so or refuses it (e.g.
after declaring it lost), when the governor has been silent for ``lost_after`` seconds,
when its lifeline pipe (from a governor that started it) closes, or on SIGTERM/SIGINT;
running tasks are stopped first. Exit codes: 0 stopped, 2 refused, 3 no governor
answered, 4 no node agent came up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ResourceError
from ..keys import RunKeys
from ..lifeline import watch_lifeline
from ..protocol.batch import BatchSender
from ..protocol.codec import DecodeError, decode_batch
from ..protocol.heartbeat import LOST_AFTER_BEATS, HeartbeatWatcher
from ..protocol.messages import (
    PROTOCOL_VERSION,
    HeartbeatMsg,
    Message,
    RegisteredMsg,
    RegisterMsg,
    ShutdownMsg,
    StoppedMsg,
)
from ..protocol.receive import FrameGuard, receive_loop
from ..protocol.transport import async_context, connect_dealer
from ..resources import ResourcePool
from .manager import PartitionManager

__all__ = ["RemotePartition"]

_log = logging.getLogger(__name__)

GOVERNOR = "the governor"


class RemotePartition:
    def __init__(self, partition_id: str, parent: str, pool: ResourcePool, *,
                 executor_options: Dict[str, Any], lifeline_fd: Optional[int] = None,
                 register_timeout: float = 60.0, dry_run: bool = False, launcher: str = "local",
                 deadline: Optional[float] = None, keys: Optional[RunKeys] = None,
                 agent_timeout: float = 120.0, ready_threshold: Optional[float] = None) -> None:
        self.id = partition_id
        self.parent = parent
        self.pool = pool
        self.executor_options = executor_options
        self.lifeline_fd = lifeline_fd
        self.register_timeout = register_timeout
        self.dry_run = dry_run
        self.launcher = launcher
        self.deadline = deadline
        self.keys = keys
        self.agent_timeout = agent_timeout
        self.ready_threshold = ready_threshold
        self.guard = FrameGuard(_log, "partition")
        self._stopped = asyncio.Event()
        self._stop_reason: List[str] = []
        self.manager: Optional[PartitionManager] = None

    def _send(self, msg: Message) -> None:
        self.sender.send(msg)
        if isinstance(msg, StoppedMsg):
            self.sender.flush()
            self._stopped.set()

    def stop(self, reason: str) -> None:
        if not self._stop_reason:
            _log.warning("stopping: %s", reason)
            self._stop_reason.append(reason)
            assert self.manager is not None
            self.manager.receive(ShutdownMsg(reason))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        # a routing id of its own: a ROUTER drops a peer whose routing id is taken, so a
        # duplicate --id would never hear the governor's refusal
        self.sock = connect_dealer(async_context(), self.parent, f"{self.id}:{socket.gethostname()}:{os.getpid()}",
                                   self.keys)
        self.sender = BatchSender(self.sock, GOVERNOR)
        manager = self.manager = PartitionManager(
            loop, self.pool, self._send, executor_options=self.executor_options, partition_id=self.id,
            dry_run=self.dry_run, launcher=self.launcher, deadline=self.deadline)
        try:
            try:
                # node agents (Slurm), before telling the governor our nodes
                missing = await manager.prepare(self.agent_timeout, self.ready_threshold)
            except ResourceError as exc:
                _log.error("%s", exc)
                return 4
            if missing:
                _log.warning("nodes left out (no agent came up): %s", ", ".join(missing))
            self.pool = manager.pool
            code, rest = await self._register()
            if code != 0:
                await manager.finish()
                return code
            return await self._serve(loop, manager, rest)
        finally:
            self.sock.close(linger=2000 if self._stopped.is_set() else 0)

    async def _register(self) -> Tuple[int, List[Message]]:
        """Register; returns an exit code (0: accepted) and what came with the acceptance."""
        nodes = [n.to_dict() for n in self.pool.nodes]
        self.sender.send(RegisterMsg(self.id, PROTOCOL_VERSION, nodes, socket.gethostname(), os.getpid()))
        self.sender.flush()
        deadline = asyncio.get_running_loop().time() + self.register_timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                frame = await asyncio.wait_for(self.sock.recv(), max(left, 0.0))
            except asyncio.TimeoutError:
                _log.error("no answer from the governor at %s within %gs", self.parent, self.register_timeout)
                return 3, []
            try:
                msgs = decode_batch(frame)
            except DecodeError as exc:
                self.guard.bad_frame(GOVERNOR, exc)
                continue
            pos = next((i for i, m in enumerate(msgs) if isinstance(m, RegisteredMsg)), None)
            if pos is None:
                continue
            answer = msgs[pos]
            assert isinstance(answer, RegisteredMsg)
            if not answer.ok:
                _log.error("registration refused by the governor: %s", answer.message)
                return 2, []
            self.heartbeat = answer.heartbeat
            _log.info("registered with the governor at %s", self.parent)
            return 0, msgs[pos + 1:]

    async def _serve(self, loop: asyncio.AbstractEventLoop, manager: PartitionManager, first: List[Message]) -> int:
        watcher: HeartbeatWatcher[str] = HeartbeatWatcher(
            self.heartbeat, LOST_AFTER_BEATS * self.heartbeat,
            send_beat=lambda _: self._send(HeartbeatMsg(self.pool.used_cores, self.pool.node_usage())),
            on_lost=lambda _, why: self.stop(f"the governor is lost: {why}"))
        watcher.watch(GOVERNOR)
        self.watcher = watcher
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, f"signal {sig}")
        if self.lifeline_fd is not None:
            watch_lifeline(loop, self.lifeline_fd, lambda: self.stop("the governor process exited"))
        watcher.start(loop)
        self._handle(first)
        receiver = loop.create_task(receive_loop(self.sock, self._on_frames, self.guard, lambda _: GOVERNOR))
        try:
            await self._stopped.wait()
        finally:
            receiver.cancel()
            watcher.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        await manager.finish()
        return 0

    def _on_frames(self, frames: List[bytes]) -> None:
        try:
            msgs = decode_batch(frames[-1])
        except DecodeError as exc:
            self.guard.bad_frame(GOVERNOR, exc)
            return
        self.watcher.seen(GOVERNOR)
        self._handle(msgs)

    def _handle(self, msgs: List[Message]) -> None:
        assert self.manager is not None
        for msg in msgs:
            if isinstance(msg, HeartbeatMsg):
                continue
            if isinstance(msg, ShutdownMsg):
                self.stop(f"the governor asked ({msg.reason})")
            elif isinstance(msg, RegisteredMsg):
                if not msg.ok:
                    self.stop(f"the governor refused this partition: {msg.message}")
            else:
                self.manager.receive(msg)
