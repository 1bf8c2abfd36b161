"""Both ends of the agent channel on real loopback sockets, fed frames they must survive.

- A real node agent process (``python -m qcg_pilotjob.launcher.agent``) connects to a
  ROUTER bound here; it is sent garbage, malformed and unrunnable tasks, and must still
  run a good task and report its exit.
- A partition's AgentExecutor serves its real ROUTER; a raw DEALER sends malformed hellos
  and then a good one, which must still be accepted and served.

No sleeps: every wait polls a socket or a condition up to a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple, Type, TypeVar

import msgpack
import pytest
import zmq

from qcg_pilotjob.jobdesc import JobDescription
from qcg_pilotjob.partition.agents import AgentExecutor
from qcg_pilotjob.partition.executor import RunningTask
from qcg_pilotjob.partition.scheduler import TaskSpec
from qcg_pilotjob.protocol.codec import DecodeError, decode_batch, encode_batch
from qcg_pilotjob.protocol.messages import (
    PROTOCOL_VERSION,
    AgentHelloMsg,
    AgentStopMsg,
    ExitMsg,
    HeartbeatMsg,
    Message,
    RunMsg,
    StartedMsg,
)
from qcg_pilotjob.protocol.transport import async_context, connect_dealer
from qcg_pilotjob.resources import Allocation, NodeAllocation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

M = TypeVar("M", bound=Message)


def raw(*items: Any) -> bytes:
    """A batch frame built by hand (messages the encoder would not make)."""
    return bytes(msgpack.packb([PROTOCOL_VERSION, list(items)]))


def run_msg(key: List[Any], argv: List[str], wd: str) -> RunMsg:
    return RunMsg(key, argv, wd, {}, None, None, None, None)


# ---- a real node agent against a ROUTER of ours ---------------------------------------------------
class AgentPeer:
    """The partition's side, played by the test: a ROUTER and what the agent sent."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.identity = b""
        self.got: List[Message] = []

    def send(self, *parts: bytes) -> None:
        self.sock.send_multipart([self.identity, *parts])

    def wait(self, kind: Type[M], pred: Callable[[M], bool] = lambda m: True, timeout: float = 20.0) -> M:
        """The first message of ``kind`` (received already or next) for which ``pred`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.got if isinstance(m, kind) and pred(m)]
            if found:
                return found[0]
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                raise AssertionError(f"no {kind.__name__} from the agent within {timeout}s; got {self.got}")
            ident, frame = self.sock.recv_multipart()
            self.identity = ident
            self.got.extend(m for m in decode_batch(frame) if not isinstance(m, HeartbeatMsg))

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


def test_agent_process_survives_bad_frames(tmp_path: Path) -> None:
    peer = AgentPeer()
    log = tmp_path / "agent.log"
    proc = subprocess.Popen([sys.executable, "-m", "qcg_pilotjob.launcher.agent", "--address",
                             f"tcp://127.0.0.1:{peer.port}", "--node", "n0", "--log", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        hello = peer.wait(AgentHelloMsg)
        assert (hello.node, hello.version, hello.pid) == ("n0", PROTOCOL_VERSION, proc.pid)
        (tmp_path / "a-file").write_text("not a directory")
        peer.send(b"\xc1 garbage, not msgpack")
        peer.send(encode_batch([run_msg(["two-parts", None], ["true"], str(tmp_path))]), b"a second part")
        peer.send(raw([RunMsg.TYPE, ["short", None]]))                           # a RunMsg missing fields
        peer.send(raw([RunMsg.TYPE, ["argv", None], 5, str(tmp_path), {}]))      # argv is not a list
        peer.send(raw([99, "a message of unknown type"]))
        peer.send(encode_batch([run_msg(["noexec", None], ["/nonexistent/program"], str(tmp_path)),
                                run_msg(["nowd", 1], ["true"], str(tmp_path / "a-file" / "wd"))]))
        peer.send(encode_batch([run_msg(["good", 2], ["sh", "-c", "echo ran > out; exit 3"], str(tmp_path / "wd"))]))
        started = peer.wait(StartedMsg, lambda m: m.key == ["good", 2])
        assert started.error is None and started.pid > 0
        assert peer.wait(ExitMsg, lambda m: m.key == ["good", 2]).code == 3
        assert (tmp_path / "wd" / "out").read_text() == "ran\n"
        noexec = peer.wait(StartedMsg, lambda m: m.key == ["noexec", None])
        assert noexec.error and "cannot start on n0" in noexec.error and "/nonexistent/program" in noexec.error
        nowd = peer.wait(StartedMsg, lambda m: m.key == ["nowd", 1])
        assert nowd.error and "Not a directory" in nowd.error
        assert not any(isinstance(m, StartedMsg) and m.key in (["short", None], ["two-parts", None]) for m in peer.got)
        peer.send(encode_batch([AgentStopMsg()]))
        assert proc.wait(timeout=20) == 0
        text = log.read_text()
        assert text.count("dropped an invalid frame from the partition manager") >= 5, text
        assert "Traceback" not in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        peer.close()


# ---- the partition's agent channel against a raw DEALER ------------------------------------------
class _Step:
    """Stands for the agent's srun step: it keeps running."""

    returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9


async def _next(sock: Any, kind: Type[M], timeout: float = 10.0) -> M:
    """The next message of ``kind`` the DEALER receives (others are skipped)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError(f"no {kind.__name__} within {timeout}s")
        frame = await asyncio.wait_for(sock.recv(), left)
        for msg in decode_batch(frame):
            if isinstance(msg, kind):
                return msg


def test_agent_channel_accepts_a_good_hello_after_malformed_ones(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    exits: List[Tuple[Any, int, Optional[str]]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def on_exit(task: RunningTask, code: int, when: float) -> None:
            exits.append((task.key, code, task.error))
            done.set()

        ex = AgentExecutor(loop, nodes=["n1"], root_wd=str(tmp_path), aux_dir=str(tmp_path), env_schema="none",
                           zmq_address=None, kill_grace=1.0, on_exit=on_exit)
        ex.open_channel()
        ex.expect("n1", _Step())  # type: ignore[arg-type]
        dealer = connect_dealer(async_context(), ex.address, "raw-dealer", ex.keys)  # the channel's own keys
        try:
            for frame in (b"\x00\xff garbage",
                          raw([AgentHelloMsg.TYPE, "n1"]),                                    # fields missing
                          raw([AgentHelloMsg.TYPE, ["n1"], PROTOCOL_VERSION, [0], [], 1]),   # node is a list
                          encode_batch([AgentHelloMsg("n1", PROTOCOL_VERSION + 1, [0], [], 1)]),
                          encode_batch([AgentHelloMsg("n1", PROTOCOL_VERSION, [0, 1], ["7"], 4321)])):
                await dealer.send(frame)
            assert await ex.wait_hellos(10.0) == []
            assert ex.agents["n1"].identity == b"raw-dealer" and ex.agent_gpus("n1") == ["7"]
            desc = JobDescription.from_dict({"name": "t", "execution": {"exec": "/bin/true"}})
            alloc = Allocation([NodeAllocation(0, "n1", [0], ["0"])])
            assert ex.start(TaskSpec(desc, 1), None, alloc) is None
            run = await _next(dealer, RunMsg)
            assert run.key == ["t", None] and run.argv == ["/bin/true"]
            await dealer.send(encode_batch([StartedMsg(run.key, 99), ExitMsg(run.key, 0, time.time())]))
            await asyncio.wait_for(done.wait(), 10.0)
        finally:
            dealer.close(linger=0)
            ex.close()
            if ex.sock is not None:
                ex.sock.close(linger=0)

    with caplog.at_level(logging.WARNING, logger="qcg_pilotjob.partition.agents"):
        asyncio.run(main())
    assert exits == [(("t", None), 0, None)]
    refused = [r.getMessage() for r in caplog.records if "raw-dealer" in r.getMessage()]
    assert len(refused) >= 4, refused  # each bad frame: one warning naming the sender
    assert any("protocol version" in m for m in refused), refused


def test_decode_error_is_what_malformed_frames_raise() -> None:
    """The frames above are bad for the codec itself, not only for the handlers."""
    for frame in (b"\x00\xff garbage", raw([AgentHelloMsg.TYPE, "n1"]), raw([99, "x"])):
        with pytest.raises(DecodeError):
            decode_batch(frame)
