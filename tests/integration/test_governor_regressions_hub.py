"""Governor regressions, each named after the failure it pins, in the governor's partition hub:
a partition registering while work waits, malformed partition messages. Real governor and
partition processes on loopback, waiting on conditions with deadlines (no sleeps, no timing
asserts; helpers: governor_regression_helpers)."""

from __future__ import annotations

import collections
import os
import subprocess
import time
from typing import Any, List, Optional, Set, Tuple

import msgpack
import pytest
import zmq

from qcg_pilotjob.protocol.messages import PROTOCOL_VERSION
from tests.conftest import secure_as_owner, service_cmd, submit, wait_for
from tests.integration.governor_regression_helpers import (
    FINAL,
    _address,
    _ask,
    _aux,
    _job_info,
    _job_states,
    _nodes,
    _read,
    _registered,
    _report,
    _status,
    _stop,
)

pytestmark = pytest.mark.integration


# ---- 1. a partition registers while work waits in the governor's ready queue ---------------------
def test_regression_partition_registers_while_work_waits(tmp_path):
    """A partition that registered while released work waited in the governor's ready queue
    crashed the hub with an IndexError, and the governor stopped answering everyone. It
    must register, take waiting work (sent in the frame of its acceptance, after the
    acceptance), and the run must end with every job SUCCEED.

    Two 1-core partitions first: with one live partition the governor routes everything to
    it at once (no window), so nothing would wait. Their windows (64 cores' worth each) hold
    128 of the 300 gated jobs; the other 172 wait in the governor until the third comes."""
    from qcg_pilotjob.api import Manager
    from qcg_pilotjob.api.job import Jobs

    wd = str(tmp_path)
    gate = tmp_path / "go"
    gov = subprocess.Popen(service_cmd("--governor", "--net", "--wd", wd, "--id", "wait", "--report-format", "json"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = _aux(wd, "wait")
    procs: List[subprocess.Popen] = [gov]
    manager: Optional[Any] = None
    try:
        address = _address(aux)

        def partition(ident: str, nodes: str) -> subprocess.Popen:
            proc = subprocess.Popen(service_cmd("--parent", address, "--id", ident, "--nodes", nodes, "--wd", wd),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            procs.append(proc)
            return proc

        first = [partition("p1", "a:1"), partition("p2", "b:1")]
        _registered(aux, "p1")
        _registered(aux, "p2")
        manager = Manager(address)
        names = [f"w{i:03d}" for i in range(300)]
        jobs = Jobs()
        for name in names:
            jobs.add(name=name, script=f"while [ ! -e {gate} ]; do sleep 0.05; done; sleep 0.05")
        assert manager.submit(jobs) == names

        def executing_on(nodes: Set[str]) -> List[str]:
            info = manager.info(names)["jobs"]
            return [n for n in names if info[n]["data"]["status"] == "EXECUTING"
                    and set(_nodes(info[n]["data"]["runtime"]["allocation"])) <= nodes]

        wait_for(lambda: len(executing_on({"a", "b"})) == 2, timeout=30, what="a job executing on p1 and p2")
        third = partition("p3", "c:2")  # while 172 jobs wait in the governor's ready queue
        _registered(aux, "p3")
        # the governor keeps answering, and counts the newcomer
        assert manager.system_status()["System"]["Partitions"] == 3
        assert manager.resources()["total_cores"] == 4
        # the newcomer took waiting work: the jobs on p1 and p2 hold their cores until the
        # gate opens, so whatever runs on c came from the governor's queue
        wait_for(lambda: len(executing_on({"c"})) == 2, timeout=30, what="two jobs executing on p3")
        assert third.poll() is None
        gate.touch()
        manager.wait4all(timeout=90)
        assert manager.list() == {n: {"status": "SUCCEED"} for n in names}
        manager.finish()
        manager = None
        _, err = gov.communicate(timeout=30)
        assert gov.returncode == 0, err
        for proc in [*first, third]:
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
    finally:
        if manager is not None:
            manager.close()
        for proc in procs:
            _stop(proc)
    log = _read(os.path.join(aux, "service.log"))
    assert "Traceback" not in log
    assert "failed; the frame is dropped" not in log
    report = _report(aux)
    assert {n: report[n]["state"] for n in names} == {n: "SUCCEED" for n in names}
    per_node = collections.Counter(_nodes(report[n]["runtime"]["allocation"])[0] for n in names)
    assert set(per_node) == {"a", "b", "c"}, per_node
    assert per_node["c"] >= 2, per_node
    assert _read(os.path.join(_aux(wd, "p3"), "service.log")).count("registered with the governor") == 1


# ---- 3. malformed partition messages ----------------------------------------------------------------
def _batch(*msgs: List[Any], version: int = PROTOCOL_VERSION) -> bytes:
    return bytes(msgpack.packb([version, list(msgs)], use_bin_type=True))


def _events(*events: List[Any]) -> List[Any]:
    return [2, list(events), 0]  # TaskEventsMsg: [type, events, used_cores]


HEARTBEAT = _batch([9, 0, {}])  # HeartbeatMsg(used_cores=0, node_used={})


class FakePartition:
    """A DEALER that registers as partition ``fake`` (one 1-core node: none of the test's
    2-core jobs fits there, so the governor routes it nothing) and then says what it is told."""

    def __init__(self, address: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTING_ID, b"fake-peer")
        secure_as_owner(self.sock, address)  # the fake partition holds the run's keys: it tests validation
        self.sock.connect(address)

    def send(self, payload: bytes) -> None:
        self.sock.send(payload)

    def receive(self, timeout: float = 10.0) -> List[List[Any]]:
        if not self.sock.poll(int(timeout * 1000)):
            raise AssertionError(f"nothing from the governor within {timeout}s")
        version, msgs = msgpack.unpackb(self.sock.recv(), raw=False, strict_map_key=False)
        assert version == PROTOCOL_VERSION
        return msgs

    def register(self) -> None:
        self.send(_batch([7, "fake", PROTOCOL_VERSION, [{"name": "f", "cores": ["0"], "gpus": []}], "fake-host", 0]))
        while True:
            registered = [m for m in self.receive() if m[0] == 8]
            if registered:
                assert registered[0][1] is True, registered  # RegisteredMsg(ok, message, heartbeat)
                return

    def answer_shutdown(self) -> None:
        """Wait for the governor's ShutdownMsg and say it stopped (StoppedMsg)."""
        def shutdown() -> bool:
            return any(m[0] == 5 for m in self.receive(timeout=1.0)) if self.sock.poll(0) else False

        wait_for(shutdown, timeout=30, what="the governor's ShutdownMsg")
        self.send(_batch([6]))

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


def test_regression_malformed_partition_messages_do_not_silence_the_governor(tmp_path):
    """Frames a partition may send by mistake (or a bad peer on purpose) are dropped with a
    WARNING naming the peer: undecodable bytes, another protocol version, an unknown state
    or message type, a field of the wrong type, a truncated frame. Well-formed events that
    lie (a state a partition never reports, a final state for a task on another partition)
    change nothing: the job keeps its true state and the run is not finished. The governor
    answers all along and runs later work."""
    wd = str(tmp_path)
    gate = tmp_path / "go"
    gov = subprocess.Popen(service_cmd("--governor", "--net", "--wd", wd, "--id", "bad", "--report-format", "json"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = _aux(wd, "bad")
    log_path = os.path.join(aux, "service.log")
    procs: List[subprocess.Popen] = [gov]
    fake: Optional[FakePartition] = None
    two_cores = {"numCores": {"exact": 2}}
    try:
        address = _address(aux)
        real = subprocess.Popen(service_cmd("--parent", address, "--id", "real", "--nodes", "a:4", "--wd", wd),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(real)
        _registered(aux, "real")
        fake = FakePartition(address)
        fake.register()
        _registered(aux, "fake")
        assert _status(address)["System"]["Partitions"] == 2
        _ask(address, submit(
            {"name": "held", "execution": {"script": f"while [ ! -e {gate} ]; do sleep 0.05; done"},
             "resources": two_cores},
            {"name": "after_held", "execution": {"exec": "/bin/true"}, "resources": two_cores,
             "dependencies": {"after": ["held"]}}))
        wait_for(lambda: _job_states(address, ["held"])["held"] == "EXECUTING", what="held to run")
        held = _job_info(address, ["held"])["held"]
        assert _nodes(held["runtime"]["allocation"]) == ["a"]  # on the real partition

        def count(text: str) -> int:
            return _read(log_path).count(text)

        dropped = "WARNING partition hub: dropped an invalid frame from partition fake-peer"
        ignored = "WARNING partition fake: event ignored: task held"
        now = time.time()
        truncated = _batch(_events(["held", None, 4, now, {"exit_code": 0}]))
        frames: List[Tuple[str, bytes, str]] = [
            ("garbage bytes", b"\xc1\x00\xffnot msgpack", dropped),
            ("another protocol version", _batch([9, 0], version=99), dropped),
            ("an unknown task state", _batch(_events(["held", None, 99, now, None])), dropped),
            ("SCHEDULED, which a partition never reports", _batch(_events(["held", None, 2, now, None])), ignored),
            ("a RegisterMsg whose id is a list",
             _batch([7, ["fake"], PROTOCOL_VERSION, [{"name": "f", "cores": ["0"], "gpus": []}], "fake-host", 0]),
             dropped),
            ("SUCCEED for a task on another partition", _batch(_events(["held", None, 4, now, {"exit_code": 0}])),
             ignored),
            ("truncated msgpack", truncated[:len(truncated) // 2], dropped),
            ("an unknown message type", _batch([77, "x"]), dropped),
        ]
        for what, payload, expect in frames:
            was = {dropped: count(dropped), ignored: count(ignored)}
            want = dict(was)
            want[expect] += 1
            want[dropped] += 1  # the sentinel's
            fake.send(HEARTBEAT)  # (a valid frame keeps it from being lost as silent)
            fake.send(payload)
            # a sentinel after it on the same connection: once its WARNING is in the log,
            # the frame before it was handled (frames of one peer are handled in order)
            fake.send(b"sentinel")
            wait_for(lambda want=want: count(dropped) >= want[dropped], timeout=20,
                     what=f"the governor to handle {what}")
            status = _status(address)  # the governor still answers
            assert status["System"]["Partitions"] == 2, what
            # the lying events changed nothing: held runs on, the run is not finished
            assert _job_states(address, ["held", "after_held"]) == {"held": "EXECUTING", "after_held": "QUEUED"}, what
            assert status["JobStats"]["ExecutingJobs"] == 1, what
            all_done = _ask(address, {"request": "status", "options": {"allJobsFinished": True}})["data"]
            assert all_done == {"AllJobsFinished": False}, what
            assert {dropped: count(dropped), ignored: count(ignored)} == want, what  # one WARNING each
        held_now = _job_info(address, ["held"])["held"]
        assert held_now["status"] == "EXECUTING"
        assert "SUCCEED" not in held_now["history"]
        log = _read(log_path)
        assert log.count("(the task is not on partition fake)") == 2  # the SCHEDULED and the SUCCEED
        assert "Traceback" not in log  # every frame was dropped by a check, none by an exception

        # the run goes on: held ends on the real partition, what waited for it runs, and so
        # does a job submitted now
        gate.touch()
        _ask(address, submit({"name": "later", "execution": {"exec": "/bin/true"}, "resources": two_cores}))
        wait_for(lambda: set(_job_states(address, ["held", "after_held", "later"]).values()) <= FINAL, timeout=30,
                 what="the jobs to end")
        assert _job_states(address, ["held", "after_held", "later"]) == {"held": "SUCCEED", "after_held": "SUCCEED",
                                                                         "later": "SUCCEED"}
        assert _ask(address, {"request": "status", "options": {"allJobsFinished": True}})["data"] == \
            {"AllJobsFinished": True}
        _ask(address, {"request": "finish"})
        fake.answer_shutdown()
        _, err = gov.communicate(timeout=30)
        assert gov.returncode == 0, err
        _, err = real.communicate(timeout=30)
        assert real.returncode == 0, err
    finally:
        if fake is not None:
            fake.close()
        for proc in procs:
            _stop(proc)
    report = _report(aux)
    for name in ("held", "after_held", "later"):
        assert report[name]["state"] == "SUCCEED", report[name]
        assert _nodes(report[name]["runtime"]["allocation"]) == ["a"]
