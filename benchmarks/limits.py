"""What this machine allows any Python pilot job below: the floors under the latency and
start-up targets, measured without our code.

- ``imports_s``: a new interpreter importing what a service needs (asyncio, pyzmq, msgpack,
  click, psutil) and exiting, median wall seconds; ``python_s`` the same with nothing
  imported. A service started as a new process (``LocalManager``, a request file) cannot be
  ready sooner.
- ``round_trip_ms``: p50 of a request and its reply between a REQ socket and an asyncio
  ROUTER in another process, CURVE over TCP loopback, the server doing nothing but echo.
  No request to a service of that shape is answered sooner.
- ``spawn_wait_ms``: p50 of ``posix_spawn`` of ``/bin/true`` and waiting for its exit, one
  at a time: one hop of a dependency chain runs at least one such process.
- ``decode_list_ms``: the client's msgpack decode of a ``listJobs`` reply of 10,000 jobs
  (median): the part of ``list`` no service can take off the client.

    python -m benchmarks.limits
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
from typing import Dict

import msgpack
import zmq
import zmq.asyncio

from .api_driver import median_ms


def _interpreter(code: str, times: int) -> float:
    """Seconds."""
    return median_ms(lambda: subprocess.run([sys.executable, "-c", code], check=True), times) / 1000


def _echo_server(address: str, public: bytes, secret: bytes) -> None:
    async def serve() -> None:
        ctx = zmq.asyncio.Context()
        sock = ctx.socket(zmq.ROUTER)
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.bind(address)
        while True:
            await sock.send_multipart(await sock.recv_multipart())
    asyncio.run(serve())


def _round_trip(times: int) -> float:
    public, secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    ctx = zmq.Context()
    probe = ctx.socket(zmq.REQ)
    port = probe.bind_to_random_port("tcp://127.0.0.1")  # (a free port for the server)
    probe.close(0)
    address = f"tcp://127.0.0.1:{port}"
    server = mp.get_context("spawn").Process(target=_echo_server, args=(address, public, secret), daemon=True)
    server.start()
    sock = ctx.socket(zmq.REQ)
    sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = public, client_public, client_secret
    sock.setsockopt(zmq.RCVTIMEO, 30_000)
    sock.connect(address)
    request = msgpack.packb({"request": "jobStatus", "jobNames": ["j0"]})
    try:
        sock.send(request)
        sock.recv()  # (the connection and its handshake are not timed)
        return median_ms(lambda: (sock.send(request), sock.recv()), times)
    finally:
        sock.close(0)
        ctx.term()
        server.kill()
        server.join()


def _spawn_wait(times: int) -> float:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return median_ms(lambda: os.waitpid(os.posix_spawn("/bin/true", ["/bin/true"], env), 0), times)


def _decode_list(jobs: int, times: int) -> float:
    reply = {"code": 0, "data": {"length": jobs, "jobs": {f"j{i}": {"status": "SUCCEED"} for i in range(jobs)}}}
    raw = msgpack.packb(reply, use_bin_type=True)
    return median_ms(lambda: msgpack.unpackb(raw, raw=False, strict_map_key=False), times)


def measure(quick: bool = False) -> Dict[str, float]:
    k = 1 if quick else 5
    return {
        "python_s": _interpreter("pass", k),
        "imports_s": _interpreter("import asyncio, zmq, msgpack, click, psutil", k),
        "round_trip_ms": _round_trip(50 if quick else 2000),
        "spawn_wait_ms": _spawn_wait(20 if quick else 500),
        "decode_list_ms": _decode_list(10_000, 3 if quick else 30),
    }


def describe(lim: Dict[str, float]) -> str:
    return (f"limits of this machine: interpreter with asyncio, zmq, msgpack, click, psutil {lim['imports_s']:.3f} s "
            f"(bare {lim['python_s']:.3f} s); CURVE round trip to an asyncio echo {lim['round_trip_ms']:.3f} ms; "
            f"spawn and wait of one /bin/true {lim['spawn_wait_ms']:.3f} ms; "
            f"decode of a 10,000-job list {lim['decode_list_ms']:.1f} ms")


if __name__ == "__main__":
    result = measure("--quick" in sys.argv)
    print(describe(result))
    print(json.dumps(result))
