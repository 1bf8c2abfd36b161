"""CURVE building blocks on loopback: a server made with the run's keys answers a client
holding the run's client keys, and refuses one without keys or with other keys (no reply,
no effect, the refused key logged once). The service wires these in; this tests the
pieces (qcg_pilotjob.keys, protocol.transport secure_* and the authenticator)."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import zmq
import zmq.asyncio

from qcg_pilotjob.keys import ENV, RunKeys, find_keys, save_aux_keys, save_user_keys
from qcg_pilotjob.protocol.transport import secure_client, secure_server, start_authenticator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def ask(address: str, keys: Optional[RunKeys], timeout_ms: int) -> Optional[bytes]:
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
        if keys is not None:
            secure_client(sock, keys)
        sock.connect(address)
        sock.send(b"ping")
        try:
            return sock.recv()
        except zmq.Again:
            return None
    finally:
        ctx.destroy(linger=0)


def test_only_the_runs_client_key_is_served(caplog: pytest.LogCaptureFixture) -> None:
    keys = RunKeys.new()
    other = RunKeys.new()
    stranger = RunKeys(keys.server_public, other.client_public, other.client_secret)

    async def scenario() -> Dict[str, object]:
        ctx = zmq.asyncio.Context()
        auth = start_authenticator(ctx, keys)
        server = ctx.socket(zmq.ROUTER)
        server.setsockopt(zmq.LINGER, 0)
        secure_server(server, keys)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        address = f"tcp://127.0.0.1:{port}"
        served: List[bytes] = []

        async def serve() -> None:
            while True:
                ident, empty, payload = await server.recv_multipart()
                served.append(payload)
                await server.send_multipart([ident, empty, b"pong"])

        task = asyncio.get_running_loop().create_task(serve())
        loop = asyncio.get_running_loop()
        try:
            owner = await loop.run_in_executor(None, ask, address, keys.for_clients(), 10000)
            none = await loop.run_in_executor(None, ask, address, None, 1500)
            wrong = await loop.run_in_executor(None, ask, address, stranger, 1500)
            owner_again = await loop.run_in_executor(None, ask, address, keys.for_clients(), 10000)
        finally:
            task.cancel()
            auth.stop()
            ctx.destroy(linger=0)
        return {"owner": owner, "none": none, "wrong": wrong, "again": owner_again, "served": len(served)}

    with caplog.at_level(logging.WARNING):
        out = asyncio.run(scenario())
    assert out["owner"] == b"pong" and out["again"] == b"pong"
    assert out["none"] is None and out["wrong"] is None
    assert out["served"] == 2  # the refused peers had no effect
    refusals = [r for r in caplog.records if "refused a peer" in r.getMessage()]
    assert len(refusals) == 1 and other.client_public.decode() in refusals[0].getMessage()


def test_keys_found_by_aux_dir_user_dir_and_environment(tmp_path: Path) -> None:
    keys = RunKeys.new()
    old = os.umask(0)
    try:
        aux = tmp_path / "aux"
        aux.mkdir(mode=0o700)
        path = save_aux_keys(str(aux), keys)
        user = save_user_keys("tcp://127.0.0.1:2345", keys, home=str(tmp_path))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(user).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(user)).st_mode) == 0o700
    assert find_keys("tcp://x:1", aux=str(aux), environ={}, home=str(tmp_path / "nohome")) == keys.for_clients()
    assert find_keys("tcp://127.0.0.1:2345", environ={}, home=str(tmp_path)) == keys.for_clients()
    assert find_keys("tcp://127.0.0.1:9999", environ={}, home=str(tmp_path)) is None
    env = {ENV: keys.client_text()}
    assert find_keys("tcp://127.0.0.1:9999", environ=env, home=str(tmp_path / "nohome")) == keys.for_clients()
    assert RunKeys.from_text("not keys") is None


def handshake(address: str, keys: Optional[RunKeys]) -> str:
    """How a DEALER's CURVE handshake with ``address`` ends, from its socket monitor."""
    from zmq.utils.monitor import recv_monitor_message

    ends = {zmq.EVENT_HANDSHAKE_SUCCEEDED: "succeeded", zmq.EVENT_HANDSHAKE_FAILED_AUTH: "refused",
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "failed", zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "failed"}
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            secure_client(sock, keys)
        monitor = sock.get_monitor_socket()
        monitor.setsockopt(zmq.RCVTIMEO, 10000)
        sock.connect(address)
        while True:
            event = recv_monitor_message(monitor)["event"]
            if event in ends:
                return ends[event]
    finally:
        ctx.destroy(linger=0)


def test_regression_fake_agent_without_the_channels_keys_cannot_connect(tmp_path: Path) -> None:
    """A fake node agent's hello took over a node and received its tasks: the agent channel
    now admits only agents holding the keys their partition gave their srun step."""
    from qcg_pilotjob.partition.agents import AgentExecutor

    async def scenario() -> List[str]:
        loop = asyncio.get_running_loop()
        ex = AgentExecutor(loop, nodes=["n1"], root_wd=str(tmp_path), aux_dir=str(tmp_path), env_schema="none",
                           zmq_address=None, kill_grace=1.0, on_exit=lambda *a: None)
        ex.open_channel()
        assert ex.keys is not None
        other = RunKeys.new()
        stranger = RunKeys(ex.keys.server_public, other.client_public, other.client_secret)
        try:
            return [await loop.run_in_executor(None, handshake, ex.address, k)
                    for k in (None, stranger, ex.keys.for_clients())]
        finally:
            ex.close()
            if ex.sock is not None:
                ex.sock.close(linger=0)

    assert asyncio.run(scenario()) == ["failed", "refused", "succeeded"]
