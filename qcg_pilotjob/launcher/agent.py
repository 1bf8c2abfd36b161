"""The node agent: one per node, started once (``srun --overlap``), runs that node's tasks.

``python -m qcg_pilotjob.launcher.agent --address ADDR --node NAME`` connects a DEALER to
its partition manager, says hello (the CPUs it may use, its GPUs), then starts the tasks
it is sent, bound to CPUs, and reports their starts and exits in batches (one
:class:`~..protocol.batch.BatchSender`). It exits when told to, when the partition has
been silent for ``lost_after`` seconds (the one
:class:`~..protocol.heartbeat.HeartbeatWatcher`, with the partition as its one peer), or
on SIGTERM; its tasks are killed first.

Frames arrive through the one receive loop (:func:`~..protocol.receive.receive_loop`):
an undecodable frame is logged and dropped, and every message is handled inside the
loop's guard, so nothing the partition sends ends the loop. A task that cannot be started
(an argv that cannot be executed, a working directory that cannot be made, files that
cannot be opened) is answered with a :class:`~..protocol.messages.StartedMsg` that holds
the error.

Binding: the task's core positions (0..n-1 on the node, as Slurm counts them) are mapped
onto the CPUs this agent may really use (``sched_getaffinity``). If the node has fewer
CPUs than Slurm said, positions wrap around (with one warning). The mask is set on the
agent's own thread just before the fork, so the task starts bound, with no extra exec.

What a task leaves behind when its main process exits is ended as by a local executor
(:class:`~..partition.leftovers.Leftovers`: SIGTERM to its group at once, SIGKILL after
``--kill-grace``, a ``/proc`` sweep for processes with the task's mark), unless
``--keep-task-children``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..gctune import tune
from ..keys import AGENT_KEYS_ENV, RunKeys
from ..partition.environment import TASK_MARK
from ..partition.leftovers import Leftovers
from ..protocol.batch import BatchSender
from ..protocol.codec import DecodeError, decode_batch
from ..protocol.heartbeat import LOST_AFTER_BEATS, HeartbeatWatcher
from ..protocol.messages import (
    PROTOCOL_VERSION,
    AgentHelloMsg,
    AgentStopMsg,
    ExitMsg,
    HeartbeatMsg,
    Message,
    RunMsg,
    SignalMsg,
    StartedMsg,
)
from ..protocol.receive import FrameGuard, receive_loop
from ..protocol.transport import async_context, connect_dealer

__all__ = ["Agent", "main"]

_log = logging.getLogger("qcg_pilotjob.agent")

Key = Tuple[Any, ...]

#: the agent's one peer
PARTITION = "the partition manager"


class Agent:
    """One node's agent; :meth:`run` serves the partition at ``address`` until stopped."""

    def __init__(self, address: str, node: str, heartbeat: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, kill_grace: float = 10.0,
                 keep_children: bool = False) -> None:
        self.address = address
        self.node = node
        self.kill_grace = kill_grace
        self.keep_children = keep_children
        self.leftovers: Optional[Leftovers] = None  # made in run(): it needs the loop
        self.marks: Dict[Key, str] = {}  # the running tasks' TASK_MARK
        try:
            self.cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            self.cpus = list(range(os.cpu_count() or 1))
        self.gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
        self.procs: Dict[Key, Tuple[subprocess.Popen, int]] = {}
        self.guard = FrameGuard(_log, f"agent on {node}")
        self.watcher: HeartbeatWatcher[str] = HeartbeatWatcher(
            heartbeat, LOST_AFTER_BEATS * heartbeat, send_beat=self._beat,
            on_lost=lambda _peer, why: self.stop(f"{PARTITION} is lost ({why})"), clock=clock)
        self.sender: Optional[BatchSender] = None
        self._done: Optional[asyncio.Event] = None
        self._stopping = False
        self._warned_wrap = False

    # --- messages ----------------------------------------------------------------------
    def _send(self, msg: Message) -> None:
        if self.sender is not None:
            self.sender.send(msg)

    def _beat(self, _peer: str) -> None:
        self._send(HeartbeatMsg(len(self.procs)))

    def _on_frame(self, frames: List[bytes]) -> None:
        """One frame from the partition: a batch; each message is handled on its own."""
        self.watcher.seen(PARTITION)
        if len(frames) != 1:
            self.guard.bad_frame(PARTITION, f"{len(frames)} frame parts, expected 1")
            return
        try:
            msgs = decode_batch(frames[0])
        except DecodeError as exc:
            self.guard.bad_frame(PARTITION, exc)
            return
        for msg in msgs:
            self.guard.run(PARTITION, functools.partial(self._on_message, msg))

    def _on_message(self, msg: Message) -> None:
        if isinstance(msg, RunMsg):
            if self._stopping:
                self._send(StartedMsg(list(msg.key), 0, f"the agent on {self.node} is stopping", None))
            else:
                self._run(msg)
        elif isinstance(msg, SignalMsg):
            self._signal(tuple(msg.key), msg.sig)
        elif isinstance(msg, AgentStopMsg):
            self.stop(f"{PARTITION} asked")
        elif not isinstance(msg, HeartbeatMsg):
            self.guard.bad_frame(PARTITION, f"unexpected {type(msg).__name__}")

    # --- tasks -------------------------------------------------------------------------
    def _bind_cpus(self, cores: Optional[List[int]]) -> Optional[List[int]]:
        """The CPUs a task on core positions ``cores`` is bound to.

        >>> agent = Agent("tcp://127.0.0.1:1", "n1")
        >>> agent.cpus = [4, 5]
        >>> agent._bind_cpus([0, 3])
        [4, 5]
        """
        if not cores:
            return None
        if max(cores) >= len(self.cpus) and not self._warned_wrap:
            _log.warning("node %s: tasks use core positions up to %d but this agent may use only %d CPUs %s; "
                         "positions wrap around", self.node, max(cores), len(self.cpus), self.cpus)
            self._warned_wrap = True
        # a wrapped position whose CPU is taken moves on to the next free one: k cores get min(k, n) CPUs
        n = len(self.cpus)
        chosen: List[int] = []
        for c in cores:
            cpu = next((self.cpus[(c + k) % n] for k in range(n) if self.cpus[(c + k) % n] not in chosen), None)
            if cpu is not None:
                chosen.append(cpu)
        return sorted(chosen)

    def _run(self, msg: RunMsg) -> None:
        """Start a task; a task that cannot start is answered with the error."""
        key = tuple(msg.key)
        if key in self.procs:
            self.guard.bad_frame(PARTITION, f"task {key} is already running: its second start is dropped")
            return
        cpus: Optional[List[int]] = None
        try:
            cpus = self._bind_cpus(msg.cores)
            proc = self._spawn(msg, cpus)
        except Exception as exc:  # whatever the message holds that cannot be run: answered, not raised
            self._send(StartedMsg(list(key), 0, f"cannot start on {self.node}: {exc}", cpus))
            return
        pidfd = os.pidfd_open(proc.pid)
        self.procs[key] = (proc, pidfd)
        mark = msg.env.get(TASK_MARK)
        if mark:
            self.marks[key] = mark
            if self.leftovers is not None:
                self.leftovers.started(mark)
        asyncio.get_running_loop().add_reader(pidfd, self._reap, key)
        self._send(StartedMsg(list(key), proc.pid, None, cpus))

    @staticmethod
    def _spawn(msg: RunMsg, cpus: Optional[List[int]]) -> subprocess.Popen:
        """The task's process, in its working directory, bound to ``cpus``; raises if it cannot start."""
        env = dict(os.environ)
        env.update(msg.env)
        if cpus is not None:
            env["QCG_PM_CPU_SET"] = ",".join(map(str, cpus))
        os.makedirs(msg.wd, exist_ok=True)
        fds: List[int] = []
        try:
            stdin = stdout = stderr = subprocess.DEVNULL
            flags_w = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            if msg.stdin:
                stdin = os.open(msg.stdin, os.O_RDONLY | os.O_CLOEXEC)
                fds.append(stdin)
            if msg.stdout:
                stdout = os.open(msg.stdout, flags_w, 0o644)
                fds.append(stdout)
            if msg.stderr:
                if msg.stderr == msg.stdout:
                    stderr = stdout
                else:
                    stderr = os.open(msg.stderr, flags_w, 0o644)
                    fds.append(stderr)
            old = os.sched_getaffinity(0) if cpus is not None else None
            try:
                if cpus is not None:
                    os.sched_setaffinity(0, cpus)
                return subprocess.Popen(msg.argv, cwd=msg.wd, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                                        start_new_session=True, close_fds=True)
            finally:
                if old is not None:
                    os.sched_setaffinity(0, old)
        finally:
            for fd in fds:
                os.close(fd)

    def _reap(self, key: Key) -> None:
        entry = self.procs.get(key)
        if entry is None:
            return
        proc, pidfd = entry
        try:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = proc.pid, 255 << 8
        if pid == 0:
            return
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
        mark = self.marks.pop(key, None)
        if self.leftovers is not None:  # the exit is reported at once; the leftovers end meanwhile
            self.leftovers.ended(proc.pid, mark)
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code
        del self.procs[key]
        self._send(ExitMsg(list(key), code, time.time()))
        if self._stopping and not self.procs and self._done is not None:
            self._done.set()

    def _signal(self, key: Key, sig: int) -> None:
        entry = self.procs.get(key)
        if entry is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(entry[0].pid, sig)

    # --- main --------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Kill every task; :meth:`run` returns once they have all been reaped."""
        if self._stopping:
            return
        self._stopping = True
        _log.info("agent on %s stopping: %s", self.node, reason)
        for key in list(self.procs):
            self._signal(key, signal.SIGKILL)
        if not self.procs and self._done is not None:
            self._done.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        if not self.keep_children:
            self.leftovers = Leftovers(loop, self.kill_grace)
        # the channel's keys come in the step's environment; tasks do not inherit them
        keys = RunKeys.from_text(os.environ.pop(AGENT_KEYS_ENV, ""))
        sock = connect_dealer(async_context(), self.address, f"agent:{self.node}:{os.getpid()}", keys)
        self.sender = BatchSender(sock, PARTITION, loop)
        self._send(AgentHelloMsg(self.node, PROTOCOL_VERSION, self.cpus, self.gpus, os.getpid()))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, f"signal {sig}")
        self.watcher.watch(PARTITION)
        self.watcher.start(loop)
        receiver = loop.create_task(receive_loop(sock, self._on_frame, self.guard, lambda _frames: PARTITION))
        if self._stopping and not self.procs:
            self._done.set()
        await self._done.wait()
        if self.leftovers is not None:
            self.leftovers.close()
        self.sender.flush()
        receiver.cancel()
        self.watcher.close()
        sock.close(linger=2000)
        return 0


def _arguments(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qcg_pilotjob.launcher.agent",
                                     description="qcg_pilotjob node agent (started by a partition manager)")
    parser.add_argument("--address", required=True, help="the partition manager's agent endpoint")
    parser.add_argument("--node", default=socket.gethostname(), help="this node's name in the allocation")
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--log", default=None, help="log file")
    parser.add_argument("--kill-grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument("--keep-task-children", action="store_true",
                        help="leave running the processes a task started when it ends")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run an agent with these command-line arguments; returns its exit code. Logging is
    set up here, not on import."""
    args = _arguments(argv)
    handler: logging.Handler = logging.FileHandler(args.log) if args.log else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s agent " + args.node + ": %(message)s"))
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    tune()
    try:
        return asyncio.run(Agent(args.address, args.node, args.heartbeat, kill_grace=args.kill_grace,
                                 keep_children=args.keep_task_children).run())
    finally:
        _log.removeHandler(handler)
        handler.close()


if __name__ == "__main__":
    sys.exit(main())
