"""LocalManager's reply wait (qcg_pilotjob.api.child and LocalManager._receive), with a
ROUTER standing in for the service and a sleeping process for its process."""

from __future__ import annotations

import subprocess
import threading
import types
from typing import Any, Iterator, List, Tuple

import pytest
import zmq

from qcg_pilotjob.api import child
from qcg_pilotjob.api.errors import ConnectionError as ApiConnectionError
from qcg_pilotjob.api.manager import LocalManager
from qcg_pilotjob.protocol.transport import connect_requester


@pytest.fixture
def pair() -> Iterator[Tuple[zmq.Socket[Any], zmq.Socket[Any]]]:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    req = connect_requester(ctx, f"tcp://127.0.0.1:{port}")
    try:
        yield router, req
    finally:
        req.close(0)
        router.close(0)
        ctx.term()


@pytest.fixture
def proc() -> Iterator[subprocess.Popen[Any]]:
    p = subprocess.Popen(["sleep", "60"])
    try:
        yield p
    finally:
        p.kill()
        p.wait()


def _stub(proc: subprocess.Popen[Any], timeout_ms: int) -> Any:
    return types.SimpleNamespace(_child=child.ChildWatch(proc), _timeout_ms=timeout_ms, _service_error=lambda: "-")


def _answer(router: zmq.Socket[Any], frames: List[bytes], text: bytes) -> None:
    router.send_multipart([*frames[:-1], text])


def test_regression_late_reply_to_a_timed_out_request_is_skipped(pair: Any, proc: Any) -> None:
    """After a request timed out, its late reply made the next wait see 'ready', drop the
    stale reply (REQ_CORRELATE) and give up at once with zmq.Again; it waits on."""
    router, req = pair
    stub = _stub(proc, 300)
    req.send(b"first")
    first = router.recv_multipart()
    with pytest.raises(zmq.Again):
        LocalManager._receive(stub, req)  # (no answer within 0.3 s)
    req.send(b"second")
    second = router.recv_multipart()
    _answer(router, first, b"late")
    timer = threading.Timer(0.3, _answer, (router, second, b"right"))
    timer.start()
    stub._timeout_ms = 10_000
    try:
        assert LocalManager._receive(stub, req) == b"right"
    finally:
        timer.join()


@pytest.mark.parametrize("pidfd", [True, False])
def test_service_exit_ends_the_wait(pair: Any, monkeypatch: Any, pidfd: bool) -> None:
    _router, req = pair
    monkeypatch.setattr(child, "EXIT_GRACE_MS", 50)
    if not pidfd:
        monkeypatch.setattr(child, "_pidfd", lambda pid: None)
    gone = subprocess.Popen(["sh", "-c", "exit 3"])
    req.send(b"anyone?")
    with pytest.raises(ApiConnectionError, match="exited with code 3 before it answered"):
        LocalManager._receive(_stub(gone, 60_000), req)


def test_reply_sent_just_before_a_clean_exit_is_read(pair: Any) -> None:
    router, req = pair
    done = subprocess.Popen(["true"])
    done.wait()
    req.send(b"finish")
    frames = router.recv_multipart()
    _answer(router, frames, b"ok")
    assert LocalManager._receive(_stub(done, 60_000), req) == b"ok"
