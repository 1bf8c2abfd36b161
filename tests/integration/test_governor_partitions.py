"""Governor mode: the partition processes: an orderly end, a partition or the governor killed,
partitions started by hand and a duplicate partition id (helpers: governor_helpers)."""

from __future__ import annotations

import random
import signal
import subprocess
from typing import Dict, List, Optional, Set

import psutil
import pytest

from tests.conftest import FINISH, service_cmd, submit, wait_for
from tests.integration.governor_helpers import (
    _ask,
    _aux,
    _final_status,
    _gone,
    _iterations,
    _kill_all,
    _marker_procs,
    _nodes,
    _partition_children,
    _partition_of,
    _read,
    _report_lines,
    _stop,
    _write_reqs,
)

pytestmark = pytest.mark.integration


# ---- orderly end -----------------------------------------------------------------------------------
def test_finish_after_all_tasks_done_every_process_exits_zero(tmp_path):
    gate = tmp_path / "go"
    job = {"name": "gated", "execution": {"script": f"while [ ! -e {gate} ]; do sleep 0.05; done"},
           "iteration": {"stop": 6}}
    reqs = _write_reqs(tmp_path, [submit(job), FINISH])
    gov = subprocess.Popen(service_cmd("--wd", str(tmp_path), "--file-path", reqs, "--nodes", "2,2,2,2",
                                       "--slurm-partition-nodes", "2", "--id", "fin", "--report-format", "json"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = _aux(str(tmp_path), "fin")
    kids: List[psutil.Process] = []
    try:
        for i in range(2):
            wait_for(lambda i=i: "registered with the governor" in _read(f"{aux}/partition-{i}/service.log"),
                     what=f"partition-{i} to register")
        kids = _partition_children(gov.pid, 2)
        gate.touch()
        _, err = gov.communicate(timeout=30)
        assert gov.returncode == 0, err
        wait_for(lambda: all(_gone(k) for k in kids), timeout=10, what="partition processes to exit")
    finally:
        _stop(gov)
        _kill_all(kids)
    for i in range(2):
        log = _read(f"{aux}/partition-{i}/service.log")
        assert "stopping: the governor asked (finish)" in log, log
        assert _read(f"{aux}/partition-{i}/stderr.log") == ""
    assert "exited with code" not in _read(f"{aux}/service.log")  # no partition ended non-zero
    report = _report_lines(aux)
    assert report["gated"]["state"] == "SUCCEED"
    status = _final_status(aux)
    assert status["IterationStats"]["FinishedIterations"] == 6
    assert status["System"]["Partitions"] == 0  # all stopped at the end


# ---- a partition process dies ------------------------------------------------------------------------
def test_partition_killed_mid_run(tmp_path):
    job = {"name": "k", "execution": {"exec": "sleep", "args": ["0.5"]}, "iteration": {"stop": 40}}
    reqs = _write_reqs(tmp_path, [submit(job), FINISH])
    gov = subprocess.Popen(service_cmd("--wd", str(tmp_path), "--file-path", reqs, "--nodes", "2,2,2,2",
                                       "--slurm-partition-nodes", "2", "--id", "kp", "--report-format", "json"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = _aux(str(tmp_path), "kp")
    kids: List[psutil.Process] = []
    try:
        kids = _partition_children(gov.pid, 2)
        by_name = {next(a for a in k.cmdline() if a.startswith("partition-")): k for k in kids}
        assert set(by_name) == {"partition-0", "partition-1"}

        address = wait_for(lambda: _read(f"{aux}/address").strip(), what="the governor's address file")

        def executing() -> Optional[Dict[int, Set[int]]]:
            # as the governor sees it: a task the partition started but did not report yet
            # is queued there for the governor, and would be moved, not failed
            info = _ask(address, {"request": "jobInfo", "jobNames": ["k"], "params": {"withChilds": True}})
            parts: Dict[int, Set[int]] = {}
            for child in info["data"]["jobs"]["k"].get("data", {}).get("childs", []):  # (not yet submitted)
                if child["state"] == "EXECUTING":
                    node = _nodes(child["runtime"]["allocation"])[0]
                    parts.setdefault(_partition_of(node, 2), set()).add(child["iteration"])
            return parts if set(parts) == {0, 1} else None

        seen = wait_for(executing, timeout=20, interval=0.01, what="tasks executing on both partitions")
        by_name["partition-1"].send_signal(signal.SIGKILL)
        _, err = gov.communicate(timeout=30)
        assert gov.returncode == 0, err
    finally:
        _stop(gov)
        _kill_all(kids)
    status = _final_status(aux)
    stats = status["IterationStats"]
    assert stats["InScheduleIterations"] == 0
    assert stats["ExecutingIterations"] == 0
    assert stats["TotalIterations"] == 40
    assert status["JobStats"]["InScheduleJobs"] == 0
    assert status["JobStats"]["ExecutingJobs"] == 0
    assert status["Resources"]["TotalCores"] == 4  # the lost partition no longer counts
    report = _report_lines(aux)
    its = _iterations(report, "k")
    assert len(its) == 40
    failed = {i: e for i, e in its.items() if e["state"] == "FAILED"}
    succeeded = {i: e for i, e in its.items() if e["state"] == "SUCCEED"}
    assert len(failed) + len(succeeded) == 40
    assert 1 <= len(failed) <= 4  # what was running there: at most its 4 cores
    for it in seen[1]:  # running there just before the kill: failed, unless it ended first
        assert it in failed or _partition_of(_nodes(succeeded[it]["runtime"]["allocation"])[0], 2) == 1
    for entry in failed.values():
        assert "partition-1" in entry["messages"]
        assert "lost" in entry["messages"]
        assert {_partition_of(n, 2) for n in _nodes(entry["runtime"]["allocation"])} == {1}
    on_p0 = [i for i, e in succeeded.items() if _partition_of(_nodes(e["runtime"]["allocation"])[0], 2) == 0]
    # partition-0 ran more than its half: it took the queued work partition-1 held
    assert len(on_p0) > 20
    assert stats["FinishedIterations"] == len(succeeded)
    assert stats["FailedIterations"] == len(failed)
    assert report["k"]["state"] == "FAILED"
    assert f"{len(failed)} of 40 iterations did not succeed" in report["k"]["messages"]
    assert report["k"]["iterations"]["failed"] == len(failed)
    assert "partition partition-1 lost" in _read(f"{aux}/service.log")


def test_killed_governor_ends_its_partitions_and_their_tasks(tmp_path):
    marker = f"61.{random.randrange(10**6):06d}"
    job = {"name": "long", "execution": {"exec": "sleep", "args": [marker]}, "iteration": {"stop": 4}}
    reqs = _write_reqs(tmp_path, [submit(job), FINISH])
    gov = subprocess.Popen(service_cmd("--wd", str(tmp_path), "--file-path", reqs, "--nodes", "2,2",
                                       "--slurm-partition-nodes", "1", "--id", "kg"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    aux = _aux(str(tmp_path), "kg")
    kids: List[psutil.Process] = []
    tasks: List[psutil.Process] = []
    try:
        kids = _partition_children(gov.pid, 2)
        tasks = wait_for(lambda: len(found := _marker_procs(marker)) == 4 and found, timeout=20,
                         what="4 tasks running")
        kid_pids = {k.pid for k in kids}
        assert {t.ppid() for t in tasks} == kid_pids  # two tasks on each partition
        gov.send_signal(signal.SIGKILL)
        assert gov.wait(timeout=10) == -signal.SIGKILL
        wait_for(lambda: all(_gone(k) for k in kids), timeout=20, what="partitions to exit")
        wait_for(lambda: not _marker_procs(marker), timeout=10, what="their tasks to be stopped")
    finally:
        _stop(gov)
        _kill_all(kids + tasks)
    for i in range(2):
        assert "stopping: the governor process exited" in _read(f"{aux}/partition-{i}/service.log")


# ---- partitions started by hand --------------------------------------------------------------------
def test_external_partitions_register_with_a_governor(tmp_path):
    gate = tmp_path / "go"
    jobs = [{"name": "gate", "execution": {"script": f"while [ ! -e {gate} ]; do sleep 0.05; done"}},
            {"name": "work", "execution": {"exec": "sleep", "args": ["0.1"]}, "iteration": {"stop": 16},
             "dependencies": {"after": ["gate"]}}]
    reqs = _write_reqs(tmp_path, [submit(*jobs), FINISH])
    wd = str(tmp_path)
    gov = subprocess.Popen(service_cmd("--governor", "--net", "--wd", wd, "--id", "gov", "--file-path", reqs,
                                       "--report-format", "json"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = _aux(wd, "gov")
    procs: List[subprocess.Popen] = [gov]
    try:
        address = wait_for(lambda: _read(f"{aux}/address").strip(), what="the governor's address file")
        assert address.startswith("tcp://")

        def partition(ident: str, nodes: str) -> subprocess.Popen:
            proc = subprocess.Popen(service_cmd("--parent", address, "--id", ident, "--nodes", nodes, "--wd", wd),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            procs.append(proc)
            return proc

        p1 = partition("p1", "a:2,b:2")
        wait_for(lambda: "partition p1 registered" in _read(f"{aux}/service.log"), what="p1 to register")
        # a second partition with the same id is refused, and says so
        dup = partition("p1", "c:1")
        _, dup_err = dup.communicate(timeout=30)
        assert dup.returncode == 2
        assert "refused" in dup_err
        assert "partition p1" in dup_err
        assert "is registered already" in _read(f"{aux}/service.log")
        p2 = partition("p2", "c:2,d:2")
        wait_for(lambda: "partition p2 registered" in _read(f"{aux}/service.log"), what="p2 to register")
        gate.touch()
        _, gov_err = gov.communicate(timeout=30)
        assert gov.returncode == 0, gov_err
        for proc in (p1, p2):
            _, err = proc.communicate(timeout=20)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            _stop(proc)
    report = _report_lines(aux)
    assert report["gate"]["state"] == "SUCCEED"
    assert report["work"]["state"] == "SUCCEED"
    work = _iterations(report, "work")
    assert {e["state"] for e in work.values()} == {"SUCCEED"}
    nodes = {n for e in work.values() for n in _nodes(e["runtime"]["allocation"])}
    assert nodes & {"a", "b"} and nodes & {"c", "d"}, nodes  # both partitions ran work
    assert nodes <= {"a", "b", "c", "d"}
    status = _final_status(aux)
    assert status["IterationStats"]["FinishedIterations"] == 17
    assert status["Resources"]["TotalCores"] == 8
    for ident in ("p1", "p2"):
        assert "stopping: the governor asked (finish)" in _read(f"{_aux(wd, ident)}/service.log")


def test_regression_duplicate_partition_id_is_refused(tmp_path):
    """A partition's DEALER used its --id as ZMQ routing id; the governor's ROUTER silently
    drops a peer whose routing id is taken, so a second partition with the same --id never
    got the refusal and waited 60 s, then said 'no governor answered'."""
    from qcg_pilotjob.api import Manager

    wd = str(tmp_path)
    gov = subprocess.Popen(service_cmd("--governor", "--net", "--wd", wd, "--id", "dupgov"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    aux = _aux(wd, "dupgov")
    procs: List[subprocess.Popen] = [gov]
    try:
        address = wait_for(lambda: _read(f"{aux}/address").strip(), what="the governor's address file")
        first = subprocess.Popen(service_cmd("--parent", address, "--id", "same", "--nodes", "a:2", "--wd", wd),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(first)
        wait_for(lambda: "partition same registered" in _read(f"{aux}/service.log"), what="the first to register")
        second = subprocess.run(service_cmd("--parent", address, "--id", "same", "--nodes", "b:3", "--wd", wd),
                                capture_output=True, text=True, timeout=30, check=False)
        assert second.returncode == 2, second.stderr
        assert "partition same: registration refused" in second.stderr
        assert "a partition with id 'same' is registered already" in _read(f"{aux}/service.log")
        manager = Manager(address)
        try:
            assert manager.system_status()["System"]["Partitions"] == 1
            assert manager.resources()["total_cores"] == 2  # the first one's, not the refused one's
        finally:
            manager.finish()
        _, err = gov.communicate(timeout=30)
        assert gov.returncode == 0, err
        _, err = first.communicate(timeout=20)
        assert first.returncode == 0, err
    finally:
        for proc in procs:
            _stop(proc)
