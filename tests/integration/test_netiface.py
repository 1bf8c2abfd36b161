"""The service's network interface under raw ZMQ clients: encodings, garbage and abuse."""

from __future__ import annotations

import json
import os
import subprocess

import msgpack
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from qcg_pilotjob.protocol.transport import MAX_MESSAGE_SIZE
from tests.conftest import secure_as_owner, service_cmd, wait_for

pytestmark = pytest.mark.integration

RECV_MS = 10_000


def wait_address(proc: subprocess.Popen, wd: str, timeout: float = 20.0) -> str:
    """The address a service started in ``wd`` writes once it serves (the file appears whole:
    written aside and renamed)."""

    def address() -> str:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        for entry in os.listdir(wd):
            path = os.path.join(wd, entry, "address")
            if entry.startswith(".qcgpjm-service-") and os.path.isfile(path):
                with open(path) as fh:
                    text = fh.read()
                if text:
                    return text
        return ""

    return str(wait_for(address, timeout=timeout, what="the address file"))


class Service:
    def __init__(self, proc: subprocess.Popen, wd: str, address: str) -> None:
        self.proc = proc
        self.wd = wd
        self.address = address
        self.ctx = zmq.Context()
        self.sockets: list = []

    def socket(self, kind: int) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, RECV_MS)
        sock.setsockopt(zmq.SNDTIMEO, RECV_MS)
        secure_as_owner(sock, self.address)
        sock.connect(self.address)
        self.sockets.append(sock)
        return sock

    def ask(self, payload: bytes) -> bytes:
        """Send one raw request from a fresh REQ socket; return the raw reply."""
        sock = self.socket(zmq.REQ)
        sock.send(payload)
        reply = sock.recv()
        sock.close(linger=0)
        return reply

    def ask_json(self, payload: bytes) -> dict:
        return json.loads(self.ask(payload))

    @property
    def log(self) -> str:
        aux = [d for d in os.listdir(self.wd) if d.startswith(".qcgpjm-service-")]
        with open(os.path.join(self.wd, aux[0], "service.log")) as fh:
            return fh.read()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
        self.ctx.term()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def service(tmp_path):
    wd = str(tmp_path)
    proc = subprocess.Popen(service_cmd("--net", "--nodes", "2", "--wd", wd), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    svc = Service(proc, wd, wait_address(proc, wd))
    try:
        yield svc
    finally:
        svc.close()


def test_json_request_gets_json_reply(service):
    reply = service.ask_json(json.dumps({"request": "resourcesInfo"}).encode())
    assert reply == {"code": 0, "data": {"total_nodes": 1, "total_cores": 2, "used_cores": 0, "free_cores": 2}}
    status = service.ask_json(b'{"request": "status"}')
    assert status["code"] == 0
    assert status["data"]["System"]["Zmqaddress"] == service.address
    assert status["data"]["Resources"]["TotalCores"] == 2


def test_msgpack_request_gets_msgpack_reply(service):
    raw = service.ask(msgpack.packb({"request": "resourcesInfo"}, use_bin_type=True))
    with pytest.raises(ValueError):
        json.loads(raw)
    reply = msgpack.unpackb(raw, raw=False)
    assert reply == {"code": 0, "data": {"total_nodes": 1, "total_cores": 2, "used_cores": 0, "free_cores": 2}}


def test_submit_in_json_and_status_in_msgpack(service):
    job = {"name": "j", "execution": {"exec": "true"}}
    reply = service.ask_json(json.dumps({"request": "submit", "jobs": [job]}).encode())
    assert reply["code"] == 0
    assert reply["data"] == {"submitted": 1, "jobs": ["j"]}

    def final():
        raw = service.ask(msgpack.packb({"request": "jobStatus", "jobNames": ["j"]}))
        data = msgpack.unpackb(raw, raw=False)["data"]["jobs"]["j"]["data"]
        return data["status"] if data["status"] in ("SUCCEED", "FAILED") else None

    assert wait_for(final, what="job j to end") == "SUCCEED"


def test_garbage_bytes_get_error_reply_and_service_keeps_serving(service):
    reply = service.ask_json(b"\xc1\xff\x00garbage")
    assert reply["code"] == 1
    assert reply["message"].startswith("Invalid request: cannot decode JSON request")
    assert "data" not in reply
    assert service.ask_json(b'{"request": "resourcesInfo"}')["code"] == 0
    wait_for(lambda: "bad request" in service.log, what="the bad request logged")


def test_truncated_msgpack_gets_msgpack_error_reply(service):
    packed = msgpack.packb({"request": "submit", "jobs": [{"name": "x", "execution": {"exec": "true"}}]})
    reply = msgpack.unpackb(service.ask(packed[:-5]), raw=False)
    assert reply["code"] == 1
    assert reply["message"].startswith("Invalid request: cannot decode msgpack request")
    # nothing was submitted
    listed = msgpack.unpackb(service.ask(msgpack.packb({"request": "listJobs"})), raw=False)
    assert listed["data"]["jobs"] == {}


def test_empty_message_gets_error_reply(service):
    reply = service.ask_json(b"")
    assert reply["code"] == 1
    assert reply["message"].startswith("Invalid request: cannot decode JSON request")


@pytest.mark.parametrize("payload", [b"[1, 2]", b"42", b"{}", b'"status"', b'{"request": 5}', b"null",
                                     b'{"jobNames": ["a"]}'])
def test_json_of_wrong_shape(service, payload):
    assert service.ask_json(payload) == {"code": 1, "message": "Invalid request: Invalid request"}


def test_msgpack_of_wrong_shape(service):
    for obj in ([1, 2], {}, {"request": None}):
        reply = msgpack.unpackb(service.ask(msgpack.packb(obj)), raw=False)
        assert reply == {"code": 1, "message": "Invalid request: Invalid request"}


def test_unknown_request_name(service):
    assert service.ask_json(b'{"request": "X"}') == {"code": 1, "message": "Invalid request: Unknown request name: X"}
    reply = msgpack.unpackb(service.ask(msgpack.packb({"request": "frobnicate"})), raw=False)
    assert reply == {"code": 1, "message": "Invalid request: Unknown request name: frobnicate"}


def test_oversized_message_is_dropped_by_the_transport(service):
    dealer = service.socket(zmq.DEALER)
    monitor = dealer.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    monitor.setsockopt(zmq.RCVTIMEO, RECV_MS)
    try:
        # a round trip first: the connection is up before the big message goes out
        dealer.send_multipart([b"", b'{"request": "resourcesInfo"}'])
        empty, raw = dealer.recv_multipart()
        assert empty == b"" and json.loads(raw)["code"] == 0
        dealer.send_multipart([b"", b"{" + b" " * MAX_MESSAGE_SIZE + b"}"])
        event = recv_monitor_message(monitor)  # the service drops the peer on the size header
        assert event["event"] == zmq.EVENT_DISCONNECTED
        # no reply ever came for it, and the service still answers others
        assert dealer.poll(0) == 0
        assert service.ask_json(b'{"request": "resourcesInfo"}')["data"]["total_cores"] == 2
    finally:
        dealer.disable_monitor()
        monitor.close(linger=0)
        dealer.close(linger=0)
    assert service.ask_json(b'{"request": "listJobs"}') == {"code": 0, "data": {"length": 0, "jobs": {}}}


def test_message_just_under_the_limit_is_served(service):
    # whitespace around a request: large, but within the limit and valid JSON
    payload = b'{"request": "resourcesInfo"}' + b" " * (MAX_MESSAGE_SIZE // 8)
    assert service.ask_json(payload)["code"] == 0


def test_dealer_without_delimiter(service):
    dealer = service.socket(zmq.DEALER)
    # a single frame, no empty delimiter: answered the same way, one frame back
    dealer.send(b'{"request": "resourcesInfo"}')
    frames = dealer.recv_multipart()
    assert len(frames) == 1
    assert json.loads(frames[0])["data"]["free_cores"] == 2
    # extra envelope frames are echoed back in front of the reply, like a REP socket does
    dealer.send_multipart([b"tag", b"", b'{"request": "X"}'])
    tag, empty, raw = dealer.recv_multipart()
    assert (tag, empty) == (b"tag", b"")
    assert json.loads(raw) == {"code": 1, "message": "Invalid request: Unknown request name: X"}
    # garbage with several frames
    dealer.send_multipart([b"\x00\x01", b"\xff\xfe"])
    frames = dealer.recv_multipart()
    assert frames[0] == b"\x00\x01"
    assert json.loads(frames[1])["code"] == 1
    assert service.ask_json(b'{"request": "resourcesInfo"}')["code"] == 0


def test_many_clients_interleaved(service):
    dealers = [service.socket(zmq.DEALER) for _ in range(5)]
    for i, dealer in enumerate(dealers):
        dealer.send_multipart([b"", json.dumps({"request": "jobStatus" if i % 2 else "resourcesInfo",
                                                 "jobNames": ["nope"]}).encode()])
    for i, dealer in enumerate(dealers):
        empty, raw = dealer.recv_multipart()
        assert empty == b""
        reply = json.loads(raw)
        assert reply["code"] == 0
        if i % 2:
            assert reply["data"]["jobs"]["nope"]["status"] != 0
        else:
            assert reply["data"]["total_cores"] == 2


def test_after_abuse_status_works_and_finish_exits_zero(service):
    junk = service.socket(zmq.DEALER)
    junk.send(b"\xc1\xff\x00garbage")
    assert json.loads(junk.recv())["code"] == 1
    junk.send(msgpack.packb({"request": "status"})[:-2])
    assert msgpack.unpackb(junk.recv(), raw=False)["code"] == 1
    junk.send(b"[]")
    assert json.loads(junk.recv())["message"] == "Invalid request: Invalid request"
    status = service.ask_json(b'{"request": "status"}')
    assert status["code"] == 0
    assert status["data"]["System"]["Zmqaddress"] == service.address
    assert status["data"]["JobStats"]["TotalJobs"] == 0
    reply = service.ask_json(b'{"request": "finish"}')
    assert reply["code"] == 0
    assert service.proc.wait(timeout=30) == 0
    aux = next(d for d in os.listdir(service.wd) if d.startswith(".qcgpjm-service-"))
    with open(os.path.join(service.wd, aux, "final_status")) as fh:
        final = json.load(fh)
    assert final["System"]["Zmqaddress"] == service.address
