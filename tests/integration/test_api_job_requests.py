"""The Python client API against a real service started by ``LocalManager``: the documented
example, submit, iterations, dependencies, info, list, remove, cancel (``local``: conftest.py)."""

from __future__ import annotations

import ast
import os
import time

import pytest

from tests.conftest import wait_for
from tests.integration.conftest import state, wait_state

pytestmark = pytest.mark.integration


# ---- the documented example -----------------------------------------------------------------------
def test_spec_api_example_verbatim(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from qcg.pilotjob.api.manager import LocalManager

    manager = LocalManager()
    try:
        print('available resources: ', manager.resources())

        from qcg.pilotjob.api.job import Jobs
        jobs = Jobs().add(script='echo "job ${it} executed at `date` @ `hostname`"', stdout='job.out.${it}', iteration=4)  # noqa: E501
        job_ids = manager.submit(jobs)
        print('submited jobs: ', str(job_ids))

        job_status = manager.status(job_ids)
        print('job status: ', job_status)

        manager.wait4(job_ids)

        manager.wait4all()

        job_info = manager.info(job_ids)
        print('job detailed information: ', job_info)
    finally:
        manager.finish()

    out = capsys.readouterr().out
    assert "available resources:  {'total_nodes': 1" in out
    assert "submited jobs:  ['" in out
    resources = ast.literal_eval(out.split("available resources:  ", 1)[1].split("\n", 1)[0])
    assert set(resources) == {"total_nodes", "total_cores", "used_cores", "free_cores"}
    assert resources["total_nodes"] == 1
    assert resources["total_cores"] == len(os.sched_getaffinity(0))
    assert resources["used_cores"] == 0
    assert resources["free_cores"] == resources["total_cores"]
    (name,) = job_ids
    assert isinstance(name, str) and name
    assert list(job_status) == ["jobs"]
    entry = job_status["jobs"][name]
    assert entry["status"] == 0
    assert entry["data"]["jobName"] == name
    assert entry["data"]["status"] in ("QUEUED", "EXECUTING", "SUCCEED")
    data = job_info["jobs"][name]["data"]
    assert data["status"] == "SUCCEED"
    assert data["iterations"] == {"start": 0, "stop": 4, "total": 4, "finished": 4, "failed": 0}
    assert "SUCCEED" in data["history"]
    for it in range(4):
        text = (tmp_path / f"job.out.{it}").read_text()
        assert text.startswith(f"job {it} executed at ")
        assert f" @ {os.uname().nodename}" in text
    assert not (tmp_path / "job.out.4").exists()
    assert manager.qcgpm_process.poll() == 0
    aux = [d for d in os.listdir(tmp_path) if d.startswith(".qcgpjm-service-")]
    assert len(aux) == 1
    assert {"service.log", "jobs.report"} <= set(os.listdir(tmp_path / aux[0]))


def test_example_calls_shapes(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    assert manager.resources() == {"total_nodes": 1, "total_cores": 4, "used_cores": 0, "free_cores": 4}
    assert manager.submit(Jobs().add(name="e", script="echo hi", iteration=4, stdout="e.${it}")) == ["e"]
    assert manager.wait4("e") == {"e": "SUCCEED"}
    manager.wait4all()
    assert manager.status(["e"]) == {"jobs": {"e": {"status": 0, "data": {"jobName": "e", "status": "SUCCEED"}}}}
    assert manager.wait4(["e:0", "e:3"]) == {"e:0": "SUCCEED", "e:3": "SUCCEED"}
    assert manager.resources()["used_cores"] == 0


# ---- iterations, dependencies, info, list, remove --------------------------------------------------
def test_iterations_dependencies_and_info(local, tmp_path):
    from qcg.pilotjob.api.job import Jobs
    from qcg.pilotjob.api.jobinfo import JobInfo

    manager = local()
    # each iteration waits for the file 'go', then sleeps 0.2 s
    jobs = Jobs().add(name="first", script="until [ -e go ]; do sleep 0.01; done; sleep 0.2; echo ${it} > first.${it}",
                      iteration=3) \
        .add(name="second", script="cat first.0 first.1 first.2 > second.txt", after="first", numCores=2)
    t_submit = time.time()
    assert manager.submit(jobs) == ["first", "second"]

    def executing() -> bool:
        childs = manager.info("first", withChilds=True)["jobs"]["first"]["data"].get("childs", [])
        return len(childs) == 3 and all(c["state"] == "EXECUTING" for c in childs)

    # A task's runtime clock starts when its process was started, which is before it is reported
    # EXECUTING. So 'go', made once all are reported EXECUTING, makes each run at least 0.2 s
    # after its clock started, however late the service got to start the clock after the fork.
    wait_for(executing, what="the 3 iterations of first EXECUTING")
    (tmp_path / "go").touch()
    assert manager.wait4(["first", "second"]) == {"first": "SUCCEED", "second": "SUCCEED"}
    t_done = time.time()
    # the dependency held: without it, cat would have run before the (waiting) iterations wrote
    assert (tmp_path / "second.txt").read_text() == "0\n1\n2\n"

    info = manager.info("first", withChilds=True)["jobs"]["first"]
    assert info["status"] == 0
    data = info["data"]
    assert data["iterations"] == {"start": 0, "stop": 3, "total": 3, "finished": 3, "failed": 0}
    assert [c["iteration"] for c in data["childs"]] == [0, 1, 2]
    assert {c["state"] for c in data["childs"]} == {"SUCCEED"}
    for child in data["childs"]:
        assert child["runtime"]["wd"] == str(tmp_path)
        assert str(child["runtime"]["exit_code"]) == "0"
    assert "childs" not in manager.info("first")["jobs"]["first"]["data"]

    parsed = manager.info_parsed(["first", "second"], withChilds=True)
    assert set(parsed) == {"first", "second"}
    first, second = parsed["first"], parsed["second"]
    assert isinstance(first, JobInfo) and isinstance(second, JobInfo)
    assert first.name == "first" and first.status == "SUCCEED"
    assert first.iterations["finished"] == 3
    assert [c.name for c in first.childs] == ["first:0", "first:1", "first:2"]
    for child in first.childs:
        assert child.status == "SUCCEED"
        assert child.total_cores == 1
        assert child.exit_code == 0
        assert 0.2 <= child.time.total_seconds() <= t_done - t_submit
    assert second.status == "SUCCEED"
    assert second.total_cores == 2
    assert sum(len(c) for c in second.nodes.values()) == 2
    assert second.wdir == str(tmp_path)
    assert second.exit_code == 0
    assert 0 <= second.time.total_seconds() <= t_done - t_submit
    states = [line.rsplit(": ", 1)[1] for line in second.history]
    assert states[0] == "QUEUED" and states[-2:] == ["EXECUTING", "SUCCEED"]

    listed = manager.list()
    assert listed["first"]["status"] == "SUCCEED"
    assert listed["second"]["status"] == "SUCCEED"


def test_dependency_on_failed_job_is_omitted(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    manager.submit(Jobs().add(name="bad", script="exit 3").add(name="after_bad", exec="true", after="bad"))
    assert manager.wait4(["bad", "after_bad"]) == {"bad": "FAILED", "after_bad": "OMITTED"}
    bad = manager.info_parsed("bad")["bad"]
    assert bad.exit_code == 3


def test_remove_then_resubmit_same_name(local, tmp_path):
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    manager.submit(Jobs().add(name="r", script="echo one > r1.txt"))
    assert manager.wait4("r") == {"r": "SUCCEED"}
    assert manager.remove("r") == {"removed": 1}
    assert "r" not in manager.list()
    assert manager.submit(Jobs().add(name="r", script="echo two > r2.txt")) == ["r"]
    assert manager.wait4("r") == {"r": "SUCCEED"}
    assert (tmp_path / "r1.txt").read_text() == "one\n"
    assert (tmp_path / "r2.txt").read_text() == "two\n"
    assert manager.list()["r"]["status"] == "SUCCEED"


def test_regression_wait4_stale_event_after_resubmit(local):
    """A finish event of a removed job used to end wait4 on a new job of the same name."""
    from qcg.pilotjob.api.job import Jobs

    manager = local(cfg={"poll_delay": 60})
    manager.submit(Jobs().add(name="r", exec="true"))
    wait_state(manager, "r", "SUCCEED")  # its JFI event stays unread
    assert manager.remove("r") == {"removed": 1}
    manager.submit(Jobs().add(name="r", exec="sleep", args="1"))
    started = time.monotonic()
    assert manager.wait4("r") == {"r": "SUCCEED"}
    assert state(manager, "r") == "SUCCEED"
    assert time.monotonic() - started < 30


# ---- cancel ---------------------------------------------------------------------------------------
def test_cancel_running_job(local, tmp_path):
    from qcg.pilotjob.api.job import Jobs

    manager = local("--wd", str(tmp_path), "--nodes", "4", "--kill-grace", "1")
    manager.submit(Jobs().add(name="long", exec="sleep", args="30"))
    wait_state(manager, "long", "EXECUTING")
    removed = manager.remove("long")
    assert removed["removed"] == 0
    assert "not finished" in removed["errors"]["long"]
    started = time.monotonic()
    assert manager.cancel("long") == {"canceled": 1}
    assert manager.wait4("long") == {"long": "CANCELED"}
    assert time.monotonic() - started < 15
    assert manager.resources()["used_cores"] == 0
    info = manager.info_parsed("long")["long"]
    assert info.status == "CANCELED"
    assert info.history[-1].endswith(": CANCELED")


def test_cancel_one_iteration(local, tmp_path):
    from qcg.pilotjob.api.job import Jobs

    manager = local("--wd", str(tmp_path), "--nodes", "4", "--kill-grace", "1")
    manager.submit(Jobs().add(name="it", exec="sleep", args="30", iteration=3))
    for i in range(3):
        wait_state(manager, f"it:{i}", "EXECUTING")
    assert manager.cancel("it:1") == {"canceled": 1}
    assert manager.wait4("it:1") == {"it:1": "CANCELED"}
    assert state(manager, "it:0") == "EXECUTING"
    assert state(manager, "it:2") == "EXECUTING"
    assert state(manager, "it") == "EXECUTING"
    assert manager.resources()["used_cores"] == 2
    assert manager.cancel(["it"]) == {"canceled": 1}
    assert manager.wait4("it") == {"it": "CANCELED"}
    childs = manager.info_parsed("it", withChilds=True)["it"].childs
    assert [c.status for c in childs] == ["CANCELED"] * 3


def test_cancel_unknown_job_reports_error(local):
    manager = local()
    reply = manager.cancel("nope")
    assert reply["canceled"] == 0
    assert "nope" in reply["errors"]
