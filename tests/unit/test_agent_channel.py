"""The partition's agent channel (AgentExecutor) with a fake ROUTER socket and a fake clock.

The real receive loop (protocol.receive) runs on a socket whose frames the test queues;
what the channel sends is decoded and kept. Nothing here opens a ZMQ socket or sleeps:
``settle()`` only yields to the event loop until every queued frame was handled, and the
heartbeat watcher is ticked by hand after moving the fake clock.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, Type, TypeVar

import msgpack
import pytest
import zmq

from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.partition.agents import AgentExecutor
from qcg_pilotjob.partition.executor import RunningTask
from qcg_pilotjob.partition.manager import PartitionManager
from qcg_pilotjob.partition.scheduler import TaskSpec
from qcg_pilotjob.protocol.codec import decode_batch, encode_batch
from qcg_pilotjob.protocol.heartbeat import LOST_AFTER_BEATS
from qcg_pilotjob.protocol.messages import (
    PROTOCOL_VERSION,
    AgentHelloMsg,
    AgentStopMsg,
    ExitMsg,
    HeartbeatMsg,
    Message,
    NodeLostMsg,
    RunMsg,
    StartedMsg,
)
from qcg_pilotjob.resources import Allocation, NodeAllocation, ResourcePool, parse_nodes_spec

pytestmark = pytest.mark.timeout(30)

A1, A2 = b"agent:n1:101", b"agent:n2:102"
M = TypeVar("M", bound=Message)


class FakeRouter:
    """Frames to receive are queued; frames sent are decoded and kept."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Optional[List[bytes]]] = asyncio.Queue()
        self.sent: List[Tuple[bytes, Message]] = []

    async def recv_multipart(self) -> List[bytes]:
        frames = await self.inbox.get()
        if frames is None:
            raise zmq.ZMQError(zmq.ENOTSOCK)
        return frames

    def send_multipart(self, parts: List[bytes], flags: int = 0) -> None:
        self.sent.extend((parts[0], m) for m in decode_batch(parts[1]))

    def close(self, linger: int = 0) -> None:
        self.inbox.put_nowait(None)

    def feed(self, *frames: List[bytes]) -> None:
        for f in frames:
            self.inbox.put_nowait(f)

    def to(self, identity: bytes, kind: Type[M]) -> List[M]:
        return [m for i, m in self.sent if i == identity and isinstance(m, kind)]


class FakeProc:
    """An agent's srun step: running until ``returncode`` is set."""

    def __init__(self) -> None:
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9


@pytest.fixture(autouse=True)
def outside_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    """No allocation: a lost agent's tasks cannot be ended here (the Slurm tests do that)."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)


def batch(*msgs: Message) -> bytes:
    return encode_batch(list(msgs))


def raw(*items: Any, version: int = PROTOCOL_VERSION) -> bytes:
    """A batch frame built by hand (for messages the encoder would not make)."""
    return bytes(msgpack.packb([version, list(items)]))


def hello(node: str, version: int = PROTOCOL_VERSION) -> bytes:
    return batch(AgentHelloMsg(node, version, [0, 1], [], 4242))


async def settle(sock: FakeRouter) -> None:
    """Yield until every queued frame has been handled (and what it sent was flushed);
    fails if frames stay queued (the receive loop is gone)."""
    for _ in range(1000):
        if sock.inbox.empty():
            break
        await asyncio.sleep(0)
    else:
        pytest.fail(f"{sock.inbox.qsize()} frame(s) never received: the receive loop has ended", pytrace=False)
    for _ in range(3):
        await asyncio.sleep(0)


class Channel:
    """An AgentExecutor on a fake socket and clock, with its callbacks recorded."""

    def __init__(self, tmp: Path, nodes: Tuple[str, ...] = ("n1", "n2")) -> None:
        self.now = 0.0
        self.exits: List[Tuple[Tuple[str, Optional[int]], int, Optional[str]]] = []
        self.lost: List[str] = []
        self.ex = AgentExecutor(asyncio.get_running_loop(), nodes=list(nodes), heartbeat=1.0,
                                clock=lambda: self.now, root_wd=str(tmp), aux_dir=str(tmp), env_schema="none",
                                zmq_address=None, kill_grace=1.0, on_exit=self._exit)
        self.ex.on_node_lost = self.lost.append
        self.sock = FakeRouter()
        self.ex.open_channel(self.sock)
        self.procs: Dict[str, FakeProc] = {}
        for node in nodes:
            self.procs[node] = FakeProc()
            self.ex.expect(node, self.procs[node])  # type: ignore[arg-type]

    def _exit(self, task: RunningTask, code: int, when: float) -> None:
        self.exits.append((task.key, code, task.error))

    async def connect(self, *agents: Tuple[bytes, str]) -> None:
        self.sock.feed(*([ident, hello(node)] for ident, node in agents))
        await settle(self.sock)

    def start(self, name: str, node: str) -> Optional[str]:
        """Start a one-core task ``name`` on ``node``; the executor's error, or None."""
        desc = JobDescription.from_dict({"name": name, "execution": {"exec": "/bin/true"},
                                         "resources": {"numCores": 1}})
        alloc = Allocation([NodeAllocation(0, node, [0], ["0"])])
        return self.ex.start(TaskSpec(desc, 1), None, alloc)

    @property
    def alive(self) -> bool:
        task = self.ex._recv_task
        return task is not None and not task.done()


def run(scenario: Callable[[Channel], Awaitable[None]], tmp: Path, **kw: Any) -> None:
    async def main() -> None:
        channel = Channel(tmp, **kw)
        try:
            await scenario(channel)
        finally:
            channel.sock.close()

    asyncio.run(main())


def warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


# ---- hellos ------------------------------------------------------------------------------------
def test_hello_of_another_protocol_version_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(c: Channel) -> None:
        c.sock.feed([A1, hello("n1", version=PROTOCOL_VERSION + 1)])
        await settle(c.sock)
        assert c.ex.agents["n1"].identity is None
        assert A1 not in c.ex.by_identity
        assert c.sock.to(A1, AgentStopMsg), "a refused agent is told to exit"
        assert c.alive
        text = warnings(caplog)
        assert "agent:n1:101" in text and f"protocol version {PROTOCOL_VERSION + 1}" in text, text

    run(scenario, tmp_path)


def test_malformed_hellos_dropped_and_the_channel_keeps_serving(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """Regression: a malformed hello ended the agents' receive loop, and 30 s later every
    agent was lost."""
    bad_frames = [
        [b"agent:x:1", b"\x00not msgpack at all"],
        [b"agent:x:2", raw([AgentHelloMsg.TYPE, "n1"])],                          # fields missing
        [b"agent:x:3", raw([AgentHelloMsg.TYPE, 5, "one", "cpus", None, "pid"])],  # wrong types
        [b"agent:x:4", hello("n9")],                                              # not our node
        [b"agent:x:5", raw([999, 1, 2])],                                          # unknown type
        [b"agent:x:6", b"part", hello("n1")],                                     # three parts
        [b"agent:x:7", batch(ExitMsg(["t", None], 0, 1.0))],                      # no hello first
    ]

    async def scenario(c: Channel) -> None:
        c.sock.feed(*bad_frames)
        await settle(c.sock)
        assert c.alive
        assert all(a.identity is None for a in c.ex.agents.values())
        await c.connect((A1, "n1"))
        assert c.ex.agents["n1"].identity == A1
        assert await c.ex.wait_hellos(0.0) == ["n2"]  # n2 never said hello: left out
        # a second hello for n1 from another identity does not take the node over
        c.sock.feed([b"agent:n1:999", hello("n1")])
        assert c.start("t", "n1") is None
        await settle(c.sock)
        assert c.ex.agents["n1"].identity == A1
        assert [m.key for m in c.sock.to(A1, RunMsg)] == [["t", None]]
        # start and exit reports: the imposter's and unknown keys are ignored, the agent's are used
        c.sock.feed([b"agent:n1:999", batch(ExitMsg(["t", None], 7, 2.0))],
                    [A1, batch(StartedMsg(["nope", None], 5), ExitMsg(["nope", 3], 1, 2.0))],
                    [A1, batch(StartedMsg(["t", None], 555), ExitMsg(["t", None], 0, 3.0))])
        await settle(c.sock)
        assert c.exits == [(("t", None), 0, None)]
        assert c.alive
        text = warnings(caplog)
        for ident in ("agent:x:1", "agent:x:2", "agent:x:3", "agent:x:4", "agent:x:5", "agent:x:7",
                      "agent:n1:999"):
            assert ident in text, (ident, text)
        assert "already has an agent" in text

    run(scenario, tmp_path)


# ---- heartbeats and lost nodes -----------------------------------------------------------------
def test_silent_agent_is_lost_and_its_tasks_fail(tmp_path: Path) -> None:
    async def scenario(c: Channel) -> None:
        await c.connect((A1, "n1"), (A2, "n2"))
        assert c.start("on1", "n1") is None and c.start("on2", "n2") is None
        c.now = 10.0
        c.sock.feed([A2, batch(HeartbeatMsg(1), ExitMsg(["on1", None], 0, 1.0))])  # n1's task is not n2's
        await settle(c.sock)
        c.ex.watcher.tick()
        await settle(c.sock)
        assert c.lost == [] and c.exits == []
        assert len(c.sock.to(A1, HeartbeatMsg)) == 1 and len(c.sock.to(A2, HeartbeatMsg)) == 1
        for second in range(11, int(LOST_AFTER_BEATS) + 2):  # (a tick a second: the channel listens)
            c.now = float(second)  # n1 silent since 0, n2 since 10
            c.ex.watcher.tick()
            c.sock.feed([A2, batch(HeartbeatMsg(1))])
            await settle(c.sock)
        assert c.lost == ["n1"]
        assert c.exits == [(("on1", None), -9, "node agent on n1 lost (no message for 31.0s); "
                                                   "its tasks could not be ended (no Slurm job)")]
        assert c.ex.watcher.watched() == ["n2"] and "on2" in {k[0] for k in c.ex.running}
        assert c.sock.to(A1, AgentStopMsg), "a silent agent that comes back must not keep running tasks"
        # what the lost agent still says is not used; nothing more is sent to it
        sent_before = len(c.sock.sent)
        c.sock.feed([A1, batch(HeartbeatMsg(0))])
        await settle(c.sock)
        c.ex.watcher.tick()
        await settle(c.sock)
        assert c.lost == ["n1"] and not any(i == A1 for i, _ in c.sock.sent[sent_before:])
        assert c.start("later", "n1") == "no agent on node n1"

    run(scenario, tmp_path)


def test_ended_srun_step_is_lost_at_once(tmp_path: Path) -> None:
    async def scenario(c: Channel) -> None:
        await c.connect((A1, "n1"), (A2, "n2"))
        assert c.start("on2", "n2") is None
        c.procs["n2"].returncode = 137  # the agent's srun step ended; no time has passed
        c.ex.watcher.tick()
        await settle(c.sock)
        assert c.lost == ["n2"]
        assert c.exits == [(("on2", None), -9, "node agent on n2 lost (its srun step ended with exit code 137); "
                                                   "its tasks could not be ended (no Slurm job)")]
        assert c.ex.watcher.watched() == ["n1"]

    run(scenario, tmp_path)


def test_node_loss_shrinks_the_partition(tmp_path: Path) -> None:
    """Through the partition manager's callbacks: the lost node leaves the pool and the
    front is told (NodeLostMsg)."""
    sent: List[Message] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pm = PartitionManager(loop, ResourcePool(parse_nodes_spec("n1:4,n2:4")), sent.append, launcher="agents",
                              executor_options={"root_wd": str(tmp_path), "aux_dir": str(tmp_path),
                                                "env_schema": "none", "zmq_address": None, "kill_grace": 1.0})
        ex = pm.executor
        assert isinstance(ex, AgentExecutor)
        sock, procs = FakeRouter(), {"n1": FakeProc(), "n2": FakeProc()}

        async def start_agents(timeout: float) -> List[str]:  # the real one, minus srun
            ex.open_channel(sock)
            for node, proc in procs.items():
                ex.expect(node, proc)  # type: ignore[arg-type]
            sock.feed([A1, hello("n1")], [A2, hello("n2")])
            return await ex.wait_hellos(timeout)

        ex.start_agents = start_agents  # type: ignore[method-assign]
        assert await pm.prepare(5.0) == []
        assert (pm.pool.total_nodes, pm.pool.total_cores, pm.pool.free_cores) == (2, 8, 8)
        procs["n2"].returncode = 1
        ex.watcher.tick()
        await settle(sock)
        assert (pm.pool.total_nodes, pm.pool.total_cores, pm.pool.free_cores) == (1, 4, 4)
        assert [m for m in sent if isinstance(m, NodeLostMsg)] == [NodeLostMsg("n2")]
        sock.close()

    asyncio.run(main())
