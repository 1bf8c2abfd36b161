"""``--resume`` after a SIGKILL of the service, and what a kill leaves in ``jobs.report``."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time
from typing import Any, Dict, List

import psutil
import pytest

from tests.conftest import FINISH, service_cmd, submit, wait_for

pytestmark = pytest.mark.integration

AUX_PREFIX = ".qcgpjm-service-"


# ---- helpers -------------------------------------------------------------------------------
def _write_requests(wd: str, requests: List[Any]) -> str:
    path = os.path.join(wd, "reqs.json")
    with open(path, "w") as fh:
        json.dump(requests, fh)
    return path


def _start(wd: str, requests: List[Any], *args: str) -> subprocess.Popen:
    """Start the service in the background on ``requests`` (json report, fixed --id r1)."""
    path = _write_requests(wd, requests)
    cmd = service_cmd("--file-path", path, "--wd", wd, "--id", "r1", "--report-format", "json", *args)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stderr is not None:
        proc.stderr.close()


def _kill_and_wait_orphans(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGKILL the service, then wait (up to ``timeout``) until every task it left running has
    ended, so that nothing of the killed run writes to the working directory any more.

    The tasks run in sessions of their own, so they outlive the service. They are listed while
    the service is stopped (SIGSTOP): it cannot start one more between the listing and the kill.
    """
    if proc.poll() is not None:
        _kill(proc)
        return
    try:
        service = psutil.Process(proc.pid)
        service.suspend()
        wait_for(lambda: service.status() in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE), timeout=timeout,
                 what="the service to stop (SIGSTOP)")
        orphans = service.children(recursive=True)
    except psutil.NoSuchProcess:  # it ended by itself meanwhile (and was reaped): the test will say so
        orphans = []
    _kill(proc)

    def ended(p: psutil.Process) -> bool:
        try:
            return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(lambda: all(ended(p) for p in orphans), timeout=timeout,
             what=f"the {len(orphans)} processes left by the killed service to end")


def _report_lines(aux: str, name: str = "jobs.report") -> List[Dict[str, Any]]:
    path = os.path.join(aux, name)
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh.read().splitlines() if line.strip()]


def _lines(path: str) -> List[str]:
    with open(path) as fh:
        return fh.read().splitlines()


def _resume(target: str, wd: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    cmd = service_cmd("--resume", target, "--wd", wd, "--report-format", "json", *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _final_status(aux: str) -> Dict[str, Any]:
    with open(os.path.join(aux, "final_status")) as fh:
        return json.load(fh)


def _last_by_name(entries: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    return {e["name"]: e for e in entries}


# ---- resume after SIGKILL ------------------------------------------------------------------
N_ITS = 40


@pytest.mark.parametrize("target", ["wd", "aux"])
def test_resume_after_sigkill(tmp_path: Any, target: str) -> None:
    wd = str(tmp_path)
    aux = os.path.join(wd, AUX_PREFIX + "r1")
    reqs = [
        submit(
            {"name": "s", "iteration": {"stop": N_ITS},
             "execution": {"script": "echo x >> runs.${it}; sleep 0.2; echo ${it} > out.${it}"}},
            {"name": "post", "dependencies": {"after": ["s"]},
             "execution": {"script": "echo x >> runs.post; ls out.* | wc -l > post.count"}},
        ),
        FINISH,
    ]
    proc = _start(wd, reqs, "--nodes", "2")
    try:
        wait_for(lambda: len(glob.glob(os.path.join(wd, "out.*"))) >= 6
                 and len(_report_lines(aux)) >= 2, timeout=20, what="6 outputs and 2 report lines")
        assert proc.poll() is None, "the service ended before it could be killed"
    finally:
        # What ran before the resume is sampled below from runs.* (each task's first command) and
        # jobs.report. Tasks the killed service started keep running: one forked just before the
        # kill writes its runs.N only later, and would be counted as never started. So the sample
        # is taken once every task of the killed run has ended.
        _kill_and_wait_orphans(proc)
    assert proc.returncode == -signal.SIGKILL
    before = [e["name"] for e in _report_lines(aux)]
    done_before = {int(n.split(":")[1]) for n in before if n.startswith("s:")}
    started_before = {int(p.rsplit(".", 1)[1]) for p in glob.glob(os.path.join(wd, "runs.*"))
                      if p.rsplit(".", 1)[1].isdigit()}
    assert len(done_before) >= 2
    assert "post" not in before
    assert not os.path.exists(os.path.join(aux, "final_status"))

    res = _resume(wd if target == "wd" else aux, wd)
    assert res.returncode == 0, res.stderr
    assert "error" not in res.stderr.lower()

    for it in range(N_ITS):
        assert _lines(os.path.join(wd, f"out.{it}")) == [str(it)]
    entries = _report_lines(aux)
    names = [e["name"] for e in entries]
    for it in range(N_ITS):
        assert f"s:{it}" in names, f"s:{it} missing from jobs.report"
    last = _last_by_name(entries)
    assert last["post"]["state"] == "SUCCEED"
    assert last["s"]["state"] == "SUCCEED"
    assert names.count("post") == 1 and names.count("s") == 1
    # post ran once, after every iteration had written its output
    assert _lines(os.path.join(wd, "runs.post")) == ["x"]
    assert _lines(os.path.join(wd, "post.count"))[0].strip() == str(N_ITS)
    # finished (reported) iterations are not run again; never-started ones run once
    for it in done_before:
        assert _lines(os.path.join(wd, f"runs.{it}")) == ["x"], f"iteration {it} ran again after resume"
        assert names.count(f"s:{it}") == 1
    for it in set(range(N_ITS)) - started_before:
        assert _lines(os.path.join(wd, f"runs.{it}")) == ["x"]
    # iterations that were cut off by the kill ran again from the start
    rerun = [it for it in range(N_ITS) if len(_lines(os.path.join(wd, f"runs.{it}"))) == 2]
    assert set(rerun) <= started_before - done_before
    assert all(len(_lines(os.path.join(wd, f"runs.{it}"))) <= 2 for it in range(N_ITS))

    status = _final_status(aux)
    assert status["System"]["InstanceId"] == "r1"
    assert status["IterationStats"]["TotalIterations"] == N_ITS + 1
    assert status["IterationStats"]["FinishedIterations"] == N_ITS + 1
    assert status["IterationStats"]["FailedIterations"] == 0
    assert status["JobStats"]["TotalJobs"] == 2
    assert status["JobStats"]["FinishedJobs"] == 2
    log = _lines(os.path.join(aux, "service.log"))
    assert sum(1 for line in log if line.startswith("service r1 version")) == 2
    assert any("resumed from" in line and aux in line for line in log)


def test_kill_loses_no_report_line_older_than_a_second(tmp_path: Any) -> None:
    """A kill at any moment loses no jobs.report line of a task that ended more than 1 s earlier."""
    wd = str(tmp_path)
    aux = os.path.join(wd, AUX_PREFIX + "r1")
    n = 300
    # the short sleep only keeps the run going long enough to kill it in the middle
    reqs = [submit({"name": "s", "iteration": {"stop": n},
                    "execution": {"script": "sleep 0.02; date +%s.%N > done.${it}"}}), FINISH]
    proc = _start(wd, reqs, "--nodes", "2")

    def ready() -> bool:
        files = glob.glob(os.path.join(wd, "done.*"))
        if len(files) < 10:
            return False
        oldest = min(os.path.getmtime(f) for f in files)
        return time.time() - oldest > 1.3

    try:
        wait_for(ready, timeout=20, what="tasks that ended more than 1.3 s ago")
        assert proc.poll() is None, "the run ended before the kill; it is too short for this test"
        t_kill = time.time()
        proc.send_signal(signal.SIGKILL)
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL
    reported = {e["name"]: e for e in _report_lines(aux)}
    assert "s" not in reported  # the run was cut in the middle
    old = []
    for path in glob.glob(os.path.join(wd, "done.*")):
        it = int(path.rsplit(".", 1)[1])
        if os.path.getmtime(path) < t_kill - 1.0:
            old.append(it)
    assert len(old) >= 5
    assert len(old) < n
    missing = sorted(it for it in old if f"s:{it}" not in reported)
    assert not missing, f"report lines lost for tasks that ended > 1 s before the kill: {missing}"
    for it in old:
        assert reported[f"s:{it}"]["state"] == "SUCCEED"
        assert reported[f"s:{it}"]["runtime"]["exit_code"] == "0"


# ---- what --resume accepts -------------------------------------------------------------------
def test_resume_without_journal_fails_clearly(tmp_path: Any) -> None:
    wd = str(tmp_path / "wd")
    os.makedirs(os.path.join(wd, AUX_PREFIX + "empty"))
    for target in (wd, os.path.join(wd, AUX_PREFIX + "empty"), str(tmp_path / "missing")):
        res = _resume(target, wd)
        assert res.returncode != 0
        msg = res.stderr.strip()
        assert len(msg.splitlines()) == 1, msg
        assert "not valid" in msg
        assert os.path.abspath(target) in msg
        assert "Traceback" not in res.stderr
    # nothing was created by the failed resumes
    assert os.listdir(wd) == [AUX_PREFIX + "empty"]
    assert os.listdir(os.path.join(wd, AUX_PREFIX + "empty")) == []


def test_resume_picks_newest_aux_dir(run_service: Any, tmp_path: Any) -> None:
    wd = str(tmp_path)
    reqs = [submit({"name": "a", "execution": {"exec": "/bin/true"}}), FINISH]
    # the name order is the opposite of the age order
    for ident in ("zz-old", "aa-new"):
        run = run_service(reqs, "--nodes", "1", "--id", ident)
        assert run.rc == 0, run.stderr
    old_aux = os.path.join(wd, AUX_PREFIX + "zz-old")
    new_aux = os.path.join(wd, AUX_PREFIX + "aa-new")
    now = time.time()
    os.utime(os.path.join(old_aux, "journal.jsonl"), (now - 100, now - 100))
    os.utime(os.path.join(new_aux, "journal.jsonl"), (now - 50, now - 50))

    res = _resume(wd, wd)
    assert res.returncode == 0, res.stderr
    new_log = _lines(os.path.join(new_aux, "service.log"))
    old_log = _lines(os.path.join(old_aux, "service.log"))
    assert sum(1 for line in new_log if line.startswith("service aa-new version")) == 2
    assert any("resumed from" in line and new_aux in line for line in new_log)
    assert sum(1 for line in old_log if line.startswith("service zz-old version")) == 1
    assert not any("resumed from" in line for line in old_log)
    assert _final_status(new_aux)["JobStats"]["FinishedJobs"] == 1
    # the finished job was not run or reported again
    assert [e["name"] for e in _report_lines(new_aux)] == ["a"]


def test_resume_keeps_failed_and_omitted(tmp_path: Any) -> None:
    wd = str(tmp_path)
    aux = os.path.join(wd, AUX_PREFIX + "r1")
    reqs = [
        submit(
            {"name": "bad", "execution": {"script": "echo x >> runs.bad; exit 3"}},
            {"name": "omit", "dependencies": {"after": ["bad"]},
             "execution": {"script": "echo x >> runs.omit"}},
            {"name": "itbad", "iteration": {"stop": 4},
             "execution": {"script": "echo x >> runs.itbad.${it}; test ${it} -ne 1"}},
            {"name": "itdep", "iteration": {"stop": 4}, "dependencies": {"after": ["itbad:${it}"]},
             "execution": {"script": "echo x >> runs.itdep.${it}"}},
            # keeps the service busy until the test creates the file 'go'
            {"name": "gate", "execution": {"script": "echo x >> runs.gate; "
                                                     "while [ ! -f go ]; do sleep 0.05; done"}},
        ),
        FINISH,
    ]
    proc = _start(wd, reqs, "--nodes", "2")
    try:
        wait_for(lambda: {"bad", "omit", "itbad", "itdep"} <= {e["name"] for e in _report_lines(aux)},
                 timeout=20, what="bad, omit, itbad and itdep in jobs.report")
        assert proc.poll() is None
    finally:
        _kill(proc)
    before = _last_by_name(_report_lines(aux))
    assert before["bad"]["state"] == "FAILED"
    assert before["omit"]["state"] == "OMITTED"
    assert before["itdep:1"]["state"] == "OMITTED"
    assert "gate" not in before
    with open(os.path.join(wd, "go"), "w"):
        pass

    res = _resume(aux, wd)
    assert res.returncode == 0, res.stderr
    entries = _report_lines(aux)
    names = [e["name"] for e in entries]
    last = _last_by_name(entries)
    assert last["bad"]["state"] == "FAILED"
    assert last["omit"]["state"] == "OMITTED"
    assert last["itbad"]["state"] == "FAILED"
    assert last["itbad:1"]["state"] == "FAILED"
    assert last["itdep:1"]["state"] == "OMITTED"
    assert last["itdep"]["state"] == "FAILED"
    assert last["gate"]["state"] == "SUCCEED"
    for name in ("bad", "omit", "itbad", "itdep", "itbad:1", "itdep:1", "gate"):
        assert names.count(name) == 1, name
    # failed jobs were not run again, omitted ones never ran
    assert _lines(os.path.join(wd, "runs.bad")) == ["x"]
    assert not os.path.exists(os.path.join(wd, "runs.omit"))
    assert not os.path.exists(os.path.join(wd, "runs.itdep.1"))
    for it in range(4):
        assert _lines(os.path.join(wd, f"runs.itbad.{it}")) == ["x"]
    for it in (0, 2, 3):
        assert _lines(os.path.join(wd, f"runs.itdep.{it}")) == ["x"]
    # the gate was executing at the kill: it ran again from the start
    assert _lines(os.path.join(wd, "runs.gate")) == ["x", "x"]

    status = _final_status(aux)
    assert status["JobStats"] == {**status["JobStats"], "TotalJobs": 5, "FinishedJobs": 1, "FailedJobs": 3,
                                  "OmittedJobs": 1, "InScheduleJobs": 0, "ExecutingJobs": 0}
    its = status["IterationStats"]
    assert its["TotalIterations"] == 11
    assert its["FinishedIterations"] == 7  # itbad 0,2,3 + itdep 0,2,3 + gate
    assert its["FailedIterations"] == 2  # bad, itbad:1
    assert its["OmittedIterations"] == 2  # omit, itdep:1


# ---- regressions -------------------------------------------------------------------------------
GATE_JOB = {"name": "gate", "execution": {"script": "echo x >> runs.gate; while [ ! -f go ]; do sleep 0.05; done"}}


def test_regression_resume_empty_journal(tmp_path: Any) -> None:
    """A run killed before its first journal flush left an empty journal; resuming it used to wait
    forever (no interface, not known to be a file run). Now it is refused with a clear message."""
    wd = str(tmp_path)
    aux = os.path.join(wd, AUX_PREFIX + "r1")
    journal = os.path.join(aux, "journal.jsonl")
    proc = _start(wd, [submit(GATE_JOB), FINISH], "--nodes", "1")
    try:
        wait_for(lambda: os.path.exists(journal), timeout=15, what="the journal file")
    finally:
        _kill(proc)
    with open(os.path.join(wd, "go"), "w"):
        pass
    with open(journal, "w"):
        pass  # what a kill before the first flush leaves behind
    res = _resume(wd, wd, "--nodes", "1", timeout=20)
    assert res.returncode != 0
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert "not valid" in msg and "no start record" in msg and aux in msg
    assert not os.path.exists(os.path.join(aux, "final_status"))


def test_resume_after_early_kill_runs_the_whole_file(tmp_path: Any) -> None:
    """The start record is written at once, so a run killed right after it started is resumable."""
    wd = str(tmp_path)
    aux = os.path.join(wd, AUX_PREFIX + "r1")
    journal = os.path.join(aux, "journal.jsonl")
    reqs = [submit(GATE_JOB, {"name": "after", "dependencies": {"after": ["gate"]},
                              "execution": {"script": "echo x >> runs.after"}}), FINISH]
    proc = _start(wd, reqs, "--nodes", "1")
    try:
        wait_for(lambda: os.path.exists(journal) and os.path.getsize(journal) > 0, timeout=15,
                 what="the first journal record")
    finally:
        _kill(proc)
    with open(journal) as fh:
        first = json.loads(fh.readline())
    assert first["t"] == "start" and first["file_mode"] is True
    assert first["file_path"] == os.path.join(wd, "reqs.json")
    with open(os.path.join(wd, "go"), "w"):
        pass
    res = _resume(aux, wd, "--nodes", "1")
    assert res.returncode == 0, res.stderr
    last = _last_by_name(_report_lines(aux))
    assert last["gate"]["state"] == "SUCCEED"
    assert last["after"]["state"] == "SUCCEED"
    assert _lines(os.path.join(wd, "runs.after")) == ["x"]
    assert 1 <= len(_lines(os.path.join(wd, "runs.gate"))) <= 2
    assert _final_status(aux)["JobStats"]["FinishedJobs"] == 2
