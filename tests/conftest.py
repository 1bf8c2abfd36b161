"""Shared fixtures: run the service on a request list and read what it wrote."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import pytest


def secure_as_owner(sock: Any, address: str) -> None:
    """Give a raw test socket the run's client keys, as the owner's clients find them (the
    service writes them to ~/.qcg-pilotjob/ by address); a service run with --insecure-net
    has none."""
    from qcg_pilotjob.keys import find_keys
    from qcg_pilotjob.protocol.transport import secure_client

    keys = find_keys(address, environ={})
    if keys is not None:
        secure_client(sock, keys)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns a truthy value or ``timeout`` passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class ServiceRun:
    rc: int
    stdout: str
    stderr: str
    wd: str

    @property
    def aux(self) -> str:
        dirs = sorted(d for d in os.listdir(self.wd) if d.startswith(".qcgpjm-service-"))
        assert dirs, f"no aux dir in {self.wd}; stderr: {self.stderr}"
        return os.path.join(self.wd, dirs[-1])

    def read(self, name: str) -> str:
        with open(os.path.join(self.aux, name)) as fh:
            return fh.read()

    @property
    def final_status(self) -> Dict[str, Any]:
        return json.loads(self.read("final_status"))

    def report(self) -> Dict[str, Dict[str, Any]]:
        """jobs.report entries by name (the service must have run with --report-format json)."""
        out = {}
        for line in self.read("jobs.report").splitlines():
            entry = json.loads(line)
            out[entry["name"]] = entry
        return out

    @property
    def log(self) -> str:
        return self.read("service.log")


def service_cmd(*args: str) -> List[str]:
    return [sys.executable, "-m", "qcg_pilotjob.service", *args]


@pytest.fixture(params=["pidfd", "sigchld"])
def exit_watch(request: Any, monkeypatch: Any) -> str:
    """Run the test once with each way the service learns of a task's exit: a pidfd per task
    (Linux >= 5.3) and SIGCHLD (older kernels; ``QCG_PM_EXIT_WATCH=sigchld``). The service
    processes the test starts inherit the variable."""
    if request.param == "sigchld":
        monkeypatch.setenv("QCG_PM_EXIT_WATCH", "sigchld")
    else:
        monkeypatch.delenv("QCG_PM_EXIT_WATCH", raising=False)
    return str(request.param)


@pytest.fixture
def run_service(tmp_path: Any) -> Callable[..., ServiceRun]:
    """``run_service(requests, *args, timeout=60)``: write the requests to a file in a fresh
    wd and run the service to completion on it (``--report-format json`` by default)."""

    def run(requests: Optional[List[Any]], *args: str, timeout: float = 60, wd: Optional[str] = None,
            report_format: str = "json") -> ServiceRun:
        wdir = wd or str(tmp_path)
        cmd = service_cmd("--wd", wdir, "--report-format", report_format, *args)
        if requests is not None:
            path = os.path.join(wdir, "reqs.json")
            with open(path, "w") as fh:
                json.dump(requests, fh)
            cmd += ["--file-path", path]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        return ServiceRun(proc.returncode, proc.stdout, proc.stderr, wdir)

    return run


FINISH = {"request": "control", "command": "finishAfterAllTasksDone"}


def submit(*jobs: Dict[str, Any]) -> Dict[str, Any]:
    return {"request": "submit", "jobs": list(jobs)}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(what: Callable[[], Any]) -> Any:
    """``what()``, or, if it raises RuntimeError (an install from PyPI that cannot be done),
    a failure under CI and a skip elsewhere, with its message."""
    try:
        return what()
    except RuntimeError as exc:
        if in_ci():
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))


def read_terminal(master: int, proc: Any, timeout: float) -> bytes:
    """What ``proc`` wrote to the pseudo-terminal whose master side is ``master``, until it
    closed the terminal or exited (or ``timeout`` seconds passed)."""
    import errno
    import select

    chunks: List[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError as exc:  # EIO: the slave side is closed
                if exc.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)
