"""Issue 9, "no single input stops or hangs anything": each input that used to hurt the real
service (network and file interfaces, single-manager and governor mode) is a test of its own."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, List

import msgpack
import psutil
import pytest

from qcg_pilotjob.jobdesc import MAX_JOBS_PER_SUBMIT, MAX_TASKS_PER_SUBMIT
from tests.conftest import FINISH, service_cmd, submit, wait_for
from tests.integration.test_netiface import Service, wait_address

pytestmark = pytest.mark.integration

GOVERNOR = ("--nodes", "a:2,b:2", "--slurm-partition-nodes", "1")


def _job(name: str, **execution: Any) -> Dict[str, Any]:
    return {"name": name, "execution": {"exec": "true", **execution}}


def _start(wd: str, *args: str) -> Service:
    proc = subprocess.Popen(service_cmd("--net", "--wd", wd, "--report-format", "json", *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    return Service(proc, wd, wait_address(proc, wd, timeout=60))


@pytest.fixture(params=["single", "governor"])
def net(request, tmp_path):
    svc = _start(str(tmp_path), *(("--nodes", "2") if request.param == "single" else GOVERNOR))
    try:
        yield svc
    finally:
        svc.close()


def _ask(svc: Service, obj: Any) -> Dict[str, Any]:
    """A JSON request (``json.dumps`` writes a lone surrogate as a ``\\ud800`` escape)."""
    return svc.ask_json(json.dumps(obj).encode())


def _listed(svc: Service) -> Dict[str, Any]:
    reply = _ask(svc, {"request": "listJobs"})
    assert reply["code"] == 0, reply
    return reply["data"]["jobs"]


def _final(svc: Service, name: str) -> str:
    def state() -> Any:
        data = _ask(svc, {"request": "jobStatus", "jobNames": [name]})["data"]["jobs"][name]["data"]
        return data["status"] if data["status"] in ("SUCCEED", "FAILED", "CANCELED", "OMITTED") else None

    return str(wait_for(state, timeout=60, what=f"job {name} to end"))


def _after_bad_the_service_works(svc: Service) -> None:
    """Nothing of the bad submit is registered; a good job still runs; listJobs is encodable;
    after finishAfterAllTasksDone the service exits by itself."""
    assert _listed(svc) == {}
    assert _ask(svc, submit(_job("good")))["code"] == 0
    assert _final(svc, "good") == "SUCCEED"
    assert list(_listed(svc)) == ["good"]
    assert _ask(svc, FINISH)["code"] == 0
    assert svc.proc.wait(timeout=60) == 0


# ---- 1. one deep frame -------------------------------------------------------------------------
def test_regression_deep_json_frame(net):
    reply = net.ask_json(b"[" * 100_000)
    assert reply == {"code": 1, "message": "Invalid request: request exceeds a limit: nested deeper than 64 levels"}
    raw = net.ask(b"\x91" * 100_000 + b"\x01")  # the same in msgpack
    assert msgpack.unpackb(raw, raw=False)["message"].endswith("nested deeper than 64 levels")
    _after_bad_the_service_works(net)


# ---- 2. values that cannot be stored or encoded back -------------------------------------------
@pytest.mark.parametrize("job, field", [
    ({"name": "s\ud800", "execution": {"exec": "true"}}, "name"),
    (_job("a", args=["x", "s\ud800"]), "execution.args[1]"),
    (_job("a", env={"V": "\udc00"}), "execution.env.V"),
    (_job("a", wd="/tmp/\ud800"), "execution.wd"),
])
def test_regression_lone_surrogate_in_a_job(net, job, field):
    reply = _ask(net, submit(job))
    assert reply["code"] == 1
    assert f": {field}: " in reply["message"] and "not valid UTF-8" in reply["message"], reply
    assert reply["message"].startswith("job '")
    _after_bad_the_service_works(net)


@pytest.mark.parametrize("resources, field", [
    ({"numCores": 10 ** 30}, "resources.numCores"),
    ({"numCores": {"min": 1, "max": 10 ** 30}}, "resources.numCores.max"),
    ({"wt": 10 ** 400}, "resources.wt"),
])
def test_regression_huge_integer_in_a_job(net, resources, field):
    job = {**_job("big"), "resources": resources}
    reply = _ask(net, submit(job))
    assert reply["code"] == 1 and reply["message"].startswith(f"job 'big': {field}: "), reply
    assert "out of range" in reply["message"]
    _after_bad_the_service_works(net)


def test_regression_huge_or_infinite_wall_time(net):
    for text, problem in ((b"1e400", "finite"), (b"1e300", "longer than")):
        payload = b'{"request": "submit", "jobs": [{"name": "w", "execution": {"exec": "true"}, ' \
                  b'"resources": {"wt": ' + text + b"}}]}"
        reply = net.ask_json(payload)
        assert reply["code"] == 1 and reply["message"].startswith("job 'w': resources.wt: "), reply
        assert problem in reply["message"] and "Failed to process" not in reply["message"]
    _after_bad_the_service_works(net)


# ---- 3. many tasks in one small submit ---------------------------------------------------------
def test_regression_ten_million_iterations(net, tmp_path):
    """8 submits of 10**7 iterations took the service from 31 MB to 980 MB, blocked it for
    45 s and left 5 of the 8 jobs registered. Iterations now wait as ranges until they
    start: the 8 submits cost a few MB, and canceling or omitting them ends them together.
    Past the per-submit limit a submit is refused, naming the job, and registers nothing."""
    assert _ask(net, submit({"name": "gate", "execution": {"script": "while [ ! -e go ]; do sleep 0.1; done"}}))[
        "code"] == 0
    before = _rss(net)
    for i in range(7):
        waits = {**_job(f"many{i}"), "iteration": {"stop": 10 ** 7}, "dependencies": {"after": ["gate"]}}
        assert _ask(net, submit(waits))["code"] == 0
    assert _ask(net, submit({**_job("runs"), "iteration": {"stop": 10 ** 7}}))["code"] == 0  # (sent to run)
    grown = _rss(net) - before
    assert grown < 64 * 2 ** 20, f"the service grew by {grown / 2 ** 20:.0f} MB"
    status = _ask(net, {"request": "jobStatus", "jobNames": ["many6", "many6:9999999"]})["data"]["jobs"]
    assert [status[n]["data"]["status"] for n in ("many6", "many6:9999999")] == ["QUEUED", "QUEUED"]
    # the limit counts the whole submit, and the submit is all or nothing
    half = MAX_TASKS_PER_SUBMIT // 2 + 1
    jobs = [_job("first"), {**_job("h1"), "iteration": {"stop": half}}, {**_job("h2"), "iteration": {"stop": half}}]
    reply = _ask(net, {"request": "submit", "jobs": jobs})
    assert reply["code"] == 1 and reply["message"].startswith("job 'h2': "), reply
    assert str(MAX_TASKS_PER_SUBMIT) in reply["message"]
    assert sorted(_listed(net)) == ["gate", *(f"many{i}" for i in range(7)), "runs"]
    # ending them: the queued iterations of "runs" come back from the partition as ranges,
    # the 7 jobs waiting for the gate are omitted when it is canceled
    assert _ask(net, {"request": "cancelJob", "jobNames": ["runs", "gate"]})["code"] == 0
    assert _final(net, "runs") == "CANCELED" and _final(net, "many6") == "OMITTED"
    assert _ask(net, FINISH)["code"] == 0
    assert net.proc.wait(timeout=60) == 0


def _rss(svc: Service) -> int:
    """Bytes held by the service and its partition processes (not their tasks, which come
    and go: one may be a zombie or gone by the time it is looked at)."""
    proc = psutil.Process(svc.proc.pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            if "qcg_pilotjob" in " ".join(child.cmdline()):
                total += child.memory_info().rss
        except psutil.Error:
            continue
    return total


def test_regression_many_jobs_in_one_submit(net):
    jobs = [_job(f"j{i}") for i in range(MAX_JOBS_PER_SUBMIT + 1)]
    reply = _ask(net, {"request": "submit", "jobs": jobs})
    assert reply == {"code": 1, "message": f"Wrong submit request - one submit may hold at most "
                                           f"{MAX_JOBS_PER_SUBMIT} jobs, not {MAX_JOBS_PER_SUBMIT + 1}"}
    _after_bad_the_service_works(net)


# ---- 4. request files --------------------------------------------------------------------------
def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    return path


@pytest.mark.parametrize("what, data, problem", [
    ("binary", bytes(range(256)) * 8, "is not UTF-8 text"),
    ("deep", b"[" * 100_000, "exceeds a limit: nested deeper than 64 levels"),
    ("surrogate", json.dumps([submit({"name": "s\ud800", "execution": {"exec": "true"}}), FINISH]).encode(),
     "lone surrogate \\ud800"),
    ("not_a_list", b'"submit"', "must hold a JSON list of requests, not str"),
])
def test_regression_bad_request_file(tmp_path, what, data, problem):
    path = _write(str(tmp_path / f"{what}.json"), data)
    wd = tmp_path / "wd"
    proc = subprocess.run(service_cmd("--nodes", "2", "--wd", str(wd), "--file-path", path),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"qcg-pm-service: error: request file {path} "), lines
    assert problem in lines[0]
    assert not wd.exists() or os.listdir(wd) == []  # no aux dir, no jobs.report


# ---- 5. governor mode: a bad job next to a good one --------------------------------------------
def test_regression_governor_bad_job_next_to_good_one(run_service):
    bad: List[Dict[str, Any]] = [{**_job("cores"), "resources": {"numCores": 10 ** 30}},
                                 {**_job("nodes"), "resources": {"numNodes": {"min": 1, "max": 10 ** 30}}},
                                 {**_job("iters"), "iteration": {"start": 0, "stop": 10 ** 30}},
                                 {**_job("fcores"), "resources": {"numCores": 1e30}},
                                 {**_job("wt"), "resources": {"wt": 1e30}}]
    reqs = [submit(job) for job in bad] + [submit(_job("good")), FINISH]
    run = run_service(reqs, *GOVERNOR, timeout=120)
    assert run.rc == 0, run.stderr
    assert set(run.report()) == {"good"} and run.report()["good"]["state"] == "SUCCEED"
    for job in bad:
        assert f"failed: job '{job['name']}': " in run.log
    assert "cores': resources.numCores: 1000000000000000000000000000000 is out of range" in run.log
    assert "fcores': resources.numCores: must be an integer or a dictionary" in run.log
    assert "'wt': resources.wt: wall time 1e+30 is longer than" in run.log
    assert run.final_status["JobStats"]["TotalJobs"] == 1


# ---- 6. found by the fuzz tests ------------------------------------------------------------------
def test_regression_nul_in_job_name_and_a_very_long_name(run_service):
    """A job named "\\x00" was accepted and failed to start with a traceback (the name goes into
    the task's environment); a job with a 70,000-character name failed with a traceback
    (its hostfile name was too long for the file system). Now the first is refused at submit
    and the second runs."""
    long_name = "x" * 70_000
    two_cores = {**_job(long_name), "resources": {"numCores": 2}}  # (a task on more than a core gets a hostfile)
    reqs = [submit(_job("\x00")), submit(two_cores), submit(_job("good")), FINISH]
    run = run_service(reqs, *GOVERNOR, timeout=120)
    assert run.rc == 0, run.stderr
    report = run.report()
    assert set(report) == {long_name, "good"}
    assert report[long_name]["state"] == "SUCCEED" and report["good"]["state"] == "SUCCEED"
    assert "Job identifier '\x00' contains invalid characters" in run.log
    assert "Traceback" not in run.log + "".join(run.read(f"partition-{i}/service.log") for i in range(2))
