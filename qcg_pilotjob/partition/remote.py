"""A partition manager in its own process, driven by a governor (``--parent ADDR``).

It registers with the governor, then runs what it is sent with a
:class:`~.manager.PartitionManager`, batching its messages into one frame per loop
iteration. It stops when the governor says so, when the governor has been silent for
``lost_after`` seconds, when its lifeline pipe (from a governor that started it) closes,
or on SIGTERM/SIGINT; running tasks are stopped first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from typing import Any, Dict, List, Optional

from ..errors import ResourceError
from ..lifeline import watch_lifeline
from ..protocol.batch import BatchSender
from ..protocol.codec import DecodeError, decode_batch, encode_batch, receive_batches
from ..protocol.messages import (
    PROTOCOL_VERSION,
    HeartbeatMsg,
    Message,
    RegisteredMsg,
    RegisterMsg,
    ShutdownMsg,
    StoppedMsg,
)
from ..protocol.transport import async_context, connect_dealer
from ..resources import ResourcePool
from .manager import PartitionManager

__all__ = ["RemotePartition"]

_log = logging.getLogger(__name__)


class RemotePartition:
    def __init__(self, partition_id: str, parent: str, pool: ResourcePool, *,
                 executor_options: Dict[str, Any], lifeline_fd: Optional[int] = None,
                 register_timeout: float = 60.0, dry_run: bool = False, launcher: str = "local",
                 deadline: Optional[float] = None) -> None:
        self.id = partition_id
        self.parent = parent
        self.pool = pool
        self.executor_options = executor_options
        self.lifeline_fd = lifeline_fd
        self.register_timeout = register_timeout
        self.dry_run = dry_run
        self.launcher = launcher
        self.deadline = deadline
        self._stopped = asyncio.Event()
        self._last_seen = time.monotonic()
        self.heartbeat = 1.0
        self.lost_after = 5.0

    def _send(self, msg: Message) -> None:
        self.sender.send(msg)
        if isinstance(msg, StoppedMsg):
            self.sender.flush()
            self._stopped.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        # a routing id of its own: a ROUTER drops a peer whose routing id is taken, so a
        # duplicate --id would never hear the governor's refusal
        self.sock = connect_dealer(async_context(), self.parent,
                                      f"{self.id}:{socket.gethostname()}:{os.getpid()}")
        self.sender = BatchSender(self.sock, "the governor")
        manager = PartitionManager(loop, self.pool, self._send, executor_options=self.executor_options,
                                   partition_id=self.id, dry_run=self.dry_run, launcher=self.launcher,
                                   deadline=self.deadline)
        try:
            missing = await manager.prepare()  # node agents (Slurm), before telling the governor our nodes
        except ResourceError as exc:
            _log.error("%s", exc)
            self.sock.close(linger=0)
            return 4
        if missing:
            _log.warning("nodes left out (no agent came up): %s", ", ".join(missing))
        self.pool = manager.pool
        nodes = [n.to_dict() for n in self.pool.nodes]
        self.sock.send(encode_batch([RegisterMsg(self.id, PROTOCOL_VERSION, nodes, socket.gethostname(),
                                                 os.getpid())]))
        try:
            frame = await asyncio.wait_for(self.sock.recv(), self.register_timeout)
            reply = decode_batch(frame)
        except asyncio.TimeoutError:
            _log.error("no answer from the governor at %s within %gs", self.parent, self.register_timeout)
            self.sock.close(linger=0)
            await manager.finish()
            return 3
        except DecodeError as exc:
            _log.error("bad registration reply from the governor: %s", exc)
            self.sock.close(linger=0)
            await manager.finish()
            return 3
        answer = next((m for m in reply if isinstance(m, RegisteredMsg)), None)
        if answer is None or not answer.ok:
            _log.error("registration refused by the governor: %s", answer.message if answer else "no answer")
            self.sock.close(linger=0)
            await manager.finish()
            return 2
        self.heartbeat = answer.heartbeat
        self.lost_after = 30 * answer.heartbeat  # a dead governor's lifeline or step ends sooner
        _log.info("registered with the governor at %s", self.parent)
        stop_reason: List[str] = []

        def stop(reason: str) -> None:
            if not stop_reason:
                _log.warning("stopping: %s", reason)
                stop_reason.append(reason)
                manager.receive(ShutdownMsg(reason))

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, f"signal {sig}")
        if self.lifeline_fd is not None:
            watch_lifeline(loop, self.lifeline_fd, lambda: stop("the governor process exited"))
        timer: List[asyncio.TimerHandle] = []

        def beat() -> None:
            if time.monotonic() - self._last_seen > self.lost_after:
                stop(f"no message from the governor for {self.lost_after:g}s")
            else:
                self._send(HeartbeatMsg(self.pool.used_cores))
            timer[:] = [loop.call_later(self.heartbeat, beat)]

        timer.append(loop.call_later(self.heartbeat, beat))
        receiver = loop.create_task(self._receive(manager, stop))
        await self._stopped.wait()
        receiver.cancel()
        for t in timer:
            t.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        self.sock.close(linger=2000)
        await manager.finish()
        return 0

    async def _receive(self, manager: PartitionManager, stop: Any) -> None:
        async for msgs in receive_batches(self.sock, "the governor", _log):
            self._last_seen = time.monotonic()
            for msg in msgs:
                if isinstance(msg, HeartbeatMsg):
                    continue
                if isinstance(msg, ShutdownMsg):
                    stop(f"the governor asked ({msg.reason})")
                    continue
                manager.receive(msg)
