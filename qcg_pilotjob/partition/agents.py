"""Running tasks through node agents (Slurm): :class:`AgentExecutor`.

The partition manager binds a ROUTER for its agents and starts one agent per node with
``srun --overlap`` (all in parallel). Nodes whose agent does not say hello within the
start-up deadline are left out with a warning. A task is sent to the agent on the first
node of its allocation; models that span nodes (``srunmpi``, ``openmpi``, ``intelmpi``)
start their other ranks from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import zmq
import zmq.asyncio

from ..protocol.codec import DecodeError, decode_batch, encode_batch
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
from ..protocol.transport import async_context, bind_request_server
from ..resources import Allocation
from .environment import build_plan
from .executor import STOP_WALLTIME, LocalExecutor, RunningTask, TaskKey
from .scheduler import TaskSpec

__all__ = ["AgentExecutor"]

_log = logging.getLogger(__name__)


class _AgentConn:
    __slots__ = ("cpus", "gpus", "identity", "last_seen", "lost", "node", "outbox", "pid", "proc")

    def __init__(self, node: str, proc: Optional[subprocess.Popen]) -> None:
        self.node = node
        self.proc = proc
        self.identity: Optional[bytes] = None
        self.cpus: List[int] = []
        self.gpus: List[str] = []
        self.pid = 0
        self.outbox: List[Message] = []
        self.last_seen = time.monotonic()
        self.lost = False


class AgentExecutor(LocalExecutor):
    """Starts tasks on their nodes through node agents."""

    launch = "agents"

    def __init__(self, loop: asyncio.AbstractEventLoop, *, nodes: List[str], srun_extra: Optional[List[str]] = None,
                 heartbeat: float = 1.0, **kw: Any) -> None:
        super().__init__(loop, **kw)
        self.base_env = {}
        self.node_names = list(nodes)
        self.srun_extra = list(srun_extra or [])
        self.heartbeat = heartbeat
        self.lost_after = 30 * heartbeat  # a dead agent's srun step ends at once
        self.agents: Dict[str, _AgentConn] = {}
        self.by_identity: Dict[bytes, _AgentConn] = {}
        self.on_node_lost: Optional[Any] = None
        self.on_pid: Optional[Any] = None
        self._dirty: List[_AgentConn] = []
        self._flush_pending = False
        self._hello = asyncio.Event()
        self._timer: Optional[asyncio.TimerHandle] = None
        self._recv_task: Optional[asyncio.Task[None]] = None

    # --- start-up ----------------------------------------------------------------------
    async def start_agents(self, timeout: float) -> List[str]:
        """Start an agent on every node; returns the nodes whose agent did not come up."""
        ctx: zmq.asyncio.Context = async_context()
        self.sock, self.address = bind_request_server(ctx, "*", None, 20000, 40000)
        self._recv_task = self.loop.create_task(self._receive())
        logdir = os.path.join(os.path.dirname(self.hostfile_dir), "agents")
        os.makedirs(logdir, exist_ok=True)
        for node in self.node_names:
            cmd = ["srun", "--overlap", "-N", "1", "-n", "1", "-w", node, "--cpu-bind=none", "--mem-per-cpu=0",
                   "--oversubscribe", "--overcommit", "-u", "-J", f"agent-{node}", *self.srun_extra,
                   sys.executable, "-m", "qcg_pilotjob.launcher.agent", "--address", self.address, "--node", node,
                   "--heartbeat", str(self.heartbeat), "--log", os.path.join(logdir, f"{node}.log")]
            with open(os.path.join(logdir, f"{node}.srun.log"), "wb") as err:
                try:
                    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                            start_new_session=True)
                except OSError as exc:
                    _log.warning("cannot start the agent on %s: %s", node, exc)
                    proc = None
            self.agents[node] = _AgentConn(node, proc)
        deadline = self.loop.time() + timeout
        while any(a.identity is None for a in self.agents.values()):
            left = deadline - self.loop.time()
            if left <= 0:
                break
            if all(a.identity is not None or a.proc is None or a.proc.poll() is not None
                   for a in self.agents.values()):
                break  # the missing ones died
            self._hello.clear()
            with contextlib.suppress(asyncio.TimeoutError):  # re-check dead sruns at least once a second
                await asyncio.wait_for(self._hello.wait(), min(left, 1.0))
        missing = [n for n, a in self.agents.items() if a.identity is None]
        for node in missing:
            _log.warning("no agent came up on node %s: the node is left out", node)
            a = self.agents.pop(node)
            if a.proc is not None and a.proc.poll() is None:
                a.proc.kill()
        self._timer = self.loop.call_later(self.heartbeat, self._beat)
        return missing

    def agent_cpus(self, node: str) -> List[int]:
        agent = self.agents.get(node)
        return agent.cpus if agent is not None else []

    def agent_gpus(self, node: str) -> List[str]:
        agent = self.agents.get(node)
        return agent.gpus if agent is not None else []

    # --- sending -----------------------------------------------------------------------
    def _queue(self, agent: _AgentConn, msg: Message) -> None:
        if agent.lost or agent.identity is None:
            return
        if not agent.outbox:
            self._dirty.append(agent)
        agent.outbox.append(msg)
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        dirty, self._dirty = self._dirty, []
        for agent in dirty:
            msgs, agent.outbox = agent.outbox, []
            if msgs and agent.identity is not None and not agent.lost:
                try:
                    self.sock.send_multipart([agent.identity, encode_batch(msgs)], flags=zmq.NOBLOCK)
                except zmq.ZMQError as exc:
                    _log.warning("cannot send to the agent on %s: %s", agent.node, exc)

    # --- receiving ---------------------------------------------------------------------
    async def _receive(self) -> None:
        while True:
            try:
                frames = await self.sock.recv_multipart()
            except zmq.ZMQError as exc:
                if exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                continue
            if len(frames) != 2:
                continue
            identity, payload = frames
            try:
                msgs = decode_batch(payload)
            except DecodeError as exc:
                _log.warning("dropped a bad frame from an agent: %s", exc)
                continue
            agent = self.by_identity.get(identity)
            for msg in msgs:
                if isinstance(msg, AgentHelloMsg):
                    agent = self._hello_from(identity, msg)
                elif agent is None:
                    continue
                elif isinstance(msg, StartedMsg):
                    self._started(msg)
                elif isinstance(msg, ExitMsg):
                    self._exited(tuple(msg.key), msg.code, msg.time)
            if agent is not None:
                agent.last_seen = time.monotonic()

    def _hello_from(self, identity: bytes, msg: AgentHelloMsg) -> Optional[_AgentConn]:
        agent = self.agents.get(msg.node)
        if agent is None or msg.version != PROTOCOL_VERSION:
            _log.warning("unexpected agent hello from node %s (version %s)", msg.node, msg.version)
            return None
        agent.identity = identity
        agent.cpus = list(msg.cpus)
        agent.gpus = [str(g) for g in msg.gpus]
        agent.pid = msg.pid
        self.by_identity[identity] = agent
        self._hello.set()
        return agent

    def _key(self, raw: Any) -> TaskKey:
        return (str(raw[0]), None if raw[1] is None else int(raw[1]))

    def _started(self, msg: StartedMsg) -> None:
        task = self.running.get(self._key(msg.key))
        if task is None:
            return
        if msg.error is not None:
            task.error = msg.error
            self._exited(task.key, -1, time.time())
            return
        task.pid = msg.pid
        if self.on_pid is not None:
            self.on_pid(task)

    def _exited(self, key: Any, code: int, when: float) -> None:
        task = self.running.pop(self._key(key), None)
        if task is None:
            return
        for timer in task.timers:
            timer.cancel()
        if task.plan.hostfile:
            with contextlib.suppress(OSError):
                os.unlink(task.plan.hostfile)
        if not self.running:
            self._idle.set()
        self.on_exit(task, code, when)

    # --- heartbeats and lost agents ------------------------------------------------------
    def _beat(self) -> None:
        now = time.monotonic()
        for agent in list(self.agents.values()):
            if agent.lost:
                continue
            dead = agent.proc is not None and agent.proc.poll() is not None
            if dead or now - agent.last_seen > self.lost_after:
                self._lose(agent, "its srun step ended" if dead else
                           f"no message for {now - agent.last_seen:.1f}s")
            else:
                self._queue(agent, HeartbeatMsg())
        self._timer = self.loop.call_later(self.heartbeat, self._beat)

    def _lose(self, agent: _AgentConn, why: str) -> None:
        agent.lost = True
        _log.error("node agent on %s lost (%s): its tasks fail and the node is left out", agent.node, why)
        if self.on_node_lost is not None:
            self.on_node_lost(agent.node)
        for task in [t for t in self.running.values() if t.allocation.parts[0].name == agent.node]:
            task.error = f"node agent on {agent.node} lost ({why})"
            self._exited(task.key, -9, time.time())

    # --- the executor interface ----------------------------------------------------------
    def start(self, spec: TaskSpec, iteration: Optional[int], alloc: Allocation) -> Optional[str]:
        self._steps += 1
        node = alloc.parts[0].name
        agent = self.agents.get(node)
        if agent is None or agent.lost:
            return f"no agent on node {node}"
        try:
            plan = build_plan(spec.desc, iteration, alloc, root_wd=self.root_wd, base_env={},
                              step_id=str(self._steps), env_schema=self.env_schema,
                              zmq_address=self.zmq_address, hostfile_dir=self.hostfile_dir, launch="agents")
        except Exception as exc:
            return f"cannot prepare the task: {exc}"
        if plan.venv is not None and not os.path.isfile(os.path.join(plan.venv, "bin", "activate")):
            return f"virtual environment {plan.venv!r} not found (no bin/activate)"
        if plan.hostfile:
            self._ensure_dir(self.hostfile_dir)
            with open(plan.hostfile, "w") as fh:
                fh.write("".join(f"{p.name}\n" * len(p.cores) for p in alloc.parts))
        task = RunningTask(spec, iteration, alloc, plan, None, 0, time.time())
        self.running[task.key] = task
        self._idle.clear()
        cores = [int(c) for c in alloc.parts[0].core_ids if c.isdigit()] or None
        self._queue(agent, RunMsg([spec.name, iteration], plan.argv, plan.wd, plan.env, plan.stdin, plan.stdout,
                                  plan.stderr, cores))
        wt = spec.desc.resources.wt
        if wt is not None:
            task.timers.append(self.loop.call_later(wt, self.stop, task.key, STOP_WALLTIME))
        return None

    def _signal(self, task: RunningTask, sig: int) -> None:
        if task.key not in self.running:
            return
        agent = self.agents.get(task.allocation.parts[0].name)
        if agent is not None:
            self._queue(agent, SignalMsg([task.key[0], task.key[1]], int(sig)))

    def close(self) -> None:
        for agent in self.agents.values():
            self._queue(agent, AgentStopMsg())
        self._flush()
        if self._timer is not None:
            self._timer.cancel()

    async def stop_agents(self, timeout: float = 10.0) -> None:
        """Ask every agent to exit and wait for their srun steps to end."""
        self.close()
        procs = [a.proc for a in self.agents.values() if a.proc is not None]

        def wait_all() -> None:
            deadline = time.monotonic() + timeout
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()

        await self.loop.run_in_executor(None, wait_all)
        if self._recv_task is not None:
            self._recv_task.cancel()
        self.sock.close(linger=0)

