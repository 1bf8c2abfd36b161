"""The Python client API against a real service started by ``LocalManager``."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.integration

FINAL = ("SUCCEED", "FAILED", "CANCELED", "OMITTED")


@pytest.fixture
def local(tmp_path, monkeypatch):
    """``local(*server_args, cfg=None)``: a LocalManager working in this test's tmp dir
    (``--wd tmp --nodes 4`` unless given); finished at the end of the test."""
    from qcg.pilotjob.api.manager import LocalManager

    monkeypatch.chdir(tmp_path)
    started = []

    def start(*args: str, cfg=None):
        server_args = list(args) or ["--wd", str(tmp_path), "--nodes", "4"]
        manager = LocalManager(server_args, cfg)
        started.append(manager)
        return manager

    try:
        yield start
    finally:
        for manager in started:
            if manager._sock is not None:
                manager.finish()


def state(manager, name: str) -> str:
    return manager.status(name)["jobs"][name]["data"]["status"]


def wait_state(manager, name: str, wanted: str) -> str:
    return wait_for(lambda: state(manager, name) == wanted, what=f"{name} {wanted}")


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


# ---- waiting: events, timeouts -----------------------------------------------------------------
def test_wait4_is_event_driven(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local(cfg={"poll_delay": 60})
    assert manager.poll_delay == 60
    manager.submit(Jobs().add(name="short", exec="sleep", args="0.3").add(name="its", exec="sleep", args="0.3",
                                                                        iteration=2))
    started = time.monotonic()
    assert manager.wait4(["short", "its:1"]) == {"short": "SUCCEED", "its:1": "SUCCEED"}
    assert time.monotonic() - started < 30  # far below poll_delay: the events woke it
    assert manager.wait4("its") == {"its": "SUCCEED"}


def test_wait4all_is_event_driven(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local(cfg={"poll_delay": 60})
    manager.submit(Jobs().add(name="a", exec="sleep", args="0.3").add(name="b", exec="sleep", args="0.4"))
    started = time.monotonic()
    manager.wait4all()
    assert time.monotonic() - started < 30
    assert state(manager, "a") == "SUCCEED"
    assert state(manager, "b") == "SUCCEED"


def test_regression_wait4all_stale_no_jobs_event(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local(cfg={"poll_delay": 60})
    manager.submit(Jobs().add(name="quick", exec="true"))
    assert manager.wait4("quick") == {"quick": "SUCCEED"}
    wait_for(lambda: manager.resources()["used_cores"] == 0, what="quick to release its core")
    manager.submit(Jobs().add(name="slower", exec="sleep", args="1"))
    started = time.monotonic()
    manager.wait4all()
    assert state(manager, "slower") == "SUCCEED"
    assert time.monotonic() - started < 30


def test_wait4_any_job_finish(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    manager.submit(Jobs().add(name="one", exec="sleep", args="0.2"))
    assert manager.wait4_any_job_finish(timeout=30) == ("one", "SUCCEED")


def test_regression_wait4_any_job_finish_skips_stale_event(local):
    """An unread finish event of a removed job must not be taken for its successor's."""
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    manager.submit(Jobs().add(name="r", exec="/bin/true"))
    wait_for(lambda: state(manager, "r") == "SUCCEED", what="the first r to finish")
    manager.remove("r")
    manager.submit(Jobs().add(name="r", exec="sleep", args="0.5"))
    assert manager.wait4_any_job_finish(timeout=30) == ("r", "SUCCEED")
    assert state(manager, "r") == "SUCCEED"  # the second r, not the stale event of the first


def test_timeouts(local):
    from qcg.pilotjob.api.errors import QCGPJMAError, TimeoutElapsed
    from qcg.pilotjob.api.job import Jobs

    assert issubclass(TimeoutElapsed, QCGPJMAError)
    manager = local()
    manager.submit(Jobs().add(name="long", exec="sleep", args="30"))
    with pytest.raises(TimeoutElapsed):
        manager.wait4("long", timeout=0.5)
    with pytest.raises(TimeoutElapsed):
        manager.wait4all(timeout=0.5)
    with pytest.raises(QCGPJMAError):
        manager.wait4_any_job_finish(timeout=0.3)
    assert state(manager, "long") == "EXECUTING"  # the connection is still usable


# ---- other clients ------------------------------------------------------------------------------
def test_manager_json_encoding_and_env_address(local, monkeypatch):
    from qcg.pilotjob.api.job import Jobs
    from qcg.pilotjob.api.manager import Manager

    service = local()
    with open(os.path.join(service.aux_dir, "address")) as fh:
        address = fh.read().strip()
    assert address == service._address

    client = Manager(address, cfg={"encoding": "json", "poll_delay": 60})
    try:
        assert client.resources()["total_cores"] == 4
        assert client.submit(Jobs().add(name="j", exec="sleep", args="0.2")) == ["j"]
        assert client.wait4("j") == {"j": "SUCCEED"}
        assert service.list()["j"]["status"] == "SUCCEED"
    finally:
        client._disconnect()

    monkeypatch.setenv("QCG_PM_ZMQ_ADDRESS", address)
    env_client = Manager()
    try:
        assert env_client._address == address
        assert env_client.status("j")["jobs"]["j"]["data"]["status"] == "SUCCEED"
    finally:
        env_client._disconnect()


def test_manager_bad_encoding_rejected(local):
    from qcg.pilotjob.api.errors import WrongArgumentsError
    from qcg.pilotjob.api.manager import Manager

    service = local()
    with pytest.raises(WrongArgumentsError):
        Manager(service._address, cfg={"encoding": "xml"})


def test_job_is_an_application_controller(local, tmp_path):
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    oneliner = ('from qcg.pilotjob.api.manager import Manager; m=Manager(); print(m.resources()); '
                'm._disconnect()')
    controller = tmp_path / "controller.py"
    controller.write_text(textwrap.dedent("""
        from qcg.pilotjob.api.job import Jobs
        from qcg.pilotjob.api.manager import Manager
        m = Manager()
        m.submit(Jobs().add(name="inner", script="echo inner > inner.txt"))
        print(m.wait4("inner"))
        m._disconnect()
    """))
    jobs = Jobs().add(name="ctl", script=f"{sys.executable} -c '{oneliner}' > ctl.out; "
                                          "echo $QCG_PM_ZMQ_ADDRESS > addr.out") \
        .add(name="ctl2", exec=sys.executable, args=[str(controller)], stdout="ctl2.out", stderr="ctl2.err")
    manager.submit(jobs)
    assert manager.wait4(["ctl", "ctl2"]) == {"ctl": "SUCCEED", "ctl2": "SUCCEED"}, \
        (tmp_path / "ctl2.err").read_text()
    assert (tmp_path / "addr.out").read_text().strip() == manager._address
    seen = ast.literal_eval((tmp_path / "ctl.out").read_text().strip())
    assert seen["total_cores"] == 4
    assert seen["used_cores"] >= 1  # at least the controller itself
    assert (tmp_path / "ctl2.out").read_text().strip() == "{'inner': 'SUCCEED'}"
    assert (tmp_path / "inner.txt").read_text() == "inner\n"
    assert manager.status("inner")["jobs"]["inner"]["data"]["status"] == "SUCCEED"


# ---- the service process ------------------------------------------------------------------------
def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_local_manager_never_leaves_an_orphan(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from qcg.pilotjob.api.job import Jobs
        from qcg.pilotjob.api.manager import LocalManager
        m = LocalManager(["--wd", {str(tmp_path)!r}, "--nodes", "2"])
        m.submit(Jobs().add(name="hang", script="echo $BASHPID > hang.pid; exec sleep 300"))
        print(m.qcgpm_process.pid, flush=True)
        sys.stdin.read()
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              cwd=str(tmp_path))
    service_pid = task_pid = 0
    try:
        line = parent.stdout.readline()
        service_pid = int(line)
        assert psutil.pid_exists(service_pid) and not _gone(service_pid)
        pid_file = tmp_path / "hang.pid"
        task_pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="hang.pid"))
        assert not _gone(task_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: _gone(service_pid), timeout=20, what="the service to exit")
        wait_for(lambda: _gone(task_pid), timeout=20, what="the task to be stopped")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdin.close()
        parent.stdout.close()
        for pid in (service_pid, task_pid):
            if pid and not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_finish_returns_after_the_service_exited(local):
    from qcg.pilotjob.api.job import Jobs

    manager = local()
    manager.submit(Jobs().add(name="long", exec="sleep", args="30"))
    wait_state(manager, "long", "EXECUTING")
    started = time.monotonic()
    manager.finish()
    assert manager.qcgpm_process.poll() is not None
    assert manager.qcgpm_process.returncode == 0
    assert time.monotonic() - started < 15
    with open(os.path.join(manager.aux_dir, "final_status")) as fh:
        final = json.load(fh)
    assert final["JobStats"]["TotalJobs"] == 1
    assert final["JobStats"]["ExecutingJobs"] == 0


def test_local_manager_start_failure_reports_service_error(tmp_path, monkeypatch):
    from qcg.pilotjob.api.errors import QCGPJMAError, ServiceError
    from qcg.pilotjob.api.manager import LocalManager

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ServiceError) as info:
        LocalManager(["--wd", str(tmp_path), "--nodes", "bogus"])
    assert "--nodes" in str(info.value)
    assert "bogus" in str(info.value)
    assert isinstance(info.value, QCGPJMAError)


def test_aux_dir_address_and_status_addresses(local, tmp_path):
    manager = local()
    assert os.path.dirname(manager.aux_dir) == str(tmp_path)
    assert os.path.basename(manager.aux_dir).startswith(".qcgpjm-service-")
    with open(os.path.join(manager.aux_dir, "address")) as fh:
        text = fh.read()
    assert text.endswith("\n")
    address = text.strip()
    assert address.startswith("tcp://")
    assert address == manager._address
    system = manager.system_status()["System"]
    assert system["Zmqaddress"] == address
    publisher = system["StatusPublisher"]
    assert publisher.startswith("tcp://") and publisher != address
    assert "zmq" in system["Ifaces"]
    manager.finish()
    with open(os.path.join(manager.aux_dir, "final_status")) as fh:
        final = json.load(fh)
    assert final["System"]["Zmqaddress"] == address
    assert final["System"]["StatusPublisher"] == publisher
    assert final["System"]["AuxDir"] == manager.aux_dir


def test_manager_close_and_context_manager(tmp_path) -> None:
    from qcg_pilotjob.api import LocalManager, Manager
    from qcg_pilotjob.api.errors import ConnectionError as ApiConnectionError

    local = LocalManager(["--wd", str(tmp_path), "--nodes", "2"])
    try:
        with Manager(local._address) as client:
            assert client.resources()["total_cores"] == 2
        with pytest.raises(ApiConnectionError, match="Not connected"):
            client.resources()
        assert local.resources()["total_cores"] == 2  # the service goes on
    finally:
        local.finish()
