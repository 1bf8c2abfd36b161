"""The partition side and the client interface survive frames they cannot handle.

- A real partition manager process (``--parent``) registers with a ROUTER played by the
  test; the "governor" then sends garbage, malformed and unknown messages, and the
  partition must still run a good dispatch and report it.
- A NetInterface whose partition handler raises on one frame goes on serving clients.

No sleeps: every wait polls a socket or a condition up to a deadline.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import msgpack
import pytest
import zmq

from qcg_pilotjob.front.core import Front
from qcg_pilotjob.front.journal import Journal
from qcg_pilotjob.front.reports import LineWriter
from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.protocol.codec import decode_batch, encode_batch
from qcg_pilotjob.protocol.messages import (
    PROTOCOL_VERSION,
    DispatchMsg,
    Message,
    RegisteredMsg,
    RegisterMsg,
    ShutdownMsg,
    StoppedMsg,
    TaskEventsMsg,
)
from qcg_pilotjob.protocol.wire import decode_reply, encode_request
from qcg_pilotjob.service.netiface import NetInterface
from qcg_pilotjob.states import JobState

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def raw(*items: Any, version: Any = PROTOCOL_VERSION) -> bytes:
    return bytes(msgpack.packb([version, list(items)]))


class Governor:
    """A ROUTER standing in for the governor, and what the partition sent it."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self.identity: Optional[bytes] = None
        self.received: List[Message] = []

    def recv(self, timeout: float = 20.0) -> List[Message]:
        if not self.sock.poll(int(timeout * 1000)):
            raise AssertionError(f"nothing from the partition within {timeout}s")
        ident, payload = self.sock.recv_multipart()
        self.identity = ident
        msgs = decode_batch(payload)
        self.received.extend(msgs)
        return msgs

    def send(self, frame: bytes) -> None:
        assert self.identity is not None
        self.sock.send_multipart([self.identity, frame])

    def events_until(self, pred: Any, timeout: float = 20.0) -> List[Any]:
        deadline = time.monotonic() + timeout
        while True:
            events = [e for m in self.received if isinstance(m, TaskEventsMsg) for e in m.events]
            if pred(events):
                return events
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"events so far: {events}")
            self.recv(left)

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def test_partition_survives_bad_frames_from_its_governor(tmp_path: Path) -> None:
    gov = Governor()
    proc = subprocess.Popen([sys.executable, "-m", "qcg_pilotjob.service", "--parent", gov.address, "--id", "px",
                             "--nodes", "2", "--wd", str(tmp_path), "--heartbeat", "5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        [reg] = gov.recv()
        assert isinstance(reg, RegisterMsg) and reg.id == "px"
        gov.send(encode_batch([RegisteredMsg(True, "", 5.0)]))
        good = JobDescription.from_dict({"name": "ok", "execution": {"exec": "/bin/true"}})
        bad_frames = [
            b"\x00garbage",
            raw([1, {"name": "x"}, 1, None], version=99),          # another protocol version
            raw([1, {"name": "x", "execution": {"exec": "true"}}, "one", None]),  # iter_total not an int
            raw([3, 42, None]),                                  # CancelMsg with a job that is no name
            raw([77, "what"]),                                   # unknown type
            bytes(msgpack.packb([PROTOCOL_VERSION, [[1]]]))[:-1],  # truncated
            # a dispatch that decodes but cannot run: a job with iterations sent no range
            raw([1, {"name": "it", "execution": {"exec": "true"}, "iteration": {"stop": 2}}, 2, None]),
        ]
        for frame in bad_frames:
            gov.send(frame)
        gov.send(encode_batch([DispatchMsg(good, 1, None)]))
        events = gov.events_until(lambda evs: any(e.job == "ok" and e.state == int(JobState.SUCCEED) for e in evs))
        assert all(e.job == "ok" for e in events)
        gov.send(encode_batch([ShutdownMsg("finish")]))
        deadline = time.monotonic() + 20
        while not any(isinstance(m, StoppedMsg) for m in gov.received):
            gov.recv(max(0.1, deadline - time.monotonic()))
        assert proc.wait(timeout=20) == 0
        log = (tmp_path / ".qcgpjm-service-px" / "service.log").read_text()
        assert log.count("partition: dropped an invalid frame from the governor") >= len(bad_frames) - 1
        assert "Traceback" not in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        gov.close()


def test_client_interface_survives_a_handler_that_raises(tmp_path: Path) -> None:
    async def scenario() -> Dict[str, Any]:
        front = Front(instance_id="t", report=LineWriter(None), report_format="json",
                      journal=Journal(LineWriter(None)))
        net = NetInterface(front, host="127.0.0.1", port_min=20000, port_max=40000)
        calls: List[bytes] = []

        def partition_frame(identity: bytes, payload: bytes) -> None:
            calls.append(payload)
            raise RuntimeError("a handler bug")

        net.partition_handler = partition_frame
        net.start()
        loop = asyncio.get_running_loop()
        try:
            def client() -> Dict[str, Any]:
                ctx = zmq.Context()
                try:
                    dealer = ctx.socket(zmq.DEALER)  # a frame without delimiter: goes to the partition handler
                    dealer.setsockopt(zmq.LINGER, 0)
                    dealer.connect(net.address)
                    dealer.send(b"boom")
                    dealer.send(b"boom again")
                    req = ctx.socket(zmq.REQ)
                    req.setsockopt(zmq.LINGER, 0)
                    req.setsockopt(zmq.RCVTIMEO, 20000)
                    req.connect(net.address)
                    req.send(encode_request({"request": "resourcesInfo"}, "json"))
                    reply: Dict[str, Any] = decode_reply(req.recv(), "json")
                    return reply
                finally:
                    ctx.destroy(linger=0)

            reply = await loop.run_in_executor(None, client)
        finally:
            await net.close()
        return {"reply": reply, "calls": len(calls), "failures": net.guard.failures}

    out = asyncio.run(scenario())
    assert out["reply"]["code"] == 0 and out["reply"]["data"]["total_cores"] == 0
    assert out["calls"] == 2 and out["failures"] == 2
