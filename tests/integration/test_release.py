"""Regression: a process that queued a message just before it exited could lose it (the
reply to ``finish``: ``LocalManager.finish()`` and ``qcg-pm finish`` waited out their whole
timeout in CI). Nothing waits for ZMQ's I/O thread at exit; ``transport.release()`` gives
queued messages their linger. A 64 MiB reply makes the race certain: without ``release()``
it never arrives."""

from __future__ import annotations

import subprocess
import sys

import pytest
import zmq

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SIZE = 64 << 20
CHILD = f"""
import asyncio, os, sys, zmq
from qcg_pilotjob.protocol import transport
async def main():
    sock, address = transport.bind_request_server(transport.async_context(), "127.0.0.1", None, 20000, 30000, None)
    print(address, flush=True)
    frames = await sock.recv_multipart()
    sock.send_multipart([*frames[:-1], b"x" * {SIZE}], flags=zmq.NOBLOCK)
    transport.close_server(sock)
asyncio.run(main())
transport.release()
os._exit(0)  # (no interpreter shutdown: the process ends as abruptly as it may)
"""


def test_regression_a_reply_queued_at_exit_still_arrives() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    try:
        assert child.stdout is not None
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(child.stdout.readline().strip())
        sock.send(b"finish")
        assert sock.poll(60_000), "no reply: it was lost when the process exited"
        assert len(sock.recv()) == SIZE
    finally:
        sock.close()
        ctx.term()
        child.wait(timeout=60)
