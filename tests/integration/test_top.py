"""``qcg-pm top`` against a real governor with two partitions: its figures (per partition
and per node), plain output in a pipe, in-place redraws in a pseudo-terminal, its end with
the service's; and ``--show-progress`` per partition."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.conftest import FINISH, read_terminal, service_cmd, submit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

QCG_PM = [sys.executable, "-c", "from qcg_pilotjob.api.cli import main; main()"]


def top(wd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*QCG_PM, "--wd", str(wd), "--timeout", "5", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def figures(wd: Path) -> Dict[str, Any]:
    proc = top(wd, "--json", "top", "--count", "1")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def governor(tmp_path: Path) -> Any:
    gate = tmp_path / "go"
    reqs = tmp_path / "reqs.json"
    reqs.write_text(json.dumps([submit(
        {"name": "held", "execution": {"script": f"while [ ! -e {gate} ]; do sleep 0.05; done"},
         "iteration": {"stop": 3}},
        {"name": "quick", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 5}}), FINISH]))
    proc = subprocess.Popen(service_cmd("--wd", str(tmp_path), "--file-path", str(reqs), "--net",
                                        "--nodes", "n0:2,n1:2", "--slurm-partition-nodes", "1", "--heartbeat", "0.2",
                                        "--show-progress"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield tmp_path, gate, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def test_top_shows_partitions_nodes_and_ends_with_the_service(governor: Any) -> None:
    wd, gate, proc = governor
    wait_for(lambda: any(d.startswith(".qcgpjm-service-") and os.path.exists(wd / d / "address")
                         for d in os.listdir(wd)), timeout=30, what="the service's address")

    def settled() -> Any:  # three held tasks running, the node figures caught up (heartbeats)
        f = figures(wd)
        parts = f["partitions"]
        used = sum(u for p in parts for u, _ in p["nodes"].values())
        return f if f["running"] == 3 and used == 3 and len(parts) == 2 else None
    f = wait_for(settled, timeout=30, what="3 running tasks in the partitions' figures")
    assert sum(p["running"] for p in f["partitions"]) == 3
    assert sorted(p["name"] for p in f["partitions"]) == ["partition-0", "partition-1"]
    assert all(total == 2 for p in f["partitions"] for _, total in p["nodes"].values())
    assert f["done"] + f["queued"] + f["running"] == 8 and f["cores"] == 4

    plain = top(wd, "top", "--count", "2", "--interval", "0.1")
    assert plain.returncode == 0, plain.stderr
    assert "\x1b[" not in plain.stdout
    assert plain.stdout.count("tasks: queued") == 2 and "partition-0" in plain.stdout and "n1 [" in plain.stdout

    master, slave = pty.openpty()
    tty = subprocess.Popen([*QCG_PM, "--wd", str(wd), "--timeout", "5", "top", "--count", "2", "--interval", "0.1"],
                           stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = read_terminal(master, tty, 30)
    os.close(master)
    assert tty.wait(timeout=30) == 0
    assert out.count(b"\x1b[H\x1b[2J") == 2 and b"tasks: queued" in out  # redrawn in place, twice

    # (a request timeout longer than the test's: top learns of the end from the connection)
    watcher = subprocess.Popen([*QCG_PM, "--wd", str(wd), "--timeout", "600", "top", "--interval", "0.2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert watcher.stdout is not None
    seen = [watcher.stdout.readline() for _ in range(2)]  # its first refresh is out: it found the service
    assert seen[1].startswith("tasks: queued"), seen
    gate.touch()
    assert proc.wait(timeout=60) == 0
    stdout, stderr = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, stderr
    assert stdout.rstrip().endswith("the service ended")

    progress: List[str] = proc.communicate(timeout=30)[0].splitlines()
    last = progress[-1]
    assert last.startswith("done 8  failed 0")
    assert "partition-0: run 0 done" in last and "partition-1: run 0 done" in last
    per_part = [int(n) for n in re.findall(r"partition-\d+: run 0 done (\d+) failed 0", last)]
    assert len(per_part) == 2 and sum(per_part) == 8
