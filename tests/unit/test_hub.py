"""Unit tests of the governor's partition hub (qcg_pilotjob.front.hub) with a fake socket and
a fake clock: registration, refusals, joining while work waits, heartbeat loss, lost
partitions, malformed frames. No ZMQ, no sleeping."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator, List, Tuple

import msgpack
import pytest

from qcg_pilotjob.front.core import Front
from qcg_pilotjob.front.hub import PartitionHub
from qcg_pilotjob.front.journal import Journal
from qcg_pilotjob.front.links import PartitionLink
from qcg_pilotjob.front.reports import LineWriter
from qcg_pilotjob.protocol.batch import BatchSender
from qcg_pilotjob.protocol.codec import decode_batch, encode_batch
from qcg_pilotjob.protocol.messages import (
    PROTOCOL_VERSION,
    DispatchMsg,
    HeartbeatMsg,
    Message,
    NodeLostMsg,
    RegisteredMsg,
    RegisterMsg,
    StoppedMsg,
    TaskEvent,
    TaskEventsMsg,
)
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
from qcg_pilotjob.states import JobState


class FakeSocket:
    """Records what a ROUTER would send: (identity, messages)."""

    def __init__(self) -> None:
        self.frames: List[Tuple[bytes, List[Message]]] = []

    def send_multipart(self, parts: List[bytes], flags: int = 0) -> None:
        self.frames.append((parts[0], decode_batch(parts[1])))

    def to(self, identity: bytes) -> List[List[Message]]:
        return [msgs for ident, msgs in self.frames if ident == identity]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Env:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = FakeSocket()
        self.clock = Clock()
        self.front = Front(instance_id="t", report=LineWriter(None), report_format="json",
                           journal=Journal(LineWriter(None)))
        self.hub = PartitionHub(self.front, BatchSender(self.sock, "partitions", loop), heartbeat=1.0,
                                lost_after=5.0)
        self.hub.watcher.clock = self.clock

    def frame(self, identity: bytes, *msgs: Message) -> None:
        self.hub.on_frame(identity, encode_batch(list(msgs)))
        self.hub.flush()

    def register(self, identity: bytes, pid: str, nodes: str = "2", version: int = PROTOCOL_VERSION) -> None:
        pool = ResourcePool(parse_nodes_spec(nodes))
        self.frame(identity, RegisterMsg(pid, version, [n.to_dict() for n in pool.nodes], "host", 1))

    def submit(self, *jobs: Any) -> Any:
        return self.front.handle_request({"request": "submit", "jobs": list(jobs)})

    def link(self, name: str) -> PartitionLink:
        return next(lk for lk in self.front.links if lk.name == name)


@pytest.fixture
def env() -> Iterator[Env]:
    loop = asyncio.new_event_loop()
    try:
        yield Env(loop)
    finally:
        loop.close()


def iterative(name: str, n: int) -> Any:
    return {"name": name, "execution": {"exec": "/bin/true"}, "iteration": {"stop": n}}


def test_registration_accepted(env: Env) -> None:
    env.register(b"p0-id", "p0")
    [frame] = env.sock.to(b"p0-id")
    assert isinstance(frame[0], RegisteredMsg) and frame[0].ok
    assert env.front.total_cores == 2
    assert "p0" in env.hub.registered


def test_protocol_version_refused(env: Env) -> None:
    env.register(b"old", "p-old", version=PROTOCOL_VERSION + 1)
    [frame] = env.sock.to(b"old")
    assert isinstance(frame[0], RegisteredMsg) and not frame[0].ok
    assert "protocol version" in frame[0].message
    assert env.front.links == []
    assert "p-old" in env.hub.refused


def test_duplicate_id_refused(env: Env) -> None:
    env.register(b"a", "p0")
    env.register(b"b", "p0")
    [frame] = env.sock.to(b"b")
    assert isinstance(frame[0], RegisteredMsg) and not frame[0].ok and "registered already" in frame[0].message
    assert len(env.front.links) == 1


def test_regression_registration_while_work_waits(env: Env) -> None:
    """A partition registering while work waits gets it in the frame that accepts it (the
    hub used to route to a link whose sender did not exist yet: IndexError, governor deaf)."""
    env.register(b"a", "p0")
    env.register(b"b", "p1")
    assert env.submit(iterative("many", 1000))["code"] == 0
    env.hub.flush()
    assert env.front.ready  # both windows full: work waits in the front
    env.register(b"c", "p2")
    [frame] = env.sock.to(b"c")
    assert isinstance(frame[0], RegisteredMsg) and frame[0].ok
    dispatched = [m for m in frame[1:] if isinstance(m, DispatchMsg)]
    assert dispatched and sum(b - a for m in dispatched for a, b in (m.iterations or [])) == 64


def test_malformed_frames_dropped_and_hub_still_serves(env: Env) -> None:
    env.hub.on_frame(b"x", b"\x00garbage")
    env.hub.on_frame(b"x", encode_batch([HeartbeatMsg()])[:-1])
    assert env.hub.guard.bad_frames == 2
    env.register(b"x", "p0")
    assert env.front.total_cores == 2


def test_regression_registration_with_a_list_id_refused(env: Env) -> None:
    """A registration whose id is a list used to reach the hub's logic; it is refused
    with the reason, and the hub goes on."""
    nodes = [n.to_dict() for n in ResourcePool(parse_nodes_spec("2")).nodes]
    env.hub.on_frame(b"bad", bytes(msgpack.packb([PROTOCOL_VERSION, [[RegisterMsg.TYPE, ["p"], PROTOCOL_VERSION,
                                                                         nodes, "h", 1]]])))
    env.hub.flush()
    [frame] = env.sock.to(b"bad")
    assert isinstance(frame[0], RegisteredMsg) and not frame[0].ok
    assert frame[0].message.startswith("invalid registration: RegisterMsg.id")
    assert env.front.links == []
    env.register(b"good", "p0")
    assert env.front.total_cores == 2


def test_messages_before_registration_dropped(env: Env) -> None:
    env.frame(b"stranger", TaskEventsMsg([TaskEvent("a", None, int(JobState.SUCCEED), 1.0)], 0))
    assert env.front.links == []
    assert env.sock.frames == []


def test_heartbeat_loss_requeues_queued_work_and_fails_running(env: Env) -> None:
    env.register(b"a", "p0")
    env.register(b"b", "p1")
    env.submit(iterative("many", 10))
    env.hub.flush()
    p0 = env.link("p0")
    on_p0 = [i for i in range(10) if env.front.jobs["many"].tasks.partition(i) == p0.index]
    env.frame(b"a", TaskEventsMsg([TaskEvent("many", on_p0[0], int(JobState.EXECUTING), 1.0)], 1))
    env.clock.now += 3
    env.frame(b"b", HeartbeatMsg(0))  # p1 speaks, p0 stays silent
    env.hub.watcher.tick()
    assert not p0.lost
    env.clock.now += 3
    env.hub.watcher.tick()
    assert p0.lost and not env.link("p1").lost
    tasks = env.front.jobs["many"].tasks
    assert tasks[on_p0[0]].state is JobState.FAILED
    assert "partition p0 lost: no message for" in (tasks[on_p0[0]].message or "")
    # its queued tasks went to p1
    assert all(tasks.partition(i) == env.link("p1").index for i in on_p0[1:])
    assert env.front.total_cores == 2


def test_heartbeats_sent_each_tick(env: Env) -> None:
    env.register(b"a", "p0")
    env.sock.frames.clear()
    env.hub.watcher.tick()
    env.hub.flush()
    assert [type(m) for m in env.sock.to(b"a")[0]] == [HeartbeatMsg]


def test_lost_partition_coming_back_is_refused(env: Env) -> None:
    env.register(b"a", "p0")
    env.clock.now += 10
    env.hub.watcher.tick()
    assert env.link("p0").lost
    env.sock.frames.clear()
    env.frame(b"a", HeartbeatMsg(0))
    [frame] = env.sock.to(b"a")
    assert isinstance(frame[0], RegisteredMsg) and not frame[0].ok and "declared lost" in frame[0].message


def test_node_loss_shrinks_the_totals(env: Env) -> None:
    env.register(b"a", "p0", nodes="n1:2,n2:2")
    assert env.front.total_cores == 4
    env.frame(b"a", NodeLostMsg("n1"))
    assert env.front.total_cores == 2
    assert env.front.total_nodes == 1


def test_stopper_called_before_tasks_fail(env: Env) -> None:
    calls: List[Tuple[str, List[Tuple[int, float]]]] = []

    def stopper(link: PartitionLink, procs: List[Tuple[int, float]]) -> str:
        calls.append((link.name, procs))
        return "ended: 1 running task(s)"

    env.hub.stopper_for = lambda msg: stopper
    env.register(b"a", "p0")
    env.submit({"name": "j", "execution": {"exec": "/bin/true"}})
    env.frame(b"a", TaskEventsMsg([TaskEvent("j", None, int(JobState.EXECUTING), 1.0, {"pid": 4242})], 1))
    env.hub.lose("p0", "partition p0 lost: its process exited with code -9")
    assert calls == [("p0", [(4242, 1.0)])]
    rec = env.front.jobs["j"].tasks[0]
    assert rec.state is JobState.FAILED
    assert rec.message == "partition p0 lost: its process exited with code -9; ended: 1 running task(s)"




def test_regression_clean_exit_seen_before_stop_report(env: Env) -> None:
    """At the end of a governor run a partition's exit (code 0) was sometimes noticed before
    its last frame was read: the link was declared lost, its final task events were dropped
    and final_status counted 6 of 8 cores. A clean exit now waits for that frame."""
    env.register(b"a", "p0")
    env.register(b"b", "p1")
    env.submit({"name": "j", "execution": {"exec": "/bin/true"}})
    env.hub.flush()
    placed = env.front.jobs["j"].tasks.partition(0)
    ident = b"a" if placed == env.link("p0").index else b"b"
    name = env.front.links[placed].name
    env.frame(ident, TaskEventsMsg([TaskEvent("j", None, int(JobState.EXECUTING), 1.0)], 1))
    env.front.begin_stop()
    env.hub.exited(name, 0)  # the process is gone; its frame is still on the way
    assert env.front.links[placed].live and env.front.total_cores == 4
    env.frame(ident, TaskEventsMsg([TaskEvent("j", None, int(JobState.CANCELED), 2.0, {"message": "stopped"})], 0),
              StoppedMsg())
    link = env.front.links[placed]
    assert link.stopped and not link.lost
    assert env.front.jobs["j"].tasks[0].state is JobState.CANCELED
    assert env.front.total_cores == 4
    # any other end is a loss at once
    other_name = next(lk.name for lk in env.front.links if lk.index != placed)
    env.hub.exited(other_name, -9)
    assert env.link(other_name).lost and env.front.total_cores == 2


def test_clean_exit_without_stop_report_lost_by_heartbeat(env: Env) -> None:
    env.register(b"a", "p0")
    env.hub.exited("p0", 0)
    assert env.link("p0").live
    env.clock.now += 10
    env.hub.watcher.tick()
    assert env.link("p0").lost
