"""QCG-PilotJob 0.14.2's service options that ours lacked (regression: QCGPJExecutor(
enable_rt_stats=True) and QCGPJExecutor('--disable-pub') could not start a service): each is
accepted, and those with an effect here have it."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any, List

import pytest

from qcg_pilotjob.partition.agents import AgentExecutor
from qcg_pilotjob.partition.manager import PartitionManager
from qcg_pilotjob.resources import ResourcePool, parse_nodes_spec
from tests.conftest import FINISH, free_port, service_cmd, submit

pytestmark = pytest.mark.integration


def test_disable_pub_and_wait_by_polling(local: Any, tmp_path: Path) -> None:
    from qcg.pilotjob.api.job import Jobs

    manager = local("--wd", str(tmp_path), "--nodes", "2", "--disable-pub", cfg={"poll_delay": 0.2})
    assert manager.system_status()["System"]["StatusPublisher"] is None
    manager.submit(Jobs().add(name="a", exec="/bin/true"))
    assert manager.wait4("a") == {"a": "SUCCEED"}


def test_net_pub_port_is_where_events_are_published(local: Any, tmp_path: Path) -> None:
    port = free_port()
    manager = local("--wd", str(tmp_path), "--nodes", "2", "--net-pub-port", str(port))
    assert manager.system_status()["System"]["StatusPublisher"].endswith(f":{port}")


def test_options_without_effect_here_are_accepted(tmp_path: Path) -> None:
    reqs = tmp_path / "reqs.json"
    reqs.write_text(json.dumps([submit({"name": "a", "execution": {"exec": "/bin/true"}}), FINISH]))
    proc = subprocess.run(service_cmd("--wd", str(tmp_path), "--file-path", str(reqs), "--nodes", "2",
                                      "--enable-rt-stats", "--wrapper-rt-stats", "qcg_pj_launch_wrapper",
                                      "--enable-proc-stats", "--nl-start-method", "ssh", "--nl-init-timeout", "5",
                                      "--nl-ready-threshold", "0.5"),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("option,value,text", [("--nl-ready-threshold", "0", "not in (0, 1]"),
                                               ("--nl-ready-threshold", "1.5", "not in (0, 1]"),
                                               ("--nl-init-timeout", "0", "greater than zero"),
                                               ("--net-pub-port", "70000", "not a port number")])
def test_bad_values_are_refused_by_name(tmp_path: Path, option: str, value: str, text: str) -> None:
    proc = subprocess.run(service_cmd("--wd", str(tmp_path), "--nodes", "2", "--net", option, value),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and option in proc.stderr and text in proc.stderr, proc.stderr


def test_slurm_resources_file_gives_the_nodes(tmp_path: Path) -> None:
    """QCG-PilotJob's Resources.to_dict JSON (its governor writes one per partition)."""
    gpu = {"GPU": {"class": "CRBind", "data": {"type": "GPU", "ids": ["0", "1"], "free": ["0", "1"]}}}
    resources = {"type": "LOCAL", "binding": False, "nodes": [
        {"name": "alpha", "total_cores": 3, "core_ids": ["0", "1", "2"], "free_cores": ["0", "1", "2"], "crs": gpu},
        {"name": "beta", "total_cores": 2, "core_ids": None, "free_cores": [], "crs": None}]}
    path = tmp_path / "res.json"
    path.write_text(json.dumps(resources))
    reqs = tmp_path / "reqs.json"
    reqs.write_text(json.dumps([submit({"name": "g", "execution": {"script": "echo $CUDA_VISIBLE_DEVICES > g.txt"},
                                        "resources": {"numCores": {"exact": 1}, "nodeCrs": {"gpu": 2}}}), FINISH]))
    proc = subprocess.run(service_cmd("--wd", str(tmp_path), "--file-path", str(reqs), "--nodes", "9",
                                      "--slurm-resources-file", str(path)),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    aux = next(tmp_path.glob(".qcgpjm-service-*"))
    nodes = json.loads((aux / "nodes.json").read_text())["nodes"]
    assert [(n["name"], n["cores"], n["gpus"]) for n in nodes] == [("alpha", ["0", "1", "2"], ["0", "1"]),
                                                                   ("beta", ["0", "1"], [])]
    assert (tmp_path / "g.txt").read_text() == "0,1\n"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "LOCAL", "nodes": [{"total_cores": 2}]}))
    proc = subprocess.run(service_cmd("--wd", str(tmp_path), "--file-path", str(reqs),
                                      "--slurm-resources-file", str(bad)),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "nodes[0]: no name" in proc.stderr


class _Agents(AgentExecutor):
    """Node agents of which some never come up (no sockets, no srun)."""

    def __init__(self, missing: List[str]) -> None:  # (AgentExecutor's own is not run)
        self.missing = missing

    async def start_agents(self, timeout: float) -> List[str]:
        return self.missing

    def agent_gpus(self, node: str) -> List[str]:
        return []


@pytest.mark.parametrize("missing,threshold,ok", [(["n3"], None, True), (["n3"], 0.75, True), (["n3"], 0.8, False),
                                                  (["n2", "n3"], 1.0, False)])
def test_nl_ready_threshold(tmp_path: Path, missing: List[str], threshold: Any, ok: bool) -> None:
    async def scenario() -> List[str]:
        pm = PartitionManager(asyncio.get_running_loop(), ResourcePool(parse_nodes_spec("n0:1,n1:1,n2:1,n3:1")),
                              lambda m: None, dry_run=True,
                              executor_options={"root_wd": str(tmp_path), "aux_dir": str(tmp_path),
                                                "env_schema": "none", "zmq_address": None, "kill_grace": 1.0})
        pm.executor = _Agents(missing)
        await pm.prepare(5.0, threshold)
        return [n.name for n in pm.pool.nodes]

    if ok:
        assert asyncio.run(scenario()) == [n for n in ("n0", "n1", "n2", "n3") if n not in missing]
    else:
        with pytest.raises(Exception, match="nl-ready-threshold"):
            asyncio.run(scenario())
