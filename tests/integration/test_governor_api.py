"""Governor mode: the Python API (LocalManager) against a governor and its partitions
(helpers: governor_helpers)."""

from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional

import psutil
import pytest

from tests.conftest import wait_for
from tests.integration.governor_helpers import _cmdline, _gone, _kill_all, _nodes, _partition_of

pytestmark = pytest.mark.integration


# ---- the Python API against a governor -----------------------------------------------------------
@pytest.fixture
def governor_manager(tmp_path, monkeypatch):
    from qcg_pilotjob.api import LocalManager

    monkeypatch.chdir(tmp_path)
    managers: List[Any] = []

    def start(*extra: str) -> Any:
        manager = LocalManager(["--nodes", "2,2,2,2", "--slurm-partition-nodes", "2", "--wd", str(tmp_path),
                                "--kill-grace", "1", *extra])
        managers.append(manager)
        return manager

    try:
        yield start
    finally:
        for manager in managers:
            kids = []
            if manager.qcgpm_process.poll() is None:
                with contextlib.suppress(psutil.Error):
                    kids = psutil.Process(manager.qcgpm_process.pid).children(recursive=True)
            if manager._sock is not None:
                try:
                    manager.finish()
                except Exception:
                    manager._kill()
            _kill_all([k for k in kids if not _gone(k)])


def test_api_cancel_and_info_of_job_split_over_partitions(governor_manager):
    from qcg_pilotjob.api.job import Jobs

    manager = governor_manager()
    # ready only once the partitions registered: the totals are there at once
    assert manager.resources() == {"total_nodes": 4, "total_cores": 8, "used_cores": 0, "free_cores": 8}
    assert manager.submit(Jobs().add(name="split", exec="sleep", args=["30"], iteration=20)) == ["split"]

    def executing_partitions() -> Optional[Dict[int, List[int]]]:
        data = manager.info("split", withChilds=True)["jobs"]["split"]["data"]
        parts: Dict[int, List[int]] = {}
        for child in data["childs"]:
            if child["state"] == "EXECUTING":
                for node in _nodes(child["runtime"]["allocation"]):
                    parts.setdefault(_partition_of(node, 2), []).append(child["iteration"])
        return parts if set(parts) == {0, 1} else None

    parts = wait_for(executing_partitions, timeout=20, what="iterations executing on both partitions")
    assert all(1 <= len(its) <= 4 for its in parts.values()), parts
    res = wait_for(lambda: (r := manager.resources())["used_cores"] > 0 and r, what="used cores")
    assert res["total_cores"] == 8
    assert res["total_nodes"] == 4
    assert 0 < res["used_cores"] <= 8
    assert res["free_cores"] == 8 - res["used_cores"]
    assert manager.status("split")["jobs"]["split"]["data"]["status"] == "EXECUTING"
    kids = [p for p in psutil.Process(manager.qcgpm_process.pid).children() if "--parent" in _cmdline(p)]
    assert len(kids) == 2
    assert sorted(next(a for a in _cmdline(k) if a.startswith("partition-")) for k in kids) == \
        ["partition-0", "partition-1"]

    assert manager.cancel("split") == {"canceled": 1}
    assert manager.wait4("split", timeout=20) == {"split": "CANCELED"}
    data = manager.info("split", withChilds=True)["jobs"]["split"]["data"]
    assert data["status"] == "CANCELED"
    assert data["iterations"]["total"] == 20
    assert data["iterations"]["finished"] == 20
    assert len(data["childs"]) == 20
    assert {c["state"] for c in data["childs"]} == {"CANCELED"}
    assert manager.status("split:3") == {
        "jobs": {"split:3": {"status": 0, "data": {"jobName": "split:3", "status": "CANCELED"}}}}
    assert manager.list() == {"split": {"status": "CANCELED"}}
    wait_for(lambda: manager.resources()["used_cores"] == 0, what="cores released")
    assert manager.remove("split") == {"removed": 1}
    assert manager.list() == {}
    assert manager.status("split")["jobs"]["split"]["status"] == 1
    manager.finish()
    assert manager.qcgpm_process.returncode == 0
    wait_for(lambda: all(_gone(k) for k in kids), timeout=10, what="partition processes to exit")


def test_api_job_larger_than_any_partition_is_rejected(governor_manager):
    from qcg_pilotjob.api.errors import ConnectionError as RequestFailed
    from qcg_pilotjob.api.job import Jobs

    manager = governor_manager()
    assert manager.resources()["total_cores"] == 8  # 8 cores in all, but 4 per partition
    with pytest.raises(RequestFailed) as exc:
        manager.submit(Jobs().add(name="small", exec="/bin/true").add(name="big", exec="/bin/true", numCores=5))
    message = str(exc.value).split("Request failed - ", 1)[1]
    assert message.startswith("Not enough resources for job big")
    assert "partitions" in message
    assert manager.list() == {}  # the whole request was rejected
    assert manager.submit(Jobs().add(name="fits", exec="/bin/true", numCores=4)) == ["fits"]
    assert manager.wait4("fits", timeout=20) == {"fits": "SUCCEED"}
    assert manager.list() == {"fits": {"status": "SUCCEED"}}


def test_regression_local_manager_ready_before_partitions_registered(governor_manager):
    """LocalManager returned before the governor's partitions registered: the first submit
    failed with 'no partition has registered yet' and resources() showed 0 cores."""
    from qcg_pilotjob.api.job import Jobs

    manager = governor_manager()
    assert manager.resources()["total_cores"] == 8
    assert manager.system_status()["System"]["Partitions"] == 2
    assert manager.submit(Jobs().add(name="first", exec="/bin/true")) == ["first"]
    assert manager.wait4("first", timeout=20) == {"first": "SUCCEED"}
