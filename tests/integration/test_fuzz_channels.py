"""Bounded fuzz of the partition and agent channels (issue 9), both ends of each, with the
hostile frames of tests/fuzzing.py made from valid messages of that channel:

- the governor's partition hub and a partition's agent channel, in process (fake socket
  and clock, as their unit tests): thousands of frames from the registered peer and from
  strangers;
- a real partition process under a fake governor, and a real node agent under a fake
  partition manager: hundreds of frames each.

Every frame is handled or dropped; no handler ever raises (the loop guard is never needed);
every frame that does not decode is logged at WARNING; and work sent before the storm
(or after it, to the processes) still runs to its end. Seed: ``QCG_FUZZ_SEED``; figures
printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import msgpack
import pytest

from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.protocol.codec import DecodeError, decode_batch, encode_batch
from qcg_pilotjob.protocol.messages import (
    PROTOCOL_VERSION,
    AgentHelloMsg,
    AgentStopMsg,
    CancelMsg,
    DispatchMsg,
    ExitMsg,
    ForgetMsg,
    HeartbeatMsg,
    Message,
    NodeLostMsg,
    RegisteredMsg,
    RegisterMsg,
    RunMsg,
    ShutdownMsg,
    SignalMsg,
    StartedMsg,
    StoppedMsg,
    TaskEvent,
    TaskEventsMsg,
)
from qcg_pilotjob.protocol.receive import FrameGuard
from qcg_pilotjob.states import JobState
from tests.fuzzing import Fuzzer
from tests.integration.test_agent_loops import AgentPeer
from tests.integration.test_loops import Governor
from tests.unit.test_agent_channel import A1, Channel, settle
from tests.unit.test_hub import Env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SEED = int(os.environ.get("QCG_FUZZ_SEED", "20261202"))
IN_PROCESS = int(os.environ.get("QCG_FUZZ_MESSAGES", "1500")) * 2
TO_PROCESSES = int(os.environ.get("QCG_FUZZ_MESSAGES", "1500")) // 3


def _raw(msg: Message) -> Any:
    """A valid message as the plain structure the fuzzer mutates."""
    return msgpack.unpackb(encode_batch([msg]), raw=False, strict_map_key=False)


def _decodes(frame: bytes) -> bool:
    try:
        decode_batch(frame)
    except DecodeError:
        return False
    return True


class Tally:
    """Frames sent, by kind and outcome (decoded or not; a WARNING logged or not)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.seen: Dict[str, Counter[str]] = {}
        self.unlogged_bad: List[Tuple[str, bytes]] = []

    def mark(self) -> int:
        """The WARNING lines so far (take it before a frame is delivered)."""
        return sum(r.levelno >= logging.WARNING for r in self.caplog.records)

    def note(self, kind: str, frame: bytes, mark: int) -> None:
        """``frame`` was handled: was it decoded, or dropped with a WARNING since ``mark``?"""
        logged = self.mark() > mark
        good = _decodes(frame)
        if not good and not logged:
            self.unlogged_bad.append((kind, frame[:200]))
        self.seen.setdefault(kind, Counter())["decoded" if good else "dropped, logged" if logged else "dropped"] += 1

    def figures(self) -> str:
        return ", ".join(f"{k} {sum(c.values())} ({', '.join(f'{o} {n}' for o, n in sorted(c.items()))})"
                         for k, c in sorted(self.seen.items()))


# ---- the governor's partition hub, in process ----------------------------------------------------
def test_fuzz_partition_hub(caplog: pytest.LogCaptureFixture) -> None:
    owner: Sequence[Message] = [  # what the registered partition sends (no goodbye, no node loss)
        TaskEventsMsg([TaskEvent("f1", 0, int(JobState.EXECUTING), 1.0, {"pid": 7, "allocation": "n0[0]"}),
                       TaskEvent("f1", 1, int(JobState.SUCCEED), 2.0, {"exit_code": 0, "rtime": 1.0})], 1),
        HeartbeatMsg(1)]
    strangers: Sequence[Message] = [*owner, RegisterMsg("px", PROTOCOL_VERSION, [{"name": "n9", "cores": 2}], "h", 1),
                                    NodeLostMsg("n0"), StoppedMsg()]

    async def scenario() -> Tuple[Env, FrameGuard, Tally]:
        env = Env(asyncio.get_running_loop())
        env.register(b"p0", "p0", "4")
        assert env.submit({"name": "sentinel", "execution": {"exec": "/bin/true"}})["code"] == 0
        env.hub.flush()
        assert any(isinstance(m, DispatchMsg) and m.desc.name == "sentinel" for ms in env.sock.to(b"p0") for m in ms)
        guard = FrameGuard(logging.getLogger("fuzz"), "client interface")  # the loop the hub runs in
        tally = Tally(caplog)
        fuzz = Fuzzer(SEED + 2)
        for _ in range(IN_PROCESS):
            identity = fuzz.rng.choice((b"p0", b"p0", b"stranger", b"\xff\x00"))
            kind, frame = fuzz.frame(_raw(fuzz.rng.choice(owner if identity == b"p0" else strangers)))

            mark = tally.mark()
            guard.run(repr(identity), lambda: env.hub.on_frame(identity, frame))  # noqa: B023 (called here)
            env.hub.flush()
            tally.note(kind, frame, mark)
        # the registered partition runs the sentinel it was sent before the storm
        env.frame(b"p0", TaskEventsMsg([TaskEvent("sentinel", None, int(JobState.EXECUTING), 3.0)], 1))
        env.frame(b"p0", TaskEventsMsg([TaskEvent("sentinel", None, int(JobState.SUCCEED), 4.0,
                                                  {"exit_code": 0})], 0))
        return env, guard, tally

    with caplog.at_level(logging.WARNING):
        env, guard, tally = asyncio.run(scenario())
    assert guard.failures == 0 and env.hub.guard.failures == 0
    assert not tally.unlogged_bad, tally.unlogged_bad[:5]
    assert env.front.jobs["sentinel"].state == JobState.SUCCEED
    assert env.link("p0").live
    print(f"\nfuzz partition hub, seed {SEED + 2}: {IN_PROCESS} frames; {tally.figures()}")


# ---- a partition's agent channel, in process -----------------------------------------------------
def test_fuzz_agent_channel(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent: Sequence[Message] = [StartedMsg(["f1", 0], 7, None, [0]), ExitMsg(["f1", 0], 0, 1.0), HeartbeatMsg(0)]
    strangers: Sequence[Message] = [*agent, AgentHelloMsg("n2", PROTOCOL_VERSION, [0, 1], [], 4242)]

    async def scenario(channel: Channel) -> None:
        await channel.connect((A1, "n1"))
        assert channel.start("sentinel", "n1") is None
        await settle(channel.sock)
        [run] = channel.sock.to(A1, RunMsg)
        tally = Tally(caplog)
        fuzz = Fuzzer(SEED + 3)
        for _ in range(IN_PROCESS):
            identity = fuzz.rng.choice((A1, A1, b"agent:n9:1", b"\xff"))
            kind, frame = fuzz.frame(_raw(fuzz.rng.choice(agent if identity == A1 else strangers)))

            mark = tally.mark()
            channel.sock.feed([identity, frame])
            await settle(channel.sock)
            tally.note(kind, frame, mark)
        assert channel.alive
        channel.sock.feed([A1, encode_batch([StartedMsg(run.key, 4242, None, [0])])],
                          [A1, encode_batch([ExitMsg(run.key, 0, 5.0)])])
        await settle(channel.sock)
        assert [(key[0], code) for key, code, _ in channel.exits if key[0] == "sentinel"] == [("sentinel", 0)]
        assert channel.ex.guard.failures == 0
        assert not tally.unlogged_bad, tally.unlogged_bad[:5]
        print(f"\nfuzz agent channel, seed {SEED + 3}: {IN_PROCESS} frames; {tally.figures()}")

    from tests.unit.test_agent_channel import run as run_channel

    with caplog.at_level(logging.WARNING):
        run_channel(scenario, tmp_path)


# ---- a real partition process under a fake governor ----------------------------------------------
def test_fuzz_partition_process(tmp_path: Path) -> None:
    job = JobDescription.from_dict({"name": "f1", "execution": {"exec": "/bin/true", "args": ["${it}"]},
                                    "iteration": {"stop": 2}, "resources": {"numCores": 1}})
    # (not ShutdownMsg nor RegisteredMsg: a valid one of those stops the partition, as it should)
    corpus: Sequence[Message] = [DispatchMsg(job, 2, [(0, 2)]), CancelMsg("f1", [0]), ForgetMsg(["f1"])]
    gov = Governor()
    proc = subprocess.Popen([sys.executable, "-m", "qcg_pilotjob.service", "--parent", gov.address, "--id", "pz",
                             "--nodes", "2", "--wd", str(tmp_path), "--heartbeat", "5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    fuzz = Fuzzer(SEED + 4)
    kinds: Counter[str] = Counter()
    undecodable = 0
    try:
        [reg] = gov.recv()
        assert isinstance(reg, RegisterMsg)
        gov.send(encode_batch([RegisteredMsg(True, "", 5.0)]))
        for _ in range(TO_PROCESSES):
            kind, frame = fuzz.frame(_raw(fuzz.rng.choice(corpus)))
            kinds[kind] += 1
            undecodable += not _decodes(frame)
            gov.send(frame)
        good = JobDescription.from_dict({"name": "sentinel", "execution": {"exec": "/bin/sh", "args": [
            "-c", "echo ran > sentinel.txt"]}})
        gov.send(encode_batch([DispatchMsg(good, 1, None)]))
        gov.events_until(lambda evs: any(e.job == "sentinel" and e.state == int(JobState.SUCCEED) for e in evs),
                         timeout=60)
        gov.send(encode_batch([ShutdownMsg("finish")]))
        while not any(isinstance(m, StoppedMsg) for m in gov.received):
            gov.recv(30)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        gov.close()
    assert (tmp_path / "sentinel.txt").read_text() == "ran\n"
    log = (tmp_path / ".qcgpjm-service-pz" / "service.log").read_text()
    assert "Traceback" not in log and "the frame is dropped" not in log, log[-3000:]
    assert log.count("dropped an invalid frame from the governor") >= undecodable
    print(f"\nfuzz partition process, seed {SEED + 4}: {TO_PROCESSES} frames ({dict(kinds)}), "
          f"{undecodable} undecodable, every one logged; the sentinel ran")


# ---- a real node agent under a fake partition manager --------------------------------------------
def test_fuzz_agent_process(tmp_path: Path) -> None:
    wd = str(tmp_path / "tasks")
    corpus: Sequence[Message] = [RunMsg(["f1", 0], ["/bin/true", "x"], wd, {"A": "1"}, None, "out.txt", None, [0]),
                                 SignalMsg(["f1", 0], 15), HeartbeatMsg(0)]
    peer = AgentPeer()
    log = tmp_path / "agent.log"
    proc = subprocess.Popen([sys.executable, "-m", "qcg_pilotjob.launcher.agent", "--address",
                             f"tcp://127.0.0.1:{peer.port}", "--node", "n0", "--log", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    fuzz = Fuzzer(SEED + 5)
    kinds: Counter[str] = Counter()
    undecodable = 0
    try:
        peer.wait(AgentHelloMsg)
        for _ in range(TO_PROCESSES):
            kind, frame = fuzz.frame(_raw(fuzz.rng.choice(corpus)))
            kinds[kind] += 1
            undecodable += not _decodes(frame)
            peer.send(frame)
        peer.send(encode_batch([RunMsg(["sentinel", None], ["/bin/sh", "-c", "echo ran > sentinel.txt"], wd, {})]))
        assert peer.wait(ExitMsg, lambda m: m.key == ["sentinel", None], timeout=60).code == 0
        peer.send(encode_batch([AgentStopMsg()]))
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        peer.close()
    assert (tmp_path / "tasks" / "sentinel.txt").read_text() == "ran\n"
    text = log.read_text()
    assert "Traceback" not in text and "the frame is dropped" not in text, text[-3000:]
    assert text.count("dropped an invalid frame from the partition manager") >= undecodable
    print(f"\nfuzz agent process, seed {SEED + 5}: {TO_PROCESSES} frames ({dict(kinds)}), "
          f"{undecodable} undecodable, every one logged; the sentinel ran")
