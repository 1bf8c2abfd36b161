"""Least exposure: outside a Slurm allocation the service listens on loopback only, unless
``--net-host`` says otherwise (inside an allocation: the node's own address, see the Slurm
tests). Checked on the sockets the process really listens on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import List, Set

import psutil
import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def listening(pid: int) -> Set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


def start(tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.Popen([sys.executable, "-m", "qcg_pilotjob.service", "--net", "--wd", str(tmp_path),
                             "--id", "ls", "--nodes", "1", *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("extra, expected", [([], {"127.0.0.1"}), (["--net-host", "0.0.0.0"], {"0.0.0.0"})])
def test_listens_on_loopback_unless_told(tmp_path: Path, extra: List[str], expected: Set[str]) -> None:
    proc = start(tmp_path, *extra)
    try:
        address = tmp_path / ".qcgpjm-service-ls" / "address"
        wait_for(address.exists, what="the address file")
        ips = wait_for(lambda: listening(proc.pid) if len(listening(proc.pid)) else None, what="listening sockets")
        assert ips == expected  # the request endpoint and the event publisher alike
        if not extra:
            assert address.read_text().startswith("tcp://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
