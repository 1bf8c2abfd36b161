"""Cancelling jobs and enforcing wall time with the real service."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import FINISH, ServiceRun, service_cmd, submit, wait_for

# every test twice: exits seen through a pidfd and through SIGCHLD (the SIGCHLD path once
# reported a task that exited at once before its start and stalled the run: bug of 2026-12-02)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("exit_watch")]

#: A file is read in one go; the service lets started tasks progress every 64 requests.
#: Cheap requests put between a submit and a cancel let the submitted job start first.
PUMP = [{"request": "resourcesInfo"}] * 640


def _states(entry: dict) -> list:
    return [h["state"] for h in entry["history"]]


def _when(entry: dict, state: str) -> datetime.datetime:
    return next(datetime.datetime.fromisoformat(h["date"]) for h in entry["history"] if h["state"] == state)


def cancel(*names: str) -> dict:
    return {"request": "cancelJob", "jobNames": list(names)}


# ---- wall time ----------------------------------------------------------------------------------
def test_walltime_kills_task(run_service, tmp_path):
    jobs = [{"name": "slow", "resources": {"wt": "1s"}, "execution": {"exec": "sleep", "args": ["30"]}},
            {"name": "quick", "resources": {"wt": "1m"}, "execution": {"script": "touch quick.txt"}}]
    started = time.monotonic()
    res = run_service([submit(*jobs), FINISH], "--nodes", "2", timeout=40)
    elapsed = time.monotonic() - started
    assert res.rc == 0
    assert elapsed < 10
    report = res.report()
    assert report["slow"]["state"] == "FAILED"
    assert "wall time" in report["slow"]["messages"]
    assert "1s" in report["slow"]["messages"]
    assert report["quick"]["state"] == "SUCCEED"
    rtime = report["slow"]["runtime"]["rtime"]  # h:mm:ss.ffffff
    secs = float(rtime.split(":")[-1])
    assert 0.9 <= secs < 5


def test_walltime_task_ignoring_sigterm_is_killed_after_grace(run_service, tmp_path):
    job = {"name": "stubborn", "resources": {"wt": "1s"},
           "execution": {"script": "trap '' TERM; touch trapped; sleep 60 & wait; sleep 60"}}
    started = time.monotonic()
    res = run_service([submit(job), FINISH], "--nodes", "1", "--kill-grace", "1", timeout=40)
    elapsed = time.monotonic() - started
    assert res.rc == 0
    assert (tmp_path / "trapped").exists()
    assert 1.5 < elapsed < 10  # wall time 1 s + grace 1 s, not 60 s
    entry = res.report()["stubborn"]
    assert entry["state"] == "FAILED"
    assert "wall time" in entry["messages"]


def test_walltime_per_iteration(run_service, tmp_path):
    job = {"name": "its", "iteration": {"stop": 3}, "resources": {"wt": "1s"},
           "execution": {"script": "if [ ${it} = 1 ]; then sleep 30; fi; touch done_${it}"}}
    started = time.monotonic()
    res = run_service([submit(job), FINISH], "--nodes", "3", timeout=40)
    assert time.monotonic() - started < 10
    report = res.report()
    assert [report[f"its:{i}"]["state"] for i in range(3)] == ["SUCCEED", "FAILED", "SUCCEED"]
    assert report["its"]["state"] == "FAILED"
    assert not (tmp_path / "done_1").exists()


# ---- cancel --------------------------------------------------------------------------------------
def test_cancel_running_job_ignoring_sigterm(run_service, tmp_path):
    jobs = [{"name": "stubborn", "execution": {"script": "trap '' TERM; sleep 60 & wait; sleep 60"}},
            {"name": "other", "execution": {"script": "touch other.txt"}}]
    started = time.monotonic()
    res = run_service([submit(*jobs), *PUMP, cancel("stubborn"), FINISH], "--nodes", "2", "--kill-grace", "1",
                      timeout=40)
    elapsed = time.monotonic() - started
    assert res.rc == 0
    assert elapsed < 10
    report = res.report()
    entry = report["stubborn"]
    assert entry["state"] == "CANCELED"
    assert "EXECUTING" in _states(entry)
    assert "cancel" in entry["messages"]
    assert report["other"]["state"] == "SUCCEED"
    assert res.final_status["JobStats"]["CanceledJobs"] == 1


def test_cancel_queued_job(run_service, tmp_path):
    # one core: 'first' runs, 'queued' waits for the core and is cancelled before it starts
    jobs = [{"name": "first", "execution": {"exec": "sleep", "args": ["30"]}},
            {"name": "queued", "execution": {"script": "touch queued.txt"}}]
    started = time.monotonic()
    res = run_service([submit(*jobs), *PUMP, cancel("queued"), cancel("first"), FINISH], "--nodes", "1",
                      timeout=40)
    assert time.monotonic() - started < 10
    assert res.rc == 0
    report = res.report()
    assert report["queued"]["state"] == "CANCELED"
    assert "EXECUTING" not in _states(report["queued"])
    assert not (tmp_path / "queued.txt").exists()
    assert report["first"]["state"] == "CANCELED"
    assert "EXECUTING" in _states(report["first"])


def test_cancel_job_waiting_for_dependency(run_service, tmp_path):
    jobs = [{"name": "long", "execution": {"exec": "sleep", "args": ["60"]}},
            {"name": "waits", "execution": {"script": "touch waits.txt"}, "dependencies": {"after": ["long"]}},
            {"name": "chain", "execution": {"script": "touch chain.txt"}, "dependencies": {"after": ["waits"]}}]
    res = run_service([submit(*jobs), *PUMP, cancel("waits"), cancel("long"), FINISH], "--nodes", "2", timeout=40)
    assert res.rc == 0
    report = res.report()
    assert report["waits"]["state"] == "CANCELED"
    assert report["chain"]["state"] == "OMITTED"
    assert report["long"]["state"] == "CANCELED"
    assert "EXECUTING" in _states(report["long"])
    assert not (tmp_path / "waits.txt").exists() and not (tmp_path / "chain.txt").exists()


def test_cancel_in_same_file(run_service, tmp_path):
    """The plain file flow: a long job and, in a later request, its cancel."""
    reqs = [submit({"name": "long", "execution": {"exec": "sleep", "args": ["60"]}}),
            submit({"name": "short", "execution": {"script": "touch short.txt"}}),
            cancel("long"),
            FINISH]
    started = time.monotonic()
    res = run_service(reqs, "--nodes", "2", timeout=40)
    assert time.monotonic() - started < 10
    assert res.rc == 0
    report = res.report()
    assert report["long"]["state"] == "CANCELED"
    assert report["short"]["state"] == "SUCCEED"
    assert "cancel" in report["long"]["messages"]


def test_cancel_dependency_omits_dependants(run_service, tmp_path):
    reqs = [submit({"name": "long", "execution": {"exec": "sleep", "args": ["60"]}},
                   {"name": "dep", "execution": {"script": "touch dep.txt"}, "dependencies": {"after": ["long"]}}),
            cancel("long"),
            FINISH]
    res = run_service(reqs, "--nodes", "2", timeout=40)
    assert res.rc == 0
    report = res.report()
    assert report["long"]["state"] == "CANCELED"
    assert report["dep"]["state"] == "OMITTED"
    assert not (tmp_path / "dep.txt").exists()


def test_cancel_whole_iterative_job(run_service, tmp_path):
    reqs = [submit({"name": "many", "iteration": {"stop": 5}, "execution": {"exec": "sleep", "args": ["60"]}}),
            *PUMP, cancel("many"), FINISH]
    started = time.monotonic()
    res = run_service(reqs, "--nodes", "2", timeout=40)
    assert time.monotonic() - started < 10
    report = res.report()
    assert report["many"]["state"] == "CANCELED"
    assert all(report[f"many:{i}"]["state"] == "CANCELED" for i in range(5))
    assert sum("EXECUTING" in _states(report[f"many:{i}"]) for i in range(5)) == 2


def test_cancel_iteration_omits_per_iteration_dependant(run_service, tmp_path):
    jobs = [{"name": "a", "iteration": {"stop": 3}, "execution": {"script": "sleep 0.2; touch a_${it}"}},
            {"name": "b", "iteration": {"stop": 3}, "execution": {"script": "touch b_${it}"},
             "dependencies": {"after": ["a:${it}"]}}]
    # one core: a:0 runs while a:1, a:2 and b wait; then a:1 is cancelled
    res = run_service([submit(*jobs), *PUMP, cancel("a:1"), FINISH], "--nodes", "1", timeout=40)
    assert res.rc == 0
    report = res.report()
    assert _when(report["a:1"], "CANCELED") < _when(report["a:0"], "SUCCEED")
    assert "EXECUTING" not in _states(report["a:1"])
    assert report["a:1"]["state"] == "CANCELED"
    assert report["a:0"]["state"] == report["a:2"]["state"] == "SUCCEED"
    assert report["a"]["state"] == "FAILED"  # cancelled iterations count as failed
    assert report["b:1"]["state"] == "OMITTED"
    assert report["b:0"]["state"] == report["b:2"]["state"] == "SUCCEED"
    assert report["b"]["state"] == "FAILED"
    assert sorted(f for f in os.listdir(tmp_path) if f[:2] in ("a_", "b_")) == ["a_0", "a_2", "b_0", "b_2"]
    for it in (0, 2):
        assert _when(report[f"b:{it}"], "EXECUTING") >= _when(report[f"a:{it}"], "SUCCEED")


def test_cancel_errors_reported(run_service, tmp_path):
    reqs = [submit({"name": "done", "execution": {"exec": "true"}},
                   {"name": "it", "iteration": {"stop": 2}, "execution": {"exec": "true"}}),
            *PUMP,
            cancel("ghost"),
            cancel("done:3"),
            cancel("it:7"),
            cancel("done"),
            FINISH]
    res = run_service(reqs, "--nodes", "1")
    assert res.rc == 0
    log = res.log
    assert "Job 'ghost' doesn't exist" in log
    assert "Unknown iteration 3 for job done" in log
    assert "Unknown iteration 7 for job it" in log
    report = res.report()
    assert report["it"]["state"] == "SUCCEED"
    # 'done' has almost surely ended by the time its cancel is read (640 requests later)
    if report["done"]["state"] == "SUCCEED":
        assert "Job 'done' already finished (SUCCEED)" in log
    else:
        assert report["done"]["state"] == "CANCELED"


# ---- stopping the service with a signal -----------------------------------------------------------
def test_sigterm_to_service_stops_stubborn_task(tmp_path):
    reqs = tmp_path / "reqs.json"
    reqs.write_text(json.dumps([
        submit({"name": "stubborn", "execution": {"script": "trap '' TERM; touch trapped; sleep 60 & wait; "
                                                            "sleep 60"}}),
        FINISH,
    ]))
    cmd = service_cmd("--file-path", str(reqs), "--nodes", "1", "--wd", str(tmp_path), "--kill-grace", "1",
                      "--report-format", "json")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (tmp_path / "trapped").exists(), timeout=20, what="the task to start")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    assert 0.9 < elapsed < 10  # the task ignores SIGTERM: killed after the 1 s grace
    run = ServiceRun(proc.returncode, out, err, str(tmp_path))
    entry = run.report()["stubborn"]
    assert entry["state"] == "CANCELED"
    assert run.final_status["JobStats"]["CanceledJobs"] == 1
