"""Running tasks through node agents (Slurm): :class:`AgentExecutor` and its agent channel.

The partition manager binds a ROUTER for its agents and starts one agent per node as an
srun step named ``agent-<node>`` (all in parallel, :func:`~..slurm.srun.step_command`).
Nodes whose agent does not say hello within the start-up deadline are left out with a
warning. A task is sent to the agent on the first node of its allocation; models that
span nodes (``srunmpi``, ``openmpi``, ``intelmpi``) start their other ranks from there.

The channel's rules:

- Every frame goes through the one receive loop (:func:`~..protocol.receive.receive_loop`)
  and each message is handled inside its :class:`~..protocol.receive.FrameGuard`: no frame
  and no message ends the loop.
- A hello is accepted for a node of this partition that has no agent yet, in this
  protocol version (or repeated by the identity that already serves the node). Any other
  hello is logged at WARNING with the sender's identity, dropped, and the sender is told
  to stop: a second hello never takes a node over.
- Messages from an identity that did not say hello are dropped (a WARNING the first time
  for each identity). Start and exit reports for tasks the agent does not run are ignored.
- The one :class:`~..protocol.heartbeat.HeartbeatWatcher` watches the nodes: a node whose
  agent's srun step ended is lost at its next tick, one silent for ``lost_after`` seconds
  too. A lost node's tasks fail, ``on_node_lost`` is called (the partition stops using
  the node) and its agent, should it still be there, is told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Set

from ..auxdir import make_private_dir, open_private_fd
from ..keys import AGENT_KEYS_ENV, RunKeys
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
from ..protocol.receive import FrameGuard, identity_of, receive_loop
from ..protocol.transport import (
    Authenticator,
    async_context,
    bind_request_server,
    close_server,
    listen_host,
    start_authenticator,
)
from ..resources import Allocation
from ..slurm.srun import agent_step_name, cancel_steps, step_command
from .executor import Executor, RunningTask, TaskKey
from .scheduler import TaskSpec

__all__ = ["AgentExecutor"]

_log = logging.getLogger(__name__)


class _AgentConn:
    __slots__ = ("cpus", "gpus", "identity", "lost", "node", "pid", "proc")

    def __init__(self, node: str, proc: Optional[subprocess.Popen]) -> None:
        self.node = node
        self.proc = proc
        self.identity: Optional[bytes] = None
        self.cpus: List[int] = []
        self.gpus: List[str] = []
        self.pid = 0
        self.lost = False


def _name(identity: bytes) -> str:
    return identity_of([identity, b""])


class AgentExecutor(Executor):
    """Starts tasks on their nodes through node agents."""

    launch = "agents"

    def __init__(self, loop: asyncio.AbstractEventLoop, *, nodes: List[str], srun_extra: Optional[List[str]] = None,
                 heartbeat: float = 1.0, clock: Callable[[], float] = time.monotonic, **kw: Any) -> None:
        super().__init__(loop, **kw)
        self.base_env = {}
        self.node_names = list(nodes)
        self.srun_extra = list(srun_extra or [])
        self.agents: Dict[str, _AgentConn] = {}
        self.by_identity: Dict[bytes, _AgentConn] = {}
        self.on_node_lost: Optional[Callable[[str], None]] = None
        self.on_pid: Optional[Callable[[RunningTask], None]] = None
        self.guard = FrameGuard(_log, "agent channel")
        self.watcher: HeartbeatWatcher[str] = HeartbeatWatcher(
            heartbeat, LOST_AFTER_BEATS * heartbeat, send_beat=self._beat, on_lost=self._lose, gone=self._gone,
            clock=clock)
        self.sock: Any = None
        self.keys: Optional[RunKeys] = None
        self.auth: Optional[Authenticator] = None
        self.sender: Optional[BatchSender] = None
        self.address = ""
        self._hello = asyncio.Event()
        self._strangers: Set[bytes] = set()
        self._recv_task: Optional[asyncio.Task[None]] = None

    # --- start-up ----------------------------------------------------------------------
    def open_channel(self, sock: Any = None, send_sock: Any = None) -> None:
        """Serve the agents' ROUTER: a new one bound on a free port, or ``sock`` (tests),
        sending through ``send_sock`` (by default ``sock`` itself)."""
        if sock is None:
            # keys of its own: only the agents this partition starts (they get the client part
            # in their srun step's environment) can say hello
            self.keys = RunKeys.new()
            self.auth = start_authenticator(async_context(), self.keys)
            # agents on other nodes of the allocation reach it at this node's own address
            sock, self.address = bind_request_server(async_context(), listen_host(True), None, 20000, 40000,
                                                     self.keys, "agent channel")
            send_sock = sock
        self.sock = sock
        self.sender = BatchSender(send_sock if send_sock is not None else sock, "node agents", self.loop)
        self._recv_task = self.loop.create_task(receive_loop(sock, self._on_frame, self.guard, identity_of))

    async def start_agents(self, timeout: float) -> List[str]:
        """Start an agent on every node; returns the nodes whose agent did not come up."""
        if self.sock is None:
            self.open_channel()
        logdir = os.path.join(os.path.dirname(self.hostfile_dir), "agents")
        make_private_dir(logdir)
        for node in self.node_names:
            self.expect(node, self._spawn(node, logdir))
        missing = await self.wait_hellos(timeout)
        self.watcher.start(self.loop)
        return missing

    def _spawn(self, node: str, logdir: str) -> Optional[subprocess.Popen]:
        argv = [sys.executable, "-m", "qcg_pilotjob.launcher.agent", "--address", self.address, "--node", node,
                "--heartbeat", str(self.watcher.interval), "--log", os.path.join(logdir, f"{node}.log"),
                "--kill-grace", str(self.kill_grace), *(["--keep-task-children"] if self.keep_children else [])]
        cmd = step_command(node, argv, name=agent_step_name(node), unbuffered=True, oversubscribe=True,
                           extra=self.srun_extra)
        with os.fdopen(open_private_fd(os.path.join(logdir, f"{node}.srun.log"), "w"), "wb") as err:
            try:
                return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True,
                                        env=self._agent_env())
            except OSError as exc:
                _log.warning("cannot start the agent on %s: %s", node, exc)
                return None

    def _agent_env(self) -> Dict[str, str]:
        """The agents' environment: this one, and the channel's client keys (srun passes the
        environment on to the step; never a command line, which ``ps`` shows)."""
        env = dict(os.environ)
        if self.keys is not None:
            env[AGENT_KEYS_ENV] = self.keys.client_text()
        return env

    def expect(self, node: str, proc: Optional[subprocess.Popen]) -> None:
        """An agent for ``node`` was started as ``proc`` (None: it could not be)."""
        self.agents[node] = _AgentConn(node, proc)

    async def wait_hellos(self, timeout: float) -> List[str]:
        """Wait until every expected agent said hello, its srun step ended, or ``timeout``
        passed; the nodes without an agent are left out and returned."""
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
        return missing

    def agent_cpus(self, node: str) -> List[int]:
        agent = self.agents.get(node)
        return agent.cpus if agent is not None else []

    def agent_gpus(self, node: str) -> List[str]:
        agent = self.agents.get(node)
        return agent.gpus if agent is not None else []

    # --- receiving ---------------------------------------------------------------------
    def _on_frame(self, frames: List[bytes]) -> None:
        """One ROUTER frame: ``[identity, batch]``; each message is handled on its own."""
        peer = identity_of(frames)
        if len(frames) != 2:
            self.guard.bad_frame(peer, f"{len(frames)} frame parts, expected 2")
            return
        identity, payload = frames
        try:
            msgs = decode_batch(payload)
        except DecodeError as exc:
            self.guard.bad_frame(peer, exc)
            return
        for msg in msgs:
            self.guard.run(peer, functools.partial(self._on_message, identity, msg))

    def _on_message(self, identity: bytes, msg: Message) -> None:
        if isinstance(msg, AgentHelloMsg):
            self._hello_from(identity, msg)
            return
        agent = self.by_identity.get(identity)
        if agent is None:
            if identity not in self._strangers:
                self._strangers.add(identity)
                self.guard.bad_frame(_name(identity), f"{type(msg).__name__} from a peer that did not say hello "
                                                      "(dropped, as is all it sends before a hello)")
            return
        self.watcher.seen(agent.node)  # a lost node is no longer watched: it stays lost
        if isinstance(msg, StartedMsg):
            self._started(agent, msg)
        elif isinstance(msg, ExitMsg):
            task = self._task_of(agent, msg.key)
            if task is not None:
                self._finished(task, msg.code, msg.time)
        elif not isinstance(msg, HeartbeatMsg):
            self.guard.bad_frame(_name(identity), f"unexpected {type(msg).__name__} from an agent")

    def _hello_problem(self, identity: bytes, msg: AgentHelloMsg) -> Optional[str]:
        """Why this hello cannot be accepted, or None."""
        if msg.version != PROTOCOL_VERSION:
            return f"protocol version {msg.version!r}, expected {PROTOCOL_VERSION}"
        agent = self.agents.get(msg.node) if isinstance(msg.node, str) else None
        if agent is None:
            return f"node {msg.node!r} is not a node of this partition (or was left out)"
        if agent.lost:
            return f"node {msg.node} was lost"
        if agent.identity is not None and agent.identity != identity:
            return f"node {msg.node} already has an agent ({_name(agent.identity)})"
        other = self.by_identity.get(identity)
        if other is not None and other.node != msg.node:
            return f"this agent already serves node {other.node}"
        return None

    def _hello_from(self, identity: bytes, msg: AgentHelloMsg) -> None:
        problem = self._hello_problem(identity, msg)
        if problem is not None:
            self.guard.bad_frame(_name(identity), f"agent hello refused: {problem}")
            if self.sender is not None and identity not in self.by_identity:
                self.sender.send(AgentStopMsg(), identity)  # a refused agent exits instead of waiting
            return
        agent = self.agents[msg.node]
        if agent.identity == identity:
            return  # said again: nothing changes
        agent.identity = identity
        agent.cpus = list(msg.cpus)
        agent.gpus = [str(g) for g in msg.gpus]
        agent.pid = msg.pid
        self.by_identity[identity] = agent
        self._strangers.discard(identity)
        self.watcher.watch(agent.node)
        self._hello.set()
        _log.info("node agent on %s connected (pid %s, CPUs %s, GPUs %s)", agent.node, agent.pid, agent.cpus,
                  agent.gpus or "none")

    def _task_of(self, agent: _AgentConn, raw: List[Any]) -> Optional[RunningTask]:
        """The running task of ``agent`` whose key is ``raw``; None if it runs no such task."""
        key: TaskKey = (str(raw[0]), None if raw[1] is None else int(raw[1]))
        task = self.running.get(key)
        if task is None or task.allocation.parts[0].name != agent.node:
            return None
        return task

    def _started(self, agent: _AgentConn, msg: StartedMsg) -> None:
        task = self._task_of(agent, msg.key)
        if task is None:
            return
        if msg.error is not None:
            task.error = msg.error
            self._finished(task, -1, time.time())
            return
        task.pid = msg.pid
        if self.on_pid is not None:
            self.on_pid(task)

    # --- heartbeats and lost agents ------------------------------------------------------
    def _send(self, agent: _AgentConn, msg: Message) -> None:
        if self.sender is not None and agent.identity is not None and not agent.lost:
            self.sender.send(msg, agent.identity)

    def _beat(self, node: str) -> None:
        agent = self.agents.get(node)
        if agent is not None:
            self._send(agent, HeartbeatMsg())

    def _gone(self, node: str) -> Optional[str]:
        agent = self.agents.get(node)
        proc = agent.proc if agent is not None else None
        if proc is not None and proc.poll() is not None:
            return f"its srun step ended with exit code {proc.returncode}"
        return None

    def _lose(self, node: str, why: str) -> None:
        agent = self.agents.get(node)
        if agent is None or agent.lost:
            return
        _log.error("node agent on %s lost (%s): its tasks fail and the node is left out", node, why)
        if self.sender is not None and agent.identity is not None:
            # one that was only silent and comes back must not keep running tasks reported failed
            self.sender.discard(agent.identity)
            self.sender.send(AgentStopMsg(), agent.identity)
        agent.lost = True
        self.watcher.forget(node)
        if self.on_node_lost is not None:
            self.on_node_lost(node)
        tasks = [t for t in self.running.values() if t.allocation.parts[0].name == node]
        ended = self._end_tasks(node, tasks) if tasks else ""
        for task in tasks:
            task.error = f"node agent on {node} lost ({why}); {ended}"
            self._finished(task, -9, time.time())

    def _end_tasks(self, node: str, tasks: List[RunningTask]) -> str:
        """Before a lost agent's tasks are reported FAILED: cancel its srun step (a hung
        agent's tasks end with it) and end, in a step of their own on that node, the task
        process groups that a dead agent left behind. Says what was done."""
        job_id = os.environ.get("SLURM_JOB_ID")
        if not job_id:
            return "its tasks could not be ended (no Slurm job)"
        cancel_steps(job_id, [agent_step_name(node)])
        procs = [f"{t.pid}:{t.started}" for t in tasks if t.pid > 0]
        if not procs:
            return "its tasks had not started"
        cmd = step_command(node, [sys.executable, "-m", "qcg_pilotjob.processes", *procs])
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
            count = int(out.stdout.split()[-1]) if out.returncode == 0 and out.stdout.split() else -1
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            _log.warning("cannot end the tasks left on %s: %s", node, exc)
            count = -1
        if count < 0:
            return "its tasks could not be ended"
        return f"{count} task process group(s) left on {node} were ended"

    # --- the executor interface ----------------------------------------------------------
    def start(self, spec: TaskSpec, iteration: Optional[int], alloc: Allocation) -> Optional[str]:
        node = alloc.parts[0].name
        agent = self.agents.get(node)
        if agent is None or agent.lost or agent.identity is None:
            return f"no agent on node {node}"
        plan = self._plan(spec, iteration, alloc)
        if isinstance(plan, str):
            return plan
        problem = self._venv_problem(plan)
        if problem is not None:
            return problem
        self._write_hostfile(plan, alloc)
        task = RunningTask(spec, iteration, alloc, plan, None, 0, time.time())
        self._track(task)
        cores = [int(c) for c in alloc.parts[0].core_ids if c.isdigit()] or None
        self._send(agent, RunMsg([spec.name, iteration], plan.argv, plan.wd, plan.env, plan.stdin, plan.stdout,
                                 plan.stderr, cores))
        return None

    def _signal(self, task: RunningTask, sig: int) -> None:
        if task.key not in self.running:
            return
        agent = self.agents.get(task.allocation.parts[0].name)
        if agent is not None:
            self._send(agent, SignalMsg([task.key[0], task.key[1]], int(sig)))

    def close(self) -> None:
        for agent in self.agents.values():
            self._send(agent, AgentStopMsg())
        if self.sender is not None:
            self.sender.flush()
        self.watcher.close()
        if self.auth is not None:
            self.auth.stop()
            self.auth = None

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
        if self.sock is not None:
            close_server(self.sock)
