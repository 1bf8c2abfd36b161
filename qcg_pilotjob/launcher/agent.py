"""The node agent: one per node, started once (``srun --overlap``), runs that node's tasks.

``python -m qcg_pilotjob.launcher.agent --address ADDR --node NAME`` connects a DEALER to
its partition manager, says hello (the CPUs it may use, its GPUs), then starts the tasks
it is sent, bound to CPUs, and reports their starts and exits in batches. It exits when
told to, when the partition has been silent for ``lost_after`` seconds, or on SIGTERM;
its tasks are killed first.

Binding: the task's core positions (0..n-1 on the node, as Slurm counts them) are mapped
onto the CPUs this agent may really use (``sched_getaffinity``). If the node has fewer
CPUs than Slurm said, positions wrap around (with one warning). The mask is set on the
agent's own thread just before the fork, so the task starts bound, with no extra exec.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from ..protocol.batch import BatchSender
from ..protocol.codec import receive_batches
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
from ..protocol.transport import async_context, connect_dealer

__all__ = ["Agent", "main"]

_log = logging.getLogger("qcg_pilotjob.agent")

Key = Tuple[Any, ...]


class Agent:
    def __init__(self, address: str, node: str, heartbeat: float = 1.0) -> None:
        self.address = address
        self.node = node
        self.heartbeat = heartbeat
        self.lost_after = 30 * heartbeat
        try:
            self.cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            self.cpus = list(range(os.cpu_count() or 1))
        self.gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
        self.procs: Dict[Key, Tuple[subprocess.Popen, int]] = {}
        self._last_seen = time.monotonic()
        self._done = asyncio.Event()
        self._warned_wrap = False

    # --- messages ----------------------------------------------------------------------
    def _send(self, msg: Message) -> None:
        self.sender.send(msg)

    def _flush(self) -> None:
        self.sender.flush()

    # --- tasks -------------------------------------------------------------------------
    def _bind_cpus(self, cores: Optional[List[int]]) -> Optional[List[int]]:
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
        key = tuple(msg.key)
        cpus = self._bind_cpus(msg.cores)
        env = dict(os.environ)
        env.update(msg.env)
        if cpus is not None:
            env["QCG_PM_CPU_SET"] = ",".join(map(str, cpus))
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
            os.makedirs(msg.wd, exist_ok=True)
            old = os.sched_getaffinity(0) if cpus is not None else None
            try:
                if cpus is not None:
                    os.sched_setaffinity(0, cpus)
                proc = subprocess.Popen(msg.argv, cwd=msg.wd, env=env, stdin=stdin, stdout=stdout,
                                        stderr=stderr, start_new_session=True, close_fds=True)
            finally:
                if old is not None:
                    os.sched_setaffinity(0, old)
        except (OSError, ValueError) as exc:
            self._send(StartedMsg(list(key), 0, f"cannot start on {self.node}: {exc}", cpus))
            return
        finally:
            for fd in fds:
                os.close(fd)
        pidfd = os.pidfd_open(proc.pid)
        self.procs[key] = (proc, pidfd)
        asyncio.get_running_loop().add_reader(pidfd, self._reap, key)
        self._send(StartedMsg(list(key), proc.pid, None, cpus))

    def _reap(self, key: Key) -> None:
        entry = self.procs.get(key)
        if entry is None:
            return
        proc, pidfd = entry
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid == 0:
            return
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code
        del self.procs[key]
        self._send(ExitMsg(list(key), code, time.time()))
        if self._stopping and not self.procs:
            self._done.set()

    def _signal(self, key: Key, sig: int) -> None:
        entry = self.procs.get(key)
        if entry is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(entry[0].pid, sig)

    # --- main --------------------------------------------------------------------------
    _stopping = False

    def stop(self, reason: str) -> None:
        if self._stopping:
            return
        self._stopping = True
        _log.info("agent on %s stopping: %s", self.node, reason)
        for key in list(self.procs):
            self._signal(key, signal.SIGKILL)
        if not self.procs:
            self._done.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.sock = connect_dealer(async_context(), self.address, f"agent:{self.node}:{os.getpid()}")
        self.sender = BatchSender(self.sock, "the partition manager")
        self._send(AgentHelloMsg(self.node, PROTOCOL_VERSION, self.cpus, self.gpus, os.getpid()))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, f"signal {sig}")
        timer: List[asyncio.TimerHandle] = []

        def beat() -> None:
            if time.monotonic() - self._last_seen > self.lost_after:
                self.stop(f"no message from the partition manager for {self.lost_after:g}s")
            else:
                self._send(HeartbeatMsg(len(self.procs)))
            timer[:] = [loop.call_later(self.heartbeat, beat)]

        timer.append(loop.call_later(self.heartbeat, beat))
        receiver = loop.create_task(self._receive())
        await self._done.wait()
        self._flush()
        receiver.cancel()
        for t in timer:
            t.cancel()
        self.sock.close(linger=2000)
        return 0

    async def _receive(self) -> None:
        async for msgs in receive_batches(self.sock, "the partition manager", _log):
            self._last_seen = time.monotonic()
            for msg in msgs:
                if isinstance(msg, RunMsg):
                    if not self._stopping:
                        self._run(msg)
                elif isinstance(msg, SignalMsg):
                    self._signal(tuple(msg.key), msg.sig)
                elif isinstance(msg, AgentStopMsg):
                    self.stop("the partition manager asked")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="qcg_pilotjob.launcher.agent",
                                     description="qcg_pilotjob node agent (started by a partition manager)")
    parser.add_argument("--address", required=True, help="the partition manager's agent endpoint")
    parser.add_argument("--node", default=socket.gethostname(), help="this node's name in the allocation")
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--log", default=None, help="log file")
    args = parser.parse_args(argv)
    if args.log:
        handler: logging.Handler = logging.FileHandler(args.log)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s agent " + args.node + ": %(message)s"))
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    sys.exit(asyncio.run(Agent(args.address, args.node, args.heartbeat).run()))


if __name__ == "__main__":
    main()
