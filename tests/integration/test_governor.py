"""Governor mode: a governor front with partition manager processes (local or started by hand)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import random
import re
import signal
import subprocess
from typing import Any, Dict, List, Optional, Set

import psutil
import pytest
import zmq

from tests.conftest import FINISH, ServiceRun, service_cmd, submit, wait_for

pytestmark = pytest.mark.integration

FINAL = {"SUCCEED", "FAILED", "CANCELED", "OMITTED"}


# ---- helpers -------------------------------------------------------------------------------------
def _report_lines(aux: str) -> Dict[str, Dict[str, Any]]:
    out = {}
    with open(os.path.join(aux, "jobs.report")) as fh:
        for line in fh:
            entry = json.loads(line)
            out[entry["name"]] = entry
    return out


def _final_status(aux: str) -> Dict[str, Any]:
    with open(os.path.join(aux, "final_status")) as fh:
        return json.load(fh)


def _nodes(allocation: str) -> List[str]:
    """Node names of an allocation text such as ``n0[0:1],n1[0]``."""
    return re.findall(r"([^,\[\]]+)\[", allocation)


def _when(entry: Dict[str, Any], state: str) -> datetime.datetime:
    return next(datetime.datetime.fromisoformat(h["date"]) for h in entry["history"] if h["state"] == state)


def _iterations(report: Dict[str, Dict[str, Any]], job: str) -> Dict[int, Dict[str, Any]]:
    prefix = f"{job}:"
    return {int(name[len(prefix):]): e for name, e in report.items() if name.startswith(prefix)}


def _partition_of(node: str, size: int) -> int:
    """``--nodes 2,2,2,2`` names nodes n0..n3; partition i holds nodes [i*size, (i+1)*size)."""
    assert re.fullmatch(r"n\d+", node), node
    return int(node[1:]) // size


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill_all(procs: List[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _partition_children(gov_pid: int, count: int) -> List[psutil.Process]:
    """The partition processes a governor started, once there are ``count`` of them."""
    def found() -> Optional[List[psutil.Process]]:
        try:
            kids = [p for p in psutil.Process(gov_pid).children() if "--parent" in p.cmdline()]
        except psutil.Error:
            return None
        return kids if len(kids) == count else None
    return wait_for(found, timeout=20, what=f"{count} partition processes")


def _cmdline(proc: psutil.Process) -> List[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def _marker_procs(marker: str) -> List[psutil.Process]:
    out = []
    for proc in psutil.process_iter():
        cmd = _cmdline(proc)
        if cmd[:1] == ["sleep"] and marker in cmd and not _gone(proc):
            out.append(proc)
    return out


def _aux(wd: str, ident: str) -> str:
    return os.path.join(wd, f".qcgpjm-service-{ident}")


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _write_reqs(tmp_path: Any, reqs: List[Any]) -> str:
    path = str(tmp_path / "reqs.json")
    with open(path, "w") as fh:
        json.dump(reqs, fh)
    return path


def _ask(address: str, request: Dict[str, Any]) -> Dict[str, Any]:
    """One JSON request over the network interface."""
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 10_000)
        sock.connect(address)
        sock.send(json.dumps(request).encode())
        reply = json.loads(sock.recv())
        sock.close(linger=0)
    finally:
        ctx.term()
    assert reply["code"] == 0, reply
    return reply


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


# ---- many iterations over 2 and 4 partitions -----------------------------------------------------
@pytest.mark.parametrize("per_partition,partitions", [(2, 2), (1, 4)])
def test_thousand_iterations_run_on_every_partition(run_service, per_partition, partitions):
    job = {"name": "many", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 1000}}
    res = run_service([submit(job), FINISH], "--nodes", "2,2,2,2", "--slurm-partition-nodes", str(per_partition),
                      timeout=60)
    assert res.rc == 0, res.stderr
    report = res.report()
    assert set(report) == {"many"} | {f"many:{i}" for i in range(1000)}
    assert report["many"]["state"] == "SUCCEED"
    assert report["many"]["iterations"] == {"start": 0, "stop": 1000, "total": 1000, "finished": 1000, "failed": 0}
    stats = res.final_status["IterationStats"]
    assert stats["TotalIterations"] == 1000
    assert stats["FinishedIterations"] == 1000
    assert stats["FailedIterations"] == 0
    assert res.final_status["JobStats"]["FinishedJobs"] == 1
    assert res.final_status["Resources"]["TotalCores"] == 8  # live totals: every partition still counted
    per_part = [0] * partitions
    for it, entry in _iterations(report, "many").items():
        assert entry["state"] == "SUCCEED", (it, entry)
        nodes = _nodes(entry["runtime"]["allocation"])
        assert len(nodes) == 1
        per_part[_partition_of(nodes[0], per_partition)] += 1
    assert sum(per_part) == 1000
    assert all(n > 0 for n in per_part), per_part
    # every partition was started and stopped by the governor
    for i in range(partitions):
        log = res.read(f"partition-{i}/service.log")
        assert "registered with the governor" in log
        assert "stopping: the governor asked (finish)" in log
    assert "exited with code" not in res.log


# ---- dependencies across partitions --------------------------------------------------------------
def test_dependencies_across_partitions(run_service):
    jobs = [
        {"name": "a", "execution": {"exec": "sleep", "args": ["0.2"]}, "iteration": {"stop": 4}},
        {"name": "b", "execution": {"exec": "sleep", "args": ["0.1"]}, "iteration": {"stop": 4},
         "dependencies": {"after": ["a"]}},
        {"name": "c", "execution": {"exec": "/bin/true"}, "dependencies": {"after": ["b"]}},
        {"name": "x", "execution": {"exec": "sleep", "args": ["0.${it}"]}, "iteration": {"stop": 8}},
        {"name": "y", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 8},
         "dependencies": {"after": ["x:${it}"]}},
    ]
    res = run_service([submit(*jobs), FINISH], "--nodes", "2,2,2,2", "--slurm-partition-nodes", "2", timeout=60)
    assert res.rc == 0, res.stderr
    report = res.report()
    for name in ("a", "b", "c", "x", "y"):
        assert report[name]["state"] == "SUCCEED", report[name]
    its = {name: _iterations(report, name) for name in ("a", "b", "x", "y")}
    assert {k: len(v) for k, v in its.items()} == {"a": 4, "b": 4, "x": 8, "y": 8}
    # whole-job dependencies: b starts after every iteration of a ended, c after every one of b
    a_end = max(_when(e, "SUCCEED") for e in its["a"].values())
    b_start = min(_when(e, "EXECUTING") for e in its["b"].values())
    b_end = max(_when(e, "SUCCEED") for e in its["b"].values())
    assert a_end <= b_start
    assert b_end <= _when(report["c"], "EXECUTING")
    # per-iteration dependencies: y:i after x:i
    for i in range(8):
        assert _when(its["x"][i], "SUCCEED") <= _when(its["y"][i], "EXECUTING"), i
    # and the jobs really were spread over both partitions
    def part(entry: Dict[str, Any]) -> int:
        return _partition_of(_nodes(entry["runtime"]["allocation"])[0], 2)

    for name in ("a", "b", "x"):
        assert {part(e) for e in its[name].values()} == {0, 1}, name
    # (y:i is released alone when x:i ends, and goes where there is most room)
    assert any(part(its["x"][i]) != part(its["y"][i]) for i in range(8))


def test_failed_dependency_across_partitions_omits(run_service):
    jobs = [
        {"name": "bad", "execution": {"script": "test ${it} -ne 2"}, "iteration": {"stop": 4}},
        {"name": "after_bad", "execution": {"exec": "/bin/true"}, "dependencies": {"after": ["bad"]}},
        {"name": "per_it", "execution": {"exec": "/bin/true"}, "iteration": {"stop": 4},
         "dependencies": {"after": ["bad:${it}"]}},
        {"name": "chain", "execution": {"exec": "/bin/true"}, "dependencies": {"after": ["after_bad"]}},
    ]
    res = run_service([submit(*jobs), FINISH], "--nodes", "2,2,2,2", "--slurm-partition-nodes", "2", timeout=60)
    assert res.rc == 0, res.stderr
    report = res.report()
    bad = _iterations(report, "bad")
    assert {i: e["state"] for i, e in bad.items()} == {0: "SUCCEED", 1: "SUCCEED", 2: "FAILED", 3: "SUCCEED"}
    assert {_partition_of(n, 2) for e in bad.values() for n in _nodes(e["runtime"]["allocation"])} == {0, 1}
    assert report["bad"]["state"] == "FAILED"
    assert report["after_bad"]["state"] == "OMITTED"
    assert "dependency 'bad' finished FAILED" in report["after_bad"]["messages"]
    assert report["chain"]["state"] == "OMITTED"
    assert "dependency 'after_bad' finished OMITTED" in report["chain"]["messages"]
    per_it = _iterations(report, "per_it")
    assert {i: e["state"] for i, e in per_it.items()} == {0: "SUCCEED", 1: "SUCCEED", 2: "OMITTED", 3: "SUCCEED"}
    assert "dependency 'bad:2' finished FAILED" in per_it[2]["messages"]
    assert "runtime" not in per_it[2]  # never started anywhere
    assert report["per_it"]["state"] == "FAILED"  # some iterations did not succeed
    stats = res.final_status["IterationStats"]
    assert (stats["FinishedIterations"], stats["FailedIterations"], stats["OmittedIterations"]) == (6, 1, 3)


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


# ---- dry run -----------------------------------------------------------------------------------------
def test_dry_run_governor_five_thousand_tasks(run_service):
    job = {"name": "dry", "execution": {"exec": "/bin/false"}, "iteration": {"stop": 5000}}
    res: ServiceRun = run_service([submit(job), FINISH], "--nodes", "2,2", "--slurm-partition-nodes", "1",
                                  "--dry-run", timeout=60)
    assert res.rc == 0, res.stderr
    stats = res.final_status["IterationStats"]
    assert stats["TotalIterations"] == 5000
    assert stats["FinishedIterations"] == 5000
    assert stats["FailedIterations"] == 0
    report = res.report()
    assert report["dry"]["state"] == "SUCCEED"
    assert report["dry"]["iterations"]["finished"] == 5000
    per_part = [0, 0]
    for entry in _iterations(report, "dry").values():
        per_part[_partition_of(_nodes(entry["runtime"]["allocation"])[0], 1)] += 1
    assert sum(per_part) == 5000
    assert min(per_part) > 0, per_part
    for i in range(2):
        assert res.read(f"partition-{i}/stderr.log") == ""


# ---- regressions -----------------------------------------------------------------------------------
def test_regression_local_manager_ready_before_partitions_registered(governor_manager):
    """LocalManager returned before the governor's partitions registered: the first submit
    failed with 'no partition has registered yet' and resources() showed 0 cores."""
    from qcg_pilotjob.api.job import Jobs

    manager = governor_manager()
    assert manager.resources()["total_cores"] == 8
    assert manager.system_status()["System"]["Partitions"] == 2
    assert manager.submit(Jobs().add(name="first", exec="/bin/true")) == ["first"]
    assert manager.wait4("first", timeout=20) == {"first": "SUCCEED"}


def test_regression_small_job_split_over_idle_partitions(run_service):
    """Routing sent a whole job that fit in one partition's window (4x its cores) to that
    partition, leaving the others idle while its tasks queued there."""
    job = {"name": "few", "execution": {"exec": "sleep", "args": ["0.3"]}, "iteration": {"stop": 8}}
    res = run_service([submit(job), FINISH], "--nodes", "2,2,2,2", "--slurm-partition-nodes", "2", timeout=60)
    assert res.rc == 0, res.stderr
    its = _iterations(res.report(), "few")
    per_part = [0, 0]
    for entry in its.values():
        assert entry["state"] == "SUCCEED"
        per_part[_partition_of(_nodes(entry["runtime"]["allocation"])[0], 2)] += 1
    assert per_part == [4, 4]


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
