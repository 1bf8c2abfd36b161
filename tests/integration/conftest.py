"""Fixtures of the integration tests here: ``local``, a LocalManager in the test's tmp dir, and
the helpers of the API tests that go with it (``state``, ``wait_state``); ``keyed_service``, a
service process with its run's keys."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from tests.conftest import service_cmd, wait_for


@pytest.fixture
def local(tmp_path, monkeypatch):
    """``local(*server_args, cfg=None)``: a LocalManager working in this test's tmp dir
    (``--wd tmp --nodes 4`` unless given); finished at the end of the test."""
    from qcg.pilotjob.api.manager import LocalManager

    monkeypatch.chdir(tmp_path)
    started = []

    def start(*args: str, cfg=None):
        server_args = list(args) or ["--wd", str(tmp_path), "--nodes", "4"]
        manager = LocalManager(server_args, cfg)
        started.append(manager)
        return manager

    try:
        yield start
    finally:
        for manager in started:
            if manager._sock is not None:
                manager.finish()


def state(manager, name: str) -> str:
    return manager.status(name)["jobs"][name]["data"]["status"]


def wait_state(manager, name: str, wanted: str) -> str:
    return wait_for(lambda: state(manager, name) == wanted, what=f"{name} {wanted}")


@pytest.fixture
def keyed_service(tmp_path: Path) -> Iterator[Dict[str, Any]]:
    """A service with its run's keys (the default), on loopback: its address, aux dir, working
    dir and process; stopped with SIGTERM at the end unless it ended."""
    proc = subprocess.Popen(service_cmd("--net", "--wd", str(tmp_path), "--id", "auth", "--nodes", "2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = tmp_path / ".qcgpjm-service-auth"
    try:
        address = wait_for(lambda: (aux / "address").exists() and (aux / "address").read_text().strip(),
                           what="the address file")
        yield {"address": address, "aux": aux, "wd": tmp_path, "proc": proc}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
